"""The stochastic law checks (samplerzoo/laws.py, conformance.check_gaussian_law / check_mixture_law): their
measurements are right, and they fail what they must fail.

That every registered stochastic sampler passes them is tests/test_samplers.py's job.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest
import torch

import samplerzoo as sz
from samplerzoo import conformance, laws, testing
from samplerzoo.analytic import Gaussian
from samplerzoo.noise import BrownianTreeNoise, SeededNoise

MEAN, STD = 0.3, 0.5  # testing.gaussian_problem(), per coordinate


def test_affine_law_is_what_the_samples_follow() -> None:
    # 4000 samples x 4 coordinates from the usual start N(0, 20^2), real seeded noise: standard errors 0.004 (mean)
    # and 0.003 (std) against the exact law's mean and std; 4 standard errors allowed.
    spec, sigmas = sz.get_sampler("euler_maruyama"), laws.gaussian_schedule(25, True)
    law = laws.affine_law(spec, sigmas)
    mean, var = law.marginal(0.0, float(sigmas[0]) ** 2)
    sample_mean, sample_std = testing.sample_moments(spec, steps=25, form="ve")
    assert abs(sample_mean - mean) < 0.016 and abs(sample_std - math.sqrt(var)) < 0.012, (sample_mean, mean)


def test_affine_law_of_a_brownian_sampler_correlates_its_draws() -> None:
    # dpmpp_sde asks for overlapping increments (sigma, sigma_s) and (sigma, sigma_next): as one Brownian path they
    # correlate, as independent draws its std comes out ~5% low (as k-diffusion with independent noise). The Brownian
    # law is the one real BrownianTreeNoise samples: 2000 samples x 4, 4 standard errors of the std (0.0045 each).
    spec, sigmas = sz.get_sampler("dpmpp_sde"), laws.gaussian_schedule(20, True)
    start_var = float(sigmas[0]) ** 2
    std_brownian, std_independent = (math.sqrt(laws.affine_law(spec, sigmas, brownian=b).marginal(0, start_var)[1])
                                     for b in (True, False))
    assert std_independent < 0.96 * std_brownian, (std_independent, std_brownian)
    problem, seeds = testing.gaussian_problem(), range(2000)
    x = SeededNoise(seeds, problem.sample_shape, dtype=torch.float64).randn() * float(sigmas[0])
    noise = BrownianTreeNoise(seeds, problem.sample_shape, 0.01, float(sigmas[0]), dtype=torch.float64)
    std = float(spec.fn(problem, x, sigmas, noise=noise).std())
    assert abs(std - std_brownian) < 4 * STD / math.sqrt(2 * 8000), (std, std_brownian)


def test_exact_law_is_the_forward_process_posterior() -> None:
    # Regress x_L on x_0 over a million draws of the forward process x_L = x0 + sigma_L n, x_0 = x_L + tau n'.
    problem, sigmas = Gaussian(torch.tensor([MEAN], dtype=torch.float64), STD), torch.tensor([3.0, 1.0, 0.4])
    g = torch.Generator().manual_seed(0)
    x_clean = MEAN + STD * torch.randn(10**6, generator=g, dtype=torch.float64)
    x_low = x_clean + 0.4 * torch.randn(10**6, generator=g, dtype=torch.float64)
    x_high = x_low + math.sqrt(9 - 0.16) * torch.randn(10**6, generator=g, dtype=torch.float64)
    gain = float(((x_high - x_high.mean()) * (x_low - x_low.mean())).mean() / x_high.var())
    residual = float((x_low - x_low.mean() - gain * (x_high - x_high.mean())).var())
    law = laws.exact_law(problem, sigmas)
    assert abs(law.gain - gain) < 0.003 and abs(law.noise_var - residual) < 0.003, (law, gain, residual)
    assert abs(law.offset + law.gain * float(x_high.mean()) - float(x_low.mean())) < 0.003


def test_pc_is_not_affine() -> None:
    with pytest.raises(laws.NotAffineError, match=r"^pc: not affine on a Gaussian target"):
        laws.affine_law(sz.get_sampler("pc"), laws.gaussian_schedule(5, True))


def test_brownian_bridge_noise_is_one_brownian_path() -> None:
    # Queried out of order and overlapping, as dpmpp_sde does: increments standard, additive, and of the right
    # covariance (overlap / sqrt(product of lengths)); 20000 values, standard errors ~0.007.
    noise = laws.BrownianBridgeNoise((20000,), torch.Generator().manual_seed(1))
    s0, s1, s2 = (torch.tensor(v, dtype=torch.float64) for v in (8.0, 3.0, 0.5))
    n02, n01, n12 = noise(s0, s2), noise(s0, s1), noise(s1, s2)
    for n in (n01, n12, n02):
        assert abs(float(n.mean())) < 0.03 and abs(float(n.std()) - 1) < 0.03
    assert abs(float((n01 * n12).mean())) < 0.03
    assert abs(float((n01 * n02).mean()) - math.sqrt(5 / 7.5)) < 0.03
    joined = (n01 * (s0 - s1).sqrt() + n12 * (s1 - s2).sqrt()) / (s0 - s2).sqrt()
    torch.testing.assert_close(joined, n02, rtol=0, atol=1e-12)


def test_smooth_test_holds_its_level_and_sees_a_scale_error() -> None:
    # Under uniformity the p-value is uniform: of 400 tests of 2000 uniforms, 5% +- 2.2% (2 standard errors) fall
    # below 0.05; a 3% scale error of a normal (its PIT) is rejected at 1e-3.
    g = torch.Generator().manual_seed(0)
    pvalues = [laws.smooth_test_pvalue(torch.rand(2000, generator=g, dtype=torch.float64)) for _ in range(400)]
    assert abs(sum(p < 0.05 for p in pvalues) / 400 - 0.05) < 0.022
    z = torch.randn(20000, generator=g, dtype=torch.float64)
    assert laws.smooth_test_pvalue(laws.normal_cdf(1.03 * z)) < 1e-3
    assert laws.smooth_test_pvalue(laws.normal_cdf(z)) > 1e-3


# ----------------------------------------------------------------- what the checks must fail, at fixed seeds

def deterministic_as_stochastic(name: str) -> sz.SamplerSpec:
    """An ODE solver posing as a reverse-SDE sampler."""
    return dataclasses.replace(sz.get_sampler(name), stochastic=True, reverse_sde=True)


FAILING: dict[str, tuple[sz.SamplerSpec, str]] = {
    # plain Euler has the right marginal, but its output is a function of its start
    "euler": (deterministic_as_stochastic("euler"), r"law given the start"),
    # 5% too much noise, on a first- and a second-order sampler
    "euler_ancestral_noise_1.05": (laws.scaled_noise(sz.get_sampler("euler_ancestral"), 1.05), r"must shrink"),
    "dpmpp_2m_sde_noise_1.05": (laws.scaled_noise(sz.get_sampler("dpmpp_2m_sde"), 1.05), r"must shrink"),
    "dpmpp_2m_sde_noise_0.95": (laws.scaled_noise(sz.get_sampler("dpmpp_2m_sde"), 0.95), r"must shrink"),
}


@pytest.mark.parametrize("case", FAILING)
def test_the_gaussian_law_check_fails(case: str) -> None:
    spec, message = FAILING[case]
    with pytest.raises(AssertionError, match=message):
        conformance.check_gaussian_law(spec)


@pytest.mark.parametrize("case", ["euler", "dpmpp_2m_sde_noise_1.05", "dpmpp_2m_sde_noise_0.95"])
def test_the_mixture_law_check_fails(case: str) -> None:
    # Rejection rates over 20 seeds are in results/law-power.md; at the kit's seed these are rejected and the real
    # dpmpp_2m_sde passes (test_samplers.py runs every sampler through it).
    spec, _ = FAILING[case]
    with pytest.raises(AssertionError, match=r"fail the smooth test of their target law \(p = "):
        conformance.check_mixture_law(spec)


def test_the_monte_carlo_fallback_runs_for_pc(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[str] = []

    def record(spec: sz.SamplerSpec, **options: Any) -> None:
        seen.append(spec.name)

    monkeypatch.setattr(conformance, "check_reaches_target", record)
    conformance.check_law(sz.get_sampler("pc"))
    conformance.check_law(sz.get_sampler("ddpm"))
    assert seen == ["pc"]


def test_check_sampler_checks_a_stochastic_sampler_s_law() -> None:
    names = conformance.check_sampler("dpmpp_2m_sde")
    assert {"check_law", "check_mixture_law"} <= set(names) and "check_convergence_order" not in names
