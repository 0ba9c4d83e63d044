"""SA-Solver (Xue et al. 2023) against diffusers' SASolverScheduler loop, and its deterministic limit (eta = 0) on exact
problems: the global order and the local order of its predictor and corrector steps.

diffusers' loop is ComfyUI's where the two meet: with ``lower_order_final=False`` (ComfyUI lowers the orders only
when landing on sigma = 0), a constant tau (diffusers evaluates ``tau_func`` at a step's source timestep, ComfyUI its
window at the target sigma) and ``simple_order_2=True`` (diffusers always takes the simplified two-node rule). Its
law at the default window is the registry's exact-law check (tests/test_samplers.py).
"""

from __future__ import annotations

import dataclasses

import diffusers_driver as driver
import pytest
import torch
from torch import Tensor

import samplerzoo as sz
from samplerzoo import testing
from samplerzoo.adapters import NetworkDenoiser
from samplerzoo.denoiser import Denoiser
from samplerzoo.noise_schedules import DiscreteVP
from samplerzoo.samplers.sa_solver import adams_step, percent_to_sigma
from samplerzoo.steps import denoise

pytestmark = driver.PYTESTMARK


@pytest.mark.parametrize(("predictor_order", "corrector_order"), [(2, 2), (3, 4), (4, 3), (1, 2)])
@pytest.mark.parametrize("tau", [0.0, 1.0, 0.5])
@pytest.mark.parametrize("n", driver.STEPS)
def test_sa_solver_matches_diffusers(predictor_order: int, corrector_order: int, tau: float, n: int) -> None:
    from diffusers import SASolverScheduler

    scheduler = SASolverScheduler(**driver.BETAS, predictor_order=predictor_order, corrector_order=corrector_order,
                                  tau_func=lambda t: tau, lower_order_final=False)
    scheduler.set_timesteps(n)
    # diffusers' own (float32) alpha_bar table: its high-order weights amplify the 5e-6 gap to our float64 table
    our_net = driver.EpsNet()
    model = NetworkDenoiser(our_net, "epsilon", DiscreteVP(scheduler.alphas_cumprod.double(), sigma_to_t="log"))
    table = model.sigma_table.to(torch.float64)
    sigmas = torch.cat([table[scheduler.timesteps], table[:1]])  # diffusers stops at timestep 0's sigma
    their_net = driver.EpsNet()
    theirs = driver.sample_diffusers(scheduler, their_net)
    options = {"predictor_order": predictor_order, "corrector_order": corrector_order, "eta": tau,
               "sde_start_percent": 0.0, "sde_end_percent": 1.0, "simple_order_2": True}
    ours, _ = driver.sample_ours("sa_solver", model, sigmas, float((1 + sigmas[0] ** 2).sqrt()), **options)
    ours = ours / float((1 + sigmas[-1] ** 2).sqrt())  # to diffusers' VP frame at its last level
    torch.testing.assert_close(sigmas, scheduler.sigmas.to(torch.float64), rtol=driver.SIGMA_RTOL,
                               atol=driver.SIGMA_ATOL)
    assert our_net.calls == their_net.calls == n
    torch.testing.assert_close(torch.tensor(our_net.timesteps), torch.tensor(their_net.timesteps), rtol=0,
                               atol=driver.TIMESTEP_ATOL)
    # Relative: fourth-order extrapolation of this network reaches |x| ~ 130, and diffusers' weights come from
    # float32 monomials in absolute lambda (measured up to 5e-5 of max |x| at orders 4/3; 2e-7 with its sigmas cast
    # to float64).
    diff, scale = float((ours - theirs).abs().max()), max(1.0, float(theirs.abs().max()))
    print(f"sa_solver {predictor_order}/{corrector_order} tau {tau} n {n}: max |ours - diffusers| = {diff:.2e}, "
          f"|x| <= {scale:.1f}")
    assert diff <= 1e-4 * scale, (diff, scale)


@pytest.mark.parametrize("name", ["sa_solver", "sa_solver_pece"])
@pytest.mark.parametrize("problem", ["gaussian", "mixture"])
def test_deterministic_limit_converges(name: str, problem: str) -> None:
    # eta = 0: the Adams predictor-corrector of the PF-ODE. Landing on 0, its last step to a positive sigma is a
    # first-order predictor left uncorrected (ComfyUI's lower_order_to_end), so the order is 2 asymptotically; over
    # the kit's 8..64 steps that step's error is still small and the fit lies between 2 and 3 (measured 2.47 and 3.04
    # on the Gaussian and the mixture, PECE 2.76 and 3.05). The interior orders are tested below.
    exact = testing.gaussian_problem() if problem == "gaussian" else testing.mixture_problem()
    spec = dataclasses.replace(sz.get_sampler(name), stochastic=False)
    fitted = testing.fitted_order(spec, problem=exact, eta=0.0)
    assert 2.2 < fitted < 3.3, fitted


def predictor(order: int, corrector: int = 0) -> testing.LocalStep:
    """The SA-Predictor of ``order`` from exact history; with ``corrector`` the SA-Corrector follows, with D at the
    predicted point (PEC, as sample_sa_solver takes it at the next evaluation). simple_order_2 is checked against
    diffusers above."""
    def step(model: Denoiser, xs: list[Tensor], sigmas: list[Tensor], sigma_next: Tensor) -> Tensor:
        values = [denoise(model, x, s) for x, s in zip(reversed(xs), reversed(sigmas), strict=True)]
        nodes = [-float(s.log()) for s in reversed(sigmas)]
        predicted = adams_step(xs[0], sigmas[0], sigma_next, values[-order:], nodes[-order:], 0.0, False)
        if not corrector:
            return predicted
        values, nodes = [*values, denoise(model, predicted, sigma_next)], [*nodes, -float(sigma_next.log())]
        return adams_step(xs[0], sigmas[0], sigma_next, values[-corrector:], nodes[-corrector:], 0.0, False)
    return step


@pytest.mark.parametrize(("step", "history", "expected"), [
    (predictor(1), 1, 2), (predictor(2), 2, 3), (predictor(3), 3, 4), (predictor(4), 4, 5),
    (predictor(1, corrector=2), 1, 3), (predictor(2, corrector=3), 2, 4),
    (predictor(3, corrector=4), 3, 5)], ids=["p1", "p2", "p3", "p4", "p1c2", "p2c3", "p3c4"])
def test_interior_steps_have_their_local_order(step: testing.LocalStep, history: int, expected: int) -> None:
    fitted = testing.local_order(step, history, hs=(0.1, 0.05, 0.025))
    assert abs(fitted - expected) < 0.3, (fitted, expected)


def test_window_is_comfyui_percent_to_sigma() -> None:
    # ComfyUI's discrete model_sampling: sigma at timestep (1 - percent) * 999, log sigma linear between levels.
    _, model = driver.our_model("log")
    log_table = model.sigma_table.to(torch.float64).log()
    expected = (0.8 * log_table[799] + 0.2 * log_table[800]).exp()  # timestep 799.2
    assert abs(percent_to_sigma(model, 0.2) - float(expected)) < 1e-12
    assert percent_to_sigma(model, 0.0) == float("inf") and percent_to_sigma(model, 1.0) == 0.0


def test_bad_orders_are_refused() -> None:
    model = testing.gaussian_problem()
    with pytest.raises(sz.SamplerzooError, match=r"predictor_order 1\.\.4 and corrector_order 0\.\.4, got 5 and 4"):
        sz.get_sampler("sa_solver").fn(model, torch.zeros(1, 4, dtype=torch.float64),
                                       torch.tensor([1.0, 0.0], dtype=torch.float64), predictor_order=5)
