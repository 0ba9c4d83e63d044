"""Flow matching and infinite-noise starts: rectified flow, TrigFlow and zero-terminal-SNR VP in the sigma frame.

The test networks are written in each model's own frame (flow time t, TrigFlow angle, VP timestep), from the exact
posterior mean of a Gaussian mixture (``analytic.py``), independently of the adapters: the adapter's D must be that
posterior mean again, at finite sigma and at sigma = inf (where the denoiser is given the unit noise).
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import Tensor

import samplerzoo as sz
from samplerzoo import testing
from samplerzoo.adapters import NetworkDenoiser
from samplerzoo.checkpoints.betas import alphas_cumprod
from samplerzoo.flow import FlowMatch, TimeShift, TrigFlow, dynamic_mu
from samplerzoo.noise_schedules import EDM, DiscreteVP
from samplerzoo.sampling import generate, run_sampler

MIXTURE = sz.GaussianMixture(torch.tensor([[1.0, -0.5, 0.2], [-1.2, 0.4, 0.9]], dtype=torch.float64),
                             torch.tensor([0.3, 0.6], dtype=torch.float64), torch.tensor([0.35, 0.65]))
INF = math.inf
ZSNR = {"beta_schedule": "linear", "beta_start": 1e-4, "beta_end": 0.02, "rescale_betas_zero_snr": True}


def posterior_mean(x_scaled: Tensor, alpha: Tensor, noise_scale: Tensor) -> Tensor:
    """E[x0 | alpha x0 + noise_scale eps = x_scaled], from the mixture's exact denoiser at sigma = noise_scale / alpha
    (the prior mean where alpha = 0)."""
    sigma = torch.where(alpha > 0, noise_scale / alpha, torch.full_like(alpha, INF))
    x = torch.where(alpha > 0, x_scaled / alpha.clamp_min(1e-300), x_scaled / noise_scale)
    return MIXTURE(x, sigma.flatten())


def rectified_flow_net(x_t: Tensor, timestep: Tensor) -> Tensor:
    """The exact velocity eps - x0 on x_t = (1 - t) x0 + t eps, timestep = 1000 t (diffusers' FlowMatch)."""
    t = (timestep / 1000).reshape(-1, 1)
    x0 = posterior_mean(x_t, 1 - t, t)
    return (x_t - (1 - t) * x0) / t - x0


def trigflow_net(x_in: Tensor, t: Tensor, sigma_d: float = 0.5) -> Tensor:
    """sCM's F: sigma_d F = cos(t) z - sin(t) x0 on x_t = cos(t) x0 + sin(t) z, given x_t / sigma_d."""
    t = t.reshape(-1, 1)
    x_t = sigma_d * x_in
    alpha = torch.where(t >= math.pi / 2, torch.zeros_like(t), t.cos())  # cos of the float pi/2 is 6e-17
    x0 = posterior_mean(x_t, alpha, t.sin() * sigma_d)
    z = (x_t - alpha * x0) / t.sin()
    return (alpha * z - t.sin() * x0) / sigma_d


def zsnr_v_net(x_vp: Tensor, timestep: Tensor, table: Tensor) -> Tensor:
    """v = sqrt(ab) eps - sqrt(1 - ab) x0 at an integer timestep of a zero-terminal-SNR table (ab = 0 at the end)."""
    alpha_bar = (1 / (1 + table[timestep.round().long()] ** 2)).reshape(-1, 1)
    alpha, noise_scale = alpha_bar.sqrt(), (1 - alpha_bar).sqrt()
    x0 = posterior_mean(x_vp, alpha, noise_scale)
    eps = (x_vp - alpha * x0) / noise_scale
    return alpha * eps - noise_scale * x0


ZSNR_SCHEDULE = DiscreteVP.linear_betas(zero_terminal_snr=True)
MODELS = {
    "flow": lambda: NetworkDenoiser(rectified_flow_net, "flow", FlowMatch()),
    "flow_shift3": lambda: NetworkDenoiser(rectified_flow_net, "flow_prediction", FlowMatch(time_shift=TimeShift(3.0))),
    "trigflow": lambda: NetworkDenoiser(trigflow_net, "trigflow", TrigFlow()),
    "zsnr_v": lambda: NetworkDenoiser(lambda x, t: zsnr_v_net(x, t, ZSNR_SCHEDULE.sigma_table), "v", ZSNR_SCHEDULE),
}


@pytest.mark.parametrize("name", MODELS)
def test_adapter_gives_the_exact_posterior_mean(name: str) -> None:
    model = MODELS[name]()
    generator = torch.Generator().manual_seed(0)
    levels = [float(model.sigma_table[i]) for i in (3, 400, 998)] if name == "zsnr_v" else [0.05, 0.7, 4.0, 300.0]
    for sigma in [*levels, INF]:
        n = torch.randn(6, 3, generator=generator, dtype=torch.float64)
        s = torch.full((6,), sigma, dtype=torch.float64)
        x = n if sigma == INF else MIXTURE.sample(6, generator) + sigma * n  # at inf: the normalised state
        torch.testing.assert_close(model(x, s), MIXTURE(x, s), atol=1e-9, rtol=0)


@pytest.mark.parametrize("schedule", [FlowMatch(), FlowMatch(time_shift=TimeShift(mu=0.8)), TrigFlow(), ZSNR_SCHEDULE])
def test_schedules_reaching_infinity_feed_the_network_the_unit_noise(schedule: object) -> None:
    """The adapter's convention at sigma = inf: lim sigma c_in = 1 (the network input is the start noise)."""
    assert math.isinf(schedule.sigma_max)  # type: ignore[attr-defined]
    sigma = torch.tensor([1e6, 1e9], dtype=torch.float64)
    torch.testing.assert_close(sigma * schedule.c_in(sigma), torch.ones(2, dtype=torch.float64), rtol=1e-5, atol=0)
    assert torch.isfinite(schedule.c_noise(torch.tensor([INF], dtype=torch.float64))).all()  # type: ignore[attr-defined]


def test_zero_terminal_snr_option_is_the_config_key() -> None:
    assert torch.equal(ZSNR_SCHEDULE.alphas_cumprod, alphas_cumprod(ZSNR, "test"))
    assert ZSNR_SCHEDULE.alphas_cumprod[-1] == 0 and math.isinf(ZSNR_SCHEDULE.sigma_max)
    assert math.isfinite(DiscreteVP.linear_betas().sigma_max)


def test_predictions_without_a_limit_at_infinity_say_so() -> None:
    """Before any work: run_sampler asks the model once (the adapter itself never syncs to look)."""
    euler, start = sz.get_sampler("euler"), torch.zeros(1, 3)
    sigmas = torch.tensor([INF, 1.0, 0.0], dtype=torch.float64)
    epsilon = NetworkDenoiser(lambda x, t: x, "epsilon", ZSNR_SCHEDULE)
    with pytest.raises(sz.SamplerzooError, match=r"^epsilon prediction is undefined at sigma = inf \(zero terminal "
                                                 r"SNR\).*use v, flow or x0 prediction$"):
        run_sampler(euler, epsilon, start, sigmas)
    with pytest.raises(sz.SamplerzooError, match=r"^the schedule starts at sigma = inf, but this model ends at "
                                                 r"sigma_max = 80$"):
        run_sampler(euler, NetworkDenoiser(lambda x, t: x, "edm", EDM()), start, sigmas)
    with pytest.raises(sz.SamplerzooError, match=r"^this checkpoint was trained up to sigma_max = 80 \(EDM\); it "
                                                 r"cannot be evaluated at sigma = inf$"):
        NetworkDenoiser(lambda x, t: x, "edm", EDM()).check_infinite_sigma()


def test_constant_shift_scales_sigma_and_is_the_exponential_shift_of_log_s() -> None:
    """SD3's t' = s t / (1 + (s - 1) t) is sigma' = s sigma (Esser et al. 2024, Eq. 23), and Flux's exponential
    shift with mu = log s is the same map."""
    t = torch.linspace(0.01, 0.99, 50, dtype=torch.float64)
    shifted = TimeShift(3.0)(t)
    torch.testing.assert_close(shifted / (1 - shifted), 3 * t / (1 - t))
    torch.testing.assert_close(TimeShift(mu=math.log(3.0))(t), shifted)
    assert dynamic_mu(256) == pytest.approx(0.5) and dynamic_mu(4096) == pytest.approx(1.15)
    assert dynamic_mu(1024) == pytest.approx(0.5 + 0.65 * 768 / 3840)


def test_logit_normal_training_times_are_log_normal_sigmas() -> None:
    """SD3's t = sigmoid(m + s z) is sigma = t / (1 - t) = e^(m + s z): log sigma ~ N(0, 1) for m = 0, s = 1."""
    log_sigma = FlowMatch().training_sigmas(40000, torch.Generator().manual_seed(1)).double().log()
    assert abs(float(log_sigma.mean())) < 0.03 and float(log_sigma.std()) == pytest.approx(1.0, abs=0.02)
    shifted = FlowMatch(time_shift=TimeShift(3.0)).training_sigmas(40000, torch.Generator().manual_seed(1))
    assert float(shifted.double().log().mean()) == pytest.approx(math.log(3.0), abs=0.03)


def flow_euler(model: NetworkDenoiser, noise: Tensor, times: Tensor) -> Tensor:
    """Flow Euler as published, in t: x_t' = x_t + (t' - t) v(x_t, t), from x_1 = noise."""
    x_t = noise
    for t, t_next in itertools.pairwise(times):
        x_t = x_t + (t_next - t) * rectified_flow_net(x_t, torch.full((len(x_t),), 1000 * float(t), dtype=x_t.dtype))
    return x_t


def test_flow_euler_is_euler_in_the_sigma_frame() -> None:
    model = MODELS["flow_shift3"]()
    noise = sz.SeededNoise(range(8), (3,), dtype=torch.float64).randn()
    sigmas = sz.get_schedule("normal")(12, model)
    times = sigmas / (1 + sigmas)
    times[0] = 1.0
    ours = run_sampler(sz.get_sampler("flow_euler"), model, noise, sigmas)
    torch.testing.assert_close(ours, flow_euler(model, noise, times), atol=1e-12, rtol=0)
    assert sz.get_sampler("FlowMatchEulerDiscreteScheduler").name == "euler"


def test_the_first_step_from_infinity_is_the_limit_of_ddim() -> None:
    """D(n; inf) + sigma_1 n is DDIM from sigma_0 -> inf along x = sigma_0 n (float64, sigma_0 = 1e7)."""
    model = MODELS["flow"]()
    noise = sz.SeededNoise(range(4), (3,), dtype=torch.float64).randn()
    sigmas = torch.tensor([INF, 5.0, 0.0], dtype=torch.float64)
    ours = run_sampler(sz.get_sampler("ddim"), model, noise, sigmas)
    far = sigmas.clone()
    far[0] = 1e7
    torch.testing.assert_close(ours, sz.get_sampler("ddim").fn(model, noise * 1e7, far), atol=1e-6, rtol=0)


@pytest.mark.parametrize(("sampler", "nfe", "steps", "final"), [
    ("heun", 8, 5, "zero"), ("heun", 9, 5, "sigma_min"), ("dpmpp_2m", 10, 10, "zero"), ("euler", 1, 1, "zero"),
    ("flow_heun", 9, 5, "zero"), ("lcm", 4, 4, "zero"), ("pndm", 14, 5, "zero"),
])
def test_budget_from_infinity_counts_the_first_step(sampler: str, nfe: int, steps: int, final: str) -> None:
    """heun from inf spends 1 + (2(N - 1) - 1): even budgets land on 0; flow_heun takes the step itself (2N - 1)."""
    model, seen = MODELS["flow"](), []
    run = generate(model, sampler, nfe, range(3), (3,), schedule="normal", dtype=torch.float64,
                   callback=lambda info: seen.append(info["i"]))
    assert (run.counted_nfe, run.steps, run.final_step) == (nfe, steps, final)
    first = 0 if sz.get_sampler(sampler).starts_at_infinity else 1  # the step from infinity reports no callback
    assert seen == list(range(first, steps)) and run.first_nonfinite_step is None, seen
    assert math.isinf(float(run.sigmas[0])) and torch.isfinite(run.samples).all()
    if nfe == 1:  # one evaluation from pure noise: the posterior mean at infinity, the prior mean
        prior_mean = (MIXTURE.weights[:, None] * MIXTURE.means).sum(0)
        torch.testing.assert_close(run.samples, prior_mean.expand(3, 3), atol=1e-12, rtol=0)


def test_an_unreachable_budget_from_infinity_says_the_step_from_infinity_is_counted() -> None:
    """pc (2 calls a step) from inf: NFE 10 leaves 9 for its steps; the line says so, so 8 and 10 are not read as
    totals (they are 9 and 11)."""
    with pytest.raises(sz.UnreachableNFEError, match=r"NFE 9 is unreachable; nearest reachable: 8, 10 .*first call of "
                                                     r"NFE 10 is the step from sigma = inf; add 1"):
        generate(MODELS["flow"](), "pc", 10, range(2), (3,), schedule="normal")


def test_schedules_start_where_the_model_starts() -> None:
    flow = MODELS["flow"]()
    vp = NetworkDenoiser(lambda x, t: x, "epsilon", DiscreteVP.linear_betas())
    edm = NetworkDenoiser(lambda x, t: x, "edm", EDM())
    for name in ("simple", "normal", "sgm_uniform", "beta", "kl_optimal", "linear_quadratic", "trailing"):
        assert math.isinf(float(sz.get_schedule(name)(7, flow)[0])), name
    assert float(sz.get_schedule("karras")(7, flow)[0]) == pytest.approx(999.0)  # the largest finite trained level
    for model in (vp, edm):
        for name in ("simple", "normal", "sgm_uniform", "beta", "kl_optimal", "linear_quadratic"):
            sigmas = sz.get_schedule(name)(7, model)
            assert len(sigmas) == 8 and sigmas[-1] == 0 and (sigmas[1:] < sigmas[:-1]).all(), name
            assert float(sigmas[0]) <= model.sigma_max * (1 + 1e-9) and float(sigmas[-2]) >= model.sigma_min * 0.999


def test_comfyui_schedule_formulas() -> None:
    flow = MODELS["flow_shift3"]()
    times = torch.tensor([1 - k / 8 for k in range(8)], dtype=torch.float64)
    shifted = 3 * times / (1 + 2 * times)
    torch.testing.assert_close(sz.get_schedule("simple")(8, flow)[1:-1], (shifted / (1 - shifted))[1:])
    kl = sz.get_schedule("kl_optimal")(5, sz.schedules.SigmaRange(0.002, 80.0))
    ramp = torch.linspace(0, 1, 5, dtype=torch.float64)
    torch.testing.assert_close(kl[:-1], (ramp * math.atan(0.002) + (1 - ramp) * math.atan(80.0)).tan())
    from scipy.stats import beta

    table = DiscreteVP.linear_betas().sigma_table
    indices = [round(float(beta.ppf(1 - k / 6, 0.6, 0.6)) * 999) for k in range(6)]
    torch.testing.assert_close(sz.get_schedule("beta")(6, sz.schedules.SigmaRange(0.01, 157.4, table))[:-1],
                               table[indices])
    vp = sz.schedules.SigmaRange(float(table[0]), float(table[-1]), table)  # ComfyUI's normal on a VP model is
    torch.testing.assert_close(sz.get_schedule("normal")(7, vp), sz.schedules.linspace(7, vp))  # our linspace
    torch.testing.assert_close(sz.get_schedule("sgm_uniform")(7, vp)[:-1], sz.schedules.linspace(8, vp)[:-2])
    lq = sz.get_schedule("linear_quadratic")(8, flow)  # Mochi: 4 linear steps of 0.025 / 4 in t, then quadratic
    t = 1 / (1 + 1 / lq)  # flow time, 1 at sigma = inf
    torch.testing.assert_close(t[:5], torch.tensor([1, 1 - 0.025 / 4, 1 - 0.05 / 4, 1 - 0.075 / 4, 1 - 0.025],
                                                   dtype=torch.float64))
    assert float(t[-2]) > 0 and t[-1] == 0


def test_lcm_law_on_the_gaussian() -> None:
    """Consistency sampling with a posterior-mean denoiser: V' = r^2 V + sigma'^2, r = s^2 / (s^2 + sigma^2), mean
    mu + r (m - mu); the sample moments follow that law, not the data's (4000 x 4 samples)."""
    problem = testing.gaussian_problem()
    sigmas = sz.schedules.karras(10, sz.schedules.SigmaRange(0.01, 20.0))
    noise = sz.SeededNoise(range(4000), problem.sample_shape, dtype=torch.float64)
    samples = sz.get_sampler("lcm").fn(problem, noise.randn() * 20.0, sigmas, noise=noise)
    mean, var = 0.0, 400.0
    for sigma, sigma_next in zip(sigmas[:-1].tolist(), sigmas[1:].tolist(), strict=True):
        r = 0.25 / (0.25 + sigma**2)
        mean, var = 0.3 + r * (mean - 0.3), r**2 * var + sigma_next**2
    assert float(samples.mean()) == pytest.approx(mean, abs=0.004 * 4)
    assert float(samples.std()) == pytest.approx(math.sqrt(var), abs=0.003 * 4) and math.sqrt(var) < 0.45


def rf_split_in_t(t: float, t_next: float, eta: float) -> tuple[float, float]:
    """ComfyUI's rectified-flow downstep in its own frame: (t_down, renoise coefficient)."""
    t_down = t_next * (1 + (t_next / t - 1) * eta)
    return t_down, math.sqrt(max(t_next**2 - t_down**2 * (1 - t_next) ** 2 / (1 - t_down) ** 2, 0.0))


def ancestral_rf_in_t(sampler: str, x_t: Tensor, times: list[float], draws: list[Tensor], eta: float) -> Tensor:
    """ComfyUI's euler_ancestral_RF / dpm_2_ancestral_RF / dpmpp_2s_ancestral_RF, transcribed from their equations
    in flow time (x_t, t), on the exact flow velocity."""
    def denoised(x: Tensor, t: float) -> Tensor:
        return x - t * rectified_flow_net(x, torch.full((len(x),), 1000 * t, dtype=x.dtype))

    for i, (t, t_next) in enumerate(itertools.pairwise(times)):
        d0 = denoised(x_t, t)
        t_down, renoise = rf_split_in_t(t, t_next, eta)
        if t_next == 0:
            x_t = d0
            continue
        if sampler == "euler_ancestral_rf":
            x_t = (t_down / t) * x_t + (1 - t_down / t) * d0
        elif sampler == "dpm_2_ancestral_rf":
            t_mid = math.sqrt(t * t_down)
            x_mid = x_t + (x_t - d0) / t * (t_mid - t)
            x_t = x_t + (x_mid - denoised(x_mid, t_mid)) / t_mid * (t_down - t)
        else:
            lam, lam_down = (math.log((1 - u) / u) if u < 1 else -INF for u in (t, t_down))
            t_s = 0.9999 if t == 1 else 1 / (1 + math.exp((lam + lam_down) / 2))
            u = (t_s / t) * x_t + (1 - t_s / t) * d0
            x_t = (t_down / t) * x_t + (1 - t_down / t) * denoised(u, t_s)
        x_t = (1 - t_next) / (1 - t_down) * x_t + draws[i] * renoise
    return x_t


@pytest.mark.parametrize("sampler", ["euler_ancestral_rf", "dpm_2_ancestral_rf", "dpmpp_2s_ancestral_rf"])
@pytest.mark.parametrize("eta", [1.0, 0.5])
def test_rectified_flow_ancestral_samplers_are_comfyuis_in_flow_time(sampler: str, eta: float) -> None:
    model = MODELS["flow_shift3"]()
    sigmas = sz.get_schedule("simple")(6, model)
    times = [1.0, *(float(s / (1 + s)) for s in sigmas[1:])]
    start = sz.SeededNoise(range(5), (3,), dtype=torch.float64).randn()
    draws = [sz.SeededNoise(range(10 + i, 15 + i), (3,), dtype=torch.float64).randn() for i in range(6)]
    given = iter(draws)
    ours = run_sampler(sz.get_sampler(sampler), model, start, sigmas, lambda s, s_next: next(given), eta=eta)
    torch.testing.assert_close(ours, ancestral_rf_in_t(sampler, start, times, draws, eta), atol=1e-10, rtol=0)


@pytest.mark.parametrize("name", ["euler_ancestral_rf", "dpm_2_ancestral_rf", "dpmpp_2s_ancestral_rf"])
def test_rectified_flow_ancestral_samplers_reach_the_target(name: str) -> None:
    from samplerzoo import conformance

    conformance.check_reaches_target(sz.get_sampler(name), n=1000, steps=(30, 120))


def test_flow_config_bad_input_is_one_line(tmp_path: object) -> None:
    from samplerzoo.flow import flow_match_from_config

    for config, message in [
        ({"time_shift_type": "cubic"}, "cfg: unknown time_shift_type 'cubic'; known: exponential, linear"),
        ({"shift": 0.0}, "cfg: shift must be > 0, got 0.0"),
        ({"shift": -2}, "cfg: shift must be > 0, got -2"),
        ({"shift_terminal": 1.5}, "cfg: shift_terminal 1.5 is not a flow time; flow times (diffusers' sigmas) lie in "
                                  "(0, 1]"),
        ({"sigma_max": 2.0}, "cfg: sigma_max 2.0 is not a flow time"),
        ({"use_dynamic_shifting": True, "time_shift_type": "linear", "base_shift": -1.0, "max_shift": -0.5},
         "cfg: a linear time shift needs mu > 0"),
    ]:
        with pytest.raises(sz.CheckpointError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
            flow_match_from_config(config, "cfg", image_seq_len=16)
    with pytest.raises(sz.SamplerzooError, match=r"^schedule 'normal': shift and mu apply to flow models only$"):
        sz.get_schedule("normal")(4, sz.schedules.SigmaRange(), shift=3.0)
    with pytest.raises(sz.SamplerzooError, match=r"^schedule 'karras' needs a finite sigma_max"):
        sz.get_schedule("karras")(4, MODELS["trigflow"]())
    with pytest.raises(sz.SamplerzooError, match=r"^linear_quadratic needs 0 < linear_steps < 4 steps, got 4$"):
        sz.get_schedule("linear_quadratic")(4, MODELS["flow"](), linear_steps=4)
    with pytest.raises(sz.SamplerzooError, match=r"^the rectified-flow ancestral samplers need 0 <= eta <= 1, got 2"):
        generate(MODELS["flow"](), "euler_ancestral_rf", 4, [0], (3,), schedule="normal", dtype=torch.float64,
                 eta=2.0)

