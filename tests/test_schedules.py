"""Sampling schedules: shape, endpoints, and the spacing each one promises."""

from __future__ import annotations

import importlib
import math
import types

import numpy as np
import pytest
import torch

import samplerzoo as sz
from samplerzoo.noise_schedules import EDM, ContinuousVP, DiscreteVP, SubVP
from samplerzoo.published_schedules import AYS_SIGMAS, ays, ddim_uniform, iddpm, iddpm_ladder, laplace
from samplerzoo.schedules import SigmaRange, exponential, karras, leading, linspace, polyexponential, trailing, vp
from samplerzoo.time_schedules import normal

TABLE = DiscreteVP.linear_betas().sigma_table
DISCRETE = SigmaRange(float(TABLE[0]), float(TABLE[-1]), TABLE)


ARGUMENTS = {"ays": "ays:sd15"}
"""Schedules that need an argument, as a user names them; ``file`` is tested with the files zoo tune writes."""


@pytest.mark.parametrize("name", sorted(set(sz.get_schedules()) - {"file"}))
@pytest.mark.parametrize("n", [1, 2, 10, 37])
def test_schedule_decreases_and_ends_in_zero(name: str, n: int) -> None:
    sigmas = sz.get_schedule(ARGUMENTS.get(name, name))(n, DISCRETE)
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


# --- against the reference implementations: k-diffusion's get_sigmas_* and DiscreteSchedule -------------------

@pytest.mark.parametrize(("name", "options"), [("karras", {"rho": 7.0}), ("exponential", {}),
                                               ("polyexponential", {"rho": 2.0}), ("vp", {})])
def test_continuous_schedules_match_k_diffusion(k_sampling: types.ModuleType, name: str,
                                                options: dict[str, float]) -> None:
    reference = getattr(k_sampling, f"get_sigmas_{name}")
    limits = {} if name == "vp" else {"sigma_min": 0.002, "sigma_max": 80.0}
    expected = reference(12, **limits, **options).double()
    # k-diffusion forms exp(x) - 1 in float32: at the last vp level (x ~ 2e-4) that keeps ~3 digits.
    rtol = 1e-3 if name == "vp" else 1e-6
    torch.testing.assert_close(sz.get_schedule(name)(12, SigmaRange(0.002, 80.0), **options), expected,
                               rtol=rtol, atol=1e-7)


def discrete_schedule(k_sampling: types.ModuleType) -> object:
    external = importlib.import_module("k_diffusion.external")
    return external.DiscreteSchedule(TABLE.float(), quantize=False)


@pytest.mark.parametrize("n", [1, 7, 25])
def test_linspace_and_normal_match_k_diffusions_discrete_schedule(k_sampling: types.ModuleType, n: int) -> None:
    expected = discrete_schedule(k_sampling).get_sigmas(n).double()
    for name in ("linspace", "normal"):  # ComfyUI's normal on a discrete model is k-diffusion's get_sigmas
        torch.testing.assert_close(sz.get_schedule(name)(n, DISCRETE), expected, rtol=1e-5, atol=1e-7)


class TimeInput:
    """A continuous model as a schedule sees it: its sigma range and its noise schedule's time input."""

    def __init__(self, schedule: object) -> None:
        self.schedule = schedule
        self.sigma_min, self.sigma_max = schedule.sigma_min, schedule.sigma_max  # type: ignore[attr-defined]
        self.sigma_table = None


def test_normal_is_uniform_in_the_models_time_input() -> None:
    # EDM's time input log(sigma)/4: ComfyUI's normal_scheduler gives exp(4 linspace(log(smax)/4, log(smin)/4, n)).
    edm = normal(9, TimeInput(EDM()))
    torch.testing.assert_close(edm[:-1], torch.linspace(math.log(80) / 4, math.log(0.002) / 4, 9,
                                                        dtype=torch.float64).mul(4).exp(), rtol=1e-13, atol=0)
    # The VP SDE's (M-1) t: time-uniform from t = 1 to eps_t; sub-VP likewise in its own time.
    for schedule in (ContinuousVP(), SubVP()):
        times = schedule.t(normal(6, TimeInput(schedule))[:-1])
        torch.testing.assert_close(times, torch.linspace(1, 1e-5, 6, dtype=torch.float64), rtol=1e-10, atol=1e-12)
    # A model with no schedule of its own is read as ComfyUI's continuous EDM model: log-uniform too.
    torch.testing.assert_close(normal(9, SigmaRange(0.002, 80.0)), edm, rtol=1e-13, atol=0)


@pytest.mark.parametrize("n", [1, 3, 6, 7, 10, 50])
def test_ddim_uniform_takes_comfyuis_first_n_levels(n: int) -> None:
    # ComfyUI's ddim_scheduler: x = 1, 1 + ss, ... while x < T (ss = T // n), highest first.
    stride = 1000 // n
    ladder = list(range(1, 1000, stride))[::-1]
    assert len(ladder) == n + (n in (6, 7))  # 1000 = 7 * 142 + 6: ComfyUI runs 8 steps for 7
    torch.testing.assert_close(ddim_uniform(n, DISCRETE)[:-1], TABLE[torch.tensor(ladder[:n])])
    if 1000 % n == 0:
        torch.testing.assert_close(ddim_uniform(n, DISCRETE), leading(n, DISCRETE, steps_offset=1))


@pytest.mark.parametrize("n", [1, 2, 9, 10])
def test_laplace_is_comfyuis_formula(n: int) -> None:
    x = np.linspace(0, 1, n)
    expected = np.clip(np.exp(0.3 - 0.7 * np.sign(0.5 - x) * np.log(1 - 2 * np.abs(0.5 - x) + 1e-5)), 0.002, 80.0)
    torch.testing.assert_close(laplace(n, SigmaRange(0.002, 80.0), mu=0.3, beta=0.7)[:-1],
                               torch.from_numpy(expected), rtol=1e-12, atol=0)
    with pytest.raises(sz.SamplerzooError, match="clamp to the model's range"):
        laplace(10, SigmaRange(0.5, 1.0))


def test_iddpm_ladder_is_edms_recursion_and_its_closed_form() -> None:
    M, C_1, C_2 = 1000, 0.001, 0.008
    abar = np.sin(0.5 * np.pi * np.arange(M + 1) / M / (C_2 + 1)) ** 2
    u = np.zeros(M + 1)
    # Karras et al. 2022, Table 1: u_{j-1} = sqrt((u_j^2 + 1) / max(abar_{j-1} / abar_j, C_1) - 1)
    for j in range(M, 0, -1):
        u[j - 1] = np.sqrt((u[j] ** 2 + 1) / max(abar[j - 1] / abar[j], C_1) - 1)
    ladder = iddpm_ladder(C_1, C_2, M)
    torch.testing.assert_close(ladder, torch.from_numpy(u), rtol=1e-12, atol=1e-15)
    # Where the clip is inactive, (u_j^2 + 1) abar_j is constant: u_j = sqrt(abar_M / abar_j - 1).
    torch.testing.assert_close(ladder[10:], torch.from_numpy(np.sqrt(abar[M] / abar[10:] - 1)), rtol=1e-10, atol=1e-15)


def test_iddpm_picks_edms_rounded_indices_in_the_range() -> None:
    sigmas = iddpm(18, SigmaRange(0.002, 81.0))[:-1]  # EDM's iDDPM defaults: sigma_min 0.002, sigma_max 81
    u = iddpm_ladder()
    kept = u[(u >= 0.002) & (u <= 81.0)]
    index = torch.round((len(kept) - 1) / 17 * torch.arange(18, dtype=torch.float64)).long()
    torch.testing.assert_close(sigmas, kept[index])
    assert sigmas[0] == kept.max() and sigmas[-1] == kept.min() and kept.max() <= 81.0
    with pytest.raises(sz.SamplerzooError, match="at most"):
        iddpm(300, SigmaRange(1.0, 2.0))  # 206 levels lie in [1, 2]


def test_ays_matches_diffusers_tables_at_ten_steps() -> None:
    from diffusers.schedulers.scheduling_utils import AysSchedules

    # diffusers lists SVD's table as published; its SD1.5 and SDXL sigmas are a 3-decimal rendition that strays from
    # the published 10-digit values (ComfyUI's) by up to 0.32% and 1.42% (SDXL's 0.113 for 0.1114188177).
    for model, key, rtol in (("svd", "StableDiffusionVideoSigmas", 1e-12), ("sd15", "StableDiffusionSigmas", 3.2e-3),
                             ("sdxl", "StableDiffusionXLSigmas", 1.42e-2)):
        ours = sz.get_schedule(f"ays:{model}")(10, DISCRETE)
        torch.testing.assert_close(ours, torch.tensor(AysSchedules[key], dtype=torch.float64), rtol=rtol, atol=6e-4)


@pytest.mark.parametrize("n", [4, 10, 25])
def test_ays_interpolates_log_linearly_like_comfyui(n: int) -> None:
    table = np.array(AYS_SIGMAS["sdxl"])
    xs, new = np.linspace(0, 1, len(table)), np.linspace(0, 1, n + 1)
    expected = np.exp(np.interp(new, xs, np.log(table[::-1])))[::-1].copy()  # ComfyUI's loglinear_interp
    expected[-1] = 0
    torch.testing.assert_close(ays(n, DISCRETE, model_type="SDXL"), torch.from_numpy(expected), rtol=1e-12, atol=0)


def test_ays_needs_a_supported_model() -> None:
    with pytest.raises(sz.SamplerzooError, match="needs the model its steps were optimised for: ays:sd15"):
        sz.get_schedule("ays")(10, DISCRETE)
    with pytest.raises(sz.SamplerzooError, match=r"unknown Align Your Steps model 'flux'; .*known: .*sdxl"):
        sz.get_schedule("ays:flux")
    with pytest.raises(sz.SamplerzooError, match="schedule 'karras' takes no ':' argument"):
        sz.get_schedule("karras:7")
