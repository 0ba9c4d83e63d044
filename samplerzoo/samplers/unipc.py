"""UniPC: a unified predictor-corrector for the data-prediction exponential integrator (Zhao et al. 2023).

In the sigma frame (lambda = -log sigma, h = lambda_next - lambda) both UniP-p and UniC-p are the DDIM step
(sigma_next / sigma) x + (1 - e^{-h}) D_0 plus a B(h)-weighted combination of the divided differences
D1_k = (D_k - D_0) / r_k, r_k = (lambda_k - lambda_0) / h, of earlier (predictor) or earlier and new
(corrector, r = 1) outputs, with weights rho solving R rho = g (Zhao et al. 2023, Sec. 3, UniC-p and UniP-p):
R_ij = r_j^i, g_i = hh phi_{i+2}(hh) (i+1)! / B(h), hh = -h, B(h) = hh ("bh1") or e^{hh} - 1 ("bh2").
The corrector reuses the evaluation at the predicted point, so UniPC costs one evaluation per step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor

from ..denoiser import Denoiser
from ..noise import NoiseSampler
from ..registry import SamplerSpec
from ..steps import Callback, notify
from .exponential import PREDICTIONS, check_choice, check_order, evaluate, exponential_step, half_log_snr, phi
from .wrappers import with_options

VARIANTS = ("bh1", "bh2")


def unipc_weights(nodes: Sequence[Tensor], h: Tensor, variant: str) -> tuple[Tensor, Tensor]:
    """rho and B(h) for the nodes r_k (the corrector's last node is r = 1), Zhao et al. 2023, Eq. 8 / 11.

    With a single node (second-order predictor, first-order corrector) rho = 1/2, as in the authors' code and
    the reference implementations.
    """
    hh = -h
    b_h = hh if variant == "bh1" else hh.expm1()
    if len(nodes) == 1:
        return torch.full((1,), 0.5, dtype=h.dtype), b_h
    g = torch.stack([hh * phi(k + 1, hh) * math.factorial(k) / b_h for k in range(1, len(nodes) + 1)])
    r = torch.stack([torch.stack(list(nodes)) ** i for i in range(len(nodes))])
    return torch.linalg.solve(r, g), b_h


def unipc_update(x: Tensor, sigma: Tensor, sigma_next: Tensor, values: Sequence[Tensor], lambdas: Sequence[Tensor],
                 variant: str, value_next: Tensor | None = None, prediction: str = "data") -> Tensor:
    """UniP-p (``value_next`` None) or UniC-p (``value_next`` = the output at the predicted point), p = len(values).

    ``values`` are the model outputs at ``lambdas`` (newest first, values[0] at sigma): D for ``prediction="data"``;
    eps for ``"noise"`` (Zhao et al. 2023's noise-prediction UniPC, predict_x0=False), whose step is the same
    combination with hh = h in the noise-prediction step x - sigma_next [(e^h - 1) eps_0 + B(h) sum rho D1].
    To sigma = 0: x = D.
    """
    if sigma_next == 0:
        return values[0] if prediction == "data" else x - sigma * values[0]
    h = half_log_snr(sigma_next) - lambdas[0]
    nodes = [(lam - lambdas[0]) / h for lam in lambdas[1:]]
    differences = [(value - values[0]) / r for value, r in zip(values[1:], nodes, strict=True)]
    if value_next is not None:
        nodes, differences = [*nodes, torch.ones((), dtype=h.dtype)], [*differences, value_next - values[0]]
    x_next = exponential_step(prediction, x, sigma, sigma_next, [values[0]])
    if not nodes:
        return x_next
    rho, b_h = unipc_weights(nodes, h if prediction == "data" else -h, variant)
    correction = b_h * sum((rho[k] * d for k, d in enumerate(differences)), torch.zeros_like(x))
    return x_next - correction if prediction == "data" else x_next - sigma_next * correction


def sample_unipc(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None,
                 callback: Callback | None = None, order: int = 3, variant: Literal["bh1", "bh2"] = "bh1",
                 lower_order_final: bool = True, prediction: Literal["data", "noise"] = "data", afs: bool = False,
                 thresholding: bool = False, dynamic_thresholding_ratio: float = 0.995,
                 sample_max_value: float = 1.0) -> Tensor:
    """UniPC-p, Zhao et al. 2023 (multistep UniP-p, then UniC-p with the next evaluation), B1(h) = -h.

    Orders ramp up from 1 on the first steps; with ``lower_order_final`` (diffusers' and ComfyUI's default) the
    step i of N uses order at most N - i, so the last step is first order. The last step is not corrected. UniC
    raises UniP-p's order to p + 1 (Zhao et al. 2023); the uncorrected first-order last step caps the
    asymptotic order at 2 (fitted on the Gaussian test problem over 8..64 steps: 3.25 bh1, 2.90 bh2, order 3;
    4.4 with ``lower_order_final=False``). ``prediction="noise"``: UniPC on eps (diffusers' predict_x0=False);
    ``afs``: the analytical first step; ``thresholding``: dynamic thresholding of D (``wrappers.py``).
    """
    check_order(order)
    check_choice("variant", variant, VARIANTS)
    check_choice("prediction", prediction, PREDICTIONS)
    model = with_options(model, afs, thresholding, dynamic_thresholding_ratio, sample_max_value)
    values: list[Tensor] = []
    lambdas: list[Tensor] = []
    x_prev, n, step_order = x, len(sigmas) - 1, 1
    for i in range(n):
        denoised, f = evaluate(model, x, sigmas[i], prediction)
        if values:  # UniC: correct the predicted x with its own evaluation, at the previous step's order
            x = unipc_update(x_prev, sigmas[i - 1], sigmas[i], values[:step_order], lambdas[:step_order], variant,
                             f, prediction)
        notify(callback, x, i, sigmas[i], sigmas[i], denoised)
        values, lambdas = [f, *values][:order], [half_log_snr(sigmas[i]), *lambdas][:order]
        step_order = min(order, i + 1, n - i if lower_order_final else order)
        x_prev, x = x, unipc_update(x, sigmas[i], sigmas[i + 1], values[:step_order], lambdas[:step_order], variant,
                                    prediction=prediction)
    return x


def sample_unipc_bh2(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None,
                     callback: Callback | None = None, order: int = 3, lower_order_final: bool = True,
                     prediction: Literal["data", "noise"] = "data", afs: bool = False, thresholding: bool = False,
                     dynamic_thresholding_ratio: float = 0.995, sample_max_value: float = 1.0) -> Tensor:
    """UniPC with B2(h) = e^{-h} - 1 (Zhao et al. 2023; diffusers' default "bh2", ComfyUI's uni_pc_bh2)."""
    return sample_unipc(model, x, sigmas, noise=noise, callback=callback, order=order, variant="bh2",
                        lower_order_final=lower_order_final, prediction=prediction, afs=afs,
                        thresholding=thresholding, dynamic_thresholding_ratio=dynamic_thresholding_ratio,
                        sample_max_value=sample_max_value)


ZHAO = "Zhao et al. 2023, UniPC: A Unified Predictor-Corrector Framework for Fast Sampling of Diffusion Models"
SPECS = [
    SamplerSpec("unipc", sample_unipc, order=3, global_order=2, stochastic=False, analytic_first_step=True,
                aliases=("uni_pc", "UniPCMultistepScheduler"),
                paper=f"{ZHAO} (UniPC-p, B1(h))",
                reference="diffusers.UniPCMultistepScheduler(solver_type='bh1') (predict_x0 both ways, "
                          "thresholding); ComfyUI uni_pc; zju-pi/diff-sampler unipc_sampler (afs)"),
    SamplerSpec("unipc_bh2", sample_unipc_bh2, order=3, global_order=2, stochastic=False, aliases=("uni_pc_bh2",),
                analytic_first_step=True,
                paper=f"{ZHAO} (UniPC-p, B2(h) = exp(-h) - 1)",
                reference="diffusers.UniPCMultistepScheduler(solver_type='bh2') (predict_x0 both ways, "
                          "thresholding); ComfyUI uni_pc_bh2; zju-pi/diff-sampler unipc_sampler (afs)"),
]
