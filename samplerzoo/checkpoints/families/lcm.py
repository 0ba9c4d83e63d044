"""Latent Consistency Models: a Stable Diffusion UNet distilled with guidance, which embeds the guidance scale w as
a time condition (``time_cond_proj_dim``) instead of taking two forwards (Luo et al. 2023, LCM, Sec. 4.2; diffusers'
LatentConsistencyModelPipeline)."""

from __future__ import annotations

from pathlib import Path

import torch

from ...adapters import NetworkDenoiser
from .family import Family
from .sd import Prompts, unet_pipeline

DEFAULT_DISTILLED_GUIDANCE = 8.5
"""LatentConsistencyModelPipeline's default ``guidance_scale``, the scale the UNet embeds as w = scale - 1."""


class LCMPrompts(Prompts):
    """The pipeline's ``encode_prompt`` (as Stable Diffusion's) and its guidance-scale embedding of w = scale - 1
    (diffusers' Imagen form of the scale), the same in both halves of any classifier-free guidance on top."""

    def distilled(self, samples: int, scale: float | None) -> dict[str, torch.Tensor]:
        value = DEFAULT_DISTILLED_GUIDANCE if scale is None else scale
        w = torch.full((samples,), float(value) - 1)
        embedding = self.pipe.get_guidance_scale_embedding(w, embedding_dim=self.pipe.unet.config.time_cond_proj_dim)
        return {"timestep_cond": embedding.to(self.pipe.device)}


def build(directory: Path) -> NetworkDenoiser:
    from diffusers import LatentConsistencyModelPipeline

    return unet_pipeline(LatentConsistencyModelPipeline, LCMPrompts, directory)


FAMILY = Family("lcm", ("LatentConsistencyModelPipeline",), ("unet", "vae", "text_encoder", "tokenizer", "scheduler"),
                build, "Latent Consistency Models: a Stable Diffusion UNet with the guidance scale embedded")
