"""Guidance: wrappers that turn a conditional denoiser into a guided one (still a Denoiser).

Both act on D directly; since D = c_skip x + c_out F is affine in the network output, guiding D is the
same as guiding epsilon, v or F.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .denoiser import Denoiser

Classifier = Callable[[Tensor, Tensor], Tensor]
"""``classifier(x, sigma) -> logits`` over classes, for the noisy x at level sigma."""


class _Wrapper:
    """Forwards the Denoiser attributes (sigma range, table, sample shape) of the wrapped model."""

    def __init__(self, model: Denoiser) -> None:
        self.model = model

    def __getattr__(self, name: str) -> Any:
        if name == "model":
            raise AttributeError(name)
        return getattr(self.model, name)


class ClassifierFreeGuidance(_Wrapper):
    """D_w = D(x, sigma, null) + w (D(x, sigma, y) - D(x, sigma, null)) (Ho & Salimans 2022, Eq. 6).

    ``scale`` is diffusers' ``guidance_scale``: 1 is plain conditional sampling, 0 unconditional. With
    ``batched`` the conditional and unconditional halves go through the network as one call of twice the
    batch; otherwise as two calls. ``network_calls`` says which, for NFE accounting.
    """

    def __init__(self, model: Denoiser, scale: float, null_label: int, batched: bool = True) -> None:
        super().__init__(model)
        self.scale, self.null_label, self.batched = scale, null_label, batched
        self.network_calls = 1 if batched else 2

    def __call__(self, x: Tensor, sigma: Tensor, class_labels: Tensor | None = None, **cond: Any) -> Tensor:
        if class_labels is None:
            raise ValueError("classifier-free guidance needs class_labels")
        null = torch.full_like(class_labels, self.null_label)
        if self.batched:
            labels = torch.cat([class_labels, null])
            both = self.model(torch.cat([x, x]), torch.cat([sigma, sigma]), class_labels=labels, **cond)
            conditional, unconditional = both.chunk(2)
        else:
            conditional = self.model(x, sigma, class_labels=class_labels, **cond)
            unconditional = self.model(x, sigma, class_labels=null, **cond)
        return unconditional + self.scale * (conditional - unconditional)


class ClassifierGuidance(_Wrapper):
    """D + w sigma^2 grad_x log p(y | x; sigma): the score gains w grad log p(y|x) (Dhariwal & Nichol 2021,
    Alg. 1; Song et al. 2021, Eq. 14), and D = x + sigma^2 score."""

    def __init__(self, model: Denoiser, classifier: Classifier, scale: float) -> None:
        super().__init__(model)
        self.classifier, self.scale = classifier, scale

    def __call__(self, x: Tensor, sigma: Tensor, class_labels: Tensor | None = None, **cond: Any) -> Tensor:
        if class_labels is None:
            raise ValueError("classifier guidance needs class_labels")
        with torch.enable_grad():
            x_in = x.detach().requires_grad_(True)
            log_p = self.classifier(x_in, sigma).log_softmax(-1)
            (grad,) = torch.autograd.grad(log_p.gather(1, class_labels[:, None]).sum(), x_in)
        return self.model(x, sigma, **cond) + self.scale * sigma.reshape(-1, *[1] * (x.ndim - 1)) ** 2 * grad


class Conditioned(_Wrapper):
    """A denoiser with its conditioning bound, so an unconditional sampler can drive it."""

    def __init__(self, model: Denoiser, **cond: Any) -> None:
        super().__init__(model)
        self.cond = cond

    def __call__(self, x: Tensor, sigma: Tensor, **cond: Any) -> Tensor:
        return self.model(x, sigma, **{**self.cond, **cond})
