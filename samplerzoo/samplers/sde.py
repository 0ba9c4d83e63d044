"""Stochastic samplers in the sigma frame: ancestral DPM-Solver-2, EDM's stochastic Heun, reverse-SDE
Euler-Maruyama, Restart, Analytic-DDPM (Langevin-based samplers are in ``langevin.py``).

The score of the noisy marginal is (D(x, sigma) - x) / sigma^2 (Tweedie's formula). Song et al. 2021's VP chain
x_VP = x / sqrt(1 + sigma^2) is reached by the change of frame alpha_bar = 1 / (1 + sigma^2), under which the VP
score is sqrt(1 + sigma^2) times the sigma-frame one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
from torch import Tensor

from ..denoiser import Denoiser
from ..errors import UnknownNameError
from ..noise import NoiseSampler, gaussian_noise_like
from ..registry import SamplerSpec, steps_for_budget
from ..schedules import SigmaRange, karras
from ..steps import Callback, ancestral_split, denoise, denoise_then_step, dpm2_step, notify, to_d
from .ancestral import ancestral_sampling, ddpm_split
from .ode import sample_heun


def sample_dpm2_ancestral(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None,
                          callback: Callback | None = None, eta: float = 1.0, s_noise: float = 1.0) -> Tensor:
    """Ancestral DPM-Solver-2: a DPM-Solver-2 step to sigma_down, then fresh noise of std sigma_up
    (Lu et al. 2022, Alg. 1; split as in Song et al. 2021, Eq. 16). The step to sigma = 0 is Euler.

    ``eta`` in [0, 1] scales the noise (1: DDPM's posterior variance, 0: the deterministic dpm2);
    a larger eta could make sigma_down = 0 before the end, where the log-sigma midpoint is undefined.
    """
    if not 0 <= eta <= 1:
        raise ValueError(f"dpm2_ancestral needs 0 <= eta <= 1, got {eta}")
    noise = noise or gaussian_noise_like(x)
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        denoised = denoise(model, x, sigma)
        notify(callback, x, i, sigma, sigma, denoised)
        if sigma_next == 0:
            x = x + to_d(x, sigma, denoised) * (sigma_next - sigma)
            continue
        sigma_down, sigma_up = ancestral_split(sigma, sigma_next, eta)
        x = dpm2_step(model, x, sigma, denoised, sigma_down) + noise(sigma, sigma_next) * (s_noise * sigma_up)
    return x


EDM_STOCHASTIC = {"s_churn": 40.0, "s_tmin": 0.05, "s_tmax": 50.0, "s_noise": 1.003}
"""EDM's stochastic sampler settings for ImageNet-64 (Karras et al. 2022, Table 5; NVlabs/edm README)."""


def sample_edm(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None,
               callback: Callback | None = None, s_churn: float = EDM_STOCHASTIC["s_churn"],
               s_tmin: float = EDM_STOCHASTIC["s_tmin"], s_tmax: float = EDM_STOCHASTIC["s_tmax"],
               s_noise: float = EDM_STOCHASTIC["s_noise"]) -> Tensor:
    """EDM's stochastic sampler: churn, then a Heun step (Karras et al. 2022, Alg. 2), with its ImageNet-64 settings.

    It is ``heun`` with EDM_STOCHASTIC as default options; S_noise > 1 deliberately adds slightly more noise than
    the SDE would (to offset detail lost to an imperfect denoiser), so on an exact denoiser it inflates the variance.
    """
    return sample_heun(model, x, sigmas, noise=noise, callback=callback, s_churn=s_churn, s_tmin=s_tmin,
                       s_tmax=s_tmax, s_noise=s_noise)


SDE_FORMS = ("ve", "vp")
Form = Literal["ve", "vp"]


def score_of(x: Tensor, sigma: Tensor, denoised: Tensor) -> Tensor:
    """grad log p(x; sigma) = (D(x, sigma) - x) / sigma^2 (Tweedie's formula)."""
    return (denoised - x) / sigma**2


def check_form(form: str) -> None:
    if form not in SDE_FORMS:
        raise UnknownNameError("SDE form", form, SDE_FORMS)


def reverse_diffusion_step(x: Tensor, denoised: Tensor, sigma: Tensor, sigma_next: Tensor, noise: NoiseSampler,
                           form: str) -> Tensor:
    """Song et al. 2021's reverse-diffusion predictor (SEEDS.md Sec. 5) from sigma to sigma_next, g^2 = sigma^2 -
    sigma_next^2. VE: x + g^2 score + g z. VP, in its frame y = x / c with c = sqrt(1 + sigma^2) and
    beta = 1 - alpha_bar_next / alpha_bar = g^2 / c^2: y_next = (2 - sqrt(1 - beta)) y + beta score_VP + sqrt(beta) z,
    which is (c_next / c) [(2 - c_next / c) x + g^2 score + g z] back in the sigma frame. The step to sigma = 0
    returns the mean (no noise), as Song et al.'s code does."""
    g2 = sigma**2 - sigma_next**2
    drift = g2 * score_of(x, sigma, denoised)
    if sigma_next > 0:
        drift = drift + noise(sigma, sigma_next) * g2.sqrt()
    if form == "ve":
        return x + drift
    ratio = ((1 + sigma_next**2) / (1 + sigma**2)).sqrt()  # sqrt(1 - beta) = c_next / c
    return ratio * ((2 - ratio) * x + drift)


def sample_euler_maruyama(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None,
                          callback: Callback | None = None, form: Form = "ve") -> Tensor:
    """Euler-Maruyama on the reverse SDE, the reverse-diffusion sampler (Song et al. 2021, Eq. 6 and 47; SEEDS.md
    Sec. 5, VE and VP columns): one evaluation per step; ``form`` picks the VE or the VP discretisation."""
    check_form(form)
    noise = noise or gaussian_noise_like(x)
    for i in range(len(sigmas) - 1):
        denoised = denoise(model, x, sigmas[i])
        notify(callback, x, i, sigmas[i], sigmas[i], denoised)
        x = reverse_diffusion_step(x, denoised, sigmas[i], sigmas[i + 1], noise, form)
    return x


Restart = tuple[int, int, float, float]
RESTARTS: tuple[Restart, ...] = ((3, 2, 0.06, 0.30),)
"""Restart intervals (N_restart, K, t_min, t_max): Xu et al. 2023's CIFAR-10 setting (their README example)."""
FINE_RESTARTS: tuple[Restart, ...] = ((33, 2, 0.06, 0.30),)
"""The default interval with 32 backward Heun steps instead of 2: fine enough that its law converges at Heun's order
over the step counts the conformance kit checks (the spec's ``law_options``)."""


def restart_plan(sigmas: Tensor, restarts: Sequence[Restart], rho: float = 7.0) -> list[tuple[int, int, Tensor]]:
    """(index i, K, levels) for each restart interval: t_min snaps to the nearest positive level sigmas[i], i >= 1
    (as in Xu et al.'s code), and the K backward passes follow N_restart rho-spaced levels from t_max down to
    sigmas[i] (Karras et al. 2022, Eq. 5). An interval whose t_max is not above sigmas[i] is skipped."""
    positive = [i for i in range(1, len(sigmas)) if sigmas[i] > 0]
    plan = []
    for n_restart, k, t_min, t_max in restarts:
        if n_restart < 2:
            raise ValueError(f"a restart interval needs N_restart >= 2 levels, got {n_restart}")
        if not positive:
            continue
        i = min(positive, key=lambda j: abs(float(sigmas[j]) - t_min))
        if t_max > sigmas[i]:
            levels = karras(n_restart, SigmaRange(float(sigmas[i]), t_max), rho)[:-1]
            levels[-1] = sigmas[i]  # exactly the level it restarts from
            plan.append((i, k, levels))
    return sorted(plan, key=lambda step: step[0])


def sample_restart(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None,
                   callback: Callback | None = None, restarts: Sequence[Restart] = RESTARTS, rho: float = 7.0,
                   s_noise: float = 1.0) -> Tensor:
    """Restart sampling (Xu et al. 2023, Alg. 1): Heun on the PF-ODE; on reaching t_min of an interval, K times
    jump forward to t_max with fresh noise, x + sqrt(t_max^2 - t_min^2) z, and re-run Heun back down to t_min.

    ``restarts`` lists (N_restart, K, t_min, t_max); each costs K * 2 (N_restart - 1) evaluations on top of Heun's.

    The backward passes take N_restart - 1 Heun steps whatever the main schedule, so their own error does not shrink
    as the steps grow: with the default interval (2 steps over [0.06, 0.30], K = 2) the output's std on N(0.3, 0.5^2)
    settles at 0.5033 where the exact process gives 0.4999 (Heun: 0.4998 at 200 steps), from 200 steps on. That bias
    falls with the square of the backward step (N_restart = 5: 0.5009; 9: 0.5002); ``FINE_RESTARTS`` is the interval
    the conformance kit checks the law with.
    """
    noise = noise or gaussian_noise_like(x)

    def main(x: Tensor, start: int, stop: int) -> Tensor:  # Heun on sigmas[start..stop], steps numbered globally
        shifted = None if callback is None else lambda info: callback({**info, "i": info["i"] + start})
        return sample_heun(model, x, sigmas[start:stop + 1], noise=noise, callback=shifted)

    start = 0
    for i, k, levels in restart_plan(sigmas, restarts, rho):
        x = main(x, start, i)
        for _ in range(k):
            x = x + noise(levels[-1], levels[0]) * (s_noise * (levels[0] ** 2 - levels[-1] ** 2).sqrt())
            x = sample_heun(model, x, levels, noise=noise)
        start = i
    return main(x, start, len(sigmas) - 1)


def restart_nfe(sigmas: Tensor, restarts: Sequence[Restart] = RESTARTS, rho: float = 7.0, **options: Any) -> int:
    heun = 2 * (len(sigmas) - 1) - int(float(sigmas[-1]) == 0)
    return heun + sum(k * 2 * (len(levels) - 1) for _, k, levels in restart_plan(sigmas, restarts, rho))


def restart_steps(nfe: int, to_zero: bool, restarts: Sequence[Restart] = RESTARTS, **options: Any) -> int:
    """Steps for an NFE budget, assuming every interval applies (its t_max lies above the level t_min snaps to)
    whenever the schedule has a positive level after the start, i.e. from 2 steps to 0 or 1 step otherwise."""
    if to_zero and nfe == 1:
        return 1
    extra = sum(k * 2 * (n_restart - 1) for n_restart, k, _, _ in restarts)
    return steps_for_budget("restart", nfe, 2, extra - int(to_zero), "2 * steps (- 1 to 0) + restarts",
                            min_steps=2 if to_zero else 1)


def mean_square_eps(model: Denoiser, data: Tensor, sigmas: Tensor, noise: NoiseSampler | None = None) -> Tensor:
    """Gamma(sigma) = E ||eps_hat(x0 + sigma n, sigma)||^2 / d, eps_hat = (x - D(x, sigma)) / sigma, estimated by
    Monte Carlo over a batch of data samples x0 and n ~ N(0, I) (Bao et al. 2022, Eq. 8; sigma^2 E||score||^2 / d
    in the sigma frame). One denoiser call per positive sigma; returns a float64 CPU table aligned with ``sigmas``
    (0 where sigma = 0), for ``ddpm_analytic``'s ``gamma`` option."""
    noise = noise or gaussian_noise_like(data)
    table = [data.new_zeros(()) for _ in sigmas]
    for i, sigma in enumerate(sigmas):
        if sigma > 0:
            x = data + noise(sigma, sigma) * sigma.to(data.dtype)
            table[i] = ((x - denoise(model, x, sigma)) / sigma.to(data.dtype)).pow(2).mean()
    return torch.stack(table).to("cpu", torch.float64)


def gaussian_mean_square_eps(sigmas: Tensor, sigma_data: float) -> Tensor:
    """Gamma(sigma) = sigma^2 / (sigma_data^2 + sigma^2): ``mean_square_eps`` in closed form for data
    N(mu, sigma_data^2 I) (eps_hat = sigma (x - mu) / (sigma_data^2 + sigma^2) has that variance per coordinate)."""
    return sigmas**2 / (sigma_data**2 + sigmas**2)


def analytic_split(sigma: Tensor, sigma_next: Tensor, gamma: Tensor) -> tuple[Tensor, Tensor]:
    """DDPM's step with Analytic-DPM's optimal reverse variance (Bao et al. 2022, Thm. 1; SEEDS.md Sec. 5):
    gamma*^2 = sigma~^2 + (sqrt(beta_bar_n / alpha_n) - sqrt(beta_bar_{n-1} - sigma~^2))^2 (1 - Gamma), which in the
    sigma frame (divided by alpha_bar_{n-1}) is sigma_up^2 + (sigma - sigma_down)^2 (1 - Gamma), with ddpm_split's
    fixed_small sigma_up and sigma_down. 1 - Gamma is clipped to [0, 1], i.e. the variance to its bounds
    [sigma~^2, sigma~^2 + (...)^2]."""
    sigma_down, sigma_up = ddpm_split(sigma, sigma_next, "fixed_small")
    variance = sigma_up**2 + (sigma - sigma_down) ** 2 * (1 - gamma).clamp(0, 1)
    return sigma_down, variance.sqrt()


def sample_ddpm_analytic(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None,
                         callback: Callback | None = None, gamma: Tensor | None = None) -> Tensor:
    """Analytic-DDPM: DDPM's posterior mean at x0 = D(x, sigma), with the optimal variance (Bao et al. 2022, Thm. 1).

    ``gamma`` is the table E||eps_hat||^2 / d aligned with ``sigmas`` (``mean_square_eps`` estimates it from data);
    by default it is the closed form for Gaussian data of the denoiser's sigma_data (exact for a Gaussian target).
    """
    table = gaussian_mean_square_eps(sigmas, model.sigma_data) if gamma is None else gamma
    if len(table) != len(sigmas):
        raise ValueError(f"ddpm_analytic needs one gamma per sigma ({len(sigmas)}), got {len(table)}")
    return ancestral_sampling(model, x, sigmas, lambda i: analytic_split(sigmas[i], sigmas[i + 1], table[i]), noise,
                              callback)


def er_noise_scaler(x: Tensor) -> Tensor:
    """ER-SDE's default noise scaling function, x (e^{x^0.3} + 10) (Cui et al. 2023, ER-SDE-Solver-3 as used by
    the authors' code and ComfyUI)."""
    return x * ((x**0.3).exp() + 10.0)


def er_integrals(sigma: Tensor, sigma_next: Tensor, scaler: Callable[[Tensor], Tensor],
                 points: int = 200) -> tuple[Tensor, Tensor]:
    """int_{sigma_next}^{sigma} du / scaler(u) and int (u - sigma) / scaler(u) du by the left Riemann sum on
    ``points`` nodes from sigma_next (the authors' rule, 200 points)."""
    step = (sigma - sigma_next) / points
    nodes = sigma_next + torch.arange(points, dtype=sigma.dtype) * step
    return (1 / scaler(nodes)).sum() * step, ((nodes - sigma) / scaler(nodes)).sum() * step


def sample_er_sde(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None,
                  callback: Callback | None = None, s_noise: float = 1.0, max_stage: int = 3,
                  noise_scaler: Callable[[Tensor], Tensor] = er_noise_scaler) -> Tensor:
    """ER-SDE-Solver (Cui et al. 2023, Elucidating the Solution Space of Extended Reverse-Time SDEs for Diffusion
    Models, Eq. 18-20 with the VP/VE data-prediction solver of order ``max_stage``), in the sigma frame
    (lambda_ER = sigma / alpha = sigma): with r = phi(sigma_next) / phi(sigma) for the noise scaler phi,

        x_next = r x + (1 - r) D + (h + S_1 phi(sigma_next)) D' + (h^2 / 2 + S_2 phi(sigma_next)) D''
                 + sqrt(sigma_next^2 - r^2 sigma^2) s_noise z,

    h = sigma_next - sigma, D' and D'' divided differences of earlier D in sigma, S_1 and S_2 the integrals of
    :func:`er_integrals`; lower stages on the first steps; the step to sigma = 0 returns D. phi(x) = x makes the
    first-order step DDIM (the ODE), phi(x) = x^2 DDPM's posterior step (Cui et al. 2023, Sec. 4)."""
    if max_stage not in (1, 2, 3):
        raise UnknownNameError("er_sde max_stage", str(max_stage), ["1", "2", "3"])
    noise = noise or gaussian_noise_like(x)
    history: list[Tensor] = []  # D, then its first divided difference, newest first

    def step(x: Tensor, denoised: Tensor, i: int) -> Tensor:
        nonlocal history
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        r = noise_scaler(sigma_next) / noise_scaler(sigma)
        x_next = r * x + (1 - r) * denoised
        stage = min(max_stage, i + 1)
        first = None
        if stage >= 2:
            h = sigma_next - sigma
            s_1, s_2 = er_integrals(sigma, sigma_next, noise_scaler)
            first = (denoised - history[0]) / (sigma - sigmas[i - 1])
            x_next = x_next + (h + s_1 * noise_scaler(sigma_next)) * first
            if stage >= 3:
                second = (first - history[1]) / ((sigma - sigmas[i - 2]) / 2)
                x_next = x_next + (h**2 / 2 + s_2 * noise_scaler(sigma_next)) * second
        if s_noise > 0:
            spread = (sigma_next**2 - r**2 * sigma**2).clamp(min=0).sqrt()
            x_next = x_next + noise(sigma, sigma_next) * (s_noise * spread)
        history = [denoised] if first is None else [denoised, first]
        return x_next
    return denoise_then_step(model, x, sigmas, callback, step)


SONG = "Song et al. 2021, Score-Based Generative Modeling through Stochastic Differential Equations"
KARRAS = "Karras et al. 2022, Elucidating the Design Space of Diffusion-Based Generative Models"
SPECS = [
    SamplerSpec("dpm2_ancestral", sample_dpm2_ancestral, order=1, stochastic=True, reverse_sde=True, evals_per_step=2,
                final_step_evals=1, aliases=("dpm_2_ancestral", "KDPM2AncestralDiscreteScheduler", "DPM2_a"),
                paper="Lu et al. 2022, DPM-Solver, Alg. 1 (r=1/2) + ancestral split (Song et al. 2021, Eq. 16)",
                reference="k_diffusion.sampling.sample_dpm_2_ancestral; diffusers.KDPM2AncestralDiscreteScheduler"),
    SamplerSpec("edm", sample_edm, order=1, stochastic=True, evals_per_step=2, final_step_evals=1,
                aliases=("edm_stochastic",), paper=f"{KARRAS}, Alg. 2 (ImageNet-64 settings)",
                law_options={"s_noise": 1.0},
                reference="NVlabs/edm generate.py edm_sampler (S_churn=40, S_min=0.05, S_max=50, S_noise=1.003)"),
    SamplerSpec("euler_maruyama", sample_euler_maruyama, order=1, stochastic=True, reverse_sde=True,
                aliases=("reverse_diffusion", "ReverseDiffusionPredictor"), paper=f"{SONG}, Eq. 6 and 47",
                reference="yang-song/score_sde sampling.py ReverseDiffusionPredictor (VE/VP SDE discretize)"),
    SamplerSpec("ddpm_analytic", sample_ddpm_analytic, order=1, stochastic=True, reverse_sde=True,
                aliases=("analytic_dpm", "analytic_ddpm"),
                paper="Bao et al. 2022, Analytic-DPM, Thm. 1 (optimal reverse variance) with its clipping",
                reference="baofff/Analytic-DPM"),
    SamplerSpec("er_sde", sample_er_sde, order=1, stochastic=True, aliases=("er_sde_solver",),
                paper="Cui et al. 2023, Elucidating the Solution Space of Extended Reverse-Time SDEs for Diffusion "
                      "Models (ER-SDE-Solver-3)",
                reference="QinpengCui/ER-SDE-Solver er_sde_solver.py; ComfyUI comfy/k_diffusion/sampling.py "
                          "sample_er_sde"),
    SamplerSpec("restart", sample_restart, order=2, stochastic=True, weak_order=2,
                law_options={"restarts": FINE_RESTARTS}, aliases=("restart_sampler",),
                paper="Xu et al. 2023, Restart Sampling for Improving Generative Processes, Alg. 1",
                reference="Newbeeer/diffusion_restart_sampling benchmarks/generate_restart.py restart_sampler",
                cost_formula="2*steps-1 + 2*K*(restart levels-1) per restart",
                nfe_fn=restart_nfe, steps_fn=restart_steps),
]
