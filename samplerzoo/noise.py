"""Noise sources. Samplers draw all randomness through one, so a sample depends on its own seed only."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import torch
from torch import Tensor


class NoiseSampler(Protocol):
    """``noise(sigma, sigma_next) -> Tensor`` shaped like the batch (k-diffusion's noise_sampler)."""

    def __call__(self, sigma: Tensor, sigma_next: Tensor) -> Tensor: ...


class SeededNoise:
    """One generator per sample seed, stacked into a batch (NVlabs/edm's StackedRandomGenerator).

    Sample ``i`` of the batch always draws from ``torch.Generator().manual_seed(seeds[i])``, so the
    same seed gives the same noise at any batch size or batch position.
    """

    def __init__(self, seeds: Sequence[int], sample_shape: Sequence[int], *, device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32) -> None:
        self.seeds = [int(s) for s in seeds]
        self.sample_shape = tuple(sample_shape)
        self.device, self.dtype = torch.device(device), dtype
        self.generators = [torch.Generator(self.device).manual_seed(s) for s in self.seeds]

    def randn(self) -> Tensor:
        """A standard normal batch of shape ``(len(seeds), *sample_shape)``."""
        return torch.stack([torch.randn(self.sample_shape, generator=g, device=self.device, dtype=self.dtype)
                            for g in self.generators])

    def __call__(self, sigma: Tensor | None = None, sigma_next: Tensor | None = None) -> Tensor:
        return self.randn()


def gaussian_noise_like(x: Tensor) -> NoiseSampler:
    """Fallback source for a sampler called without one: fresh ``randn_like`` draws (not reproducible)."""
    return lambda sigma, sigma_next: torch.randn_like(x)
