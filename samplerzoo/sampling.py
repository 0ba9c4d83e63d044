"""Drive a sampler by an NFE budget: schedule, per-sample seeded noise, counted network evaluations."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .denoiser import CountingDenoiser, Denoiser
from .errors import SamplerzooError
from .noise import SeededNoise
from .plugins import get_sampler, get_schedule


@dataclass(frozen=True)
class Generation:
    samples: Tensor
    sigmas: Tensor
    steps: int
    declared_nfe: int | None
    counted_nfe: int


def generate(model: Denoiser, sampler: str, nfe: int, seeds: Sequence[int], sample_shape: Sequence[int], *,
             schedule: str = "karras", schedule_options: dict[str, Any] | None = None,
             device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
             **options: Any) -> Generation:
    """Sample ``len(seeds)`` images spending exactly ``nfe`` denoiser calls each (counted, and checked)."""
    spec = get_sampler(sampler)
    steps = spec.steps_for_nfe(nfe, **options)
    sigmas = get_schedule(schedule)(steps, model, **(schedule_options or {}))
    noise = SeededNoise(seeds, sample_shape, device=device, dtype=dtype)
    x = noise.randn() * float(sigmas[0])
    counter = CountingDenoiser(model)
    with torch.no_grad():
        samples = spec.fn(counter, x, sigmas, noise=noise, **options)
    declared = spec.nfe(sigmas, **options)
    if counter.calls != declared:
        raise SamplerzooError(f"sampler {spec.name!r} declared {declared} evaluations but made {counter.calls}")
    return Generation(samples, sigmas, steps, declared, counter.calls)
