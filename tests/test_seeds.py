"""SEEDS, exponential Heun and Heun++ against the solvers they reduce to, and their own equations.

Deterministic (eta = 0) SEEDS-2 is DPM-Solver++(2S) and SEEDS-3 DPM-Solver-3 in data prediction (Lu et al.
2022b): both are checked against those samplers (themselves checked against k-diffusion in test_dpm_solver.py).
Exponential Heun is written out from its definition; Heun++ from its published weights. The stochastic forms
pass the registry's exact-law checks (tests/test_samplers.py), here with options too.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import Tensor

import samplerzoo as sz
from samplerzoo import conformance, testing
from samplerzoo.noise import SeededNoise
from samplerzoo.schedules import SigmaRange, karras

RANGE = SigmaRange(0.03, 15.0)
PROBLEM = testing.mixture_problem()


def run(name: str, sigmas: Tensor, **options: object) -> Tensor:
    x = SeededNoise(range(5), PROBLEM.sample_shape, dtype=torch.float64).randn() * float(sigmas[0])
    noise = SeededNoise(range(5), PROBLEM.sample_shape, dtype=torch.float64)
    return sz.get_sampler(name).fn(PROBLEM, x, sigmas, noise=noise, **options)


def level(x: Tensor, sigma: float) -> Tensor:
    return PROBLEM(x, torch.full((len(x),), sigma, dtype=torch.float64))


@pytest.mark.parametrize(("name", "options", "same", "same_options"), [
    ("seeds_2", {"eta": 0.0}, "dpmpp_2s", {}),
    ("seeds_2", {"eta": 0.0, "r": 0.3}, "dpm_solver", {"order": 2, "prediction": "data", "r1": 0.3}),
    ("seeds_3", {"eta": 0.0}, "dpm_solver", {"order": 3, "prediction": "data"}),
    ("exp_heun_2_x0", {"solver_type": "phi_1"}, "dpm_solver", {"order": 2, "prediction": "data", "r1": 1.0}),
    ("exp_heun_2_x0_sde", {"eta": 0.0}, "exp_heun_2_x0", {}),
])
@pytest.mark.parametrize("to_zero", [True, False])
def test_deterministic_forms_are_the_dpm_solvers(name: str, options: dict[str, object], same: str,
                                                 same_options: dict[str, object], to_zero: bool) -> None:
    sigmas = karras(7, RANGE) if to_zero else karras(8, RANGE)[:-1]
    assert float((run(name, sigmas, **options) - run(same, sigmas, **same_options)).abs().max()) < 1e-12


def test_exponential_heun_is_its_definition() -> None:
    # x' = DDIM(x -> sigma_next); x_next = e^{-h} x + (1 - e^{-h}) D + h phi_2(-h) (D(x', sigma_next) - D)
    sigmas = karras(6, RANGE)[:-1]
    x = SeededNoise(range(5), PROBLEM.sample_shape, dtype=torch.float64).randn() * float(sigmas[0])
    ours = run("exp_heun_2_x0", sigmas)
    for sigma, sigma_next in zip(sigmas[:-1].tolist(), sigmas[1:].tolist(), strict=True):
        h = math.log(sigma / sigma_next)
        denoised = level(x, sigma)
        predicted = math.exp(-h) * x + (1 - math.exp(-h)) * denoised
        h_phi_2 = (math.exp(-h) - 1 + h) / h
        x = math.exp(-h) * x + (1 - math.exp(-h)) * denoised + h_phi_2 * (level(predicted, sigma_next) - denoised)
    assert float((ours - x).abs().max()) < 1e-12


def test_heunpp2_is_its_published_weights() -> None:
    sigmas = karras(5, RANGE)
    x = SeededNoise(range(5), PROBLEM.sample_shape, dtype=torch.float64).randn() * float(sigmas[0])
    ours = run("heunpp2", sigmas)
    s, n = sigmas.tolist(), len(sigmas) - 1

    def d(x: Tensor, sigma: float) -> Tensor:
        return (x - level(x, sigma)) / sigma

    for i in range(n):
        d1 = d(x, s[i])
        if i == n - 1:
            slope = d1
        elif i == n - 2:
            d2 = d(x + d1 * (s[i + 1] - s[i]), s[i + 1])
            w2 = s[i + 1] / (2 * s[0])
            slope = (1 - w2) * d1 + w2 * d2
        else:
            x2 = x + d1 * (s[i + 1] - s[i])
            d2 = d(x2, s[i + 1])
            d3 = d(x2 + d2 * (s[i + 2] - s[i + 1]), s[i + 2])
            w2, w3 = s[i + 1] / (3 * s[0]), s[i + 2] / (3 * s[0])
            slope = (1 - w2 - w3) * d1 + w2 * d2 + w3 * d3
        x = x + slope * (s[i + 1] - s[i])
    assert float((ours - x).abs().max()) < 1e-12


def test_seeds_noise_is_one_path_per_step() -> None:
    # On D = 0 (a point mass at the origin) SEEDS-2 is linear in its noise; with r = 1 (exponential Heun SDE) both
    # stages share one draw, so the step's noise has the SDE step's std sigma_next sqrt(1 - e^{-2 eta h}).
    class Origin:
        sigma_min, sigma_max, sigma_data, sigma_table = 0.002, 80.0, 1.0, None

        def __call__(self, x: Tensor, sigma: Tensor, **cond: object) -> Tensor:
            return torch.zeros_like(x)

    sigmas = torch.tensor([2.0, 1.0], dtype=torch.float64)
    noise = SeededNoise(range(20000), (1,), dtype=torch.float64)
    out = sz.get_sampler("exp_heun_2_x0_sde").fn(Origin(), torch.zeros(20000, 1, dtype=torch.float64), sigmas,
                                                  noise=noise, eta=1.0)
    expected = 1.0 * math.sqrt(1 - math.exp(-2 * math.log(2.0)))
    assert abs(float(out.std()) - expected) < 0.02



@pytest.mark.parametrize(("name", "options"), [("seeds_2", {"solver_type": "phi_2", "eta": 0.5}),
                                               ("seeds_3", {"eta": 0.5})])
def test_options_keep_the_target_law(name: str, options: dict[str, object]) -> None:
    # eta < 1 keeps only the marginals; the defaults are checked by the registry's law tests (tests/test_samplers.py).
    spec = dataclasses.replace(sz.get_sampler(name), reverse_sde=False, weak_order=1)
    conformance.check_gaussian_law(spec, **options)
