"""DiT: a class-conditional DiTTransformer2DModel on VAE latents, with a learned-variance half to drop."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor, nn

from ...adapters import NetworkDenoiser
from .family import Family
from .pipeline import VAEDecoder, from_pretrained, latent_shape, scheduler_schedule


class DiTNetwork(nn.Module):
    """A DiTTransformer2DModel as ``net(x_in, c_noise, class_labels)``; with 2C output channels (learned sigma,
    Nichol & Dhariwal 2021) the variance half is dropped, as DiTPipeline does."""

    def __init__(self, transformer: Any) -> None:
        super().__init__()
        self.transformer: Any = transformer
        self.channels = int(transformer.config.in_channels)

    def forward(self, x: Tensor, c_noise: Tensor, class_labels: Tensor) -> Tensor:
        return self.transformer(x, timestep=c_noise, class_labels=class_labels).sample[:, : self.channels]


def build(directory: Path) -> NetworkDenoiser:
    from diffusers import DiTPipeline

    pipe = from_pretrained(DiTPipeline, directory)
    schedule, prediction = scheduler_schedule(directory)
    # diffusers' DiT embeds num_embeds_ada_norm classes plus one more, the label its dropout trains as "none".
    classes = int(pipe.transformer.config.num_embeds_ada_norm)
    return NetworkDenoiser(DiTNetwork(pipe.transformer), prediction, schedule,
                           sample_shape=latent_shape(pipe.transformer.config), num_classes=classes, null_label=classes,
                           decoder=VAEDecoder(pipe.vae))


FAMILY = Family("dit", ("DiTPipeline",), ("transformer", "vae", "scheduler"), build,
                "DiT: class-conditional latent transformer, learned sigma, classifier-free guidance")
