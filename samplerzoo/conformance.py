"""The conformance kit: assertions every sampler must pass, built on the measurements in :mod:`samplerzoo.testing`.

Each ``check_*`` raises AssertionError with one line naming the sampler, the measured figure and the expected
one. :func:`check_sampler` runs every check that applies to a sampler. Plugin authors call these from their own
tests, directly or through the pytest plugin (:mod:`samplerzoo.pytest_plugin`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from . import laws, testing
from .analytic import Gaussian, GaussianMixture
from .denoiser import Denoiser
from .errors import SamplerzooError, UnreachableNFEError
from .noise import NoiseSampler, SeededNoise
from .plugins import get_sampler, registry
from .registry import SamplerSpec
from .schedules import SigmaRange, karras

ReferenceFn = Callable[[Denoiser, Tensor, Tensor, NoiseSampler], Tensor]
"""``reference(model, x, sigmas, noise) -> samples``: another implementation of the same sampler, e.g.
``lambda model, x, sigmas, noise: k_diffusion.sampling.sample_euler_ancestral(model, x, sigmas,
noise_sampler=noise, disable=True)``."""

RANGE = SigmaRange(0.05, 10.0)
EXACT_LAW = 1e-12
"""A law this close to the target is exact (Analytic-DDPM on a Gaussian): it has no error left to shrink."""
MIXTURE_SAMPLES, MIXTURE_STEPS, MIXTURE_ALPHA = 10000, 200, 1e-3
"""The mixture test's defaults: samples, steps, and the level (its false-alarm rate for an exact sampler)."""


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise AssertionError(message)


def _sigmas(steps: int, to_zero: bool) -> Tensor:
    """``steps`` Karras steps from sigma = 10 landing on 0, or stopping at 0.05."""
    return karras(steps, RANGE) if to_zero else karras(steps + 1, RANGE)[:-1]


def _start(model: GaussianMixture, sigmas: Tensor, seeds: Sequence[int]) -> Tensor:
    return SeededNoise(seeds, model.sample_shape, dtype=torch.float64).randn() * float(sigmas[0])


def _run(spec: SamplerSpec, model: GaussianMixture, sigmas: Tensor, seeds: Sequence[int],
         noise_seeds: Sequence[int], **options: Any) -> Tensor:
    """Sample from the start drawn with ``seeds``, taking the sampler's noise from ``noise_seeds``."""
    noise = SeededNoise(noise_seeds, model.sample_shape, dtype=torch.float64)
    start = _start(model, sigmas, seeds)
    return testing.kit_call(spec, testing.model_for(spec, model), start, sigmas, noise=noise, **options)


def check_nfe_accounting(spec: SamplerSpec, steps: Sequence[int] = (1, 2, 5, 10),
                         to_zero: Sequence[bool] = (True, False), **options: Any) -> None:
    """Counted denoiser calls equal the declared ``spec.nfe(sigmas)``, for runs landing on 0 and stopping short."""
    _require(not spec.adaptive, f"{spec.name}: adaptive, so it declares no NFE to check")
    for n in steps:
        for zero in to_zero:
            sigmas = _sigmas(n, zero)
            declared, counted = spec.nfe(sigmas, **options), testing.counted_nfe(spec, sigmas, **options)
            _require(counted == declared, f"{spec.name}: {n} steps ending at sigma={float(sigmas[-1]):g} made "
                                          f"{counted} denoiser calls, declared {declared}")


def check_nfe_budget(spec: SamplerSpec, budgets: Sequence[int] = range(1, 13), **options: Any) -> None:
    """Each NFE budget is spent exactly (``steps_for_nfe``, then counted calls) or refused with one that is reachable;
    every budget the declared cost reaches is accepted."""
    _require(not spec.adaptive, f"{spec.name}: adaptive, so it cannot be held to an NFE budget")
    reached: dict[bool, list[int]] = {True: [], False: []}
    for zero in (True, False):
        for nfe in budgets:
            try:
                steps = spec.steps_for_nfe(nfe, zero, **options)
            except UnreachableNFEError as exc:
                _require("nearest reachable: " in str(exc), f"{spec.name}: refusing NFE {nfe} names no reachable "
                                                            f"budget: {exc}")
                continue
            counted = testing.counted_nfe(spec, _sigmas(steps, zero), **options)
            _require(counted == nfe, f"{spec.name}: NFE {nfe} {'to 0' if zero else 'to sigma_min'} planned "
                                     f"{steps} steps, which made {counted} denoiser calls")
            reached[zero].append(nfe)
        declared = {spec.nfe(_sigmas(n, zero), **options) for n in range(1, max(budgets) + 1)} & set(budgets)
        missed = sorted(n for n in declared - set(reached[zero]) if n is not None)
        _require(not missed, f"{spec.name}: NFE {missed} {'to 0' if zero else 'to sigma_min'} refused, though "
                             f"its declared cost {spec.cost} spends them")
    _require(any(reached.values()), f"{spec.name}: no NFE in {min(budgets)}..{max(budgets)} is reachable")


def check_determinism(spec: SamplerSpec, stochastic: bool | None = None, **options: Any) -> None:
    """The same seeds give identical samples; changing only the noise seeds changes the samples of a stochastic
    sampler and leaves a deterministic one's unchanged (``stochastic`` defaults to ``spec.stochastic``)."""
    stochastic = spec.stochastic if stochastic is None else stochastic
    model, sigmas = testing.gaussian_problem(), karras(6, RANGE)
    first, again, other = (_run(spec, model, sigmas, (0, 1), noise, **options) for noise in ((5, 6), (5, 6), (7, 8)))
    _require(torch.equal(first, again), f"{spec.name}: the same seeds gave samples differing by "
                                        f"{float((first - again).abs().max()):.3g}")
    moved = float((first - other).abs().max())
    if stochastic:
        _require(moved > 0, f"{spec.name}: stochastic, but other noise seeds left the samples unchanged")
    else:
        _require(moved == 0, f"{spec.name}: deterministic, but other noise seeds moved the samples by {moved:.3g}")


def check_batch_invariance(spec: SamplerSpec, atol: float = 1e-12, **options: Any) -> None:
    """A sample depends on its own seed only: 16 seeds as one batch equal the same seeds one at a time."""
    gap = testing.batch_invariance_gap(spec, **options)
    _require(gap <= atol, f"{spec.name}: a batch of 16 differs from one sample at a time by {gap:.3g} "
                          f"(allowed {atol:g})")


def check_reaches_target(spec: SamplerSpec, n: int = 4000, steps: tuple[int, int] = (50, 200),
                         **options: Any) -> None:
    """A stochastic sampler's samples approach N(0.3, 0.5^2): the error of their std at least halves from
    ``steps[0]`` to ``steps[1]`` steps (the bias is first order in the step size), then mean and std are close.

    Tolerances are in standard errors of ``n`` samples (the same seeds at both step counts, so their sampling
    noise largely cancels in the comparison): 2 for the halving, 5 for the closeness.
    """
    problem: Gaussian = testing.gaussian_problem()
    mean_target, std_target, count = float(problem.mean[0]), problem.std, n * problem.mean.numel()
    se_mean, se_std = std_target / math.sqrt(count), std_target / math.sqrt(2 * count)
    (_, std_coarse), (mean, std) = (testing.sample_moments(spec, n=n, steps=s, problem=problem, **options)
                                    for s in steps)
    _require(abs(std - std_target) < abs(std_coarse - std_target) / 2 + 2 * se_std,
             f"{spec.name}: sample std {std_coarse:.4f} at {steps[0]} steps, {std:.4f} at {steps[1]}: the error "
             f"must halve toward {std_target}")
    _require(abs(mean - mean_target) < 5 * se_mean and abs(std - std_target) < 5 * se_mean,
             f"{spec.name}: sample mean {mean:.4f} and std {std:.4f} at {steps[1]} steps, expected {mean_target} "
             f"and {std_target} within {5 * se_mean:.3f}")


def check_gaussian_law(spec: SamplerSpec, steps: Sequence[int] = (25, 50, 100, 200), joint: bool | None = None,
                       **options: Any) -> None:
    """A stochastic sampler's exact law on N(0.3, 0.5^2) (:func:`samplerzoo.laws.affine_law`, started from the exact
    marginal at sigma = 20) approaches the target (:func:`samplerzoo.laws.exact_law`: given the start for a
    ``reverse_sde`` sampler, else the marginal) at its weak order p at least: each doubling of the steps divides the
    2-Wasserstein distance by 2^(p - 1/2) or more, on schedules landing on 0 and stopping at sigma_min. A law that stops
    converging (too much or too little noise, a dropped term) or sits on the wrong side of the posterior (no noise at
    all) fails. Runs with ``spec.law_options`` under ``options``; AssertionError if the sampler is not affine there."""
    options = {**spec.law_options, **options}
    joint = spec.reverse_sde if joint is None else joint
    kind = "law given the start" if joint else "marginal law"
    for to_zero in (True, False):
        errors = [laws.gaussian_law_error(spec, n, to_zero, joint, **options) for n in steps]
        for (coarse, e_coarse), (fine, e_fine) in itertools.pairwise(zip(steps, errors, strict=True)):
            needed = (fine / coarse) ** (spec.weak_order - 0.5)
            _require(e_fine <= EXACT_LAW or e_coarse >= needed * e_fine,
                     f"{spec.name}: exact {kind} {e_coarse:.3g} from the target at {coarse} steps, {e_fine:.3g} at "
                     f"{fine} ({'to 0' if to_zero else 'to sigma_min'}): must shrink {needed:.2f}x (weak order "
                     f"{spec.weak_order})")


def check_mixture_law(spec: SamplerSpec, n: int = MIXTURE_SAMPLES, steps: int = MIXTURE_STEPS,
                      alpha: float = MIXTURE_ALPHA, seed: int = 0, joint: bool | None = None, **options: Any) -> None:
    """A stochastic sampler's outputs on a 2-D three-component mixture pass Neyman's smooth test of the target law
    (:func:`samplerzoo.laws.mixture_law_pvalue`: the posterior given the start for a ``reverse_sde`` sampler, else the
    marginal) at level ``alpha``, from exact starts at sigma = 2 over ``steps`` karras steps to 0.01. With the
    defaults (fixed seeds) a deterministic solver and 5% too much noise fail it (tests/test_laws.py; its power is
    measured by benchmarks/law_power.py). Runs with ``spec.law_options`` under ``options``."""
    options = {**spec.law_options, **options}
    p = laws.mixture_law_pvalue(spec, testing.mixture_problem(dim=2), n, steps, joint, seed, **options)
    _require(p >= alpha, f"{spec.name}: {n} outputs on the mixture fail the smooth test of their target law "
                         f"(p = {p:.2g} < {alpha:g}; {steps} steps)")


def check_law(spec: SamplerSpec, **options: Any) -> None:
    """:func:`check_gaussian_law` where the sampler is affine on a Gaussian, else the Monte-Carlo
    :func:`check_reaches_target` (e.g. ``pc``, whose step sizes depend on norms)."""
    try:
        laws.affine_law(spec, laws.gaussian_schedule(3, True), **{**spec.law_options, **options})
    except laws.NotAffineError:
        check_reaches_target(spec, **options)
        return
    check_gaussian_law(spec, **options)


def check_convergence_order(spec: SamplerSpec, tolerance: float = 0.3, problem: GaussianMixture | None = None,
                            **options: Any) -> None:
    """A deterministic sampler's global error falls with the slope ``spec.convergence_order``
    (:func:`samplerzoo.testing.fitted_order`; on the Gaussian's closed form unless another ``problem`` is given);
    a stochastic one must pass :func:`check_law`."""
    if spec.stochastic:
        check_law(spec, **options)
        return
    problem = problem or testing.gaussian_problem()
    fitted, expected = testing.fitted_order(spec, problem=problem, **options), spec.convergence_order
    _require(abs(fitted - expected) < tolerance, f"{spec.name}: fitted convergence order {fitted:.2f} on the "
                                                 f"{type(problem).__name__}, expected {expected} ± {tolerance}")


def check_reference_agreement(spec: SamplerSpec, reference: ReferenceFn, atol: float = 1e-10, steps: int = 10,
                              problem: GaussianMixture | None = None, **options: Any) -> None:
    """Ours and ``reference`` agree on the same start, sigmas and noise (a fresh source of the same seeds each)."""
    problem = problem or testing.gaussian_problem()
    sigmas, seeds = karras(steps, RANGE), range(4)
    ours = _run(spec, problem, sigmas, seeds, seeds, **options)
    noise = SeededNoise(seeds, problem.sample_shape, dtype=torch.float64)
    theirs = reference(testing.model_for(spec, problem), _start(problem, sigmas, seeds), sigmas, noise)
    gap = float((ours - theirs).abs().max())
    _require(gap <= atol, f"{spec.name}: differs from the reference by {gap:.3g} over {steps} steps "
                          f"(allowed {atol:g})")


INFINITE_START_SAMPLES = (200, 1000, 250)
"""Samples of :func:`check_infinite_start` for a deterministic, a stochastic and a Brownian (slower noise) sampler."""


def check_infinite_start(spec: SamplerSpec, nfe: int = 24, **options: Any) -> None:
    """Started at sigma = inf (pure noise; :func:`samplerzoo.testing.infinite_start`, through ``generate()``), the
    samples are finite, the counted NFE is the requested budget, and they are right: a deterministic sampler's
    error against the exact solution from infinity is below 0.05 at 4 ``nfe`` and at most half (or 1e-4) its error
    at ``nfe``, and its mean error (the first step's own error is odd in the noise) within 1e-3; a stochastic
    sampler's mean and std equal those of the same sampler started one level later from the exact state, within 5
    standard errors plus the std the first step from infinity gives up by design (D + sigma_1 n has spread sigma_1
    where the exact state has sqrt(sigma_1^2 + std^2))."""
    runs = []
    for budget in (nfe, 4 * nfe) if not spec.stochastic else (nfe,):
        try:
            run = testing.infinite_start(spec, n=INFINITE_START_SAMPLES[spec.stochastic + spec.brownian], nfe=budget,
                                         **options)
        except SamplerzooError as exc:
            raise AssertionError(f"{spec.name}: from sigma = inf: {exc}") from None
        finite = bool(torch.isfinite(run.samples).all())
        _require(finite, f"{spec.name}: from sigma = inf the samples are not finite")
        _require(run.requested is None or run.counted == run.requested,
                 f"{spec.name}: from sigma = inf NFE {run.requested} made {run.counted} denoiser calls")
        runs.append(run)
    if not spec.stochastic:
        differences = [run.samples - testing.exact_from_infinity(run) for run in runs]
        errors = [float(d.abs().max()) for d in differences]
        bias = float(differences[-1].mean())
        _require(abs(bias) <= 1e-3, f"{spec.name}: from sigma = inf the samples are off the exact solution by "
                                    f"{bias:.3g} on average (allowed 1e-3): is D(n; inf) used?")
        if spec.adaptive:
            _require(errors[-1] < 0.05, f"{spec.name}: from sigma = inf the error is {errors[-1]:.3g} (allowed 0.05)")
            return
        _require(errors[1] < 0.05 and errors[1] <= max(errors[0] / 2, 1e-4),
                 f"{spec.name}: from sigma = inf the error is {errors[0]:.3g} at {runs[0].requested} NFE and "
                 f"{errors[1]:.3g} at {runs[1].requested}: it must halve and end below 0.05")
        return
    run = runs[0]
    reference = testing.restarted_from_exact(spec, run, **options)
    sigma_1, std = float(run.sigmas[1]), testing.infinite_start_problem().std
    se = float(reference.std()) / math.sqrt(reference.numel())
    given_up = (1 - sigma_1 / math.sqrt(sigma_1**2 + std**2)) * float(reference.std())
    for what, ours, theirs, allowed in (("mean", run.samples.mean(), reference.mean(), 5 * se),
                                        ("std", run.samples.std(), reference.std(), 5 * se + given_up)):
        _require(abs(float(ours - theirs)) <= allowed,
                 f"{spec.name}: from sigma = inf the sample {what} is {float(ours):.4f}, started from the exact "
                 f"state at sigma {sigma_1:.3g} it is {float(theirs):.4f} (allowed {allowed:.3g})")


def check_sampler(spec_or_name: SamplerSpec | str, reference: ReferenceFn | None = None,
                  **options: Any) -> list[str]:
    """Run every check that applies (an adaptive sampler has no NFE budget and, when deterministic, no step count
    to fit an order on; a stochastic one has its law checked instead of an order); return the names of the checks
    run."""
    spec = get_sampler(spec_or_name) if isinstance(spec_or_name, str) else spec_or_name
    checks: list[Callable[..., None]] = [check_determinism, check_batch_invariance]
    if not spec.adaptive:
        checks = [check_nfe_accounting, check_nfe_budget, *checks]
    if spec.stochastic:
        checks += [check_law, check_mixture_law]
    elif not spec.adaptive:
        checks.append(check_convergence_order)
    checks.append(check_infinite_start)
    for check in checks:
        check(spec, **options)
    if reference is not None:
        check_reference_agreement(spec, reference, **options)
        checks.append(check_reference_agreement)
    return [check.__name__ for check in checks]


def plugin_samplers(plugin: str) -> list[str]:
    """The samplers that the plugin (its entry-point name) registered; AssertionError if it is missing or failed."""
    plugins = registry().plugins
    _require(plugin in plugins, f"samplerzoo plugin {plugin!r} is not installed (pip install -e it); installed: "
                                f"{', '.join(sorted(plugins))}")
    errors = plugins[plugin].errors
    _require(not errors, f"samplerzoo plugin {plugin!r} reported errors: {'; '.join(errors)}")
    return list(plugins[plugin].samplers)
