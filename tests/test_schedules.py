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
from samplerzoo.published_schedules import (
    AYS_SIGMAS,
    ays,
    ddim_uniform,
    iddpm,
    iddpm_ladder,
    laplace,
    lcm_skipping,
)
from samplerzoo.schedules import SigmaRange, exponential, karras, leading, linspace, polyexponential, trailing, vp
from samplerzoo.time_schedules import normal

TABLE = DiscreteVP.linear_betas().sigma_table
DISCRETE = SigmaRange(float(TABLE[0]), float(TABLE[-1]), TABLE)


ARGUMENTS = {"ays": "ays:sd15", "optimal_steps": "optimal_steps:wan"}
"""Schedules that need an argument, as a user names them; ``file`` is tested with the files zoo tune writes."""
MOST_STEPS = {"sd_turbo": 10}
"""Schedules with a fixed ladder: more steps are a one-line error."""


@pytest.mark.parametrize("name", sorted(set(sz.get_schedules()) - {"file"}))
@pytest.mark.parametrize("n", [1, 2, 10, 37])
def test_schedule_decreases_and_ends_in_zero(name: str, n: int) -> None:
    schedule = sz.get_schedule(ARGUMENTS.get(name, name))
    if n > MOST_STEPS.get(name, n):
        with pytest.raises(sz.SamplerzooError, match=f"allows at most {MOST_STEPS[name]} steps, got {n}"):
            schedule(n, DISCRETE)
        return
    sigmas = schedule(n, DISCRETE)
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


@pytest.mark.parametrize(("n", "original_steps"), [(1, 50), (2, 50), (3, 50), (4, 50), (7, 50), (8, 50), (50, 50),
                                                (4, 20), (6, 35), (3, 1000)])
def test_lcm_skipping_is_lcm_schedulers_timesteps(n: int, original_steps: int) -> None:
    from diffusers import LCMScheduler

    scheduler = LCMScheduler(num_train_timesteps=1000, original_inference_steps=original_steps)
    scheduler.set_timesteps(n)
    torch.testing.assert_close(lcm_skipping(n, DISCRETE, original_steps=original_steps)[:-1],
                               TABLE[torch.as_tensor(scheduler.timesteps).long()])


def test_lcm_skipping_refuses_more_steps_than_its_grid() -> None:
    with pytest.raises(sz.SamplerzooError, match="at most original_steps = 50 steps, got 51"):
        lcm_skipping(51, DISCRETE)
    with pytest.raises(sz.SamplerzooError, match=r"original_steps 0: accepted 1\.\.1000"):
        lcm_skipping(4, DISCRETE, original_steps=0)


def test_linspace_interpolates_fractional_timesteps() -> None:
    log_mid = linspace(3, DISCRETE)[1]
    assert log_mid == pytest.approx(math.exp((math.log(TABLE[499]) + math.log(TABLE[500])) / 2))
    assert linspace(3, DISCRETE, interpolation="linear")[1] == pytest.approx(float(TABLE[499] + TABLE[500]) / 2)
    assert linspace(2, DISCRETE)[0] == pytest.approx(float(TABLE[-1]), rel=1e-14)


def diff_samplers_discrete(alphas_cumprod: torch.Tensor, sigma_min: float, sigma_max: float, num_steps: int
                           ) -> torch.Tensor:
    """diff-sampler's get_schedule(schedule_type='discrete', schedule_rho=1) on its LDM wrapper, written out:
    DPM-Solver's discrete NoiseScheduleVP (t_n = (n + 1) / N, log alpha_t piecewise linear), t evenly spaced from
    sigma_inv(sigma_max) to sigma_inv(sigma_min), then sigma(t) = sqrt(1 - alpha^2) / alpha."""
    t_array = torch.linspace(0, 1, len(alphas_cumprod) + 1, dtype=torch.float64)[1:]
    log_alpha = 0.5 * alphas_cumprod.double().log()

    def sigma_inv(sigma: float) -> torch.Tensor:
        target = -0.5 * torch.logaddexp(torch.zeros(()), torch.tensor(2 * math.log(sigma), dtype=torch.float64))
        return torch.tensor(float(np.interp(target, log_alpha.flip(0).numpy(), t_array.flip(0).numpy())),
                            dtype=torch.float64)

    t_max, t_min = sigma_inv(sigma_max), sigma_inv(sigma_min)
    t = t_max + torch.arange(num_steps, dtype=torch.float64) / (num_steps - 1) * (t_min - t_max)
    la = torch.from_numpy(np.interp(t.numpy(), t_array.numpy(), log_alpha.numpy()))
    return (1 - (2 * la).exp()).sqrt() / la.exp()


@pytest.mark.parametrize("n", [2, 5, 18, 61])
def test_discrete_is_diff_samplers_and_dpm_solvers_time_uniform(n: int) -> None:
    alphas_cumprod = 1 / (1 + TABLE.double() ** 2)
    theirs = diff_samplers_discrete(alphas_cumprod, float(TABLE[0]), float(TABLE[-1]), n)
    ours = sz.get_schedule("discrete")(n, DISCRETE)
    assert float(ours[-1]) == 0
    torch.testing.assert_close(ours[:-1], theirs, rtol=1e-9, atol=0)
    assert not torch.allclose(ours, linspace(n, DISCRETE), rtol=1e-9, atol=0) or n == 2  # not k-diffusion's log sigma


def test_bad_requests_are_one_clear_line() -> None:
    with pytest.raises(sz.SamplerzooError, match="schedule 'leading' needs a discrete-time model"):
        leading(10, SigmaRange())
    with pytest.raises(sz.SamplerzooError, match="a schedule needs at least 1 step, got 0"):
        karras(0, SigmaRange())
    with pytest.raises(sz.SamplerzooError, match="'trailing' spacing allows at most 1000 steps, got 1001"):
        trailing(1001, DISCRETE)


# --- against the reference implementations: k-diffusion's get_sigmas_* and DiscreteSchedule -------------------

# ("karras", {}): our default rho is k-diffusion's (7, Karras et al. 2022's), which every sampler test relies on.
@pytest.mark.parametrize(("name", "options"), [("karras", {"rho": 7.0}), ("karras", {}), ("exponential", {}),
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



OPTIMAL_STEPS_FLUX = [0.9968, 0.9886, 0.9819, 0.975, 0.966, 0.9471, 0.9158, 0.8287, 0.5512, 0.2808, 0.001]
"""ComfyUI's OptimalStepsScheduler NOISE_LEVELS["FLUX"] (flow times), as published there."""
OPTIMAL_STEPS_WAN_HEAD, OPTIMAL_STEPS_CHROMA_TAIL = [1.0, 0.997, 0.995, 0.993], [0.07, 0.058, 0.048, 0.001]


def comfy_loglinear(table: list[float], count: int) -> np.ndarray:
    """ComfyUI's loglinear_interp: np.interp of log levels, ascending, at ``count`` even positions."""
    xs, new = np.linspace(0, 1, len(table)), np.linspace(0, 1, count)
    return np.exp(np.interp(new, xs, np.log(np.array(table)[::-1])))[::-1].copy()


@pytest.mark.parametrize("n", [3, 10, 16, 30])
def test_optimal_steps_are_comfyuis_flux_times_as_sigmas(n: int) -> None:
    times = np.array(OPTIMAL_STEPS_FLUX) if n == 10 else comfy_loglinear(OPTIMAL_STEPS_FLUX, n + 1)
    times[-1] = 0  # ComfyUI's node ends in 0; t = 0 is sigma = 0
    expected = torch.from_numpy(times / (1 - times))  # flow time t to sigma
    torch.testing.assert_close(sz.get_schedule("optimal_steps:FLUX")(n, DISCRETE), expected, rtol=1e-12, atol=0)


def test_optimal_steps_tables_of_wan_and_chroma() -> None:
    wan = sz.get_schedule("optimal_steps:Wan")(20, DISCRETE)
    assert math.isinf(wan[0]) and len(wan) == 21  # Wan's 20 published steps start at t = 1: pure noise
    torch.testing.assert_close(wan[1:4], torch.tensor([t / (1 - t) for t in OPTIMAL_STEPS_WAN_HEAD[1:]],
                                                      dtype=torch.float64))
    chroma = sz.get_schedule("optimal_steps:chroma")(40, DISCRETE)
    torch.testing.assert_close(chroma[-4:-1], torch.tensor([t / (1 - t) for t in OPTIMAL_STEPS_CHROMA_TAIL[:3]],
                                                           dtype=torch.float64))
    with pytest.raises(sz.SamplerzooError, match=r"unknown OptimalSteps model 'sdxl'; .*known: chroma, flux, wan"):
        sz.get_schedule("optimal_steps:sdxl")
    with pytest.raises(sz.SamplerzooError, match="needs the model its steps were found for: optimal_steps:flux"):
        sz.get_schedule("optimal_steps")(10, DISCRETE)


@pytest.mark.parametrize("n", [1, 4, 10])
def test_sd_turbo_is_comfyuis_ladder(n: int) -> None:
    timesteps = torch.flip(torch.arange(1, 11) * 100 - 1, (0,))[:n]  # ComfyUI's SDTurboScheduler at denoise 1
    expected = torch.cat([TABLE[timesteps], torch.zeros(1, dtype=TABLE.dtype)])
    torch.testing.assert_close(sz.get_schedule("sd_turbo")(n, DISCRETE), expected)
    with pytest.raises(sz.SamplerzooError, match="schedule 'sd_turbo' needs a discrete-time model"):
        sz.get_schedule("sd_turbo")(n, SigmaRange())


def scaled_linear_model() -> tuple[object, SigmaRange]:
    """diffusers' SD scaled-linear EulerDiscreteScheduler and the same trained sigmas as a samplerzoo model."""
    from diffusers import EulerDiscreteScheduler

    config = {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012}
    alphas_cumprod = EulerDiscreteScheduler(**config).alphas_cumprod.double()
    table = ((1 - alphas_cumprod) / alphas_cumprod).sqrt()
    return config, SigmaRange(float(table[0]), float(table[-1]), table)


@pytest.mark.parametrize("n", [2, 5, 30])  # at 1 step diffusers' linspace spacing has only timestep 0 to map from
def test_beta_sigmas_and_exponential_match_diffusers(n: int) -> None:
    from diffusers import EulerDiscreteScheduler

    config, model = scaled_linear_model()
    beta_sigmas = sz.get_schedule("beta_sigmas")
    for option, ours in (("use_beta_sigmas", beta_sigmas), ("use_exponential_sigmas", exponential)):
        scheduler = EulerDiscreteScheduler(**config, **{option: True})
        scheduler.set_timesteps(n)
        torch.testing.assert_close(ours(n, model), scheduler.sigmas.double(), rtol=2e-6, atol=1e-7)
    # It is not ComfyUI's beta, which picks trained levels at the quantiles' timesteps.
    assert not torch.allclose(beta_sigmas(5, model), sz.get_schedule("beta")(5, model), rtol=1e-2)



GITS_COMFYUI = {
    ("1.20", 10): [14.61464119, 5.85520077, 2.84484982, 1.67050016, 1.08895338, 0.74807048, 0.50118381, 0.32104823,
                   0.19894916, 0.09824532, 0.02916753],
    ("0.80", 2): [14.61464119, 7.49001646, 0.02916753],
    ("1.50", 5): [14.61464119, 1.24153244, 0.54755926, 0.25053367, 0.09824532, 0.02916753],
    ("1.00", 20): [14.61464119, 12.2308979, 9.24142551, 8.30717278, 7.49001646, 6.77309084, 5.85520077, 5.09240818,
                   4.26497746, 3.60512662, 2.95596409, 2.45070267, 1.91321158, 1.51179266, 1.12534678, 0.83188516,
                   0.59516323, 0.38853383, 0.22545385, 0.09824532, 0.02916753],
}
"""Rows of ComfyUI's GITSScheduler NOISE_LEVELS[coeff][steps - 2], as published there."""


@pytest.mark.parametrize(("coeff", "n"), sorted(GITS_COMFYUI))
def test_gits_is_comfyuis_published_table(coeff: str, n: int) -> None:
    expected = torch.tensor([*GITS_COMFYUI[coeff, n][:-1], 0.0], dtype=torch.float64)  # ComfyUI ends in 0
    torch.testing.assert_close(sz.get_schedule(f"gits:{coeff}")(n, DISCRETE), expected, rtol=0, atol=0)


def test_gits_interpolates_its_20_step_table_beyond_20_steps() -> None:
    expected = comfy_loglinear(GITS_COMFYUI["1.00", 20], 33)
    expected[-1] = 0
    torch.testing.assert_close(sz.get_schedule("gits:1")(32, DISCRETE), torch.from_numpy(expected), rtol=1e-12, atol=0)
    assert torch.equal(sz.get_schedule("gits")(10, DISCRETE), sz.get_schedule("gits:1.2")(10, DISCRETE))  # default


def test_gits_tables_are_sd15_levels_on_a_10_step_grid() -> None:
    # Every published level lies within 0.17% of SD1.5's trained sigma at timestep 0, 10, ..., 490 or 499, 509, ...,
    # 999 (GITS' search grid, 10 timesteps apart from each end); a corrupted entry of the data file would not.
    from samplerzoo.gits_schedules import gits_tables

    _, sd15 = scaled_linear_model()
    assert sd15.sigma_table is not None
    grid = sd15.sigma_table[[*range(0, 500, 10), *range(499, 1000, 10)]]
    tables = gits_tables()
    assert sorted(tables) == [f"{0.8 + 0.05 * k:.2f}" for k in range(15)]
    for coeff, rows in tables.items():
        assert [len(row) for row in rows] == list(range(3, 22)), coeff
        levels = torch.tensor([level for row in rows for level in row], dtype=torch.float64)
        assert ((levels[:, None] / grid[None, :] - 1).abs().min(dim=1).values < 1.7e-3).all(), coeff
    with pytest.raises(sz.SamplerzooError, match=r"unknown GITS coefficient '1.23'; .*known: 0.80, 0.85"):
        sz.get_schedule("gits:1.23")
