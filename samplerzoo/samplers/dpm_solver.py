"""Multistep and 2S DPM-Solver++ and their stochastic variants (coefficients: :mod:`.exponential`; Lu et al.
2022a's singlestep DPM-Solver-1/2/3, -fast and -adaptive: :mod:`.singlestep`).

The SDE variants (SDE-DPM-Solver++ of the DPM-Solver authors' code: diffusers' "sde-dpmsolver++", k-diffusion's
dpmpp_2m_sde / dpmpp_3m_sde with eta) damp x by an extra e^{-eta h} and add fresh noise: their deterministic part
is the data-prediction formula with h_hat = (1 + eta) h in place of h (the h^k D^(k) scaling stays in h).
A step landing on sigma = 0 (h = inf) is x_next = D in every variant.
"""

from __future__ import annotations

import math
from typing import Literal

from torch import Tensor

from ..denoiser import Denoiser
from ..noise import NoiseSampler, gaussian_noise_like
from ..registry import SamplerSpec
from ..steps import Callback, ancestral_split, denoise, denoise_then_step, notify
from .exponential import (
    PREDICTIONS,
    SECOND_DIFFERENCES,
    SOLVER_TYPES,
    check_choice,
    data_step,
    evaluate,
    half_log_snr,
    lambda_point,
    multistep_terms,
    noise_step,
)
from .wrappers import with_options

# --- multistep DPM-Solver++ (ODE and SDE) -------------------------------------------------------------------

def multistep_dpm_solver(model: Denoiser, x: Tensor, sigmas: Tensor, order: int, noise: NoiseSampler | None,
                         callback: Callback | None, eta: float = 0.0, s_noise: float = 1.0,
                         solver_type: str = "midpoint", second_difference: str = "reference",
                         prediction: str = "data", lower_order_final: bool = False) -> Tensor:
    """Multistep DPM-Solver(++)(kM), k = ``order``: one evaluation per step, earlier outputs give the derivatives.

    ``prediction="data"`` integrates D (DPM-Solver++, Lu et al. 2022b, Alg. 2), ``"noise"`` eps = (x - D) / sigma
    (the multistep DPM-Solver of the authors' code; diffusers' algorithm_type="dpmsolver"), with the same divided
    differences. Lower orders on the first steps (no history yet), on a step to sigma = 0 (x = D) and, with
    ``lower_order_final``, on step i of N at most N - i. ``eta`` > 0 (data prediction only) is the SDE variant:
    damping e^{-eta h} and fresh noise sigma_next sqrt(1 - e^{-2 eta h}) s_noise z.
    """
    check_choice("solver_type", solver_type, SOLVER_TYPES)
    check_choice("second_difference", second_difference, SECOND_DIFFERENCES)
    check_choice("prediction", prediction, PREDICTIONS)
    noise = noise or gaussian_noise_like(x)
    history: list[Tensor] = []
    lambdas: list[float] = []
    steps = len(sigmas) - 1
    for i in range(steps):
        sigma, sigma_next = float(sigmas[i]), float(sigmas[i + 1])
        denoised, f = evaluate(model, x, sigmas[i], prediction)
        notify(callback, x, i, sigmas[i], sigmas[i], denoised)
        history, lambdas = [f, *history][:order], [half_log_snr(sigma), *lambdas][:order]
        terms = [f]
        if sigma_next > 0:
            h = half_log_snr(sigma_next) - lambdas[0]
            k = min(order, steps - i) if lower_order_final else order
            terms = multistep_terms(history[:k], lambdas[:k], h, second_difference)
        midpoint = solver_type == "midpoint" and len(terms) == 2  # third-order steps always weight with phi_2
        if prediction == "noise":
            x = noise_step(x, sigmas[i], sigmas[i + 1], terms, first_weight_only=midpoint)
            continue
        x_next = data_step(x, sigma, sigma_next, terms, eta, first_weight_only=midpoint)
        if eta > 0 and sigma_next > 0:
            x_next = x_next + noise(sigmas[i], sigmas[i + 1]) * (sigma_next * math.sqrt(-math.expm1(-2 * eta * h))
                                                                 * s_noise)
        x = x_next
    return x


Prediction = Literal["data", "noise"]


def sample_dpmpp_2m(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None,
                    callback: Callback | None = None, solver_type: Literal["midpoint", "heun"] = "midpoint",
                    prediction: Prediction = "data", lower_order_final: bool = False, afs: bool = False,
                    thresholding: bool = False, dynamic_thresholding_ratio: float = 0.995,
                    sample_max_value: float = 1.0) -> Tensor:
    """DPM-Solver++(2M), Lu et al. 2022b, Alg. 2: D_i + (D_i - D_{i-1}) h_i / (2 h_{i-1}) in the DDIM step.

    ``solver_type="heun"`` weights the difference with h phi_2(-h) instead (diffusers' option); first step and
    step to sigma = 0 are first order (DDIM). ``prediction="noise"``: the same multistep in eps (DPM-Solver-2M,
    diffusers' "dpmsolver", diff-sampler's predict_x0=False). ``lower_order_final``: the last step first order
    (diffusers' default below 15 steps; off, as k-diffusion and ComfyUI). ``afs``: the analytical first step;
    ``thresholding``: dynamic thresholding of D (``wrappers.py``).
    """
    model = with_options(model, afs, thresholding, dynamic_thresholding_ratio, sample_max_value)
    return multistep_dpm_solver(model, x, sigmas, 2, noise, callback, solver_type=solver_type,
                                prediction=prediction, lower_order_final=lower_order_final)


def sample_dpmpp_3m(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None,
                    callback: Callback | None = None, solver_type: Literal["midpoint", "heun"] = "heun",
                    second_difference: Literal["reference", "taylor"] = "reference", prediction: Prediction = "data",
                    lower_order_final: bool = False, afs: bool = False, thresholding: bool = False,
                    dynamic_thresholding_ratio: float = 0.995, sample_max_value: float = 1.0) -> Tensor:
    """DPM-Solver++(3M), Lu et al. 2022b's multistep third order (their code); orders 1, 2 on the first steps.

    The defaults reproduce k-diffusion (dpmpp_3m_sde, eta = 0); ``solver_type`` is the rule of the second-order
    warm-up step (diffusers' solver_order=3 uses its default "midpoint" there). As published its second difference
    has half the Taylor weight, so its steps are second order (fitted 2.75 over 8..64 steps on the Gaussian test
    problem, 2.0 asymptotically); ``second_difference="taylor"`` restores third-order steps (``multistep_terms``).
    ``prediction``, ``lower_order_final`` (the last two steps at orders 1 and 2), ``afs`` and ``thresholding``
    as for :func:`sample_dpmpp_2m`.
    """
    model = with_options(model, afs, thresholding, dynamic_thresholding_ratio, sample_max_value)
    return multistep_dpm_solver(model, x, sigmas, 3, noise, callback, solver_type=solver_type,
                                second_difference=second_difference, prediction=prediction,
                                lower_order_final=lower_order_final)


def sample_dpmpp_2m_sde(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None,
                        callback: Callback | None = None, eta: float = 1.0, s_noise: float = 1.0,
                        solver_type: Literal["midpoint", "heun"] = "midpoint", thresholding: bool = False,
                        dynamic_thresholding_ratio: float = 0.995, sample_max_value: float = 1.0) -> Tensor:
    """SDE-DPM-Solver++(2M) (Lu et al. 2022b; diffusers' sde-dpmsolver++): eta = 1 the reverse SDE, 0 the ODE;
    ``thresholding`` as for :func:`sample_dpmpp_2m`."""
    model = with_options(model, False, thresholding, dynamic_thresholding_ratio, sample_max_value)
    return multistep_dpm_solver(model, x, sigmas, 2, noise, callback, eta, s_noise, solver_type)


def sample_dpmpp_2m_sde_heun(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None,
                             callback: Callback | None = None, eta: float = 1.0, s_noise: float = 1.0) -> Tensor:
    """SDE-DPM-Solver++(2M) with the h phi_2 ("heun") weight, Lu et al. 2022b (ComfyUI's dpmpp_2m_sde_heun)."""
    return multistep_dpm_solver(model, x, sigmas, 2, noise, callback, eta, s_noise, "heun")


def sample_dpmpp_3m_sde(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None,
                        callback: Callback | None = None, eta: float = 1.0, s_noise: float = 1.0,
                        second_difference: Literal["reference", "taylor"] = "reference") -> Tensor:
    """SDE-DPM-Solver++(3M): the 3M step with h_hat = (1 + eta) h, plus noise (k-diffusion's dpmpp_3m_sde)."""
    return multistep_dpm_solver(model, x, sigmas, 3, noise, callback, eta, s_noise, "heun", second_difference)


# --- singlestep DPM-Solver++(2S) and the stochastic DPM-Solver++ ----------------------------------------------

def dpmpp_2s_step(model: Denoiser, x: Tensor, denoised: Tensor, sigma: Tensor, sigma_next: Tensor,
                  r: float = 0.5) -> Tensor:
    """DPM-Solver++(2S), Lu et al. 2022b, Alg. 1: DDIM to lambda + r h, evaluate there, DDIM with that D.

    To sigma_next = 0 it is the plain first-order step (x = D), with no second evaluation.
    """
    if sigma_next == 0:
        return denoised
    sigma_s = lambda_point(sigma, sigma_next, r)
    x_s = data_step(x, sigma, sigma_s, [denoised])
    return data_step(x, sigma, sigma_next, [(1 - 1 / (2 * r)) * denoised + denoise(model, x_s, sigma_s) / (2 * r)])


def sample_dpmpp_2s_ancestral(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None,
                              callback: Callback | None = None, eta: float = 1.0, s_noise: float = 1.0) -> Tensor:
    """Ancestral DPM-Solver++(2S) (Lu et al. 2022b, Alg. 1): a 2S step to sigma_down, then sigma_up noise.

    k-diffusion's dpmpp_2s_ancestral; eta = 0 is the deterministic DPM-Solver++(2S). A step with
    sigma_down = 0 (the last one, or eta large enough) costs one evaluation.
    """
    noise = noise or gaussian_noise_like(x)
    for i in range(len(sigmas) - 1):
        denoised = denoise(model, x, sigmas[i])
        notify(callback, x, i, sigmas[i], sigmas[i], denoised)
        sigma_down, sigma_up = ancestral_split(sigmas[i], sigmas[i + 1], eta)
        x = dpmpp_2s_step(model, x, denoised, sigmas[i], sigma_down)
        if sigmas[i + 1] > 0 and sigma_up > 0:
            x = x + noise(sigmas[i], sigmas[i + 1]) * (s_noise * sigma_up)
    return x


def sample_dpmpp_2s(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None,
                    callback: Callback | None = None) -> Tensor:
    """DPM-Solver++(2S), Lu et al. 2022b, Alg. 1 (r = 1/2): second order, two evaluations per step."""
    return sample_dpmpp_2s_ancestral(model, x, sigmas, noise=noise, callback=callback, eta=0.0)


def sample_dpmpp_sde(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None,
                     callback: Callback | None = None, eta: float = 1.0, s_noise: float = 1.0,
                     r: float = 0.5) -> Tensor:
    """Stochastic DPM-Solver++(2S) (k-diffusion's dpmpp_sde; Lu et al. 2022b, Alg. 1 with ancestral sub-steps).

    Each step: an ancestral DDIM sub-step to lambda + r h (noise(sigma, sigma_s)), an evaluation there, then an
    ancestral step to sigma_next with D mixed as (1 - 1/(2r)) D + D_s / (2r) (noise(sigma, sigma_next)).
    Meant for Brownian noise (``BrownianTreeNoise``), whose two increments from sigma are correlated.
    The step to sigma = 0 is x = D (one evaluation).
    """
    noise = noise or gaussian_noise_like(x)

    def step(x: Tensor, denoised: Tensor, i: int) -> Tensor:
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        sigma_s = lambda_point(sigma, sigma_next, r)
        x_s = sde_substep(x, denoised, sigma, sigma_s, eta, s_noise, noise)
        mixed = (1 - 1 / (2 * r)) * denoised + denoise(model, x_s, sigma_s) / (2 * r)
        return sde_substep(x, mixed, sigma, sigma_next, eta, s_noise, noise)
    return denoise_then_step(model, x, sigmas, callback, step)


def sde_substep(x: Tensor, denoised: Tensor, sigma: Tensor, sigma_next: Tensor, eta: float, s_noise: float,
                noise: NoiseSampler) -> Tensor:
    """Ancestral DDIM step: first-order data step to sigma_down, plus sigma_up noise drawn for (sigma, sigma_next)."""
    sigma_down, sigma_up = ancestral_split(sigma, sigma_next, eta)
    x = data_step(x, sigma, sigma_down, [denoised])
    return x + noise(sigma, sigma_next) * (s_noise * sigma_up) if sigma_up > 0 else x


LU_A = "Lu et al. 2022a, DPM-Solver: A Fast ODE Solver for Diffusion Probabilistic Model Sampling"
LU_B = "Lu et al. 2022b, DPM-Solver++: Fast Solver for Guided Sampling of Diffusion Probabilistic Models"
SPECS = [
    SamplerSpec("dpmpp_2m", sample_dpmpp_2m, order=2, stochastic=False, analytic_first_step=True,
                aliases=("DPMSolverMultistepScheduler", "dpm++_2m", "EDMDPMSolverMultistepScheduler"),
                paper=f"{LU_B}, Alg. 2",
                reference="k_diffusion.sampling.sample_dpmpp_2m; diffusers.DPMSolverMultistepScheduler "
                          "(algorithm_type 'dpmsolver++' and 'dpmsolver', thresholding, lower_order_final), "
                          "EDMDPMSolverMultistepScheduler; "
                          "zju-pi/diff-sampler dpm_pp_sampler (afs, predict_x0)"),
    SamplerSpec("dpmpp_3m", sample_dpmpp_3m, order=3, global_order=2, stochastic=False, aliases=("dpm++_3m",),
                analytic_first_step=True,
                paper=f"{LU_B} (multistep third order, authors' code)",
                reference="k_diffusion.sampling.sample_dpmpp_3m_sde(eta=0); "
                          "diffusers.DPMSolverMultistepScheduler(solver_order=3) (both algorithm types, thresholding, "
                          "lower_order_final); zju-pi/diff-sampler dpm_pp_sampler (afs, predict_x0)"),
    SamplerSpec("dpmpp_2m_sde", sample_dpmpp_2m_sde, order=1, stochastic=True, brownian=True, weak_order=2,
                reverse_sde=True,
                aliases=("dpmpp_2m_sde_gpu", "dpm++_2m_sde"), paper=f"{LU_B} (SDE-DPM-Solver++(2M))",
                reference="k_diffusion.sampling.sample_dpmpp_2m_sde; "
                          "diffusers.DPMSolverMultistepScheduler(algorithm_type='sde-dpmsolver++')"),
    SamplerSpec("dpmpp_2m_sde_heun", sample_dpmpp_2m_sde_heun, order=1, stochastic=True, brownian=True, weak_order=2,
                reverse_sde=True,
                aliases=("dpmpp_2m_sde_heun_gpu",), paper=f"{LU_B} (SDE-DPM-Solver++(2M), heun)",
                reference="k_diffusion.sampling.sample_dpmpp_2m_sde(solver_type='heun')"),
    SamplerSpec("dpmpp_3m_sde", sample_dpmpp_3m_sde, order=1, stochastic=True, brownian=True, weak_order=2,
                reverse_sde=True,
                aliases=("dpmpp_3m_sde_gpu", "dpm++_3m_sde"), paper=f"{LU_B} (3M with the SDE step)",
                reference="k_diffusion.sampling.sample_dpmpp_3m_sde"),
    SamplerSpec("dpmpp_2s_ancestral", sample_dpmpp_2s_ancestral, order=1, stochastic=True, reverse_sde=True,
                evals_per_step=2, final_step_evals=1, aliases=("dpm++_2s_a", "dpmpp_2s_a"),
                paper=f"{LU_B}, Alg. 1 (ancestral)",
                reference="k_diffusion.sampling.sample_dpmpp_2s_ancestral"),
    SamplerSpec("dpmpp_2s", sample_dpmpp_2s, order=2, stochastic=False, evals_per_step=2, final_step_evals=1,
                aliases=("dpm++_2s",), paper=f"{LU_B}, Alg. 1 (DPM-Solver++(2S), r = 1/2)",
                reference="k_diffusion.sampling.sample_dpmpp_2s_ancestral(eta=0)"),
    SamplerSpec("dpmpp_sde", sample_dpmpp_sde, order=1, stochastic=True, brownian=True, weak_order=2, reverse_sde=True,
                evals_per_step=2,
                final_step_evals=1,
                aliases=("dpmpp_sde_gpu", "dpm++_sde", "DPMSolverSDEScheduler"),
                paper=f"{LU_B}, Alg. 1 with ancestral sub-steps (r = 1/2)",
                reference="k_diffusion.sampling.sample_dpmpp_sde; diffusers.DPMSolverSDEScheduler (with s_noise=0; "
                          "it draws its own Brownian noise)"),
]
