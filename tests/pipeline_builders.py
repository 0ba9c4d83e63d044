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


def dit(directory: Path, scheduler: Any) -> Path:
    """A DiT pipeline with 1000 classes (DiTPipeline's null class is label 1000) and learned sigma."""
    from diffusers import DiTPipeline, DiTTransformer2DModel

    torch.manual_seed(0)
    transformer = DiTTransformer2DModel(sample_size=8, patch_size=2, in_channels=4, out_channels=8, num_layers=2,
                                        num_attention_heads=2, attention_head_dim=8, num_embeds_ada_norm=1000).eval()
    DiTPipeline(transformer=transformer, vae=vae(), scheduler=scheduler).save_pretrained(directory)
    return directory
