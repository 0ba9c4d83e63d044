"""Stable Diffusion 1.x / 2.x: UNet2DConditionModel on VAE latents, a CLIP text encoder, epsilon or v."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ...adapters import NetworkDenoiser
from ...denoiser import Denoiser
from ...guidance import bind, guided, no_distilled_guidance, prompts_for
from ...guidance_rules import GuidanceMethod
from .family import Family
from .pipeline import VAEDecoder, from_pretrained, latent_shape, scheduler_schedule


class ConditionalUNet(nn.Module):
    """A diffusers UNet2DConditionModel as ``net(x_in, c_noise, encoder_hidden_states, timestep_cond, **added_cond)``
    (``timestep_cond``: an LCM's guidance-scale embedding; ``added_cond``: SDXL's ``text_embeds`` and ``time_ids``);
    a learned-variance half (2C output channels for C input channels: DeepFloyd IF) is dropped."""

    def __init__(self, unet: Any) -> None:
        super().__init__()
        self.unet: Any = unet
        self.channels = int(unet.config.in_channels)

    def forward(self, x: Tensor, c_noise: Tensor, encoder_hidden_states: Tensor, timestep_cond: Tensor | None = None,
                **added_cond: Tensor) -> Tensor:
        return self.unet(x, c_noise, encoder_hidden_states=encoder_hidden_states,
                         timestep_cond=None if timestep_cond is None else timestep_cond.to(x.dtype),
                         added_cond_kwargs=added_cond or None).sample[:, : self.channels]


class Prompts(nn.Module):
    """Conditioning through the pipeline's own ``encode_prompt`` (negative prompts default to "", as there).
    A module, so moving the checkpoint moves the text encoders."""

    def __init__(self, pipe: Any, encoders: Sequence[nn.Module]) -> None:
        super().__init__()
        self.pipe = pipe
        self.encoders = nn.ModuleList(encoders)

    def forward(self, model: Denoiser, samples: Sequence[int], *, labels: Sequence[int] | None = None,
                prompts: Sequence[str] | None = None, negative_prompts: Sequence[str] | None = None,
                guidance_scale: float | None = None, distilled_guidance: float | None = None,
                guidance: GuidanceMethod | None = None) -> Denoiser:
        batch, negatives = prompts_for(samples, labels, prompts, negative_prompts, guidance_scale, guidance)
        extra = self.distilled(len(batch), distilled_guidance)  # checked before the text encoders run
        with torch.no_grad():
            cond, null = self.encode(batch, negatives, guided(guidance_scale))
        return bind(model, {**cond, **extra}, {**null, **extra}, guidance_scale, guidance)

    def distilled(self, samples: int, scale: float | None) -> dict[str, Tensor]:
        """The cond tensors of the scale a guidance-distilled network embeds: none for a model without one."""
        no_distilled_guidance(scale, "text-conditioned without an embedded guidance scale")
        return {}

    def encode(self, prompts: list[str], negatives: list[str] | None, cfg: bool
               ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        embeds, negative_embeds = self.pipe.encode_prompt(prompts, self.pipe.device, 1, cfg, negatives)
        return {"encoder_hidden_states": embeds}, {"encoder_hidden_states": negative_embeds}


def unet_pipeline(pipeline_class: Any, prompts: type[Prompts], directory: Path) -> NetworkDenoiser:
    """A pipeline of Stable Diffusion's components (UNet, VAE, one CLIP text encoder; no safety checker),
    conditioned by ``prompts``."""
    pipe = from_pretrained(pipeline_class, directory, text=True, safety_checker=None, feature_extractor=None,
                           requires_safety_checker=False)
    schedule, prediction = scheduler_schedule(directory)
    return NetworkDenoiser(ConditionalUNet(pipe.unet), prediction, schedule,
                           sample_shape=latent_shape(pipe.unet.config),
                           decoder=VAEDecoder(pipe.vae), conditioner=prompts(pipe, [pipe.text_encoder]))


def build(directory: Path) -> NetworkDenoiser:
    from diffusers import StableDiffusionPipeline

    return unet_pipeline(StableDiffusionPipeline, Prompts, directory)


FAMILY = Family("sd", ("StableDiffusionPipeline",), ("unet", "vae", "text_encoder", "tokenizer", "scheduler"), build,
                "Stable Diffusion 1.x/2.x: latent UNet, CLIP text encoder, epsilon or v")
