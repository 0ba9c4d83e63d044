"""Checks any sampler can be put through, on problems with exact answers (the conformance kit).

Every function returns a measurement; tests (ours, and plugin authors') assert on it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from .analytic import Gaussian, GaussianMixture
from .denoiser import CountingDenoiser, Denoiser
from .errors import UnreachableNFEError
from .noise import BrownianTreeNoise, CounterNoise, NoiseSampler, SeededNoise
from .registry import SamplerSpec
from .samplers.reference import solve_ode
from .sampling import generate, run_sampler, sampling_plan
from .schedules import SigmaRange, exponential, karras
from .time_schedules import kl_optimal

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


def kit_call(spec: SamplerSpec, model: Denoiser, x: Tensor, sigmas: Tensor, **options: Any) -> Tensor:
    """``spec.fn`` as the kit runs it: under ``spec.kit_options`` (amed's midpoint rule), then ``options``."""
    return spec.fn(model, x, sigmas, **kit_options(spec, options))


def kit_options(spec: SamplerSpec, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` over ``spec.kit_options``: what the kit passes the sampler."""
    return {**spec.kit_options, **options}


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
    return [float((kit_call(spec, model, x, exponential(n, SigmaRange(sigma_min, sigma_max))[:-1], **options) - exact)
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
    return -slope([math.log(n) for n in steps], [math.log(e) for e in errors])


def counted_nfe(spec: SamplerSpec, sigmas: Tensor, **options: Any) -> int:
    """Denoiser calls the sampler actually makes on ``sigmas``."""
    problem = gaussian_problem()
    counter = CountingDenoiser(model_for(spec, problem))
    noise = SeededNoise(range(2), problem.sample_shape, dtype=torch.float64)
    kit_call(spec, counter, noise.randn() * float(sigmas[0]), sigmas, noise=noise, **options)
    return counter.calls


def run_seeded(spec: SamplerSpec, seeds: Sequence[int], steps: int = 6, **options: Any) -> Tensor:
    """Samples for the given seeds on the Gaussian problem, noise drawn per sample seed."""
    problem = gaussian_problem()
    sigmas = karras(steps, SigmaRange(0.05, 10.0))
    noise = SeededNoise(seeds, problem.sample_shape, dtype=torch.float64)
    return kit_call(spec, model_for(spec, problem), noise.randn() * float(sigmas[0]), sigmas, noise=noise, **options)


def batch_invariance_gap(spec: SamplerSpec, seeds: Sequence[int] = tuple(range(16)), **options: Any) -> float:
    """Largest difference between sampling the seeds as one batch and one at a time (0 when invariant)."""
    batched = run_seeded(spec, seeds, **options)
    alone = torch.cat([run_seeded(spec, [s], **options) for s in seeds])
    return float((batched - alone).abs().max())


LAW_RANGE = SigmaRange(0.01, 20.0)
"""Where a stochastic sampler's law is measured on the Gaussian: karras steps from sigma 20 to 0.01 (then 0)."""


def sample_moments(spec: SamplerSpec, n: int = 4000, steps: int = 50, problem: Gaussian | None = None,
                   **options: Any) -> tuple[float, float]:
    """Mean and standard deviation of ``n`` samples (all coordinates pooled) on a Gaussian target."""
    problem = problem or gaussian_problem()
    sigmas = karras(steps, LAW_RANGE)
    noise = SeededNoise(range(n), problem.sample_shape, dtype=torch.float64)
    samples = kit_call(spec, model_for(spec, problem), noise.randn() * float(sigmas[0]), sigmas, noise=noise, **options)
    return float(samples.mean()), float(samples.std())



INFINITE_START_SCHEDULE = "kl_optimal"
"""Uniform in atan(sigma), so it starts at sigma = inf when the model's sigma_max is inf."""


def infinite_start_problem() -> Gaussian:
    """:func:`gaussian_problem` with sigma_max = inf: a model that starts from pure noise."""
    return Gaussian(torch.full((4,), 0.3, dtype=torch.float64), 0.5, sigma_min=0.002, sigma_max=math.inf)


class InfiniteStart(NamedTuple):
    samples: Tensor
    start: Tensor
    """The unit start noise n (the state at sigma = inf, normalised)."""
    sigmas: Tensor
    requested: int | None
    counted: int


def infinite_start(spec: SamplerSpec, n: int = 2000, nfe: int = 24, **options: Any) -> InfiniteStart:
    """``n`` samples of :func:`infinite_start_problem` from pure noise on the kl_optimal schedule, through
    :func:`samplerzoo.sampling.generate` (its default counter-based noise) with the smallest budget from ``nfe`` on
    that the sampler reaches (an adaptive sampler: ``nfe // 2`` kl_optimal steps through :func:`run_sampler`,
    counted only)."""
    problem = infinite_start_problem()
    seeds = range(n)
    start = CounterNoise(seeds, problem.sample_shape, dtype=torch.float64).randn()
    if not spec.adaptive:
        budget = reachable_budget(spec, problem, nfe, **options)
        run = generate(model_for(spec, problem), spec, budget, seeds, problem.sample_shape,
                       schedule=INFINITE_START_SCHEDULE, dtype=torch.float64, **kit_options(spec, options))
        return InfiniteStart(run.samples, start, run.sigmas, budget, run.counted_nfe)
    sigmas, counter = kl_optimal(nfe // 2, problem), CountingDenoiser(model_for(spec, problem))
    noise = CounterNoise(seeds, problem.sample_shape, dtype=torch.float64)
    samples = run_sampler(spec, counter, noise.randn(), sigmas, noise, **kit_options(spec, options))
    return InfiniteStart(samples, start, sigmas, None, counter.calls)


def exact_from_infinity(run: InfiniteStart) -> Tensor:
    """The probability-flow ODE solution from sigma = inf through the start noise n: mean + sqrt(sigma^2 + std^2) n
    (the limit of :meth:`Gaussian.ode_solution` as sigma_from -> inf, x / sigma_from -> n)."""
    problem = infinite_start_problem()
    return problem.mean + math.sqrt(float(run.sigmas[-1]) ** 2 + problem.std**2) * run.start


def restarted_from_exact(spec: SamplerSpec, run: InfiniteStart, **options: Any) -> Tensor:
    """The same sampler started one level later, at sigmas[1], from the exact state there along the same start noise
    (mean + sqrt(sigma_1^2 + std^2) n), its noise drawn from the same per-seed streams after the start."""
    problem = infinite_start_problem()
    seeds, sigmas = range(len(run.start)), run.sigmas[1:]
    seeded = CounterNoise(seeds, problem.sample_shape, dtype=torch.float64)
    seeded.randn()  # the start draw
    noise: NoiseSampler = seeded
    if spec.brownian:  # the Brownian paths generate() gives the sampler's own levels
        noise = BrownianTreeNoise(seeds, problem.sample_shape, float(sigmas[sigmas > 0].min()), float(sigmas[0]),
                                  dtype=torch.float64)
    x = problem.mean + math.sqrt(float(sigmas[0]) ** 2 + problem.std**2) * run.start
    return kit_call(spec, model_for(spec, problem), x, sigmas, noise=noise, **options)


def reachable_budget(spec: SamplerSpec, problem: Gaussian, nfe: int, **options: Any) -> int:
    """The smallest NFE from ``nfe`` on that the sampler spends exactly on the kl_optimal schedule of ``problem``."""
    for budget in range(nfe, 50 * nfe):
        try:
            sampling_plan(problem, spec, budget, INFINITE_START_SCHEDULE, **options)
            return budget
        except UnreachableNFEError:
            continue
    raise UnreachableNFEError(f"{spec.name}: no NFE in {nfe}..{50 * nfe - 1} is reachable from sigma = inf")


LocalStep = Callable[[Denoiser, list[Tensor], list[Tensor], Tensor], Tensor]
"""``step(model, xs, sigmas, sigma_next) -> x_next``: one interior step of a multistep method from the history ``xs``
at ``sigmas`` (newest first; xs[0] at sigmas[0] is the current point)."""
SPACINGS = ("log", "linear")


def local_errors(step: LocalStep, history: int, hs: Sequence[float], spacing: str = "log", sigma: float = 1.0,
                 problem: Gaussian | None = None, batch: int = 8) -> list[float]:
    """Max error of one step from the exact trajectory and exact history, per step size h: the newest history point at
    ``sigma``, the others and the target h apart in lambda = -log sigma (``spacing="log"``) or in sigma itself."""
    if spacing not in SPACINGS:
        raise ValueError(f"spacing must be one of {SPACINGS}, got {spacing!r}")
    problem = problem or gaussian_problem()
    start = SeededNoise(range(batch), problem.sample_shape, dtype=torch.float64).randn() * 10.0
    errors = []
    for h in hs:
        offsets = torch.arange(-1, history, dtype=torch.float64) * h  # the target, then the history, newest first
        levels = sigma * offsets.exp() if spacing == "log" else sigma + offsets
        xs = [problem.ode_solution(start, 10.0, float(s)) for s in levels]
        x_next = step(problem, xs[1:], list(levels[1:]), levels[0])
        errors.append(float((x_next - xs[0]).abs().max()))
    return errors


def local_order(step: LocalStep, history: int, hs: Sequence[float] = (0.2, 0.1, 0.05), **kwargs: Any) -> float:
    """Slope of log(local error) against log(h) (:func:`local_errors`): interior order + 1 for a consistent method.

    A multistep method's first steps lack history and take lower orders, which caps its global order; this measures
    its interior steps alone, so a wrong high-order coefficient (which the global order no longer shows) fails."""
    errors = local_errors(step, history, hs, **kwargs)
    return slope([math.log(h) for h in hs], [math.log(e) for e in errors])


def slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of ys against xs."""
    points = torch.tensor([xs, ys], dtype=torch.float64)
    centred = points - points.mean(1, keepdim=True)
    return float((centred[0] * centred[1]).sum() / (centred[0] ** 2).sum())
