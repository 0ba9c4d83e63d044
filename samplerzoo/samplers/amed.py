"""AMED-Solver: a second evaluation at a learned intermediate level, and the step along its scaled slope."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import torch
from torch import Tensor

from ..amed import COMPILED, AmedPredictor, BottleneckTap, resolve_predictor, tapped
from ..denoiser import Denoiser, per_sample
from ..errors import SamplerzooError
from ..noise import NoiseSampler
from ..registry import SamplerSpec
from ..steps import Callback, denoise, notify, to_d
from .wrappers import with_options

MIDPOINT = "midpoint"
"""``predictor=midpoint``: the fixed rule r = 1/2, c = a = 1 (an unfitted predictor's AMED step is DPM-Solver-2)."""
Predictor = str | Path | AmedPredictor | None


def mean_direction_step(model: Denoiser, x: Tensor, sigma: Tensor, denoised: Tensor, sigma_next: Tensor, r: Tensor,
                        c: Tensor, a: Tensor) -> Tensor:
    """x_{n+1} = x_n + c_n (sigma_{n+1} - sigma_n) d(y, s_n), y = x_n + (s_n - sigma_n) d_n, the slope d(y, s_n) =
    (y - D(y, a_n s_n)) / s_n and s_n = sigma_{n+1}^r_n sigma_n^(1 - r_n), per sample (Zhou et al. 2024, the AMED step;
    diff-sampler's amed_sampler). ``denoised`` is D(x_n, sigma_n)."""
    level = sigma_next**r * sigma ** (1 - r)
    y = x + to_d(x, sigma, denoised) * (per_sample(level, x) - sigma)
    slope = to_d(y, per_sample(level, x), model(y, a * level))
    return x + per_sample(c, x) * (sigma_next - sigma) * slope


def sample_amed(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None,
                callback: Callback | None = None, predictor: Predictor = None, afs: bool = False) -> Tensor:
    """AMED-Solver (Zhou et al. 2024; diff-sampler's amed_sampler): each step's intermediate level and direction
    scale come from the predictor reading the bottleneck of its first evaluation (:mod:`samplerzoo.amed`); a step to
    sigma = 0 is Euler.
    ``predictor``: a shipped name, a file zoo train-amed wrote, or None (the shipped one fitted to this model and
    levels); ``midpoint`` is the fixed rule. ``afs``: the first slope analytical, the bottleneck read as zeros."""
    learned = None
    if predictor != MIDPOINT:
        learned = resolve_predictor(predictor, model, x.shape[1:], sigmas, afs).to(x.device)
    work = torch.promote_types(x.dtype, torch.float32)
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
            r, c, a = step_rule(learned, tap, x, sigmas[i], sigmas[i + 1], afs and i == 0)
            x = mean_direction_step(model, x, sigmas[i].to(work), denoised, sigmas[i + 1].to(work), r.to(work),
                                    c.to(work), a.to(work))
    return x


def step_rule(learned: AmedPredictor | None, tap: BottleneckTap | None, x: Tensor, sigma: Tensor,
              sigma_next: Tensor, analytic: bool) -> tuple[Tensor, Tensor, Tensor]:
    """(r_n, c_n, a_n) per sample: the predictor's, or the midpoint rule's (1/2, 1, 1)."""
    if learned is None or tap is None:
        half, one = x.new_full((len(x),), 0.5), x.new_ones(len(x))
        return half, one, one
    return learned(tap.features(learned.info.bottleneck_dim, x.device, analytic), sigma, sigma_next)


def check_amed(sample_shape: tuple[int, ...], *, predictor: Predictor = None, model: Denoiser | None = None,
               sigmas: Tensor | None = None, afs: bool = False, compiled: bool = False, **_: object) -> None:
    """The predictor against the run, before any work (``SamplerSpec.check``): it loads, and it was fitted to this
    sample shape, these levels, ``afs`` and this network (whichever of them the caller knows); the network is not
    to be compiled (the bottleneck is read by a forward hook)."""
    if predictor == MIDPOINT:
        return
    if compiled:
        raise SamplerzooError(COMPILED)
    if predictor is None and model is None:
        return
    resolve_predictor(predictor, model, sample_shape, sigmas, afs)


SPECS = [
    SamplerSpec("amed", sample_amed, order=2, stochastic=False, evals_per_step=2, final_step_evals=1,
                analytic_first_step=True, aliases=("amed_solver", "AMED-Solver"), check=check_amed,
                kit_options={"predictor": MIDPOINT},
                paper="Zhou, Chen, Chen & Wang 2024, Fast ODE-based Sampling for Diffusion Models in Around 5 Steps "
                      "(AMED-Solver), arXiv:2312.00094",
                reference="zju-pi/diff-sampler amed-solver-main/solvers_amed.py amed_sampler"),
]
