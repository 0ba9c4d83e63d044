"""Schedules on a model's own time and trained levels, and in flow or trigonometric time.

ComfyUI's ``simple``, ``normal``, ``sgm_uniform`` and ``beta`` (comfy/samplers.py) read a model's levels table
(``model_sampling.sigmas``) or its timestep map; here the same come from the checkpoint: the trained table of a
discrete model (the shifted t_i of a flow model), or for a continuous one ComfyUI's 1000 log-uniform levels, and
the model's time (a discrete timestep, continuous VP t, flow time with the model's shift, or EDM's ln(sigma) / 4).
``kl_optimal`` is uniform in atan(sigma) and ``linear_quadratic`` (Mochi) is defined in flow time t = sigma /
(1 + sigma); both reach sigma = inf. Same contract as ``schedules.py``: n decreasing float64 sigmas, then 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
from torch import Tensor

from .errors import SamplerzooError
from .flow import FlowMatch, TimeShift, flow_sigma, flow_time, stretch_to_terminal
from .noise_schedules import LinearBetaSDE
from .schedules import HasSigmaRange, append_zero, at_timesteps, check_steps

CONTINUOUS_LEVELS = 1000
"""ComfyUI's ModelSamplingContinuousEDM: 1000 log-uniform levels over [sigma_min, sigma_max]."""


def levels(model: HasSigmaRange, name: str) -> Tensor:
    """The model's ascending levels: its trained table, or ComfyUI's log-uniform levels of a continuous model."""
    table = getattr(model, "sigma_table", None)
    if table is not None:
        return table.to(torch.float64).cpu()
    if math.isinf(model.sigma_max):
        raise SamplerzooError(f"schedule {name!r} needs trained levels or a finite sigma_max; this model has "
                              "neither (use kl_optimal, linear_quadratic or normal)")
    return torch.linspace(math.log(model.sigma_min), math.log(model.sigma_max), CONTINUOUS_LEVELS,
                          dtype=torch.float64).exp()


def _distinct(sigmas: Tensor, name: str, n: int) -> Tensor:
    if (sigmas[1:] >= sigmas[:-1]).any():
        raise SamplerzooError(f"schedule {name!r}: {n} steps repeat a trained level of this model; use fewer steps")
    return append_zero(sigmas)


def simple(n: int, model: HasSigmaRange) -> Tensor:
    """Every (T/n)-th level from the top, sigmas[-(1 + floor(k T / n))], k = 0..n-1 (ComfyUI simple_scheduler): on
    a flow model the shifted linear times shift(1 - k/n)."""
    check_steps(n)
    table = levels(model, "simple")
    stride = len(table) / n
    return _distinct(table[[-(1 + int(k * stride)) for k in range(n)]], "simple", n)


def beta(n: int, model: HasSigmaRange, alpha: float = 0.6, beta: float = 0.6) -> Tensor:
    """Levels at timesteps rint(BetaPPF(1 - k/n; alpha, beta) (T - 1)), k = 0..n-1 (Lee et al. 2024, Beta Sampling
    is All You Need, arXiv:2407.12173; ComfyUI beta_scheduler). diffusers' use_beta_sigmas maps the quantiles onto
    [sigma_min, sigma_max] linearly instead."""
    from scipy.stats import beta as beta_distribution

    check_steps(n)
    table = levels(model, "beta")
    quantiles = 1 - torch.arange(n, dtype=torch.float64) / n
    timesteps = torch.from_numpy(beta_distribution.ppf(quantiles.numpy(), alpha, beta)) * (len(table) - 1)
    return _distinct(table[timesteps.round().long()], "beta", n)


class ModelTime(NamedTuple):
    """A model's time at sigma_max and sigma_min and its sigma(time) (ComfyUI's model_sampling.timestep / sigma)."""

    start: float
    end: float
    sigma: Callable[[Tensor], Tensor]


def model_time(model: HasSigmaRange, name: str, shift: float | None = None, mu: float | None = None) -> ModelTime:
    """The time ``normal`` and ``sgm_uniform`` space uniformly. A flow model's is the flow time mapped through its
    shift, sigma(u) = sigma_of_t(shift(u)) (``shift`` / ``mu`` override it), as ComfyUI and diffusers do."""
    schedule = getattr(model, "schedule", None)
    if isinstance(schedule, FlowMatch):
        kind = schedule.time_shift.kind
        warp = schedule.time_shift if shift is None and mu is None else TimeShift(shift or 1.0, mu, kind)
        return ModelTime(1.0, float(flow_time(torch.tensor(model.sigma_min, dtype=torch.float64))),
                         lambda u: flow_sigma(warp(u)))
    if shift is not None or mu is not None:
        raise SamplerzooError(f"schedule {name!r}: shift and mu apply to flow models only")
    table = getattr(model, "sigma_table", None)
    if table is not None:
        steps = table.to(torch.float64).cpu()
        return ModelTime(len(steps) - 1.0, 0.0, lambda u: at_timesteps(steps, u, "log"))
    if isinstance(schedule, LinearBetaSDE):  # VP and sub-VP: their own t
        top, bottom = (torch.tensor(s, dtype=torch.float64) for s in (model.sigma_max, model.sigma_min))
        return ModelTime(float(schedule.t(top)), float(schedule.t(bottom)), schedule.sigma)
    lowest, highest = levels(model, name)[[0, -1]]
    return ModelTime(float(highest.log()) / 4, float(lowest.log()) / 4, lambda u: (4 * u).exp())


def normal(n: int, model: HasSigmaRange, shift: float | None = None, mu: float | None = None) -> Tensor:
    """n times uniform from the model's time at sigma_max to its time at sigma_min (ComfyUI normal_scheduler). On a
    flow model these are diffusers' FlowMatchEulerDiscreteScheduler.set_timesteps: shift(linspace(1, t_min, n)),
    t_min the smallest trained (already shifted) time, then stretched to ``shift_terminal`` when the config sets
    it; on a discrete VP model, ``linspace``; on EDM, ``exponential``."""
    check_steps(n)
    time = model_time(model, "normal", shift, mu)
    sigmas = time.sigma(torch.linspace(time.start, time.end, n, dtype=torch.float64))
    terminal = getattr(getattr(model, "schedule", None), "shift_terminal", None)
    if terminal:
        sigmas = flow_sigma(stretch_to_terminal(flow_time(sigmas), terminal))
    return append_zero(sigmas)


def sgm_uniform(n: int, model: HasSigmaRange, shift: float | None = None, mu: float | None = None) -> Tensor:
    """n + 1 times uniform over the model's time range, the last (at sigma_min) dropped before 0 is appended
    (ComfyUI normal_scheduler(sgm=True), after Stability's SGM)."""
    check_steps(n)
    time = model_time(model, "sgm_uniform", shift, mu)
    return append_zero(time.sigma(torch.linspace(time.start, time.end, n + 1, dtype=torch.float64)[:-1]))


def kl_optimal(n: int, model: HasSigmaRange) -> Tensor:
    """sigma_i = tan((1 - i/(n-1)) atan(sigma_max) + (i/(n-1)) atan(sigma_min)) (Sabour et al. 2024, Align Your
    Steps, App. on the KL-optimal schedule; AUTOMATIC1111 PR 15608; ComfyUI kl_optimal_scheduler): uniform in
    atan(sigma), so an infinite sigma_max starts exactly at inf."""
    check_steps(n)
    ramp = torch.arange(n, dtype=torch.float64) / max(n - 1, 1)
    sigmas = (ramp * math.atan(model.sigma_min) + (1 - ramp) * math.atan(model.sigma_max)).tan()
    if math.isinf(model.sigma_max):
        sigmas[0] = math.inf  # tan of the float nearest pi/2 is 1.6e16
    return append_zero(sigmas)


def linear_quadratic(n: int, model: HasSigmaRange, threshold_noise: float = 0.025,
                     linear_steps: int | None = None) -> Tensor:
    """Mochi's schedule in flow time (Genmo 2024, mochi_preview infer.py; ComfyUI linear_quadratic_schedule): the
    first ``linear_steps`` (n // 2) lower the noise linearly by ``threshold_noise`` in all, the rest quadratically to
    0; scaled to the model's largest flow time t(sigma_max) (1 on a flow model). ComfyUI scales by sigma_max, which
    is that on its flow models but a sigma on others."""
    check_steps(n)
    linear_steps = n // 2 if linear_steps is None else linear_steps
    if n > 1 and not 0 < linear_steps < n:
        raise SamplerzooError(f"linear_quadratic needs 0 < linear_steps < {n} steps, got {linear_steps}")
    times = torch.ones(1, dtype=torch.float64) if n == 1 else 1 - mochi_levels(n, threshold_noise, linear_steps)
    top = flow_time(torch.tensor(model.sigma_max, dtype=torch.float64))
    return append_zero(flow_sigma(times * top))


def mochi_levels(n: int, threshold_noise: float, linear_steps: int) -> Tensor:
    """Mochi's n noise levels before 1 - t: linear up to ``threshold_noise``, then a quadratic that reaches 1 at n."""
    linear = [i * threshold_noise / linear_steps for i in range(linear_steps)]
    rest = n - linear_steps
    gap = linear_steps - threshold_noise * n
    quadratic_coef = gap / (linear_steps * rest**2)
    linear_coef = threshold_noise / linear_steps - 2 * gap / rest**2
    const = quadratic_coef * linear_steps**2
    quadratic = [quadratic_coef * i**2 + linear_coef * i + const for i in range(linear_steps, n)]
    return torch.tensor(linear + quadratic, dtype=torch.float64)


SCHEDULES: list[tuple[str, Callable[..., Tensor], str, dict[str, Any]]] = [
    ("simple", simple, "every (T/n)-th trained level from the top (ComfyUI; shifted linear t on flow models)",
     {"paper": "ComfyUI simple_scheduler; Esser et al. 2024 (SD3), Eq. 23 shift",
      "reference": "ComfyUI simple_scheduler; diffusers FlowMatchEulerDiscreteScheduler"}),
    ("normal", normal, "uniform in the model's time (ComfyUI); on flow models diffusers' FlowMatchEuler timesteps",
     {"aliases": ("flow_match",), "paper": "ComfyUI normal_scheduler; k-diffusion DiscreteSchedule",
      "reference": "k_diffusion.external.DiscreteSchedule.get_sigmas; diffusers FlowMatchEulerDiscreteScheduler"}),
    ("sgm_uniform", sgm_uniform, "uniform in the model's time, n+1 points, last dropped (ComfyUI, SGM)",
     {"paper": "Stability AI generative-models (SGM) discretization",
      "reference": "ComfyUI normal_scheduler(sgm=True)"}),
    ("beta", beta, "trained levels at Beta(0.6, 0.6) quantiles (Lee et al. 2024; ComfyUI)",
     {"paper": "Lee et al. 2024, Beta Sampling is All You Need (arXiv:2407.12173)",
      "reference": "ComfyUI beta_scheduler"}),
    ("kl_optimal", kl_optimal, "uniform in atan(sigma) (Sabour et al. 2024; ComfyUI); starts at inf",
     {"paper": "Sabour, Fidler & Kreis 2024, Align Your Steps, App. (KL-optimal)",
      "reference": "ComfyUI kl_optimal_scheduler"}),
    ("linear_quadratic", linear_quadratic, "Mochi's linear-then-quadratic flow times (ComfyUI)",
     {"paper": "Genmo 2024, Mochi 1 (mochi_preview infer.py)", "reference": "ComfyUI linear_quadratic_schedule"}),
]
