"""What the pipeline families share: quiet loading through diffusers, the scheduler's noise schedule, and
decoding latents with the pipeline's VAE."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ...errors import CheckpointError, first_line
from ...noise_schedules import NoiseSchedule
from ..diffusers_format import noise_schedule, read_json

DECODE_BATCH = 64
"""Latents decoded per VAE call: decoding is batched, so memory does not grow with the number of samples."""


@contextmanager
def quiet(*libraries: Any, bars: bool = False) -> Iterator[None]:
    """Silence the warnings (and unless ``bars``, the progress bars) of diffusers / transformers' logging
    modules for a while; their settings are restored after."""
    states = [(lib, lib.get_verbosity(), lib.is_progress_bar_enabled()) for lib in libraries]
    for lib, _, _ in states:
        lib.set_verbosity_error()
        if not bars:
            lib.disable_progress_bar()
    try:
        yield
    finally:
        for lib, verbosity, bars in states:
            lib.set_verbosity(verbosity)
            if bars:
                lib.enable_progress_bar()


def from_pretrained(pipeline_class: Any, directory: Path, text: bool = False, **components: Any) -> Any:
    """``pipeline_class.from_pretrained(directory)`` from local files only, one clear line if diffusers fails."""
    from diffusers.utils import logging as diffusers_logging

    libraries: list[Any] = [diffusers_logging]
    if text:
        from transformers.utils import logging as transformers_logging

        libraries.append(transformers_logging)
    try:
        with quiet(*libraries):
            pipe = pipeline_class.from_pretrained(directory, local_files_only=True, **components)
    except Exception as exc:  # diffusers and transformers raise assorted types for broken components
        raise CheckpointError(f"{directory}: diffusers could not load the {pipeline_class.__name__} "
                              f"({first_line(exc)})") from None
    pipe.set_progress_bar_config(disable=True)
    return pipe


def captions_cleanable() -> bool:
    """Whether diffusers' ``clean_caption=True`` cleans captions here (it needs bs4 and ftfy; without them the T5
    pipelines warn and only lower-case), so a conditioner can ask for exactly what the pipeline's default does."""
    from diffusers.utils import is_bs4_available, is_ftfy_available

    return bool(is_bs4_available() and is_ftfy_available())


def scheduler_schedule(directory: Path, image_seq_len: int | None = None) -> tuple[NoiseSchedule, str]:
    """The noise schedule and parameterization the pipeline's scheduler config describes (``image_seq_len``, the
    network's token count, sets a flow scheduler's dynamic shift)."""
    path = directory / "scheduler" / "scheduler_config.json"
    return noise_schedule(read_json(path), str(path), "log", image_seq_len)


def flow_schedule(directory: Path, pipeline: str, image_seq_len: int | None = None) -> tuple[NoiseSchedule, str]:
    """:func:`scheduler_schedule` for a rectified-flow pipeline: one line where its scheduler is not a flow one."""
    schedule, prediction = scheduler_schedule(directory, image_seq_len)
    if prediction != "flow":
        raise CheckpointError(f"{directory}: a {pipeline} needs a flow scheduler (FlowMatch*, or use_flow_sigmas), got "
                              f"prediction {prediction}")
    return schedule, prediction


def latent_shape(config: Any) -> tuple[int, int, int]:
    """(C, H, W) of a network's latents from its config (``in_channels``, square ``sample_size``)."""
    size = config.sample_size
    height, width = (size, size) if isinstance(size, int) else size
    return int(config.in_channels), int(height), int(width)


class VAEDecoder(nn.Module):
    """Latents to images with the pipeline's VAE, batched: it decodes z = x / scaling_factor + shift_factor
    (shift: SD3, Flux), or z = x * latents_std / scaling_factor + latents_mean where the VAE config has them
    (as diffusers' SDXL pipeline does), in the VAE's dtype."""

    def __init__(self, vae: Any, batch: int = DECODE_BATCH) -> None:
        super().__init__()
        self.vae, self.batch = vae, batch
        config = vae.config
        self.scaling = float(config.scaling_factor)
        self.shift = float(getattr(config, "shift_factor", None) or 0.0)
        mean, std = getattr(config, "latents_mean", None), getattr(config, "latents_std", None)
        self.mean = None if mean is None or std is None else torch.tensor(mean).reshape(1, -1, 1, 1)
        self.std = None if mean is None or std is None else torch.tensor(std).reshape(1, -1, 1, 1)

    def unscale(self, x: Tensor) -> Tensor:
        """The VAE's own latents z for the pipeline's scaled latents x."""
        if self.mean is None or self.std is None:
            return x / self.scaling + self.shift
        return x * self.std.to(x) / self.scaling + self.mean.to(x)

    @torch.no_grad()
    def forward(self, x: Tensor) -> Tensor:
        dtype = next(self.vae.parameters()).dtype
        images = [self.vae.decode(self.unscale(chunk).to(dtype)).sample for chunk in x.split(self.batch)]
        return torch.cat(images).to(x.dtype)
