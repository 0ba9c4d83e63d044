"""Singlestep DPM-Solver (Lu et al. 2022a): each step's intermediate evaluations inside the step.

``dpm_solver``, ``dpm_fast`` and ``dpm_adaptive`` place them at lambda + r h (Alg. 1-2, as k-diffusion's DPMSolver).
``dpm_solver_singlestep`` follows diffusers' ``DPMSolverSinglestepScheduler``: the schedule's own levels are the
intermediate points: the order list splits the N levels into groups of 1, 2 or 3,
and a group of k levels is one k-th order step from its first level to the level after its last, through the
k - 1 levels inside it. The state at an inner level is the group's step of the order reached so far, so every
level costs one evaluation. The order list is diffusers' ``get_order_list``: groups (1, 2, ..., k) repeated,
lower orders at the end (``lower_order_final``, which diffusers forces when the steps do not divide evenly or the
run lands on sigma = 0, where the last step is first order).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

from ..denoiser import Denoiser, per_sample
from ..noise import NoiseSampler
from ..registry import SamplerSpec, steps_for_budget
from ..steps import Callback, denoise, notify
from .dpm_solver import LU_A, LU_B
from .exponential import (
    PREDICTIONS,
    SOLVER_TYPES,
    check_choice,
    check_order,
    evaluate,
    exponential_step,
    half_log_snr,
    lambda_point,
)
from .wrappers import with_options

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


# --- diffusers' order list ------------------------------------------------------------------------------------

def singlestep_orders(steps: int, order: int, lower_order_final: bool, to_zero: bool) -> list[int]:
    """The order of each of ``steps`` evaluations: groups 1, 2, ..., order (diffusers' get_order_list)."""
    group = list(range(1, order + 1))
    count, rest = divmod(steps, order)
    if order == 1:
        orders = [1] * steps
    elif not (lower_order_final or to_zero or rest):
        orders = group * count
    elif rest:
        orders = group * count + group[:rest]
    else:  # the last group one order lower, then a first-order step
        orders = group * (count - 1) + group[:-1] + [1]
    if to_zero:
        orders[-1] = 1
    return orders


def group_terms(values: Sequence[Tensor], lambdas: Sequence[Tensor], h: Tensor, solver_type: str
                ) -> tuple[list[Tensor], bool]:
    """Taylor terms h^k f^(k) of the group's step and whether it takes the midpoint weight (diffusers' rules).

    ``values`` are the outputs at the group's levels, oldest first, with half log-SNRs ``lambdas``; h is the
    whole step. Two points: f0 and the divided difference (f1 - f0) / r1, midpoint weight or (heun) h phi_2.
    Three points: midpoint uses (f2 - f0) / r2 with the h phi_2 weight; heun the quadratic's first and second
    derivative terms D1 and D2 with the h phi_2 and h phi_3 weights (Lu et al. 2022a, App. B).
    """
    f0 = values[0]
    r = [(lam - lambdas[0]) / h for lam in lambdas[1:]]
    if len(values) == 1:
        return [f0], False
    if len(values) == 2:
        return [f0, (values[1] - f0) / r[0]], solver_type == "midpoint"
    slope_mid, slope_new = (values[1] - f0) / r[0], (values[2] - f0) / r[1]
    if solver_type == "midpoint":
        return [f0, slope_new], False
    first = (r[1] * slope_mid - r[0] * slope_new) / (r[1] - r[0])
    return [f0, first, 2 * (slope_new - slope_mid) / (r[1] - r[0])], False


def sample_dpm_solver_singlestep(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None,
                                 callback: Callback | None = None, order: int = 2,
                                 prediction: Literal["data", "noise"] = "data",
                                 solver_type: Literal["midpoint", "heun"] = "midpoint",
                                 lower_order_final: bool = True, thresholding: bool = False,
                                 dynamic_thresholding_ratio: float = 0.995, sample_max_value: float = 1.0) -> Tensor:
    """Singlestep DPM-Solver(++) of order 1-3 on diffusers' order list (Lu et al. 2022a, Alg. 1-2; Lu et al. 2022b,
    Alg. 1; diffusers' DPMSolverSinglestepScheduler): one evaluation per level, each group of levels one step.

    ``prediction="data"`` is DPM-Solver++ (diffusers' default "dpmsolver++"), ``"noise"`` DPM-Solver ("dpmsolver");
    ``thresholding``: dynamic thresholding of D (``wrappers.py``), as the scheduler's ``thresholding=True``.
    """
    model = with_options(model, thresholding=thresholding, dynamic_thresholding_ratio=dynamic_thresholding_ratio,
                         sample_max_value=sample_max_value)
    check_order(order)
    check_choice("prediction", prediction, PREDICTIONS)
    check_choice("solver_type", solver_type, SOLVER_TYPES)
    steps = len(sigmas) - 1
    orders = singlestep_orders(steps, order, lower_order_final, float(sigmas[-1]) == 0)
    x_start, start = x, 0
    values: list[Tensor] = []
    for i, k in enumerate(orders):
        denoised, f = evaluate(model, x, sigmas[i], prediction)
        notify(callback, x, i, sigmas[i], sigmas[i], denoised)
        if k == 1:
            x_start, start, values = x, i, []
        values.append(f)
        lambdas = [half_log_snr(s) for s in sigmas[start:i + 1]]
        target = sigmas[i + 1]
        h = half_log_snr(target) - lambdas[0] if target > 0 else lambdas[0].new_ones(())
        terms, midpoint = group_terms(values, lambdas, h, solver_type)
        x = exponential_step(prediction, x_start, sigmas[start], target, terms, first_weight_only=midpoint)
    return x


SPECS = [
    SamplerSpec("dpm_solver_singlestep", sample_dpm_solver_singlestep, order=2, stochastic=False,
                aliases=("DPMSolverSinglestepScheduler", "dpmpp_singlestep"),
                paper=f"{LU_A}, Alg. 1-2; {LU_B}, Alg. 1 (on diffusers' order list)",
                reference="diffusers.DPMSolverSinglestepScheduler (orders 1-3, both algorithms and solver types)"),
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
