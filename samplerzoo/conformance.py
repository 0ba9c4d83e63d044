"""The conformance kit: assertions every sampler must pass, built on the measurements in :mod:`samplerzoo.testing`.

Each ``check_*`` raises AssertionError with one line naming the sampler, the measured figure and the expected
one. :func:`check_sampler` runs every check that applies to a sampler. Plugin authors call these from their own
tests, directly or through the pytest plugin (:mod:`samplerzoo.pytest_plugin`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from . import testing
from .analytic import Gaussian, GaussianMixture
from .denoiser import Denoiser
from .errors import UnreachableNFEError
from .noise import NoiseSampler, SeededNoise
from .plugins import get_sampler, registry
from .registry import SamplerSpec
from .schedules import SigmaRange, karras

ReferenceFn = Callable[[Denoiser, Tensor, Tensor, NoiseSampler], Tensor]
"""``reference(model, x, sigmas, noise) -> samples``: another implementation of the same sampler, e.g.
``lambda model, x, sigmas, noise: k_diffusion.sampling.sample_euler_ancestral(model, x, sigmas,
noise_sampler=noise, disable=True)``."""

RANGE = SigmaRange(0.05, 10.0)


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
    return spec.fn(testing.model_for(spec, model), _start(model, sigmas, seeds), sigmas, noise=noise, **options)


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


def check_convergence_order(spec: SamplerSpec, tolerance: float = 0.3, problem: GaussianMixture | None = None,
                            **options: Any) -> None:
    """A deterministic sampler's global error falls with the slope ``spec.convergence_order``
    (:func:`samplerzoo.testing.fitted_order`; on the Gaussian's closed form unless another ``problem`` is given);
    a stochastic one must pass :func:`check_reaches_target`."""
    if spec.stochastic:
        check_reaches_target(spec, **options)
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


def check_sampler(spec_or_name: SamplerSpec | str, reference: ReferenceFn | None = None,
                  **options: Any) -> list[str]:
    """Run every check that applies (an adaptive sampler has no NFE budget and, when deterministic, no step count
    to fit an order on); return the names of the checks run."""
    spec = get_sampler(spec_or_name) if isinstance(spec_or_name, str) else spec_or_name
    checks: list[Callable[..., None]] = [check_determinism, check_batch_invariance]
    if not spec.adaptive:
        checks = [check_nfe_accounting, check_nfe_budget, *checks]
    if not spec.adaptive or spec.stochastic:
        checks.append(check_convergence_order)
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
