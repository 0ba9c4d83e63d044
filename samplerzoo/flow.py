"""Flow-matching model families in the sigma frame: rectified flow (SD3, Flux, AuraFlow, Wan) and TrigFlow (sCM).

Rectified flow interpolates x_t = (1 - t) x0 + t eps (Liu et al. 2023; Lipman et al. 2023; Esser et al. 2024,
SD3, Eq. 2): divided by 1 - t it is x = x0 + sigma eps with sigma = t / (1 - t), so t = sigma / (1 + sigma) and
t = 1 is sigma = inf. TrigFlow interpolates x_t = cos(t) x0 + sin(t) z with z ~ N(0, sigma_d^2 I) (Lu & Song 2024,
sCM, Sec. 2): divided by cos(t) it is sigma = sigma_d tan(t), and t = pi/2 is sigma = inf. Both are noise schedules
here (``c_in``, ``c_noise``, training sigmas); their predictions are parameterizations in ``adapters.py``.

SD3's constant time shift t' = s t / (1 + (s - 1) t) is exactly sigma' = s sigma in this frame (Esser et al.
2024, Eq. 23); Flux's resolution-dependent shift uses t' = e^mu / (e^mu + (1/t - 1)) with mu linear in the image
sequence length (diffusers' FlowMatchEulerDiscreteScheduler ``use_dynamic_shifting``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .errors import CheckpointError
from .noise_schedules import EDM

TIME_SHIFT_TYPES = ("exponential", "linear")
FLOW_SCHEDULERS = ("FlowMatchEulerDiscreteScheduler", "FlowMatchHeunDiscreteScheduler", "FlowMatchLCMScheduler")
TRIGFLOW_SCHEDULERS = ("SCMScheduler",)


def flow_time(sigma: Tensor) -> Tensor:
    """t = sigma / (1 + sigma), written 1 / (1 + 1/sigma) so that sigma = inf gives t = 1 exactly."""
    return 1 / (1 + 1 / sigma)


def flow_sigma(t: Tensor) -> Tensor:
    """sigma = t / (1 - t): the inverse of :func:`flow_time` (t = 1 gives inf)."""
    return t / (1 - t)


@dataclass(frozen=True)
class TimeShift:
    """How a flow model's times are shifted: SD3's constant ``shift``, or Flux's dynamic shift with a given ``mu``.

    ``kind`` is diffusers' ``time_shift_type``: exponential, t' = e^mu / (e^mu + 1/t - 1) (which is the constant
    shift s = e^mu), or linear, t' = mu / (mu + 1/t - 1) (diffusers' _time_shift_exponential / _time_shift_linear
    with their sigma = 1).
    """

    shift: float = 1.0
    mu: float | None = None
    kind: str = "exponential"

    def __call__(self, t: Tensor) -> Tensor:
        if self.mu is None:
            return self.shift * t / (1 + (self.shift - 1) * t)
        scale = math.exp(self.mu) if self.kind == "exponential" else self.mu
        return scale / (scale + (1 / t - 1))


def dynamic_mu(image_seq_len: int, base_image_seq_len: int = 256, max_image_seq_len: int = 4096,
               base_shift: float = 0.5, max_shift: float = 1.15) -> float:
    """mu = base_shift + (max_shift - base_shift) (L - L_base) / (L_max - L_base): the line diffusers' Flux and SD3
    pipelines (``calculate_shift``) draw through (base_image_seq_len, base_shift) and (max_image_seq_len, max_shift)."""
    slope = (max_shift - base_shift) / (max_image_seq_len - base_image_seq_len)
    return base_shift + slope * (image_seq_len - base_image_seq_len)


def stretch_to_terminal(t: Tensor, terminal: float) -> Tensor:
    """Stretch decreasing times so the last one is ``terminal``: 1 - (1 - t) (1 - terminal) / (1 - t_last)
    (diffusers' ``shift_terminal``, from LTX-Video)."""
    return 1 - (1 - t) * ((1 - terminal) / (1 - t[-1]))


class FlowMatch:
    """Rectified flow conditioned like diffusers' FlowMatchEulerDiscreteScheduler: the network sees x_t = x / (1 +
    sigma) (``c_in`` = 1 - t) and the timestep T t; training draws SD3's logit-normal t, i.e. log sigma ~
    N(logit_mean + log shift, logit_std^2) (Esser et al. 2024, Sec. 3.1 and Eq. 23).

    The trained levels are diffusers' t_i = shift(i / T), i = 1..T (unshifted under dynamic shifting), the last
    one t = 1, sigma = inf: a sampler can start from pure noise (see ``sampling.py``).
    """

    sigma_data = 1.0

    def __init__(self, num_train_timesteps: int = 1000, time_shift: TimeShift | None = None,
                 dynamic: bool = False, shift_terminal: float | None = None, logit_mean: float = 0.0,
                 logit_std: float = 1.0) -> None:
        self.num_train_timesteps = num_train_timesteps
        self.time_shift = time_shift or TimeShift()
        self.dynamic, self.shift_terminal = dynamic, shift_terminal
        self.logit_mean, self.logit_std = logit_mean, logit_std
        u = torch.arange(1, num_train_timesteps + 1, dtype=torch.float64) / num_train_timesteps
        self.times = u if dynamic else self.time_shift(u)
        self._table = flow_sigma(self.times)
        self.sigma_min, self.sigma_max = float(self._table[0]), math.inf

    @property
    def sigma_table(self) -> Tensor:
        return self._table

    def c_in(self, sigma: Tensor) -> Tensor:
        return 1 / (1 + sigma)

    def c_noise(self, sigma: Tensor) -> Tensor:
        return self.num_train_timesteps * flow_time(sigma)

    def training_sigmas(self, n: int, generator: torch.Generator) -> Tensor:
        """t = shift(sigmoid(m + s z)), z ~ N(0, 1): sigma = e^(m + s z) times the constant shift."""
        log_sigma = self.logit_mean + self.logit_std * torch.randn(n, generator=generator, dtype=torch.float64)
        scale = 1.0 if self.dynamic else self.time_shift.shift
        return (scale * log_sigma.exp()).float()


@dataclass(frozen=True)
class TrigFlow(EDM):
    """TrigFlow (Lu & Song 2024, sCM, Sec. 2-3): D = cos(t) x_t - sin(t) sigma_d F(x_t / sigma_d, c_noise(t)), with
    sigma = sigma_d tan(t). In the sigma frame the network sees x / sqrt(sigma^2 + sigma_d^2), EDM's c_in, and
    c_noise = time_scale * t, t = atan(sigma / sigma_d); its prediction is v-prediction with sigma_data = sigma_d
    (adapters' ``trigflow``). Training draws tan(t) = e^tau / sigma_d, tau ~ N(P_mean, P_std^2): EDM's log-normal
    sigma. t = pi/2 is sigma = inf.
    """

    sigma_max: float = math.inf
    P_mean: float = -1.0
    P_std: float = 1.4
    time_scale: float = 1.0

    def c_noise(self, sigma: Tensor) -> Tensor:
        return self.time_scale * torch.atan(sigma / self.sigma_data)


def _number(config: Mapping[str, Any], key: str, default: float, source: str) -> float:
    """A finite number from a scheduler config, or a one-line error naming the key."""
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise CheckpointError(f"{source}: {key} must be a finite number, got {value!r}")
    return float(value)


def _check_flow_config(config: Mapping[str, Any], source: str) -> None:
    kind = config.get("time_shift_type", "exponential")
    if kind not in TIME_SHIFT_TYPES:
        raise CheckpointError(f"{source}: unknown time_shift_type {kind!r}; known: {', '.join(TIME_SHIFT_TYPES)}")
    for key, default in (("base_shift", 0.5), ("max_shift", 1.15), ("base_image_seq_len", 256),
                         ("max_image_seq_len", 4096)):
        _number(config, key, default, source)
    if _number(config, "shift", 1.0, source) <= 0:
        raise CheckpointError(f"{source}: shift must be > 0, got {config['shift']}")
    for key in ("sigma_min", "sigma_max", "shift_terminal"):
        if config.get(key) is not None and not 0 < _number(config, key, 1.0, source) <= 1:
            raise CheckpointError(f"{source}: {key} {config[key]} is not a flow time; flow times (diffusers' sigmas) "
                                  "lie in (0, 1]")
    if _number(config, "num_train_timesteps", 1000, source) < 1:
        raise CheckpointError(f"{source}: num_train_timesteps must be >= 1")
    if config.get("base_image_seq_len", 256) == config.get("max_image_seq_len", 4096):
        raise CheckpointError(f"{source}: base_image_seq_len and max_image_seq_len must differ (the dynamic shift "
                              "is the line through them)")


def flow_match_from_config(config: Mapping[str, Any], source: str, image_seq_len: int | None = None) -> FlowMatch:
    """The rectified-flow schedule of a diffusers FlowMatch* scheduler config. Under ``use_dynamic_shifting``
    mu comes from ``image_seq_len`` (the pipeline's packed latent length) through :func:`dynamic_mu`."""
    _check_flow_config(config, source)
    kind = str(config.get("time_shift_type", "exponential"))
    dynamic = bool(config.get("use_dynamic_shifting", False))
    if dynamic:
        if image_seq_len is None:
            raise CheckpointError(f"{source}: use_dynamic_shifting needs the image sequence length to set mu")
        mu = dynamic_mu(image_seq_len, int(config.get("base_image_seq_len", 256)),
                        int(config.get("max_image_seq_len", 4096)), float(config.get("base_shift", 0.5)),
                        float(config.get("max_shift", 1.15)))
        if kind == "linear" and mu <= 0:
            raise CheckpointError(f"{source}: a linear time shift needs mu > 0, got {mu:.4g} at image sequence "
                                  f"length {image_seq_len}")
        shift = TimeShift(mu=mu, kind=kind)
    else:
        shift = TimeShift(float(config.get("shift", 1.0)))
    terminal = config.get("shift_terminal")
    return FlowMatch(int(config.get("num_train_timesteps", 1000)), shift, dynamic,
                     None if terminal is None else float(terminal))


def trigflow_from_config(config: Mapping[str, Any], source: str) -> TrigFlow:
    """The TrigFlow schedule of a diffusers SCMScheduler config (its ``sigma_data``)."""
    sigma_data = _number(config, "sigma_data", 0.5, source)
    if sigma_data <= 0:
        raise CheckpointError(f"{source}: sigma_data must be > 0, got {config['sigma_data']}")
    return TrigFlow(sigma_data=sigma_data)
