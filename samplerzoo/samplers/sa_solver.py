"""SA-Solver: the stochastic Adams predictor-corrector in data prediction (Xue et al. 2023, SA-Solver: Stochastic
Adams Solver for Fast Sampling of Diffusion Models), in the sigma frame.

With lambda = -log sigma, h = lambda_t - lambda_s and the stochasticity tau, the data-prediction SDE (their Eq. 7)
has the solution (their Eq. 10; alpha = 1 in this frame)

    x_t = (sigma_t / sigma_s) e^{-tau^2 h} x_s
          + int_{lambda_s}^{lambda_t} (1 + tau^2) e^{(1 + tau^2)(lambda - lambda_t)} D(lambda) dlambda
          + sigma_t sqrt(1 - e^{-2 tau^2 h}) z.

The predictor (their Eq. 15) integrates the Lagrange interpolant of the last p evaluations of D, the corrector
(their Eq. 18) that of the last c - 1 and the new one, against the exponential weight in closed form
(:func:`adams_weights`); the corrector reuses the predictor's noise. The loop is ComfyUI's sample_sa_solver: tau is
``eta`` on a window of the model's time (ComfyUI's percent_to_sigma, 20% to 80%), evaluated at the step's target
sigma; the orders warm up from 1 and, landing on sigma = 0, fall to 1 on the last step to a positive sigma; the
step to 0 returns D; PECE evaluates the corrected state again (diffusers' SASolverScheduler is the PEC form).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from ..denoiser import Denoiser
from ..errors import SamplerzooError
from ..flow import flow_sigma
from ..noise import NoiseSampler, gaussian_noise_like
from ..registry import SamplerSpec, steps_for_budget
from ..steps import Callback, denoise, notify
from ..time_schedules import model_time
from .exponential import phi


def adams_weights(nodes: Sequence[float], lambda_s: float, h: float, tau: float, simple_order_2: bool) -> list[float]:
    """b_j = int_{lambda_s}^{lambda_s + h} (1 + tau^2) e^{(1 + tau^2)(lambda - lambda_s - h)} l_j(lambda) dlambda, l_j
    the Lagrange basis on ``nodes`` (Xue et al. 2023, Eq. 15 and 18). In v = lambda - lambda_s the weight's moments
    are c k! h^{k+1} phi_{k+1}(-c h), c = 1 + tau^2, and b solves V^T b = moments, V the nodes' Vandermonde matrix.
    ``simple_order_2`` replaces the first moment of a two-node rule by its leading term c h^2 / 2 (their App. D;
    diffusers always does, ComfyUI's option)."""
    c = 1 + tau**2
    moments = [c * math.factorial(k) * h ** (k + 1) * phi(k + 1, -c * h) for k in range(len(nodes))]
    if simple_order_2 and len(nodes) == 2:
        moments[1] = c * h**2 / 2
    v = torch.tensor([node - lambda_s for node in nodes], dtype=torch.float64)
    vandermonde = torch.vander(v, len(nodes), increasing=True)
    return torch.linalg.solve(vandermonde.T, torch.tensor(moments, dtype=torch.float64)).tolist()


def adams_step(x: Tensor, sigma: Tensor, sigma_next: Tensor, values: Sequence[Tensor], nodes: Sequence[float],
               tau: float, simple_order_2: bool) -> Tensor:
    """The deterministic part of the step sigma -> sigma_next from x with the interpolant of ``values`` at ``nodes``
    (oldest first): (sigma_next / sigma) e^{-tau^2 h} x + sum_j b_j D_j."""
    lambda_s, lambda_t = -math.log(float(sigma)), -math.log(float(sigma_next))
    h = lambda_t - lambda_s
    x = x * (float(sigma_next / sigma) * math.exp(-(tau**2) * h))
    for weight, value in zip(adams_weights(nodes, lambda_s, h, tau, simple_order_2), values, strict=True):
        x = x + value * weight
    return x


def percent_to_sigma(model: Denoiser, percent: float) -> float:
    """ComfyUI's model_sampling.percent_to_sigma: the sigma ``percent`` of the way through the model's time
    (``time_schedules.model_time``; inf at 0, 0 at 1); a model without one (no trained levels, sigma_max = inf) uses
    flow time 1 - percent."""
    if percent <= 0 or percent >= 1:
        return math.inf if percent <= 0 else 0.0
    if getattr(model, "sigma_table", None) is None and math.isinf(model.sigma_max):
        return float(flow_sigma(torch.tensor(1 - percent, dtype=torch.float64)))
    time = model_time(model, "sa_solver")
    return float(time.sigma(torch.tensor(time.start + percent * (time.end - time.start), dtype=torch.float64)))


def tau_window(model: Denoiser, eta: float, start_percent: float, end_percent: float) -> Callable[[Tensor], float]:
    """tau(sigma) = eta between the sigmas at ``start_percent`` and ``end_percent``, else 0 (ComfyUI's
    get_tau_interval_func; diffusers' default is tau = 1 on timesteps 200..800)."""
    high, low = percent_to_sigma(model, start_percent), percent_to_sigma(model, end_percent)
    return lambda sigma: eta if eta > 0 and high >= float(sigma) >= low else 0.0


def check_orders(predictor_order: int, corrector_order: int) -> None:
    if not 1 <= predictor_order <= 4 or not 0 <= corrector_order <= 4:
        raise SamplerzooError(f"sa_solver needs predictor_order 1..4 and corrector_order 0..4, got {predictor_order} "
                              f"and {corrector_order}")


def sa_solver_sampling(model: Denoiser, x: Tensor, sigmas: Tensor, noise: NoiseSampler | None,
                       callback: Callback | None, predictor_order: int, corrector_order: int, eta: float,
                       sde_start_percent: float, sde_end_percent: float, s_noise: float, simple_order_2: bool,
                       use_pece: bool) -> Tensor:
    """The loop of both samplers below; ``use_pece`` evaluates each corrected state again (a second call a step, so
    it is chosen by the sampler's name, which declares its cost, not by an option)."""
    check_orders(predictor_order, corrector_order)
    noise = noise or gaussian_noise_like(x)
    tau_of = tau_window(model, eta, sde_start_percent, sde_end_percent)
    lambdas = [-math.log(s) if s > 0 else math.inf for s in sigmas.tolist()]
    steps, to_zero = len(sigmas) - 1, float(sigmas[-1]) == 0
    history: list[Tensor] = []
    x_pred, tau, step_noise = x, 0.0, None
    for i in range(steps):
        denoised = denoise(model, x_pred, sigmas[i])
        notify(callback, x_pred, i, sigmas[i], sigmas[i], denoised)
        history = [*history, denoised][-max(predictor_order, corrector_order):]
        left = steps - 1 - i if to_zero else steps  # steps to the last positive sigma (ComfyUI's lower_order_to_end)
        p = min(predictor_order, len(history), left)
        c = 0 if i == 0 or (sigmas[i + 1] == 0 and not use_pece) else min(corrector_order, len(history), left + 1)
        if c == 0:
            x = x_pred
        else:  # from the last corrected state x_{i-1}, with the new D at the predicted x_i
            x = adams_step(x, sigmas[i - 1], sigmas[i], history[-c:], lambdas[i - c + 1:i + 1], tau, simple_order_2)
            if step_noise is not None:
                x = x + step_noise
            if use_pece:
                history[-1] = denoised = denoise(model, x, sigmas[i])
        if sigmas[i + 1] == 0:
            return denoised
        tau = tau_of(sigmas[i + 1])
        x_pred = adams_step(x, sigmas[i], sigmas[i + 1], history[-p:], lambdas[i - p + 1:i + 1], tau, simple_order_2)
        step_noise = None
        if tau > 0 and s_noise > 0:
            spread = float(sigmas[i + 1]) * math.sqrt(-math.expm1(-2 * tau**2 * (lambdas[i + 1] - lambdas[i])))
            step_noise = noise(sigmas[i], sigmas[i + 1]) * (spread * s_noise)
            x_pred = x_pred + step_noise
    return x_pred


def sample_sa_solver(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None,
                     callback: Callback | None = None, predictor_order: int = 3, corrector_order: int = 4,
                     eta: float = 1.0, sde_start_percent: float = 0.2, sde_end_percent: float = 0.8,
                     s_noise: float = 1.0, simple_order_2: bool = False) -> Tensor:
    """SA-Solver (Xue et al. 2023, Alg. 1, data prediction): SA-Predictor of order ``predictor_order``, then at the
    next evaluation the SA-Corrector of order ``corrector_order`` (0: none), ComfyUI's loop and defaults. eta = 0 is
    the deterministic Adams predictor-corrector of the probability-flow ODE."""
    return sa_solver_sampling(model, x, sigmas, noise, callback, predictor_order, corrector_order, eta,
                              sde_start_percent, sde_end_percent, s_noise, simple_order_2, use_pece=False)


def sample_sa_solver_pece(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None,
                          callback: Callback | None = None, predictor_order: int = 3, corrector_order: int = 4,
                          eta: float = 1.0, sde_start_percent: float = 0.2, sde_end_percent: float = 0.8,
                          s_noise: float = 1.0, simple_order_2: bool = False) -> Tensor:
    """SA-Solver in PECE mode: the corrected state is evaluated again and that D replaces the predicted one (Xue et
    al. 2023, Sec. 4; ComfyUI's sa_solver_pece): every step after the first costs two evaluations."""
    return sa_solver_sampling(model, x, sigmas, noise, callback, predictor_order, corrector_order, eta,
                              sde_start_percent, sde_end_percent, s_noise, simple_order_2, use_pece=True)


def pece_nfe(sigmas: Tensor, corrector_order: int = 4, **options: Any) -> int:
    steps = len(sigmas) - 1
    return steps + (steps - 1 if corrector_order > 0 else 0)


def pece_steps(nfe: int, to_zero: bool, corrector_order: int = 4, **options: Any) -> int:
    if corrector_order == 0:
        return steps_for_budget("sa_solver_pece", nfe, 1, 0, "steps (corrector_order 0)")
    return steps_for_budget("sa_solver_pece", nfe, 2, -1, "2*steps-1")


XUE = "Xue et al. 2023, SA-Solver: Stochastic Adams Solver for Fast Sampling of Diffusion Models"
COMFY = "ComfyUI comfy/k_diffusion/sampling.py"
SPECS = [
    SamplerSpec("sa_solver", sample_sa_solver, order=3, stochastic=True, weak_order=2, aliases=("SASolverScheduler",),
                paper=f"{XUE}, Alg. 1 (data prediction, PEC)",
                reference=f"{COMFY} sample_sa_solver; diffusers.SASolverScheduler (tests/test_sa_solver.py)"),
    SamplerSpec("sa_solver_pece", sample_sa_solver_pece, order=3, stochastic=True, weak_order=2,
                paper=f"{XUE}, Alg. 1 (data prediction, PECE)", reference=f"{COMFY} sample_sa_solver_pece",
                cost_formula="2*steps-1 (steps with corrector_order 0)", nfe_fn=pece_nfe, steps_fn=pece_steps),
]
