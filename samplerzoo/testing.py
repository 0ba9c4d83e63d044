"""Checks any sampler can be put through, on problems with exact answers (the conformance kit).

Every function returns a measurement; tests (ours, and plugin authors') assert on it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from .analytic import Gaussian, GaussianMixture
from .denoiser import CountingDenoiser, Denoiser
from .noise import SeededNoise
from .registry import SamplerSpec
from .samplers.reference import solve_ode
from .schedules import SigmaRange, exponential, karras

REFERENCE_TOLERANCE = 1e-11
"""rtol = atol of the dopri5 reference trajectories: far below any sampler error the checks fit."""


def gaussian_problem(dim: int = 4, mean: float = 0.3, std: float = 0.5) -> Gaussian:
    """N(mean, std^2 I) in float64: its probability-flow ODE has a closed-form solution."""
    return Gaussian(torch.full((dim,), mean, dtype=torch.float64), std)


def mixture_problem(dim: int = 4) -> GaussianMixture:
    """Three well-separated components of unequal width and weight, in float64: a curved, multi-modal PF-ODE
    with no closed form, so its exact solution is the dopri5 reference (:func:`exact_solution`)."""
    means = torch.zeros(3, dim, dtype=torch.float64)
    means[0], means[1, 0], means[2, 1] = 1.0, -2.0, 2.5
    return GaussianMixture(means, torch.tensor([0.3, 0.6, 0.15], dtype=torch.float64),
                           torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64))


class IdenticalHalves:
    """A problem as a guided model whose conditional and unconditional halves are both the problem: guided and
    unconditional predictions are the exact denoiser, from one evaluation (``guidance.py``'s interface)."""

    def __init__(self, problem: Denoiser) -> None:
        self.problem = problem

    def __call__(self, x: Tensor, sigma: Tensor, **cond: Any) -> Tensor:
        return self.problem(x, sigma, **cond)

    def with_unconditional(self, x: Tensor, sigma: Tensor, **cond: Any) -> tuple[Tensor, Tensor]:
        denoised = self.problem(x, sigma, **cond)
        return denoised, denoised

    def __getattr__(self, name: str) -> Any:
        if name == "problem":
            raise AttributeError(name)
        return getattr(self.problem, name)


def model_for(spec: SamplerSpec, problem: Denoiser) -> Denoiser:
    """The problem as ``spec`` can sample it: a sampler that needs the unconditional prediction (CFG++) gets it
    with identical halves (:class:`IdenticalHalves`), so the checks measure the sampler's own steps."""
    return IdenticalHalves(problem) if spec.needs_unconditional else problem


def exact_solution(problem: GaussianMixture, x: Tensor, sigma_from: float, sigma_to: float) -> Tensor:
    """x(sigma_to) on the PF-ODE trajectory through x at sigma_from: closed form for a Gaussian, else dopri5 at
    :data:`REFERENCE_TOLERANCE`."""
    if isinstance(problem, Gaussian):
        return problem.ode_solution(x, sigma_from, sigma_to)
    return solve_ode(problem, x, sigma_from, sigma_to, REFERENCE_TOLERANCE, REFERENCE_TOLERANCE).x


def global_errors(spec: SamplerSpec, steps: Sequence[int], problem: GaussianMixture | None = None,
                  sigma_max: float = 10.0, sigma_min: float = 0.05, batch: int = 8, **options: Any) -> list[float]:
    """Max error at sigma_min against the exact ODE solution, on log-uniform steps from sigma_max, per step count."""
    problem = problem or gaussian_problem()
    x = SeededNoise(range(batch), problem.sample_shape, dtype=torch.float64).randn() * sigma_max
    exact = exact_solution(problem, x, sigma_max, sigma_min)
    model = model_for(spec, problem)
    return [float((spec.fn(model, x, exponential(n, SigmaRange(sigma_min, sigma_max))[:-1], **options) - exact)
                  .abs().max()) for n in steps]


def global_error(spec: SamplerSpec, steps: int, problem: GaussianMixture | None = None, **kwargs: Any) -> float:
    """:func:`global_errors` at one step count."""
    return global_errors(spec, [steps], problem, **kwargs)[0]


CONVERGENCE_STEPS = (64, 128, 256, 512)
CONVERGENCE_SIGMA_MAX = 2.0
"""Where :func:`fitted_order` measures: enough steps from a low enough sigma_max that a multistep method's
lower-order first steps show their share of the error, so the slope is the asymptotic (global) order. From
sigma 10 at 8-64 steps the first steps are nearly exact (the ODE is almost linear there) and 4th-order
interiors fit ~3.3 instead."""


def fitted_order(spec: SamplerSpec, steps: Sequence[int] = CONVERGENCE_STEPS, problem: GaussianMixture | None = None,
                 sigma_max: float = CONVERGENCE_SIGMA_MAX, **options: Any) -> float:
    """Slope of -log(global error) against log(steps): the observed order of convergence, to compare with
    ``spec.convergence_order``."""
    errors = global_errors(spec, steps, problem, sigma_max=sigma_max, **options)
    logs = torch.tensor([[math.log(n), math.log(e)] for n, e in zip(steps, errors, strict=True)],
                        dtype=torch.float64)
    centred = logs - logs.mean(0)
    return float(-(centred[:, 0] * centred[:, 1]).sum() / (centred[:, 0] ** 2).sum())


def counted_nfe(spec: SamplerSpec, sigmas: Tensor, **options: Any) -> int:
    """Denoiser calls the sampler actually makes on ``sigmas``."""
    problem = gaussian_problem()
    counter = CountingDenoiser(model_for(spec, problem))
    noise = SeededNoise(range(2), problem.sample_shape, dtype=torch.float64)
    spec.fn(counter, noise.randn() * float(sigmas[0]), sigmas, noise=noise, **options)
    return counter.calls


def run_seeded(spec: SamplerSpec, seeds: Sequence[int], steps: int = 6, **options: Any) -> Tensor:
    """Samples for the given seeds on the Gaussian problem, noise drawn per sample seed."""
    problem = gaussian_problem()
    sigmas = karras(steps, SigmaRange(0.05, 10.0))
    noise = SeededNoise(seeds, problem.sample_shape, dtype=torch.float64)
    return spec.fn(model_for(spec, problem), noise.randn() * float(sigmas[0]), sigmas, noise=noise, **options)


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
    samples = spec.fn(model_for(spec, problem), noise.randn() * float(sigmas[0]), sigmas, noise=noise, **options)
    return float(samples.mean()), float(samples.std())
