"""Tiny randomly-initialised diffusers pipelines of each family, built and saved inside the tests (no download).

The tokenizers are real CLIP tokenizers: a byte-pair vocabulary trained here with the ``tokenizers`` library
(CLIP's ``</w>`` end-of-word suffix) on a few sentences, loaded into transformers' CLIPTokenizer and saved
with ``save_pretrained``, as a hub pipeline's tokenizer folder is.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

CORPUS = ["a photo of a cat", "a painting of a dog", "an astronaut riding a horse on the moon",
          "blurry, low quality, watermark", "a red cube on a blue sphere"]
MAX_LENGTH = 16
HIDDEN = 16
VAE = {"block_out_channels": [8, 8], "in_channels": 3, "out_channels": 3, "latent_channels": 4,
       "down_block_types": ["DownEncoderBlock2D"] * 2, "up_block_types": ["UpDecoderBlock2D"] * 2,
       "norm_num_groups": 4, "sample_size": 16}
SD_BETAS = {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear"}


def clip_tokenizer() -> Any:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import CLIPTokenizer

    bpe = Tokenizer(models.BPE(unk_token="<|endoftext|>", end_of_word_suffix="</w>"))
    bpe.normalizer = normalizers.Lowercase()
    bpe.pre_tokenizer = pre_tokenizers.Whitespace()
    bpe.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=120, end_of_word_suffix="</w>",
                                                        special_tokens=["<|startoftext|>", "<|endoftext|>"]))
    merges = [tuple(pair) for pair in json.loads(bpe.to_str())["model"]["merges"]]
    return CLIPTokenizer(vocab=bpe.get_vocab(), merges=merges, model_max_length=MAX_LENGTH)


def clip_text_config(vocab_size: int, **changes: Any) -> Any:
    from transformers import CLIPTextConfig

    return CLIPTextConfig(bos_token_id=0, eos_token_id=1, pad_token_id=1, hidden_size=HIDDEN, intermediate_size=32,
                          num_attention_heads=2, num_hidden_layers=2, max_position_embeddings=MAX_LENGTH,
                          vocab_size=vocab_size, **changes)


def vae(**changes: Any) -> Any:
    from diffusers import AutoencoderKL

    return AutoencoderKL(**{**VAE, **changes}).eval()


def unet(**changes: Any) -> Any:
    from diffusers import UNet2DConditionModel

    config = {"block_out_channels": (8, 16), "layers_per_block": 1, "sample_size": 8, "in_channels": 4,
              "out_channels": 4, "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
              "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D"), "cross_attention_dim": HIDDEN,
              "norm_num_groups": 4, "attention_head_dim": 4, **changes}
    return UNet2DConditionModel(**config).eval()


def stable_diffusion(directory: Path, scheduler: Any, digits_sized: bool = False) -> Path:
    """A Stable Diffusion 1.x/2.x pipeline: UNet2DConditionModel, AutoencoderKL, CLIP text encoder. ``digits_sized``:
    grey 8x8 images (4x4 latents), which the digits feature extractor can score."""
    from diffusers import StableDiffusionPipeline
    from transformers import CLIPTextModel

    torch.manual_seed(0)
    tokenizer = clip_tokenizer()
    text_encoder = CLIPTextModel(clip_text_config(len(tokenizer))).eval()
    small = {"in_channels": 1, "out_channels": 1, "sample_size": 8} if digits_sized else {}
    pipe = StableDiffusionPipeline(vae=vae(**small), text_encoder=text_encoder, tokenizer=tokenizer,
                                   unet=unet(sample_size=4) if digits_sized else unet(), scheduler=scheduler,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(directory)
    return directory


def latent_consistency(directory: Path, scheduler: Any) -> Path:
    """A Latent Consistency Model pipeline: Stable Diffusion's components, the UNet with a guidance-scale time
    condition (``time_cond_proj_dim``)."""
    from diffusers import LatentConsistencyModelPipeline
    from transformers import CLIPTextModel

    torch.manual_seed(0)
    tokenizer = clip_tokenizer()
    LatentConsistencyModelPipeline(vae=vae(), text_encoder=CLIPTextModel(clip_text_config(len(tokenizer))).eval(),
                                   tokenizer=tokenizer, unet=unet(time_cond_proj_dim=32), scheduler=scheduler,
                                   safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False).save_pretrained(directory)
    return directory


def stable_diffusion_xl(directory: Path, scheduler: Any) -> Path:
    """An SDXL pipeline: two text encoders (the second with a projection: pooled embeddings) and time ids."""
    from diffusers import StableDiffusionXLPipeline
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(0)
    tokenizer = clip_tokenizer()
    text_encoder = CLIPTextModel(clip_text_config(len(tokenizer))).eval()
    text_encoder_2 = CLIPTextModelWithProjection(clip_text_config(len(tokenizer), projection_dim=HIDDEN)).eval()
    xl_unet = unet(cross_attention_dim=2 * HIDDEN, addition_embed_type="text_time", addition_time_embed_dim=8,
                   projection_class_embeddings_input_dim=6 * 8 + HIDDEN, use_linear_projection=True)
    pipe = StableDiffusionXLPipeline(vae=vae(), text_encoder=text_encoder, text_encoder_2=text_encoder_2,
                                     tokenizer=tokenizer, tokenizer_2=tokenizer, unet=xl_unet, scheduler=scheduler)
    pipe.save_pretrained(directory)
    return directory


def consistency_model(directory: Path, scheduler: Any) -> Path:
    """A consistency-model pipeline (openai's diffusers-cd_* layout): a class-conditional pixel UNet2DModel and
    CMStochasticIterativeScheduler."""
    from diffusers import ConsistencyModelPipeline, UNet2DModel

    torch.manual_seed(0)
    network = UNet2DModel(sample_size=8, in_channels=3, out_channels=3, block_out_channels=(8, 16), layers_per_block=1,
                          down_block_types=("DownBlock2D", "AttnDownBlock2D"), up_block_types=("AttnUpBlock2D",
                          "UpBlock2D"), norm_num_groups=4, attention_head_dim=4, num_class_embeds=10).eval()
    ConsistencyModelPipeline(unet=network, scheduler=scheduler).save_pretrained(directory)
    return directory


def dit(directory: Path, scheduler: Any) -> Path:
    """A DiT pipeline with 1000 classes (DiTPipeline's null class is label 1000) and learned sigma."""
    from diffusers import DiTPipeline, DiTTransformer2DModel

    torch.manual_seed(0)
    transformer = DiTTransformer2DModel(sample_size=8, patch_size=2, in_channels=4, out_channels=8, num_layers=2,
                                        num_attention_heads=2, attention_head_dim=8, num_embeds_ada_norm=1000).eval()
    DiTPipeline(transformer=transformer, vae=vae(), scheduler=scheduler).save_pretrained(directory)
    return directory


T5_HIDDEN = 2 * HIDDEN  # SD3 pads the two CLIPs' joined hidden states to T5's width


def t5_tokenizer() -> Any:
    """A T5 tokenizer: a unigram vocabulary trained here (metaspace pre-tokenizer, ``</s>`` appended, pad id 0)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import T5TokenizerFast

    unigram = Tokenizer(models.Unigram())
    unigram.pre_tokenizer = pre_tokenizers.Metaspace()
    unigram.decoder = decoders.Metaspace()
    unigram.train_from_iterator(CORPUS, trainers.UnigramTrainer(vocab_size=60, unk_token="<unk>",
                                                                special_tokens=["<pad>", "</s>", "<unk>"]))
    unigram.post_processor = processors.TemplateProcessing(single="$A </s>",
                                                           special_tokens=[("</s>", unigram.token_to_id("</s>"))])
    return T5TokenizerFast(tokenizer_object=unigram, eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
                           extra_ids=0)


def t5_encoder(vocab_size: int) -> Any:
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(T5Config(vocab_size=vocab_size, d_model=T5_HIDDEN, d_kv=8, d_ff=32, num_layers=1,
                                   num_heads=2, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)).eval()


def shifted_vae() -> Any:
    """SD3 / Flux VAEs decode x / scaling_factor + shift_factor."""
    return vae(scaling_factor=1.5, shift_factor=0.1)


def pixart(directory: Path, scheduler: Any, pipeline: str = "PixArtSigmaPipeline", sample_size: int = 8,
           patch_size: int = 2) -> Path:
    """A PixArt-alpha or -sigma pipeline: PixArtTransformer2DModel with learned sigma and T5 cross-attention
    (``sample_size`` 128 is PixArt-alpha 1024's, which takes the image size as micro-conditions)."""
    import diffusers

    torch.manual_seed(0)
    # 3 heads: the micro-condition embedding takes a third of the width each for resolution and aspect ratio
    transformer = diffusers.PixArtTransformer2DModel(
        sample_size=sample_size, patch_size=patch_size, in_channels=4, out_channels=8, num_layers=2,
        num_attention_heads=3, attention_head_dim=8, cross_attention_dim=24, caption_channels=T5_HIDDEN,
        norm_elementwise_affine=False, norm_eps=1e-6).eval()
    t5 = t5_tokenizer()
    getattr(diffusers, pipeline)(transformer=transformer, vae=vae(), scheduler=scheduler,
                                 text_encoder=t5_encoder(len(t5)), tokenizer=t5).save_pretrained(directory)
    return directory


def stable_diffusion_3(directory: Path, scheduler: Any) -> Path:
    """An SD3 pipeline: SD3Transformer2DModel, CLIP-L and CLIP-G with projections (pooled), T5."""
    from diffusers import SD3Transformer2DModel, StableDiffusion3Pipeline
    from transformers import CLIPTextModelWithProjection

    torch.manual_seed(0)
    clip, t5 = clip_tokenizer(), t5_tokenizer()
    encoders = [CLIPTextModelWithProjection(clip_text_config(len(clip), projection_dim=HIDDEN)).eval()
                for _ in range(2)]
    transformer = SD3Transformer2DModel(sample_size=8, patch_size=2, in_channels=4, out_channels=4, num_layers=1,
                                        attention_head_dim=8, num_attention_heads=2, caption_projection_dim=16,
                                        joint_attention_dim=T5_HIDDEN, pooled_projection_dim=2 * HIDDEN,
                                        pos_embed_max_size=8).eval()
    StableDiffusion3Pipeline(transformer=transformer, scheduler=scheduler, vae=shifted_vae(),
                             text_encoder=encoders[0], tokenizer=clip, text_encoder_2=encoders[1], tokenizer_2=clip,
                             text_encoder_3=t5_encoder(len(t5)), tokenizer_3=t5).save_pretrained(directory)
    return directory


def flux(directory: Path, scheduler: Any) -> Path:
    """A Flux dev-style pipeline: FluxTransformer2DModel with a guidance embedding, CLIP (pooled) and T5."""
    from diffusers import FluxPipeline, FluxTransformer2DModel
    from transformers import CLIPTextModel

    torch.manual_seed(0)
    clip, t5 = clip_tokenizer(), t5_tokenizer()
    transformer = FluxTransformer2DModel(patch_size=1, in_channels=16, num_layers=1, num_single_layers=1,
                                         attention_head_dim=8, num_attention_heads=2, joint_attention_dim=T5_HIDDEN,
                                         pooled_projection_dim=HIDDEN, guidance_embeds=True,
                                         axes_dims_rope=[2, 2, 4]).eval()
    FluxPipeline(transformer=transformer, scheduler=scheduler, vae=shifted_vae(),
                 text_encoder=CLIPTextModel(clip_text_config(len(clip))).eval(), tokenizer=clip,
                 text_encoder_2=t5_encoder(len(t5)), tokenizer_2=t5).save_pretrained(directory)
    return directory


def aura_flow(directory: Path, scheduler: Any) -> Path:
    """An AuraFlow pipeline: AuraFlowTransformer2DModel, a UMT5 encoder; a VAE of scale factor 8, so the pipeline's
    default 1024 pixels are 128 latents a side (16-latent patches: 64 tokens)."""
    from diffusers import AuraFlowPipeline, AuraFlowTransformer2DModel
    from transformers import UMT5Config, UMT5EncoderModel

    torch.manual_seed(0)
    transformer = AuraFlowTransformer2DModel(sample_size=128, patch_size=16, in_channels=4, out_channels=4,
                                             num_mmdit_layers=1, num_single_dit_layers=1, attention_head_dim=8,
                                             num_attention_heads=2, joint_attention_dim=T5_HIDDEN,
                                             caption_projection_dim=16, pos_embed_max_size=64).eval()
    t5 = t5_tokenizer()
    encoder = UMT5EncoderModel(UMT5Config(vocab_size=len(t5), d_model=T5_HIDDEN, d_kv=8, d_ff=32, num_layers=1,
                                          num_heads=2, pad_token_id=0, eos_token_id=1,
                                          decoder_start_token_id=0)).eval()
    eight = vae(block_out_channels=[8] * 4, down_block_types=["DownEncoderBlock2D"] * 4,
                up_block_types=["UpDecoderBlock2D"] * 4)
    AuraFlowPipeline(tokenizer=t5, text_encoder=encoder, vae=eight, transformer=transformer,
                     scheduler=scheduler).save_pretrained(directory)
    return directory


def trained(tokenizer: Any, trainer: Any, template: str, marks: tuple[str, ...]) -> Any:
    """``tokenizer`` trained on CORPUS with ``trainer``, its single-sequence ``template`` marking with ``marks``."""
    from tokenizers import processors

    tokenizer.train_from_iterator(CORPUS, trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=template, special_tokens=[(mark, tokenizer.token_to_id(mark)) for mark in marks])
    return tokenizer


def gemma_tokenizer() -> Any:
    """A Gemma tokenizer: a byte-pair vocabulary trained here (``<bos>`` prepended, pad id 0)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import GemmaTokenizerFast

    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.Whitespace()
    bpe = trained(bpe, trainers.BpeTrainer(vocab_size=80, special_tokens=["<pad>", "<eos>", "<bos>", "<unk>"]),
                  "<bos> $A", ("<bos>",))
    return GemmaTokenizerFast(tokenizer_object=bpe, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
                              unk_token="<unk>")


def sana(directory: Path, scheduler: Any) -> Path:
    """A Sana pipeline: SanaTransformer2DModel with learned sigma, a Gemma 2 encoder, a DC-AE of scale factor 2."""
    from diffusers import AutoencoderDC, SanaPipeline, SanaTransformer2DModel
    from transformers import Gemma2Config, Gemma2Model

    torch.manual_seed(0)
    transformer = SanaTransformer2DModel(sample_size=16, patch_size=1, in_channels=4, out_channels=8, num_layers=1,
                                         num_attention_heads=2, attention_head_dim=4, num_cross_attention_heads=2,
                                         cross_attention_head_dim=4, cross_attention_dim=8,
                                         caption_channels=HIDDEN).eval()
    autoencoder = AutoencoderDC(in_channels=3, latent_channels=4, attention_head_dim=2,
                                encoder_block_types=("ResBlock", "EfficientViTBlock"),
                                decoder_block_types=("ResBlock", "EfficientViTBlock"),
                                encoder_block_out_channels=(8, 8), decoder_block_out_channels=(8, 8),
                                encoder_qkv_multiscales=((), (5,)), decoder_qkv_multiscales=((), (5,)),
                                encoder_layers_per_block=(1, 1), decoder_layers_per_block=(1, 1),
                                downsample_block_type="conv", upsample_block_type="interpolate",
                                decoder_norm_types="rms_norm", decoder_act_fns="silu", scaling_factor=0.41407).eval()
    tokenizer = gemma_tokenizer()
    encoder = Gemma2Model(Gemma2Config(vocab_size=len(tokenizer), hidden_size=HIDDEN, intermediate_size=32,
                                       num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1,
                                       head_dim=8, pad_token_id=0, bos_token_id=2, eos_token_id=1)).eval()
    SanaPipeline(tokenizer=tokenizer, text_encoder=encoder, vae=autoencoder, transformer=transformer,
                 scheduler=scheduler).save_pretrained(directory)
    return directory


def bert_tokenizer() -> Any:
    """A BERT tokenizer: a WordPiece vocabulary trained here ([CLS] ... [SEP], pad id 0)."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import BertTokenizerFast

    wordpiece = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    wordpiece.normalizer = normalizers.BertNormalizer()
    wordpiece.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    wordpiece = trained(wordpiece, trainers.WordPieceTrainer(vocab_size=80, special_tokens=[
        "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]), "[CLS] $A [SEP]", ("[CLS]", "[SEP]"))
    return BertTokenizerFast(tokenizer_object=wordpiece, unk_token="[UNK]", sep_token="[SEP]", pad_token="[PAD]",
                             cls_token="[CLS]", mask_token="[MASK]")


def hunyuan_dit(directory: Path, scheduler: Any) -> Path:
    """A Hunyuan-DiT pipeline: HunyuanDiT2DModel with learned sigma, a BERT and a T5 encoder; a VAE of scale factor
    8, which the pipeline's rotary grid assumes (64 pixels: 8 latents a side)."""
    from diffusers import HunyuanDiT2DModel, HunyuanDiTPipeline
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    transformer = HunyuanDiT2DModel(sample_size=8, patch_size=2, in_channels=4, num_layers=2, attention_head_dim=8,
                                    num_attention_heads=2, hidden_size=16, cross_attention_dim=HIDDEN,
                                    cross_attention_dim_t5=T5_HIDDEN, pooled_projection_dim=16).eval()
    bert = bert_tokenizer()
    encoder = BertModel(BertConfig(vocab_size=len(bert), hidden_size=HIDDEN, num_hidden_layers=1, num_attention_heads=2,
                                   intermediate_size=32, max_position_embeddings=128), add_pooling_layer=False).eval()
    t5 = t5_tokenizer()
    eight = vae(block_out_channels=[8] * 4, down_block_types=["DownEncoderBlock2D"] * 4,
                up_block_types=["UpDecoderBlock2D"] * 4)
    HunyuanDiTPipeline(vae=eight, text_encoder=encoder, tokenizer=bert, transformer=transformer, scheduler=scheduler,
                       safety_checker=None, feature_extractor=None, requires_safety_checker=False,
                       text_encoder_2=t5_encoder(len(t5)), tokenizer_2=t5).save_pretrained(directory)
    return directory


def deepfloyd_if(directory: Path, scheduler: Any) -> Path:
    """A DeepFloyd IF stage-I pipeline: a pixel-space UNet with IF's text addition embedding (T5 pooled into the time
    embedding, projected for cross-attention) and a learned-variance half (6 output channels)."""
    from diffusers import IFPipeline

    torch.manual_seed(0)
    t5 = t5_tokenizer()
    pixel_unet = unet(in_channels=3, out_channels=6, encoder_hid_dim=T5_HIDDEN, addition_embed_type="text",
                      addition_embed_type_num_heads=2)
    IFPipeline(tokenizer=t5, text_encoder=t5_encoder(len(t5)), unet=pixel_unet, scheduler=scheduler,
               safety_checker=None, feature_extractor=None, watermarker=None,
               requires_safety_checker=False).save_pretrained(directory)
    return directory


def chroma(directory: Path, scheduler: Any) -> Path:
    """A Chroma pipeline: ChromaTransformer2DModel (Flux's packing, an approximator for its modulations) and T5."""
    from diffusers import ChromaPipeline, ChromaTransformer2DModel

    torch.manual_seed(0)
    t5 = t5_tokenizer()
    transformer = ChromaTransformer2DModel(patch_size=1, in_channels=16, num_layers=1, num_single_layers=1,
                                           attention_head_dim=8, num_attention_heads=2, joint_attention_dim=T5_HIDDEN,
                                           axes_dims_rope=(2, 2, 4), approximator_num_channels=8,
                                           approximator_hidden_dim=16, approximator_layers=1).eval()
    ChromaPipeline(transformer=transformer, scheduler=scheduler, vae=shifted_vae(), text_encoder=t5_encoder(len(t5)),
                   tokenizer=t5).save_pretrained(directory)
    return directory


def cogview3(directory: Path, scheduler: Any) -> Path:
    """A CogView3-Plus pipeline: CogView3PlusTransformer2DModel (size and crop micro-conditions) and T5."""
    from diffusers import CogView3PlusPipeline, CogView3PlusTransformer2DModel

    torch.manual_seed(0)
    t5 = t5_tokenizer()
    transformer = CogView3PlusTransformer2DModel(patch_size=2, in_channels=4, num_layers=1, attention_head_dim=4,
                                                 num_attention_heads=2, out_channels=4, text_embed_dim=T5_HIDDEN,
                                                 time_embed_dim=8, condition_dim=2, pos_embed_max_size=8,
                                                 sample_size=8).eval()
    CogView3PlusPipeline(tokenizer=t5, text_encoder=t5_encoder(len(t5)), vae=vae(), transformer=transformer,
                         scheduler=scheduler).save_pretrained(directory)
    return directory
