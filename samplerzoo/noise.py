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


class BrownianTreeNoise:
    """Increments of one Brownian path per sample seed, W(t_next) - W(t) / sqrt|t_next - t| with t = sigma.

    The SDE samplers ask for noise over overlapping intervals (dpmpp_sde: (sigma, sigma_s) and then
    (sigma, sigma_next)); a Brownian path makes those draws consistent, and makes a sample converge as the
    steps are refined. Each sample has its own ``torchsde.BrownianTree`` (entropy = its seed) over
    [sigma_min, sigma_max], so a sample depends only on its seed, not on the batch (the per-sample trees of
    k-diffusion's ``BrownianTreeNoiseSampler(seed=[...])``).
    """

    def __init__(self, seeds: Sequence[int], sample_shape: Sequence[int], sigma_min: float, sigma_max: float, *,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> None:
        import torchsde

        w0 = torch.zeros(tuple(sample_shape), device=device, dtype=dtype)
        t0, t1 = torch.as_tensor(float(sigma_min)), torch.as_tensor(float(sigma_max))
        self.trees = [torchsde.BrownianTree(t0, w0, t1, entropy=int(seed)) for seed in seeds]

    def __call__(self, sigma: Tensor, sigma_next: Tensor) -> Tensor:
        low, high = sorted((torch.as_tensor(sigma), torch.as_tensor(sigma_next)), key=float)
        sign = 1.0 if float(sigma) <= float(sigma_next) else -1.0
        return torch.stack([tree(low, high) for tree in self.trees]) * (sign / (high - low).sqrt())
