"""Step math shared by samplers (k-diffusion's helpers, typed and in one place)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .denoiser import Denoiser
from .guidance import unconditional_of
from .noise import NoiseSampler

Callback = Callable[[dict[str, Any]], None]


def to_d(x: Tensor, sigma: Tensor, denoised: Tensor) -> Tensor:
    """Slope of the probability-flow ODE, dx/dsigma = (x - D(x, sigma)) / sigma (Karras et al. 2022, Eq. 3)."""
    return (x - denoised) / sigma


def denoise(model: Denoiser, x: Tensor, sigma: Tensor) -> Tensor:
    """Call the denoiser with ``sigma`` broadcast to the batch, as k-diffusion does (``sigma * s_in``); sigma in
    float32 at least, so a float16 or bfloat16 state does not round the noise level."""
    work = torch.promote_types(x.dtype, torch.float32)
    return model(x, sigma.to(work) * x.new_ones(x.shape[0], dtype=work))


def ddim_step(x: Tensor, denoised: Tensor, sigma: Tensor, sigma_to: Tensor) -> Tensor:
    """The first-order data-prediction step D + (sigma_to / sigma) (x - D): DDIM (Song et al. 2021, Eq. 12), Euler
    in sigma and flow Euler in t. From sigma = inf, where x is the normalised state x / sigma, it is its limit
    D + sigma_to x."""
    if math.isinf(float(sigma)):
        return denoised + sigma_to.to(x.dtype) * x
    return x + to_d(x, sigma, denoised) * (sigma_to - sigma)


def denoise_pair(model: Denoiser, x: Tensor, sigma: Tensor) -> tuple[Tensor, Tensor]:
    """The guided and the unconditional prediction at (x, sigma), one denoiser call (``guidance.py``'s
    ``with_unconditional``); sigma broadcast as in :func:`denoise`."""
    work = torch.promote_types(x.dtype, torch.float32)
    return unconditional_of(model, "this sampler")(x, sigma.to(work) * x.new_ones(x.shape[0], dtype=work))


def guided_pair(model: Denoiser, x: Tensor, sigma: Tensor, cfg_pp: bool) -> tuple[Tensor, Tensor]:
    """(guided, unconditional) for a CFG++ step (:func:`denoise_pair`); otherwise D twice, so one loop serves a
    sampler and its CFG++ form (the guidance vector D - D is then exactly zero)."""
    if cfg_pp:
        return denoise_pair(model, x, sigma)
    denoised = denoise(model, x, sigma)
    return denoised, denoised


class UnconditionalView:
    """The unconditional half of a guided model as a Denoiser, so a CFG++ sampler reuses its base sampler's step
    (each call is one call of the guided model, counted as such)."""

    def __init__(self, model: Denoiser) -> None:
        self.model = model

    def __call__(self, x: Tensor, sigma: Tensor, **cond: Any) -> Tensor:
        return unconditional_of(self.model, "this sampler")(x, sigma, **cond)[1]

    def __getattr__(self, name: str) -> Any:
        if name == "model":
            raise AttributeError(name)
        return getattr(self.model, name)


def ancestral_split(sigma: Tensor, sigma_next: Tensor, eta: float = 1.0) -> tuple[Tensor, Tensor]:
    """Split a step sigma -> sigma_next into a deterministic step to sigma_down and fresh noise sigma_up.

    sigma_up = eta * sqrt(sigma_next^2 (sigma^2 - sigma_next^2) / sigma^2), capped at sigma_next, and
    sigma_down = sqrt(sigma_next^2 - sigma_up^2). With eta = 1 this is the DDPM posterior; with eta = 0
    it is the deterministic DDIM / Euler step (Song et al. 2021, Eq. 16, in the sigma frame).
    """
    sigma_up = torch.minimum(sigma_next, eta * (sigma_next**2 * (sigma**2 - sigma_next**2) / sigma**2).sqrt())
    return (sigma_next**2 - sigma_up**2).sqrt(), sigma_up


def ancestral_step(x: Tensor, denoised: Tensor, sigma: Tensor, sigma_down: Tensor, sigma_up: Tensor,
                   noise: NoiseSampler, sigma_next: Tensor, s_noise: float = 1.0) -> Tensor:
    """Euler step to sigma_down (:func:`ddim_step`, so also from sigma = inf), then add noise of std sigma_up (none
    when landing on sigma = 0)."""
    x = ddim_step(x, denoised, sigma, sigma_down)
    if sigma_next > 0 and sigma_up > 0:
        x = x + noise(sigma, sigma_next) * (s_noise * sigma_up)
    return x


def churn(x: Tensor, sigmas: Tensor, i: int, noise: NoiseSampler, s_churn: float = 0.0, s_tmin: float = 0.0,
          s_tmax: float = math.inf, s_noise: float = 1.0) -> tuple[Tensor, Tensor]:
    """EDM's stochastic churn before step i: raise sigma_i to sigma_hat = (1 + gamma_i) sigma_i by adding noise.

    gamma_i = min(S_churn / N, sqrt(2) - 1) when S_tmin <= sigma_i <= S_tmax, else 0, and
    x_hat = x + sqrt(sigma_hat^2 - sigma_i^2) * S_noise * eps (Karras et al. 2022, Alg. 2 lines 4-6).
    """
    sigma = sigmas[i]
    if s_churn <= 0 or not s_tmin <= float(sigma) <= s_tmax:
        return x, sigma
    sigma_hat = sigma * (1 + min(s_churn / (len(sigmas) - 1), math.sqrt(2) - 1))
    return x + noise(sigma, sigma_hat) * (s_noise * (sigma_hat**2 - sigma**2).sqrt()), sigma_hat


def dpm2_step(model: Denoiser, x: Tensor, sigma: Tensor, denoised: Tensor, sigma_to: Tensor) -> Tensor:
    """One DPM-Solver-2 step sigma -> sigma_to > 0: Euler to the midpoint in log sigma, then the full step with
    the midpoint's slope (Lu et al. 2022, Alg. 1 with r = 1/2, in the sigma frame). ``denoised`` is D(x, sigma)."""
    sigma_mid = (sigma * sigma_to).sqrt()  # exp of the mean of log sigma and log sigma_to
    x_mid = x + to_d(x, sigma, denoised) * (sigma_mid - sigma)
    return x + to_d(x_mid, sigma_mid, denoise(model, x_mid, sigma_mid)) * (sigma_to - sigma)


Step = Callable[[Tensor, Tensor, int], Tensor]
"""``step(x, denoised, i) -> x_next`` for the step sigmas[i] -> sigmas[i + 1] > 0."""


def denoise_then_step(model: Denoiser, x: Tensor, sigmas: Tensor, callback: Callback | None, step: Step) -> Tensor:
    """The loop of samplers whose steps start from D(x, sigma_i) (reported to the callback): x = D on the step to
    sigma = 0 (one evaluation), else ``step(x, D, i)``."""
    for i in range(len(sigmas) - 1):
        denoised = denoise(model, x, sigmas[i])
        notify(callback, x, i, sigmas[i], sigmas[i], denoised)
        x = denoised if sigmas[i + 1] == 0 else step(x, denoised, i)
    return x


def notify(callback: Callback | None, x: Tensor, i: int, sigma: Tensor, sigma_hat: Tensor, denoised: Tensor) -> None:
    """Report a step to the callback with k-diffusion's keys."""
    if callback is not None:
        callback({"x": x, "i": i, "sigma": sigma, "sigma_hat": sigma_hat, "denoised": denoised})
