"""EDM's ablation sampler against the equations it generalises (Karras et al. 2022, Eq. 4, Alg. 1, Table 1).

Each setting is compared with the solver written directly in its own variables: Heun and the explicit midpoint
rule in sigma (linear schedule, no scaling), Euler on Song et al. 2021's VP probability-flow ODE (Eq. 13) in VP
time and the VP frame, and Euler in t = sigma^2 (VE). Their conformance (NFE, orders) is the registry's kit.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import Tensor

import samplerzoo as sz
from samplerzoo import conformance, testing
from samplerzoo.noise import SeededNoise
from samplerzoo.samplers.multistep import edm_fitted_vp
from samplerzoo.schedules import SigmaRange, karras

RANGE = SigmaRange(0.02, 20.0)
PROBLEM = testing.mixture_problem()


def run(sigmas: Tensor, **options: object) -> tuple[Tensor, Tensor]:
    x = SeededNoise(range(5), PROBLEM.sample_shape, dtype=torch.float64).randn() * float(sigmas[0])
    noise = SeededNoise(range(5), PROBLEM.sample_shape, dtype=torch.float64)
    return x, sz.get_sampler("edm_ablation").fn(PROBLEM, x, sigmas, noise=noise, **options)


def d(x: Tensor, sigma: float) -> Tensor:
    return (x - PROBLEM(x, torch.full((len(x),), sigma, dtype=torch.float64))) / sigma


@pytest.mark.parametrize("options", [{}, {"s_churn": 10.0, "s_noise": 1.007}])
def test_alpha_one_without_scaling_is_heun(options: dict[str, float]) -> None:
    sigmas = karras(9, RANGE)
    x, ours = run(sigmas, **options)
    heun = sz.get_sampler("heun").fn(PROBLEM, x, sigmas, noise=SeededNoise(range(5), (4,), dtype=torch.float64),
                                     **options)
    assert float((ours - heun).abs().max()) < 1e-12


def test_alpha_half_is_the_explicit_midpoint_rule() -> None:
    sigmas = karras(7, RANGE)[:-1]
    x, ours = run(sigmas, alpha=0.5)
    for sigma, sigma_next in zip(sigmas[:-1].tolist(), sigmas[1:].tolist(), strict=True):
        h = sigma_next - sigma
        x = x + h * d(x + h / 2 * d(x, sigma), sigma + h / 2)
    assert float((ours - x).abs().max()) < 1e-12


def test_vp_schedule_and_scaling_are_euler_on_the_vp_probability_flow() -> None:
    # Song et al. 2021, Eq. 13: dx/dt = -beta(t)/2 (x + grad log p_t), grad log p_t(x) = -(x - sqrt(ab) D) / (1 - ab),
    # in the VP frame x_vp = sqrt(ab) x, ab = 1 / (1 + sigma(t)^2), beta(t) = beta_min + beta_d t.
    sigmas = karras(8, RANGE)
    x, ours = run(sigmas, solver="euler", noise_schedule="vp", scaling="vp")
    vp = edm_fitted_vp(float(sigmas[-2]), float(sigmas[0]))
    times = [float(vp.t(s)) for s in sigmas]
    x_vp = x / math.sqrt(1 + float(sigmas[0]) ** 2)
    for t, t_next in itertools.pairwise(times):
        sigma = float(vp.sigma(torch.tensor(t, dtype=torch.float64)))
        root_ab = 1 / math.sqrt(1 + sigma**2)
        denoised = PROBLEM(x_vp / root_ab, torch.full((5,), sigma, dtype=torch.float64))
        score = -(x_vp - root_ab * denoised) / (1 - root_ab**2)
        x_vp = x_vp + (t_next - t) * (-(vp.beta_min + vp.beta_d * t) / 2 * (x_vp + score))
    assert float((ours - x_vp).abs().max()) < 1e-12


def test_ve_schedule_is_euler_in_sigma_squared() -> None:
    # sigma = sqrt(t): dx/dt = (x - D) / (2 sigma^2)
    sigmas = karras(6, RANGE)[:-1]
    x, ours = run(sigmas, solver="euler", noise_schedule="ve")
    for sigma, sigma_next in zip(sigmas[:-1].tolist(), sigmas[1:].tolist(), strict=True):
        x = x + (sigma_next**2 - sigma**2) * d(x, sigma) / (2 * sigma)
    assert float((ours - x).abs().max()) < 1e-12


@pytest.mark.parametrize("options", [{"solver": "euler"}, {"alpha": 0.5, "noise_schedule": "vp", "scaling": "vp"},
                                     {"noise_schedule": "ve"}])
def test_settings_keep_their_cost_and_order(options: dict[str, object]) -> None:
    spec = sz.get_sampler("edm_ablation")
    conformance.check_nfe_accounting(spec, **options)
    conformance.check_nfe_budget(spec, **options)
    expected = 1 if options.get("solver") == "euler" else 2
    assert abs(testing.fitted_order(spec, **options) - expected) < 0.3


@pytest.mark.parametrize(("options", "message"), [({"alpha": 1.5}, r"alpha must be in \(0, 1\]"),
                                                  ({"scaling": "ve"}, "unknown scaling 've'"),
                                                  ({"noise_schedule": "cosine"}, "unknown noise_schedule 'cosine'")])
def test_bad_options_are_one_line_errors(options: dict[str, object], message: str) -> None:
    with pytest.raises(sz.SamplerzooError, match=message):
        run(karras(3, RANGE), **options)
