"""The analytic models are right: they are the ground truth for every other test."""

from __future__ import annotations

import pytest
import torch

import samplerzoo as sz

F64 = torch.float64


def sigma_batch(sigma: float, n: int) -> torch.Tensor:
    return torch.full((n,), sigma, dtype=torch.float64)


def test_gaussian_ode_solution_solves_the_ode() -> None:
    g = sz.Gaussian(torch.tensor([0.3, -1.0], dtype=F64), 0.5)
    x_start = torch.tensor([[4.0, 2.0], [-3.0, 7.0]], dtype=F64)
    for sigma in (0.1, 1.0, 9.0):
        x, h = g.ode_solution(x_start, 10.0, sigma), 1e-5
        slope = (g.ode_solution(x_start, 10.0, sigma + h) - g.ode_solution(x_start, 10.0, sigma - h)) / (2 * h)
        torch.testing.assert_close(slope, (x - g(x, sigma_batch(sigma, 2))) / sigma, atol=1e-8, rtol=1e-7)
    torch.testing.assert_close(g.ode_solution(x_start, 10.0, 10.0), x_start)


def test_one_component_mixture_is_the_gaussian() -> None:
    g = sz.Gaussian(torch.tensor([0.3, -1.0, 2.0], dtype=F64), 0.7)
    m = sz.GaussianMixture(torch.tensor([[0.3, -1.0, 2.0]], dtype=F64), 0.7)
    x = torch.randn(6, 3, dtype=F64) * 3
    torch.testing.assert_close(m(x, sigma_batch(1.3, 6)), g(x, sigma_batch(1.3, 6)))


@pytest.mark.parametrize("sigma", [0.05, 0.8, 20.0])
def test_denoiser_is_tweedie_of_the_log_density(sigma: float) -> None:
    m = sz.GaussianMixture(torch.tensor([[1.0, 0.0], [-1.0, 2.0], [0.0, -2.0]], dtype=F64),
                           torch.tensor([0.2, 0.5, 0.1], dtype=F64), torch.tensor([0.2, 0.3, 0.5], dtype=F64))
    x = (m.sample(8, torch.Generator().manual_seed(1)) + sigma * torch.randn(8, 2, dtype=F64)).requires_grad_(True)
    (score,) = torch.autograd.grad(m.log_prob(x, sigma_batch(sigma, 8)).sum(), x)
    torch.testing.assert_close(m(x.detach(), sigma_batch(sigma, 8)), x.detach() + sigma**2 * score)


def test_finite_dataset_denoiser_is_a_softmax_weighted_mean() -> None:
    data = torch.randn(50, 2, 3, dtype=F64)
    d = sz.finite_dataset(data)
    x, sigma = torch.randn(4, 2, 3, dtype=F64), 0.9
    weights = (-torch.cdist(x.flatten(1), data.flatten(1)) ** 2 / (2 * sigma**2)).softmax(-1)
    torch.testing.assert_close(d(x, sigma_batch(sigma, 4)), (weights @ data.flatten(1)).reshape(4, 2, 3))
    near = data[:3] + 1e-3 * torch.randn(3, 2, 3, dtype=F64)
    torch.testing.assert_close(d(near, sigma_batch(0.01, 3)), data[:3])


def test_mixture_samples_have_the_mixture_moments() -> None:
    m = sz.GaussianMixture(torch.tensor([[2.0], [-2.0]], dtype=F64), torch.tensor([0.5, 0.2], dtype=F64),
                           torch.tensor([0.6, 0.4], dtype=F64))
    samples = m.sample(200_000, torch.Generator().manual_seed(0))
    mean = 0.6 * 2 - 0.4 * 2
    var = 0.6 * (4 + 0.25) + 0.4 * (4 + 0.04) - mean**2
    assert samples.mean().item() == pytest.approx(mean, abs=0.01)
    assert samples.var().item() == pytest.approx(var, rel=0.01)
