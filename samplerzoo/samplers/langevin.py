"""Langevin-based samplers in the sigma frame: predictor-corrector and annealed Langevin dynamics.

Both move x with Langevin steps x <- x + eps s + sqrt(2 eps) z at a fixed noise level, s = grad log p(x; sigma)
= (D(x, sigma) - x) / sigma^2; they differ in how eps is chosen and in what happens between levels.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from ..denoiser import Denoiser
from ..noise import NoiseSampler, gaussian_noise_like
from ..registry import SamplerSpec, steps_for_budget
from ..steps import Callback, denoise, notify
from .sde import SONG, Form, check_form, reverse_diffusion_step, score_of


def langevin_step(x: Tensor, score: Tensor, eps: Tensor, z: Tensor) -> Tensor:
    """x + eps s + sqrt(2 eps) z: Euler-Maruyama on the Langevin diffusion dx = s dt + sqrt(2) dW (SEEDS.md Sec. 2)."""
    return x + eps * score + (2 * eps).sqrt() * z


def langevin_corrector(model: Denoiser, x: Tensor, sigma: Tensor, snr: float, alpha: Tensor,
                       noise: NoiseSampler) -> Tensor:
    """One Langevin step at level sigma with eps = 2 alpha (snr ||z|| / ||s||)^2 per sample (Song et al. 2021,
    Alg. 4 and 5; per-sample norms where their code averages over the batch, which would couple the samples).

    The rule is invariant under the VP change of frame (the VP score is c times ours, and eps_VP c^2 = eps), so
    both forms share it; only alpha differs (1 for VE, 1 - beta_i = alpha_bar_next / alpha_bar for VP).
    """
    s = score_of(x, sigma, denoise(model, x, sigma))
    z = noise(sigma, sigma)
    eps = 2 * alpha.to(x.dtype) * (snr * z.flatten(1).norm(dim=1) / s.flatten(1).norm(dim=1)) ** 2
    return langevin_step(x, s, eps.reshape((-1,) + (1,) * (x.ndim - 1)), z)


def sample_pc(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None,
              callback: Callback | None = None, form: Form = "ve", n_corrector: int = 1,
              snr: float = 0.16) -> Tensor:
    """Predictor-corrector sampling (Song et al. 2021, Alg. 1 VE / Alg. 2 VP): at each level, ``n_corrector``
    Langevin corrector steps, then the reverse-diffusion predictor to the next level (corrector first, as in their
    code, so every step costs 1 + n_corrector evaluations, the step to sigma = 0 included)."""
    check_form(form)
    noise = noise or gaussian_noise_like(x)
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        alpha = (1 + sigma_next**2) / (1 + sigma**2) if form == "vp" else sigma.new_ones(())
        for _ in range(n_corrector):
            x = langevin_corrector(model, x, sigma, snr, alpha, noise)
        denoised = denoise(model, x, sigma)
        notify(callback, x, i, sigma, sigma, denoised)
        x = reverse_diffusion_step(x, denoised, sigma, sigma_next, noise, form)
    return x


NCSN_STEP_RATIO = 0.2
"""NCSN's eps / sigma_L^2 = 2e-5 / 0.01^2 (Song & Ermon 2019, Sec. 5): the step at level sigma_i is 0.2 sigma_i^2."""


def last_level(sigmas: Tensor) -> Tensor:
    """sigma_L, the smallest positive level of the schedule."""
    return sigmas[-2] if sigmas[-1] == 0 else sigmas[-1]


def sample_langevin(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None,
                    callback: Callback | None = None, n_steps_each: int = 100, step_lr: float | None = None,
                    denoise_to_zero: bool = True) -> Tensor:
    """Annealed Langevin dynamics (Song & Ermon 2019, Alg. 1): at each level sigma_i after the start, T =
    ``n_steps_each`` steps x + alpha_i s + sqrt(2 alpha_i) z with alpha_i = eps sigma_i^2 / sigma_L^2.

    ``step_lr`` is eps; by default eps = 0.2 sigma_L^2, NCSN's ratio (2e-5 at sigma_L = 0.01), because
    alpha_i / sigma_i^2 = eps / sigma_L^2 is what sets stability (it must stay below 2). On a schedule ending
    in 0, the step to 0 is the denoising step x + sigma_L^2 s = D(x, sigma_L) (Jolicoeur-Martineau et al. 2021,
    one evaluation); with ``denoise_to_zero=False`` it is skipped and the noisy sample at sigma_L is returned.
    """
    noise = noise or gaussian_noise_like(x)
    sigma_L = last_level(sigmas)
    ratio = NCSN_STEP_RATIO if step_lr is None else step_lr / sigma_L**2
    for i in range(len(sigmas) - 1):
        sigma = sigmas[i + 1]
        if sigma == 0:
            if denoise_to_zero:
                denoised = denoise(model, x, sigmas[i])
                notify(callback, x, i, sigmas[i], sigmas[i], denoised)
                x = denoised
            continue
        alpha_i = ratio * sigma**2
        for t in range(n_steps_each):
            denoised = denoise(model, x, sigma)
            if t == 0:
                notify(callback, x, i, sigmas[i], sigma, denoised)
            x = langevin_step(x, score_of(x, sigma, denoised), alpha_i, noise(sigma, sigma))
    return x


def pc_nfe(sigmas: Tensor, n_corrector: int = 1, **options: Any) -> int:
    return (1 + n_corrector) * (len(sigmas) - 1)


def pc_steps(nfe: int, to_zero: bool, n_corrector: int = 1, **options: Any) -> int:
    return steps_for_budget("pc", nfe, 1 + n_corrector, cost="(1 + n_corrector) * steps")


def langevin_nfe(sigmas: Tensor, n_steps_each: int = 100, denoise_to_zero: bool = True, **options: Any) -> int:
    """T evaluations per level after the start, plus one for the denoising step to sigma = 0."""
    levels = int((sigmas[1:] > 0).sum())
    return n_steps_each * levels + int(denoise_to_zero and float(sigmas[-1]) == 0)


def langevin_steps(nfe: int, to_zero: bool, n_steps_each: int = 100, denoise_to_zero: bool = True,
                   **options: Any) -> int:
    # to 0: nfe = T (steps - 1) + [denoise]; otherwise nfe = T steps
    offset = int(denoise_to_zero) - n_steps_each if to_zero else 0
    return steps_for_budget("langevin", nfe, n_steps_each, offset,
                            cost="n_steps_each * levels (+1 for the denoising step to 0)")


SPECS = [
    SamplerSpec("pc", sample_pc, order=1, stochastic=True,
                aliases=("predictor_corrector", "pc_sampler", "ScoreSdeVeScheduler"),
                paper=f"{SONG}, Alg. 1 (VE) and 2 (VP); Langevin corrector Alg. 4-5",
                reference="yang-song/score_sde sampling.py pc_sampler, LangevinCorrector; "
                          "diffusers.ScoreSdeVeScheduler (step_correct + step_pred)",
                cost_formula="(1+n_corrector)*steps",
                nfe_fn=pc_nfe, steps_fn=pc_steps),
    SamplerSpec("langevin", sample_langevin, order=1, stochastic=True,
                aliases=("annealed_langevin", "ald", "ncsn"),
                paper="Song & Ermon 2019, Generative Modeling by Estimating Gradients of the Data Distribution, "
                      "Alg. 1; final denoising: Jolicoeur-Martineau et al. 2021",
                reference="ermongroup/ncsn anneal_Langevin_dynamics",
                cost_formula="n_steps_each*levels (+1 denoising step to 0)",
                nfe_fn=langevin_nfe, steps_fn=langevin_steps),
]
