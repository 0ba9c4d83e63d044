"""DPM-Solver, DPM-Solver++ and their stochastic variants (coefficients: :mod:`.exponential`).

The SDE variants (SDE-DPM-Solver++ of the DPM-Solver authors' code: diffusers' "sde-dpmsolver++", k-diffusion's
dpmpp_2m_sde / dpmpp_3m_sde with eta) damp x by an extra e^{-eta h} and add fresh noise: their deterministic part
is the data-prediction formula with h_hat = (1 + eta) h in place of h (the h^k D^(k) scaling stays in h).
A step landing on sigma = 0 (h = inf) is x_next = D in every variant.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import Tensor

from ..denoiser import Denoiser, per_sample
from ..noise import NoiseSampler, gaussian_noise_like
from ..registry import SamplerSpec, steps_for_budget
from ..steps import Callback, ancestral_split, denoise, denoise_then_step, notify
from .exponential import (
    PREDICTIONS,
    SECOND_DIFFERENCES,
    SOLVER_TYPES,
    check_choice,
    check_order,
    data_step,
    evaluate,
    exponential_step,
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


# --- singlestep DPM-Solver-1, 2, 3 (noise or data prediction), DPM-Solver-fast and -adaptive ----------------

def singlestep_update(model: Denoiser, x: Tensor, sigma: Tensor, sigma_next: Tensor, f0: Tensor, order: int,
                      prediction: str, r1: float, r2: float = 2 / 3) -> tuple[Tensor, Tensor]:
    """One DPM-Solver-k step (Lu et al. 2022a, Alg. 1 (k = 2, intermediate lambda + r1 h) and Alg. 2 (k = 3,
    r1, r2)), with the embedded lower-order solution its evaluations also give (for adaptive step sizes):
    order 1 for k = 2 and DPM-Solver-2 with r1 for k = 3. ``f0`` is the output at (x, sigma).
    A step to sigma = 0 is first order (x = D).
    """
    if order == 1 or (sigma_next.dim() == 0 and sigma_next == 0):
        first = exponential_step(prediction, x, sigma, sigma_next, [f0])
        return first, first
    sigma_1 = lambda_point(sigma, sigma_next, r1)
    _, f1 = evaluate(model, exponential_step(prediction, x, sigma, sigma_1, [f0]), sigma_1, prediction)
    second = exponential_step(prediction, x, sigma, sigma_next, [f0, (f1 - f0) / r1], first_weight_only=True)
    if order == 2:
        return second, exponential_step(prediction, x, sigma, sigma_next, [f0])
    sigma_2 = lambda_point(sigma, sigma_next, r2)
    u2 = exponential_step(prediction, x, sigma, sigma_2, [f0, r2 / r1 * (f1 - f0)])
    _, f2 = evaluate(model, u2, sigma_2, prediction)
    return exponential_step(prediction, x, sigma, sigma_next, [f0, (f2 - f0) / r2]), second


def sample_dpm_solver(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None,
                      callback: Callback | None = None, order: int = 2,
                      prediction: Literal["noise", "data"] = "noise", r1: float | None = None,
                      r2: float = 2 / 3) -> Tensor:
    """Singlestep DPM-Solver-k, Lu et al. 2022a, Alg. 1 and 2 (k = order; DPM-Solver-1 is DDIM = Euler).

    Each step spends k evaluations at lambda, lambda + r1 h (r1 = 1/2 for k = 2, 1/3 for k = 3) and lambda + r2 h;
    the step to sigma = 0 is x = D (one evaluation). ``prediction="data"`` is DPM-Solver++(kS) (Lu et al.
    2022b, Alg. 1; k = 2 is dpmpp_2s). Default order 2, as diffusers' DPMSolverSinglestepScheduler; order 3
    converges faster than its order on the Gaussian test problem (fitted 3.37 over 8..64 steps).
    """
    check_order(order)
    check_choice("prediction", prediction, PREDICTIONS)
    r1 = (1 / 2 if order == 2 else 1 / 3) if r1 is None else r1
    for i in range(len(sigmas) - 1):
        denoised, f0 = evaluate(model, x, sigmas[i], prediction)
        notify(callback, x, i, sigmas[i], sigmas[i], denoised)
        x, _ = singlestep_update(model, x, sigmas[i], sigmas[i + 1], f0, order, prediction, r1, r2)
    return x


def dpm_solver_nfe(sigmas: Tensor, order: int = 2, **options: object) -> int:
    """k evaluations per step, one for a step to sigma = 0."""
    return order * (len(sigmas) - 1) - (order - 1) * int(float(sigmas[-1]) == 0)


def dpm_solver_steps(nfe: int, to_zero: bool = True, order: int = 2, **options: object) -> int:
    return steps_for_budget("dpm_solver", nfe, order, -(order - 1) if to_zero else 0,
                            f"{order}*steps" + (f"-{order - 1}" if to_zero and order > 1 else ""))


def fast_orders(nfe: int) -> list[int]:
    """DPM-Solver-fast's orders (Lu et al. 2022a): third-order steps, the remainder at the end."""
    steps = nfe // 3 + 1
    return [3] * (steps - 2) + [2, 1] if nfe % 3 == 0 else [3] * (steps - 1) + [nfe % 3]


def sample_dpm_fast(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None,
                    callback: Callback | None = None) -> Tensor:
    """DPM-Solver-fast, Lu et al. 2022a (k-diffusion's sample_dpm_fast): exactly N = len(sigmas) - 1
    evaluations, whatever the intermediate sigmas.

    Only the endpoints are used: from sigmas[0] to the last positive sigma, steps uniform in lambda with orders
    ``fast_orders`` spend the budget (N - 1 of it when sigmas end in 0, the last evaluation then giving x = D).
    """
    positive = sigmas[sigmas > 0]
    budget = len(sigmas) - 1 - int(float(sigmas[-1]) == 0)
    orders = fast_orders(budget) if budget > 0 else []
    levels = (-torch.linspace(float(half_log_snr(positive[0])), float(half_log_snr(positive[-1])),
                              len(orders) + 1, dtype=torch.float64)).exp()
    for i, order in enumerate(orders):
        denoised, f0 = evaluate(model, x, levels[i], "noise")
        notify(callback, x, i, levels[i], levels[i], denoised)
        x, _ = singlestep_update(model, x, levels[i], levels[i + 1], f0, order, "noise", 1 / 2 if order == 2 else 1 / 3)
    if float(sigmas[-1]) == 0:
        x = denoise(model, x, positive[-1])
    return x



class PIDStepSizeController:
    """Per-sample digital PID step-size filter with an arctan limiter (Soederlind 2003, as used with
    DPM-Solver-12/23 by k-diffusion): factor = limiter(e_n^b1 e_{n-1}^b2 e_{n-2}^b3), e = 1 / (error + eps),
    accept when factor >= accept_safety; h *= factor either way. Samples outside ``active`` keep their state.
    """

    def __init__(self, h: Tensor, pcoeff: float, icoeff: float, dcoeff: float, order: float,
                 accept_safety: float = 0.81, eps: float = 1e-8) -> None:
        self.h = h
        self.b = ((pcoeff + icoeff + dcoeff) / order, -(pcoeff + 2 * dcoeff) / order, dcoeff / order)
        self.accept_safety, self.eps = accept_safety, eps
        self.errs: Tensor | None = None  # (3, batch): this, last and second-to-last accepted inverse errors

    def propose_step(self, error: Tensor, active: Tensor) -> Tensor:
        inv_error = 1 / (error + self.eps)
        errs = inv_error.expand(3, -1).clone() if self.errs is None else self.errs.clone()
        errs[0] = inv_error
        factor = errs[0] ** self.b[0] * errs[1] ** self.b[1] * errs[2] ** self.b[2]
        factor = 1 + torch.atan(factor - 1)
        accept = (factor >= self.accept_safety) & active
        shifted = torch.stack([errs[0], errs[0], errs[1]])
        self.errs = torch.where(active, torch.where(accept, shifted, errs), errs if self.errs is None else self.errs)
        self.h = torch.where(active, self.h * factor, self.h)
        return accept


def sample_dpm_adaptive(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None,
                        callback: Callback | None = None, order: int = 3, rtol: float = 0.05, atol: float = 0.0078,
                        h_init: float = 0.05, pcoeff: float = 0.0, icoeff: float = 1.0, dcoeff: float = 0.0,
                        accept_safety: float = 0.81) -> Tensor:
    """DPM-Solver-12 / -23 with adaptive steps in lambda, Lu et al. 2022a (adaptive step size; k-diffusion's
    sample_dpm_adaptive, PID controller): the embedded DPM-Solver-(k-1) estimate gives the error.

    Only the endpoints of ``sigmas`` are used: sigmas[0] to the last positive sigma, then x = D (one more
    evaluation) when sigmas end in 0. Step sizes are controlled per sample (error norm over each sample's own
    elements), so a sample does not depend on its batch; every attempt evaluates the whole batch, so the
    counted NFE is that of the sample needing most attempts.
    """
    check_order(order, (2, 3))
    positive = sigmas[sigmas > 0]
    lambda_end = half_log_snr(positive[-1]).to(x.device)
    s = half_log_snr(positive[0]).to(x.device).expand(x.shape[0]).clone()
    pid = PIDStepSizeController(torch.full_like(s, h_init), pcoeff, icoeff, dcoeff, order, accept_safety)
    x_prev, i = x, 0
    while bool((active := s < lambda_end - 1e-5).any()):
        t = torch.minimum(lambda_end, s + pid.h)
        sigma_s, sigma_t = (-s).exp().to(x.dtype), (-t).exp().to(x.dtype)  # float64 lambdas must not promote x
        denoised, eps = evaluate(model, x, sigma_s, "noise")
        notify(callback, x, i, sigma_s, sigma_s, denoised)
        x_high, x_low = (u.to(x.dtype) for u in singlestep_update(model, x, sigma_s, sigma_t, eps, order, "noise",
                                                                   1 / 2 if order == 2 else 1 / 3))
        delta = torch.maximum(torch.tensor(atol, dtype=x.dtype), rtol * torch.maximum(x_low.abs(), x_prev.abs()))
        error = ((x_low - x_high) / delta).flatten(1).norm(dim=1) / x[0].numel() ** 0.5
        accept = pid.propose_step(error.to(s.dtype), active)
        x_prev, x = torch.where(per_sample(accept, x), x_low, x_prev), torch.where(per_sample(accept, x), x_high, x)
        s, i = torch.where(accept, t, s), i + 1
    if float(sigmas[-1]) == 0:
        x = denoise(model, x, positive[-1])
    return x


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
    SamplerSpec("dpm_solver", sample_dpm_solver, order=2, stochastic=False,
                paper=f"{LU_A}, Alg. 1 and 2 (order option: 1, 2, 3)",
                reference="k_diffusion.sampling.DPMSolver.dpm_solver_{1,2,3}_step; "
                          "diffusers.DPMSolverSinglestepScheduler (order 2, its steps; the whole scheduler is "
                          "dpm_solver_singlestep)",
                cost_formula="order*steps-(order-1)",
                nfe_fn=dpm_solver_nfe, steps_fn=dpm_solver_steps),
    # Third-order steps, but the budget's remainder (NFE mod 3) ends it on lower-order steps: asymptotically
    # order 2 for NFE = 1, 2 mod 3 and 3 for NFE = 0 mod 3 (fast_orders); its declared global order is the lower.
    SamplerSpec("dpm_fast", sample_dpm_fast, order=3, global_order=2, stochastic=False,
                aliases=("dpm_solver_fast",), paper=f"{LU_A} (DPM-Solver-fast)",
                reference="k_diffusion.sampling.sample_dpm_fast"),
    SamplerSpec("dpm_adaptive", sample_dpm_adaptive, order=3, stochastic=False, adaptive=True,
                aliases=("dpm_solver_adaptive",), paper=f"{LU_A} (DPM-Solver-12 / -23, adaptive step size)",
                reference="k_diffusion.sampling.sample_dpm_adaptive"),
]
