"""Hunyuan-DiT: a HunyuanDiT2DModel (DiT with long skips and 2-D rotary embeddings, learned sigma) on VAE latents,
conditioned on a bilingual CLIP-style BERT and an mT5 encoder, the image size and a style (Li et al. 2024,
Hunyuan-DiT; diffusers' HunyuanDiTPipeline)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ...adapters import NetworkDenoiser
from .family import Family
from .pipeline import VAEDecoder, from_pretrained, latent_shape, scheduler_schedule
from .sd import Prompts

ORIGINAL_SIZE = (1024, 1024)
"""The pipeline's default ``original_size`` micro-condition (with the target size and a (0, 0) crop)."""
SEQUENCE_LENGTHS = (77, 256)
"""Tokens of the BERT and the mT5 prompt encoders, as the pipeline encodes them."""


class HunyuanDiTNetwork(nn.Module):
    """A HunyuanDiT2DModel as ``net(x_in, c_noise, encoder_hidden_states, text_embedding_mask,
    encoder_hidden_states_t5, text_embedding_mask_t5)``, with the pipeline's fixed inputs for latents of this
    size: the rotary embedding of their token grid (the pipeline's 512-pixel base grid, its pixels / 8 / patch),
    the image-size micro-condition (original, target, crop) and style 0; the variance half is dropped."""

    def __init__(self, transformer: Any, vae_scale_factor: int) -> None:
        super().__init__()
        self.transformer: Any = transformer
        self.vae_scale_factor = vae_scale_factor
        self.rotary: dict[tuple[int, int, torch.device], Any] = {}  # per latent size and device: built once

    def rotary_embedding(self, height: int, width: int, device: torch.device) -> Any:
        """The pipeline's 2-D rotary embedding for an image of height x width pixels."""
        from diffusers.models.embeddings import get_2d_rotary_pos_embed
        from diffusers.pipelines.hunyuandit.pipeline_hunyuandit import get_resize_crop_region_for_grid

        key = (height, width, device)
        if key not in self.rotary:
            patch = self.transformer.config.patch_size
            grid = (height // 8 // patch, width // 8 // patch)
            crops = get_resize_crop_region_for_grid(grid, 512 // 8 // patch)
            self.rotary[key] = get_2d_rotary_pos_embed(self.transformer.inner_dim // self.transformer.num_heads,
                                                       crops, grid, device=device, output_type="pt")
        return self.rotary[key]

    def fixed_inputs(self, x: Tensor) -> dict[str, Any]:
        height, width = x.shape[2] * self.vae_scale_factor, x.shape[3] * self.vae_scale_factor
        rotary = self.rotary_embedding(height, width, x.device)
        meta = x.new_tensor([[*ORIGINAL_SIZE, height, width, 0, 0]]).repeat(len(x), 1)
        return {"image_rotary_emb": rotary, "image_meta_size": meta,
                "style": torch.zeros(len(x), dtype=torch.long, device=x.device)}

    def forward(self, x: Tensor, c_noise: Tensor, encoder_hidden_states: Tensor, text_embedding_mask: Tensor,
                encoder_hidden_states_t5: Tensor, text_embedding_mask_t5: Tensor) -> Tensor:
        out = self.transformer(x, c_noise.to(x.dtype), encoder_hidden_states=encoder_hidden_states,
                               text_embedding_mask=text_embedding_mask,
                               encoder_hidden_states_t5=encoder_hidden_states_t5,
                               text_embedding_mask_t5=text_embedding_mask_t5, return_dict=False,
                               **self.fixed_inputs(x))[0]
        return out.chunk(2, dim=1)[0]


class HunyuanDiTPrompts(Prompts):
    """The pipeline's ``encode_prompt`` once per text encoder (BERT, 77 tokens; mT5, 256), hidden states with their
    masks (negative prompts default to "", as there)."""

    def encode(self, prompts: list[str], negatives: list[str] | None, cfg: bool
               ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        cond: dict[str, Tensor] = {}
        null: dict[str, Tensor] = {}
        for index, (suffix, length) in enumerate(zip(("", "_t5"), SEQUENCE_LENGTHS, strict=True)):
            embeds, negative_embeds, mask, negative_mask = self.pipe.encode_prompt(
                prompts, device=self.pipe.device, dtype=self.pipe.transformer.dtype, do_classifier_free_guidance=cfg,
                negative_prompt=negatives, max_sequence_length=length, text_encoder_index=index)
            cond |= {f"encoder_hidden_states{suffix}": embeds, f"text_embedding_mask{suffix}": mask}
            null |= {f"encoder_hidden_states{suffix}": negative_embeds, f"text_embedding_mask{suffix}": negative_mask}
        return cond, null if cfg else cond


def build(directory: Path) -> NetworkDenoiser:
    from diffusers import HunyuanDiTPipeline

    pipe = from_pretrained(HunyuanDiTPipeline, directory, text=True, safety_checker=None, feature_extractor=None,
                           requires_safety_checker=False)
    schedule, prediction = scheduler_schedule(directory)
    return NetworkDenoiser(HunyuanDiTNetwork(pipe.transformer, pipe.vae_scale_factor), prediction, schedule,
                           sample_shape=latent_shape(pipe.transformer.config), decoder=VAEDecoder(pipe.vae),
                           conditioner=HunyuanDiTPrompts(pipe, [pipe.text_encoder, pipe.text_encoder_2]))


FAMILY = Family("hunyuandit", ("HunyuanDiTPipeline",),
                ("transformer", "vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "scheduler"),
                build, "Hunyuan-DiT: latent DiT, BERT and mT5 text encoders, size and style micro-conditions")
