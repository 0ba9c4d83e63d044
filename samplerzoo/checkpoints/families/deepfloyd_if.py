"""DeepFloyd IF, stage I: a pixel-space UNet2DConditionModel conditioned on T5, predicting epsilon with a learned
variance half (DeepFloyd 2023, IF; diffusers' IFPipeline). The later super-resolution stages are other pipelines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor

from ...adapters import NetworkDenoiser
from .family import Family
from .pipeline import captions_cleanable, from_pretrained, latent_shape, scheduler_schedule
from .sd import ConditionalUNet, Prompts


class IFPrompts(Prompts):
    """The pipeline's ``encode_prompt`` (T5, 77 tokens; negative prompts default to ""), captions cleaned where
    bs4 and ftfy are installed, as its default ``clean_caption=True`` does (lower-cased without them)."""

    def __init__(self, pipe: Any) -> None:
        super().__init__(pipe, [pipe.text_encoder])
        self.clean_caption = captions_cleanable()

    def encode(self, prompts: list[str], negatives: list[str] | None, cfg: bool
               ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        embeds, negative_embeds = self.pipe.encode_prompt(prompts, cfg, device=self.pipe.device,
                                                          negative_prompt=negatives, clean_caption=self.clean_caption)
        return {"encoder_hidden_states": embeds}, {"encoder_hidden_states": negative_embeds}


def build(directory: Path) -> NetworkDenoiser:
    from diffusers import IFPipeline

    pipe = from_pretrained(IFPipeline, directory, text=True, safety_checker=None, feature_extractor=None,
                           watermarker=None, requires_safety_checker=False)
    schedule, prediction = scheduler_schedule(directory)
    return NetworkDenoiser(ConditionalUNet(pipe.unet), prediction, schedule,
                           sample_shape=latent_shape(pipe.unet.config), conditioner=IFPrompts(pipe))


FAMILY = Family("deepfloyd_if", ("IFPipeline",), ("unet", "text_encoder", "tokenizer", "scheduler"), build,
                "DeepFloyd IF stage I: pixel-space UNet, T5 text encoder, epsilon with learned variance")
