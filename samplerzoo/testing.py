"""Checks any sampler can be put through, on problems with exact answers (the conformance kit).

Every function returns a measurement; tests (ours, and plugin authors') assert on it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from .analytic import Gaussian
from .denoiser import CountingDenoiser
from .noise import SeededNoise
from .registry import SamplerSpec
from .schedules import SigmaRange, exponential, karras


def gaussian_problem(dim: int = 4, mean: float = 0.3, std: float = 0.5) -> Gaussian:
    """N(mean, std^2 I) in float64: its probability-flow ODE has a closed-form solution."""
    return Gaussian(torch.full((dim,), mean, dtype=torch.float64), std)


def global_error(spec: SamplerSpec, steps: int, problem: Gaussian | None = None, sigma_max: float = 10.0,
                 sigma_min: float = 0.05, batch: int = 8, **options: Any) -> float:
    """Max error at sigma_min against the exact ODE solution, on log-uniform steps from sigma_max."""
    problem = problem or gaussian_problem()
    sigmas = exponential(steps, SigmaRange(sigma_min, sigma_max))[:-1]
    x = SeededNoise(range(batch), problem.sample_shape, dtype=torch.float64).randn() * sigma_max
    result = spec.fn(problem, x, sigmas, **options)
    return float((result - problem.ode_solution(x, sigma_max, sigma_min)).abs().max())


def fitted_order(spec: SamplerSpec, steps: Sequence[int] = (8, 16, 32, 64), **options: Any) -> float:
    """Slope of -log(global error) against log(steps): the observed order of convergence."""
    logs = torch.tensor([[math.log(n), math.log(global_error(spec, n, **options))] for n in steps],
                        dtype=torch.float64)
    centred = logs - logs.mean(0)
    return float(-(centred[:, 0] * centred[:, 1]).sum() / (centred[:, 0] ** 2).sum())


def counted_nfe(spec: SamplerSpec, sigmas: Tensor, **options: Any) -> int:
    """Denoiser calls the sampler actually makes on ``sigmas``."""
    problem = gaussian_problem()
    counter = CountingDenoiser(problem)
    noise = SeededNoise(range(2), problem.sample_shape, dtype=torch.float64)
    spec.fn(counter, noise.randn() * float(sigmas[0]), sigmas, noise=noise, **options)
    return counter.calls


def run_seeded(spec: SamplerSpec, seeds: Sequence[int], steps: int = 6, **options: Any) -> Tensor:
    """Samples for the given seeds on the Gaussian problem, noise drawn per sample seed."""
    problem = gaussian_problem()
    sigmas = karras(steps, SigmaRange(0.05, 10.0))
    noise = SeededNoise(seeds, problem.sample_shape, dtype=torch.float64)
    return spec.fn(problem, noise.randn() * float(sigmas[0]), sigmas, noise=noise, **options)


def batch_invariance_gap(spec: SamplerSpec, seeds: Sequence[int] = tuple(range(16)), **options: Any) -> float:
    """Largest difference between sampling the seeds as one batch and one at a time (0 when invariant)."""
    batched = run_seeded(spec, seeds, **options)
    alone = torch.cat([run_seeded(spec, [s], **options) for s in seeds])
    return float((batched - alone).abs().max())


def sample_moments(spec: SamplerSpec, n: int = 4000, steps: int = 50, problem: Gaussian | None = None,
                   **options: Any) -> tuple[float, float]:
    """Mean and standard deviation of ``n`` samples (all coordinates pooled) on a Gaussian target."""
    problem = problem or gaussian_problem()
    sigmas = karras(steps, SigmaRange(0.01, 20.0))
    noise = SeededNoise(range(n), problem.sample_shape, dtype=torch.float64)
    samples = spec.fn(problem, noise.randn() * float(sigmas[0]), sigmas, noise=noise, **options)
    return float(samples.mean()), float(samples.std())
