"""The two samplers of seed 002 ("Fast Sampling Diffusion ... using an additional layer", Sec. 4.2 c).

Both are the seed's eta-DDIM loop, in samplerzoo's sigma frame, with the frozen model's v passed through the
trained add_net (:mod:`.layer`) during the first half of the steps. The v of any denoiser is read off D
(Salimans & Ho 2022): with the VP alpha = 1 / sqrt(1 + sigma^2), sigma_vp = sigma alpha and x_vp = alpha x,

    v = alpha eps - sigma_vp x0,    and back    x0 = alpha x_vp - sigma_vp v    (the seed's ``pred``).

``additional_layer_v1`` directs sample i to class seed_i % 10 (samplerzoo's class-conditional convention).
``additional_layer_v2`` starts one trajectory per group of samples and fans it out: into the 10 classes at
step 0, then by the prime factors of group / 10 (largest first) at steps 1, 2, ...; the network runs on
fewer rows early, which is where its speed comes from. Every sample still sees one denoiser call per step
on its own trajectory (shared with its siblings early on), so its NFE is the number of steps, as DDIM's.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
from samplerzoo.denoiser import Denoiser, per_sample
from samplerzoo.errors import SamplerzooError, UnknownNameError
from samplerzoo.noise import NoiseSampler, gaussian_noise_like
from samplerzoo.noise_schedules import vp_input_scale
from samplerzoo.registry import SamplerSpec
from samplerzoo.steps import Callback, ancestral_split, ancestral_step, denoise, notify, to_d
from torch import Tensor

from .layer import AdditionalLayer, Layer, shipped_layer

NUM_CLASSES = 10
Perturbation = Literal["additive", "multiplicative"]


def v_from_denoised(x: Tensor, sigma: Tensor, denoised: Tensor) -> Tensor:
    """v = alpha eps - sigma_vp x0, with eps = (x - D) / sigma the slope of the ODE."""
    alpha = vp_input_scale(sigma)
    return alpha * to_d(x, sigma, denoised) - sigma * alpha * denoised


def denoised_from_v(x: Tensor, sigma: Tensor, v: Tensor) -> Tensor:
    """pred = alpha x_vp - sigma_vp v, with x_vp = alpha x (the seed's ``sample()``)."""
    alpha = vp_input_scale(sigma)
    return alpha * (alpha * x) - sigma * alpha * v


def checked_layer(layer: Layer | None, sample_shape: tuple[int, ...], sampler: str) -> Layer:
    """The given layer, or the shipped one; a trained layer must match the sample shape it was trained on."""
    add_net = shipped_layer() if layer is None else layer
    if isinstance(add_net, AdditionalLayer) and sample_shape != add_net.sample_shape:
        raise SamplerzooError(f"{sampler}: its layer was trained on {add_net.checkpoint or 'a model'} with samples "
                              f"of shape {add_net.sample_shape}, got {sample_shape}; pass layer=... "
                              "trained for this model (or identity_layer)")
    return add_net


def on_device(layer: Layer, device: torch.device) -> Layer:
    """A trained layer moved to the samples' device; a plain function (identity_layer) as it is."""
    return layer.to(device) if isinstance(layer, AdditionalLayer) else layer


def check_v1(sample_shape: tuple[int, ...], *, layer: Layer | None = None, **_: object) -> None:
    """additional_layer_v1's options against the sample shape, before any work (``SamplerSpec.check``)."""
    checked_layer(layer, sample_shape, "additional_layer_v1")


def check_v2(sample_shape: tuple[int, ...], *, layer: Layer | None = None, group: int = 100,
             perturbation: str = "additive", **_: object) -> None:
    """additional_layer_v2's options against the sample shape, before any work (``SamplerSpec.check``)."""
    checked_layer(layer, sample_shape, "additional_layer_v2")
    fan_out_factors(group)
    perturbation_named(perturbation)


def seed_classes(noise: NoiseSampler | None, batch: int) -> Tensor:
    """classes = seed % 10 (``samplerzoo.guidance.class_conditioned``), read from the per-sample seeded noise."""
    seeds = getattr(noise, "seeds", None)
    if seeds is None or len(seeds) != batch:
        raise SamplerzooError("additional_layer_v1 directs sample i to class seed_i % 10: it needs the per-sample "
                              "seeded noise (samplerzoo.CounterNoise or SeededNoise) or classes=...")
    return torch.tensor([seed % NUM_CLASSES for seed in seeds])


def sample_additional_layer_v1(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None,
                               callback: Callback | None = None, eta: float = 0.0, layer: Layer | None = None,
                               classes: Tensor | None = None) -> Tensor:
    """Seed 002's sample_new_v1: eta-DDIM with v = add_net(v, classes) for steps i <= steps // 2."""
    add_net = on_device(checked_layer(layer, tuple(x.shape[1:]), "additional_layer_v1"), x.device)
    classes = (seed_classes(noise, len(x)) if classes is None else classes).to(x.device)
    noise = noise or gaussian_noise_like(x)
    steps = len(sigmas) - 1
    for i in range(steps):
        denoised = denoise(model, x, sigmas[i])
        if i <= steps // 2:  # direct the first half of each trajectory towards its class
            denoised = denoised_from_v(x, sigmas[i], add_net(v_from_denoised(x, sigmas[i], denoised), classes))
        notify(callback, x, i, sigmas[i], sigmas[i], denoised)
        sigma_down, sigma_up = ancestral_split(sigmas[i], sigmas[i + 1], eta)
        x = ancestral_step(x, denoised, sigmas[i], sigma_down, sigma_up, noise, sigmas[i + 1])
    return x


def fan_out_factors(group: int) -> list[int]:
    """The prime factors of group / 10, largest first (the seed's ``find_all_factor(num_image // 10)``, reversed)."""
    if group < NUM_CLASSES or group % NUM_CLASSES:
        raise SamplerzooError(f"additional_layer_v2: the group ({group}) must be a positive multiple of 10")
    rest, factors, p = group // NUM_CLASSES, [], 2
    while rest > 1:
        while rest % p == 0:
            factors.append(p)
            rest //= p
        p += 1
    return factors[::-1]


def active_rows(group: int, steps: int) -> list[int]:
    """Rows of one group the network evaluates at each step: 1, 10, 10 n_1, ..., then the whole group."""
    rows = [1, NUM_CLASSES]
    for n in fan_out_factors(group):
        rows.append(rows[-1] * n)
    return (rows + [group] * steps)[:steps]


def tile(t: Tensor, groups: int, n: int) -> Tensor:
    """Repeat the rows of each group n times over ([a, b] -> [a, b, a, b]), the seed's ``Tensor.repeat`` per group."""
    per_group = t.reshape(groups, -1, *t.shape[1:])
    return per_group.repeat(1, n, *[1] * (t.ndim - 1)).reshape(-1, *t.shape[1:])


def group_noise(noise: NoiseSampler, groups: int, m: int) -> NoiseSampler:
    """Noise for m live rows per group: the first m rows of each group of a full-batch draw, so each group
    draws from its own samples' seeds (a group does not depend on the rest of the batch)."""
    return lambda sigma, sigma_next: noise(sigma, sigma_next).unflatten(0, (groups, -1))[:, :m].flatten(0, 1)


def keep_originals(tiled: Tensor, copies: Tensor, groups: int, n: int) -> Tensor:
    """Of n blocks per group, the first keeps v itself and the others take the copies (the seed's
    ``v_list = [v] + [net(...) for n - 1 copies]``)."""
    m = len(tiled) // (groups * n)
    original = (torch.arange(n * m, device=tiled.device) < m).repeat(groups)
    return torch.where(per_sample(original, tiled), tiled, copies)


def additive(v: Tensor, xi: Tensor, w: float) -> Tensor:
    """v + w xi, xi ~ N(0, I): the seed's text (w = 0.01)."""
    return v + w * xi


def multiplicative(v: Tensor, xi: Tensor, w: float) -> Tensor:
    """v + v u, u = Phi(xi) ~ U(0, 1): the seed's code (``v + v * torch.rand_like(v)``); w is not used."""
    return v + v * torch.special.ndtr(xi)


PERTURBATIONS: dict[str, Callable[[Tensor, Tensor, float], Tensor]] = {"additive": additive,
                                                                       "multiplicative": multiplicative}


def perturbation_named(name: str) -> Callable[[Tensor, Tensor, float], Tensor]:
    """The perturbation of additional_layer_v2's copies called ``name``; one line naming the known ones otherwise."""
    if name not in PERTURBATIONS:
        raise UnknownNameError("perturbation", name, PERTURBATIONS)
    return PERTURBATIONS[name]


def sample_additional_layer_v2(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None,
                               callback: Callback | None = None, eta: float = 0.0, layer: Layer | None = None,
                               group: int = 100, perturbation: Perturbation = "additive", w: float = 0.01) -> Tensor:
    """Seed 002's sample_new_v2: each group of samples grows from its first sample's noise, fanned out through
    add_net into the 10 classes at step 0 and by the prime factors of group / 10 at the next steps."""
    add_net = on_device(checked_layer(layer, tuple(x.shape[1:]), "additional_layer_v2"), x.device)
    factors, steps, perturb = fan_out_factors(group), len(sigmas) - 1, perturbation_named(perturbation)
    if len(x) % group or len(factors) >= steps:
        raise SamplerzooError(f"additional_layer_v2: a group of {group} needs a batch that is a multiple of it (got "
                              f"{len(x)}) and at least {len(factors) + 1} steps (got {steps})")
    noise, groups = noise or gaussian_noise_like(x), len(x) // group
    x, classes = x[::group], torch.arange(NUM_CLASSES, device=x.device).repeat(groups)  # one root per group
    for i in range(steps):
        v = v_from_denoised(x, sigmas[i], denoise(model, x, sigmas[i]))
        if i == 0:  # add_net.sample: each root's v becomes one class-directed v per class
            x, v = x.repeat_interleave(NUM_CLASSES, 0), add_net(v.repeat_interleave(NUM_CLASSES, 0), classes)
        elif i <= len(factors):  # keep each v and add n - 1 copies add_net(perturbed v)
            n = factors[i - 1]
            x, v, classes = tile(x, groups, n), tile(v, groups, n), tile(classes, groups, n)
            xi = group_noise(noise, groups, len(x) // groups)(sigmas[i], sigmas[i + 1])
            v = keep_originals(v, add_net(perturb(v, xi, w), classes), groups, n)
        elif i <= steps // 2:
            v = add_net(v, classes)
        denoised = denoised_from_v(x, sigmas[i], v)
        notify(callback, x, i, sigmas[i], sigmas[i], denoised)
        sigma_down, sigma_up = ancestral_split(sigmas[i], sigmas[i + 1], eta)
        x = ancestral_step(x, denoised, sigmas[i], sigma_down, sigma_up, group_noise(noise, groups, len(x) // groups),
                           sigmas[i + 1])
    return x


SPECS = [
    SamplerSpec("additional_layer_v1", sample_additional_layer_v1, order=1, stochastic=False, check=check_v1,
                paper="Fast Sampling Diffusion on large quantities of images using an additional layer (seed 002), "
                      "Sec. 4.2 c, sample_new_v1",
                reference="seed 002's sample_new_v1 (add_net on v for i <= steps // 2); samplerzoo ddim with "
                          "identity_layer"),
    SamplerSpec("additional_layer_v2", sample_additional_layer_v2, order=1, stochastic=True, check=check_v2,
                paper="Fast Sampling Diffusion on large quantities of images using an additional layer (seed 002), "
                      "Sec. 4.2 c, sample_new_v2",
                reference="seed 002's sample_new_v2 (fan-out 1 -> 10 -> 10 n_1 -> ... -> group)"),
]
