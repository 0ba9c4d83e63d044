"""ER-SDE-Solver (Cui et al. 2023): its noise scaler interpolates between DDIM and DDPM, its integrals are the
authors' quadrature, and its exact law on a Gaussian reaches the target at every stage."""

from __future__ import annotations

import pytest
import torch
from scipy import integrate
from torch import Tensor

import samplerzoo as sz
from samplerzoo import conformance, testing
from samplerzoo.noise import SeededNoise
from samplerzoo.samplers.sde import er_integrals, er_noise_scaler
from samplerzoo.schedules import SigmaRange, karras

RANGE = SigmaRange(0.03, 15.0)


def run(name: str, sigmas: Tensor, **options: object) -> Tensor:
    problem = testing.mixture_problem()
    x = SeededNoise(range(5), problem.sample_shape, dtype=torch.float64).randn() * float(sigmas[0])
    return sz.get_sampler(name).fn(problem, x, sigmas, noise=SeededNoise(range(5), (4,), dtype=torch.float64),
                                   **options)


@pytest.mark.parametrize(("scaler", "s_noise", "same", "options"), [
    (lambda x: x, 0.0, "euler", {}),  # its noise std sqrt(sigma_next^2 - r^2 sigma^2) is 0 (up to rounding's root)
    (lambda x: x**2, 1.0, "ddpm", {"variance": "fixed_small"})])
def test_first_stage_with_power_scalers_is_ddim_or_ddpm(scaler: object, s_noise: float, same: str,
                                                         options: dict[str, str]) -> None:
    sigmas = karras(8, RANGE)
    ours = run("er_sde", sigmas, max_stage=1, noise_scaler=scaler, s_noise=s_noise)
    assert float((ours - run(same, sigmas, **options)).abs().max()) < 1e-12


def test_integrals_are_the_quadrature_of_the_scaler() -> None:
    sigma, sigma_next = torch.tensor(3.0, dtype=torch.float64), torch.tensor(2.2, dtype=torch.float64)
    s_1, s_2 = er_integrals(sigma, sigma_next, er_noise_scaler)
    exact_1 = integrate.quad(lambda u: 1 / float(er_noise_scaler(torch.tensor(u))), 2.2, 3.0)[0]
    exact_2 = integrate.quad(lambda u: (u - 3.0) / float(er_noise_scaler(torch.tensor(u))), 2.2, 3.0)[0]
    assert abs(float(s_1) - exact_1) < 1e-2 * abs(exact_1) and abs(float(s_2) - exact_2) < 2e-2 * abs(exact_2)


@pytest.mark.parametrize("max_stage", [1, 2])
def test_er_sde_lower_stages_reach_the_target_law(max_stage: int) -> None:
    # The default (3 stages) is checked by the registry's law tests (tests/test_samplers.py).
    conformance.check_gaussian_law(sz.get_sampler("er_sde"), max_stage=max_stage)


def test_bad_stage_is_refused() -> None:
    with pytest.raises(sz.UnknownNameError, match="unknown er_sde max_stage '4'"):
        run("er_sde", karras(3, RANGE), max_stage=4)
