"""Sampling schedules: ``schedule(n, model, **options) -> sigmas``.

A schedule returns ``n + 1`` float64 sigmas on the CPU: ``n`` decreasing noise levels followed by 0.
``model`` is anything with ``sigma_min`` / ``sigma_max`` (a Denoiser or a :class:`SigmaRange`); the
DDIM-style spacings also need its ``sigma_table`` of trained levels. A model that starts from pure noise has
sigma_max = inf (and its table ends in inf): karras, exponential and polyexponential then start from its largest
finite level, linspace and trailing start at inf (see ``sampling.py``). More schedules: ``time_schedules.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from .errors import SamplerzooError
from .noise_schedules import ContinuousVP, interp


class HasSigmaRange(Protocol):
    @property
    def sigma_min(self) -> float: ...

    @property
    def sigma_max(self) -> float: ...


@dataclass(frozen=True)
class SigmaRange:
    """A bare sigma range (and optional trained table), for building schedules without a model."""

    sigma_min: float = 0.002
    sigma_max: float = 80.0
    sigma_table: Tensor | None = None


def append_zero(sigmas: Tensor) -> Tensor:
    return torch.cat([sigmas.to(torch.float64).cpu(), sigmas.new_zeros(1, dtype=torch.float64, device="cpu")])


def check_steps(n: int) -> None:
    if n < 1:
        raise SamplerzooError(f"a schedule needs at least 1 step, got {n}")


def finite_sigma_max(model: HasSigmaRange, what: str) -> float:
    """sigma_max, or where it is inf (a model that starts from pure noise) its largest finite trained level: the top
    of a schedule defined by its ends in log sigma, which cannot start at inf (``what`` names the user, for the
    error)."""
    if math.isfinite(model.sigma_max):
        return model.sigma_max
    table = getattr(model, "sigma_table", None)
    finite = None if table is None else table[torch.isfinite(table)]
    if finite is None or not len(finite):
        raise SamplerzooError(f"{what} needs a finite sigma_max; this model's is inf and it has no finite trained "
                              "levels (schedules that start at inf: kl_optimal, linear_quadratic, normal)")
    return float(finite.max())


def karras(n: int, model: HasSigmaRange, rho: float = 7.0) -> Tensor:
    """sigma_i = (smax^(1/rho) + i/(n-1) (smin^(1/rho) - smax^(1/rho)))^rho (Karras et al. 2022, Eq. 5)."""
    check_steps(n)
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    lo, hi = model.sigma_min ** (1 / rho), finite_sigma_max(model, "schedule 'karras'") ** (1 / rho)
    return append_zero((hi + ramp * (lo - hi)) ** rho)


def exponential(n: int, model: HasSigmaRange) -> Tensor:
    """Log-uniform sigmas, i.e. uniform steps in log-SNR lambda = -log sigma (Lu et al. 2022, Sec. 3.3)."""
    check_steps(n)
    top = finite_sigma_max(model, "schedule 'exponential'")
    return append_zero(torch.linspace(math.log(top), math.log(model.sigma_min), n, dtype=torch.float64).exp())


def polyexponential(n: int, model: HasSigmaRange, rho: float = 1.0) -> Tensor:
    """log sigma follows a polynomial ramp of degree rho (k-diffusion's get_sigmas_polyexponential)."""
    check_steps(n)
    ramp = torch.linspace(1, 0, n, dtype=torch.float64) ** rho
    log_min, log_max = math.log(model.sigma_min), math.log(finite_sigma_max(model, "schedule 'polyexponential'"))
    return append_zero((ramp * (log_max - log_min) + log_min).exp())


def vp(n: int, model: HasSigmaRange, beta_d: float = 19.9, beta_min: float = 0.1, eps_s: float = 1e-3) -> Tensor:
    """Time-uniform steps t_i = 1 + i/(n-1) (eps_s - 1) of the continuous VP SDE (Karras et al. 2022, Table 1)."""
    check_steps(n)
    t = torch.linspace(1, eps_s, n, dtype=torch.float64)
    return append_zero(ContinuousVP(beta_min=beta_min, beta_d=beta_d).sigma(t))


def trained_table(model: HasSigmaRange, name: str) -> Tensor:
    table = getattr(model, "sigma_table", None)
    if table is None:
        raise SamplerzooError(f"schedule {name!r} needs a discrete-time model (one with a trained sigma table)")
    return table.to(torch.float64).cpu()


def at_timesteps(table: Tensor, timesteps: Tensor, interpolation: str) -> Tensor:
    """The table's sigmas at fractional timesteps, interpolated linearly in log sigma, in sigma, or in log alpha =
    -log(1 + sigma^2) / 2 (DPM-Solver's discrete NoiseScheduleVP)."""
    steps = torch.arange(len(table), dtype=torch.float64)
    if interpolation == "log":
        return interp(timesteps, steps, table.log()).exp()
    if interpolation == "linear":
        return interp(timesteps, steps, table)
    if interpolation == "log_alpha":
        return torch.expm1(interp(timesteps, steps, -0.5 * torch.log1p(table**2)) * -2).sqrt()
    raise SamplerzooError(f"unknown interpolation {interpolation!r}; known: log, linear, log_alpha")


def even_timesteps(n: int, model: HasSigmaRange, name: str, interpolation: str) -> Tensor:
    """n timesteps evenly spaced from T-1 to 0 over the trained table, and 0."""
    check_steps(n)
    table = trained_table(model, name)
    return append_zero(at_timesteps(table, torch.linspace(len(table) - 1, 0, n, dtype=torch.float64), interpolation))


def linspace(n: int, model: HasSigmaRange, interpolation: str = "log") -> Tensor:
    """Timesteps evenly spaced from T-1 to 0, fractional ones interpolated in log sigma (k-diffusion) or in
    sigma (diffusers' Euler family, ``interpolation="linear"``) (Lin et al. 2024, Table 2)."""
    return even_timesteps(n, model, "linspace", interpolation)


def discrete(n: int, model: HasSigmaRange) -> Tensor:
    """DPM-Solver's time-uniform steps on a discrete-time model: t evenly spaced between the first and last trained
    levels, log alpha linear in t between them (Lu et al. 2022, NoiseScheduleVP('discrete'), skip_type
    'time_uniform'; diff-sampler's schedule_type 'discrete' with rho = 1)."""
    return even_timesteps(n, model, "discrete", "log_alpha")


def leading(n: int, model: HasSigmaRange, steps_offset: int = 0) -> Tensor:
    """DDIM's spacing t = k * (T // n) + offset, k = n-1..0 (Song et al. 2021; diffusers ``leading``)."""
    check_steps(n)
    table = trained_table(model, "leading")
    if n > len(table):
        raise SamplerzooError(f"'leading' spacing allows at most {len(table)} steps, got {n}")
    timesteps = torch.arange(n - 1, -1, -1) * (len(table) // n) + steps_offset
    return append_zero(table[timesteps.clamp(max=len(table) - 1)])


def trailing(n: int, model: HasSigmaRange) -> Tensor:
    """Timesteps round(T - k T/n) - 1, k = 0..n-1: starts at the last trained level (Lin et al. 2024, Table 2).

    The step is formed as numpy's ``arange(T, 0, -T/n)`` forms it, ((T - T/n) - T), so ties round exactly
    as in diffusers' ``timestep_spacing="trailing"`` (48 steps: level 936, not 937).
    """
    check_steps(n)
    table = trained_table(model, "trailing")
    if n > len(table):
        raise SamplerzooError(f"'trailing' spacing allows at most {len(table)} steps, got {n}")
    size = float(len(table))
    step = (size - size / n) - size
    timesteps = torch.round(size + torch.arange(n, dtype=torch.float64) * step).long() - 1
    return append_zero(table[timesteps])
