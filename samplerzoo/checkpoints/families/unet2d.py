"""Pixel-space UNet2DModel pipelines (DDPM, DDIM, PNDM; consistency models): no decoder, optional class labels."""

from __future__ import annotations

from pathlib import Path

from ...denoiser import Checkpoint
from ..diffusers_format import load_unet_denoiser
from .family import Family


def build(directory: Path) -> Checkpoint:
    return load_unet_denoiser(directory / "unet", directory / "scheduler" / "scheduler_config.json")


FAMILY = Family("unet2d", ("DDPMPipeline", "DDIMPipeline", "PNDMPipeline", "ConsistencyModelPipeline"),
                ("unet", "scheduler"), build, "pixel-space UNet2DModel, unconditional or class-conditional")
