"""Samplers published in flow time t, run in the sigma frame (rectified flow: x_t = (1 - t) x0 + t eps).

A flow state is x_t = x / (1 + sigma) at t = sigma / (1 + sigma) (``samplerzoo.flow``); at t = 1 (sigma = inf) it is
the unit noise, which is the state the Denoiser is given there. The flow ODE is dx_t/dt = v = (x_t - D) / t. Its
Euler step is DDIM, i.e. ``euler`` in sigma (x_t' = (1 - t') D + t' eps_hat for both), so flow Euler is registered
as aliases of ``euler``; Runge-Kutta steps with more stages differ between t and sigma and live here. These samplers
start at t = 1 themselves (``starts_at_infinity``), as diffusers' and ComfyUI's do.
"""

from __future__ import annotations

from torch import Tensor

from ..denoiser import Denoiser
from ..errors import SamplerzooError
from ..flow import flow_sigma, flow_time
from ..noise import NoiseSampler, gaussian_noise_like
from ..registry import SamplerSpec
from ..steps import Callback, ddim_step, denoise, notify
from .ancestral import ancestral_sampling
from .consistency import consistency_split
from .reference import HEUN, MIDPOINT, Tableau, combine, rk_stages

EULER = Tableau(c=(0,), a=((),), b=(1,))


def to_flow(x: Tensor, sigma: Tensor) -> Tensor:
    """x_t = x / (1 + sigma); at sigma = inf x already is x / sigma = x_t."""
    return x if bool(sigma.isinf()) else x / (1 + sigma)


def from_flow(x_t: Tensor, t: Tensor) -> Tensor:
    """x = x_t / (1 - t); at t = 1 the normalised state x_t itself."""
    return x_t if t == 1 else x_t / (1 - t)


def velocity(model: Denoiser, x_t: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """(v, D): the flow velocity (x_t - D) / t at (x_t, t) and the denoised sample it comes from."""
    denoised = denoise(model, from_flow(x_t, t), flow_sigma(t))
    return (x_t - denoised) / t, denoised


def flow_runge_kutta(model: Denoiser, x: Tensor, sigmas: Tensor, tableau: Tableau, callback: Callback | None,
                     euler_to_zero: bool) -> Tensor:
    """An explicit Runge-Kutta method in flow time on dx_t/dt = v(x_t, t), from the sigma-frame x at sigmas[0];
    with ``euler_to_zero`` the step to t = 0 is Euler (no stage at t = 0, where v is undefined)."""
    times = flow_time(sigmas)
    x_t = to_flow(x, sigmas[0])
    for i in range(len(sigmas) - 1):
        k1, denoised = velocity(model, x_t, times[i])
        notify(callback, from_flow(x_t, times[i]), i, sigmas[i], sigmas[i], denoised)
        method = EULER if euler_to_zero and sigmas[i + 1] == 0 else tableau
        h = times[i + 1] - times[i]
        stages = rk_stages(lambda y, t: velocity(model, y, t)[0], x_t, times[i], h, k1, method)
        x_t = combine(x_t, h, stages, method.b)
    return from_flow(x_t, times[-1])


def sample_flow_heun(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None,
                     callback: Callback | None = None) -> Tensor:
    """Heun's method in flow time t, Euler on the step to t = 0 (diffusers' FlowMatchHeunDiscreteScheduler; Heun
    1900 / Karras et al. 2022, Alg. 1, with t for sigma): N steps cost 2N - 1."""
    return flow_runge_kutta(model, x, sigmas, HEUN, callback, euler_to_zero=True)


def sample_flow_midpoint(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None,
                         callback: Callback | None = None) -> Tensor:
    """The explicit midpoint rule in flow time t, x_t' = x_t + h v(x_t + h/2 v, t + h/2) (Hairer, Norsett & Wanner
    1993, II.1; flow_matching's ODESolver(method="midpoint"), torchdiffeq's midpoint): 2 evaluations every step."""
    return flow_runge_kutta(model, x, sigmas, MIDPOINT, callback, euler_to_zero=False)


def rf_split(sigma: Tensor, sigma_next: Tensor, eta: float) -> tuple[Tensor, Tensor]:
    """ComfyUI's rectified-flow ancestral split: t_down = t_next (1 + (t_next / t - 1) eta), then the noise that
    restores sigma_next, sigma_up = sqrt(sigma_next^2 - sigma_down^2) (its renoise coefficient, divided by
    1 - t_next, in the sigma frame). eta = 0 is the deterministic step to sigma_next."""
    if not 0 <= eta <= 1:
        raise SamplerzooError(f"the rectified-flow ancestral samplers need 0 <= eta <= 1, got {eta}")
    t, t_next = flow_time(sigma), flow_time(sigma_next)
    sigma_down = flow_sigma(t_next * (1 + (t_next / t - 1) * eta))
    return sigma_down, (sigma_next**2 - sigma_down**2).clamp_min(0).sqrt()


def sample_euler_ancestral_rf(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None,
                              callback: Callback | None = None, eta: float = 1.0, s_noise: float = 1.0) -> Tensor:
    """Euler ancestral for rectified flow (ComfyUI's euler_ancestral_RF): DDIM to sigma_down of :func:`rf_split`,
    then fresh noise of std sigma_up."""
    return ancestral_sampling(model, x, sigmas, lambda i: rf_split(sigmas[i], sigmas[i + 1], eta), noise, callback,
                              s_noise)


def sample_dpm_2_ancestral_rf(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None,
                              callback: Callback | None = None, eta: float = 1.0, s_noise: float = 1.0) -> Tensor:
    """DPM-Solver-2 ancestral for rectified flow (ComfyUI's dpm_2_ancestral_RF): in flow time, an Euler stage to
    t_mid = sqrt(t t_down) and the step to t_down with the velocity there (its log-midpoint taken in t, as ComfyUI
    does for CONST models), then sigma_up noise; the step to t = 0 is Euler."""
    noise = noise or gaussian_noise_like(x)
    for i in range(len(sigmas) - 1):
        denoised = denoise(model, x, sigmas[i])
        notify(callback, x, i, sigmas[i], sigmas[i], denoised)
        sigma_down, sigma_up = rf_split(sigmas[i], sigmas[i + 1], eta)
        if sigma_down == 0:
            x = ddim_step(x, denoised, sigmas[i], sigma_down)
            continue
        t, t_down = flow_time(sigmas[i]), flow_time(sigma_down)
        c2 = float(((t * t_down).sqrt() - t) / (t_down - t))
        stage = Tableau(c=(0, c2), a=((), (c2,)), b=(0, 1))
        x_t, h = to_flow(x, sigmas[i]), t_down - t
        stages = rk_stages(lambda y, u: velocity(model, y, u)[0], x_t, t, h, (x_t - denoised) / t, stage)
        x = from_flow(combine(x_t, h, stages, stage.b), t_down) + noise(sigmas[i], sigmas[i + 1]) * (s_noise * sigma_up)
    return x


RF_FIRST_STAGE_T = 0.9999
"""ComfyUI's dpmpp_2s_ancestral_RF puts the stage of a step from t = 1 (where the log-SNR midpoint is at -inf too)
at t = 0.9999."""


def sample_dpmpp_2s_ancestral_rf(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None,
                                 callback: Callback | None = None, eta: float = 1.0, s_noise: float = 1.0) -> Tensor:
    """DPM-Solver++(2S) ancestral for rectified flow (ComfyUI's dpmpp_2s_ancestral_RF; Lu et al. 2022b, Alg. 1): DDIM
    to the log-SNR midpoint sqrt(sigma sigma_down), evaluate, DDIM to sigma_down with that D, sigma_up noise. In the
    sigma frame the flow log-SNR log((1 - t) / t) is -log sigma, so the stage is the usual 2S one."""
    noise = noise or gaussian_noise_like(x)
    for i in range(len(sigmas) - 1):
        denoised = denoise(model, x, sigmas[i])
        notify(callback, x, i, sigmas[i], sigmas[i], denoised)
        sigma_down, sigma_up = rf_split(sigmas[i], sigmas[i + 1], eta)
        if sigmas[i + 1] == 0:
            x = denoised
            continue
        infinite = bool(sigmas[i].isinf())
        sigma_s = flow_sigma(sigmas.new_tensor(RF_FIRST_STAGE_T)) if infinite else (sigmas[i] * sigma_down).sqrt()
        staged = denoise(model, ddim_step(x, denoised, sigmas[i], sigma_s), sigma_s)
        x = ddim_step(x, staged, sigmas[i], sigma_down)
        if sigma_up > 0:
            x = x + noise(sigmas[i], sigmas[i + 1]) * (s_noise * sigma_up)
    return x


def sample_lcm(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None,
               callback: Callback | None = None) -> Tensor:
    """Multistep consistency sampling, x_{i+1} = D(x_i, sigma_i) + sigma_{i+1} z (Song et al. 2023, Consistency
    Models, Alg. 1; Luo et al. 2023, LCM): in flow time x_t' = (1 - t') D + t' z, diffusers' FlowMatchLCMScheduler and
    FlowMatchEulerDiscreteScheduler(stochastic_sampling=True), and sCM's TrigFlow multistep sampler (SCMScheduler).

    Meant for consistency-distilled models, whose D is a sample; with a posterior-mean denoiser (any diffusion
    model, the exact one included) the samples are under-dispersed: on N(mu, s^2) the variance follows
    V' = r^2 V + sigma_next^2, r = s^2 / (s^2 + sigma^2), instead of staying s^2 + sigma^2.
    """
    return ancestral_sampling(model, x, sigmas, lambda i: consistency_split(sigmas[i + 1], 0.0), noise, callback)


ESSER = "Esser et al. 2024, Scaling Rectified Flow Transformers for High-Resolution Image Synthesis (SD3)"
SPECS = [
    SamplerSpec("flow_heun", sample_flow_heun, order=2, stochastic=False, evals_per_step=2, final_step_evals=1,
                aliases=("FlowMatchHeunDiscreteScheduler",), starts_at_infinity=True,
                paper=f"{ESSER}; Heun's method in flow time (Karras et al. 2022, Alg. 1 with t for sigma)",
                reference="diffusers.FlowMatchHeunDiscreteScheduler"),
    SamplerSpec("flow_midpoint", sample_flow_midpoint, order=2, stochastic=False, evals_per_step=2,
                aliases=("flow_matching_midpoint",), starts_at_infinity=True,
                paper="Lipman et al. 2023, Flow Matching for Generative Modeling; explicit midpoint rule in t",
                reference="flow_matching.solver.ODESolver(method='midpoint'); torchdiffeq midpoint"),
    SamplerSpec("euler_ancestral_rf", sample_euler_ancestral_rf, order=1, stochastic=True, starts_at_infinity=True,
                paper="Song et al. 2021 (DDIM ancestral split) with ComfyUI's rectified-flow downstep",
                reference="ComfyUI comfy/k_diffusion/sampling.py sample_euler_ancestral_RF"),
    SamplerSpec("dpm_2_ancestral_rf", sample_dpm_2_ancestral_rf, order=1, stochastic=True, evals_per_step=2,
                final_step_evals=1, starts_at_infinity=True,
                paper="Lu et al. 2022a, DPM-Solver-2 in flow time, with ComfyUI's rectified-flow downstep",
                reference="ComfyUI comfy/k_diffusion/sampling.py sample_dpm_2_ancestral_RF"),
    SamplerSpec("dpmpp_2s_ancestral_rf", sample_dpmpp_2s_ancestral_rf, order=1, stochastic=True, evals_per_step=2,
                final_step_evals=1, starts_at_infinity=True,
                paper="Lu et al. 2022b, DPM-Solver++(2S), Alg. 1, with ComfyUI's rectified-flow downstep",
                reference="ComfyUI comfy/k_diffusion/sampling.py sample_dpmpp_2s_ancestral_RF"),
    SamplerSpec("lcm", sample_lcm, order=1, stochastic=True, starts_at_infinity=True,
                aliases=("FlowMatchLCMScheduler", "flow_stochastic", "SCMScheduler", "consistency", "LCMScheduler"),
                paper="Song et al. 2023, Consistency Models, Alg. 1 (multistep sampling); Luo et al. 2023, LCM",
                reference="ComfyUI sample_lcm; diffusers.FlowMatchLCMScheduler, "
                          "FlowMatchEulerDiscreteScheduler(stochastic_sampling=True); diffusers.LCMScheduler "
                          "(tests/test_lcm.py)"),
]
