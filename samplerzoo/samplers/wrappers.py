"""Denoiser wrappers behind sampler options that change what a sampler takes as D, written once for every sampler
that offers them: AMED's analytical first step (``afs``), Imagen's dynamic thresholding (``thresholding``) and
static clipping of D (``clip_denoised``).

A sampler wraps its model at the start (:func:`with_options`); each wrapper calls the model at most once per call,
so the NFE counter outside sees exactly the network calls made.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..denoiser import Denoiser, per_sample
from ..errors import SamplerzooError


class Wrapped:
    """A Denoiser around ``model``, passing its attributes (sigma_min, sigma_max, sigma_data, ...) through."""

    def __init__(self, model: Denoiser) -> None:
        self.model = model

    def __getattr__(self, name: str) -> Any:
        if name == "model":
            raise AttributeError(name)
        return getattr(self.model, name)


def analytic_denoised(x: Tensor, sigma: Tensor) -> Tensor:
    """The analytical first step's D (Zhou et al. 2024, AMED-Solver, "analytical first step"; diff-sampler's ``afs``):
    at the first, largest sigma the noise is taken to be the state normalised to unit variance, eps = x / sqrt(1 +
    sigma^2) (x_T of the VP frame), so D = x - sigma eps and the step costs no network call."""
    sigma = per_sample(sigma, x)
    return x - sigma * x / (1 + sigma**2).sqrt()


class AnalyticFirstStep(Wrapped):
    """Answers the first call with :func:`analytic_denoised` instead of calling the model; later calls go through.

    Every sampler offering ``afs`` makes its first call at (x, sigmas[0]), so this replaces exactly the first step's
    first evaluation, which also enters a multistep method's history, as in diff-sampler."""

    def __init__(self, model: Denoiser) -> None:
        super().__init__(model)
        self.first = True

    def __call__(self, x: Tensor, sigma: Tensor, **cond: Any) -> Tensor:
        if self.first:
            self.first = False
            return analytic_denoised(x, sigma)
        return self.model(x, sigma, **cond)


def dynamic_threshold(denoised: Tensor, ratio: float, max_value: float) -> Tensor:
    """Imagen's dynamic thresholding (Saharia et al. 2022, Sec. 2.3): s = the ``ratio`` quantile of |D| per sample,
    clamped to [1, ``max_value``]; D is clipped to [-s, s] and divided by s (diffusers' ``_threshold_sample``).
    The quantile is taken in float32 at least."""
    flat = denoised.flatten(1).to(torch.promote_types(denoised.dtype, torch.float32))
    s = torch.quantile(flat.abs(), ratio, dim=1).clamp(1.0, max_value)[:, None]
    return (torch.minimum(torch.maximum(flat, -s), s) / s).reshape(denoised.shape).to(denoised.dtype)


class DynamicThresholding(Wrapped):
    """D thresholded by :func:`dynamic_threshold` on every call (diffusers' ``thresholding=True``): a noise-prediction
    solver then integrates eps = (x - D_thresholded) / sigma, as diffusers' "dpmsolver" and UniPC do."""

    def __init__(self, model: Denoiser, ratio: float, max_value: float) -> None:
        super().__init__(model)
        self.ratio, self.max_value = ratio, max_value

    def __call__(self, x: Tensor, sigma: Tensor, **cond: Any) -> Tensor:
        return dynamic_threshold(self.model(x, sigma, **cond), self.ratio, self.max_value)


class Clipped(Wrapped):
    """D clipped to [-1, 1] on every call: static thresholding (Saharia et al. 2022, Sec. 2.3; diffusers'
    ``clip_denoised`` of CMStochasticIterativeScheduler, ``clip_sample`` of DDPM / DDIM)."""

    def __call__(self, x: Tensor, sigma: Tensor, **cond: Any) -> Tensor:
        return self.model(x, sigma, **cond).clamp(-1, 1)


def check_thresholding(ratio: float, max_value: float) -> None:
    """The dynamic thresholding values, refused in one line where diffusers would misbehave."""
    if not 0 < ratio <= 1:
        raise SamplerzooError(f"dynamic_thresholding_ratio must be in (0, 1], got {ratio}")
    if not max_value >= 1:
        raise SamplerzooError(f"sample_max_value must be >= 1, got {max_value}")


def with_options(model: Denoiser, afs: bool = False, thresholding: bool = False,
                 dynamic_thresholding_ratio: float = 0.995, sample_max_value: float = 1.0,
                 clip_denoised: bool = False) -> Denoiser:
    """``model`` with the analytical first step and/or dynamic thresholding (applied to the analytical D too, as in
    diff-sampler) or static clipping, after checking the thresholding values (one line for a bad one)."""
    if thresholding:
        check_thresholding(dynamic_thresholding_ratio, sample_max_value)
    if afs:
        model = AnalyticFirstStep(model)
    if thresholding:
        model = DynamicThresholding(model, dynamic_thresholding_ratio, sample_max_value)
    if clip_denoised:
        model = Clipped(model)
    return model
