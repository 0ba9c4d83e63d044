"""CFG++ (Chung et al. 2024, CFG++: Manifold-constrained Classifier Free Guidance for Diffusion Models).

Classifier-free guidance steps from the guided prediction D_w = D_u + w (D_c - D_u) along the guided noise
(x - D_w) / sigma, which leaves the data manifold at large w. CFG++ renoises with the *unconditional* noise
instead (their Alg. 1, DDIM-CFG++): in the sigma frame x_next = D_w + sigma_next (x - D_u) / sigma, i.e. the base
sampler's step computed from D_u plus the guidance vector g = D_w - D_u. Their lambda in [0, 1] is the guidance
scale w here, as in ComfyUI. Each sampler follows its ComfyUI namesake (comfy/k_diffusion/sampling.py), where
each one adds g in its own place, and reads the unconditional prediction through ``guidance.py``'s
``with_unconditional``: under any other model it refuses in one line before the first call.
"""

from __future__ import annotations

from torch import Tensor

from ..denoiser import Denoiser
from ..guidance import require_unconditional
from ..noise import NoiseSampler, gaussian_noise_like
from ..registry import SamplerSpec
from ..steps import Callback, UnconditionalView, ancestral_split, ancestral_step, denoise_pair, notify
from .dpm_solver import dpmpp_2s_step
from .exponential import data_step, half_log_snr
from .ode import gradient_estimation_sampling
from .res import res_multistep_sampling


def sample_euler_ancestral_cfg_pp(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None,
                                  callback: Callback | None = None, eta: float = 1.0, s_noise: float = 1.0) -> Tensor:
    """Ancestral Euler CFG++: x_next = D_w + sigma_down (x - D_u) / sigma + sigma_up z (Chung et al. 2024, Alg. 1
    with the ancestral split of Song et al. 2021, Eq. 16); eta = 0 is DDIM-CFG++ (``euler_cfg_pp``)."""
    require_unconditional(model, "euler_ancestral_cfg_pp")
    noise = noise or gaussian_noise_like(x)
    for i in range(len(sigmas) - 1):
        guided, unconditional = denoise_pair(model, x, sigmas[i])
        notify(callback, x, i, sigmas[i], sigmas[i], guided)
        sigma_down, sigma_up = ancestral_split(sigmas[i], sigmas[i + 1], eta)
        x = ancestral_step(x, unconditional, sigmas[i], sigma_down, sigma_up, noise, sigmas[i + 1], s_noise)
        x = x + (guided - unconditional)
    return x


def sample_euler_cfg_pp(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None,
                        callback: Callback | None = None) -> Tensor:
    """DDIM-CFG++ (Chung et al. 2024, Alg. 1): x_next = D_w + sigma_next (x - D_u) / sigma."""
    require_unconditional(model, "euler_cfg_pp")
    return sample_euler_ancestral_cfg_pp(model, x, sigmas, noise=noise, callback=callback, eta=0.0)


def sample_dpmpp_2s_ancestral_cfg_pp(model: Denoiser, x: Tensor, sigmas: Tensor, *,
                                     noise: NoiseSampler | None = None, callback: Callback | None = None,
                                     eta: float = 1.0, s_noise: float = 1.0) -> Tensor:
    """Ancestral DPM-Solver++(2S) CFG++: the 2S step to sigma_down on the unconditional predictions (its midpoint
    evaluation included), sigma_up noise, plus the guidance vector of the step's first evaluation."""
    require_unconditional(model, "dpmpp_2s_ancestral_cfg_pp")
    noise = noise or gaussian_noise_like(x)
    unconditional_model = UnconditionalView(model)
    for i in range(len(sigmas) - 1):
        guided, unconditional = denoise_pair(model, x, sigmas[i])
        notify(callback, x, i, sigmas[i], sigmas[i], guided)
        sigma_down, sigma_up = ancestral_split(sigmas[i], sigmas[i + 1], eta)
        x = dpmpp_2s_step(unconditional_model, x, unconditional, sigmas[i], sigma_down)
        if sigmas[i + 1] > 0 and sigma_up > 0:
            x = x + noise(sigmas[i], sigmas[i + 1]) * (s_noise * sigma_up)
        x = x + (guided - unconditional)
    return x


def sample_dpmpp_2m_cfg_pp(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None,
                           callback: Callback | None = None) -> Tensor:
    """DPM-Solver++(2M) CFG++ (ComfyUI's): the DDIM step on D_u plus g, and the 2M correction
    (1 - e^{-h}) (D_w - D_u,prev) h / (2 h_prev), whose difference takes the guided D_w (Lu et al. 2022b, Alg. 2)."""
    require_unconditional(model, "dpmpp_2m_cfg_pp")
    previous: Tensor | None = None
    for i in range(len(sigmas) - 1):
        guided, unconditional = denoise_pair(model, x, sigmas[i])
        notify(callback, x, i, sigmas[i], sigmas[i], guided)
        terms = [unconditional]
        if previous is not None and sigmas[i + 1] > 0:
            h = half_log_snr(float(sigmas[i + 1])) - half_log_snr(float(sigmas[i]))
            h_prev = half_log_snr(float(sigmas[i])) - half_log_snr(float(sigmas[i - 1]))
            terms.append((guided - previous) * (h / h_prev))
        x = data_step(x, sigmas[i], sigmas[i + 1], terms, first_weight_only=True) + (guided - unconditional)
        previous = unconditional
    return x


def sample_res_multistep_cfg_pp(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None,
                                callback: Callback | None = None, eta: float = 0.0, s_noise: float = 1.0) -> Tensor:
    """RES multistep CFG++ (ComfyUI's): the RES 2nd-order step on the unconditional predictions from x + g
    (Zhang, Song & Chen 2023; first step Euler on D_u plus g)."""
    require_unconditional(model, "res_multistep_cfg_pp")
    return res_multistep_sampling(model, x, sigmas, noise, callback, eta, s_noise, cfg_pp=True)


def sample_res_multistep_ancestral_cfg_pp(model: Denoiser, x: Tensor, sigmas: Tensor, *,
                                          noise: NoiseSampler | None = None, callback: Callback | None = None,
                                          eta: float = 1.0, s_noise: float = 1.0) -> Tensor:
    """Ancestral RES multistep CFG++: :func:`sample_res_multistep_cfg_pp` with eta = 1."""
    require_unconditional(model, "res_multistep_ancestral_cfg_pp")
    return res_multistep_sampling(model, x, sigmas, noise, callback, eta, s_noise, cfg_pp=True)


def sample_gradient_estimation_cfg_pp(model: Denoiser, x: Tensor, sigmas: Tensor, *,
                                      noise: NoiseSampler | None = None, callback: Callback | None = None,
                                      ge_gamma: float = 2.0) -> Tensor:
    """Gradient estimation CFG++: the gradient-estimation step on the unconditional slope, plus g."""
    require_unconditional(model, "gradient_estimation_cfg_pp")
    return gradient_estimation_sampling(model, x, sigmas, callback, ge_gamma, cfg_pp=True)


CHUNG = "Chung et al. 2024, CFG++: Manifold-constrained Classifier Free Guidance for Diffusion Models"
COMFY = "ComfyUI comfy/k_diffusion/sampling.py"
SPECS = [
    SamplerSpec("euler_cfg_pp", sample_euler_cfg_pp, order=1, stochastic=False, needs_unconditional=True,
                aliases=("ddim_cfg_pp",), paper=f"{CHUNG}, Alg. 1 (DDIM-CFG++)",
                reference=f"{COMFY} sample_euler_cfg_pp"),
    SamplerSpec("euler_ancestral_cfg_pp", sample_euler_ancestral_cfg_pp, order=1, stochastic=True,
                reverse_sde=True, needs_unconditional=True, aliases=("euler_a_cfg_pp",),
                paper=f"{CHUNG}, Alg. 1 with the ancestral split", reference=f"{COMFY} sample_euler_ancestral_cfg_pp"),
    SamplerSpec("dpmpp_2s_ancestral_cfg_pp", sample_dpmpp_2s_ancestral_cfg_pp, order=1, stochastic=True,
                reverse_sde=True, evals_per_step=2, final_step_evals=1, needs_unconditional=True,
                paper=f"{CHUNG}; Lu et al. 2022b, Alg. 1 (ancestral)",
                reference=f"{COMFY} sample_dpmpp_2s_ancestral_cfg_pp"),
    SamplerSpec("dpmpp_2m_cfg_pp", sample_dpmpp_2m_cfg_pp, order=2, stochastic=False, needs_unconditional=True,
                paper=f"{CHUNG}; Lu et al. 2022b, Alg. 2", reference=f"{COMFY} sample_dpmpp_2m_cfg_pp"),
    SamplerSpec("res_multistep_cfg_pp", sample_res_multistep_cfg_pp, order=2, stochastic=False,
                needs_unconditional=True, paper=f"{CHUNG}; Zhang, Song & Chen 2023 (RES multistep)",
                reference=f"{COMFY} sample_res_multistep_cfg_pp"),
    SamplerSpec("res_multistep_ancestral_cfg_pp", sample_res_multistep_ancestral_cfg_pp, order=1, stochastic=True,
                weak_order=2, reverse_sde=True, needs_unconditional=True,
                paper=f"{CHUNG}; Zhang, Song & Chen 2023 (RES multistep, ancestral)",
                reference=f"{COMFY} sample_res_multistep_ancestral_cfg_pp"),
    SamplerSpec("gradient_estimation_cfg_pp", sample_gradient_estimation_cfg_pp, order=1, stochastic=False,
                needs_unconditional=True, paper=f"{CHUNG}; Permenter & Yuan 2024 (gradient estimation)",
                reference=f"{COMFY} sample_gradient_estimation_cfg_pp"),
]
