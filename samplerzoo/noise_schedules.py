"""Training noise schedules, seen from the sigma frame.

Each schedule says how a network was conditioned: ``c_in(sigma)`` scales the network input and
``c_noise(sigma)`` is the time input it was trained with (Karras et al. 2022, Table 1). VP schedules
relate the two frames by ``alpha_bar = 1 / (1 + sigma^2)`` and scale inputs by ``1 / sqrt(1 + sigma^2)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Protocol

import torch
from torch import Tensor

from .denoiser import NoiseLevels
from .errors import SamplerzooError, UnknownNameError
from .monotone_cubic import MonotoneCubic

SigmaToT = Literal["log", "linear", "nearest", "smooth"]
SIGMA_TO_T_MODES: tuple[str, ...] = ("log", "linear", "nearest", "smooth")


class NoiseSchedule(NoiseLevels, Protocol):
    """How a network was conditioned on noise: input scaling, time input, training sigma distribution."""

    def c_in(self, sigma: Tensor) -> Tensor: ...

    def c_noise(self, sigma: Tensor) -> Tensor: ...

    def training_sigmas(self, n: int, generator: torch.Generator) -> Tensor: ...


def sigma_from_alpha_bar(alpha_bar: Tensor) -> Tensor:
    """sigma = sqrt((1 - alpha_bar) / alpha_bar)."""
    return ((1 - alpha_bar) / alpha_bar).sqrt()


def vp_input_scale(sigma: Tensor) -> Tensor:
    """s = sqrt(alpha_bar) = 1 / sqrt(1 + sigma^2): the VP model sees s * x."""
    return (sigma**2 + 1).rsqrt()


def interp(x: Tensor, xp: Tensor, fp: Tensor) -> Tensor:
    """Piecewise-linear interpolation of ``fp`` over increasing ``xp``, clamped at the ends (numpy.interp)."""
    i = torch.searchsorted(xp, x).clamp(1, len(xp) - 1)
    x0, x1, f0, f1 = xp[i - 1], xp[i], fp[i - 1], fp[i]
    w = ((x - x0) / (x1 - x0)).clamp(0, 1)
    return f0 + w * (f1 - f0)


def zero_terminal_snr(alpha_bar: Tensor) -> Tensor:
    """Shift and scale sqrt(alpha_bar) so that it ends at 0 and keeps its first value (Lin et al. 2024, Common
    Diffusion Noise Schedules and Sample Steps are Flawed, Alg. 1): alpha_bar_T = 0 exactly (sigma_T = inf)."""
    root = alpha_bar.sqrt()
    first, last = root[0].clone(), root[-1].clone()
    root = (root - last) * (first / (first - last))
    return root**2


def rescale_zero_terminal_snr(betas: Tensor) -> Tensor:
    """The betas of :func:`zero_terminal_snr` (diffusers' ``rescale_betas_zero_snr``): the last beta becomes 1."""
    alpha_bar = zero_terminal_snr(torch.cumprod(1 - betas, 0))
    alphas = torch.cat([alpha_bar[:1], alpha_bar[1:] / alpha_bar[:-1]])
    return 1 - alphas


def smooth_sigma_to_t(table: Tensor) -> MonotoneCubic:
    """t as a monotone cubic (PCHIP) in log sigma through the trained levels (log table_t, t)."""
    levels = table.log()
    if not bool(torch.isfinite(levels).all() and (levels.diff() > 0).all()):
        raise SamplerzooError("sigma_to_t 'smooth' needs finite, strictly increasing trained sigmas; this table "
                              "has an infinite or repeated level (use log, linear or nearest)")
    return MonotoneCubic(levels, torch.arange(len(levels), dtype=torch.float64))


class DiscreteVP:
    """A discrete-time VP model trained on ``alphas_cumprod`` (DDPM, iDDPM, LDM). With zero terminal SNR (the last
    alpha_bar = 0, diffusers' ``rescale_betas_zero_snr``) the last trained level is sigma = inf.

    ``sigma_to_t`` chooses how a sigma between trained levels becomes a timestep: ``log`` interpolates
    linearly in log sigma (k-diffusion, diffusers' ``_sigma_to_t``), ``linear`` interpolates linearly in
    sigma (diffusers' Euler-family ``interpolation_type="linear"``), ``nearest`` rounds to the closest
    trained level (ComfyUI, iDDPM), ``smooth`` interpolates t in log sigma with a monotone cubic (PCHIP,
    :class:`~samplerzoo.monotone_cubic.MonotoneCubic`): the same timesteps on the trained levels, and a
    continuously differentiable t(sigma) between them, where ``log``'s slope jumps at every level. The
    likelihood's adaptive ODE solver uses ``smooth`` (:func:`samplerzoo.likelihood.smooth_time`); samplers
    keep the checkpoint's map (``log`` by default, as k-diffusion and diffusers).
    """

    sigma_data = 1.0

    def __init__(self, alphas_cumprod: Tensor, sigma_to_t: SigmaToT = "log") -> None:
        if sigma_to_t not in SIGMA_TO_T_MODES:
            raise UnknownNameError("sigma_to_t mode", sigma_to_t, SIGMA_TO_T_MODES)
        self.alphas_cumprod = torch.as_tensor(alphas_cumprod, dtype=torch.float64)
        self.sigma_to_t = sigma_to_t
        self._table = sigma_from_alpha_bar(self.alphas_cumprod)
        self.sigma_min = float(self._table[0])
        self.sigma_max = float(self._table[-1])
        self._smooth = smooth_sigma_to_t(self._table) if sigma_to_t == "smooth" else None

    def with_sigma_to_t(self, sigma_to_t: SigmaToT) -> DiscreteVP:
        """The same trained levels read through another sigma -> t map."""
        return type(self)(self.alphas_cumprod, sigma_to_t)

    @classmethod
    def linear_betas(cls, beta_start: float = 1e-4, beta_end: float = 0.02, steps: int = 1000,
                     sigma_to_t: SigmaToT = "log", zero_terminal_snr: bool = False) -> DiscreteVP:
        """DDPM's linear beta schedule (Ho et al. 2020, Sec. 4), optionally rescaled to zero terminal SNR."""
        betas = torch.linspace(beta_start, beta_end, steps, dtype=torch.float64)
        if zero_terminal_snr:
            betas = rescale_zero_terminal_snr(betas)
        return cls(torch.cumprod(1 - betas, 0), sigma_to_t)

    @property
    def sigma_table(self) -> Tensor:
        return self._table

    def c_in(self, sigma: Tensor) -> Tensor:
        return vp_input_scale(sigma)

    def c_noise(self, sigma: Tensor) -> Tensor:
        """The (possibly fractional) training timestep for ``sigma``."""
        return self.t(sigma)

    def training_sigmas(self, n: int, generator: torch.Generator) -> Tensor:
        """t ~ U{0, ..., T-1} (Ho et al. 2020, Alg. 1)."""
        return self._table[torch.randint(len(self._table), (n,), generator=generator)].float()

    def t(self, sigma: Tensor) -> Tensor:
        table = self._table.to(sigma.device, torch.float64)
        steps = torch.arange(len(table), device=sigma.device, dtype=torch.float64)
        s = sigma.to(torch.float64)
        if self._smooth is not None:
            t = self._smooth(s.log())
        elif self.sigma_to_t == "nearest":
            t = (s.log()[..., None] - table.log()).abs().argmin(-1).to(torch.float64)
        elif self.sigma_to_t == "log":
            t = interp(s.log(), table.log(), steps)
        else:
            t = interp(s, table, steps)
        t = torch.where(torch.isinf(s), float(len(table) - 1), t)  # zero terminal SNR: sigma = inf is the last level
        return t.to(sigma.dtype)

    def sigma(self, t: Tensor) -> Tensor:
        """Inverse of :meth:`t` for the chosen interpolation."""
        table = self._table.to(t.device, torch.float64)
        steps = torch.arange(len(table), device=t.device, dtype=torch.float64)
        u = t.to(torch.float64)
        if self._smooth is not None:
            s = self._smooth.inverse(u).exp()
        elif self.sigma_to_t == "nearest":
            s = table[u.round().long().clamp(0, len(table) - 1)]
        elif self.sigma_to_t == "log":
            s = interp(u, steps, table.log()).exp()
        else:
            s = interp(u, steps, table)
        return s.to(t.dtype)


def time_of_integral(integral: Tensor, beta_min: float, beta_d: float) -> Tensor:
    """The t >= 0 at which int_0^t beta = beta_d/2 t^2 + beta_min t equals ``integral`` (linear beta(t))."""
    return ((beta_min**2 + 2 * beta_d * integral).sqrt() - beta_min) / beta_d


@dataclass(frozen=True)
class LinearBetaSDE:
    """What the VP and sub-VP SDEs share: beta(t) = beta_min + beta_d t on [eps_t, 1] and the network's time input
    ``(M - 1) * t`` (EDM's VPPrecond, score_sde's DDPM++ cont.). Subclasses give ``sigma(t)``, its inverse ``t`` and
    ``c_in``."""

    beta_min: float = 0.1
    beta_d: float = 19.9
    eps_t: float = 1e-5
    M: int = 1000
    sigma_data: float = 1.0

    def integral(self, t: Tensor | float) -> Tensor:
        """B(t) = int_0^t beta = beta_d/2 t^2 + beta_min t."""
        t = torch.as_tensor(t, dtype=torch.float64)
        return 0.5 * self.beta_d * t**2 + self.beta_min * t

    def sigma(self, t: Tensor | float) -> Tensor:
        raise NotImplementedError

    def t(self, sigma: Tensor) -> Tensor:
        raise NotImplementedError

    @property
    def sigma_min(self) -> float:
        return float(self.sigma(self.eps_t))

    @property
    def sigma_max(self) -> float:
        return float(self.sigma(1.0))

    @property
    def sigma_table(self) -> None:
        return None

    def c_noise(self, sigma: Tensor) -> Tensor:
        return (self.M - 1) * self.t(sigma)

    def training_sigmas(self, n: int, generator: torch.Generator) -> Tensor:
        """t ~ U(eps_t, 1) (Karras et al. 2022, Table 1; score_sde's continuous training)."""
        t = self.eps_t + (1 - self.eps_t) * torch.rand(n, generator=generator, dtype=torch.float64)
        return self.sigma(t).float()


@dataclass(frozen=True)
class ContinuousVP(LinearBetaSDE):
    """Continuous VP SDE, beta(t) = beta_min + beta_d * t (Song et al. 2021; Karras et al. 2022, Table 1):
    sigma(t) = sqrt(e^B(t) - 1)."""

    def sigma(self, t: Tensor | float) -> Tensor:
        return (torch.exp(self.integral(t)) - 1).sqrt()

    def t(self, sigma: Tensor) -> Tensor:
        """Solve beta_d/2 t^2 + beta_min t = log(1 + sigma^2) for t >= 0."""
        return time_of_integral(torch.log1p(sigma**2), self.beta_min, self.beta_d)

    def c_in(self, sigma: Tensor) -> Tensor:
        return vp_input_scale(sigma)


@dataclass(frozen=True)
class SubVP(LinearBetaSDE):
    """The sub-VP SDE, dx = -beta/2 x dt + sqrt(beta (1 - e^(-2 int_0^t beta))) dw, beta(t) = beta_min + beta_d t
    (Song et al. 2021, Eq. 29; the seeds' Liu slides): q(x_t | x_0) = N(zeta x_0, (1 - zeta^2)^2 I) with
    zeta = e^(-B/2), B(t) = int_0^t beta = beta_d t^2 / 2 + beta_min t.

    In the sigma frame x_t / zeta = x_0 + sigma n with sigma = (1 - zeta^2) / zeta = 2 sinh(B / 2). The network sees
    zeta * x and the time input (M - 1) t, and predicts the noise, as score_sde's continuous sub-VP models do.
    """

    def sigma(self, t: Tensor | float) -> Tensor:
        return 2 * torch.sinh(self.integral(t) / 2)

    def t(self, sigma: Tensor) -> Tensor:
        """Invert sigma = 2 sinh(B(t) / 2): B = 2 asinh(sigma / 2), then solve the quadratic for t >= 0."""
        return time_of_integral(2 * torch.asinh(sigma / 2), self.beta_min, self.beta_d)

    def c_in(self, sigma: Tensor) -> Tensor:
        """zeta = e^(-B/2) = 2 / (sigma + sqrt(sigma^2 + 4)), the root of zeta^2 + sigma zeta - 1 = 0."""
        return 2 / (sigma + (sigma**2 + 4).sqrt())


@dataclass(frozen=True)
class VE:
    """Variance-exploding SDE, sigma(t) = sqrt(t) (Song et al. 2021; Karras et al. 2022, Table 1).

    The model sees x unscaled and the time input ``ln(sigma / 2)``.
    """

    sigma_min: float = 0.02
    sigma_max: float = 100.0
    sigma_data: float = 1.0

    @property
    def sigma_table(self) -> None:
        return None

    def c_in(self, sigma: Tensor) -> Tensor:
        return torch.ones_like(sigma)

    def c_noise(self, sigma: Tensor) -> Tensor:
        return (0.5 * sigma).log()

    def training_sigmas(self, n: int, generator: torch.Generator) -> Tensor:
        """ln sigma ~ U(ln sigma_min, ln sigma_max) (Karras et al. 2022, Table 1)."""
        u = torch.rand(n, generator=generator)
        return (math.log(self.sigma_min) + u * math.log(self.sigma_max / self.sigma_min)).exp()


@dataclass(frozen=True)
class EDM:
    """EDM preconditioning's noise conditioning (Karras et al. 2022, Table 1, Eq. 7)."""

    sigma_min: float = 0.002
    sigma_max: float = 80.0
    sigma_data: float = 0.5
    P_mean: float = -1.2
    P_std: float = 1.2

    @property
    def sigma_table(self) -> None:
        return None

    def c_in(self, sigma: Tensor) -> Tensor:
        return (sigma**2 + self.sigma_data**2).rsqrt()

    def c_noise(self, sigma: Tensor) -> Tensor:
        return sigma.log() / 4

    def training_sigmas(self, n: int, generator: torch.Generator) -> Tensor:
        """ln sigma ~ N(P_mean, P_std^2) (Karras et al. 2022, Table 1)."""
        return (self.P_mean + self.P_std * torch.randn(n, generator=generator)).exp()


@dataclass(frozen=True)
class ConsistencyEDM(EDM):
    """Consistency models' noise conditioning (Song et al. 2023, App. C; diffusers' CMStochasticIterativeScheduler):
    EDM's c_in, time input c_noise = 1000 ln(sigma) / 4 (its ``sigma_to_t``, ln(sigma + 1e-44) * 250)."""

    def c_noise(self, sigma: Tensor) -> Tensor:
        return 1000 * 0.25 * torch.log(sigma + 1e-44)
