"""tcd and cm_multistep against diffusers' TCDScheduler and CMStochasticIterativeScheduler loops, and their exact laws
on a Gaussian (samplerzoo.laws): TCD's written out from its algorithm, Consistency Models' exact with the Gaussian's
consistency function. With a posterior-mean denoiser neither law converges to the data's as steps grow (each step's
deterministic jump does not shrink), so the registry's law-convergence test leaves them out (tests/test_samplers.py).
"""

from __future__ import annotations

import itertools
import math

import diffusers_driver as driver
import pytest
import torch
from torch import Tensor

import samplerzoo as sz
from samplerzoo import laws, testing
from samplerzoo.adapters import NetworkDenoiser
from samplerzoo.analytic import Gaussian
from samplerzoo.noise_schedules import EDM
from samplerzoo.schedules import SigmaRange, karras

pytestmark = driver.PYTESTMARK
MEAN, STD = 0.3, 0.5


@pytest.mark.parametrize("gamma", [0.0, 0.3, 0.7, 1.0])
@pytest.mark.parametrize("n", [2, 4, 8])
def test_tcd_matches_diffusers(gamma: float, n: int) -> None:
    from diffusers import TCDScheduler

    scheduler = TCDScheduler(**driver.BETAS)
    scheduler.set_timesteps(n)  # original_inference_steps = 50: timesteps 999, 979, ... (k = 20)
    our_net, model = driver.our_model("log")
    table = model.sigma_table.to(torch.float64)
    sigmas = torch.cat([table[scheduler.timesteps], table[:1]])  # diffusers' last step lands on timestep 0
    their_net = driver.EpsNet()
    theirs = driver.sample_diffusers(scheduler, their_net, eta=gamma)
    ours, _ = driver.sample_ours("tcd", model, sigmas, float((1 + sigmas[0] ** 2).sqrt()), gamma=gamma)
    ours = ours / float((1 + sigmas[-1] ** 2).sqrt())  # diffusers' VP frame at timestep 0
    driver.assert_agreement("tcd", sigmas, sigmas.float(), ours, theirs, our_net, their_net)


def tcd_law(sigmas: list[float], gamma: float, table: Tensor | None) -> laws.AffineLaw:
    """Zheng et al. 2024, Alg. 4 on N(MEAN, STD^2): DDIM from sigma to sigma_s multiplies x - mu by (s^2 + sigma
    sigma_s) / (s^2 + sigma^2), then N(0, sigma_next^2 - sigma_s^2) is added; s = floor((1 - gamma) t_next) on the
    table's timesteps, or (1 - gamma) t_next in flow time t = sigma / (1 + sigma)."""
    centre, gain, noise_var = -MEAN, 1.0, 0.0
    for sigma, sigma_next in itertools.pairwise(sigmas):
        if sigma_next == 0:
            sigma_s = 0.0
        elif table is None:
            t_s = (1 - gamma) * sigma_next / (1 + sigma_next)
            sigma_s = t_s / (1 - t_s)
        else:
            t_next = int((table - sigma_next).abs().argmin())
            sigma_s = min(float(table[math.floor(round((1 - gamma) * t_next, 9))]), sigma_next)
        factor = (STD**2 + sigma * sigma_s) / (STD**2 + sigma**2)
        centre, gain, noise_var = factor * centre, factor * gain, factor**2 * noise_var + sigma_next**2 - sigma_s**2
    return laws.AffineLaw(MEAN + centre, gain, noise_var)


@pytest.mark.parametrize("gamma", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("table", [False, True])
def test_tcd_law_is_its_algorithm(gamma: float, table: bool) -> None:
    problem = Gaussian(torch.full((1,), MEAN, dtype=torch.float64), STD, sigma_min=0.002, sigma_max=20.0)
    levels = None
    if table:  # 200 ascending trained levels; the schedule takes every 25th from the top, then 0
        levels = problem.sigma_table = karras(200, SigmaRange(0.002, 20.0))[:-1].flip(0)
        sigmas = torch.cat([levels.flip(0)[::25], torch.zeros(1, dtype=torch.float64)])
    else:
        sigmas = karras(8, SigmaRange(0.002, 20.0))
    law = laws.affine_law(sz.get_sampler("tcd"), sigmas, problem, gamma=gamma)
    expected = tcd_law(sigmas.tolist(), gamma, levels)
    gaps = [abs(law.offset - expected.offset), abs(law.gain - expected.gain), abs(law.noise_var - expected.noise_var)]
    assert max(gaps) < 1e-12, (law, expected)


def test_tcd_samples_follow_its_law() -> None:
    # 4000 samples x 4 coordinates: 4 standard errors of mean (0.004) and std (0.003).
    mean, std = testing.sample_moments(sz.get_sampler("tcd"), steps=8)
    sigmas = karras(8, testing.LAW_RANGE)
    law_mean, var = laws.affine_law(sz.get_sampler("tcd"), sigmas).marginal(0.0, float(sigmas[0]) ** 2)
    assert abs(mean - law_mean) < 0.016 and abs(std - math.sqrt(var)) < 0.012, (mean, law_mean, std, var)


def test_tcd_gamma_0_is_ddim() -> None:
    problem = testing.mixture_problem()
    sigmas = karras(7, SigmaRange(0.03, 15.0))
    x = sz.SeededNoise(range(5), problem.sample_shape, dtype=torch.float64).randn() * 15.0
    ours = sz.get_sampler("tcd").fn(problem, x, sigmas, gamma=0.0)
    assert float((ours - sz.get_sampler("ddim").fn(problem, x, sigmas)).abs().max()) < 1e-12


class EDMConsistencyNet:
    """An F-network of (c_in x, c_noise) for diffusers' consistency-model conventions: c_noise = 250 ln(sigma)."""

    def __call__(self, x_in: Tensor, c_noise: Tensor) -> Tensor:
        t = torch.as_tensor(c_noise).to(x_in.dtype).reshape(-1, *[1] * (x_in.ndim - 1))
        return 0.8 * x_in + 0.2 * torch.tanh(x_in) * torch.cos(t / 300)


class ConsistencyDenoiser:
    """D = c_skip x + c_out F with Consistency Models' boundary scalings (their App. C; diffusers'
    get_scalings_for_boundary_condition), around the same network."""

    sigma_min, sigma_max, sigma_data, sigma_table = 0.002, 80.0, 0.5, None

    def __init__(self) -> None:
        self.net = EDMConsistencyNet()

    def __call__(self, x: Tensor, sigma: Tensor, **cond: object) -> Tensor:
        s = sigma.reshape(-1, *[1] * (x.ndim - 1)).to(x.dtype)
        c_skip = 0.25 / ((s - 0.002) ** 2 + 0.25)
        c_out = (s - 0.002) * 0.5 / (s**2 + 0.25).sqrt()
        return c_skip * x + c_out * self.net(x / (s**2 + 0.25).sqrt(), 250 * sigma.to(x.dtype).log())


@pytest.mark.parametrize("s_noise", [1.0, 0.5])
@pytest.mark.parametrize("n", [1, 3, 10])
def test_cm_multistep_matches_diffusers(s_noise: float, n: int) -> None:
    from diffusers import CMStochasticIterativeScheduler

    scheduler = CMStochasticIterativeScheduler(s_noise=s_noise, clip_denoised=False)
    scheduler.set_timesteps(n)
    net = EDMConsistencyNet()
    g = torch.Generator().manual_seed(driver.SEED)
    init = torch.randn(driver.SHAPE, generator=g)
    x = init * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        x = scheduler.step(net(scheduler.scale_model_input(x, t), t), t, x, generator=g).prev_sample
    sigmas = torch.cat([scheduler.sigmas[:-1].double(), torch.zeros(1, dtype=torch.float64)])  # D on the last step
    g_ours = torch.Generator().manual_seed(driver.SEED)
    start = torch.randn(driver.SHAPE, generator=g_ours) * 80.0
    ours = sz.get_sampler("cm_multistep").fn(ConsistencyDenoiser(), start, sigmas, s_noise=s_noise,
                                             noise=lambda s, t: torch.randn(driver.SHAPE, generator=g_ours))
    diff = float((ours - x).abs().max())
    print(f"cm_multistep n {n} s_noise {s_noise}: max |ours - diffusers| = {diff:.2e}")
    assert diff <= driver.ATOL, diff


class GaussianConsistency:
    """The consistency function of N(MEAN, STD^2) to epsilon = sigma_min: the PF-ODE's solution at epsilon."""

    sigma_min, sigma_max, sigma_data, sigma_table = 0.002, 80.0, STD, None

    def __call__(self, x: Tensor, sigma: Tensor, **cond: object) -> Tensor:
        s = sigma.reshape(-1, 1)
        return MEAN + math.sqrt(STD**2 + 0.002**2) / (STD**2 + s**2).sqrt() * (x - MEAN)


@pytest.mark.parametrize("steps", [1, 2, 5])
def test_cm_multistep_with_an_exact_consistency_function_is_exact(steps: int) -> None:
    # Alg. 1 from the exact marginal at sigma_max: each f lands on the marginal at epsilon, each re-noising of std
    # sqrt(tau^2 - epsilon^2) on the marginal at tau, so the output is N(MEAN, STD^2 + epsilon^2) at any step count
    # (lcm's sigma_next-noise would overshoot the variance by epsilon^2 a step).
    sigmas = karras(steps, SigmaRange(0.01, 20.0))
    law = laws.affine_law(sz.get_sampler("cm_multistep"), sigmas, GaussianConsistency())  # type: ignore[arg-type]
    mean, var = law.marginal(MEAN, float(sigmas[0]) ** 2 + STD**2)
    assert abs(mean - MEAN) < 1e-12 and abs(var - (STD**2 + 0.002**2)) < 1e-12, (mean, var)


def test_cm_multistep_edm_network_runs_through_the_adapter() -> None:
    model = NetworkDenoiser(lambda x_in, c_noise, **_: x_in * 0.5, "edm", EDM(sigma_data=0.5), sample_shape=(4,))
    run = sz.generate(model, "cm_multistep", 3, seeds=[0, 1], sample_shape=(4,), dtype=torch.float64)
    assert run.counted_nfe == 3 and torch.isfinite(run.samples).all()
