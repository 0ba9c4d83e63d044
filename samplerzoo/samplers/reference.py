"""Explicit Runge-Kutta solvers of the probability-flow ODE from Butcher tableaux, and the adaptive reference solver.

* ``heun_2nd_order_final``: Heun on every step, including the one to sigma = 0, where Heun's second slope would
  sit at sigma = 0 (a division by zero); that step takes the explicit midpoint rule instead (the other two-stage
  2nd-order Runge-Kutta method), so N steps cost exactly 2N and every step is 2nd order.
* ``dopri5``: Dormand-Prince 5(4) with embedded error control (Dormand & Prince 1980; Hairer, Norsett & Wanner
  1993, II.4-5), integrating dx/du = x - D(x, e^u) in u = log sigma: the slope stays O(1) where dx/dsigma =
  (x - D)/sigma blows up as sigma -> 0, so the step size does not collapse at the small-sigma end. Each sample
  carries its own u and step size (the denoiser takes a sigma per sample), so a sample's trajectory does not
  depend on the rest of its batch. A schedule ending at 0 ends with D at its last nonzero sigma. The adaptive
  core, :func:`dopri5`, integrates any dy/du = f(y, u); the likelihood integrates (x, divergence) through it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from ..denoiser import Denoiser, per_sample
from ..errors import NonFiniteError
from ..noise import NoiseSampler
from ..registry import SamplerSpec
from ..steps import Callback, denoise, notify, to_d


class Tableau(NamedTuple):
    """An explicit Runge-Kutta method: nodes c, lower-triangular a (row i has i entries), weights b, and the
    weights of an embedded lower-order solution (empty when there is none)."""

    c: Sequence[float]
    a: Sequence[Sequence[float]]
    b: Sequence[float]
    b_low: Sequence[float] = ()


HEUN = Tableau(c=(0, 1), a=((), (1,)), b=(1 / 2, 1 / 2))
MIDPOINT = Tableau(c=(0, 1 / 2), a=((), (1 / 2,)), b=(0, 1))
DORMAND_PRINCE = Tableau(
    c=(0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1, 1),
    a=((),
       (1 / 5,),
       (3 / 40, 9 / 40),
       (44 / 45, -56 / 15, 32 / 9),
       (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
       (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
       (35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84)),
    b=(35 / 384, 0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0),
    b_low=(5179 / 57600, 0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40),
)
"""Dormand & Prince 1980, RK5(4)7M: the 7th stage is the slope at the new point (first same as last)."""


def rk_stages(f: Callable[[Tensor, Tensor], Tensor], x: Tensor, t: Tensor, h: Tensor, k1: Tensor,
              tableau: Tableau) -> list[Tensor]:
    """The slopes k_i = f(x + h sum_j a_ij k_j, t + c_i h) of one step, given k1 = f(x, t)."""
    ks = [k1]
    for c, row in zip(tableau.c[1:], tableau.a[1:], strict=True):
        ks.append(f(combine(x, h, ks, row), t + c * h))
    return ks


def combine(x: Tensor, h: Tensor, ks: list[Tensor], weights: Sequence[float]) -> Tensor:
    """x + h sum_i w_i k_i."""
    step = per_sample(h, x)
    return x + sum((k * (step * w) for w, k in zip(weights, ks, strict=True) if w != 0), torch.zeros_like(x))


def sample_heun_2nd_order_final(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None,
                                callback: Callback | None = None) -> Tensor:
    """Heun's method on every step (Karras et al. 2022, Alg. 1 with the 2nd-order correction always applied); the
    step to sigma = 0 takes the explicit midpoint rule, x' = x - sigma d(x - sigma/2 d, sigma/2) (Hairer, Norsett &
    Wanner 1993, Sec. II.1), so no slope is taken at sigma = 0. N steps cost exactly 2N."""
    def slope(x: Tensor, sigma: Tensor) -> Tensor:
        return to_d(x, sigma, denoise(model, x, sigma))

    for i in range(len(sigmas) - 1):
        denoised = denoise(model, x, sigmas[i])
        notify(callback, x, i, sigmas[i], sigmas[i], denoised)
        tableau = HEUN if sigmas[i + 1] > 0 else MIDPOINT
        h = sigmas[i + 1] - sigmas[i]
        x = combine(x, h, rk_stages(slope, x, sigmas[i], h, to_d(x, sigmas[i], denoised), tableau), tableau.b)
    return x


class ODESolution(NamedTuple):
    x: Tensor
    nfe: int


Slope = Callable[[Tensor, Tensor], Tensor]
"""``f(y, u) -> dy/du`` with ``u = log sigma`` of shape ``(batch,)``."""


def dopri5(f: Slope, y: Tensor, sigma_from: float, sigma_to: float, rtol: float, atol: float,
           on_step: Callable[[int, Tensor, Tensor, Tensor], None] | None = None) -> Tensor:
    """Integrate dy/du = f(y, u) in u = log sigma from sigma_from to sigma_to with adaptive Dormand-Prince 5(4).

    Each sample has its own u and step size. Error control per sample (Hairer, Norsett & Wanner 1993, Sec. II.4):
    err = RMS over the sample of (y5 - y4) / (atol + rtol max(|y|, |y_new|)); a step is accepted when err <= 1,
    and the next step is h * clip(0.9 err^(-1/5), 0.2, 5). ``on_step(i, y, u, k1)`` sees every attempted step,
    with k1 = f(y, u); accept/reject decisions sync with the device.
    """
    batch, dims = y.shape[0], tuple(range(1, y.ndim))
    end = math.log(sigma_to)
    u = torch.full((batch,), math.log(sigma_from), dtype=y.dtype, device=y.device)
    h = torch.full_like(u, (end - math.log(sigma_from)) / 20)  # first try: 20 steps; control adapts it

    def remaining() -> Tensor:
        return (end - u) * h.sign() > 0

    k1, i = f(y, u), 0
    while bool(remaining().any()):
        active = remaining()
        h = torch.where(active, torch.where((end - u).abs() < h.abs(), end - u, h), torch.zeros_like(h))
        ks = rk_stages(f, y, u, h, k1, DORMAND_PRINCE)
        y_new, y_low = combine(y, h, ks, DORMAND_PRINCE.b), combine(y, h, ks, DORMAND_PRINCE.b_low)
        scale = atol + rtol * torch.maximum(y.abs(), y_new.abs())
        err = ((y_new - y_low) / scale).pow(2).mean(dims).sqrt()
        if not bool(torch.isfinite(err[active]).all()):
            raise NonFiniteError(f"dopri5: non-finite solution at sigma {u[active].exp().tolist()} "
                                     "(the denoiser returned inf or nan)")
        accept = active & (err <= 1)
        mask = per_sample(accept, y)
        y, k1, u = torch.where(mask, y_new, y), torch.where(mask, ks[-1], k1), torch.where(accept, u + h, u)
        factor = (0.9 * err.clamp_min(1e-10) ** -0.2).clamp(0.2, 5.0)
        h = torch.where(active, h * factor, h)
        if on_step is not None:
            on_step(i, y, u, k1)
        i += 1
    return y


def solve_ode(model: Denoiser, x: Tensor, sigma_from: float, sigma_to: float, rtol: float = 1e-6,
              atol: float = 1e-6, callback: Callback | None = None) -> ODESolution:
    """Integrate the PF-ODE dx/du = x - D(x, e^u) from sigma_from to sigma_to (both > 0) with :func:`dopri5`.

    Returns the solution and the number of (batched) denoiser calls. The callback sees every attempted step,
    with per-sample sigmas.
    """
    if not (sigma_from > 0 and sigma_to > 0):
        raise ValueError(f"solve_ode integrates between positive sigmas, got {sigma_from} -> {sigma_to}")
    nfe = 0

    def f(x: Tensor, u: Tensor) -> Tensor:
        nonlocal nfe
        nfe += 1
        return x - denoise(model, x, u.exp())  # dx/du = sigma dx/dsigma

    def step(i: int, x: Tensor, u: Tensor, k1: Tensor) -> None:
        notify(callback, x, i, u.exp(), u.exp(), x - k1)

    return ODESolution(dopri5(f, x, sigma_from, sigma_to, rtol, atol, None if callback is None else step), nfe)


def sample_dopri5(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None,
                  callback: Callback | None = None, rtol: float = 1e-5, atol: float = 1e-5) -> Tensor:
    """Adaptive Dormand-Prince 5(4) from sigmas[0] to the last nonzero sigma (Dormand & Prince 1980, RK5(4)7M, in
    log sigma); a schedule ending at 0 then returns D there. Intermediate sigmas only bound the interval."""
    last = sigmas[-2] if sigmas[-1] == 0 and len(sigmas) > 1 else sigmas[-1]
    if float(last) < float(sigmas[0]):
        x = solve_ode(model, x, float(sigmas[0]), float(last), rtol, atol, callback).x
    return denoise(model, x, last) if sigmas[-1] == 0 else x


SPECS = [
    SamplerSpec("heun_2nd_order_final", sample_heun_2nd_order_final, order=2, stochastic=False, evals_per_step=2,
                aliases=("heun_every_step",),
                paper="Karras et al. 2022, Alg. 1 (Heun) + explicit midpoint rule on the step to sigma = 0",
                reference="samplerzoo heun (identical on schedules that do not end at 0)"),
    SamplerSpec("dopri5", sample_dopri5, order=5, stochastic=False, adaptive=True, aliases=("rk45", "dormand_prince"),
                paper="Dormand & Prince 1980, A family of embedded Runge-Kutta formulae (RK5(4)7M)",
                reference="torchdiffeq.odeint(method='dopri5'); scipy.integrate.solve_ivp(method='RK45')"),
]
