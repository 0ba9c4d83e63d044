"""Probability-flow ODE solvers in the sigma frame, with EDM's optional churn."""

from __future__ import annotations

import math

from torch import Tensor

from ..denoiser import Denoiser
from ..noise import NoiseSampler, gaussian_noise_like
from ..registry import SamplerSpec
from ..steps import Callback, churn, denoise, dpm2_step, notify, to_d


def sample_euler(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None,
                 callback: Callback | None = None, s_churn: float = 0.0, s_tmin: float = 0.0,
                 s_tmax: float = math.inf, s_noise: float = 1.0) -> Tensor:
    """Euler's method, x_{i+1} = x_hat + (sigma_{i+1} - sigma_hat) d_i (Karras et al. 2022, Alg. 1; churn: Alg. 2)."""
    noise = noise or gaussian_noise_like(x)
    for i in range(len(sigmas) - 1):
        x, sigma_hat = churn(x, sigmas, i, noise, s_churn, s_tmin, s_tmax, s_noise)
        denoised = denoise(model, x, sigma_hat)
        notify(callback, x, i, sigmas[i], sigma_hat, denoised)
        x = x + to_d(x, sigma_hat, denoised) * (sigmas[i + 1] - sigma_hat)
    return x


def sample_heun(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None,
                callback: Callback | None = None, s_churn: float = 0.0, s_tmin: float = 0.0,
                s_tmax: float = math.inf, s_noise: float = 1.0) -> Tensor:
    """Heun's 2nd-order method; the step to sigma = 0 is Euler, so N steps cost 2N - 1 (Karras et al. 2022, Alg. 2)."""
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
                s_tmax: float = math.inf, s_noise: float = 1.0) -> Tensor:
    """DPM-Solver-2: midpoint in log sigma (Lu et al. 2022, Alg. 1; Karras et al. 2022, Sec. 3); Euler to sigma = 0."""
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


KARRAS = "Karras et al. 2022, Elucidating the Design Space of Diffusion-Based Generative Models"
SPECS = [
    # Flow Euler (x_t' = x_t + (t' - t) v) is this step too: both are DDIM, x_t' = (1 - t') D + t' eps_hat.
    SamplerSpec("euler", sample_euler, order=1, stochastic=False,
                aliases=("EulerDiscreteScheduler", "FlowMatchEulerDiscreteScheduler", "flow_euler"),
                paper=f"{KARRAS}, Alg. 1 (churn: Alg. 2)",
                reference="k_diffusion.sampling.sample_euler; diffusers.EulerDiscreteScheduler, "
                          "FlowMatchEulerDiscreteScheduler"),
    SamplerSpec("heun", sample_heun, order=2, stochastic=False, evals_per_step=2, final_step_evals=1,
                aliases=("HeunDiscreteScheduler", "edm_heun"), paper=f"{KARRAS}, Alg. 2",
                reference="k_diffusion.sampling.sample_heun; diffusers.HeunDiscreteScheduler"),
    SamplerSpec("dpm2", sample_dpm2, order=2, stochastic=False, evals_per_step=2, final_step_evals=1,
                aliases=("dpm_2", "KDPM2DiscreteScheduler", "DPM2"),
                paper="Lu et al. 2022, DPM-Solver, Alg. 1 (DPM-Solver-2, r=1/2) in the sigma frame",
                reference="k_diffusion.sampling.sample_dpm_2; diffusers.KDPM2DiscreteScheduler"),
]
