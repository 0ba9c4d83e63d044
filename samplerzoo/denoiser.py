"""The one frame every sampler works in: x = x0 + sigma * n and D(x, sigma) -> x0_hat (Karras et al. 2022)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import torch
from torch import Tensor

if TYPE_CHECKING:
    from .guidance_rules import GuidanceMethod


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
    """A loaded model, pixel or latent: a Denoiser that also knows the shape ``(C, H, W)`` the sampler works in
    (latents for a latent model), how to turn that into images, its number of classes (0 when not
    class-conditional) and how to build conditioning from what the user gives (see ``guidance.py``)."""

    @property
    def sample_shape(self) -> tuple[int, ...]: ...

    @property
    def num_classes(self) -> int: ...

    def decode(self, x: Tensor) -> Tensor:
        """Samples in ``sample_shape`` to images in [-1, 1]: the identity for pixel models, the VAE for latent ones."""
        ...

    def condition(self, samples: Sequence[int], *, labels: Sequence[int] | None = None,
                  prompts: Sequence[str] | None = None, negative_prompts: Sequence[str] | None = None,
                  guidance_scale: float | None = None, distilled_guidance: float | None = None,
                  guidance: GuidanceMethod | None = None) -> Denoiser:
        """This model with the conditioning of ``samples`` (sample indices) bound and, for a guidance scale
        other than 1, classifier-free guidance around it (combined by ``guidance``, default CFG);
        ``distilled_guidance`` is the scale a guidance-distilled network embeds (Flux dev), an input of every call,
        not CFG."""
        ...


def decode(model: Denoiser, x: Tensor) -> Tensor:
    """``model.decode(x)``; the identity for a model without that method (a plugin's pixel-space denoiser)."""
    method = getattr(model, "decode", None)
    return method(x) if method is not None else x


def forwards_per_call(denoiser: Denoiser) -> int:
    """Network forward passes per sample that one call of ``denoiser`` makes: 1, or what a wrapper declares
    (classifier-free guidance: 2, whether its halves go through the network as one batch or two)."""
    return int(getattr(denoiser, "forwards_per_call", 1))


def per_sample(v: Tensor, x: Tensor) -> Tensor:
    """A (batch,) coefficient (sigma, a step size, an acceptance mask) shaped to broadcast against x; a scalar
    (0-dim) one as it is."""
    return v.reshape(-1, *[1] * (x.ndim - 1)) if v.ndim else v


def noised(x0: Tensor, sigma: Tensor, noise: Tensor) -> Tensor:
    """x0 + sigma n, and at sigma = inf the normalised state n itself (``sigma`` broadcasts against x0)."""
    return torch.where(torch.isinf(sigma), noise, x0 + torch.where(torch.isinf(sigma), 0, sigma) * noise)


class CountingDenoiser:
    """Counts the two costs of sampling: ``calls`` of the denoiser (the NFE a sampler's budget is written in, as
    k-diffusion and the solver papers count it) and ``forwards``, network forward passes per sample (as
    diff-sampler's tables count guided models: classifier-free guidance makes each call two forwards)."""

    def __init__(self, denoiser: Denoiser) -> None:
        self.inner = denoiser
        self.calls = 0
        self.forwards = 0
        self._per_call = forwards_per_call(denoiser)

    def __call__(self, x: Tensor, sigma: Tensor, **cond: Any) -> Tensor:
        self.calls += 1
        self.forwards += self._per_call
        return self.inner(x, sigma, **cond)

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not yet set (copy, unpickling): avoid recursing
            raise AttributeError(name)
        if name == "with_unconditional":  # guidance.py's unconditional interface, counted like a call
            return self._counted(getattr(self.inner, name))
        return getattr(self.inner, name)

    def _counted(self, method: Callable[..., tuple[Tensor, Tensor]]) -> Callable[..., tuple[Tensor, Tensor]]:
        def call(x: Tensor, sigma: Tensor, **cond: Any) -> tuple[Tensor, Tensor]:
            self.calls += 1
            self.forwards += self._per_call
            return method(x, sigma, **cond)
        return call
