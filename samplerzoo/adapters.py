"""Adapters: a network predicting epsilon, v, x0, a score, EDM's F or a flow velocity becomes a Denoiser.

Every adapter has the shape of EDM's preconditioners (Karras et al. 2022, Eq. 7):
``D(x, sigma) = c_skip * x + c_out * net(c_in * x, c_noise)``. The noise schedule supplies ``c_in``
and ``c_noise`` (how the network was conditioned); the parameterization supplies ``c_skip`` and
``c_out`` (what the network predicts).

At sigma = inf (a flow model's t = 1, zero terminal SNR) the denoiser is given the state normalised by sigma,
x / sigma (the unit start noise), and uses the limits sigma c_skip, sigma c_in (-> 1: every schedule that reaches
inf feeds the network the unit noise) and c_out; epsilon and score predictions have none (D = x - sigma eps needs
eps exactly at infinite sigma), so they refuse.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .denoiser import Denoiser
from .errors import SamplerzooError, UnknownNameError
from .guidance import Conditioner, condition_on_labels
from .noise_schedules import NoiseSchedule

Network = Callable[..., Tensor]
"""``net(x_in, c_noise, **cond) -> prediction``, with ``c_noise`` of shape ``(batch,)``."""

Coefficients = Callable[[Tensor, Tensor, NoiseSchedule], tuple[Tensor, Tensor]]


def epsilon_coefficients(sigma: Tensor, c_in: Tensor, schedule: NoiseSchedule) -> tuple[Tensor, Tensor]:
    """D = x - sigma * eps (Ho et al. 2020; k-diffusion's DiscreteEpsDDPMDenoiser)."""
    return torch.ones_like(sigma), -sigma


def v_coefficients(sigma: Tensor, c_in: Tensor, schedule: NoiseSchedule) -> tuple[Tensor, Tensor]:
    """v = alpha * eps - sigma_vp * x0 (Salimans & Ho 2022): c_skip = sd^2/(s^2+sd^2), c_out = -s*sd/sqrt(s^2+sd^2)."""
    sd = schedule.sigma_data
    return sd**2 / (sigma**2 + sd**2), -sigma * sd / (sigma**2 + sd**2).sqrt()


def x0_coefficients(sigma: Tensor, c_in: Tensor, schedule: NoiseSchedule) -> tuple[Tensor, Tensor]:
    """The network predicts the clean sample (diffusers' ``prediction_type="sample"``)."""
    return torch.zeros_like(sigma), torch.ones_like(sigma)


def score_coefficients(sigma: Tensor, c_in: Tensor, schedule: NoiseSchedule) -> tuple[Tensor, Tensor]:
    """Tweedie: D = x + sigma^2 * grad log p(x; sigma); a score of the scaled input c_in*x carries c_in."""
    return torch.ones_like(sigma), sigma**2 * c_in


def edm_coefficients(sigma: Tensor, c_in: Tensor, schedule: NoiseSchedule) -> tuple[Tensor, Tensor]:
    """EDM's raw network F (Karras et al. 2022, Eq. 7 and Table 1); note F = -v for the same sigma_data."""
    sd = schedule.sigma_data
    return sd**2 / (sigma**2 + sd**2), sigma * sd / (sigma**2 + sd**2).sqrt()


def flow_coefficients(sigma: Tensor, c_in: Tensor, schedule: NoiseSchedule) -> tuple[Tensor, Tensor]:
    """Rectified-flow velocity v = eps - x0 on x_t = (1 - t) x0 + t eps: x0 = x_t - t v, i.e. c_skip = 1/(1 + sigma),
    c_out = -sigma/(1 + sigma) (Esser et al. 2024, Eq. 2; ComfyUI's CONST, diffusers' flow_prediction)."""
    return 1 / (1 + sigma), -sigma / (1 + sigma)


def consistency_coefficients(sigma: Tensor, c_in: Tensor, schedule: NoiseSchedule) -> tuple[Tensor, Tensor]:
    """A consistency model's boundary-condition scalings (Song et al. 2023, App. C): c_skip = sd^2 / ((s - s_min)^2 +
    sd^2), c_out = (s - s_min) sd / sqrt(s^2 + sd^2), so that D = x at s = sigma_min."""
    sd, offset = schedule.sigma_data, sigma - schedule.sigma_min
    return sd**2 / (offset**2 + sd**2), offset * sd / (sigma**2 + sd**2).sqrt()


PARAMETERIZATIONS: dict[str, Coefficients] = {
    "epsilon": epsilon_coefficients,
    "v": v_coefficients,
    "x0": x0_coefficients,
    "score": score_coefficients,
    "edm": edm_coefficients,
    "flow": flow_coefficients,
    "consistency": consistency_coefficients,
}
PARAMETERIZATION_ALIASES = {"eps": "epsilon", "v_prediction": "v", "sample": "x0", "F": "edm",
                            "flow_prediction": "flow", "velocity": "flow", "const": "flow",
                            # TrigFlow's D = cos(t) x_t - sin(t) sigma_d F is v-prediction with sigma_data = sigma_d
                            "trigflow": "v"}
LIMITS_AT_INFINITY: dict[str, Callable[[NoiseSchedule], tuple[float, float]]] = {
    "v": lambda schedule: (0.0, -schedule.sigma_data),
    "x0": lambda schedule: (0.0, 1.0),
    "edm": lambda schedule: (0.0, schedule.sigma_data),
    "flow": lambda schedule: (1.0, -1.0),
    "consistency": lambda schedule: (0.0, schedule.sigma_data),
}
"""(lim sigma c_skip, lim c_out) as sigma -> inf, the coefficients of D on the normalised state x / sigma."""


def parameterization(name: str) -> str:
    """Canonical parameterization name; accepts diffusers' ``prediction_type`` values."""
    canonical = PARAMETERIZATION_ALIASES.get(name, name)
    if canonical not in PARAMETERIZATIONS:
        raise UnknownNameError("parameterization", name, [*PARAMETERIZATIONS, *PARAMETERIZATION_ALIASES])
    return canonical


class NetworkDenoiser(nn.Module):
    """A network wrapped into the Denoiser frame: ``c_skip * x + c_out * net(c_in * x, c_noise, **cond)``.

    As a Checkpoint it decodes with ``decoder`` (latent models: the pipeline's VAE; pixel models: none, the
    identity) and builds conditioning with ``conditioner`` (text models: the pipeline's prompt encoders; by
    default class labels, guided against ``null_label``).
    """

    def __init__(self, net: Network, prediction: str, schedule: NoiseSchedule, *,
                 sample_shape: tuple[int, ...] = (), num_classes: int = 0, null_label: int | None = None,
                 decoder: Callable[[Tensor], Tensor] | None = None, conditioner: Conditioner | None = None) -> None:
        super().__init__()
        self.net = net
        self.prediction = parameterization(prediction)
        self.schedule = schedule
        self.sample_shape = tuple(sample_shape)
        self.num_classes = num_classes
        self.null_label = null_label  # the label trained as "no condition" (label dropout), for CFG
        self.decoder = decoder
        self.conditioner: Conditioner = conditioner or condition_on_labels
        self._coefficients = PARAMETERIZATIONS[self.prediction]

    def decode(self, x: Tensor) -> Tensor:
        return x if self.decoder is None else self.decoder(x)

    def condition(self, samples: Sequence[int], **request: Any) -> Denoiser:
        return self.conditioner(self, samples, **request)

    @property
    def sigma_min(self) -> float:
        return self.schedule.sigma_min

    @property
    def sigma_max(self) -> float:
        return self.schedule.sigma_max

    @property
    def sigma_data(self) -> float:
        return self.schedule.sigma_data

    @property
    def sigma_table(self) -> Tensor | None:
        return self.schedule.sigma_table

    def with_schedule(self, schedule: NoiseSchedule) -> NetworkDenoiser:
        """The same checkpoint (network, decoder and conditioner shared, not copied) read through another noise
        schedule."""
        return NetworkDenoiser(self.net, self.prediction, schedule, sample_shape=self.sample_shape,
                               num_classes=self.num_classes, null_label=self.null_label, decoder=self.decoder,
                               conditioner=self.conditioner)

    def coefficients(self, sigma: Tensor, ndim: int) -> tuple[Tensor, Tensor, Tensor]:
        """(c_skip, c_out, c_in) for a (batch,) sigma, shaped to broadcast over ``ndim``-dimensional x; where sigma
        is inf (a schedule that reaches it), the limits that multiply the normalised state x / sigma. No host sync:
        :meth:`check_infinite_sigma` is asked once, before sampling from inf."""
        s = sigma.reshape(-1, *([1] * (ndim - 1)))
        if math.isfinite(self.schedule.sigma_max):
            c_in = self.schedule.c_in(s)
            return (*self._coefficients(s, c_in, self.schedule), c_in)
        infinite = torch.isinf(s)
        finite = torch.where(infinite, torch.ones_like(s), s)
        c_in = self.schedule.c_in(finite)
        c_skip, c_out = self._coefficients(finite, c_in, self.schedule)
        limits = LIMITS_AT_INFINITY.get(self.prediction)
        skip_limit, out_limit = limits(self.schedule) if limits is not None else (math.nan, math.nan)
        return (torch.where(infinite, skip_limit, c_skip), torch.where(infinite, out_limit, c_out),
                torch.where(infinite, 1.0, c_in))

    def check_infinite_sigma(self) -> None:
        """Raise the one-line reason this model cannot be evaluated at sigma = inf, if there is one."""
        if not math.isinf(self.schedule.sigma_max):
            raise SamplerzooError(f"this checkpoint was trained up to sigma_max = {self.schedule.sigma_max:.4g} "
                                  f"({type(self.schedule).__name__}); it cannot be evaluated at sigma = inf")
        if self.prediction not in LIMITS_AT_INFINITY:
            raise SamplerzooError(f"{self.prediction} prediction is undefined at sigma = inf (zero terminal SNR): its "
                                  "D = x + ... weights the infinite x by 1; use v, flow or x0 prediction")

    def forward(self, x: Tensor, sigma: Tensor, **cond: Any) -> Tensor:
        """D in the dtype of x: the coefficients in float32 at least, the network in the dtype of its weights."""
        sigma = sigma.to(torch.promote_types(x.dtype, torch.float32))
        c_skip, c_out, c_in = self.coefficients(sigma, x.ndim)
        cond = {k: v.to(x.device) if isinstance(v, Tensor) else v for k, v in cond.items()}  # labels built on the CPU
        F = self.net((c_in * x).to(self.network_dtype(x.dtype)), self.schedule.c_noise(sigma), **cond)
        return (c_skip * x + c_out * F).to(x.dtype)

    def network_dtype(self, default: torch.dtype) -> torch.dtype:
        """The dtype of the network's floating-point weights (``default`` when it has none)."""
        return next((p.dtype for p in self.parameters() if p.is_floating_point()), default)
