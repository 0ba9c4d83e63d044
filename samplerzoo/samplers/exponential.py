"""Exponential-integrator coefficients in log-SNR, shared by DPM-Solver(++), UniPC, SEEDS and the singlestep solvers.

In the sigma frame (alpha = 1) the half log-SNR is lambda = -log sigma, and a step sigma -> sigma_next has
h = lambda_next - lambda = log(sigma / sigma_next). The probability-flow ODE is solved exactly in its linear
part (Lu et al. 2022a, Eq. 3.4); only the network's output is approximated, by a Taylor polynomial in lambda
(Lu et al. 2022a, App. B, Eq. B.4):

* data prediction (DPM-Solver++, Lu et al. 2022b), with derivatives taken along lambda:
  x_next = e^{-h} x + sum_k h phi_{k+1}(-h) (h^k D^(k));
* noise prediction (DPM-Solver, Lu et al. 2022a), eps = (x - D) / sigma:
  x_next = x - sigma_next sum_k h phi_{k+1}(h) (h^k eps^(k)).

The first-order ++ step x_next = (sigma_next/sigma) x + (1 - e^{-h}) D is DDIM; the first-order noise step
x_next = x + (sigma_next - sigma) eps is Euler. A step landing on sigma = 0 (h = inf) is x_next = D.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypeVar

import torch
from torch import Tensor

from ..denoiser import Denoiser, per_sample
from ..errors import UnknownNameError
from ..steps import denoise

SOLVER_TYPES = ("midpoint", "heun")
SECOND_DIFFERENCES = ("reference", "taylor")

Scalar = TypeVar("Scalar", float, Tensor)
"""Step coefficients are Python floats for a whole-batch step (no tiny tensor ops), tensors for per-sample steps."""


def half_log_snr(sigma: Scalar) -> Scalar:
    """lambda = -log sigma: half the log signal-to-noise ratio log(alpha / sigma) in the sigma frame."""
    return -math.log(sigma) if isinstance(sigma, float) else -sigma.log()


def exp(z: Scalar) -> Scalar:
    return math.exp(z) if isinstance(z, float) else z.exp()


def expm1(z: Scalar) -> Scalar:
    return math.expm1(z) if isinstance(z, float) else z.expm1()


def phi(k: int, z: Scalar) -> Scalar:
    """phi_k(z) = int_0^1 e^{(1-t) z} t^{k-1} / (k-1)! dt, by phi_0 = e^z, phi_{k+1} = (phi_k - 1/k!) / z.

    These are the weights of the exponential integrators (Lu et al. 2022a, App. B, Eq. B.2; Hochbruck &
    Ostermann 2010): int_0^h e^{z(h-u)/h} u^k / k! du = h^{k+1} phi_{k+1}(z).
    """
    if k == 0:
        return exp(z)
    value = expm1(z) / z
    for j in range(1, k):
        value = (value - 1 / math.factorial(j)) / z
    return value


def data_weight(k: int, h_hat: Scalar) -> Scalar:
    """Weight of h^k D^(k) in the data-prediction step: h_hat phi_{k+1}(-h_hat) (1 - e^{-h_hat} for k = 0)."""
    return -expm1(-h_hat) if k == 0 else h_hat * phi(k + 1, -h_hat)


def noise_weight(k: int, h: Tensor) -> Tensor:
    """Weight of sigma_next h^k eps^(k) in the noise-prediction step: h phi_{k+1}(h) (e^h - 1 for k = 0)."""
    return h.expm1() if k == 0 else h * phi(k + 1, h)


def data_step(x: Tensor, sigma: Tensor | float, sigma_next: Tensor | float, terms: Sequence[Tensor], eta: float = 0.0,
              first_weight_only: bool = False) -> Tensor:
    """DPM-Solver++ step sigma -> sigma_next: e^{-h_hat} x + sum_k data_weight(k, h_hat) terms[k].

    ``terms[k]`` estimates h^k D^(k) (h = lambda_next - lambda, derivatives along lambda); h_hat = (1 + eta) h
    (eta > 0: the deterministic part of the SDE step). ``first_weight_only`` weights terms[1] with
    (1 - e^{-h_hat}) / 2 instead of h_hat phi_2(-h_hat): the paper's 2M/"midpoint" rule (Lu et al. 2022b, Alg. 2).
    Landing on sigma = 0 gives D = terms[0]. One sigma per batch (a float or 0-dim tensor) gives float weights;
    per-sample sigmas give tensor weights.
    """
    if any(isinstance(s, Tensor) and s.dim() > 0 for s in (sigma, sigma_next)):
        sigma, sigma_next = (torch.as_tensor(s, dtype=torch.float64) for s in (sigma, sigma_next))
        return data_combination(x, (1 + eta) * (half_log_snr(sigma_next) - half_log_snr(sigma)), terms,
                                first_weight_only)
    if float(sigma_next) == 0:
        return terms[0]
    return data_combination(x, (1 + eta) * math.log(float(sigma) / float(sigma_next)), terms, first_weight_only)


def data_combination(x: Tensor, h_hat: Scalar, terms: Sequence[Tensor], first_weight_only: bool) -> Tensor:
    """e^{-h_hat} x + sum_k data_weight(k, h_hat) terms[k]: the body of :func:`data_step`."""
    x = exp(-h_hat) * x + data_weight(0, h_hat) * terms[0]
    for k, term in enumerate(terms[1:], start=1):
        weight = data_weight(0, h_hat) / 2 if first_weight_only and k == 1 else data_weight(k, h_hat)
        x = x + weight * term
    return x


def noise_step(x: Tensor, sigma: Tensor, sigma_next: Tensor, terms: Sequence[Tensor],
               first_weight_only: bool = False) -> Tensor:
    """DPM-Solver step sigma -> sigma_next: x - sigma_next sum_k noise_weight(k, h) terms[k], terms[k] ~ h^k eps^(k).

    ``first_weight_only`` weights terms[1] with (e^h - 1) / 2 (DPM-Solver-2, Lu et al. 2022a, Alg. 1).
    Landing on sigma = 0 gives D = x - sigma eps.
    """
    if sigma_next.dim() == 0 and sigma_next == 0:
        return x - sigma * terms[0]
    h = half_log_snr(sigma_next) - half_log_snr(sigma)
    x = x - sigma_next * noise_weight(0, h) * terms[0]
    for k, term in enumerate(terms[1:], start=1):
        weight = noise_weight(0, h) / 2 if first_weight_only and k == 1 else noise_weight(k, h)
        x = x - sigma_next * weight * term
    return x


def multistep_terms(values: Sequence[Tensor], lambdas: Sequence[Scalar], h: Scalar,
                    second_difference: str = "reference") -> list[Tensor]:
    """Terms h^k f^(k), k < len(values), from the latest values of f at lambdas (newest first), by divided
    differences (Lu et al. 2022b, Alg. 2 for two points; three points as in the authors' 3M code).

    With three points the slopes s0, s1 of the last two intervals give f'' ~ 2 (s0 - s1) / (h0 + h1) and
    f' ~ s0 + h0 f'' / 2. DPM-Solver++(3M) as published (and in k-diffusion and diffusers) uses half that
    f'' (``second_difference="reference"``), which is exact only to first order: that solver then converges
    with order 2, not 3. ``"taylor"`` uses the Taylor coefficient and converges with order 3.
    """
    terms = [values[0]]
    if len(values) >= 2:
        h0 = lambdas[0] - lambdas[1]
        slope0 = (values[0] - values[1]) / h0
        if len(values) == 2:
            return [values[0], h * slope0]
        h1 = lambdas[1] - lambdas[2]
        second = 2 * (slope0 - (values[1] - values[2]) / h1) / (h0 + h1)
        terms += [h * (slope0 + h0 / 2 * second), second * (h**2 * (0.5 if second_difference == "reference" else 1))]
    return terms


def check_choice(kind: str, value: str, known: Sequence[str]) -> None:
    """Raise UnknownNameError unless ``value`` is one of ``known``."""
    if value not in known:
        raise UnknownNameError(kind, value, known)


def lambda_point(sigma: Tensor, sigma_next: Tensor, r: float) -> Tensor:
    """The sigma at lambda + r h between sigma and sigma_next: sigma^{1-r} sigma_next^r."""
    return (half_log_snr(sigma) + r * (half_log_snr(sigma_next) - half_log_snr(sigma))).neg().exp()


PREDICTIONS = ("noise", "data")


def evaluate(model: Denoiser, x: Tensor, sigma: Tensor, prediction: str) -> tuple[Tensor, Tensor]:
    """D(x, sigma) and the output the solver integrates: D itself ("data") or eps = (x - D) / sigma ("noise").

    ``sigma`` is a scalar or one level per sample, shape (batch,).
    """
    denoised = denoise(model, x, sigma)
    return denoised, denoised if prediction == "data" else (x - denoised) / per_sample(sigma, x)


def exponential_step(prediction: str, x: Tensor, sigma: Tensor, sigma_next: Tensor, terms: Sequence[Tensor],
                     first_weight_only: bool = False) -> Tensor:
    """``data_step`` or ``noise_step``; sigmas are scalars or (batch,) levels, one per sample."""
    sigma, sigma_next = per_sample(sigma, x), per_sample(sigma_next, x)
    if prediction == "data":
        return data_step(x, sigma, sigma_next, terms, first_weight_only=first_weight_only)
    return noise_step(x, sigma, sigma_next, terms, first_weight_only)


def check_order(order: int, known: Sequence[int] = (1, 2, 3)) -> None:
    if order not in known:
        raise UnknownNameError("order", str(order), [str(k) for k in known])
