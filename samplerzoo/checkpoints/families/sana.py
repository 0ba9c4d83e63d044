"""Sana: a SanaTransformer2DModel (linear-attention DiT) predicting the rectified-flow velocity on the latents of a
deep-compression autoencoder (DC-AE), a Gemma 2 text encoder prompted with Sana's complex human instruction (Xie et
al. 2025, SANA; diffusers' SanaPipeline)."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from ...adapters import NetworkDenoiser
from .family import Family
from .pipeline import VAEDecoder, flow_schedule, from_pretrained, latent_shape
from .sd import Prompts

MAX_SEQUENCE_LENGTH = 300
"""Text tokens the pipeline keeps of a prompt (its ``max_sequence_length`` default)."""


class SanaNetwork(nn.Module):
    """A SanaTransformer2DModel as ``net(x_in, c_noise, encoder_hidden_states, encoder_attention_mask)``: its
    timestep is diffusers' 1000 t (the flow schedule's c_noise) times the config's ``timestep_scale``; with 2C
    output channels the variance half is dropped, as the pipeline does."""

    def __init__(self, transformer: Any) -> None:
        super().__init__()
        self.transformer: Any = transformer
        self.channels = int(transformer.config.in_channels)
        self.timestep_scale = float(transformer.config.timestep_scale)

    def forward(self, x: Tensor, c_noise: Tensor, encoder_hidden_states: Tensor, encoder_attention_mask: Tensor
                ) -> Tensor:
        out = self.transformer(x, encoder_hidden_states=encoder_hidden_states,
                               encoder_attention_mask=encoder_attention_mask, timestep=c_noise * self.timestep_scale,
                               return_dict=False)[0]
        return out[:, : self.channels]  # the whole output, or its epsilon half of 2C


class SanaPrompts(Prompts):
    """The pipeline's ``encode_prompt`` with its defaults: Gemma 2's hidden states and attention mask of the prompt
    behind the pipeline's complex human instruction (its first token and last 299 kept), negative prompts ("" by
    default) without it."""

    def __init__(self, pipe: Any) -> None:
        super().__init__(pipe, [pipe.text_encoder])
        defaults = inspect.signature(type(pipe).__call__).parameters
        self.instruction: list[str] = list(defaults["complex_human_instruction"].default)

    def encode(self, prompts: list[str], negatives: list[str] | None, cfg: bool
               ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        embeds, mask, negative_embeds, negative_mask = self.pipe.encode_prompt(
            prompts, cfg, negative_prompt="" if negatives is None else negatives, device=self.pipe.device,
            max_sequence_length=MAX_SEQUENCE_LENGTH, complex_human_instruction=self.instruction)
        return ({"encoder_hidden_states": embeds, "encoder_attention_mask": mask},
                {"encoder_hidden_states": negative_embeds, "encoder_attention_mask": negative_mask})


def build(directory: Path) -> NetworkDenoiser:
    from diffusers import SanaPipeline

    pipe = from_pretrained(SanaPipeline, directory, text=True)
    schedule, prediction = flow_schedule(directory, "SanaPipeline")
    # The pipeline's default size, binned to the transformer's resolution, is sample_size latents a side.
    return NetworkDenoiser(SanaNetwork(pipe.transformer), prediction, schedule,
                           sample_shape=latent_shape(pipe.transformer.config), decoder=VAEDecoder(pipe.vae),
                           conditioner=SanaPrompts(pipe))


FAMILY = Family("sana", ("SanaPipeline",), ("transformer", "vae", "text_encoder", "tokenizer", "scheduler"), build,
                "Sana: latent linear-attention DiT, rectified flow, DC-AE autoencoder, a Gemma 2 text encoder")
