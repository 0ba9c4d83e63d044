"""PixArt-alpha / PixArt-sigma: a PixArtTransformer2DModel (a DiT with cross-attention to T5, learned sigma) on VAE
latents, predicting epsilon on a discrete VP schedule (Chen et al. 2024, PixArt-alpha; PixArt-Sigma)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor, nn

from ...adapters import NetworkDenoiser
from ..diffusers_format import read_json
from .family import Family
from .pipeline import VAEDecoder, captions_cleanable, from_pretrained, latent_shape, scheduler_schedule
from .sd import Prompts

MAX_SEQUENCE_LENGTH = {"PixArtAlphaPipeline": 120, "PixArtSigmaPipeline": 300}
"""T5 tokens a prompt is padded or cut to: each pipeline's ``__call__`` default (PixArt-alpha, Sec. 3.1)."""


class PixArtNetwork(nn.Module):
    """A PixArtTransformer2DModel as ``net(x_in, c_noise, encoder_hidden_states, encoder_attention_mask)``; with
    2C output channels the variance half is dropped, as the pipelines do. ``resolution`` (height, width in pixels)
    is PixArt-alpha 1024's micro-condition (with the aspect ratio), the same for every sample of the fixed size."""

    def __init__(self, transformer: Any, resolution: tuple[int, int] | None) -> None:
        super().__init__()
        self.transformer: Any = transformer
        self.channels = int(transformer.config.in_channels)
        self.resolution = resolution

    def micro_conditions(self, batch: int, like: Tensor) -> dict[str, Tensor | None]:
        if self.resolution is None:
            return {"resolution": None, "aspect_ratio": None}
        height, width = self.resolution
        return {"resolution": like.new_tensor([height, width]).repeat(batch, 1),
                "aspect_ratio": like.new_tensor([height / width]).repeat(batch, 1)}

    def forward(self, x: Tensor, c_noise: Tensor, encoder_hidden_states: Tensor, encoder_attention_mask: Tensor
                ) -> Tensor:
        out = self.transformer(x, encoder_hidden_states=encoder_hidden_states,
                               encoder_attention_mask=encoder_attention_mask, timestep=c_noise,
                               added_cond_kwargs=self.micro_conditions(len(x), encoder_hidden_states),
                               return_dict=False)[0]
        return out[:, : self.channels]  # the whole output, or its epsilon half of 2C


class PixArtPrompts(Prompts):
    """The pipelines' ``encode_prompt``: T5 hidden states with their attention mask, prompts lower-cased and, where
    bs4 and ftfy are installed, cleaned, as the pipelines' default ``clean_caption=True`` does (it falls back to
    lower-casing, with a warning, without them); negative prompts default to "", as there."""

    def __init__(self, pipe: Any, max_sequence_length: int) -> None:
        super().__init__(pipe, [pipe.text_encoder])
        self.max_sequence_length = max_sequence_length
        self.clean_caption = captions_cleanable()

    def encode(self, prompts: list[str], negatives: list[str] | None, cfg: bool
               ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        embeds, mask, negative_embeds, negative_mask = self.pipe.encode_prompt(
            prompts, cfg, negative_prompt="" if negatives is None else negatives, device=self.pipe.device,
            clean_caption=self.clean_caption, max_sequence_length=self.max_sequence_length)
        return ({"encoder_hidden_states": embeds, "encoder_attention_mask": mask},
                {"encoder_hidden_states": negative_embeds, "encoder_attention_mask": negative_mask})


def build(directory: Path) -> NetworkDenoiser:
    import diffusers

    name = str(read_json(directory / "model_index.json")["_class_name"])
    pipe = from_pretrained(getattr(diffusers, name), directory, text=True)
    config = pipe.transformer.config
    shape = latent_shape(config)
    # PixArt-alpha conditions its 1024-pixel model (sample_size 128) on the image size; PixArt-sigma never does.
    micro = name == "PixArtAlphaPipeline" and config.sample_size == 128
    schedule, prediction = scheduler_schedule(directory)
    scale = pipe.vae_scale_factor
    network = PixArtNetwork(pipe.transformer, (shape[1] * scale, shape[2] * scale) if micro else None)
    return NetworkDenoiser(network, prediction, schedule, sample_shape=shape, decoder=VAEDecoder(pipe.vae),
                           conditioner=PixArtPrompts(pipe, MAX_SEQUENCE_LENGTH[name]))


FAMILY = Family("pixart", tuple(MAX_SEQUENCE_LENGTH),
                ("transformer", "vae", "text_encoder", "tokenizer", "scheduler"), build,
                "PixArt-alpha / PixArt-sigma: latent DiT with T5 cross-attention, learned sigma, epsilon")
