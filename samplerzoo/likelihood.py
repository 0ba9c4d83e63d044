"""Log-likelihood of data under a denoiser through the probability-flow ODE, and bits per dimension.

In u = log sigma the PF-ODE is dx/du = g(x, u) = x - D(x, e^u). Along it the density of the noisy data p(x; sigma)
obeys the instantaneous change of variables d log p(x(u); e^u) / du = -div_x g (Chen et al. 2018, Thm. 1), so

    log p(x; sigma_min) = log N(x(sigma_max); 0, sigma_max^2 I) + int_{log sigma_min}^{log sigma_max} div_x g du

(Song et al. 2021, Eq. 39, in the sigma frame), with div_x g = d - tr(dD/dx) for d = dim x. The density computed
is the model's p(x; sigma_min): the data convolved with N(0, sigma_min^2 I), not a density at sigma = 0. The
terminal density is taken as N(0, sigma_max^2 I), which neglects the data's own spread at sigma_max (of relative
order (sigma_data / sigma_max)^2). The divergence is exact (one vector-Jacobian product per dimension) or
Hutchinson's estimate v^T (dg/dx) v with E[v v^T] = I (Hutchinson 1989; Grathwohl et al. 2019), with each
sample's probes drawn once from its own seed and kept for the whole trajectory. A discrete-time VP network is read
through its schedule's smooth sigma -> t map (:func:`with_sigma_to_t`), so that the drift is continuously differentiable
in u for the adaptive solver.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Literal, NamedTuple, cast

import torch
from torch import Tensor

from .adapters import NetworkDenoiser
from .denoiser import CountingDenoiser, Denoiser
from .errors import SamplerzooError, UnknownNameError
from .guidance import Conditioned
from .noise import SeededNoise
from .noise_schedules import SIGMA_TO_T_MODES, DiscreteVP, SigmaToT
from .samplers.reference import dopri5
from .schedules import finite_sigma_max
from .steps import denoise

Divergence = Literal["exact", "hutchinson"]
Probe = Literal["rademacher", "gaussian"]
DIVERGENCES = ("exact", "hutchinson")
PROBES = ("rademacher", "gaussian")
SIGMA_TO_T: tuple[str, ...] = ("model", *SIGMA_TO_T_MODES)
"""How the likelihood reads a network on a discrete-time VP schedule: through its own map, or through one of
``DiscreteVP``'s (``smooth`` by default)."""
BIN_WIDTH = 2 / 256
"""Width in [-1, 1] of one 8-bit pixel value's dequantization bin."""


class Likelihood(NamedTuple):
    """log p(x; sigma_min) = prior + divergence, per sample, and the denoiser calls it took."""

    log_p: Tensor
    prior: Tensor
    """log N(latent; 0, sigma_max^2 I)."""
    divergence: Tensor
    """The integral of div_x g over log sigma from sigma_min to sigma_max."""
    latent: Tensor
    """x(sigma_max), the end of the PF-ODE trajectory."""
    nfe: int
    """Forward calls of the denoiser on the batch (network calls, as CountingDenoiser counts them); each is
    followed by one vector-Jacobian product per probe: d of them for the exact divergence, ``probes`` for
    Hutchinson's."""


class BitsPerDim(NamedTuple):
    bpd: Tensor
    """Bits per dimension of each image."""
    nfe: int
    """Forward calls of the denoiser summed over the batches (see :class:`Likelihood`)."""
    batches: int


def gaussian_log_prob(x: Tensor, sigma: float) -> Tensor:
    """log N(x; 0, sigma^2 I) per sample."""
    d = x[0].numel()
    return -0.5 * x.flatten(1).pow(2).sum(1) / sigma**2 - 0.5 * d * math.log(2 * math.pi * sigma**2)


def basis_probes(x: Tensor) -> Tensor:
    """The unit vectors e_1..e_d for every sample, shape ``(d, *x.shape)``: sum_i e_i^T J e_i = tr J exactly."""
    d = x[0].numel()
    return torch.eye(d, dtype=x.dtype, device=x.device)[:, None].expand(d, x.shape[0], d).reshape(d, *x.shape)


def random_probes(noise: SeededNoise, count: int, kind: Probe) -> Tensor:
    """``count`` probes per sample with E[v v^T] = I, from each sample's own generator: standard normal, or
    Rademacher as their signs. Shape ``(count, batch, *sample_shape)``."""
    if kind not in PROBES:
        raise UnknownNameError("probe", kind, PROBES)
    z = torch.stack([noise.randn() for _ in range(count)])
    return z.sign() if kind == "rademacher" else z


def drift_divergence(model: Denoiser, x: Tensor, u: Tensor, probes: Tensor, weight: float) -> tuple[Tensor, Tensor]:
    """g = x - D(x, e^u) and weight * sum_k v_k^T (dg/dx) v_k per sample, one vector-Jacobian product per probe."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        g = x - denoise(model, x, u.exp())
        vjps = [torch.autograd.grad(g, x, v, retain_graph=True)[0] for v in probes]
    quadratic_forms = torch.stack([(v * vjp).flatten(1).sum(1) for v, vjp in zip(probes, vjps, strict=True)])
    return g.detach(), weight * quadratic_forms.sum(0)


def sigma_range(model: Denoiser, sigma_min: float | None, sigma_max: float | None) -> tuple[float, float]:
    """The integration range, by default the model's own [sigma_min, sigma_max] (an infinite sigma_max: its largest
    finite trained level); it must lie inside it."""
    low = model.sigma_min if sigma_min is None else sigma_min
    high = finite_sigma_max(model, "the likelihood") if sigma_max is None else sigma_max
    if not low < high:
        raise SamplerzooError(f"sigma_min {low:.6g} must be below sigma_max {high:.6g}")
    if not model.sigma_min <= low < high <= model.sigma_max:
        raise SamplerzooError(f"sigma range [{low:.6g}, {high:.6g}] is outside the model's; accepted: within "
                              f"[{model.sigma_min:.6g}, {model.sigma_max:.6g}]")
    return low, high


def check_shape(model: Denoiser, x: Tensor) -> None:
    """Data must be a batch of the model's samples (any batch when the model does not say its sample shape)."""
    shape = getattr(model, "sample_shape", None)
    if x.ndim < 2 or (shape is not None and tuple(x.shape[1:]) != tuple(shape)):
        expected = "(batch, ...)" if shape is None else f"(batch, {', '.join(map(str, shape))})"
        raise SamplerzooError(f"data of shape {tuple(x.shape)} does not fit the model; accepted: {expected}")


def with_sigma_to_t(model: Denoiser, sigma_to_t: str = "smooth") -> Denoiser:
    """The model whose PF-ODE the likelihood integrates: a network on a discrete-time VP schedule read through
    ``DiscreteVP(sigma_to_t=...)`` (``smooth``: the same timesteps on the trained levels, a C1 t(sigma) between
    them, where ``log``'s slope jumps at every level); with ``"model"``, or any other model, the model as it is."""
    if sigma_to_t not in SIGMA_TO_T:
        raise UnknownNameError("sigma_to_t", sigma_to_t, SIGMA_TO_T)
    schedule = getattr(model, "schedule", None)
    if sigma_to_t == "model" or not isinstance(model, NetworkDenoiser) or not isinstance(schedule, DiscreteVP):
        return model
    return model.with_schedule(schedule.with_sigma_to_t(cast(SigmaToT, sigma_to_t)))


def log_likelihood(model: Denoiser, x: Tensor, *, sigma_min: float | None = None, sigma_max: float | None = None,
                   divergence: Divergence = "exact", probes: int = 1, probe: Probe = "rademacher",
                   noise: SeededNoise | None = None, rtol: float = 1e-5, atol: float = 1e-5,
                   sigma_to_t: str = "smooth", progress: Callable[[float], None] | None = None) -> Likelihood:
    """log p(x; sigma_min) by integrating (x, div_x g) from sigma_min to sigma_max with the adaptive reference
    solver (Chen et al. 2018, Thm. 1; Song et al. 2021, Eq. 39); see the module docstring.

    ``divergence="hutchinson"`` averages ``probes`` probes per sample drawn from ``noise`` (by default one
    generator per sample seeded with its index), so a sample's estimate does not depend on its batch.
    ``sigma_to_t``: see :func:`with_sigma_to_t`. ``progress(fraction)`` hears after each solver step how far (in
    log sigma, averaged over the batch) it got.
    """
    sigma_min, sigma_max = sigma_range(model, sigma_min, sigma_max)
    check_shape(model, x)
    if divergence not in DIVERGENCES:
        raise UnknownNameError("divergence", divergence, DIVERGENCES)
    model = with_sigma_to_t(model, sigma_to_t)
    if divergence == "exact":
        v, weight = basis_probes(x), 1.0
    else:
        if probes < 1:
            raise SamplerzooError(f"Hutchinson's estimator needs at least one probe, got {probes}")
        noise = noise or SeededNoise(range(len(x)), x.shape[1:], device=x.device, dtype=x.dtype)
        v, weight = random_probes(noise, probes, probe), 1 / probes
    counted, d = CountingDenoiser(model), x[0].numel()

    def f(y: Tensor, u: Tensor) -> Tensor:
        g, div = drift_divergence(counted, y[:, :d].reshape(x.shape), u, v, weight)
        return torch.cat([g.flatten(1), div[:, None]], 1)

    def on_step(i: int, y: Tensor, u: Tensor, k1: Tensor) -> None:
        if progress is not None:
            progress(float(((u - math.log(sigma_min)) / math.log(sigma_max / sigma_min)).clamp(0, 1).mean()))

    y = dopri5(f, torch.cat([x.flatten(1), x.new_zeros(len(x), 1)], 1), sigma_min, sigma_max, rtol, atol, on_step)
    latent, integral = y[:, :d].reshape(x.shape), y[:, d]
    prior = gaussian_log_prob(latent, sigma_max)
    return Likelihood(prior + integral, prior, integral, latent, counted.calls)


def dequantize(x: Tensor, noise: SeededNoise, bin_width: float = BIN_WIDTH) -> Tensor:
    """y = x + bin_width (U - 1/2), U ~ U[0, 1)^d from each sample's generator (as Phi of a standard normal).

    Uniform dequantization (Theis et al. 2016) with bins centred on the data values. For 8-bit pixels k scaled
    as (2k + 1)/256 - 1 it is exactly y = 2u - 1 with u = (k + U)/256 (Song et al. 2021, App. D.2); centring the
    bins on the values a model was trained on (k/127.5 - 1, or the digits' 17 levels) avoids an offset of up to
    half a bin, which costs of order bin_width^2 / sigma_min^2 nats per dimension at a small sigma_min.
    """
    return x + bin_width * (torch.special.ndtr(noise.randn()) - 0.5)


def bits_per_dim(log_p: Tensor, dims: int, bin_width: float = BIN_WIDTH) -> Tensor:
    """bpd = -(log p(y) + d log bin_width) / (d ln 2), an upper bound on the discrete code length in bits/dim.

    Each discrete value owns a bin of width bin_width, so by Jensen log P(x) = log int_bin p(y) dy >=
    E_U[log p(x + bin_width (U - 1/2))] + d log bin_width (Theis et al. 2016; Ho et al. 2020, Sec. 3.3;
    Papamakarios et al. 2021). For 8-bit data in [-1, 1], y = 2(k + U)/256 - 1 has Jacobian dy/dk = 2/256 per
    dimension: bpd = -log p(y) / (d ln 2) + 7 (+8 for data in [0, 1]).
    """
    return -(log_p + dims * math.log(bin_width)) / (dims * math.log(2))


def check_images(model: Denoiser, images: Tensor) -> None:
    """Images must be a batch of the model's samples with values in [-1, 1]."""
    check_shape(model, images)
    low, high = float(images.min()), float(images.max())
    if low < -1 or high > 1:
        raise SamplerzooError(f"image values span [{low:.4g}, {high:.4g}]; accepted: data scaled to [-1, 1]")


def unconditional(model: Denoiser, batch: int) -> Denoiser:
    """A class-conditional model's unconditional model, its null label bound (label dropout; Ho & Salimans 2022);
    an unconditional model as it is."""
    if not getattr(model, "num_classes", 0):
        return model
    null_label = getattr(model, "null_label", None)
    if null_label is None:
        raise SamplerzooError("a class-conditional model has an unconditional density only with a null label "
                              "(samplerzoo.json 'null_label'); this one has none")
    return Conditioned(model, class_labels=torch.full((batch,), null_label))


def image_bits_per_dim(model: Denoiser, images: Tensor, seeds: Sequence[int], *, bin_width: float = BIN_WIDTH,
                       batch: int = 100, sigma_to_t: str = "smooth", progress: Callable[[float], None] | None = None,
                       **options: Any) -> BitsPerDim:
    """Bits/dim of each image in [-1, 1]: dequantize it from its seed, take log p(y; sigma_min) with
    :func:`log_likelihood` (``options``; Hutchinson probes from the same seed; ``sigma_to_t``: :func:`with_sigma_to_t`,
    applied before a null label is bound), convert with :func:`bits_per_dim`. Every image depends on its own seed
    only, not on ``batch``. ``progress(images)`` hears how many images are done (fractionally, within a batch)."""
    check_images(model, images)
    if len(seeds) != len(images):
        raise SamplerzooError(f"{len(seeds)} seeds for {len(images)} images; accepted: one seed per image")
    model = with_sigma_to_t(model, sigma_to_t)
    bpd, nfe, batches = [], 0, 0
    for start in range(0, len(images), batch):
        chunk = images[start:start + batch]
        noise = SeededNoise(seeds[start:start + batch], chunk.shape[1:], device=chunk.device, dtype=chunk.dtype)
        def done(fraction: float, start: int = start, size: int = len(chunk)) -> None:
            if progress is not None:
                progress(start + fraction * size)

        result = log_likelihood(unconditional(model, len(chunk)), dequantize(chunk, noise, bin_width), noise=noise,
                                sigma_to_t="model", progress=done, **options)  # read through sigma_to_t above
        bpd.append(bits_per_dim(result.log_p, chunk[0].numel(), bin_width))
        nfe, batches = nfe + result.nfe, batches + 1
    return BitsPerDim(torch.cat(bpd), nfe, batches)
