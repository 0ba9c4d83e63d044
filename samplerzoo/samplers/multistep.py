"""Linear multistep (Adams-Bashforth type) solvers of the probability-flow ODE, one evaluation per step.

They reuse the slopes of earlier steps instead of evaluating the denoiser again. The shared helper
:func:`lagrange_integrals` gives Adams-Bashforth weights on any (variable) grid in closed form: the
integral of each Lagrange basis polynomial over the step, by exact polynomial integration.

Each spec declares the nominal ``order`` of its interior steps and the ``global_order`` its error falls at:

* lms, ipndm_v and deis take 3rd/4th-order interior steps, but the warm-up (an Euler first step, then orders 2
  and 3) leaves the first step's O(h^2) error in the result. It is small at high sigma, where the ODE is nearly
  linear, so lms fits ~3.3 over 8-64 steps from sigma 10 and reaches its asymptotic 2 only at many steps.
* ipndm and plms/pndm apply fixed-step coefficients on whatever grid they are given. On a non-uniform grid
  (Karras, log-uniform) they miss the first moment condition by O(h^2) per step, so they are globally 2nd order
  whatever ``order`` is; ipndm_v's exact weights restore the interior order.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy
import torch
from torch import Tensor

from ..denoiser import Denoiser
from ..errors import UnknownNameError, UnreachableNFEError
from ..noise import NoiseSampler
from ..noise_schedules import ContinuousVP
from ..registry import SamplerSpec
from ..steps import Callback, denoise, notify, to_d
from .wrappers import with_options


def lagrange_integrals(nodes: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """Integrals over [a, b] of the Lagrange basis polynomials l_j on ``nodes`` (1-D), in closed form.

    l_j(tau) = prod_{k != j} (tau - t_k) / (t_j - t_k). Each is expanded in u = tau - a (so the monomials
    stay O(b - a) and nothing cancels) and integrated term by term: int_0^h u^m du = h^(m+1) / (m+1).
    The integral of the interpolant of f is then ``(lagrange_integrals(t, a, b) * f(t)).sum()``: with
    a = t_0 these are the variable-step Adams-Bashforth weights.
    """
    shifted, h = nodes - a, b - a
    weights = []
    for j in range(len(nodes)):
        coeffs = torch.ones_like(h)[None]  # ascending powers of u
        for k in range(len(nodes)):
            if k != j:  # multiply by (u - c_k) / (c_j - c_k)
                zero = coeffs.new_zeros(1)
                coeffs = (torch.cat([zero, coeffs]) - shifted[k] * torch.cat([coeffs, zero])) \
                    / (shifted[j] - shifted[k])
        powers = torch.arange(1, len(coeffs) + 1, dtype=coeffs.dtype)
        weights.append((coeffs * h**powers / powers).sum())
    return torch.stack(weights)


Weights = Callable[[Tensor, int, int], Tensor]
"""``weights(sigmas, i, k) -> (k,)``: the multipliers of the ``k`` newest slopes d_i, d_{i-1}, ... on step i."""

ADAMS_BASHFORTH = (
    (1.0,),
    (3 / 2, -1 / 2),
    (23 / 12, -16 / 12, 5 / 12),
    (55 / 24, -59 / 24, 37 / 24, -9 / 24),
)
"""Fixed-step Adams-Bashforth coefficients of orders 1-4, newest slope first (Hairer et al. 1993, III.1)."""


def check_order(name: str, order: int, highest: int = 4) -> None:
    if not 1 <= order <= highest:
        raise ValueError(f"{name} order must be 1..{highest}, got {order}")


GAUSS_LEGENDRE = tuple(torch.tensor(a, dtype=torch.float64) for a in numpy.polynomial.legendre.leggauss(16))
"""16-point Gauss-Legendre nodes and weights on [-1, 1]: exact for polynomials of degree < 32."""


def lagrange_quadrature(nodes: Tensor, a: Tensor, b: Tensor, jacobian: Callable[[Tensor], Tensor]) -> Tensor:
    """Integrals over u in [a, b] of l_j(u) * jacobian(u), l_j the Lagrange basis on ``nodes``, by Gauss-Legendre.

    For a smooth jacobian (exp(u) for log sigma, d sigma / dt for VP time) 16 points reach float64 accuracy
    on the short intervals of a sampling step.
    """
    z, w = GAUSS_LEGENDRE
    u = (a + b) / 2 + (b - a) / 2 * z
    basis = torch.stack([torch.stack([(u - nodes[k]) / (nodes[j] - nodes[k]) for k in range(len(nodes)) if k != j])
                         .prod(0) if len(nodes) > 1 else torch.ones_like(u) for j in range(len(nodes))])
    return (basis * jacobian(u) * w).sum(-1) * (b - a) / 2


def multistep_update(x: Tensor, history: list[Tensor], weights: Tensor) -> Tensor:
    """x + sum_j weights[j] * history[-1 - j]: the newest slope takes the first weight."""
    for weight, d in zip(weights, reversed(history), strict=False):  # fewer weights: lower order
        x = x + d * weight.to(x.dtype)
    return x


def variable_step_weights(sigmas: Tensor, i: int, k: int) -> Tensor:
    """Exact variable-step Adams-Bashforth weights in sigma: the Lagrange basis on s_i, ..., s_{i-k+1}
    integrated over [s_i, s_{i+1}]."""
    return lagrange_integrals(sigmas[i - k + 1:i + 1].flip(0), sigmas[i], sigmas[i + 1])


def fixed_step_weights(sigmas: Tensor, i: int, k: int) -> Tensor:
    """(s_{i+1} - s_i) times the fixed-step Adams-Bashforth coefficients, whatever the earlier steps were."""
    return (sigmas[i + 1] - sigmas[i]) * torch.tensor(ADAMS_BASHFORTH[k - 1], dtype=sigmas.dtype)


def adams_sampling(model: Denoiser, x: Tensor, sigmas: Tensor, weights: Weights, order: int,
                   callback: Callback | None, denoise_to_zero: bool) -> Tensor:
    """One evaluation per step: keep the last ``order`` slopes d = (x - D)/sigma, step with ``weights``.

    Early steps use as many slopes as there are (lower-order warm-up). With ``denoise_to_zero`` a step
    that lands on sigma = 0 returns the denoised sample, i.e. takes an Euler step (diff-sampler's iPNDM).
    """
    ds: list[Tensor] = []
    for i in range(len(sigmas) - 1):
        denoised = denoise(model, x, sigmas[i])
        notify(callback, x, i, sigmas[i], sigmas[i], denoised)
        ds = [*ds, to_d(x, sigmas[i], denoised)][-order:]
        to_zero = denoise_to_zero and sigmas[i + 1] == 0
        x = denoised if to_zero else multistep_update(x, ds, weights(sigmas, i, len(ds)))
    return x


def sample_lms(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None,
               callback: Callback | None = None, order: int = 4) -> Tensor:
    """Linear multistep in sigma, x_{i+1} = x_i + sum_j [int_{s_i}^{s_{i+1}} l_j] d_{i-j} (Karras et al. 2022, Eq. 3
    with the Adams-Bashforth weights of the last ``order`` slopes; k-diffusion's sample_lms, lower order warm-up).

    The weights are exact (closed form) where k-diffusion and diffusers integrate numerically with scipy's quad.
    """
    check_order("lms", order)
    return adams_sampling(model, x, sigmas, variable_step_weights, order, callback, denoise_to_zero=False)


def sample_ipndm(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None,
                 callback: Callback | None = None, order: int = 4, denoise_to_zero: bool = True,
                 afs: bool = False) -> Tensor:
    """Improved PNDM: x_{i+1} = x_i + (s_{i+1} - s_i) sum_j b_j d_{i-j} with the fixed Adams-Bashforth b_j and lower
    order warm-up (Zhang & Chen 2023, DEIS, iPNDM); the step to sigma = 0 returns D (Euler, as diff-sampler).

    ``denoise_to_zero=False`` takes the Adams-Bashforth step to sigma = 0 as well: diffusers' IPNDMScheduler.
    ``afs``: the first slope analytical (AMED's analytical first step, ``wrappers.py``), as diff-sampler's ipndm,
    ipndm_v and deis offer it; that slope stays in the history.
    """
    check_order("ipndm", order)
    return adams_sampling(with_options(model, afs), x, sigmas, fixed_step_weights, order, callback, denoise_to_zero)


def sample_ipndm_v(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None,
                   callback: Callback | None = None, order: int = 4, denoise_to_zero: bool = True,
                   afs: bool = False) -> Tensor:
    """Variable-step iPNDM: iPNDM (Zhang & Chen 2023) with the exact variable-step Adams-Bashforth weights (Hairer,
    Norsett & Wanner 1993, Sec. III.5); on uniform sigma steps it is iPNDM. Unlike lms, the step to 0 returns D.

    diff-sampler's and ComfyUI's ipndm_v use closed-form weights that differ from these on variable steps and, at
    4th order, on uniform ones too: there they give (57, -65, 43, -11)/24, not Adams-Bashforth's (55, -59, 37, -9)/24,
    so they are not iPNDM on uniform steps. Their 3rd-order weights are AB3's on uniform steps but satisfy the moment
    condition sum_j w_j (s_{i-j} - s_i)^2 = h^3 / 3 only when h (h + h_1) = h_1 (h_1 + h_2) (h, h_1, h_2 the current
    and previous steps).
    """
    check_order("ipndm_v", order)
    return adams_sampling(with_options(model, afs), x, sigmas, variable_step_weights, order, callback,
                          denoise_to_zero)


DEIS_VARIABLES = ("t", "rho", "log_rho")


def edm_fitted_vp(sigma_min: float = 0.002, sigma_max: float = 80.0, eps_t: float = 1e-3) -> ContinuousVP:
    """The VP SDE whose sigma(eps_t) = sigma_min and sigma(1) = sigma_max: DEIS's time for EDM sigmas
    (diff-sampler's and ComfyUI's ``edm2t``)."""
    top, bottom = math.log(sigma_max**2 + 1), math.log(sigma_min**2 + 1)
    beta_d = 2 * (bottom / eps_t - top) / (eps_t - 1)
    return ContinuousVP(beta_min=top - beta_d / 2, beta_d=beta_d, eps_t=eps_t)


def deis_weights(variable: str, vp: ContinuousVP) -> Weights:
    """DEIS's Adams-Bashforth weights int_{s_i}^{s_{i+1}} l_j(v(sigma)) d sigma, eps interpolated in v = ``variable``.

    In the sigma frame the exponential integrator's linear part is exact (x/alpha = x0 + rho eps, rho = sigma), so
    x_{i+1} = x_i + int eps d rho and the variants differ only in the variable of the Lagrange extrapolation of
    eps: VP time t (tAB), rho = sigma (rhoAB, exactly lms) or log rho (diffusers' DEISMultistepScheduler).
    """
    def weights(sigmas: Tensor, i: int, k: int) -> Tensor:
        past, a, b = sigmas[i - k + 1:i + 1].flip(0), sigmas[i], sigmas[i + 1]
        if k == 1:
            return (b - a)[None]
        if variable == "rho":
            return lagrange_integrals(past, a, b)
        if variable == "log_rho":
            return lagrange_quadrature(past.log(), a.log(), b.log(), torch.exp)
        t_of = vp.t
        # d sigma / dt = (beta_min + beta_d t) (sigma^2 + 1) / (2 sigma)
        return lagrange_quadrature(t_of(past), t_of(a), t_of(b), lambda t: (vp.beta_min + vp.beta_d * t)
                                   * (vp.sigma(t) ** 2 + 1) / (2 * vp.sigma(t)))
    return weights


def sample_deis(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None,
                callback: Callback | None = None, order: int = 3, variable: str = "t",
                lower_order_final: bool = False, vp: ContinuousVP | None = None, afs: bool = False,
                thresholding: bool = False, dynamic_thresholding_ratio: float = 0.995,
                sample_max_value: float = 1.0) -> Tensor:
    """DEIS multistep, x_{i+1} = x_i + sum_j [int_{s_i}^{s_{i+1}} l_j(v) d rho] eps_{i-j} (Zhang & Chen 2023, tAB-
    and rhoAB-DEIS, in the sigma frame); the step to sigma = 0 is Euler, as in diff-sampler.

    ``variable``: "t" (tAB, VP time of ``vp``, by default the VP SDE fitted to EDM's sigma range as in
    diff-sampler/ComfyUI), "rho" or "log_rho" (diffusers' DEISMultistepScheduler). ``order`` 1-4: 4 is
    diff-sampler's default (max_order=4, tAB-DEIS's fourth order), diffusers stops at 3. ``lower_order_final``
    caps step i of N at order N - i (diffusers does so below 15 steps). ``afs`` as for :func:`sample_ipndm`;
    ``thresholding`` as diffusers' (its eps is read off the thresholded x0, which thresholding D gives).
    """
    check_order("deis", order)
    if variable not in DEIS_VARIABLES:
        raise UnknownNameError("deis variable", variable, DEIS_VARIABLES)
    inner = deis_weights(variable, vp or edm_fitted_vp())
    steps = len(sigmas) - 1

    def weights(sigmas: Tensor, i: int, k: int) -> Tensor:
        return inner(sigmas, i, min(k, steps - i) if lower_order_final else k)
    model = with_options(model, afs, thresholding, dynamic_thresholding_ratio, sample_max_value)
    return adams_sampling(model, x, sigmas, weights, order, callback, denoise_to_zero=True)


# ---------------------------------------------------------------------------------------------------- PNDM

def heun_warmup(model: Denoiser, x: Tensor, d: Tensor, sigma: Tensor, sigma_next: Tensor, sigma_mid: Tensor) -> Tensor:
    """Heun's step from the slope d already taken at x (one more evaluation; ``sigma_mid`` unused)."""
    dt = sigma_next - sigma
    x_pred = x + d * dt
    return x + (d + to_d(x_pred, sigma_next, denoise(model, x_pred, sigma_next))) * (dt / 2)


def prk_warmup(model: Denoiser, x: Tensor, d: Tensor, sigma: Tensor, sigma_next: Tensor, sigma_mid: Tensor) -> Tensor:
    """PNDM's pseudo Runge-Kutta step: classical RK4 through the transfer x' = x + (s' - s) e (Liu et al. 2022, PRK;
    in the sigma frame their transfer part phi is this Euler/DDIM step), midpoint at ``sigma_mid``."""
    slopes = [d]
    for target in (sigma_mid, sigma_mid, sigma_next):
        x_stage = x + slopes[-1] * (target - sigma)
        slopes.append(to_d(x_stage, target, denoise(model, x_stage, target)))
    e1, e2, e3, e4 = slopes
    return x + (e1 + 2 * e2 + 2 * e3 + e4) * ((sigma_next - sigma) / 6)


Warmup = Callable[[Denoiser, Tensor, Tensor, Tensor, Tensor, Tensor], Tensor]


def pseudo_linear_multistep(model: Denoiser, x: Tensor, sigmas: Tensor, callback: Callback | None, warmup: Warmup,
                            warmup_steps: int, midpoints: Tensor | None) -> Tensor:
    """The first ``warmup_steps`` steps by ``warmup`` (except a step to sigma = 0), then fixed-step Adams-Bashforth
    on the slopes taken at the start of every step, up to 4th order (Liu et al. 2022, PLMS)."""
    midpoints = (sigmas[:-1] + sigmas[1:]) / 2 if midpoints is None else midpoints
    ds: list[Tensor] = []
    for i in range(len(sigmas) - 1):
        denoised = denoise(model, x, sigmas[i])
        notify(callback, x, i, sigmas[i], sigmas[i], denoised)
        d = to_d(x, sigmas[i], denoised)
        if i < warmup_steps and sigmas[i + 1] > 0:
            x = warmup(model, x, d, sigmas[i], sigmas[i + 1], midpoints[i])
            ds = [*ds, d]
        else:
            ds = [*ds, d][-4:]
            x = multistep_update(x, ds, fixed_step_weights(sigmas, i, len(ds)))
    return x


def sample_plms(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None,
                callback: Callback | None = None) -> Tensor:
    """PLMS: Adams-Bashforth on eps through the DDIM transfer, started by one Heun step (Liu et al. 2022, PLMS;
    diffusers' PNDMScheduler with skip_prk_steps=True). N steps cost N + 1 (N = 1 to sigma = 0: 1)."""
    return pseudo_linear_multistep(model, x, sigmas, callback, heun_warmup, 1, None)


def sample_pndm(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None,
                callback: Callback | None = None, midpoints: Tensor | None = None) -> Tensor:
    """PNDM: three pseudo Runge-Kutta steps (4 evaluations each), then 4th-order PLMS (Liu et al. 2022, PNDM).

    ``midpoints[i]`` is the sigma of the RK midpoint of step i (default (s_i + s_{i+1}) / 2, RK4 in sigma). PNDM's
    midpoint is halfway in training time: diffusers' PNDMScheduler puts it at timestep t_i - (T // N) // 2, so
    pass those trained levels to reproduce it.
    """
    return pseudo_linear_multistep(model, x, sigmas, callback, prk_warmup, 3, midpoints)


def warmup_nfe(steps: int, to_zero: bool, warmup_steps: int, extra: int) -> int:
    """One evaluation per step plus ``extra`` for each warm-up step that does not land on sigma = 0."""
    return steps + extra * min(warmup_steps, steps - 1 if to_zero else steps)


def steps_for_cost(name: str, nfe: int, cost: Callable[[int], int], formula: str) -> int:
    """The number of steps whose (increasing) ``cost`` is exactly ``nfe``, else UnreachableNFEError."""
    steps = next(n for n in range(1, nfe + 2) if cost(n) >= nfe)
    if cost(steps) == nfe:
        return steps
    reachable = [cost(n) for n in (steps - 1, steps) if n >= 1]
    raise UnreachableNFEError(f"sampler {name!r} spends {formula} evaluations, so NFE {nfe} is "
                              f"unreachable; nearest reachable: {', '.join(map(str, reachable))}")


def plms_nfe(sigmas: Tensor, **options: Any) -> int:
    return warmup_nfe(len(sigmas) - 1, float(sigmas[-1]) == 0, 1, 1)


def plms_steps(nfe: int, to_zero: bool, **options: Any) -> int:
    return steps_for_cost("plms", nfe, lambda n: warmup_nfe(n, to_zero, 1, 1), "steps+1")


def pndm_nfe(sigmas: Tensor, **options: Any) -> int:
    return warmup_nfe(len(sigmas) - 1, float(sigmas[-1]) == 0, 3, 3)


def pndm_steps(nfe: int, to_zero: bool, **options: Any) -> int:
    return steps_for_cost("pndm", nfe, lambda n: warmup_nfe(n, to_zero, 3, 3), "steps+9")


LIU = "Liu et al. 2022, Pseudo Numerical Methods for Diffusion Models on Manifolds"
SPECS = [
    SamplerSpec("lms", sample_lms, order=4, global_order=2, stochastic=False, aliases=("LMSDiscreteScheduler", "k_lms"),
                paper="Karras et al. 2022, Eq. 3 integrated by variable-step Adams-Bashforth (k-diffusion's LMS)",
                reference="k_diffusion.sampling.sample_lms; diffusers.LMSDiscreteScheduler"),
    SamplerSpec("ipndm", sample_ipndm, order=4, global_order=2, stochastic=False, aliases=("IPNDMScheduler",),
                analytic_first_step=True,
                paper="Zhang & Chen 2023, Fast Sampling of Diffusion Models with Exponential Integrator (DEIS), iPNDM",
                reference="zju-pi/diff-sampler get_ipndm; ComfyUI sample_ipndm; diffusers.IPNDMScheduler"),
    SamplerSpec("ipndm_v", sample_ipndm_v, analytic_first_step=True, order=4, global_order=2, stochastic=False,
                paper="Zhang & Chen 2023 (iPNDM), variable-step Adams-Bashforth weights (Hairer et al. 1993, III.5)",
                reference="zju-pi/diff-sampler get_ipndm_v; ComfyUI sample_ipndm_v"),
    SamplerSpec("deis", sample_deis, order=3, global_order=2, stochastic=False, aliases=("DEISMultistepScheduler",),
                analytic_first_step=True,
                paper="Zhang & Chen 2023, Fast Sampling of Diffusion Models with Exponential Integrator, tAB-DEIS "
                      "(orders 1-4)",
                reference="diffusers.DEISMultistepScheduler (variable='log_rho', orders 1-3); ComfyUI sample_deis "
                          "(tAB); zju-pi/diff-sampler deis_sampler (max_order 4, afs)"),
    SamplerSpec("plms", sample_plms, order=4, global_order=2, stochastic=False,
                paper=f"{LIU}, PLMS with a Heun start",
                reference="diffusers.PNDMScheduler(skip_prk_steps=True)",
                cost_formula="steps+1",
                nfe_fn=plms_nfe, steps_fn=plms_steps),
    SamplerSpec("pndm", sample_pndm, order=4, global_order=2, stochastic=False, aliases=("PNDMScheduler",),
                paper=f"{LIU}, PNDM (pseudo Runge-Kutta start, then PLMS)",
                reference="diffusers.PNDMScheduler(skip_prk_steps=False)", cost_formula="steps+9",
                nfe_fn=pndm_nfe, steps_fn=pndm_steps),
]
