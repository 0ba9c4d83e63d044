"""RES multistep (Zhang, Song & Chen 2023, arXiv:2308.02157): the 2nd-order exponential-integrator multistep method
in data prediction whose phi_2 weights meet the order conditions exactly, and its ancestral form (ComfyUI
res_multistep, res_multistep_ancestral; their CFG++ forms in :mod:`.cfg_pp`)."""

from __future__ import annotations

from torch import Tensor

from ..denoiser import Denoiser
from ..noise import NoiseSampler, gaussian_noise_like
from ..registry import SamplerSpec
from ..steps import Callback, ancestral_split, guided_pair, notify, to_d
from .exponential import phi


def res_multistep_step(x: Tensor, denoised: Tensor, old_denoised: Tensor | None, h_prev: Tensor, sigma: Tensor,
                       sigma_next: Tensor) -> Tensor:
    """One RES 2nd-order multistep step in lambda = -log sigma (Zhang, Song & Chen 2023, arXiv:2308.02157, RES):
    x' = e^{-h} x + h [(phi_1 - phi_2 / c2) D_i + (phi_2 / c2) D_{i-1}] at -h, with c2 = -h_prev / h: the exact
    integral of e^{-(h - tau)} times the line through D_{i-1} at tau = -h_prev and D_i at 0. Without a previous
    D, or to sigma = 0, it is the first-order step (DDIM, i.e. Euler in sigma)."""
    if old_denoised is None or sigma_next == 0:
        return x + to_d(x, sigma, denoised) * (sigma_next - sigma)
    h = (sigma / sigma_next).log()
    c2 = -h_prev / h
    phi_1, phi_2 = phi(1, -h), phi(2, -h)
    return (sigma_next / sigma) * x + h * ((phi_1 - phi_2 / c2) * denoised + (phi_2 / c2) * old_denoised)


def sample_res_multistep(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None,
                         callback: Callback | None = None, eta: float = 0.0, s_noise: float = 1.0) -> Tensor:
    """RES multistep: the 2nd-order exponential-integrator multistep method in data prediction that meets the
    order conditions exactly with phi_2 (Zhang, Song & Chen 2023, Improved Order Analysis and Design of Exponential
    Integrator for Diffusion Models Sampling; ComfyUI res_multistep); first step and step to 0 are DDIM/Euler.

    ``eta`` > 0 steps to sigma_down and adds sigma_up fresh noise (the ancestral split, Song et al. 2021, Eq. 16).
    As in ComfyUI, the previous D then sits one previous *deterministic* step, log(sigma_{i-1} / sigma_down), behind
    the current one: noise does not advance the ODE's time. (Placing it at lambda_{i-1} instead extrapolates the
    noise-driven change of D: the std of the Gaussian test target comes out 0.58 instead of 0.51 at 50 steps.)
    """
    return res_multistep_sampling(model, x, sigmas, noise, callback, eta, s_noise)


def res_multistep_sampling(model: Denoiser, x: Tensor, sigmas: Tensor, noise: NoiseSampler | None,
                           callback: Callback | None, eta: float, s_noise: float, cfg_pp: bool = False) -> Tensor:
    """The RES multistep loop; with ``cfg_pp`` its steps use the unconditional predictions D_u and add the guidance
    vector g = D_w - D_u (CFG++, ComfyUI's res_multistep_cfg_pp): after a first-order step, before a multistep
    one, where e^{-h} damps it."""
    noise = noise or gaussian_noise_like(x)
    old_denoised: Tensor | None = None
    h_prev = sigmas.new_zeros(())
    for i in range(len(sigmas) - 1):
        denoised, unconditional = guided_pair(model, x, sigmas[i], cfg_pp)
        notify(callback, x, i, sigmas[i], sigmas[i], denoised)
        sigma_down, sigma_up = ancestral_split(sigmas[i], sigmas[i + 1], eta)
        if old_denoised is None or sigma_down == 0:
            x = res_multistep_step(x, unconditional, None, h_prev, sigmas[i], sigma_down) + (denoised - unconditional)
        else:
            x = res_multistep_step(x + (denoised - unconditional), unconditional, old_denoised, h_prev, sigmas[i],
                                   sigma_down)
        if sigmas[i + 1] > 0 and sigma_up > 0:
            x = x + noise(sigmas[i], sigmas[i + 1]) * (s_noise * sigma_up)
        old_denoised, h_prev = unconditional, (sigmas[i] / sigma_down).log()
    return x


def sample_res_multistep_ancestral(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None,
                                   callback: Callback | None = None, eta: float = 1.0, s_noise: float = 1.0) -> Tensor:
    """Ancestral RES multistep: :func:`sample_res_multistep` with eta = 1 (ComfyUI res_multistep_ancestral)."""
    return sample_res_multistep(model, x, sigmas, noise=noise, callback=callback, eta=eta, s_noise=s_noise)


SPECS = [
    SamplerSpec("res_multistep", sample_res_multistep, order=2, stochastic=False,
                paper="Zhang, Song & Chen 2023, Improved Order Analysis and Design of Exponential Integrator for "
                      "Diffusion Models Sampling (RES, arXiv:2308.02157), multistep 2nd order",
                reference="ComfyUI k_diffusion.sampling.sample_res_multistep"),
    SamplerSpec("res_multistep_ancestral", sample_res_multistep_ancestral, order=1, stochastic=True, weak_order=2,
                reverse_sde=True,
                paper="Zhang, Song & Chen 2023 (RES multistep) + ancestral split (Song et al. 2021, Eq. 16)",
                reference="ComfyUI k_diffusion.sampling.sample_res_multistep_ancestral (eta = 1)"),
]
