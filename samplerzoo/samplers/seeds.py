"""SEEDS: stochastic explicit exponential derivative-free solvers in data prediction (Gonzalez et al. 2023,
SEEDS: Exponential SDE Solvers for Fast High-Quality Sampling from Diffusion Models, SEEDS-2 and -3, VP data
prediction), and the exponential Heun method, their r = 1 case.

In the sigma frame (lambda = -log sigma, h = lambda_next - lambda) one step goes through stages at lambda + r_k h.
A stage to r takes the data-prediction step with h_hat = (1 + eta) r h (:func:`exponential.data_step`): e^{-h_hat} x
+ (1 - e^{-h_hat}) D + h_hat phi_2(-h_hat) (r / r_last) (D_last - D), the last term from the latest stage's
evaluation D_last at r_last (none at the first stage). With eta > 0 each stage adds sigma_r s_noise w_r, w one
Ornstein-Uhlenbeck path over the step: w_r = e^{-(r - r_prev) eta h} w_prev + sqrt(1 - e^{-2 (r - r_prev) eta h}) z,
so the noise of a stage is the earlier one's, decayed, plus fresh noise (ComfyUI's sample_seeds_2 / _3).
A step to sigma = 0 is x = D (one evaluation).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from torch import Tensor

from ..denoiser import Denoiser
from ..errors import SamplerzooError
from ..noise import NoiseSampler, gaussian_noise_like
from ..registry import SamplerSpec
from ..steps import Callback, denoise, denoise_then_step
from .exponential import data_step, lambda_point

SOLVER_TYPES = ("phi_1", "phi_2")


def seeds_sampling(model: Denoiser, x: Tensor, sigmas: Tensor, noise: NoiseSampler | None, callback: Callback | None,
                   nodes: Sequence[float], eta: float, s_noise: float, final_midpoint: bool = False) -> Tensor:
    """Steps with evaluations at the stages ``nodes`` (r in (0, 1]) and a last stage to r = 1; ``final_midpoint``
    weights the last stage's difference with (1 - e^{-h_hat}) / 2 instead of h_hat phi_2 (SEEDS-2's "phi_1")."""
    noise = noise or gaussian_noise_like(x)
    stochastic = eta > 0 and s_noise > 0

    def step(x: Tensor, denoised: Tensor, i: int) -> Tensor:
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        h = math.log(float(sigma / sigma_next))
        path, last, r_last, sigma_last = x.new_zeros(()), denoised, 0.0, sigma
        for k, r in enumerate([*nodes, 1.0]):
            sigma_r = lambda_point(sigma, sigma_next, r)
            terms = [denoised] if r_last == 0 else [denoised, (last - denoised) * (r / r_last)]
            stage = data_step(x, sigma, sigma_r, terms, eta, first_weight_only=final_midpoint and k == len(nodes))
            if stochastic and r > r_last:
                decay = math.exp(-(r - r_last) * eta * h)
                path = path * decay + noise(sigma_last, sigma_r) * math.sqrt(1 - decay**2)
            if stochastic:
                stage = stage + path * (sigma_r * s_noise)
            if k < len(nodes):
                last, r_last, sigma_last = denoise(model, stage, sigma_r), r, sigma_r
        return stage
    return denoise_then_step(model, x, sigmas, callback, step)


def sample_seeds_2(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None,
                   callback: Callback | None = None, eta: float = 1.0, s_noise: float = 1.0, r: float = 0.5,
                   solver_type: Literal["phi_1", "phi_2"] = "phi_1") -> Tensor:
    """SEEDS-2 (Gonzalez et al. 2023, VP data prediction, 2 stages): one evaluation at lambda + r h; eta = 0 is
    DPM-Solver++(2S) ("phi_1") or the exponential RK2 with the phi_2 weight ("phi_2")."""
    if solver_type not in SOLVER_TYPES:
        raise SamplerzooError(f"seeds_2 solver_type {solver_type!r} is unknown; accepted: {', '.join(SOLVER_TYPES)}")
    return seeds_sampling(model, x, sigmas, noise, callback, [r], eta, s_noise, solver_type == "phi_1")


def sample_seeds_3(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None,
                   callback: Callback | None = None, eta: float = 1.0, s_noise: float = 1.0, r_1: float = 1 / 3,
                   r_2: float = 2 / 3) -> Tensor:
    """SEEDS-3 (Gonzalez et al. 2023, VP data prediction, 3 stages at r_1 and r_2); eta = 0 is DPM-Solver-3's data
    form (Lu et al. 2022b)."""
    return seeds_sampling(model, x, sigmas, noise, callback, [r_1, r_2], eta, s_noise)


def sample_exp_heun_2_x0(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None,
                         callback: Callback | None = None,
                         solver_type: Literal["phi_1", "phi_2"] = "phi_2") -> Tensor:
    """Exponential Heun in data prediction and log-SNR time: DDIM to sigma_next, evaluate there, then the step with
    D's slope from both ends (SEEDS-2 with r = 1 and eta = 0; ComfyUI's exp_heun_2_x0)."""
    return sample_seeds_2(model, x, sigmas, noise=noise, callback=callback, eta=0.0, s_noise=0.0, r=1.0,
                          solver_type=solver_type)


def sample_exp_heun_2_x0_sde(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None,
                             callback: Callback | None = None, eta: float = 1.0, s_noise: float = 1.0,
                             solver_type: Literal["phi_1", "phi_2"] = "phi_2") -> Tensor:
    """Stochastic exponential Heun in data prediction (SEEDS-2 with r = 1: both stages share one noise draw)."""
    return sample_seeds_2(model, x, sigmas, noise=noise, callback=callback, eta=eta, s_noise=s_noise, r=1.0,
                          solver_type=solver_type)


GONZALEZ = "Gonzalez et al. 2023, SEEDS: Exponential SDE Solvers for Fast High-Quality Sampling from Diffusion Models"
COMFY = "ComfyUI comfy/k_diffusion/sampling.py"
SPECS = [
    SamplerSpec("seeds_2", sample_seeds_2, order=1, stochastic=True, weak_order=2, reverse_sde=True, evals_per_step=2,
                final_step_evals=1,
                paper=f"{GONZALEZ}, SEEDS-2 (VP, data prediction)", reference=f"{COMFY} sample_seeds_2"),
    # Measured weak order 1 on the exact Gaussian law (the error shrinks 2.4x per doubling from 25 steps, not 2.8x).
    SamplerSpec("seeds_3", sample_seeds_3, order=1, stochastic=True, reverse_sde=True, evals_per_step=3,
                final_step_evals=1,
                paper=f"{GONZALEZ}, SEEDS-3 (VP, data prediction)", reference=f"{COMFY} sample_seeds_3"),
    SamplerSpec("exp_heun_2_x0", sample_exp_heun_2_x0, order=2, stochastic=False, evals_per_step=2,
                final_step_evals=1, paper=f"{GONZALEZ} (SEEDS-2 with r = 1, eta = 0): exponential Heun",
                reference=f"{COMFY} sample_exp_heun_2_x0"),
    SamplerSpec("exp_heun_2_x0_sde", sample_exp_heun_2_x0_sde, order=1, stochastic=True, weak_order=2,
                reverse_sde=True, evals_per_step=2,
                final_step_evals=1, paper=f"{GONZALEZ} (SEEDS-2 with r = 1)",
                reference=f"{COMFY} sample_exp_heun_2_x0_sde"),
]
