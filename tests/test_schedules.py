"""Sampling schedules: shape, endpoints, and the spacing each one promises."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import samplerzoo as sz
from samplerzoo.noise_schedules import ContinuousVP, DiscreteVP
from samplerzoo.schedules import SigmaRange, exponential, karras, leading, linspace, polyexponential, trailing, vp

TABLE = DiscreteVP.linear_betas().sigma_table
DISCRETE = SigmaRange(float(TABLE[0]), float(TABLE[-1]), TABLE)


@pytest.mark.parametrize("name", sorted(sz.get_schedules()))
@pytest.mark.parametrize("n", [1, 2, 10, 37])
def test_schedule_decreases_and_ends_in_zero(name: str, n: int) -> None:
    sigmas = sz.get_schedule(name)(n, DISCRETE)
    assert sigmas.dtype == torch.float64 and sigmas.device.type == "cpu"
    assert len(sigmas) == n + 1 and sigmas[-1] == 0
    assert (sigmas[1:] < sigmas[:-1]).all(), sigmas


def test_karras_endpoints_and_rho_spacing() -> None:
    sigmas = karras(5, SigmaRange(0.002, 80.0), rho=7.0)
    assert sigmas[0] == pytest.approx(80.0) and sigmas[4] == pytest.approx(0.002)
    midpoint = ((80.0 ** (1 / 7) + 0.002 ** (1 / 7)) / 2) ** 7
    assert sigmas[2] == pytest.approx(midpoint)


def test_exponential_is_uniform_in_log_snr() -> None:
    sigmas = exponential(8, SigmaRange(0.002, 80.0))[:-1]
    lambdas = -sigmas.log()  # half log-SNR of the VP model with the same sigma
    torch.testing.assert_close(lambdas.diff(), torch.full((7,), math.log(80 / 0.002) / 7, dtype=torch.float64))
    torch.testing.assert_close(polyexponential(8, SigmaRange(0.002, 80.0), rho=1.0)[:-1], sigmas)


def test_polyexponential_rho_bends_the_ramp() -> None:
    sigmas = polyexponential(3, SigmaRange(0.01, 100.0), rho=2.0)
    assert sigmas[1] == pytest.approx(math.exp(0.25 * math.log(100 / 0.01) + math.log(0.01)))


def test_vp_is_time_uniform() -> None:
    sigmas = vp(4, SigmaRange(), beta_d=19.9, beta_min=0.1, eps_s=1e-3)
    times = ContinuousVP().t(sigmas[:-1])
    torch.testing.assert_close(times, torch.linspace(1, 1e-3, 4, dtype=torch.float64))


def test_leading_and_trailing_timesteps_match_ddim_spacing() -> None:
    torch.testing.assert_close(leading(10, DISCRETE)[:-1], TABLE[torch.arange(900, -1, -100)])
    torch.testing.assert_close(leading(10, DISCRETE, steps_offset=1)[:-1], TABLE[torch.arange(901, 0, -100)])
    torch.testing.assert_close(trailing(10, DISCRETE)[:-1], TABLE[torch.arange(999, 0, -100)])
    torch.testing.assert_close(trailing(3, DISCRETE)[:-1], TABLE[torch.tensor([999, 666, 332])])


@pytest.mark.parametrize("n", [7, 48, 61, 96, 112, 333])
def test_trailing_rounds_ties_like_diffusers(n: int) -> None:
    timesteps = (np.round(np.arange(1000, 0, -1000 / n)) - 1)[:n].astype(np.int64)  # diffusers' formula
    torch.testing.assert_close(trailing(n, DISCRETE)[:-1], TABLE[torch.from_numpy(timesteps)])


def test_linspace_interpolates_fractional_timesteps() -> None:
    log_mid = linspace(3, DISCRETE)[1]
    assert log_mid == pytest.approx(math.exp((math.log(TABLE[499]) + math.log(TABLE[500])) / 2))
    assert linspace(3, DISCRETE, interpolation="linear")[1] == pytest.approx(float(TABLE[499] + TABLE[500]) / 2)
    assert linspace(2, DISCRETE)[0] == pytest.approx(float(TABLE[-1]), rel=1e-14)


def test_bad_requests_are_one_clear_line() -> None:
    with pytest.raises(sz.SamplerzooError, match="schedule 'leading' needs a discrete-time model"):
        leading(10, SigmaRange())
    with pytest.raises(sz.SamplerzooError, match="a schedule needs at least 1 step, got 0"):
        karras(0, SigmaRange())
    with pytest.raises(sz.SamplerzooError, match="'trailing' spacing allows at most 1000 steps, got 1001"):
        trailing(1001, DISCRETE)
