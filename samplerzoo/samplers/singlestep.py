"""Singlestep DPM-Solver with diffusers' order schedule (``DPMSolverSinglestepScheduler``).

Where ``dpm_solver`` (Lu et al. 2022a, Alg. 1-2) places each step's intermediate evaluations at lambda + r h, here
the schedule's own levels are the intermediate points: the order list splits the N levels into groups of 1, 2 or 3,
and a group of k levels is one k-th order step from its first level to the level after its last, through the
k - 1 levels inside it. The state at an inner level is the group's step of the order reached so far, so every
level costs one evaluation. The order list is diffusers' ``get_order_list``: groups (1, 2, ..., k) repeated,
lower orders at the end (``lower_order_final``, which diffusers forces when the steps do not divide evenly or the
run lands on sigma = 0, where the last step is first order).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from torch import Tensor

from ..denoiser import Denoiser
from ..noise import NoiseSampler
from ..registry import SamplerSpec
from ..steps import Callback, notify
from .dpm_solver import LU_A, LU_B
from .exponential import PREDICTIONS, SOLVER_TYPES, check_choice, check_order, evaluate, exponential_step, half_log_snr
from .wrappers import with_options


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
]
