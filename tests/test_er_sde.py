"""ER-SDE-Solver (Cui et al. 2023): its noise scaler interpolates between DDIM and DDPM, its integrals are the
authors' quadrature, its steps are the authors' recursion (written out), and its exact law on a Gaussian reaches
the target at every stage."""

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


@pytest.mark.parametrize("max_stage", [2, 3])
@pytest.mark.parametrize("to_zero", [True, False])
def test_er_sde_is_cui_et_als_recursion(max_stage: int, to_zero: bool) -> None:
    # Cui et al. 2023's VE ER-SDE-Solver (the authors' er_sde_solver.py, ComfyUI's sample_er_sde), written out with
    # their scaler phi(s) = s (e^{s^0.3} + 10), their 200-point left sums S_1 = int 1/phi, S_2 = int (u - sigma)/phi
    # from sigma_next, D' = (D - D_prev) / (sigma - sigma_prev) and D'' = (D' - D'_prev) / ((sigma - sigma_prev2) / 2):
    # x' = r x + (1 - r) D + (h + S_1 phi') D' + (h^2 / 2 + S_2 phi') D'' + sqrt(sigma'^2 - r^2 sigma^2) z,
    # r = phi' / phi, h = sigma' - sigma. D'' enters at O(h^3) a step, below what the law checks resolve.
    sigmas = karras(7, RANGE) if to_zero else karras(8, RANGE)[:-1]
    ours = run("er_sde", sigmas, max_stage=max_stage)
    problem = testing.mixture_problem()
    x = SeededNoise(range(5), problem.sample_shape, dtype=torch.float64).randn() * float(sigmas[0])
    noise = SeededNoise(range(5), (4,), dtype=torch.float64)

    def scaler(s: Tensor) -> Tensor:
        return s * ((s**0.3).exp() + 10.0)

    s = sigmas.tolist()
    previous = previous_slope = None
    for i in range(len(s) - 1):
        denoised = problem(x, torch.full((len(x),), s[i], dtype=torch.float64))
        if s[i + 1] == 0:
            x = denoised
            continue
        sigma, sigma_next = torch.tensor(s[i], dtype=torch.float64), torch.tensor(s[i + 1], dtype=torch.float64)
        r = scaler(sigma_next) / scaler(sigma)
        x_next = r * x + (1 - r) * denoised
        stage = min(max_stage, i + 1)
        if stage >= 2:
            h = sigma_next - sigma
            width = (sigma - sigma_next) / 200
            nodes = sigma_next + torch.arange(200, dtype=torch.float64) * width
            s_1 = (1 / scaler(nodes)).sum() * width
            s_2 = ((nodes - sigma) / scaler(nodes)).sum() * width
            slope = (denoised - previous) / (s[i] - s[i - 1])
            x_next = x_next + (h + s_1 * scaler(sigma_next)) * slope
            if stage >= 3:
                curvature = (slope - previous_slope) / ((s[i] - s[i - 2]) / 2)
                x_next = x_next + (h**2 / 2 + s_2 * scaler(sigma_next)) * curvature
            previous_slope = slope
        x = x_next + noise() * (sigma_next**2 - r**2 * sigma**2).sqrt()
        previous = denoised
    torch.testing.assert_close(ours, x, rtol=0, atol=1e-12)
