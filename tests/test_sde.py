"""Stochastic samplers: exact agreement with the references given the same noise, options and their identities.

Their laws on a Gaussian, against the laws their papers' algorithms give, are in tests/test_sde_laws.py; every
stochastic sampler's law is checked against the target by the conformance kit (tests/test_samplers.py).
"""

from __future__ import annotations

import itertools
import math
import types
from typing import Any

import diffusers_driver as driver
import pytest
import torch
from torch import Tensor

from samplerzoo import get_sampler, laws, testing
from samplerzoo.analytic import Gaussian, GaussianMixture
from samplerzoo.noise import SeededNoise
from samplerzoo.schedules import SigmaRange, karras

pytestmark = driver.PYTESTMARK

MEAN, STD = 0.3, 0.5  # testing.gaussian_problem(), per coordinate
RANGE = testing.LAW_RANGE  # testing.sample_moments' schedule


def mixture() -> GaussianMixture:
    """Two components in 2-D: a non-linear denoiser, so agreement tests exercise every term (float64)."""
    means = torch.tensor([[1.0, -0.5], [-1.0, 0.8]], dtype=torch.float64)
    return GaussianMixture(means, torch.tensor([0.3, 0.5], dtype=torch.float64), torch.tensor([0.3, 0.7]))


def schedule(steps: int, to_zero: bool) -> Tensor:
    sigmas = karras(steps, SigmaRange(0.05, 10.0))
    return sigmas if to_zero else karras(steps + 1, SigmaRange(0.05, 10.0))[:-1]


# ------------------------------------------------------------------------------------------ k-diffusion
@pytest.mark.parametrize("to_zero", [True, False])
@pytest.mark.parametrize("options", [{}, {"eta": 0.5, "s_noise": 0.9}, {"eta": 0.0}])
def test_dpm2_ancestral_matches_k_diffusion(k_sampling: types.ModuleType, options: dict[str, float],
                                           to_zero: bool) -> None:
    # The same noise source is handed to both (as noise_sampler= to k-diffusion); measured gap ~4e-16.
    sigmas, model = schedule(10, to_zero), mixture()
    noises = [SeededNoise(range(5), model.sample_shape, dtype=torch.float64) for _ in range(2)]
    x = noises[0].randn() * float(sigmas[0])
    noises[1].randn()  # both sources past the start, drawing the same noise from here on
    ours = get_sampler("dpm2_ancestral").fn(model, x, sigmas, noise=noises[0], **options)
    theirs = k_sampling.sample_dpm_2_ancestral(model, x, sigmas, noise_sampler=noises[1], disable=True, **options)
    gap = float((ours - theirs).abs().max())
    assert gap <= 1e-10, gap


# --------------------------------------------------------------------------------------------- diffusers
DIFFUSERS_CASES = {  # sampler -> (diffusers scheduler, our sigma_to_t, spacings); see test_diffusers_agreement
    "dpm2_ancestral": ("KDPM2AncestralDiscreteScheduler", "log", (driver.LEADING, driver.LEADING_OFFSET,
                                                                  driver.TRAILING)),
}


@pytest.mark.parametrize(("sampler", "spacing", "steps_offset", "n"), [
    (sampler, spacing, offset, n)
    for sampler, (_, _, spacings) in DIFFUSERS_CASES.items() for spacing, offset in spacings for n in driver.STEPS])
def test_diffusers_agreement(sampler: str, spacing: str, steps_offset: int, n: int) -> None:
    import diffusers

    scheduler_name, sigma_to_t, _ = DIFFUSERS_CASES[sampler]
    scheduler = getattr(diffusers, scheduler_name)(**driver.BETAS, timestep_spacing=spacing,
                                                   steps_offset=steps_offset)
    scheduler.set_timesteps(n)
    our_net, model = driver.our_model(sigma_to_t)
    sigmas = driver.our_sigmas(model, n, spacing, steps_offset)
    their_net = driver.EpsNet()
    theirs = driver.sample_diffusers(scheduler, their_net)  # draws its noise from the same generator as ours
    ours, _ = driver.sample_ours(sampler, model, sigmas, float(scheduler.init_noise_sigma))
    driver.assert_agreement(sampler, sigmas, torch.unique_consecutive(scheduler.sigmas), ours, theirs, our_net,
                            their_net)


@pytest.mark.parametrize("n", driver.STEPS)
@pytest.mark.parametrize(("correct_steps", "snr"), [(1, 0.15), (2, 0.15), (1, None)])
def test_pc_matches_diffusers_score_sde_ve(n: int, correct_steps: int, snr: float | None) -> None:
    # ScoreSdeVeScheduler's step_correct (Langevin, snr rule) then step_pred (reverse diffusion) per level, driven
    # directly: its pipeline evaluates the score at sigma(t) but steps with the discrete sigmas (they differ by
    # sampling_eps), and takes batch-mean norms, equal to our per-sample ones for a batch of one. Float32, 1e-4.
    from diffusers import ScoreSdeVeScheduler

    # snr None: ours at its default, Song et al.'s VE setting 0.16 (their configs' sampling.snr)
    shape, sigma_max, options = (1, 3, 8, 8), 50.0, {} if snr is None else {"snr": snr}
    scheduler = ScoreSdeVeScheduler(snr=0.16 if snr is None else snr, sigma_min=0.01, sigma_max=sigma_max,
                                    correct_steps=correct_steps)
    scheduler.set_timesteps(n)
    scheduler.set_sigmas(n)
    problem = Gaussian(torch.linspace(-1, 1, 192, dtype=torch.float64).reshape(3, 8, 8), STD)

    def score(x: Tensor, sigma: Tensor) -> Tensor:
        return (problem(x, sigma.expand(1)) - x) / sigma**2

    init, g = driver.seeded()
    x = init[:1] * sigma_max
    for index in range(n - 1, -1, -1):  # step_pred finds the level as floor(t (n - 1))
        sigma = scheduler.discrete_sigmas[index]
        for _ in range(correct_steps):
            x = scheduler.step_correct(score(x, sigma), x, generator=g).prev_sample
        out = scheduler.step_pred(score(x, sigma), (index + 0.5) / (n - 1), x, generator=g)
        x = out.prev_sample if index > 0 else out.prev_sample_mean  # the pipeline returns the last mean

    init, g = driver.seeded()
    levels = scheduler.discrete_sigmas.flip(0).to(torch.float64)
    ours = get_sampler("pc").fn(problem, init[:1] * sigma_max, torch.cat([levels, levels.new_zeros(1)]),
                                noise=lambda sigma, sigma_next: torch.randn(shape, generator=g),
                                n_corrector=correct_steps, **options)
    gap = float((ours - x).abs().max())
    assert gap <= driver.ATOL, f"pc: max |ours - diffusers| = {gap:.2e}"


# ---------------------------------------------------------------------------------- options and wrappers
OURS = ("dpm2_ancestral", "edm", "euler_maruyama", "pc", "langevin", "restart", "ddpm_analytic")


@pytest.mark.parametrize("to_zero", [True, False])
@pytest.mark.parametrize("name", OURS)
def test_callback_sees_every_step_once(name: str, to_zero: bool) -> None:
    seen: list[int] = []
    sigmas, model = schedule(6, to_zero), testing.gaussian_problem()
    options = {"n_steps_each": 3} if name == "langevin" else {}
    get_sampler(name).fn(model, torch.randn(2, 4, dtype=torch.float64) * 10, sigmas,
                         callback=lambda info: seen.append(info["i"]), **options)
    assert seen == list(range(len(sigmas) - 1))


def test_edm_is_heun_with_edm_settings() -> None:
    edm, heun = get_sampler("edm"), get_sampler("heun")
    settings = {"s_churn": 40.0, "s_tmin": 0.05, "s_tmax": 50.0, "s_noise": 1.003}
    assert torch.equal(testing.run_seeded(edm, [0, 1], steps=20), testing.run_seeded(heun, [0, 1], steps=20,
                                                                                       **settings))
    assert not torch.equal(testing.run_seeded(edm, [0, 1], steps=20), testing.run_seeded(heun, [0, 1], steps=20))


def test_dpm2_ancestral_without_noise_is_dpm2() -> None:
    ours = testing.run_seeded(get_sampler("dpm2_ancestral"), [0, 1], eta=0.0)
    torch.testing.assert_close(ours, testing.run_seeded(get_sampler("dpm2"), [0, 1]), rtol=0, atol=1e-12)


def test_dpm2_ancestral_rejects_eta_above_one() -> None:
    with pytest.raises(ValueError, match="0 <= eta <= 1"):
        testing.run_seeded(get_sampler("dpm2_ancestral"), [0], eta=1.5)


def gaussian_samples(name: str, steps: int, dim: int = 4, seeds: int = 64, **options: Any) -> Tensor:
    """Samples of N(MEAN, STD^2 I_dim) from the usual start, one noise seed per sample."""
    problem = Gaussian(torch.full((dim,), MEAN, dtype=torch.float64), STD)
    sigmas, noise = karras(steps, RANGE), SeededNoise(range(seeds), (dim,), dtype=torch.float64)
    return get_sampler(name).fn(problem, noise.randn() * float(sigmas[0]), sigmas, noise=noise, **options)


def test_euler_maruyama_forms_differ_by_order_of_the_step() -> None:
    # Same noise, VE vs VP discretisation: sample paths differ by O(h) (measured 0.036, 0.015, 0.0065, 0.0029).
    gaps = [float((gaussian_samples("euler_maruyama", n) - gaussian_samples("euler_maruyama", n, form="vp"))
                  .abs().mean()) for n in (25, 50, 100, 200)]
    assert all(coarse >= 1.8 * fine for coarse, fine in itertools.pairwise(gaps)) and gaps[-1] < 0.005, gaps


@pytest.mark.parametrize("form", ["ve", "vp"])
def test_pc_without_corrector_is_euler_maruyama(form: str) -> None:
    pc, em = (gaussian_samples(name, 20, form=form) for name in ("pc", "euler_maruyama"))
    assert torch.equal(gaussian_samples("pc", 20, form=form, n_corrector=0), em)
    assert not torch.equal(pc, em)


def test_langevin_corrector_keeps_its_stationary_law() -> None:
    # At level sigma the corrector targets N(mu, v), v = STD^2 + sigma^2, with step eps = 2 snr^2 ||z||^2 / ||s||^2.
    # In high dimension ||z||^2 ~ d and ||s||^2 ~ d w / v^2 for samples of variance w, so eps ~ 2 snr^2 v^2 / w and
    # the Langevin recursion w = (1 - eps / v)^2 w + 2 eps has the fixed point w = v (1 + snr^2), up to O(1/d).
    # 64 x 512 values: standard error of the std ~ sqrt(w / 65536) = 0.4%, the inflation tested is 4.4%.
    from samplerzoo.samplers.langevin import langevin_corrector

    sigma, snr, dim = torch.tensor(1.0, dtype=torch.float64), 0.3, 512
    problem = Gaussian(torch.full((dim,), MEAN, dtype=torch.float64), STD)
    noise = SeededNoise(range(64), (dim,), dtype=torch.float64)
    v = STD**2 + float(sigma) ** 2
    x = MEAN + noise.randn() * math.sqrt(v)
    for _ in range(40):  # contracts by (1 - eps / v)^2 ~ 0.7 per step
        x = langevin_corrector(problem, x, sigma, snr, sigma.new_ones(()), noise)
    std = float(x.std())
    assert abs(std - math.sqrt(v * (1 + snr**2))) < 4 * math.sqrt(v / (2 * x.numel())), std


def test_pc_reaches_the_target_in_high_dimension() -> None:
    # Per-sample norms make the step size eps = 2 snr^2 ||z||^2 / ||s||^2 noisy in low dimension (on the 4-D
    # problem the std drifts to ~0.78); in 256-D it concentrates. The correctors pull each level towards
    # N(mu, v (1 + snr^2)) and the predictor carries Euler-Maruyama's bias, so the std lies between 0.5 (less
    # 4 standard errors) and 0.5 sqrt(1 + snr^2) plus that bias (exact, from its affine law) and 4 standard errors.
    # The mean keeps a bias from the prior mismatch: the start N(0, sigma_0^2) lacks the target's mean, which the
    # probability-flow ODE shrinks by sqrt((STD^2 + sigma_min^2) / (STD^2 + sigma_0^2)); no noisier sampler keeps more.
    steps, snr = 100, 0.16
    x = gaussian_samples("pc", steps, dim=256, snr=snr)
    se_mean, se_std = STD / math.sqrt(x.numel()), STD / math.sqrt(2 * x.numel())
    em_law = laws.affine_law(get_sampler("euler_maruyama"), karras(steps, RANGE))
    em_std = math.sqrt(em_law.marginal(0.0, RANGE.sigma_max**2)[1])
    prior_mean_bias = MEAN * math.sqrt((STD**2 + RANGE.sigma_min**2) / (STD**2 + RANGE.sigma_max**2))
    mean, std = float(x.mean()), float(x.std())
    assert abs(mean - MEAN) < 4 * se_mean + prior_mean_bias, mean
    assert STD - 4 * se_std < std < STD * math.sqrt(1 + snr**2) + (em_std - STD) + 4 * se_std, (std, em_std)


@pytest.mark.parametrize(("name", "options", "reachable"), [
    ("pc", {"n_corrector": 2}, [3, 6, 9, 12]),
    ("langevin", {"n_steps_each": 4}, [1, 5, 9]),  # 4 (steps - 1) + 1
    ("langevin", {"n_steps_each": 4, "denoise_to_zero": False}, [4, 8, 12]),
    ("restart", {"restarts": ((2, 1, 0.5, 1.0),)}, [1, 5, 7, 9, 11]),  # 2 steps - 1 + 1 * 2 * (2 - 1), or 1 step
])
def test_budgets_with_options_are_spent_exactly(name: str, options: dict[str, Any], reachable: list[int]) -> None:
    import samplerzoo as sz

    model, reached = testing.gaussian_problem(), []
    for nfe in range(1, 13):
        try:
            run = sz.generate(model, name, nfe, seeds=[0], sample_shape=model.sample_shape, dtype=torch.float64,
                              final_step="zero", **options)
        except sz.UnreachableNFEError as exc:
            assert f"NFE {nfe} is unreachable" in str(exc)
            continue
        assert run.counted_nfe == run.declared_nfe == nfe
        reached.append(nfe)
    assert reached == reachable


def test_restart_without_intervals_is_heun() -> None:
    restart, heun = get_sampler("restart"), get_sampler("heun")
    assert torch.equal(testing.run_seeded(restart, [0, 1], restarts=()), testing.run_seeded(heun, [0, 1]))


def test_restart_plan_snaps_t_min_to_the_schedule() -> None:
    from samplerzoo.samplers.sde import restart_plan

    sigmas = karras(18, SigmaRange(0.002, 80.0))
    (i, k, levels), = restart_plan(sigmas, [(3, 2, 0.06, 0.30), (3, 1, 0.06, 0.01)])  # t_max below t_min: skipped
    nearest = int((sigmas[1:-1] - 0.06).abs().argmin()) + 1
    assert (i, k, len(levels)) == (nearest, 2, 3) and levels[0] == 0.30 and levels[-1] == sigmas[i]
    assert bool((levels[:-1] > levels[1:]).all())
    with pytest.raises(ValueError, match="N_restart >= 2"):
        restart_plan(sigmas, [(1, 2, 0.06, 0.30)])


@pytest.mark.parametrize(("gamma", "bound", "options"), [
    (1.5, "ddpm", {"variance": "fixed_small"}),  # 1 - Gamma clipped to 0: variance sigma~^2, DDPM's
    (-0.5, "euler_maruyama", {"form": "ve"}),  # clipped to 1: sigma^2 - sigma_next^2, the reverse-diffusion step
])
def test_ddpm_analytic_variance_is_clipped_to_its_bounds(gamma: float, bound: str, options: dict[str, Any]) -> None:
    spec = get_sampler("ddpm_analytic")
    table = torch.full((13,), gamma, dtype=torch.float64)  # run_seeded: 12 steps -> 13 sigmas
    ours = testing.run_seeded(spec, [0, 1, 2], steps=12, gamma=table)
    torch.testing.assert_close(ours, testing.run_seeded(get_sampler(bound), [0, 1, 2], steps=12, **options),
                               rtol=0, atol=1e-12)


def test_ddpm_analytic_needs_a_gamma_per_sigma() -> None:
    with pytest.raises(ValueError, match="one gamma per sigma"):
        testing.run_seeded(get_sampler("ddpm_analytic"), [0], steps=12, gamma=torch.zeros(12, dtype=torch.float64))
