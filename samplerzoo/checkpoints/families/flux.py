"""Flux: a FluxTransformer2DModel predicting the rectified-flow velocity on packed latents (2x2 patches as tokens),
a CLIP (pooled) and a T5 text encoder, a FlowMatch scheduler with a resolution-dependent shift, and for
guidance-distilled models (Flux dev) an embedded guidance scale: its own knob, ``distilled_guidance``, not CFG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ...adapters import NetworkDenoiser
from ...noise_schedules import NoiseSchedule
from .family import Family
from .pipeline import VAEDecoder, flow_schedule, from_pretrained
from .sd import Prompts

DEFAULT_DISTILLED_GUIDANCE = 3.5
"""FluxPipeline's default ``guidance_scale``, the value a guidance-distilled transformer embeds."""


class FluxNetwork(nn.Module):
    """A FluxTransformer2DModel on latents (B, C, H, W), as the sampler sees them: packed into (H/2)(W/2) tokens of
    4C channels with their position ids (text ids are zeros), the velocity unpacked again, with FluxPipeline's own
    packing functions. Its timestep is t = c_noise / 1000 (the transformer scales it by 1000 itself)."""

    def __init__(self, transformer: Any, pipeline_class: Any) -> None:
        super().__init__()
        self.transformer: Any = transformer
        self.pipeline_class = pipeline_class

    def forward(self, x: Tensor, c_noise: Tensor, encoder_hidden_states: Tensor, **cond: Tensor) -> Tensor:
        b, c, h, w = x.shape
        flux = self.pipeline_class
        image_ids = flux._prepare_latent_image_ids(b, h // 2, w // 2, x.device, x.dtype)
        text_ids = torch.zeros(encoder_hidden_states.shape[1], 3, device=x.device, dtype=x.dtype)
        velocity = self.transformer(hidden_states=flux._pack_latents(x, b, c, h, w), timestep=c_noise / 1000,
                                    encoder_hidden_states=encoder_hidden_states, txt_ids=text_ids,
                                    img_ids=image_ids, return_dict=False, **self.inputs(cond, (h // 2) * (w // 2)))[0]
        return flux._unpack_latents(velocity, h, w, 1)

    def inputs(self, cond: dict[str, Tensor], image_tokens: int) -> dict[str, Tensor | None]:
        """The transformer's other inputs: Flux's pooled CLIP projection and, guidance-distilled, its scale."""
        return {"pooled_projections": cond["pooled_projections"], "guidance": cond.get("guidance")}


class FluxPrompts(Prompts):
    """Flux's ``encode_prompt`` (T5 hidden states, CLIP's pooled output); classifier-free guidance encodes the
    negative prompts ("" by default) the same way, as FluxPipeline's ``true_cfg_scale`` does. A guidance-distilled
    transformer gets its embedded scale, the same in both halves."""

    def encode(self, prompts: list[str], negatives: list[str] | None, cfg: bool
               ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        pipe = self.pipe
        embeds, pooled, _ = pipe.encode_prompt(prompts, device=pipe.device)
        cond = {"encoder_hidden_states": embeds, "pooled_projections": pooled}
        if not cfg:
            return cond, cond
        negative_embeds, negative_pooled, _ = pipe.encode_prompt(negatives or [""] * len(prompts), device=pipe.device)
        return cond, {"encoder_hidden_states": negative_embeds, "pooled_projections": negative_pooled}

    def distilled(self, samples: int, scale: float | None) -> dict[str, Tensor]:
        if not self.pipe.transformer.config.guidance_embeds:
            return super().distilled(samples, scale)
        value = DEFAULT_DISTILLED_GUIDANCE if scale is None else scale
        return {"guidance": torch.full((samples,), float(value), device=self.pipe.device)}


def packed_layout(pipe: Any, directory: Path, pipeline: str) -> tuple[NoiseSchedule, str, tuple[int, int, int]]:
    """The flow schedule and sample shape of a Flux-style pipeline at its default size: default_sample_size *
    vae_scale_factor pixels, 2 * (size // (2 vae_scale_factor)) latents a side, of in_channels / 4 channels (4
    channels a 2x2 token); the scheduler's dynamic shift reads the packed length."""
    side = 2 * (pipe.default_sample_size // 2)
    schedule, prediction = flow_schedule(directory, pipeline, (side // 2) ** 2)
    return schedule, prediction, (int(pipe.transformer.config.in_channels) // 4, side, side)


def build(directory: Path) -> NetworkDenoiser:
    from diffusers import FluxPipeline

    pipe = from_pretrained(FluxPipeline, directory, text=True)
    schedule, prediction, shape = packed_layout(pipe, directory, "FluxPipeline")
    return NetworkDenoiser(FluxNetwork(pipe.transformer, FluxPipeline), prediction, schedule, sample_shape=shape,
                           decoder=VAEDecoder(pipe.vae),
                           conditioner=FluxPrompts(pipe, [pipe.text_encoder, pipe.text_encoder_2]))


FAMILY = Family("flux", ("FluxPipeline",),
                ("transformer", "vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "scheduler"),
                build, "Flux: packed-latent transformer, rectified flow, CLIP and T5 text encoders, distilled guidance")
