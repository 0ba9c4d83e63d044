"""Stable Diffusion 3: an SD3Transformer2DModel predicting the rectified-flow velocity on VAE latents, three text
encoders (two CLIPs, pooled, and T5) and a FlowMatch scheduler (Esser et al. 2024)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor, nn

from ...adapters import NetworkDenoiser
from .family import Family
from .pipeline import VAEDecoder, from_pretrained, latent_shape, scheduler_schedule
from .sd import Prompts


class SD3Network(nn.Module):
    """An SD3Transformer2DModel as ``net(x_in, c_noise, encoder_hidden_states, pooled_projections)``; its timestep
    is diffusers' 1000 t, which is the flow schedule's c_noise."""

    def __init__(self, transformer: Any) -> None:
        super().__init__()
        self.transformer: Any = transformer

    def forward(self, x: Tensor, c_noise: Tensor, encoder_hidden_states: Tensor, pooled_projections: Tensor
                ) -> Tensor:
        return self.transformer(hidden_states=x, timestep=c_noise, encoder_hidden_states=encoder_hidden_states,
                                pooled_projections=pooled_projections, return_dict=False)[0]


class SD3Prompts(Prompts):
    """SD3's ``encode_prompt``: CLIP-L and CLIP-G hidden states joined with T5's, and both CLIPs' pooled outputs
    (negative prompts default to "", as in the pipeline)."""

    def encode(self, prompts: list[str], negatives: list[str] | None, cfg: bool
               ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        embeds, negative_embeds, pooled, negative_pooled = self.pipe.encode_prompt(
            prompts, None, None, device=self.pipe.device, num_images_per_prompt=1, do_classifier_free_guidance=cfg,
            negative_prompt=negatives)
        return ({"encoder_hidden_states": embeds, "pooled_projections": pooled},
                {"encoder_hidden_states": negative_embeds, "pooled_projections": negative_pooled})


def build(directory: Path) -> NetworkDenoiser:
    from diffusers import StableDiffusion3Pipeline

    pipe = from_pretrained(StableDiffusion3Pipeline, directory, text=True)
    config = pipe.transformer.config
    shape = latent_shape(config)
    schedule, prediction = scheduler_schedule(directory, (shape[1] // config.patch_size) * (shape[2] //
                                                                                            config.patch_size))
    encoders = [e for e in (pipe.text_encoder, pipe.text_encoder_2, pipe.text_encoder_3) if e is not None]
    return NetworkDenoiser(SD3Network(pipe.transformer), prediction, schedule, sample_shape=shape,
                           decoder=VAEDecoder(pipe.vae), conditioner=SD3Prompts(pipe, encoders))


FAMILY = Family("sd3", ("StableDiffusion3Pipeline",),
                ("transformer", "vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "scheduler"),
                build, "Stable Diffusion 3: latent transformer, rectified flow, two CLIP and a T5 text encoder")
