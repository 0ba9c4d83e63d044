"""lcm against diffusers' LCMScheduler (tests/diffusers_driver.py: one epsilon network, betas and noise).

LCMScheduler applies a consistency model's boundary condition (c_skip, c_out with timestep_scaling 10) to the
network's x0: at its timesteps (19 and above, original_inference_steps = 50) c_skip is below 7e-6 and 1 - c_out
below 4e-6, so a plain epsilon network is a consistency model to the tolerance and the samplers are compared as
they are. Its exact law (samplerzoo.laws) is checked with a Gaussian's consistency function.
"""

from __future__ import annotations

import diffusers_driver as driver
import pytest
import torch
from torch import Tensor

import samplerzoo as sz
from samplerzoo import testing
from samplerzoo.laws import affine_law
from samplerzoo.schedules import SigmaRange, karras

pytestmark = driver.PYTESTMARK


@pytest.mark.parametrize("n", [1, 4, 8])
def test_diffusers_lcm_scheduler(n: int) -> None:
    from diffusers import LCMScheduler

    scheduler = LCMScheduler(**driver.BETAS)
    scheduler.set_timesteps(n)
    our_net, model = driver.our_model("log")
    sigmas = torch.cat([model.sigma_table.to(torch.float64)[scheduler.timesteps.long()],
                        torch.zeros(1, dtype=torch.float64)])
    their_net = driver.EpsNet()
    theirs = driver.sample_diffusers(scheduler, their_net)
    ours, _ = driver.sample_ours("lcm", model, sigmas, float((1 + sigmas[0] ** 2).sqrt()))
    their_sigmas = ((1 - scheduler.alphas_cumprod[scheduler.timesteps.long()]) /
                    scheduler.alphas_cumprod[scheduler.timesteps.long()]).sqrt()
    driver.assert_agreement("lcm", sigmas, torch.cat([their_sigmas, torch.zeros(1)]), ours, theirs, our_net,
                            their_net)


class ConsistencyGaussian:
    """The consistency function of N(0.3, 0.5^2): the probability-flow ODE's solution at sigma = 0 (closed form)."""

    sigma_min, sigma_max, sigma_data, sigma_table = 0.002, 80.0, 0.5, None
    problem = testing.gaussian_problem(dim=1)

    def __call__(self, x: Tensor, sigma: Tensor, **cond: object) -> Tensor:
        s = sigma.reshape(-1, 1)
        return 0.3 + 0.5 / (0.25 + s**2).sqrt() * (x - 0.3)


@pytest.mark.parametrize("steps", [1, 2, 5])
def test_lcm_with_an_exact_consistency_function_samples_the_target_exactly(steps: int) -> None:
    # Consistency Models, Alg. 1: from the exact marginal at sigma_max every step lands on the data law, so the
    # output is N(0.3, 0.5^2) exactly, at any number of steps (a plain denoiser D = E[x0 | x] is not one: there
    # each step loses variance, which is why LCM needs consistency-distilled checkpoints).
    sigmas = karras(steps, SigmaRange(0.01, 20.0))
    law = affine_law(sz.get_sampler("lcm"), sigmas, ConsistencyGaussian())  # type: ignore[arg-type]
    mean, var = law.marginal(0.3, float(sigmas[0]) ** 2 + 0.25)
    assert abs(mean - 0.3) < 1e-12 and abs(var - 0.25) < 1e-12


def test_lcm_on_a_denoiser_loses_variance_as_the_equations_say() -> None:
    # With D = E[x0 | x] one step from the exact marginal at sigma gives variance s^4 / (s^2 + sigma^2) + sigma_next^2.
    sigmas = torch.tensor([3.0, 1.0], dtype=torch.float64)
    _, var = affine_law(sz.get_sampler("lcm"), sigmas, testing.gaussian_problem(dim=1)).marginal(0.3, 9.25)
    assert abs(var - (0.25**2 / 9.25 + 1.0)) < 1e-12
