"""Samplers of consistency-distilled models: Consistency Models' multistep sampling and TCD's strategic stochastic
sampling. Both are ancestral steps (``ancestral.py``): a deterministic step to sigma_down, then fresh noise up to
sigma_next. They are meant for models whose D is a sample (a consistency function); with a posterior-mean denoiser
their law does not converge to the data's as steps grow (each step's deterministic jump does not shrink), which
tests/test_consistency.py writes out on a Gaussian. ``lcm`` (``flow.py``) is the same step with no epsilon.
"""

from __future__ import annotations

import math

import numpy
import torch
from torch import Tensor

from ..denoiser import Denoiser
from ..errors import SamplerzooError
from ..flow import flow_sigma, flow_time
from ..noise import NoiseSampler
from ..registry import SamplerSpec
from ..steps import Callback
from .ancestral import ancestral_sampling
from .wrappers import with_options


def consistency_split(sigma_next: Tensor, epsilon: float) -> tuple[Tensor, Tensor]:
    """Consistency Models' step (Song et al. 2023, Alg. 1): to D (sigma_down = 0), then noise of std
    sqrt(sigma_next^2 - epsilon^2) (none at or below epsilon, the boundary the consistency function maps to)."""
    return sigma_next * 0, (sigma_next**2 - epsilon**2).clamp_min(0).sqrt()


def sample_cm_multistep(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None,
                        callback: Callback | None = None, s_noise: float = 1.0, clip_denoised: bool = False) -> Tensor:
    """Multistep consistency sampling, x = f(x, tau_n) + sqrt(tau_{n+1}^2 - epsilon^2) z with epsilon the model's
    sigma_min (Song et al. 2023, Consistency Models, Alg. 1; diffusers' CMStochasticIterativeScheduler, its noise scaled
    by ``s_noise``; ``clip_denoised``: f clipped to [-1, 1], as that scheduler's default)."""
    f = with_options(model, clip_denoised=clip_denoised)
    return ancestral_sampling(f, x, sigmas, lambda i: consistency_split(sigmas[i + 1], model.sigma_min), noise,
                              callback, s_noise)


def trained_timestep(levels: Tensor, sigma: Tensor) -> float:
    """The (fractional) trained timestep of ``sigma``: linear in log sigma between the ascending ``levels``, exact on
    a level, clamped to [0, T - 1]."""
    return float(numpy.interp(math.log(float(sigma)), levels.log().numpy(), numpy.arange(len(levels))))


def tcd_level(model: Denoiser, sigma_next: Tensor, gamma: float) -> Tensor:
    """sigma_s at s = floor((1 - gamma) t_next) (Zheng et al. 2024, Alg. 4; diffusers' TCDScheduler), t_next the
    model's trained timestep of sigma_next (the product is rounded to 1e-9 first, so that floating point does not
    floor 0.7 * 10 to 6); on a model without trained levels, s = (1 - gamma) t_next in flow time t = sigma / (1 +
    sigma). Never above sigma_next; 0 at sigma_next = 0; sigma_next itself at gamma = 0."""
    table = getattr(model, "sigma_table", None)
    if gamma == 0:  # s = t_next: DDIM, on any level (no floor, no flow-time round trip)
        return sigma_next
    if sigma_next == 0 or table is None:
        return torch.minimum(flow_sigma((1 - gamma) * flow_time(sigma_next)), sigma_next)
    levels = table.to(torch.float64).cpu()
    s = math.floor(round((1 - gamma) * trained_timestep(levels, sigma_next), 9))
    return torch.minimum(levels[s].to(sigma_next), sigma_next)


def sample_tcd(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None,
               callback: Callback | None = None, gamma: float = 0.3) -> Tensor:
    """TCD's strategic stochastic sampling (Zheng et al. 2024, Trajectory Consistency Distillation, Alg. 4): from
    sigma_i the deterministic (DDIM) step with the model's D to sigma_s = :func:`tcd_level`, then forward noise to
    sigma_{i+1}, sqrt(sigma_{i+1}^2 - sigma_s^2) z. ``gamma`` is diffusers' ``eta``: 0 is DDIM, 1 Consistency Models'
    step; the step to 0 returns D."""
    if not 0 <= gamma <= 1:
        raise SamplerzooError(f"tcd needs 0 <= gamma <= 1, got {gamma}")

    def split(i: int) -> tuple[Tensor, Tensor]:
        sigma_s = tcd_level(model, sigmas[i + 1], gamma)
        return sigma_s, (sigmas[i + 1] ** 2 - sigma_s**2).clamp_min(0).sqrt()
    return ancestral_sampling(model, x, sigmas, split, noise, callback)


SONG_CM = "Song et al. 2023, Consistency Models"
SPECS = [
    SamplerSpec("cm_multistep", sample_cm_multistep, order=1, stochastic=True, starts_at_infinity=True,
                aliases=("cm_stochastic_iterative", "CMStochasticIterativeScheduler"),
                paper=f"{SONG_CM}, Alg. 1 (multistep consistency sampling)",
                reference="diffusers.CMStochasticIterativeScheduler (tests/test_consistency.py)"),
    SamplerSpec("tcd", sample_tcd, order=1, stochastic=True, starts_at_infinity=True, aliases=("TCDScheduler",),
                paper="Zheng et al. 2024, Trajectory Consistency Distillation, Alg. 4 (strategic stochastic sampling)",
                reference="diffusers.TCDScheduler (tests/test_consistency.py)"),
]
