"""DiscreteVP's smooth sigma -> t map (PCHIP in log sigma) and the likelihood's use of it.

The interpolant is checked against scipy's PchipInterpolator, then for what the likelihood needs of it: exact on
the trained levels, increasing, a continuous derivative where ``log`` has a kink at every level, and an inverse.
"""

from __future__ import annotations

import sys

import pytest
import torch
from scipy.interpolate import PchipInterpolator

import samplerzoo as sz
from samplerzoo.cli import main
from samplerzoo.likelihood import with_sigma_to_t
from samplerzoo.monotone_cubic import MonotoneCubic
from samplerzoo.noise_schedules import DiscreteVP

F64 = torch.float64
SMOOTH = DiscreteVP.linear_betas(sigma_to_t="smooth")
TABLE = SMOOTH.sigma_table
STEPS = torch.arange(len(TABLE), dtype=F64)


def log_sigmas(n: int = 100_001) -> torch.Tensor:
    return torch.linspace(float(TABLE[0].log()), float(TABLE[-1].log()), n, dtype=F64)


@pytest.mark.parametrize("knots", ["linear betas", "random"])
def test_monotone_cubic_is_scipys_pchip(knots: str) -> None:
    generator = torch.Generator().manual_seed(0)
    if knots == "linear betas":
        x, y = TABLE.log(), STEPS
    else:  # uneven knots and slopes; three knots or more
        x = torch.rand(9, generator=generator, dtype=F64).add(0.05).cumsum(0)
        y = torch.rand(9, generator=generator, dtype=F64).pow(3).add(1e-3).cumsum(0)
    query = torch.linspace(float(x[0]), float(x[-1]), 5001, dtype=F64)
    expected = torch.from_numpy(PchipInterpolator(x.numpy(), y.numpy())(query.numpy()))
    torch.testing.assert_close(MonotoneCubic(x, y)(query), expected, rtol=1e-13, atol=1e-12)


def test_smooth_map_gives_the_trained_timesteps_on_the_trained_levels_exactly() -> None:
    assert torch.equal(SMOOTH.t(TABLE), STEPS)
    torch.testing.assert_close(SMOOTH.sigma(STEPS), TABLE, rtol=1e-15, atol=0)
    # Clamped at the ends, as the other maps.
    assert SMOOTH.t(torch.tensor([1e-4, 1e4], dtype=F64)).tolist() == [0.0, 999.0]


def test_smooth_map_is_increasing_and_stays_within_each_level() -> None:
    u = log_sigmas()
    t = SMOOTH.t(u.exp())
    assert bool((t.diff() > 0).all())
    assert torch.equal(t.floor().clamp(max=998), DiscreteVP.linear_betas().t(u.exp()).floor().clamp(max=998))


def test_smooth_map_has_a_continuous_derivative_where_log_has_kinks() -> None:
    # One-sided difference quotients of t(log sigma) at every interior level: they agree to O(step) for the smooth
    # map, and jump by up to ~40% (relative) for the piecewise-linear log map.
    levels, step = TABLE.log()[1:-1], 1e-7

    def slope_jump(schedule: DiscreteVP) -> float:
        def t(u: torch.Tensor) -> torch.Tensor:
            return schedule.t(u.exp())
        left, right = (t(levels) - t(levels - step)) / step, (t(levels + step) - t(levels)) / step
        return float(((right - left).abs() / right).max())

    assert slope_jump(SMOOTH) < 1e-5
    assert slope_jump(DiscreteVP.linear_betas(sigma_to_t="log")) > 0.1


def test_smooth_sigma_and_t_are_inverse_between_levels() -> None:
    t = torch.rand(2000, generator=torch.Generator().manual_seed(1), dtype=F64) * 999
    torch.testing.assert_close(SMOOTH.t(SMOOTH.sigma(t)), t, rtol=0, atol=1e-9)
    sigma = log_sigmas(2001).exp()
    torch.testing.assert_close(SMOOTH.sigma(SMOOTH.t(sigma)), sigma, rtol=1e-12, atol=0)
    assert SMOOTH.t(TABLE.float()).dtype == torch.float32  # returns the input's dtype, as the other maps


def test_smooth_map_refuses_a_table_with_an_infinite_level() -> None:
    alphas_cumprod = DiscreteVP.linear_betas().alphas_cumprod.clone()
    alphas_cumprod[-1] = 0.0  # zero terminal SNR: sigma_max = inf
    with pytest.raises(sz.SamplerzooError, match=r"^sigma_to_t 'smooth' needs finite, strictly increasing"):
        DiscreteVP(alphas_cumprod, sigma_to_t="smooth")


def test_the_likelihood_reads_discrete_vp_networks_through_the_smooth_map() -> None:
    net = torch.nn.Identity()
    model = sz.NetworkDenoiser(lambda x, t: net(x), "epsilon", DiscreteVP.linear_betas(), sample_shape=(3,),
                               null_label=None)
    smooth = with_sigma_to_t(model)
    assert isinstance(smooth, sz.NetworkDenoiser) and smooth.schedule.sigma_to_t == "smooth"  # type: ignore[attr-defined]
    assert smooth.net is model.net and smooth.sample_shape == (3,) and model.schedule.sigma_to_t == "log"
    assert smooth.decoder is model.decoder and smooth.conditioner is model.conditioner
    assert with_sigma_to_t(model, "model") is model
    assert with_sigma_to_t(model, "nearest").schedule.sigma_to_t == "nearest"  # type: ignore[attr-defined]
    gaussian = sz.Gaussian(torch.zeros(3, dtype=F64), 0.5)
    assert with_sigma_to_t(gaussian) is gaussian  # not a discrete-time network
    with pytest.raises(sz.UnknownNameError, match="unknown sigma_to_t 'smoth'; did you mean smooth"):
        with_sigma_to_t(model, "smoth")


def test_nll_cli_refuses_an_unknown_sigma_to_t(monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "argv", ["zoo", "nll", "--checkpoint", "digits", "--sigma-to-t", "cubic"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 1 and err.count("\n") == 1
    assert err.startswith("error: unknown sigma_to_t 'cubic'; known: linear, log, model, nearest, smooth"), err
