"""Ancestral samplers: a deterministic step to sigma_down plus fresh noise of std sigma_up.

In the sigma frame DDPM's posterior step and DDIM's eta-step are both this split (Song et al. 2021,
Eq. 12 and 16, divided through by sqrt(alpha_bar_prev)), so they share one loop.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Literal

from torch import Tensor

from ..denoiser import Denoiser
from ..errors import UnknownNameError
from ..noise import NoiseSampler, gaussian_noise_like
from ..registry import SamplerSpec
from ..steps import Callback, ancestral_split, ancestral_step, denoise, notify
from .wrappers import check_thresholding, dynamic_threshold, with_options

Split = Callable[[int], tuple[Tensor, Tensor]]
"""``split(i) -> (sigma_down, sigma_up)`` for the step sigmas[i] -> sigmas[i + 1]."""
DDPM_VARIANCES = ("fixed_small", "fixed_large")


def ancestral_sampling(model: Denoiser, x: Tensor, sigmas: Tensor, split: Split, noise: NoiseSampler | None,
                       callback: Callback | None, s_noise: float = 1.0,
                       clip: Callable[[Tensor], Tensor] | None = None) -> Tensor:
    """One evaluation per step: denoise, step to sigma_down, add sigma_up noise (``split`` gives both). ``clip``
    replaces the step's x0 term D by clip(D) and keeps its direction (x - D) / sigma: x_next = clip(D) + sigma_down
    (x - D) / sigma + sigma_up z."""
    noise = noise or gaussian_noise_like(x)
    for i in range(len(sigmas) - 1):
        denoised = denoise(model, x, sigmas[i])
        notify(callback, x, i, sigmas[i], sigmas[i], denoised)
        sigma_down, sigma_up = split(i)
        x = ancestral_step(x, denoised, sigmas[i], sigma_down, sigma_up, noise, sigmas[i + 1], s_noise)
        if clip is not None:
            x = x + (clip(denoised) - denoised)
    return x


def sample_euler_ancestral(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None,
                           callback: Callback | None = None, eta: float = 1.0, s_noise: float = 1.0) -> Tensor:
    """Ancestral Euler: eta scales the fresh noise, eta = 1 is DDPM's posterior (k-diffusion's euler_ancestral)."""
    return ancestral_sampling(model, x, sigmas, lambda i: ancestral_split(sigmas[i], sigmas[i + 1], eta), noise,
                              callback, s_noise)


def sample_ddim(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None,
                callback: Callback | None = None, eta: float = 0.0, thresholding: bool = False,
                dynamic_thresholding_ratio: float = 0.995, sample_max_value: float = 1.0) -> Tensor:
    """DDIM, x_prev = sqrt(ab_prev) x0 + sqrt(1 - ab_prev - s_t^2) eps + s_t z (Song et al. 2021, Eq. 12).

    Divided by sqrt(ab_prev), s_t(eta) becomes the ancestral sigma_up; eta = 0 is Euler on the PF-ODE.
    ``thresholding``: x0 dynamically thresholded while eps stays the network's, as diffusers' DDIMScheduler
    (``use_clipped_model_output=False``, its default).
    """
    clip = None
    if thresholding:
        check_thresholding(dynamic_thresholding_ratio, sample_max_value)
        clip = partial(dynamic_threshold, ratio=dynamic_thresholding_ratio, max_value=sample_max_value)
    return ancestral_sampling(model, x, sigmas, lambda i: ancestral_split(sigmas[i], sigmas[i + 1], eta), noise,
                              callback, clip=clip)


def ddpm_split(sigma: Tensor, sigma_next: Tensor, variance: str) -> tuple[Tensor, Tensor]:
    """DDPM's posterior mean D + (sigma_next/sigma)^2 (x - D), with variance beta-tilde (``fixed_small``)
    or beta (``fixed_large``) mapped to the sigma frame (Ho et al. 2020, Eq. 6-7 and Sec. 3.2)."""
    sigma_down = sigma_next**2 / sigma
    if variance == "fixed_small":
        return sigma_down, sigma_next * (sigma**2 - sigma_next**2).sqrt() / sigma
    return sigma_down, ((sigma**2 - sigma_next**2) * (1 + sigma_next**2) / (1 + sigma**2)).sqrt()


def sample_ddpm(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None,
                callback: Callback | None = None, variance: Literal["fixed_small", "fixed_large"] = "fixed_small",
                thresholding: bool = False, dynamic_thresholding_ratio: float = 0.995,
                sample_max_value: float = 1.0) -> Tensor:
    """DDPM ancestral sampling, x_{t-1} ~ N(mu_t(x_t, x0_hat), Sigma_t) (Ho et al. 2020, Alg. 2); ``thresholding``:
    x0_hat dynamically thresholded (``wrappers.py``), as diffusers' DDPMScheduler (DeepFloyd IF's setting)."""
    if variance not in DDPM_VARIANCES:
        raise UnknownNameError("ddpm variance", variance, DDPM_VARIANCES)
    model = with_options(model, thresholding=thresholding, dynamic_thresholding_ratio=dynamic_thresholding_ratio,
                         sample_max_value=sample_max_value)
    return ancestral_sampling(model, x, sigmas, lambda i: ddpm_split(sigmas[i], sigmas[i + 1], variance), noise,
                              callback)


SPECS = [
    SamplerSpec("euler_ancestral", sample_euler_ancestral, order=1, stochastic=True, reverse_sde=True,
                aliases=("euler_a", "EulerAncestralDiscreteScheduler"),
                paper="Ho et al. 2020 (posterior step); Song et al. 2021, DDIM Eq. 16 (eta)",
                reference="k_diffusion.sampling.sample_euler_ancestral; diffusers.EulerAncestralDiscreteScheduler"),
    SamplerSpec("ddim", sample_ddim, order=1, stochastic=False, aliases=("DDIMScheduler", "DDIMParallelScheduler"),
                paper="Song et al. 2021, Denoising Diffusion Implicit Models, Eq. 12",
                reference="diffusers.DDIMScheduler, DDIMParallelScheduler"),
    SamplerSpec("ddpm", sample_ddpm, order=1, stochastic=True, reverse_sde=True,
                aliases=("DDPMScheduler", "DDPMParallelScheduler"),
                paper="Ho et al. 2020, Denoising Diffusion Probabilistic Models, Alg. 2",
                reference="diffusers.DDPMScheduler, DDPMParallelScheduler"),
]
