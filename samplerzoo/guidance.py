"""Conditioning and guidance: what the user asks for (class labels, prompts, a guidance scale) becomes a
Denoiser with its ``cond`` tensors bound, guided by wrappers that are still Denoisers.

Every checkpoint's ``condition(samples, labels=..., prompts=..., negative_prompts=..., guidance_scale=...)``
binds ``cond`` tensors batched along dim 0 for the samples of one batch. Sample ``i`` takes ``labels[i % L]``
and ``prompts[i % P]``; the harness passes the batch's seeds, so by default a class-conditional model draws
label ``seed % num_classes``. Guidance scale ``None`` or 1 is plain conditional sampling (one network forward
per denoiser call); any other value is classifier-free guidance (0 is unconditional), two forwards per call,
batched or not.

The wrappers act on D directly; since D = c_skip x + c_out F is affine in the network output, guiding D is the
same as guiding epsilon, v or F.

Samplers that need the unconditional prediction beside the guided one (CFG++, Chung et al. 2024) call
``with_unconditional(x, sigma, **cond) -> (guided, unconditional)``, one denoiser call. Classifier-free guidance
provides it; a wrapper that changes a call must implement it too (``Conditioned`` binds its cond, the NFE counter
counts it), so a wrapper passes it on only through ``pass_unconditional``: one that does not hides it, and a
sampler then refuses the model in one line (:func:`require_unconditional`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

import torch
from torch import Tensor

from .denoiser import Denoiser, forwards_per_call, per_sample
from .errors import SamplerzooError
from .guidance_rules import GuidanceMethod

Classifier = Callable[[Tensor, Tensor], Tensor]
"""``classifier(x, sigma) -> logits`` over classes, for the noisy x at level sigma."""
T = TypeVar("T")
UNCONDITIONAL_METHOD = "with_unconditional"
Unconditional = Callable[..., tuple[Tensor, Tensor]]
"""``with_unconditional(x, sigma, **cond) -> (guided, unconditional)``."""


class _Wrapper:
    """Forwards the Denoiser attributes (sigma range, table, sample shape) of the wrapped model."""

    def __init__(self, model: Denoiser) -> None:
        self.model = model

    def __getattr__(self, name: str) -> Any:
        if name == UNCONDITIONAL_METHOD:
            inner = getattr(self.model, name, None)
            passed = None if inner is None else self.pass_unconditional(inner)
            if passed is None:
                raise AttributeError(name)
            return passed
        if name == "model":
            raise AttributeError(name)
        return getattr(self.model, name)

    def pass_unconditional(self, method: Unconditional) -> Unconditional | None:
        """The wrapped model's ``with_unconditional`` as this wrapper offers it; None (the default) hides it,
        since a wrapper that changes calls must say how it changes this one too."""
        return None


def concat_cond(first: Mapping[str, Any], second: Mapping[str, Any]) -> dict[str, Any]:
    """Two ``cond`` dicts with the same keys as one, tensors concatenated along the batch dimension."""
    if set(first) != set(second):
        raise ValueError(f"conditional and unconditional cond differ in keys: {sorted(first)} vs {sorted(second)}")
    return {k: torch.cat([v, second[k]]) if isinstance(v, Tensor) else v for k, v in first.items()}


class ClassifierFreeGuidance(_Wrapper):
    """D_w = D(x, sigma, c_0) + w (D(x, sigma, c) - D(x, sigma, c_0)) (Ho & Salimans 2022, Eq. 6).

    The unconditional ``cond`` c_0 is the null label of a class-conditional model (``null_label``) or given as
    a dict (``unconditional``: negative-prompt embeddings) that replaces those keys of ``cond``. ``scale`` is
    diffusers' ``guidance_scale``: 1 is plain conditional sampling, 0 unconditional. With ``batched`` both halves
    go through the network as one forward of twice the batch, otherwise as two; either way each call costs two
    network forwards per sample (``forwards_per_call``). ``method`` combines the two predictions another way
    (samplerzoo.guidance_rules: APG, CFG-Zero*, TCFG, Lin et al.'s rescale); None is Eq. 6 itself.
    """

    def __init__(self, model: Denoiser, scale: float, null_label: int | None = None, batched: bool = True, *,
                 unconditional: Mapping[str, Any] | None = None, method: GuidanceMethod | None = None) -> None:
        super().__init__(model)
        if (null_label is None) == (unconditional is None):
            raise ValueError("classifier-free guidance needs exactly one of null_label and unconditional")
        self.scale, self.null_label, self.batched = scale, null_label, batched
        self.combine = None if method is None or method.plain else method.combiner(model)
        self.unconditional = dict(unconditional or {})
        self.forwards_per_call = 2 * forwards_per_call(model)

    def unconditional_cond(self, cond: Mapping[str, Any]) -> dict[str, Any]:
        if self.null_label is None:
            return {**cond, **self.unconditional}
        labels = cond.get("class_labels")
        if labels is None:
            raise ValueError("classifier-free guidance needs class_labels")
        return {**cond, "class_labels": torch.full_like(labels, self.null_label)}

    def __call__(self, x: Tensor, sigma: Tensor, **cond: Any) -> Tensor:
        return self.with_unconditional(x, sigma, **cond)[0]

    def with_unconditional(self, x: Tensor, sigma: Tensor, **cond: Any) -> tuple[Tensor, Tensor]:
        """The guided prediction and the unconditional one it was built from (one call, two forwards)."""
        null = self.unconditional_cond(cond)
        if self.batched:
            both = self.model(torch.cat([x, x]), torch.cat([sigma, sigma]), **concat_cond(cond, null))
            conditional, unconditional = both.chunk(2)
        else:
            conditional = self.model(x, sigma, **cond)
            unconditional = self.model(x, sigma, **null)
        if self.combine is None:
            return unconditional + self.scale * (conditional - unconditional), unconditional
        return self.combine(x, sigma, conditional, unconditional, self.scale), unconditional


class ClassifierGuidance(_Wrapper):
    """D + w sigma^2 grad_x log p(y | x; sigma): the score gains w grad log p(y|x) (Dhariwal & Nichol 2021,
    Alg. 1; Song et al. 2021, Eq. 14), and D = x + sigma^2 score."""

    def __init__(self, model: Denoiser, classifier: Classifier, scale: float) -> None:
        super().__init__(model)
        self.classifier, self.scale = classifier, scale

    def __call__(self, x: Tensor, sigma: Tensor, class_labels: Tensor | None = None, **cond: Any) -> Tensor:
        if class_labels is None:
            raise ValueError("classifier guidance needs class_labels")
        with torch.inference_mode(False), torch.enable_grad():  # generate() samples in inference mode
            x_in = x.detach().clone().requires_grad_(True)
            log_p = self.classifier(x_in, sigma.clone()).log_softmax(-1)
            (grad,) = torch.autograd.grad(log_p.gather(1, class_labels[:, None]).sum(), x_in)
        return self.model(x, sigma, **cond) + self.scale * per_sample(sigma, x) ** 2 * grad


class Conditioned(_Wrapper):
    """A denoiser with its conditioning bound, so an unconditional sampler can drive it."""

    def __init__(self, model: Denoiser, **cond: Any) -> None:
        super().__init__(model)
        self.cond = cond

    def __call__(self, x: Tensor, sigma: Tensor, **cond: Any) -> Tensor:
        return self.model(x, sigma, **{**self.cond, **cond})

    def pass_unconditional(self, method: Unconditional) -> Unconditional:
        return lambda x, sigma, **cond: method(x, sigma, **{**self.cond, **cond})


def unconditional_of(model: Denoiser, sampler: str) -> Unconditional:
    """``model.with_unconditional``, or a one-line error: ``sampler`` needs classifier-free guidance."""
    method = getattr(model, UNCONDITIONAL_METHOD, None)
    if method is None:
        raise SamplerzooError(f"{sampler} needs the unconditional prediction beside the guided one: sample a "
                              "conditional checkpoint with classifier-free guidance (a guidance scale other than 1)")
    return method


def require_unconditional(model: Denoiser, sampler: str) -> None:
    """Refuse, before any work, a model that cannot give ``sampler`` the unconditional prediction."""
    unconditional_of(model, f"sampler {sampler!r}")


class Conditioner(Protocol):
    """How a checkpoint builds its conditioning: ``conditioner(model, samples, labels=..., prompts=..., ...)``."""

    def __call__(self, model: Denoiser, samples: Sequence[int], *, labels: Sequence[int] | None = None,
                 prompts: Sequence[str] | None = None, negative_prompts: Sequence[str] | None = None,
                 guidance_scale: float | None = None, distilled_guidance: float | None = None,
                 guidance: GuidanceMethod | None = None) -> Denoiser: ...


def cycle(values: Sequence[T], samples: Sequence[int]) -> list[T]:
    """``values[i % len(values)]`` for each sample index ``i``."""
    return [values[i % len(values)] for i in samples]


def guided(scale: float | None) -> bool:
    """Whether ``scale`` asks for classifier-free guidance: anything but ``None`` and 1."""
    return scale is not None and scale != 1


def check_guidance(guidance: GuidanceMethod | None, scale: float | None) -> None:
    """A guidance rule other than plain CFG is an error without a scale that asks for guidance."""
    if guidance is not None and guidance.name != "cfg" and not guided(scale):
        raise SamplerzooError(f"guidance {guidance.name!r} combines the conditional and unconditional predictions: "
                              "give a guidance scale other than 1")


def bind(model: Denoiser, cond: dict[str, Any], unconditional: dict[str, Any], scale: float | None,
         guidance: GuidanceMethod | None = None) -> Denoiser:
    """``model`` with ``cond`` bound, guided against ``unconditional`` by ``guidance`` (default: CFG) when
    ``scale`` asks for it (the request checked first: :func:`check_guidance`)."""
    if not guided(scale):
        return Conditioned(model, **cond)
    assert scale is not None
    return Conditioned(ClassifierFreeGuidance(model, scale, unconditional=unconditional, method=guidance), **cond)


def condition_on_labels(model: Denoiser, samples: Sequence[int], *, labels: Sequence[int] | None = None,
                        prompts: Sequence[str] | None = None, negative_prompts: Sequence[str] | None = None,
                        guidance_scale: float | None = None, distilled_guidance: float | None = None,
                        guidance: GuidanceMethod | None = None) -> Denoiser:
    """An unconditional model as it is, or a class-conditional one with labels ``labels[i % L]`` (default
    ``i % num_classes``), guided against its ``null_label`` by ``guidance``; bad requests fail before any work."""
    num_classes = int(getattr(model, "num_classes", 0))
    kind = f"class-conditional (labels 0..{num_classes - 1})" if num_classes else "unconditional"
    if prompts or negative_prompts:
        raise SamplerzooError(f"prompts need a text-conditioned checkpoint; this one is {kind}")
    no_distilled_guidance(distilled_guidance, kind)
    if not num_classes:
        if labels is not None:
            raise SamplerzooError("labels need a class-conditional checkpoint; this one is unconditional")
        if guidance_scale is not None:  # any scale, 1 included: there is nothing to guide towards
            raise SamplerzooError(f"guidance scale {guidance_scale}: classifier-free guidance needs a conditional "
                                  "checkpoint; this one is unconditional")
        return model
    if labels is not None and not labels:
        raise SamplerzooError("labels is empty; give at least one label")
    bad = [label for label in labels or () if not 0 <= int(label) < num_classes]
    if bad:
        raise SamplerzooError(f"label {bad[0]} is out of range; this checkpoint has labels 0..{num_classes - 1}")
    chosen = torch.tensor(cycle(list(labels or range(num_classes)), samples), dtype=torch.long)
    check_guidance(guidance, guidance_scale)
    if not guided(guidance_scale):
        return Conditioned(model, class_labels=chosen)
    null_label = getattr(model, "null_label", None)
    if null_label is None:
        raise SamplerzooError("classifier-free guidance needs a model trained with a null label (samplerzoo.json "
                              "'null_label'); this one has none")
    return bind(model, {"class_labels": chosen}, {"class_labels": torch.full_like(chosen, null_label)}, guidance_scale,
                guidance)


def no_distilled_guidance(scale: float | None, kind: str) -> None:
    """A distilled guidance scale is an error for a model that does not embed one."""
    if scale is not None:
        raise SamplerzooError(f"distilled guidance {scale}: it needs a guidance-distilled checkpoint (Flux dev, which "
                              f"embeds the scale); this one is {kind}: use the guidance scale (CFG)")


def prompts_for(samples: Sequence[int], labels: Sequence[int] | None, prompts: Sequence[str] | None,
                negative_prompts: Sequence[str] | None, guidance_scale: float | None,
                guidance: GuidanceMethod | None = None) -> tuple[list[str], list[str] | None]:
    """Each sample's prompt and negative prompt for a text-conditioned model, the request checked first."""
    if labels is not None:
        raise SamplerzooError("labels need a class-conditional checkpoint; this one is text-conditioned: give prompts")
    if not prompts:
        raise SamplerzooError("this checkpoint is text-conditioned: give a prompt")
    if negative_prompts and not guided(guidance_scale):
        raise SamplerzooError("negative prompts act only through classifier-free guidance: give a guidance scale "
                              "other than 1")
    check_guidance(guidance, guidance_scale)
    return cycle(list(prompts), samples), cycle(list(negative_prompts), samples) if negative_prompts else None


def condition(model: Denoiser, samples: Sequence[int], **request: Any) -> Denoiser:
    """``model.condition(samples, **request)``; class-label conditioning for a model without that method."""
    method = getattr(model, "condition", None)
    return method(samples, **request) if method is not None else condition_on_labels(model, samples, **request)


def class_conditioned(model: Denoiser, seeds: Sequence[int], guidance_scale: float | None = None) -> Denoiser:
    """The model conditioned on its default labels ``seed % num_classes`` (unconditional: as it is), guided when
    ``guidance_scale`` is set; kept for callers that pass only seeds and a scale."""
    return condition(model, seeds, guidance_scale=guidance_scale)
