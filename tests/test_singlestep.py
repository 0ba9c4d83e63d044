"""dpm_solver_singlestep against diffusers' DPMSolverSinglestepScheduler, the whole scheduler: its order list, both
algorithms (dpmsolver++ = data prediction, dpmsolver = noise prediction), both solver types, orders 1-3, landing
on 0 or stopping at the table's sigma_min. Same epsilon network, betas and start (tests/diffusers_driver.py).

The scheduler's own timesteps (N + 1 rounded points over T - 1, less the last) are taken as our levels, at the
integer timesteps where our float64 table holds diffusers' levels.
"""

from __future__ import annotations

import diffusers_driver as driver
import pytest
import torch

from samplerzoo.samplers.singlestep import singlestep_orders

pytestmark = [driver.PYTESTMARK,
              pytest.mark.filterwarnings("ignore:.algorithm_types=dpmsolver. is deprecated:FutureWarning")]


@pytest.mark.parametrize(("steps", "order", "lower", "to_zero"), [  # diffusers' set_timesteps forces lower
    (steps, order, lower, to_zero) for steps in (1, 2, 3, 4, 6, 7, 8, 9) for order in (1, 2, 3)  # order final on
    for lower, to_zero in ((True, True), (True, False), (False, False)) if lower or steps % order == 0])  # uneven N
def test_order_list_is_diffusers(steps: int, order: int, lower: bool, to_zero: bool) -> None:
    from diffusers import DPMSolverSinglestepScheduler

    scheduler = DPMSolverSinglestepScheduler(solver_order=order, lower_order_final=lower,
                                             final_sigmas_type="zero" if to_zero else "sigma_min")
    assert singlestep_orders(steps, order, lower, to_zero) == scheduler.get_order_list(steps)


CASES = {  # name: our options, diffusers' config
    "dpmpp_2": ({}, {}),
    "dpmpp_3": ({"order": 3}, {"solver_order": 3}),
    "dpmpp_3_heun": ({"order": 3, "solver_type": "heun"}, {"solver_order": 3, "solver_type": "heun"}),
    "dpmpp_2_heun": ({"solver_type": "heun"}, {"solver_type": "heun"}),
    "dpm_3_noise": ({"order": 3, "prediction": "noise"}, {"solver_order": 3, "algorithm_type": "dpmsolver"}),
    "dpm_2_noise_heun": ({"prediction": "noise", "solver_type": "heun"},
                         {"algorithm_type": "dpmsolver", "solver_type": "heun"}),
    "dpmpp_1": ({"order": 1}, {"solver_order": 1}),
    # Dynamic thresholding of D: |D| reaches ~4 on this network, so it clips.
    # (Not with "dpmsolver": diffusers 0.42's singlestep noise branch indexes alpha_t by an undefined timestep.)
    "dpmpp_3_thresholding": ({"order": 3, "thresholding": True, "dynamic_thresholding_ratio": 0.9},
                             {"solver_order": 3, "thresholding": True, "dynamic_thresholding_ratio": 0.9}),
}


@pytest.mark.parametrize(("case", "n", "final"), [  # diffusers lands on 0 only with dpmsolver++
    (case, n, final) for case in sorted(CASES) for n in (8, 13) for final in ("zero", "sigma_min")
    if final == "sigma_min" or CASES[case][1].get("algorithm_type") != "dpmsolver"])
def test_diffusers_singlestep_scheduler(case: str, n: int, final: str) -> None:
    # n = 8 and 13 end on groups of every length (orders ..., 1, 2 and ..., 1 for order 3).
    from diffusers import DPMSolverSinglestepScheduler

    options, config = CASES[case]
    scheduler = DPMSolverSinglestepScheduler(**driver.BETAS, **config, lower_order_final=True,
                                             final_sigmas_type=final)
    scheduler.set_timesteps(n)
    our_net, model = driver.our_model("log")
    sigmas = torch.cat([model.sigma_table.to(torch.float64)[scheduler.timesteps.long()],
                        torch.zeros(1, dtype=torch.float64)])
    if final == "sigma_min":
        sigmas[-1] = scheduler.sigmas[-1].to(torch.float64)  # diffusers' float32 level at t = 0
    if options.get("prediction") == "noise":  # e^h amplifies the float32 table's rounding: take its levels
        sigmas = scheduler.sigmas.to(torch.float64)
    their_net = driver.EpsNet()
    theirs = driver.sample_diffusers(scheduler, their_net)
    ours, _ = driver.sample_ours("dpm_solver_singlestep", model, sigmas, float((1 + sigmas[0] ** 2).sqrt()),
                                 **options)
    ours = ours / float((1 + sigmas[-1] ** 2).sqrt())  # to the VP frame
    # Noise prediction ends these runs at |x| up to 25, not ~4: the 1e-4 tolerance is meant relative to |x| ~ 4 (float32
    # rounding of either side alone moves the third-order result by 1.3e-4 there), so compare at that scale.
    scale = max(1.0, float(theirs.abs().max()) / 4)
    ours, theirs = ours / scale, theirs / scale
    driver.assert_agreement("dpm_solver_singlestep", sigmas, scheduler.sigmas, ours, theirs, our_net, their_net,
                            **options)
