"""The one frame every sampler works in: x = x0 + sigma * n and D(x, sigma) -> x0_hat (Karras et al. 2022)."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor


class NoiseLevels(Protocol):
    """The noise levels a model knows: its sigma range, sigma_data, and ``sigma_table``, the ascending sigmas
    a discrete-time model was trained on (``None`` for continuous models; DDIM-style spacings use it)."""

    @property
    def sigma_min(self) -> float: ...

    @property
    def sigma_max(self) -> float: ...

    @property
    def sigma_data(self) -> float: ...

    @property
    def sigma_table(self) -> Tensor | None: ...


@runtime_checkable
class Denoiser(NoiseLevels, Protocol):
    """``D(x, sigma, **cond) -> x0_hat``, with ``sigma`` a tensor of shape ``(batch,)``.

    Where sigma is inf (a model whose ``sigma_max`` is inf: flow models at t = 1, zero terminal SNR), ``x`` is the
    state normalised by sigma, x / sigma: the unit start noise (:func:`noised`).
    """

    def __call__(self, x: Tensor, sigma: Tensor, **cond: Any) -> Tensor: ...


@runtime_checkable
class Checkpoint(Denoiser, Protocol):
    """A loaded model: a Denoiser that also knows its sample shape ``(C, H, W)`` and number of classes
    (0 when unconditional), so sampling from noise needs nothing else."""

    @property
    def sample_shape(self) -> tuple[int, ...]: ...

    @property
    def num_classes(self) -> int: ...


def noised(x0: Tensor, sigma: Tensor, noise: Tensor) -> Tensor:
    """x0 + sigma n, and at sigma = inf the normalised state n itself (``sigma`` broadcasts against x0)."""
    return torch.where(torch.isinf(sigma), noise, x0 + torch.where(torch.isinf(sigma), 0, sigma) * noise)


def network_calls(denoiser: Denoiser) -> int:
    """Network calls one call of ``denoiser`` makes: 1, or what a wrapper declares (unbatched CFG: 2)."""
    return int(getattr(denoiser, "network_calls", 1))


class CountingDenoiser:
    """Counts network evaluations (NFE): the network calls each call of the wrapped denoiser makes."""

    def __init__(self, denoiser: Denoiser) -> None:
        self.inner = denoiser
        self.calls = 0
        self._per_call = network_calls(denoiser)

    def __call__(self, x: Tensor, sigma: Tensor, **cond: Any) -> Tensor:
        self.calls += self._per_call
        return self.inner(x, sigma, **cond)

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not yet set (copy, unpickling): avoid recursing
            raise AttributeError(name)
        return getattr(self.inner, name)
