"""The schedules users pick in ComfyUI and diffusers and the published ladders: ``ddim_uniform``, ``laplace``,
LCM's skipping steps, EDM's iDDPM discretization, Align Your Steps, OptimalSteps, SD-Turbo's ladder and diffusers'
beta sigmas (GITS' tables: ``gits_schedules.py``).

The contract is schedules.py's: ``schedule(n, model, **options)`` returns n decreasing float64 sigmas on the CPU
followed by 0. Where a schedule cannot be built for a model it says so in one line.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .errors import SamplerzooError, UnknownNameError
from .flow import flow_sigma
from .noise_schedules import interp
from .schedules import HasSigmaRange, append_zero, check_steps, finite_sigma_max, trained_table


def ddim_uniform(n: int, model: HasSigmaRange) -> Tensor:
    """ComfyUI's ``ddim_uniform``: the trained levels at timesteps 1 + k (T // n), k = 0, 1, ..., highest first (the
    CompVis DDIM ``make_ddim_timesteps(ddim_discr_method="uniform")`` ladder shifted by one), then 0.

    The ladder never reaches the top level (n = 2 starts at timestep 501 of 1000), as in ComfyUI. Where T leaves a
    remainder of 2 or more (T = 1000: n = 6, 7, ...) it holds more than n levels below T and ComfyUI runs them all
    (n = 7: 8 steps); samplerzoo takes ComfyUI's first n, the highest, so a plan spends exactly its NFE.
    """
    check_steps(n)
    table = trained_table(model, "ddim_uniform")
    stride = len(table) // n
    if stride < 1:
        raise SamplerzooError(f"'ddim_uniform' allows at most {len(table)} steps, got {n}")
    top = (len(table) - 2) // stride  # the highest k with 1 + k * stride < T
    return append_zero(table[1 + stride * torch.arange(top, top - n, -1)])


LAPLACE_EPSILON = 1e-5
"""ComfyUI's guard against log(0) at the ends of the ramp."""


def lcm_skipping(n: int, model: HasSigmaRange, original_steps: int = 50) -> Tensor:
    """LCM's skipping-step timesteps: of the distillation grid t = k (T // original_steps) - 1, k = original_steps
    .. 1, the n at floor(linspace(0, original_steps, n, endpoint=False)), then 0 (Luo et al. 2023, Sec. 4.3;
    diffusers' LCMScheduler, ``original_inference_steps`` 50)."""
    check_steps(n)
    table = trained_table(model, "lcm_skipping")
    if not 1 <= original_steps <= len(table):
        raise SamplerzooError(f"'lcm_skipping' original_steps {original_steps}: accepted 1..{len(table)} (the "
                              "trained levels)")
    if n > original_steps:
        raise SamplerzooError(f"'lcm_skipping' allows at most original_steps = {original_steps} steps, got {n}")
    grid = torch.arange(original_steps, 0, -1) * (len(table) // original_steps) - 1
    picks = torch.floor(torch.arange(n, dtype=torch.float64) * (original_steps / n)).long()
    return append_zero(table[grid[picks]])


def laplace(n: int, model: HasSigmaRange, mu: float = 0.0, beta: float = 0.5) -> Tensor:
    """log sigma at the Laplace(mu, beta) quantiles of an even ramp x in [0, 1]:
    log sigma = mu - beta sgn(1/2 - x) log(1 - 2 |1/2 - x| + 1e-5), clamped to the model's range, then 0 (Hang et al.
    2024, Improved Noise Schedule for Diffusion Training, arXiv:2407.03297; ComfyUI's get_sigmas_laplace)."""
    check_steps(n)
    x = torch.linspace(0, 1, n, dtype=torch.float64)
    log_sigma = mu - beta * torch.sign(0.5 - x) * torch.log(1 - 2 * (0.5 - x).abs() + LAPLACE_EPSILON)
    sigmas = log_sigma.exp().clamp(model.sigma_min, model.sigma_max)
    if n > 1 and not bool((sigmas[1:] < sigmas[:-1]).all()):
        clamped = int(((sigmas == model.sigma_min) | (sigmas == model.sigma_max)).sum())
        raise SamplerzooError(f"laplace (mu={mu}, beta={beta}): {clamped} of {n} levels clamp to the model's range "
                              f"[{model.sigma_min:.4g}, {model.sigma_max:.4g}], repeating sigmas; choose mu and beta "
                              "whose curve spans that range")
    return append_zero(sigmas)


def iddpm_ladder(C_1: float = 0.001, C_2: float = 0.008, M: int = 1000) -> Tensor:
    """iDDPM's noise levels u_0 > ... > u_M = 0 in EDM's sigma frame: u_{j-1} = sqrt((u_j^2 + 1) / max(abar_{j-1} /
    abar_j, C_1) - 1) with the cosine abar_j = sin^2(pi/2 j / (M (C_2 + 1))) (Karras et al. 2022, Table 1).

    The recursion telescopes: u_j^2 + 1 = prod_{k > j} 1 / max(abar_{k-1} / abar_k, C_1).
    """
    j = torch.arange(M + 1, dtype=torch.float64)
    alpha_bar = torch.sin(0.5 * math.pi * j / M / (C_2 + 1)) ** 2
    log_ratio = torch.log((alpha_bar[:-1] / alpha_bar[1:]).clamp(min=C_1))  # k = 1..M
    tail = torch.cat([log_ratio.flip(0).cumsum(0).flip(0), log_ratio.new_zeros(1)])  # sum over k > j
    return torch.expm1(-tail).sqrt()


def iddpm(n: int, model: HasSigmaRange, C_1: float = 0.001, C_2: float = 0.008, M: int = 1000) -> Tensor:
    """EDM's iDDPM discretization: of iDDPM's levels u_j (:func:`iddpm_ladder`) inside the model's [sigma_min,
    sigma_max], the ones at index round((L - 1) i / (n - 1)), i = 0..n-1, highest first, then 0 (Karras et al. 2022,
    Table 1, t_i = u_floor(j0 + (M - 1 - j0) i / (N - 1) + 1/2); NVlabs/edm ablation_sampler's filter and rounding)."""
    check_steps(n)
    u = iddpm_ladder(C_1, C_2, M)
    levels = u[(u >= model.sigma_min) & (u <= model.sigma_max)]
    if len(levels) < n:
        span = f"[{model.sigma_min:.4g}, {model.sigma_max:.4g}]"
        raise SamplerzooError(f"iddpm: {len(levels)} of iDDPM's {M} levels lie in the model's range {span}, so at "
                              f"most {len(levels)} steps, got {n}")
    if n == 1:
        return append_zero(levels[:1])
    index = ((len(levels) - 1) / (n - 1) * torch.arange(n, dtype=torch.float64)).round().long()
    return append_zero(levels[index])


def loglinear(table: tuple[float, ...], count: int) -> Tensor:
    """``count`` levels of a decreasing published ``table``, at even positions in [0, 1] with its entries at even
    positions too, linear in log level in between; the table itself where ``count`` is its length (ComfyUI's
    loglinear_interp, shared by its Align Your Steps, GITS and OptimalSteps nodes)."""
    levels = torch.tensor(table, dtype=torch.float64)
    if count == len(levels):
        return levels
    positions = torch.linspace(0, 1, len(levels), dtype=torch.float64)
    return interp(torch.linspace(0, 1, count, dtype=torch.float64), positions, levels.log()).exp()


def table_model(kind: str, names: dict[str, str], name: str) -> str:
    """The published table a model name selects, or a one-line error naming the supported models."""
    canonical = names.get(name.lower())
    if canonical is None:
        raise UnknownNameError(kind, name, names)
    return canonical


AYS_SIGMAS: dict[str, tuple[float, ...]] = {
    "sd15": (14.6146412293, 6.4745760956, 3.8636745985, 2.6946151520, 1.8841921177, 1.3943805092, 0.9642583904,
             0.6523686016, 0.3977456272, 0.1515232662, 0.0291671582),
    "sdxl": (14.6146412293, 6.3184485287, 3.7681790315, 2.1811480769, 1.3405244945, 0.8620721141, 0.5550693289,
             0.3798540708, 0.2332364134, 0.1114188177, 0.0291671582),
    "svd": (700.00, 54.5, 15.886, 7.977, 4.248, 1.789, 0.981, 0.403, 0.173, 0.034, 0.002),
}
"""The published 10-step Align Your Steps sigmas, sigma_min last (Sabour, Fidler & Kreis 2024, NVIDIA's AYS
how-to page; ComfyUI's NOISE_LEVELS). diffusers' AysSchedules has SVD's as here, and SD1.5's and SDXL's in a
3-decimal rendition up to 0.3% and 1.4% off these (SDXL: 0.113 for 0.1114)."""
AYS_MODEL_NAMES = {"sd15": "sd15", "sd1": "sd15", "sd1.5": "sd15", "sd": "sd15", "sdxl": "sdxl", "svd": "svd"}
"""Accepted spellings (ComfyUI's model_type SD1 / SDXL / SVD among them), to the table they name."""


def ays_model(name: str) -> str:
    """The Align Your Steps table a model name selects, or a one-line error naming the supported models."""
    return table_model("Align Your Steps model", AYS_MODEL_NAMES, name)


def ays(n: int, model: HasSigmaRange, model_type: str | None = None) -> Tensor:
    """Align Your Steps (Sabour, Fidler & Kreis 2024): the published 10-step sigmas of ``model_type`` (sd15, sdxl,
    svd), for other step counts interpolated linearly in log sigma at n + 1 even positions; the last becomes 0
    (ComfyUI's AlignYourStepsScheduler). The tables are the model's: the model's own sigma range is not used."""
    check_steps(n)
    if model_type is None:
        raise SamplerzooError("schedule 'ays' needs the model its steps were optimised for: ays:sd15, ays:sdxl or "
                              "ays:svd (from Python: model_type='sdxl')")
    return append_zero(loglinear(AYS_SIGMAS[ays_model(model_type)], n + 1)[:-1])



OPTIMAL_STEPS_TIMES: dict[str, tuple[float, ...]] = {
    "flux": (0.9968, 0.9886, 0.9819, 0.975, 0.966, 0.9471, 0.9158, 0.8287, 0.5512, 0.2808, 0.001),
    "wan": (1.0, 0.997, 0.995, 0.993, 0.991, 0.989, 0.987, 0.985, 0.98, 0.975, 0.973, 0.968, 0.96, 0.946, 0.927, 0.902,
            0.864, 0.776, 0.539, 0.208, 0.001),
    "chroma": (0.992, 0.99, 0.988, 0.985, 0.982, 0.978, 0.973, 0.968, 0.961, 0.953, 0.943, 0.931, 0.917, 0.9, 0.881,
               0.858, 0.832, 0.802, 0.769, 0.731, 0.69, 0.646, 0.599, 0.55, 0.501, 0.451, 0.402, 0.355, 0.311, 0.27,
               0.232, 0.199, 0.169, 0.143, 0.12, 0.101, 0.084, 0.07, 0.058, 0.048, 0.001),
}
"""OptimalSteps' published flow times t (sigma / (1 + sigma) here): FLUX's 10 steps, Wan's 20, Chroma's 40, the
last the final level that becomes 0 (Pei et al. 2025, Optimal Stepsize for Diffusion Sampling, arXiv:2503.21774;
ComfyUI's OptimalStepsScheduler NOISE_LEVELS). Wan's starts at t = 1, sigma = inf."""
OPTIMAL_STEPS_MODELS = {"flux": "flux", "wan": "wan", "chroma": "chroma"}


def optimal_steps_model(name: str) -> str:
    return table_model("OptimalSteps model", OPTIMAL_STEPS_MODELS, name)


def optimal_steps(n: int, model: HasSigmaRange, model_type: str | None = None) -> Tensor:
    """OptimalSteps (Pei et al. 2025): the published flow times of ``model_type`` (flux, wan, chroma), for other
    step counts interpolated linearly in log t at n + 1 even positions, the last dropped for 0, as sigmas
    t / (1 - t) (ComfyUI's OptimalStepsScheduler). The tables are the flow models': the model's range is not used."""
    check_steps(n)
    if model_type is None:
        raise SamplerzooError("schedule 'optimal_steps' needs the model its steps were found for: optimal_steps:flux, "
                              "optimal_steps:wan or optimal_steps:chroma (from Python: model_type='flux')")
    times = loglinear(OPTIMAL_STEPS_TIMES[optimal_steps_model(model_type)], n + 1)[:-1]
    return append_zero(flow_sigma(times))


SD_TURBO_STEPS = 10
"""SD-Turbo's ladder: the trained levels at every (T/10)-th timestep from the top, 999, 899, ..., 99 of 1000."""


def sd_turbo(n: int, model: HasSigmaRange) -> Tensor:
    """The first n of the timesteps T - 1 - k (T // 10), k = 0..9 (999, 899, ..., 99 for T = 1000), then 0: the
    ladder SD-Turbo / SDXL-Turbo run at 1 to 4 steps (Sauer et al. 2023, Adversarial Diffusion Distillation;
    ComfyUI's SDTurboScheduler at denoise 1)."""
    check_steps(n)
    table = trained_table(model, "sd_turbo")
    if n > SD_TURBO_STEPS:
        raise SamplerzooError(f"'sd_turbo' allows at most {SD_TURBO_STEPS} steps, got {n} (its ladder is "
                              "timesteps T-1, T-1-T/10, ..., T/10-1)")
    return append_zero(table[len(table) - 1 - (len(table) // SD_TURBO_STEPS) * torch.arange(n)])


def beta_sigmas(n: int, model: HasSigmaRange, alpha: float = 0.6, beta: float = 0.6) -> Tensor:
    """sigma_i = sigma_min + BetaPPF(1 - i/(n-1); alpha, beta) (sigma_max - sigma_min), i = 0..n-1, then 0: the
    Beta(0.6, 0.6) quantiles of Lee et al. 2024 (Beta Sampling is All You Need, arXiv:2407.12173) mapped linearly
    onto the sigma range, as diffusers' ``use_beta_sigmas`` does (ComfyUI's ``beta`` picks trained timesteps)."""
    from scipy.stats import beta as beta_distribution

    check_steps(n)
    top = finite_sigma_max(model, "schedule 'beta_sigmas'")
    quantiles = 1 - torch.linspace(0, 1, n, dtype=torch.float64)
    ppf = torch.from_numpy(beta_distribution.ppf(quantiles.numpy(), alpha, beta))
    return append_zero(model.sigma_min + ppf * (top - model.sigma_min))
