"""Our samplers reproduce diffusers' schedulers: same epsilon network, same beta table, same noise.

Each test runs one of our samplers (sigma frame, ``NetworkDenoiser`` around the network) and diffusers'
standard loop (``scale_model_input`` -> network -> ``step``) from the same initial noise, and checks that
the schedules agree (our schedule functions rebuild diffusers' sigmas), that the network is called as often and
at the same timesteps on both sides, and that the final samples agree to 1e-4 in float32.

The conventions met on the way are listed in diffusers_driver.py.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from diffusers import (
    DDIMParallelScheduler,
    DDIMScheduler,
    DDPMParallelScheduler,
    DDPMScheduler,
    EDMDPMSolverMultistepScheduler,
    EDMEulerScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    HeunDiscreteScheduler,
    KDPM2DiscreteScheduler,
)
from diffusers_driver import (
    BETAS,
    LEADING,
    LEADING_OFFSET,
    LINSPACE,
    PYTESTMARK,
    SHAPE,
    STEPS,
    TRAILING,
    EpsNet,
    assert_agreement,
    our_model,
    our_sigmas,
    sample_diffusers,
    sample_ours,
)
from torch import Tensor

import samplerzoo as sz
from samplerzoo.adapters import NetworkDenoiser
from samplerzoo.analytic import GaussianMixture
from samplerzoo.noise_schedules import EDM, sigma_from_alpha_bar
from samplerzoo.schedules import SigmaRange, karras

pytestmark = PYTESTMARK


# sampler -> (diffusers scheduler, our sigma_to_t, spacings). Where our sigma_to_t matches diffusers:
# * Euler, EulerAncestral, Heun evaluate the network at their own (fractional, for linspace) timesteps, at sigmas
#   interpolated linearly in t: sigma_to_t="linear" inverts exactly that. At integer timesteps
#   (leading/trailing) every mode gives the table's level.
# * KDPM2 evaluates its midpoints sqrt(sigma_i sigma_i+1) at _sigma_to_t(), which interpolates t linearly in
#   log sigma: sigma_to_t="log". But its main levels at fractional (linspace) timesteps are, like Euler's,
#   linear in sigma, so no single sigma_to_t reproduces KDPM2 + linspace: with "log" the main timesteps are
#   up to 2.5e-3 steps off at N = 25 (with "linear" the midpoints are up to 1.1e-2 off). linspace is left
#   out for KDPM2; leading and trailing have integer main timesteps.
K_SCHEDULERS = {
    "euler": (EulerDiscreteScheduler, "linear", (LEADING, LEADING_OFFSET, TRAILING, LINSPACE)),
    "euler_ancestral": (EulerAncestralDiscreteScheduler, "linear", (LEADING, LEADING_OFFSET, TRAILING, LINSPACE)),
    "heun": (HeunDiscreteScheduler, "linear", (LEADING, LEADING_OFFSET, TRAILING, LINSPACE)),
    "dpm2": (KDPM2DiscreteScheduler, "log", (LEADING, LEADING_OFFSET, TRAILING)),
}


@pytest.mark.parametrize(("sampler", "spacing", "steps_offset", "n"), [
    (sampler, spacing, offset, n)
    for sampler, (_, _, spacings) in K_SCHEDULERS.items() for spacing, offset in spacings for n in STEPS])
def test_k_diffusion_schedulers(sampler: str, spacing: str, steps_offset: int, n: int) -> None:
    scheduler_cls, sigma_to_t, _ = K_SCHEDULERS[sampler]
    scheduler = scheduler_cls(**BETAS, timestep_spacing=spacing, steps_offset=steps_offset)
    scheduler.set_timesteps(n)
    our_net, model = our_model(sigma_to_t)
    sigmas = our_sigmas(model, n, spacing, steps_offset)
    # Heun and KDPM2 repeat each inner sigma (two evaluations per step): de-duplicate.
    their_sigmas = torch.unique_consecutive(scheduler.sigmas)

    their_net = EpsNet()
    theirs = sample_diffusers(scheduler, their_net)
    ours, _ = sample_ours(sampler, model, sigmas, float(scheduler.init_noise_sigma))
    assert_agreement(sampler, sigmas, their_sigmas, ours, theirs, our_net, their_net)


def final_ddpm_noise_std(sigmas: Tensor, variance: str, last_timestep: int) -> float:
    """The std of the noise DDPMScheduler adds on the last step (to alpha_bar = 1), which ours does not.

    diffusers adds noise whenever t > 0, so when the last timestep is > 0 (trailing; leading with steps_offset)
    the final x_{t_last} -> x_0 step is noised too: with beta = 1 - alpha_bar(t_last) for fixed_large, and
    with beta-tilde = 0 (clamped to 1e-20) for fixed_small. Our samplers, like Ho et al. 2020, Alg. 2
    (z = 0 on the last step), land on sigma = 0 without noise.
    """
    if variance != "fixed_large" or last_timestep == 0:
        return 0.0
    sigma = float(sigmas[-2])
    return sigma / (1 + sigma**2) ** 0.5  # sqrt(1 - alpha_bar)


THRESHOLDING = {"thresholding": True, "dynamic_thresholding_ratio": 0.9, "sample_max_value": 1.5}
"""Our options and diffusers' config alike (wrappers.dynamic_threshold is diffusers' _threshold_sample)."""
# id -> (sampler, its options, diffusers scheduler, its config, its step() options)
VP_SCHEDULERS = {
    "ddim": ("ddim", {"eta": 0.0}, DDIMScheduler, {"set_alpha_to_one": True}, {"eta": 0.0}),
    "ddim_eta1": ("ddim", {"eta": 1.0}, DDIMScheduler, {"set_alpha_to_one": True}, {"eta": 1.0}),
    "ddpm_fixed_small": ("ddpm", {"variance": "fixed_small"}, DDPMScheduler, {"variance_type": "fixed_small"}, {}),
    "ddpm_fixed_large": ("ddpm", {"variance": "fixed_large"}, DDPMScheduler, {"variance_type": "fixed_large"}, {}),
    # Dynamic thresholding of x0_hat (DeepFloyd IF's DDPMScheduler setting): |D| reaches ~4 on this network. DDIM
    # thresholds x0 but keeps the network's eps (use_clipped_model_output=False, diffusers' default).
    "ddim_thresholding": ("ddim", {"eta": 0.0, **THRESHOLDING}, DDIMScheduler,
                          {"set_alpha_to_one": True, **THRESHOLDING}, {"eta": 0.0}),
    "ddim_eta1_thresholding": ("ddim", {"eta": 1.0, **THRESHOLDING}, DDIMScheduler,
                               {"set_alpha_to_one": True, **THRESHOLDING}, {"eta": 1.0}),
    "ddpm_thresholding": ("ddpm", {"variance": "fixed_small", **THRESHOLDING}, DDPMScheduler,
                          {"variance_type": "fixed_small", **THRESHOLDING}, {}),
    # ParaDiGMS' schedulers: the same step as DDIM's and DDPM's (plus a batched form of it for parallel sampling).
    "ddim_parallel": ("ddim", {"eta": 0.0}, DDIMParallelScheduler, {"set_alpha_to_one": True}, {"eta": 0.0}),
    "ddpm_parallel": ("ddpm", {"variance": "fixed_small"}, DDPMParallelScheduler, {"variance_type": "fixed_small"},
                      {}),
}


# No linspace: DDIM/DDPM round its timesteps to integers (our linspace keeps them fractional). Note DDIM steps
# from t to t - T // N, not to the next timestep: the two agree for leading, and for trailing when N divides T.
@pytest.mark.parametrize("n", STEPS)
@pytest.mark.parametrize(("spacing", "steps_offset"), [LEADING, LEADING_OFFSET, TRAILING])
@pytest.mark.parametrize("case", VP_SCHEDULERS)
def test_vp_schedulers(case: str, spacing: str, steps_offset: int, n: int) -> None:
    sampler, options, scheduler_cls, config, step_kwargs = VP_SCHEDULERS[case]
    scheduler = scheduler_cls(**BETAS, **config, clip_sample=False, timestep_spacing=spacing,
                              steps_offset=steps_offset)
    scheduler.set_timesteps(n)
    our_net, model = our_model("log")  # integer timesteps: any sigma_to_t recovers them
    sigmas = our_sigmas(model, n, spacing, steps_offset)
    their_levels = sigma_from_alpha_bar(scheduler.alphas_cumprod[scheduler.timesteps])
    their_sigmas = torch.cat([their_levels, their_levels.new_zeros(1)])

    their_net = EpsNet()
    assert scheduler.init_noise_sigma == 1.0
    theirs = sample_diffusers(scheduler, their_net, **step_kwargs)
    # The same start in the sigma frame: x = x_vp * sqrt(1 + sigma_0^2).
    ours, g = sample_ours(sampler, model, sigmas, float((1 + sigmas[0] ** 2).sqrt()), **options)
    extra = final_ddpm_noise_std(sigmas, options.get("variance", ""), int(scheduler.timesteps[-1]))
    if extra:
        ours = ours + extra * torch.randn(SHAPE, generator=g)  # diffusers' last draw, see final_ddpm_noise_std
    assert_agreement(sampler, sigmas, their_sigmas, ours, theirs, our_net, their_net, **options)


class EDMNet:
    """An EDM F-network made from the exact mixture denoiser: F(c_in x, c_noise) = (D(x, sigma) - c_skip x) / c_out,
    with diffusers' EDM conventions (c_noise = ln(sigma) / 4, c_in = 1 / sqrt(sigma^2 + sigma_data^2))."""

    def __init__(self, sigma_data: float) -> None:
        means = torch.tensor([[0.8, -0.4, 0.1, 0.5], [-0.6, 0.7, -0.9, 0.2]], dtype=torch.float64)
        self.exact = GaussianMixture(means, torch.tensor([0.3, 0.2], dtype=torch.float64))
        self.sigma_data = sigma_data

    def __call__(self, x_in: Tensor, c_noise: Tensor) -> Tensor:
        sigma = (4 * c_noise.to(torch.float64)).exp().reshape(-1, 1)
        x = x_in.to(torch.float64) * (sigma**2 + self.sigma_data**2).sqrt()
        c_skip = self.sigma_data**2 / (sigma**2 + self.sigma_data**2)
        c_out = sigma * self.sigma_data / (sigma**2 + self.sigma_data**2).sqrt()
        return ((self.exact(x, sigma.flatten()) - c_skip * x) / c_out).to(x_in.dtype)


def edm_scheduler_run(scheduler: Any, n: int) -> tuple[Tensor, Tensor, NetworkDenoiser, Tensor]:
    """diffusers' loop with an EDM-frame ``scheduler`` (sigma 0.002 to 80, sigma_data 0.5) on EDMNet: its sample,
    the start noise, our denoiser of the same network, and our karras sigmas (checked to be the scheduler's)."""
    net = EDMNet(0.5)
    scheduler.set_timesteps(n)
    noise = torch.randn(6, 4, generator=torch.Generator().manual_seed(3))
    x = noise * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        x = scheduler.step(net(scheduler.scale_model_input(x, t), t.expand(len(x))), t, x).prev_sample
    ours = NetworkDenoiser(lambda x_in, c_noise, **_: net(x_in, c_noise), "edm", EDM(sigma_data=0.5))
    sigmas = karras(n, SigmaRange(0.002, 80.0))
    torch.testing.assert_close(sigmas.float(), scheduler.sigmas, rtol=1e-6, atol=1e-7)
    return x, noise, ours, sigmas


@pytest.mark.parametrize("n", [5, 12])
@pytest.mark.parametrize("lower_order_final", [True, False])
def test_dpmpp_2m_matches_edm_dpm_solver_multistep_scheduler(n: int, lower_order_final: bool) -> None:
    scheduler = EDMDPMSolverMultistepScheduler(sigma_min=0.002, sigma_max=80.0, sigma_data=0.5,
                                               lower_order_final=lower_order_final)
    x, noise, ours, sigmas = edm_scheduler_run(scheduler, n)
    result = sz.get_sampler("dpmpp_2m").fn(ours, noise * 80.0, sigmas, lower_order_final=lower_order_final)
    assert float((result - x).abs().max()) <= 1e-4
    assert float((result - sz.get_sampler("euler").fn(ours, noise * 80.0, sigmas)).abs().max()) > 1e-2


@pytest.mark.parametrize("n", [5, 12])
def test_euler_matches_edm_euler_scheduler(n: int) -> None:
    x, noise, ours, sigmas = edm_scheduler_run(EDMEulerScheduler(sigma_min=0.002, sigma_max=80.0, sigma_data=0.5), n)
    result = sz.get_sampler("euler").fn(ours, noise * 80.0, sigmas)
    assert float((result - x).abs().max()) <= 1e-4
