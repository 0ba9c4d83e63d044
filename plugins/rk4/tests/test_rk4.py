"""The rk4 plugin: samplerzoo's conformance kit (NFE, budgets, determinism, batch invariance, order 4) and
agreement with an independent Runge-Kutta written from its Butcher tableau."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest
from torch import Tensor

import samplerzoo as sz
from samplerzoo import conformance, testing
from samplerzoo.denoiser import Denoiser
from samplerzoo.noise import NoiseSampler

# Kutta's classical tableau: nodes c, stage weights A (row i: the slopes stage i combines), output weights b.
C = (0.0, 0.5, 0.5, 1.0)
A = ((), (0.5,), (0.0, 0.5), (0.0, 0.0, 1.0))
B = (1 / 6, 1 / 3, 1 / 3, 1 / 6)


def tableau_rk(model: Denoiser, x: Tensor, sigmas: Tensor, noise: NoiseSampler) -> Tensor:
    """Explicit Runge-Kutta from (C, A, B) on dx/dsigma = (x - D) / sigma; Euler on the step to sigma = 0."""

    def f(y: Tensor, sigma: Tensor) -> Tensor:
        return (y - model(y, sigma.expand(len(y)))) / sigma

    for sigma, sigma_next in itertools.pairwise(sigmas):
        h = sigma_next - sigma
        if sigma_next == 0:
            x = x + h * f(x, sigma)
            continue
        k: list[Tensor] = []
        for c, a in zip(C, A, strict=True):
            k.append(f(x + h * sum(w * kj for w, kj in zip(a, k, strict=True)), sigma + c * h))
        x = x + h * sum(w * kj for w, kj in zip(B, k, strict=True))
    return x


@pytest.mark.samplerzoo_plugin("rk4")  # parametrizes samplerzoo_sampler over what the entry point `rk4` registers
def test_conformance(samplerzoo_sampler: str, sampler_conformance: Callable[..., list[str]]) -> None:
    assert sampler_conformance(samplerzoo_sampler, reference=tableau_rk) == [
        "check_nfe_accounting", "check_nfe_budget", "check_determinism", "check_batch_invariance",
        "check_convergence_order", "check_infinite_start", "check_reference_agreement"]


def test_cost_is_four_calls_a_step_and_one_for_the_last() -> None:
    spec = sz.get_sampler("rk4")
    assert (spec.cost, spec.steps_for_nfe(9), spec.steps_for_nfe(8, to_zero=False)) == ("4*steps-3", 3, 2)


def test_order_four_on_the_mixture() -> None:
    conformance.check_convergence_order(sz.get_sampler("rk4"), problem=testing.mixture_problem())
