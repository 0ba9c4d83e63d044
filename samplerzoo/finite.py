"""Watching a run for NaN and inf: how many samples end non-finite, and the step where a non-finite value first
appeared (cheaply: one reduction per step on the device, no host-device synchronisation until the end)."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .steps import Callback

UNSEEN = 2**62
"""The step recorded while every value seen so far is finite."""


def takes_callback(fn: Callable[..., Any]) -> bool:
    """Whether a sampler function accepts ``callback=`` (k-diffusion's convention; a plugin may leave it out)."""
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "callback" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters)


class FiniteWatch:
    """A sampler callback noting the first step i (sigmas[i] -> sigmas[i + 1]) in which the state or the denoised
    prediction held NaN or inf; ``callback``, the caller's own, still sees every step.

    k-diffusion's callback at step i shows x_i and D(x_i): a non-finite D(x_i) appeared in step i, a non-finite
    x_i in step i - 1, and samples that end non-finite after a clean last callback went bad in the last step.
    """

    def __init__(self, callback: Callback | None = None) -> None:
        self.callback = callback
        self.first: Tensor | None = None
        self.last_step: int | None = None

    def __call__(self, info: dict[str, Any]) -> None:
        i = int(info["i"])
        x, denoised = info.get("x"), info.get("denoised")
        if isinstance(x, Tensor) and isinstance(denoised, Tensor):
            step = torch.where(~torch.isfinite(x).all(), max(i - 1, 0),
                               torch.where(~torch.isfinite(denoised).all(), i, UNSEEN))
            self.first = step if self.first is None else torch.minimum(self.first, step)
        self.last_step = i
        if self.callback is not None:
            self.callback(info)

    def report(self, samples: Tensor) -> tuple[int, int | None]:
        """(samples holding NaN or inf, the first step where one appeared); the step is ``None`` when all samples
        are finite, or when the sampler reported no steps."""
        bad = count_nonfinite(samples)
        if not bad or self.last_step is None:
            return bad, None
        first = UNSEEN if self.first is None else int(self.first)
        return bad, self.last_step if first == UNSEEN else first


def count_nonfinite(*batches: Tensor) -> int:
    """How many samples (along dim 0) hold NaN or inf in any of ``batches``: the same samples in several forms,
    such as latents and the images decoded from them."""
    bad = torch.zeros(len(batches[0]), dtype=torch.bool)
    for batch in batches:
        bad |= ~torch.isfinite(batch).flatten(1).all(1).cpu()
    return int(bad.sum())
