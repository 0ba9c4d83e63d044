"""Drive a sampler by an NFE budget: schedule, per-sample seeded noise, counted network evaluations.

A schedule may start at sigma = inf (pure noise: a flow model's t = 1, zero terminal SNR), where x = sigma n cannot
be formed. The start is then the unit noise n, the state normalised by sigma (the Denoiser convention), and
:func:`run_sampler` takes the first step in data-prediction form, x(sigma_1) = D(n; inf) + sigma_1 n: the exact
limit of DDIM / Euler from sigma -> inf, one evaluation counted inside the budget. The sampler then runs on the
rest of the schedule, unchanged; a sampler that declares ``starts_at_infinity`` takes that step itself.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import Tensor

from .denoiser import CountingDenoiser, Denoiser
from .errors import NonFiniteError, SamplerzooError, ScheduleLengthError, UnknownNameError, UnreachableNFEError
from .finite import FiniteWatch, takes_callback
from .guidance import require_unconditional
from .noise import BrownianTreeNoise, NoiseSampler, NoiseSource, seeded_noise
from .plugins import get_sampler, get_schedule
from .registry import SamplerSpec
from .steps import ddim_step, denoise

no_autograd = torch.inference_mode
"""How generate() turns autograd off around a run: inference mode (no autograd metadata or version counters on
any tensor; a sampler that needs gradients, like classifier guidance, leaves it for its own block). The samples
are returned as an ordinary tensor (one copy). Measured against ``torch.no_grad`` in benchmarks/throughput.py."""

FinalStep = Literal["auto", "zero", "sigma_min", "denoise"]
FINAL_STEPS: tuple[str, ...] = ("auto", "zero", "sigma_min", "denoise")
"""How a run ends, which published tables differ on: the last step lands on sigma = 0 (k-diffusion, EDM);
the run stops at sigma_min and returns x there (diff-sampler's default, diffusers' ``final_sigmas_type=
"sigma_min"``); or it stops at sigma_min and returns D(x, sigma_min), one more evaluation (diff-sampler's
``denoise_to_zero``). ``auto`` lands on 0 when that spends the budget exactly and otherwise stops at
sigma_min, so Heun's 35 and DPM-Solver-2's 10 are both reachable; runs record which one was used."""


@dataclass(frozen=True)
class Generation:
    """A finished run. ``counted_nfe`` counts denoiser calls per sample (the NFE budget samplers are written
    in); ``forwards`` counts network forward passes per sample, which classifier-free guidance doubles.
    ``nonfinite`` counts the samples holding NaN or inf (never score those: ``finite`` says whether all are
    usable)."""

    samples: Tensor
    sigmas: Tensor
    steps: int
    final_step: str
    declared_nfe: int | None
    counted_nfe: int
    forwards: int
    noise: str = "counter"
    """The per-sample noise source that drew the start and the steps' noise (:data:`~samplerzoo.noise.NOISE_SOURCES`;
    Brownian samplers take their path from ``BrownianTreeNoise`` with either)."""
    nonfinite: int = 0
    """Samples holding NaN or inf."""
    first_nonfinite_step: int | None = None
    """The step i (sigmas[i] -> sigmas[i + 1]) in which a non-finite value first appeared; None if all are finite
    (or the sampler reports no steps to a callback)."""

    @property
    def finite(self) -> bool:
        return self.nonfinite == 0

    def nonfinite_reason(self) -> str:
        """One line on the non-finite samples, for errors and results rows."""
        return nonfinite_reason(self.nonfinite, len(self.samples), self.first_nonfinite_step, self.steps)


def nonfinite_reason(count: int, total: int, first_step: int | None, steps: int) -> str:
    where = "" if first_step is None else f", first in step {first_step} of {steps}"
    return f"{count} of {total} samples are not finite (NaN or inf{where})"


def sampler_spec(sampler: SamplerSpec | str) -> SamplerSpec:
    return sampler if isinstance(sampler, SamplerSpec) else get_sampler(sampler)


def from_infinity(sigmas: Tensor) -> bool:
    """Whether the schedule starts at sigma = inf (pure noise)."""
    return math.isinf(float(sigmas[0]))


def run_sampler(spec: SamplerSpec, model: Denoiser, start: Tensor, sigmas: Tensor, noise: NoiseSampler | None = None,
                **options: Any) -> Tensor:
    """Run ``spec`` on ``sigmas`` from the unit noise ``start`` (x = sigmas[0] * start), also from sigma = inf."""
    if not from_infinity(sigmas):
        return spec.fn(model, start * float(sigmas[0]), sigmas, noise=noise, **options)
    check_infinite_sigma(model)
    if spec.starts_at_infinity:
        return spec.fn(model, start, sigmas, noise=noise, **options)
    x = ddim_step(start, denoise(model, start, sigmas[0]), sigmas[0], sigmas[1])  # D(n; inf) + sigma_1 n
    return x if len(sigmas) == 2 else spec.fn(model, x, sigmas[1:], noise=noise, **after_first_step(options))


def sampler_levels(spec: SamplerSpec, sigmas: Tensor) -> Tensor:
    """The levels ``spec.fn`` is given for a run on ``sigmas``: after the step from sigma = inf that
    :func:`run_sampler` takes itself, unless the sampler starts there."""
    return sigmas[1:] if from_infinity(sigmas) and not spec.starts_at_infinity else sigmas


def after_first_step(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with a ``callback`` told the whole run's step numbers: the sampler's step i is step i + 1."""
    callback = options.get("callback")
    if callback is None:
        return options
    return {**options, "callback": lambda info: callback({**info, "i": info["i"] + 1})}


def check_infinite_sigma(model: Denoiser) -> None:
    """A one-line error, before any work, unless ``model`` can be evaluated at sigma = inf (its sigma_max is inf,
    and a checkpoint's parameterization has a limit there)."""
    if math.isfinite(model.sigma_max):
        raise SamplerzooError(f"the schedule starts at sigma = inf, but this model ends at sigma_max = "
                              f"{model.sigma_max:.4g}")
    check = getattr(model, "check_infinite_sigma", None)
    if check is not None:
        check()


def planned_nfe(spec: SamplerSpec, sigmas: Tensor, **options: Any) -> int | None:
    """The denoiser calls :func:`run_sampler` makes on ``sigmas`` (the step from infinity included); None when the
    sampler is adaptive."""
    if not from_infinity(sigmas) or spec.starts_at_infinity:
        return spec.nfe(sigmas, **options)
    rest = spec.nfe(sigmas[1:], **options) if len(sigmas) > 2 else 0
    return None if rest is None else 1 + rest


def resolve_final_step(model: Denoiser, sampler: SamplerSpec | str, nfe: int, final_step: FinalStep = "auto",
                       **options: Any) -> tuple[FinalStep, int]:
    """The concrete final step (``auto`` resolved) and the number of steps that spend exactly ``nfe``."""
    if final_step not in FINAL_STEPS:
        raise UnknownNameError("final step", final_step, FINAL_STEPS)
    spec = sampler_spec(sampler)
    if final_step != "auto":
        return final_step, spec.steps_for_nfe(nfe - (final_step == "denoise"), final_step == "zero", **options)
    try:
        return "zero", spec.steps_for_nfe(nfe, True, **options)
    except UnreachableNFEError as to_zero:
        try:
            return "sigma_min", spec.steps_for_nfe(nfe, False, **options)
        except UnreachableNFEError:
            raise to_zero from None


def sampling_plan(model: Denoiser, sampler: SamplerSpec | str, nfe: int, schedule: str = "karras",
                  final_step: FinalStep = "auto", schedule_options: dict[str, Any] | None = None,
                  **options: Any) -> tuple[FinalStep, Tensor]:
    """The concrete final step and the sigmas on which ``sampler`` (with ``options``) spends exactly ``nfe``
    network evaluations in total, the step from sigma = inf included where the schedule starts there."""
    spec = sampler_spec(sampler)
    build = get_schedule(schedule)

    def levels(steps: int, final: FinalStep) -> Tensor:
        sigmas = build(steps if final == "zero" else steps + 1, model, **(schedule_options or {}))
        return sigmas if final == "zero" else sigmas[:-1]

    def starts_at_infinity() -> bool:
        """Only a model with sigma_max = inf starts there, and a schedule that does so does it at any length (a
        fixed-length schedule file answers with its own levels): then the step from infinity spends one call of
        the budget and the sampler's own steps follow it."""
        if spec.starts_at_infinity or not math.isinf(model.sigma_max):
            return False
        try:
            return from_infinity(levels(1, "zero"))
        except ScheduleLengthError as fixed_length:
            return math.isinf(fixed_length.sigmas[0])

    infinite = starts_at_infinity()
    budget = nfe - 1 if infinite else nfe
    if infinite and budget == 0 and final_step in ("auto", "zero"):
        return "zero", levels(1, "zero")
    try:
        final, steps = resolve_final_step(model, spec, budget, final_step, **options)
    except UnreachableNFEError as unreachable:
        if not infinite:
            raise
        raise UnreachableNFEError(f"{unreachable} (the sampler's own budget: on this model the first call of NFE {nfe} "
                                  "is the step from sigma = inf; add 1 to each for the total)") from None
    return final, levels(steps + infinite, final)


def generate(model: Denoiser, sampler: SamplerSpec | str, nfe: int, seeds: Sequence[int],
             sample_shape: Sequence[int], *, schedule: str = "karras", schedule_options: dict[str, Any] | None = None,
             final_step: FinalStep = "auto", device: torch.device | str = "cpu",
             dtype: torch.dtype = torch.float32, noise: NoiseSource = "counter", strict: bool = False,
             **options: Any) -> Generation:
    """Sample ``len(seeds)`` images spending exactly ``nfe`` denoiser calls each (counted, and checked); the
    network forwards they cost are counted too.

    Sample i's start and step noise come from its seed alone, through the ``noise`` source: ``counter`` (the
    default; :class:`~samplerzoo.noise.CounterNoise`, hashed for the whole batch at once) or ``torch`` (one
    ``torch.Generator`` per sample, :class:`~samplerzoo.noise.SeededNoise`: NVlabs/edm's draws, and samplerzoo's
    before the counter source). The two give different images for the same seed.

    Samples holding NaN or inf are counted in ``Generation.nonfinite``; with ``strict`` they raise NonFiniteError.
    The state is in ``dtype``; a network runs in its own dtype (cast it with ``.to(dtype)``)."""
    if not len(seeds):
        raise SamplerzooError("no seeds given; accepted: one seed per sample, at least one")
    start = seeded_noise(noise, seeds, sample_shape, device=device, dtype=dtype)  # an unknown name fails here
    spec = sampler_spec(sampler)
    if spec.needs_unconditional:  # CFG++: refuse an unguided model before any work
        require_unconditional(model, spec.name)
    callback = options.pop("callback", None)
    final_step, sigmas = sampling_plan(model, spec, nfe, schedule, final_step, schedule_options, **options)
    if spec.check is not None:
        spec.check(tuple(sample_shape), model=model, sigmas=sampler_levels(spec, sigmas), **options)
    steps_noise: NoiseSampler = start
    if spec.brownian:
        finite = sigmas[torch.isfinite(sigmas)]  # the sampler's own levels: the step from infinity draws no noise
        steps_noise = BrownianTreeNoise(seeds, sample_shape, float(finite[finite > 0].min()), float(finite.max()),
                                        device=device, dtype=dtype)
    counter = CountingDenoiser(model)
    watch = FiniteWatch(callback)
    hooks = {"callback": watch} if takes_callback(spec.fn) else {} if callback is None else {"callback": callback}
    with no_autograd():
        samples = run_sampler(spec, counter, start.randn(), sigmas, steps_noise, **options, **hooks)
        if final_step == "denoise":
            samples = denoise(counter, samples, sigmas[-1])
    samples = samples.clone()  # an ordinary tensor again (an inference tensor cannot be changed in place later)
    declared = planned_nfe(spec, sigmas, **options)
    if declared is not None:
        declared = declared + (final_step == "denoise")
    if declared is not None and counter.calls != declared:
        raise SamplerzooError(f"sampler {spec.name!r} declared {declared} evaluations but made {counter.calls}")
    run = Generation(samples, sigmas, len(sigmas) - 1, final_step, declared, counter.calls, counter.forwards, noise,
                     *watch.report(samples))
    if strict and not run.finite:
        raise NonFiniteError(f"sampler {spec.name!r}: {run.nonfinite_reason()}")
    return run
