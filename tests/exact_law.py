"""The exact law of a sampler on a Gaussian target, without sampling noise (tests/ is not a package; conftest puts
this folder on sys.path).

For N(mean, std^2) the denoiser is affine in x, so a sampler whose steps are affine in x and in its noise draws
maps the start x_0 ~ N(0, sigma_0^2) and the draws z_k to x_N = a x_0 + sum_k b_k z_k + c: Gaussian with mean c and
variance a^2 sigma_0^2 + sum_k b_k^2. One batched run finds every coefficient (samples are independent): sample 0
starts at 0 and draws zeros (c), sample 1 starts at 1 (a + c), sample 2 + k draws 1 at its k-th draw only (b_k + c).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from samplerzoo import testing
from samplerzoo.denoiser import Denoiser
from samplerzoo.registry import SamplerSpec
from samplerzoo.schedules import SigmaRange, karras


class OneHotDraws:
    """Noise whose k-th draw is 1 in sample 2 + k and 0 elsewhere."""

    def __init__(self, batch: int) -> None:
        self.batch, self.draws = batch, 0

    def __call__(self, sigma: Tensor, sigma_next: Tensor) -> Tensor:
        draw = torch.zeros(self.batch, 1, dtype=torch.float64)
        assert 2 + self.draws < self.batch, "more noise draws than the batch has room for"
        draw[2 + self.draws] = 1.0
        self.draws += 1
        return draw


def affine_law(spec: SamplerSpec, sigmas: Tensor, problem: Denoiser, max_draws_per_step: int = 4,
               **options: Any) -> tuple[float, float, Tensor]:
    """(c, a, b): the sampler's output x_N = a x_0 + sum_k b_k z_k + c on a 1-D affine ``problem``."""
    batch = 2 + max_draws_per_step * (len(sigmas) - 1)
    x = torch.zeros(batch, 1, dtype=torch.float64)
    x[1] = 1.0
    noise = OneHotDraws(batch)
    out = spec.fn(testing.model_for(spec, problem), x, sigmas, noise=noise, **options)[:, 0]
    return float(out[0]), float(out[1] - out[0]), out[2:2 + noise.draws] - out[0]


def exact_moments(spec: SamplerSpec, steps: int, max_draws_per_step: int = 4, **options: Any) -> tuple[float, float]:
    """Mean and standard deviation of the sampler's output law on N(0.3, 0.5^2), on the kit's sigmas and start
    N(0, sigma_0^2)."""
    sigmas = karras(steps, SigmaRange(0.01, 20.0))
    c, a, b = affine_law(spec, sigmas, testing.gaussian_problem(dim=1), max_draws_per_step, **options)
    return c, math.sqrt(a**2 * float(sigmas[0]) ** 2 + float((b**2).sum()))


def assert_reaches_target(spec: SamplerSpec, **options: Any) -> None:
    """The kit's law check (check_reaches_target) on the exact moments: the std's error at least halves from 50 to
    200 steps, then mean and std are within 0.02 (the kit's 5 standard errors) of the target."""
    (_, coarse), (mean, std) = (exact_moments(spec, steps, **options) for steps in (50, 200))
    assert abs(std - 0.5) < abs(coarse - 0.5) / 2 + 1e-9, (spec.name, coarse, std)
    assert abs(mean - 0.3) < 0.02 and abs(std - 0.5) < 0.02, (spec.name, mean, std)
