"""Each adapter, fed an analytic model written in that parameterization, reproduces the exact denoiser.

The test networks are written independently of the adapters: they decode their time input with numpy,
undo the input scaling of their schedule, and form their prediction from the exact score (autograd of
the mixture's log-density) by the textbook definitions of epsilon, v, x0 and the score.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import torch
from scipy.interpolate import PchipInterpolator
from scipy.optimize import brentq
from torch import Tensor

import samplerzoo as sz
from samplerzoo.adapters import NetworkDenoiser
from samplerzoo.noise_schedules import EDM, VE, ConsistencyEDM, ContinuousVP, DiscreteVP

MIXTURE = sz.GaussianMixture(torch.tensor([[1.0, -0.5, 0.2], [-1.2, 0.4, 0.9]], dtype=torch.float64),
                             torch.tensor([0.3, 0.6], dtype=torch.float64), torch.tensor([0.35, 0.65]))
TABLE = DiscreteVP.linear_betas().sigma_table.numpy()
SMOOTH_T = PchipInterpolator(np.log(TABLE), np.arange(1000))  # scipy's PCHIP: t(log sigma) of sigma_to_t="smooth"


def exact_score(x: Tensor, sigma: float) -> Tensor:
    """grad_x log p(x; sigma), by autograd (independent of Tweedie's formula in the denoiser)."""
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(MIXTURE.log_prob(x, torch.full((len(x),), sigma, dtype=x.dtype)).sum(), x)
    return grad


def decode(schedule: object, c_noise: Tensor) -> tuple[float, float]:
    """(sigma, c_in) from the network's time input, by each schedule's definition (Karras et al. 2022, Table 1)."""
    t = float(c_noise[0])
    if isinstance(schedule, DiscreteVP):
        mode = schedule.sigma_to_t
        if mode == "nearest":
            assert t == round(t), "nearest mode must feed integer timesteps"
        sigma = {"log": lambda: math.exp(np.interp(t, np.arange(1000), np.log(TABLE))),
                 "linear": lambda: float(np.interp(t, np.arange(1000), TABLE)),
                 "nearest": lambda: float(TABLE[int(t)]),
                 "smooth": lambda: math.exp(brentq(lambda u: SMOOTH_T(u) - t, *np.log(TABLE[[0, -1]]), xtol=1e-13))
                 }[mode]()
    elif isinstance(schedule, ContinuousVP):
        u = t / 999
        sigma = math.sqrt(math.exp(19.9 * u**2 / 2 + 0.1 * u) - 1)
    elif isinstance(schedule, VE):
        sigma = 2 * math.exp(t)
    elif isinstance(schedule, ConsistencyEDM):  # diffusers' CMStochasticIterativeScheduler.sigma_to_t
        sigma = math.exp(t / 250)
    else:
        sigma = math.exp(4 * t)
    vp = isinstance(schedule, DiscreteVP | ContinuousVP)
    c_in = 1 / math.sqrt(1 + sigma**2) if vp else 1 / math.sqrt(sigma**2 + 0.25) if isinstance(schedule, EDM) else 1
    return sigma, c_in


def analytic_network(schedule: object, prediction: str) -> Callable[[Tensor, Tensor], Tensor]:
    def net(x_in: Tensor, c_noise: Tensor) -> Tensor:
        sigma, c_in = decode(schedule, c_noise)
        x = x_in / c_in  # back to the sigma frame: x = x0 + sigma * n
        score = exact_score(x, sigma)
        x0 = x + sigma**2 * score
        eps = (x - x0) / sigma
        if prediction == "epsilon":
            return eps
        if prediction == "x0":
            return x0
        if prediction == "score":  # score of the network's own input c_in * x
            return score / c_in
        if prediction == "v":  # v = alpha * eps - sigma_vp * x0 with alpha = 1/sqrt(1+s^2), sigma_vp = s*alpha
            alpha = 1 / math.sqrt(1 + sigma**2)
            return alpha * eps - sigma * alpha * x0
        sd = 0.5
        if prediction == "consistency":  # Song et al. 2023, App. C: F = (x0 - c_skip x) / c_out around sigma_min
            offset = sigma - 0.002
            return (x0 - sd**2 / (offset**2 + sd**2) * x) / (offset * sd / math.sqrt(sigma**2 + sd**2))
        # EDM's F = (x0 - c_skip x) / c_out, Eq. 7
        return (x0 - sd**2 / (sigma**2 + sd**2) * x) / (sigma * sd / math.sqrt(sigma**2 + sd**2))
    return net


VP_SCHEDULES = [DiscreteVP.linear_betas(sigma_to_t=m) for m in ("log", "linear", "nearest", "smooth")]
VP_SCHEDULES += [ContinuousVP()]
CASES = [(s, p) for s in VP_SCHEDULES for p in ("epsilon", "v", "x0", "score")]
CASES += [(VE(), p) for p in ("epsilon", "x0", "score")] + [(EDM(), p) for p in ("edm", "epsilon", "x0")]
CASES += [(ConsistencyEDM(), "consistency")]


def sigmas_to_test(schedule: object) -> list[float]:
    if isinstance(schedule, DiscreteVP):
        on_table = [float(TABLE[i]) for i in (0, 37, 500, 999)]
        return on_table if schedule.sigma_to_t == "nearest" else [*on_table, 0.5, 3.3]
    return [max(schedule.sigma_min, 0.05), 0.5, 3.3, min(schedule.sigma_max, 60.0)]


@pytest.mark.parametrize(("schedule", "prediction"), CASES, ids=lambda v: getattr(v, "sigma_to_t", str(v)[:12]))
def test_adapter_reproduces_exact_denoiser(schedule: object, prediction: str) -> None:
    denoiser = NetworkDenoiser(analytic_network(schedule, prediction), prediction, schedule)
    generator = torch.Generator().manual_seed(0)
    for sigma in sigmas_to_test(schedule):
        x = MIXTURE.sample(5, generator) + sigma * torch.randn(5, 3, generator=generator, dtype=torch.float64)
        s = torch.full((5,), sigma, dtype=torch.float64)
        torch.testing.assert_close(denoiser(x, s), MIXTURE(x, s), atol=1e-6, rtol=0)


def test_nearest_mode_quantizes_to_the_closest_trained_level() -> None:
    schedule = DiscreteVP.linear_betas(sigma_to_t="nearest")
    between = torch.tensor([float(TABLE[10]) * 0.6 + float(TABLE[11]) * 0.4], dtype=torch.float64)
    assert schedule.t(between).item() == 10
    assert DiscreteVP.linear_betas(sigma_to_t="log").t(between).item() == pytest.approx(10.4, abs=0.02)


@pytest.mark.parametrize("mode", ["log", "linear", "nearest", "smooth"])
def test_discrete_sigma_and_t_are_inverse(mode: str) -> None:
    schedule = DiscreteVP.linear_betas(sigma_to_t=mode)
    t = torch.tensor([0.0, 3.0, 250.0, 999.0], dtype=torch.float64)
    torch.testing.assert_close(schedule.t(schedule.sigma(t)), t)


def test_denoiser_exposes_its_sigma_range_and_table() -> None:
    discrete = NetworkDenoiser(analytic_network(VP_SCHEDULES[0], "epsilon"), "epsilon", VP_SCHEDULES[0])
    assert isinstance(discrete, sz.Denoiser)
    assert discrete.sigma_table is not None and len(discrete.sigma_table) == 1000
    assert discrete.sigma_min == pytest.approx(0.0100005, rel=1e-5) and discrete.sigma_max == pytest.approx(157.4,
                                                                                                           rel=1e-3)
    edm = NetworkDenoiser(analytic_network(EDM(), "edm"), "edm", EDM())
    assert (edm.sigma_min, edm.sigma_max, edm.sigma_data, edm.sigma_table) == (0.002, 80.0, 0.5, None)
    assert ContinuousVP().sigma_min == pytest.approx(math.sqrt(math.expm1(0.1e-5 + 19.9e-10 / 2)), rel=1e-6)


def test_diffusers_prediction_type_names_are_accepted() -> None:
    for name, canonical in [("epsilon", "epsilon"), ("v_prediction", "v"), ("sample", "x0"), ("F", "edm")]:
        assert NetworkDenoiser(lambda x, t: x, name, EDM()).prediction == canonical
    with pytest.raises(sz.UnknownNameError, match="unknown parameterization 'flux'"):
        NetworkDenoiser(lambda x, t: x, "flux", EDM())


def test_a_consistency_model_is_the_identity_at_sigma_min() -> None:
    """The boundary condition f(x, epsilon) = x (Song et al. 2023, Sec. 3) holds whatever the network says."""
    denoiser = NetworkDenoiser(lambda x_in, c_noise: torch.full_like(x_in, 7.0), "consistency", ConsistencyEDM())
    x = torch.randn(4, 3, dtype=torch.float64)
    torch.testing.assert_close(denoiser(x, torch.full((4,), 0.002, dtype=torch.float64)), x, rtol=0, atol=1e-15)
