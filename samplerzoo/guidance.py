"""Guidance: wrappers that turn a conditional denoiser into a guided one (still a Denoiser).

Both act on D directly; since D = c_skip x + c_out F is affine in the network output, guiding D is the
same as guiding epsilon, v or F.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from .denoiser import Checkpoint, Denoiser
from .errors import SamplerzooError

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


def class_conditioned(model: Checkpoint, seeds: Sequence[int], guidance_scale: float | None = None) -> Denoiser:
    """A class-conditional model with labels ``seed % num_classes`` bound, guided when ``guidance_scale`` is set
    (classifier-free, against the model's ``null_label``); an unconditional model is returned as it is, and refuses
    a guidance scale (it has nothing to guide towards)."""
    if not model.num_classes:
        if guidance_scale is not None:
            raise SamplerzooError(f"guidance scale {guidance_scale}: the checkpoint is unconditional (no classes); "
                                  "accepted: a guidance scale only with a class-conditional checkpoint (digits-cond)")
        return model
    labels = torch.tensor([seed % model.num_classes for seed in seeds])
    if guidance_scale is None:
        return Conditioned(model, class_labels=labels)
    null_label = getattr(model, "null_label", None)
    if null_label is None:
        raise SamplerzooError("classifier-free guidance needs a model trained with a null label (samplerzoo.json "
                              "'null_label'); this one has none")
    return Conditioned(ClassifierFreeGuidance(model, guidance_scale, null_label), class_labels=labels)
