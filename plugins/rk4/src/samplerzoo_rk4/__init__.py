"""samplerzoo-rk4: classical Runge-Kutta on the probability-flow ODE, built on samplerzoo's step helpers."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

import samplerzoo as sz
from samplerzoo.denoiser import Denoiser
from samplerzoo.noise import NoiseSampler
from samplerzoo.steps import Callback, denoise, notify, to_d


def slope(model: Denoiser, x: Tensor, sigma: Tensor) -> Tensor:
    """dx/dsigma at (x, sigma): one denoiser call."""
    return to_d(x, sigma, denoise(model, x, sigma))


def sample_rk4(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None,
               callback: Callback | None = None) -> Tensor:
    """Classical 4th-order Runge-Kutta (Kutta 1901) on dx/dsigma = (x - D(x, sigma)) / sigma (Karras et al. 2022,
    Eq. 3): slopes at sigma_i, twice at the midpoint, and at sigma_{i+1}. D cannot be evaluated at sigma = 0, so
    the step landing there is Euler: N steps to 0 cost 4N - 3. Deterministic: ``noise`` is never drawn from."""
    for i in range(len(sigmas) - 1):
        sigma, h = sigmas[i], sigmas[i + 1] - sigmas[i]
        denoised = denoise(model, x, sigma)
        notify(callback, x, i, sigma, sigma, denoised)
        k1 = to_d(x, sigma, denoised)
        if sigmas[i + 1] == 0:
            x = x + h * k1
            continue
        k2 = slope(model, x + h / 2 * k1, sigma + h / 2)
        k3 = slope(model, x + h / 2 * k2, sigma + h / 2)
        k4 = slope(model, x + h * k3, sigmas[i + 1])
        x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return x


SPEC = sz.SamplerSpec(
    "rk4", sample_rk4, order=4, stochastic=False, evals_per_step=4, final_step_evals=1,
    aliases=("runge_kutta_4",),
    paper="Kutta 1901, Beitrag zur naeherungsweisen Integration totaler Differentialgleichungen (the classical "
          "4th-order method), on the probability-flow ODE of Karras et al. 2022, Eq. 3",
    reference="a Butcher-tableau Runge-Kutta solver (plugins/rk4/tests/test_rk4.py)")


@sz.hookimpl
def register_samplers(register: Callable[[sz.SamplerSpec], None]) -> None:
    register(SPEC)
