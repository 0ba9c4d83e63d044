"""Guidance rules: how classifier-free guidance combines the conditional and unconditional predictions.

A rule is ``rule(cond, uncond, scale, sigma) -> guided``, per sample (dim 0 is the batch), ``scale`` diffusers'
``guidance_scale`` (1: the conditional prediction, for every rule here). Plain CFG is affine, so it gives the same D
in any space; the others are not, and act in the space :class:`GuidanceMethod` names:

- ``denoised``: D itself (the x0 prediction; ComfyUI's ``cond_denoised``, where APG's paper applies it);
- ``noise``: x - D = sigma eps (ComfyUI's ``cond`` / ``uncond`` of a CFG function: CFG-Zero*, TCFG there);
- ``prediction``: the network's own output F, D = c_skip x + c_out F (epsilon, v, a flow velocity: diffusers'
  guiders and ``guidance_rescale`` act there).

Rules that keep state across calls (APG's momentum) are built fresh for every conditioned batch
(:meth:`GuidanceMethod.rule`), and start over where sigma rises (a new trajectory), per sample and on the device.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .denoiser import Denoiser, per_sample
from .errors import SamplerzooError
from .registry import GuidanceSpec

GuidanceRule = Callable[[Tensor, Tensor, float, Tensor], Tensor]
"""``rule(cond, uncond, scale, sigma) -> guided``, each tensor batched along dim 0, sigma of shape (batch,)."""
Combine = Callable[[Tensor, Tensor, Tensor, Tensor, float], Tensor]
"""``combine(x, sigma, cond, uncond, scale) -> guided D`` (:meth:`GuidanceMethod.combiner`)."""
SPACES: tuple[str, ...] = ("denoised", "noise", "prediction")
EPS = 1e-8


def sample_dims(x: Tensor) -> tuple[int, ...]:
    """Every dimension but the batch's."""
    return tuple(range(1, x.ndim))


def dot(a: Tensor, b: Tensor) -> Tensor:
    """Per-sample inner product <a, b>, kept broadcastable over a."""
    return (a * b).sum(sample_dims(a), keepdim=True)


def norm(a: Tensor) -> Tensor:
    """Per-sample Euclidean norm |a|, kept broadcastable over a."""
    return dot(a, a).sqrt()


def cfg(cond: Tensor, uncond: Tensor, scale: float, sigma: Tensor) -> Tensor:
    """uncond + w (cond - uncond) (Ho & Salimans 2022, Eq. 6, in diffusers' scale)."""
    return uncond + scale * (cond - uncond)


def rescaled(guided: Tensor, cond: Tensor, phi: float) -> Tensor:
    """Lin et al. 2024, Common Diffusion Noise Schedules and Sample Steps are Flawed, Sec. 3.4, Eq. 15-17: the guided
    prediction rescaled to the conditional one's standard deviation, blended with it by phi."""
    ratio = cond.std(sample_dims(cond), keepdim=True) / guided.std(sample_dims(guided), keepdim=True)
    return phi * guided * ratio + (1 - phi) * guided


def parallel_part(v: Tensor, onto: Tensor) -> Tensor:
    """The component of v along ``onto``, per sample: <v, u> u with u = onto / |onto|."""
    unit = onto / norm(onto).clamp_min(EPS)
    return dot(v, unit) * unit


@dataclass
class AdaptiveProjected:
    """APG (Sadat, Hilliges & Weber 2024, Eliminating Oversaturation and Artifacts of High Guidance Scales in
    Diffusion Models, Alg. 1): the update Delta = cond - uncond, with momentum (Delta <- Delta + beta Delta_prev,
    Eq. 11) and its norm capped at r (Eq. 10), loses all but eta of its part parallel to cond (Eq. 7-8):
    guided = cond + (w - 1) (Delta_orthogonal + eta Delta_parallel). eta = 1, r = 0, beta = 0 is CFG."""

    eta: float = 0.0
    norm_threshold: float = 0.0
    momentum: float = 0.0
    running: Tensor | None = field(default=None, repr=False)
    last_sigma: Tensor | None = field(default=None, repr=False)

    def __call__(self, cond: Tensor, uncond: Tensor, scale: float, sigma: Tensor) -> Tensor:
        delta = cond - uncond
        if self.momentum:
            delta = delta + self.momentum * self.previous(delta, sigma)
            self.running = delta
        if self.norm_threshold > 0:
            delta = delta * torch.clamp(self.norm_threshold / norm(delta), max=1.0)
        parallel = parallel_part(delta, cond)
        return cond + (scale - 1) * (delta - parallel + self.eta * parallel)

    def previous(self, delta: Tensor, sigma: Tensor) -> Tensor:
        """The running update of each sample, zero where its sigma rose since the last call (a new trajectory)."""
        last, running = self.last_sigma, self.running
        self.last_sigma = sigma
        if last is None or running is None or running.shape != delta.shape:
            return torch.zeros_like(delta)
        return torch.where(per_sample(sigma > last, delta), torch.zeros_like(delta), running)


def adaptive_projected(eta: float = 0.0, norm_threshold: float = 0.0, momentum: float = 0.0) -> GuidanceRule:
    """A fresh :class:`AdaptiveProjected` (its momentum is per trajectory)."""
    return AdaptiveProjected(eta, norm_threshold, momentum)


def zero_star(cond: Tensor, uncond: Tensor, scale: float, sigma: Tensor) -> Tensor:
    """CFG-Zero* (Fan et al. 2025, CFG-Zero*: Improved Classifier-Free Guidance for Flow Matching Models, Eq. 8-10):
    the unconditional prediction scaled by s* = <cond, uncond> / |uncond|^2, its projection fitting cond best, then
    s* uncond + w (cond - s* uncond)."""
    s = dot(cond, uncond) / (dot(uncond, uncond) + EPS)
    return cfg(cond, s * uncond, scale, sigma)


def tangential(cond: Tensor, uncond: Tensor, scale: float, sigma: Tensor) -> Tensor:
    """TCFG (Kwon et al. 2025, TCFG: Tangential Damping Classifier-free Guidance, Alg. 1): the unconditional
    prediction keeps only its component along the first right-singular vector of the 2 x d matrix [cond; uncond]
    of each sample (its tangential part is damped), then CFG."""
    rows = torch.stack([cond.flatten(1), uncond.flatten(1)], dim=1).double()
    first = torch.linalg.svd(rows, full_matrices=False).Vh[:, :1]  # (batch, 1, d)
    kept = (rows[:, 1:] @ first.transpose(1, 2)) @ first
    return cfg(cond, kept.reshape(uncond.shape).to(uncond.dtype), scale, sigma)


@dataclass(frozen=True)
class GuidanceMethod:
    """A registered rule with its options bound, the space it acts in and Lin et al.'s rescale phi (0: off)."""

    name: str
    build: Callable[[], GuidanceRule]
    space: str = "denoised"
    rescale: float = 0.0

    def rule(self) -> GuidanceRule:
        """The rule for one conditioned batch (state, if it keeps any, starts empty)."""
        return self.build()

    @property
    def plain(self) -> bool:
        """Plain CFG, unrescaled: the same D in any space, so no conversion is needed."""
        return self.name == "cfg" and not self.rescale

    def combiner(self, model: Denoiser) -> Combine:
        """``combine(x, sigma, cond, uncond, scale)``: the guided D of ``model`` from its conditional and
        unconditional D, a fresh rule applied in this method's space; a model this method cannot guide in its space
        is refused in one line."""
        if self.space == "prediction" and not hasattr(model, "coefficients"):
            raise SamplerzooError(f"guidance {self.name!r} in space 'prediction' needs a network checkpoint (its "
                                  "c_skip and c_out); this model has none: use space=denoised or space=noise")
        rule = self.rule()

        def combine(x: Tensor, sigma: Tensor, cond: Tensor, uncond: Tensor, scale: float) -> Tensor:
            to_space, from_space = space_maps(self.space, model, x, sigma)
            c, u = to_space(cond), to_space(uncond)
            guided = rule(c, u, scale, sigma)
            if self.rescale:
                guided = rescaled(guided, c, self.rescale)
            return from_space(guided).to(cond.dtype)

        return combine


Map = Callable[[Tensor], Tensor]


def space_maps(space: str, model: Denoiser, x: Tensor, sigma: Tensor) -> tuple[Map, Map]:
    """D -> the space, and back, at the state x (the denoiser's input) and level sigma."""
    if space == "denoised":
        return (lambda d: d), (lambda g: g)
    if space == "noise":
        return (lambda d: x - d), (lambda g: x - g)
    c_skip, c_out, _ = model.coefficients(sigma, x.ndim)  # type: ignore[attr-defined]
    divisor = torch.where(c_out == 0, torch.ones_like(c_out), c_out)  # where c_out = 0, D = c_skip x whatever F is
    return (lambda d: (d - c_skip * x) / divisor), (lambda g: c_skip * x + c_out * g)


def stateless(rule: GuidanceRule) -> Callable[[], GuidanceRule]:
    """The factory of a rule that keeps no state and takes no options."""
    return lambda: rule


SPECS = (
    GuidanceSpec("cfg", stateless(cfg), "classifier-free guidance: uncond + w (cond - uncond)", space="prediction",
                 aliases=("classifier_free", "ClassifierFreeGuidance"),
                 paper="Ho & Salimans 2022, Classifier-Free Diffusion Guidance, Eq. 6",
                 reference="diffusers ClassifierFreeGuidance (guidance_rescale: rescale_noise_cfg)"),
    GuidanceSpec("apg", adaptive_projected, "adaptive projected guidance: the update's part parallel to cond "
                 "down-weighted by eta, its norm capped, with momentum", aliases=("AdaptiveProjectedGuidance",),
                 paper="Sadat, Hilliges & Weber 2024, Eliminating Oversaturation and Artifacts of High Guidance "
                 "Scales in Diffusion Models, Alg. 1", reference="diffusers AdaptiveProjectedGuidance; ComfyUI APG"),
    GuidanceSpec("cfg_zero_star", stateless(zero_star), "CFG-Zero*: the unconditional prediction scaled by its "
                 "optimal projection onto cond", space="noise",
                 aliases=("cfg_zero", "ClassifierFreeZeroStarGuidance", "CFGZeroStar"),
                 paper="Fan et al. 2025, CFG-Zero*: Improved Classifier-Free Guidance for Flow Matching Models",
                 reference="diffusers ClassifierFreeZeroStarGuidance; ComfyUI CFGZeroStar"),
    GuidanceSpec("tcfg", stateless(tangential), "tangential damping CFG: the unconditional prediction projected "
                 "on the first singular direction of [cond; uncond]", space="noise",
                 aliases=("TangentialClassifierFreeGuidance", "TCFG"),
                 paper="Kwon et al. 2025, TCFG: Tangential Damping Classifier-free Guidance (arXiv:2503.18137)",
                 reference="diffusers TangentialClassifierFreeGuidance; ComfyUI TCFG"),
)
