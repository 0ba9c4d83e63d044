"""AMED-Solver and AMED-Plugin: a second evaluation at a learned intermediate level in every step, and the step along
its scaled slope (Zhou, Chen, Chen & Wang 2024, arXiv:2312.00094; the predictor is :mod:`samplerzoo.amed`)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from torch import Tensor

from ..amed import COMPILED, AmedPredictor, BottleneckTap, resolve_predictor, tapped
from ..denoiser import Denoiser, per_sample
from ..errors import SamplerzooError
from ..noise import NoiseSampler
from ..registry import SamplerSpec
from ..steps import Callback, denoise, notify, to_d
from .multistep import ADAMS_BASHFORTH
from .wrappers import with_options

MIDPOINT = "midpoint"
"""``predictor=midpoint``: the fixed rule r = 1/2, c = a = 1 (an unfitted predictor's AMED step is DPM-Solver-2)."""
Predictor = str | Path | AmedPredictor | None
Rule = tuple[Tensor, Tensor, Tensor]
"""(r_n, c_n, a_n) per sample: where the intermediate level lies, the direction scale, the time scale."""
StepFn = Callable[[Denoiser, Tensor, Tensor, Tensor, Tensor, Rule, list[Tensor]], tuple[Tensor, list[Tensor]]]
"""``step(model, x, sigma, denoised, sigma_next, rule, history) -> (x_next, history)``."""


def intermediate_level(sigma: Tensor, sigma_next: Tensor, r: Tensor) -> Tensor:
    """s_n = sigma_{n+1}^r_n sigma_n^(1 - r_n): r_n of the way from sigma_n to sigma_{n+1} in log sigma."""
    return sigma_next**r * sigma ** (1 - r)


def mean_direction_step(model: Denoiser, x: Tensor, sigma: Tensor, denoised: Tensor, sigma_next: Tensor, r: Tensor,
                        c: Tensor, a: Tensor) -> Tensor:
    """x_{n+1} = x_n + c_n (sigma_{n+1} - sigma_n) d(y, s_n), y = x_n + (s_n - sigma_n) d_n, the slope d(y, s_n) =
    (y - D(y, a_n s_n)) / s_n and s_n = sigma_{n+1}^r_n sigma_n^(1 - r_n), per sample (Zhou et al. 2024, the AMED step;
    diff-sampler's amed_sampler). ``denoised`` is D(x_n, sigma_n)."""
    level = intermediate_level(sigma, sigma_next, r)
    y = x + to_d(x, sigma, denoised) * (per_sample(level, x) - sigma)
    slope = to_d(y, per_sample(level, x), model(y, a * level))
    return x + per_sample(c, x) * (sigma_next - sigma) * slope


def amed_step(model: Denoiser, x: Tensor, sigma: Tensor, denoised: Tensor, sigma_next: Tensor, rule: Rule,
              history: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
    return mean_direction_step(model, x, sigma, denoised, sigma_next, *rule), history


def adams_bashforth(history: list[Tensor]) -> Tensor:
    """sum_j b_j d_{i-j} with iPNDM's fixed Adams-Bashforth coefficients of order len(history), newest slope first."""
    return sum((b * d for b, d in zip(ADAMS_BASHFORTH[len(history) - 1], reversed(history), strict=True)),
               torch.zeros_like(history[-1]))


def ipndm_plugin_step(model: Denoiser, x: Tensor, sigma: Tensor, denoised: Tensor, sigma_next: Tensor, rule: Rule,
                      history: list[Tensor], order: int = 4) -> tuple[Tensor, list[Tensor]]:
    """AMED-Plugin on iPNDM: two iPNDM steps, sigma_n -> s_n -> sigma_{n+1}, the second scaled by c_n with its slope
    from D(y, a_n s_n) (diff-sampler's ipndm_sampler with a predictor); every slope joins the history."""
    r, c, a = rule
    level = intermediate_level(sigma, sigma_next, r)
    history = [*history, to_d(x, sigma, denoised)][-order:]
    y = x + (per_sample(level, x) - sigma) * adams_bashforth(history)
    history = [*history, to_d(y, per_sample(level, x), model(y, a * level))][-order:]
    return y + per_sample(c, x) * (sigma_next - per_sample(level, x)) * adams_bashforth(history), history


@dataclass(frozen=True)
class Student:
    """How a solver takes its steps, and whether its fit restarts each step from the teacher's state (diff-sampler:
    the single-step solvers do, the multistep ones follow their own trajectory and history)."""

    step: StepFn
    from_teacher: bool


STUDENTS = {"amed": Student(amed_step, from_teacher=True),
            "ipndm_amed": Student(partial(ipndm_plugin_step, order=4), from_teacher=False)}


def step_rule(learned: AmedPredictor | None, tap: BottleneckTap | None, x: Tensor, sigma: Tensor,
              sigma_next: Tensor, analytic: bool) -> Rule:
    """(r_n, c_n, a_n) per sample: the predictor's, or the midpoint rule's (1/2, 1, 1), in x's working dtype."""
    work = torch.promote_types(x.dtype, torch.float32)
    if learned is None or tap is None:
        half, one = x.new_full((len(x),), 0.5, dtype=work), x.new_ones(len(x), dtype=work)
        return half, one, one
    r, c, a = learned(tap.features(learned.info.bottleneck_dim, x.device, analytic), sigma, sigma_next)
    return r.to(work), c.to(work), a.to(work)


def learned_sampling(model: Denoiser, x: Tensor, sigmas: Tensor, solver: str, predictor: Predictor, afs: bool,
                     callback: Callback | None) -> Tensor:
    """The loop of every AMED solver: the first evaluation of a step (its bottleneck read), the predictor's rule,
    the solver's step; a step to sigma = 0 is Euler. ``predictor``: a shipped name, a file zoo train-amed wrote,
    or None (the shipped one fitted to this solver, model and levels); ``midpoint`` is the fixed rule. ``afs``: the
    first slope analytical, the bottleneck read as zeros."""
    learned = None
    if predictor != MIDPOINT:
        learned = resolve_predictor(predictor, model, x.shape[1:], sigmas, afs, solver).to(x.device)
    work, step = torch.promote_types(x.dtype, torch.float32), STUDENTS[solver].step
    history: list[Tensor] = []
    model = with_options(model, afs)
    with tapped(model, len(x)) if learned is not None else nullcontext() as tap:
        for i in range(len(sigmas) - 1):
            if tap is not None:
                tap.reset()
            denoised = denoise(model, x, sigmas[i])
            notify(callback, x, i, sigmas[i], sigmas[i], denoised)
            if sigmas[i + 1] == 0:
                x = x + to_d(x, sigmas[i], denoised) * (sigmas[i + 1] - sigmas[i])
                continue
            rule = step_rule(learned, tap, x, sigmas[i], sigmas[i + 1], afs and i == 0)
            x, history = step(model, x, sigmas[i].to(work), denoised, sigmas[i + 1].to(work), rule, history)
    return x


def sample_amed(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None,
                callback: Callback | None = None, predictor: Predictor = None, afs: bool = False) -> Tensor:
    """AMED-Solver (Zhou et al. 2024; diff-sampler's amed_sampler): each step Euler to the predictor's level s_n,
    then the whole step along c_n times the slope there (:func:`mean_direction_step`)."""
    return learned_sampling(model, x, sigmas, "amed", predictor, afs, callback)


def sample_ipndm_amed(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None,
                      callback: Callback | None = None, predictor: Predictor = None, afs: bool = False) -> Tensor:
    """AMED-Plugin on iPNDM, order 4 (Zhou et al. 2024; diff-sampler's ipndm_sampler with AMED_predictor): the
    predictor's level inserted in every step (:func:`ipndm_plugin_step`)."""
    return learned_sampling(model, x, sigmas, "ipndm_amed", predictor, afs, callback)


def check_amed(solver: str, sample_shape: tuple[int, ...], *, predictor: Predictor = None,
               model: Denoiser | None = None, sigmas: Tensor | None = None, afs: bool = False, compiled: bool = False,
               **_: object) -> None:
    """The predictor against the run, before any work (``SamplerSpec.check``): it loads, and it was fitted to this
    solver, sample shape, these levels, ``afs`` and this network (whichever of them the caller knows); the network
    is not to be compiled (the bottleneck is read by a forward hook)."""
    if predictor == MIDPOINT:
        return
    if compiled:
        raise SamplerzooError(COMPILED)
    if predictor is None and model is None:
        return
    resolve_predictor(predictor, model, sample_shape, sigmas, afs, solver)


AMED_PAPER = ("Zhou, Chen, Chen & Wang 2024, Fast ODE-based Sampling for Diffusion Models in Around 5 Steps "
              "(AMED-Solver), arXiv:2312.00094")
SPECS = [
    SamplerSpec("amed", sample_amed, order=2, stochastic=False, evals_per_step=2, final_step_evals=1,
                analytic_first_step=True, aliases=("amed_solver", "AMED-Solver"), check=partial(check_amed, "amed"),
                kit_options={"predictor": MIDPOINT}, paper=AMED_PAPER,
                reference="zju-pi/diff-sampler amed-solver-main/solvers_amed.py amed_sampler"),
    SamplerSpec("ipndm_amed", sample_ipndm_amed, order=4, global_order=2, stochastic=False, evals_per_step=2,
                final_step_evals=1, analytic_first_step=True, aliases=("amed_plugin_ipndm",),
                check=partial(check_amed, "ipndm_amed"), kit_options={"predictor": MIDPOINT},
                paper=f"{AMED_PAPER}, AMED-Plugin on iPNDM",
                reference="zju-pi/diff-sampler amed-solver-main/solvers_amed.py ipndm_sampler (with AMED_predictor)"),
]
