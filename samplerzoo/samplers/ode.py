"""Probability-flow ODE solvers in the sigma frame, with EDM's optional churn."""

from __future__ import annotations

import math
from typing import Any

from torch import Tensor

from ..denoiser import Denoiser
from ..noise import NoiseSampler, gaussian_noise_like
from ..registry import SamplerSpec, steps_for_budget
from ..steps import Callback, churn, denoise, dpm2_step, guided_pair, notify, to_d
from .wrappers import with_options


def sample_euler(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None,
                 callback: Callback | None = None, s_churn: float = 0.0, s_tmin: float = 0.0,
                 s_tmax: float = math.inf, s_noise: float = 1.0, afs: bool = False) -> Tensor:
    """Euler's method, x_{i+1} = x_hat + (sigma_{i+1} - sigma_hat) d_i (Karras et al. 2022, Alg. 1; churn: Alg. 2).

    ``afs``: the first slope analytical (AMED's analytical first step, ``wrappers.py``; diff-sampler's euler), as
    for heun and dpm2."""
    model = with_options(model, afs)
    noise = noise or gaussian_noise_like(x)
    for i in range(len(sigmas) - 1):
        x, sigma_hat = churn(x, sigmas, i, noise, s_churn, s_tmin, s_tmax, s_noise)
        denoised = denoise(model, x, sigma_hat)
        notify(callback, x, i, sigmas[i], sigma_hat, denoised)
        x = x + to_d(x, sigma_hat, denoised) * (sigmas[i + 1] - sigma_hat)
    return x


def sample_heun(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None,
                callback: Callback | None = None, s_churn: float = 0.0, s_tmin: float = 0.0,
                s_tmax: float = math.inf, s_noise: float = 1.0, afs: bool = False) -> Tensor:
    """Heun's 2nd-order method; the step to sigma = 0 is Euler, so N steps cost 2N - 1 (Karras et al. 2022, Alg. 2)."""
    model = with_options(model, afs)
    noise = noise or gaussian_noise_like(x)
    for i in range(len(sigmas) - 1):
        x_hat, sigma_hat = churn(x, sigmas, i, noise, s_churn, s_tmin, s_tmax, s_noise)
        denoised = denoise(model, x_hat, sigma_hat)
        notify(callback, x_hat, i, sigmas[i], sigma_hat, denoised)
        d, dt = to_d(x_hat, sigma_hat, denoised), sigmas[i + 1] - sigma_hat
        x = x_hat + d * dt
        if sigmas[i + 1] > 0:  # Alg. 2 lines 9-11: second-order correction
            d_next = to_d(x, sigmas[i + 1], denoise(model, x, sigmas[i + 1]))
            x = x_hat + (d + d_next) / 2 * dt
    return x


def sample_dpm2(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None,
                callback: Callback | None = None, s_churn: float = 0.0, s_tmin: float = 0.0,
                s_tmax: float = math.inf, s_noise: float = 1.0, afs: bool = False) -> Tensor:
    """DPM-Solver-2: midpoint in log sigma (Lu et al. 2022, Alg. 1; Karras et al. 2022, Sec. 3); Euler to sigma = 0."""
    model = with_options(model, afs)
    noise = noise or gaussian_noise_like(x)
    for i in range(len(sigmas) - 1):
        x_hat, sigma_hat = churn(x, sigmas, i, noise, s_churn, s_tmin, s_tmax, s_noise)
        denoised = denoise(model, x_hat, sigma_hat)
        notify(callback, x_hat, i, sigmas[i], sigma_hat, denoised)
        if sigmas[i + 1] == 0:  # the log-sigma midpoint of a step to 0 is undefined: Euler
            x = x_hat + to_d(x_hat, sigma_hat, denoised) * (sigmas[i + 1] - sigma_hat)
        else:
            x = dpm2_step(model, x_hat, sigma_hat, denoised, sigmas[i + 1])
    return x


def sample_heunpp2(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None,
                   callback: Callback | None = None, s_churn: float = 0.0, s_tmin: float = 0.0,
                   s_tmax: float = math.inf, s_noise: float = 1.0) -> Tensor:
    """Heun++ (ComfyUI's heunpp2, from Carzit's sd-webui-samplers-scheduler): Euler predictions to the next two
    levels, and the step along w1 d + w2 d_2 + w3 d_3 with w_k = sigma_{i+k-1} / (3 sigma_0) (w1 the rest); the
    second-to-last step mixes two slopes (w2 = sigma_{i+1} / (2 sigma_0)), the last is Euler. The weights favour
    the current slope more as sigma falls, so the method is first order (no published derivation)."""
    noise = noise or gaussian_noise_like(x)
    end = len(sigmas) - 1
    for i in range(end):
        x, sigma_hat = churn(x, sigmas, i, noise, s_churn, s_tmin, s_tmax, s_noise)
        denoised = denoise(model, x, sigma_hat)
        notify(callback, x, i, sigmas[i], sigma_hat, denoised)
        slopes, levels = [to_d(x, sigma_hat, denoised)], sigmas[i + 1:min(i + 3, end)]
        x_stage = x
        for k, level in enumerate(levels):  # Euler chain through the next levels (before the last)
            x_stage = x_stage + slopes[-1] * (level - (sigma_hat if k == 0 else levels[k - 1]))
            slopes.append(to_d(x_stage, level, denoise(model, x_stage, level)))
        weights = [level / (len(slopes) * sigmas[0]) for level in levels]
        d = slopes[0] * (1 - sum(weights)) + sum(w * slope for w, slope in zip(weights, slopes[1:], strict=True))
        x = x + d * (sigmas[i + 1] - sigma_hat)
    return x


def heunpp2_nfe(sigmas: Tensor, **options: Any) -> int:
    """Three evaluations per step, two on the second-to-last, one on the last: 3 steps - 3 (1 for one step)."""
    steps = len(sigmas) - 1
    return max(1, 3 * steps - 3)


def heunpp2_steps(nfe: int, to_zero: bool, **options: Any) -> int:
    return 1 if nfe == 1 else steps_for_budget("heunpp2", nfe, 3, -3, "3*steps-3", min_steps=2)


def sample_gradient_estimation(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None,
                               callback: Callback | None = None, ge_gamma: float = 2.0) -> Tensor:
    """Gradient estimation (Permenter & Yuan 2024, Interpreting and Improving Diffusion Models from an Optimization
    Perspective, Alg. 2): Euler with the slope ge_gamma d_i + (1 - ge_gamma) d_{i-1}, a momentum-like average of
    successive denoiser directions; the first step is Euler and the step to sigma = 0 returns D (ComfyUI's
    sample_gradient_estimation). First order on a general grid (the extrapolation is exact only when the previous
    step is half the current one)."""
    return gradient_estimation_sampling(model, x, sigmas, callback, ge_gamma)


def gradient_estimation_sampling(model: Denoiser, x: Tensor, sigmas: Tensor, callback: Callback | None,
                                 ge_gamma: float, cfg_pp: bool = False) -> Tensor:
    """The gradient-estimation loop; with ``cfg_pp`` the slopes come from the unconditional predictions D_u and each
    step adds g = D_w - D_u (CFG++: x_next = D_w + sigma_next d_u, then the correction)."""
    old_d: Tensor | None = None
    for i in range(len(sigmas) - 1):
        denoised, unconditional = guided_pair(model, x, sigmas[i], cfg_pp)
        notify(callback, x, i, sigmas[i], sigmas[i], denoised)
        d, dt = to_d(x, sigmas[i], unconditional), sigmas[i + 1] - sigmas[i]
        if sigmas[i + 1] == 0:
            x = denoised
        else:
            x = x + d * dt + (denoised - unconditional)
            if old_d is not None:
                x = x + (ge_gamma - 1) * (d - old_d) * dt
        old_d = d
    return x


KARRAS = "Karras et al. 2022, Elucidating the Design Space of Diffusion-Based Generative Models"
SPECS = [
    # Flow Euler (x_t' = x_t + (t' - t) v) is this step too: both are DDIM, x_t' = (1 - t') D + t' eps_hat.
    SamplerSpec("euler", sample_euler, analytic_first_step=True, order=1, stochastic=False,
                aliases=("EulerDiscreteScheduler", "FlowMatchEulerDiscreteScheduler", "flow_euler",
                         "EDMEulerScheduler"),
                paper=f"{KARRAS}, Alg. 1 (churn: Alg. 2)",
                reference="k_diffusion.sampling.sample_euler; diffusers.EulerDiscreteScheduler, "
                          "FlowMatchEulerDiscreteScheduler, EDMEulerScheduler"),
    SamplerSpec("heun", sample_heun, order=2, stochastic=False, evals_per_step=2, final_step_evals=1,
                analytic_first_step=True,
                aliases=("HeunDiscreteScheduler", "edm_heun"), paper=f"{KARRAS}, Alg. 2",
                reference="k_diffusion.sampling.sample_heun; diffusers.HeunDiscreteScheduler"),
    SamplerSpec("dpm2", sample_dpm2, order=2, stochastic=False, evals_per_step=2, final_step_evals=1,
                analytic_first_step=True,
                aliases=("dpm_2", "KDPM2DiscreteScheduler", "DPM2"),
                paper="Lu et al. 2022, DPM-Solver, Alg. 1 (DPM-Solver-2, r=1/2) in the sigma frame",
                reference="k_diffusion.sampling.sample_dpm_2; diffusers.KDPM2DiscreteScheduler"),
    SamplerSpec("heunpp2", sample_heunpp2, order=1, stochastic=False, aliases=("heun_pp2", "heunpp"),
                paper="Heun++ of Carzit's sd-webui-samplers-scheduler (unpublished)",
                reference="ComfyUI comfy/k_diffusion/sampling.py sample_heunpp2", cost_formula="3*steps-3",
                nfe_fn=heunpp2_nfe, steps_fn=heunpp2_steps),
    SamplerSpec("gradient_estimation", sample_gradient_estimation, order=1, stochastic=False,
                aliases=("ge",), paper="Permenter & Yuan 2024, Interpreting and Improving Diffusion Models from an "
                                       "Optimization Perspective, Alg. 2 (gamma = 2)",
                reference="ComfyUI comfy/k_diffusion/sampling.py sample_gradient_estimation"),
]
