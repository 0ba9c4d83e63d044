"""Local order of the interior steps of the multistep solvers, from the exact trajectory and exact history.

Their first steps lack history and take lower orders, so a multistep solver's global order (``global_order`` 2 for
lms, ipndm, ipndm_v, deis, plms, pndm, unipc, dpmpp_3m) says nothing about its highest-order terms: a wrong
third- or fourth-order coefficient converges at the same global rate. One interior step started on the Gaussian's
closed-form trajectory, with exact history h apart, has local error O(h^(p+1)) for a step of order p; the fitted
slope over h = 0.1, 0.05, 0.025 must be within 0.3 of that (testing.local_order). Each case builds the step from the
sampler's own step functions, as its loop calls them.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import Tensor

from samplerzoo import testing
from samplerzoo.denoiser import Denoiser
from samplerzoo.samplers.exponential import evaluate, exponential_step, half_log_snr, multistep_terms
from samplerzoo.samplers.multistep import (
    Weights,
    deis_weights,
    edm_fitted_vp,
    fixed_step_weights,
    heun_warmup,
    multistep_update,
    prk_warmup,
    variable_step_weights,
)
from samplerzoo.samplers.unipc import unipc_update
from samplerzoo.steps import denoise, to_d


def adams(weights: Weights) -> testing.LocalStep:
    """adams_sampling's and pseudo_linear_multistep's step: the slopes at the history, weighted by ``weights``."""
    def step(model: Denoiser, xs: list[Tensor], sigmas: list[Tensor], sigma_next: Tensor) -> Tensor:
        grid = torch.stack([*reversed(sigmas), sigma_next])  # the schedule, oldest first
        slopes = [to_d(x, s, denoise(model, x, s)) for x, s in zip(reversed(xs), reversed(sigmas), strict=True)]
        return multistep_update(xs[0], slopes, weights(grid, len(sigmas) - 1, len(sigmas)))
    return step


def unipc(variant: str, corrector: bool = True, prediction: str = "data") -> testing.LocalStep:
    """UniP-p from the history's outputs (D, or eps for ``prediction="noise"``), then (as sample_unipc does at the
    next evaluation) UniC-p with the output at the predicted point."""
    def step(model: Denoiser, xs: list[Tensor], sigmas: list[Tensor], sigma_next: Tensor) -> Tensor:
        values = [evaluate(model, x, s, prediction)[1] for x, s in zip(xs, sigmas, strict=True)]
        lambdas = [half_log_snr(s) for s in sigmas]
        predicted = unipc_update(xs[0], sigmas[0], sigma_next, values, lambdas, variant, prediction=prediction)
        if not corrector:
            return predicted
        return unipc_update(xs[0], sigmas[0], sigma_next, values, lambdas, variant,
                            evaluate(model, predicted, sigma_next, prediction)[1], prediction)
    return step


def dpmpp_3m(second_difference: str, prediction: str = "data") -> testing.LocalStep:
    """multistep_dpm_solver's step from len(history) outputs (D, or eps): divided differences in lambda, then the
    data or noise step (with two outputs the phi_2 weight, solver_type "heun")."""
    def step(model: Denoiser, xs: list[Tensor], sigmas: list[Tensor], sigma_next: Tensor) -> Tensor:
        values = [evaluate(model, x, s, prediction)[1] for x, s in zip(xs, sigmas, strict=True)]
        lambdas = [half_log_snr(s) for s in sigmas]
        h = half_log_snr(sigma_next) - lambdas[0]
        terms = multistep_terms(values, lambdas, h, second_difference)
        return exponential_step(prediction, xs[0], sigmas[0], sigma_next, terms)
    return step


def warmup(method: Callable[..., Tensor]) -> testing.LocalStep:
    """A one-step start (PNDM's pseudo Runge-Kutta, PLMS's Heun) with its midpoint halfway in sigma."""
    def step(model: Denoiser, xs: list[Tensor], sigmas: list[Tensor], sigma_next: Tensor) -> Tensor:
        x, sigma = xs[0], sigmas[0]
        return method(model, x, to_d(x, sigma, denoise(model, x, sigma)), sigma, sigma_next, (sigma + sigma_next) / 2)
    return step


VP = edm_fitted_vp()
# id -> (step, history length, spacing of the steps, expected local order = step order + 1)
LOCAL_CASES: dict[str, tuple[testing.LocalStep, int, str, int]] = {
    # exact variable-step Adams-Bashforth weights: order 4 on any grid
    "lms_ipndm_v": (adams(variable_step_weights), 4, "log", 5),
    # fixed-step AB4 (ipndm's interior, and plms's and pndm's after their start): order 4 on uniform steps in sigma,
    # order 2 on log-uniform ones (so global order 2 on the schedules used)
    "ipndm_plms_pndm_uniform": (adams(fixed_step_weights), 4, "linear", 5),
    "ipndm_plms_pndm_log": (adams(fixed_step_weights), 4, "log", 3),
    "pndm_start": (warmup(prk_warmup), 1, "linear", 5),  # classical RK4 through the transfer
    "plms_start": (warmup(heun_warmup), 1, "linear", 3),
    # DEIS order 3, eps extrapolated in VP time (tAB, the default) and in log rho (diffusers)
    "deis_t": (adams(deis_weights("t", VP)), 3, "log", 4),
    "deis_log_rho": (adams(deis_weights("log_rho", VP)), 3, "log", 4),
    # DEIS order 4 (diff-sampler's max_order=4): four eps in VP time
    # (fitted 4.63 over h = 0.1..0.025 in log rho, 4.83 over 0.05..0.0125: smaller steps reach the asymptote)
    "deis_t_order4": (adams(deis_weights("t", VP)), 4, "log_fine", 5),
    "deis_log_rho_order4": (adams(deis_weights("log_rho", VP)), 4, "log_fine", 5),
    # DPM-Solver multistep in eps (prediction="noise"): 2M second order; 3M as published second order (as in D)
    "dpm_noise_2m": (dpmpp_3m("reference", "noise"), 2, "log", 3),
    "dpm_noise_3m_taylor": (dpmpp_3m("taylor", "noise"), 3, "log", 4),
    # UniPC-3: UniP-3 is third order, UniC-3 raises it to four (Zhao et al. 2023, Thm. 3.1)
    "unipc_predictor": (unipc("bh1", corrector=False), 3, "log", 4),
    "unipc": (unipc("bh1"), 3, "log", 5),
    "unipc_bh2": (unipc("bh2"), 3, "log", 5),
    "unipc_noise_predictor": (unipc("bh1", corrector=False, prediction="noise"), 3, "log", 4),
    "unipc_noise": (unipc("bh1", prediction="noise"), 3, "log", 5),
    "unipc_bh2_noise": (unipc("bh2", prediction="noise"), 3, "log", 5),
}
STEP_SIZES = {"log": (0.1, 0.05, 0.025), "log_fine": (0.05, 0.025, 0.0125), "linear": (0.05, 0.025, 0.0125)}


@pytest.mark.parametrize("case", LOCAL_CASES)
def test_interior_steps_have_their_local_order(case: str) -> None:
    step, history, spacing, expected = LOCAL_CASES[case]
    fitted = testing.local_order(step, history, STEP_SIZES[spacing], spacing=spacing.removesuffix("_fine"))
    print(f"{case}: local order {fitted:.3f}")
    assert abs(fitted - expected) < 0.3, f"{case}: fitted local order {fitted:.2f}, expected {expected}"


@pytest.mark.parametrize("prediction", ["data", "noise"])
@pytest.mark.parametrize(("second_difference", "expected"), [("reference", 3), ("taylor", 4)])
def test_3m_second_difference_order(second_difference: str, expected: int, prediction: str) -> None:
    """DPM-Solver++(3M)'s third-order step, equal steps h in lambda from sigma 2: local error O(h^4) needs the Taylor
    weight of f''; the published weight (half) leaves O(h^3), hence global order 2 for DPM-Solver++(3M) as
    published (k-diffusion, diffusers), 3 with "taylor"."""
    fitted = testing.local_order(dpmpp_3m(second_difference, prediction), 3, (0.1, 0.05), sigma=2.0)
    print(f"{second_difference}: local order {fitted:.3f}")
    assert abs(fitted - expected) < 0.3, f"{second_difference}: local order {fitted:.2f}"


def test_local_errors_refuse_an_unknown_spacing() -> None:
    with pytest.raises(ValueError, match="spacing must be one of"):
        testing.local_errors(adams(variable_step_weights), 2, (0.1,), spacing="cubic")
