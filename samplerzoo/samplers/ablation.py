"""EDM's ablation sampler: the general ODE sampler of Karras et al. 2022 (Alg. 1 generalised, Sec. 3, Table 1).

The probability-flow ODE is written in a time t with a noise schedule sigma(t) and a scaling s(t) of the state
x~ = s(t) x (Karras et al. 2022, Eq. 4):

    dx~/dt = (sigma'(t) / sigma(t) + s'(t) / s(t)) x~ - sigma'(t) s(t) / sigma(t) D(x~ / s(t), sigma(t)),

and solved by Euler or by the generic second-order Runge-Kutta step with its intermediate point at alpha h (Heun
at alpha = 1, the explicit midpoint at 1/2; Karras et al. 2022, Alg. 1 / App. D.2). The choices of Table 1:
``noise_schedule`` "linear" (sigma = t, EDM and DDIM), "vp" (Song et al.'s VP SDE) or "ve" (sigma = sqrt t);
``scaling`` "none" or "vp" (s = 1 / sqrt(1 + sigma^2)). The time discretisation is the sampling schedule: EDM's is
``karras``, VP's ``vp``, VE's (geometric in sigma) ``exponential``, iDDPM's the iDDPM schedule. The step onto
sigma = 0 is Euler, as in EDM, and EDM's stochastic churn is available (``s_churn``...).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

import torch
from torch import Tensor

from ..denoiser import Denoiser
from ..errors import SamplerzooError
from ..noise import NoiseSampler, gaussian_noise_like
from ..noise_schedules import ContinuousVP
from ..registry import SamplerSpec, steps_for_budget
from ..steps import Callback, churn, denoise, notify
from .exponential import check_choice
from .multistep import edm_fitted_vp

NOISE_SCHEDULES = ("linear", "vp", "ve")
SCALINGS = ("none", "vp")
SOLVERS = ("heun", "euler")
Fn = Callable[[Tensor], Tensor]


def time_frame(noise_schedule: str, vp: ContinuousVP) -> tuple[Fn, Fn, Fn]:
    """sigma(t), sigma'(t) and t(sigma) of a noise schedule of Karras et al. 2022, Table 1."""
    if noise_schedule == "vp":
        def vp_slope(t: Tensor) -> Tensor:
            return 0.5 * (vp.beta_min + vp.beta_d * t) * (vp.sigma(t) + 1 / vp.sigma(t))
        return vp.sigma, vp_slope, vp.t
    if noise_schedule == "ve":
        return torch.sqrt, lambda t: 0.5 / t.sqrt(), torch.square
    return (lambda t: t), torch.ones_like, (lambda sigma: sigma)


def slope(x: Tensor, t: Tensor, denoised: Tensor, sigma: Fn, dsigma: Fn, vp_scaling: bool) -> Tensor:
    """dx~/dt of Karras et al. 2022, Eq. 4, with s(t) = 1 / sqrt(1 + sigma^2) when ``vp_scaling`` (s'/s = -sigma
    sigma' s^2), else s = 1."""
    level, rate = sigma(t), dsigma(t)
    s = 1 / (1 + level**2).sqrt() if vp_scaling else torch.ones_like(level)
    ds_over_s = -level * rate * s**2 if vp_scaling else torch.zeros_like(level)
    return float(rate / level + ds_over_s) * x - float(rate * s / level) * denoised


def sample_edm_ablation(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None,
                        callback: Callback | None = None, solver: Literal["heun", "euler"] = "heun",
                        alpha: float = 1.0, noise_schedule: Literal["linear", "vp", "ve"] = "linear",
                        scaling: Literal["none", "vp"] = "none", vp: ContinuousVP | None = None,
                        s_churn: float = 0.0, s_tmin: float = 0.0, s_tmax: float = math.inf,
                        s_noise: float = 1.0) -> Tensor:
    """EDM's generalised sampler (Karras et al. 2022, Alg. 1, Table 1; NVlabs/edm ablation_sampler): Euler or the
    second-order step x~ + h [(1 - 1/(2 alpha)) d + 1/(2 alpha) d(x~ + alpha h d, t + alpha h)] in t.

    ``vp`` is the VP SDE of the "vp" noise schedule (default: fitted to the schedule's range with eps_s = 1e-3, as
    EDM fits it to its discretisation's range).
    """
    check_choice("solver", solver, SOLVERS)
    check_choice("noise_schedule", noise_schedule, NOISE_SCHEDULES)
    check_choice("scaling", scaling, SCALINGS)
    if not 0 < alpha <= 1:
        raise SamplerzooError(f"edm_ablation alpha must be in (0, 1] (1: Heun, 1/2: midpoint), got {alpha}")
    positive = sigmas[sigmas > 0]
    sigma, dsigma, t_of = time_frame(noise_schedule, vp or edm_fitted_vp(float(positive[-1]), float(positive[0])))
    vp_scaling = scaling == "vp"

    def scale(level: Tensor) -> float:
        return float(1 / (1 + level**2).sqrt()) if vp_scaling else 1.0

    noise = noise or gaussian_noise_like(x)
    for i in range(len(sigmas) - 1):
        x, sigma_hat = churn(x, sigmas, i, noise, s_churn, s_tmin, s_tmax, s_noise)  # in the sigma frame
        denoised = denoise(model, x, sigma_hat)
        notify(callback, x, i, sigmas[i], sigma_hat, denoised)
        t_hat, t_next = t_of(sigma_hat), t_of(sigmas[i + 1])
        h, state = float(t_next - t_hat), scale(sigma_hat) * x
        d = slope(state, t_hat, denoised, sigma, dsigma, vp_scaling)
        if solver == "euler" or sigmas[i + 1] == 0:
            state = state + h * d
        else:
            t_prime = t_hat + alpha * h
            x_prime = state + alpha * h * d
            d_prime = slope(x_prime, t_prime, denoise(model, x_prime / scale(sigma(t_prime)), sigma(t_prime)), sigma,
                            dsigma, vp_scaling)
            state = state + h * ((1 - 1 / (2 * alpha)) * d + 1 / (2 * alpha) * d_prime)
        x = state / scale(sigmas[i + 1])
    return x


def ablation_nfe(sigmas: Tensor, solver: str = "heun", **options: Any) -> int:
    steps = len(sigmas) - 1
    return steps if solver == "euler" else 2 * steps - int(float(sigmas[-1]) == 0)


def ablation_steps(nfe: int, to_zero: bool, solver: str = "heun", **options: Any) -> int:
    if solver == "euler":
        return steps_for_budget("edm_ablation", nfe, 1, cost="steps")
    return steps_for_budget("edm_ablation", nfe, 2, -int(to_zero), "2*steps-1" if to_zero else "2*steps")


SPECS = [
    SamplerSpec("edm_ablation", sample_edm_ablation, order=2, stochastic=False,
                aliases=("ablation_sampler", "edm_generalized"),
                paper="Karras et al. 2022, Elucidating the Design Space of Diffusion-Based Generative Models, Alg. 1 "
                      "with alpha (App. D.2) and Table 1's schedules and scalings",
                reference="NVlabs/edm generate.py ablation_sampler",
                cost_formula="2*steps-1 (heun), steps (euler)", nfe_fn=ablation_nfe, steps_fn=ablation_steps),
]
