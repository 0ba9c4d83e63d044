"""The law of a stochastic sampler's output, measured against the law it should have (the conformance kit's
stochastic checks: :mod:`samplerzoo.conformance` asserts on these measurements).

* **Gaussian target** N(mu, s^2 I): the denoiser is affine, so a sampler made of linear steps and Gaussian noise is an
  affine map of its start and its noise draws, and (per coordinate) its output given its start is exactly Gaussian,
  ``x_out | x_start ~ N(offset + gain x_start, noise_var)``. :func:`affine_law` reads that map off the sampler by
  automatic differentiation, the noise draws being leaves: independent N(0, 1) draws, or the increments of one
  Brownian path for a ``brownian`` sampler. :func:`exact_law` is what the exact process gives: the reverse SDE's
  output given its start follows the forward process's posterior (Anderson 1982), so its whole joint law with the
  start is fixed; a sampler that only preserves the marginals (EDM's churn, Restart, Langevin) is held to the
  marginal. No Monte-Carlo error: the distance between the two laws is exact at every step count.
* **Gaussian mixture**: no closed form for the sampler's law, but the target's conditional CDF per coordinate is
  (a mixture of normal CDFs). :func:`mixture_law_pvalue` maps each output through it (probability integral
  transform: uniform under the right law) and applies Neyman's smooth test of uniformity.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .analytic import Gaussian, GaussianMixture
from .noise import NoiseSampler
from .registry import SamplerSpec
from .samplers.langevin import last_level
from .schedules import SigmaRange, karras
from .testing import LAW_RANGE, gaussian_problem, kit_call, model_for


class NotAffineError(AssertionError):
    """The sampler's output is not an affine function of its start and noise on a Gaussian target."""


@dataclass(frozen=True)
class AffineLaw:
    """x_out | x_start ~ N(offset + gain x_start, noise_var), per coordinate."""

    offset: float
    gain: float
    noise_var: float

    def marginal(self, start_mean: float, start_var: float) -> tuple[float, float]:
        """Mean and variance of x_out when x_start ~ N(start_mean, start_var)."""
        return self.offset + self.gain * start_mean, self.gain**2 * start_var + self.noise_var


def exact_law(problem: Gaussian, sigmas: Tensor) -> AffineLaw:
    """The exact reverse process from sigma_T = sigmas[0] to the last positive level sigma_L, then D(x, sigma_L) if the
    schedule ends in 0 (every sampler's step to 0): the forward process's posterior x_L | x_T ~ N(mu + k (x_T - mu),
    v_L (1 - k)), v = s^2 + sigma^2, k = v_L / v_T (x_T = x_L + sqrt(sigma_T^2 - sigma_L^2) n), then
    D = mu + s^2 / v_L (x - mu)."""
    var, mean = problem.std**2, float(problem.mean.flatten()[0])
    vT, vL = var + float(sigmas[0]) ** 2, var + float(last_level(sigmas)) ** 2
    k = vL / vT
    shrink = var / vL if float(sigmas[-1]) == 0 else 1.0
    return AffineLaw(mean * (1 - shrink * k), shrink * k, shrink**2 * vL * (1 - k))


Combination = tuple[slice, Tensor]
"""A noise draw as ``(weights * basis[part]).sum()`` over independent standard normals ``basis``."""


Queries = list[tuple[float, float]]
"""The (sigma, sigma_next) of each noise draw a run asked for, in order."""


def record_queries(spec: SamplerSpec, problem: Gaussian, sigmas: Tensor, **options: Any) -> tuple[float, Queries]:
    """The sampler's output from x_start = 0 with all noise 0 (the law's offset), and the (sigma, sigma_next) of each
    noise draw it asked for."""
    queries: list[tuple[float, float]] = []

    def record(sigma: Tensor, sigma_next: Tensor) -> Tensor:
        queries.append((float(sigma), float(sigma_next)))
        return torch.zeros(1, 1, dtype=torch.float64)

    start = torch.zeros(1, 1, dtype=torch.float64)
    offset = kit_call(spec, model_for(spec, problem), start, sigmas, noise=record, **options)
    return float(offset), queries


def independent_draws(queries: Queries) -> list[Combination]:
    """Each draw its own standard normal (:class:`samplerzoo.noise.SeededNoise`)."""
    return [(slice(q, q + 1), torch.ones(1, dtype=torch.float64)) for q in range(len(queries))]


def brownian_draws(queries: Queries) -> list[Combination]:
    """Each draw (W(b) - W(a)) / sqrt|b - a| of one Brownian path W, written in the independent normalised increments
    between consecutive queried levels (:class:`samplerzoo.noise.BrownianTreeNoise`: overlapping draws correlate)."""
    levels = sorted({s for query in queries for s in query})
    index = {s: i for i, s in enumerate(levels)}
    widths = torch.tensor(levels, dtype=torch.float64).diff()
    draws = []
    for a, b in queries:
        low, high = sorted((a, b))
        if low == high:
            raise ValueError(f"a Brownian increment over the empty interval [{a}, {b}]")
        part = slice(index[low], index[high])
        draws.append((part, (1.0 if b > a else -1.0) * (widths[part] / (high - low)).sqrt()))
    return draws


def affine_law(spec: SamplerSpec, sigmas: Tensor, problem: Gaussian | None = None, brownian: bool | None = None,
               **options: Any) -> AffineLaw:
    """The sampler's exact law on a 1-D Gaussian target: its output at a random probe (start and noise draws as
    autograd leaves) and the gradient there give gain and noise coefficients; AssertionError if the sampler is not
    affine (its output at the probe is not offset + gradient . probe, e.g. ``pc``'s norm-based step sizes)."""
    problem = problem or gaussian_problem(dim=1)
    brownian = spec.brownian if brownian is None else brownian
    offset, queries = record_queries(spec, problem, sigmas, **options)
    draws = (brownian_draws if brownian else independent_draws)(queries)
    width = max((part.stop for part, _ in draws), default=0)
    generator = torch.Generator().manual_seed(0)
    probe = torch.randn(width + 1, generator=generator, dtype=torch.float64)
    probe[0] *= float(sigmas[0])
    leaves = [value.clone().requires_grad_() for value in probe]  # one leaf per input: each backward is local
    start = leaves[0].reshape(1, 1)
    replay = iter(draws)

    def noise(sigma: Tensor, sigma_next: Tensor) -> Tensor:
        part, weights = next(replay)
        return (weights * torch.stack(leaves[1 + part.start:1 + part.stop])).sum().reshape(1, 1)

    out = kit_call(spec, model_for(spec, problem), start, sigmas, noise=noise, **options).sum()
    grads = torch.autograd.grad(out, leaves, allow_unused=True)
    coefficients = torch.stack([torch.zeros((), dtype=torch.float64) if g is None else g for g in grads])
    predicted = offset + float(coefficients @ probe)
    value = float(out.detach())
    if abs(value - predicted) > 1e-9 * (1 + abs(value)):
        raise NotAffineError(f"{spec.name}: not affine on a Gaussian target (output {value:.6g} at a probe, "
                             f"{predicted:.6g} from its gradient), so its law has no closed form")
    gain = float(coefficients[0])
    coefficients = coefficients[1:]
    return AffineLaw(offset, gain, float((coefficients**2).sum()))


def law_distance(law: AffineLaw, target: AffineLaw, start_mean: float, start_var: float, joint: bool) -> float:
    """2-Wasserstein distance between the output laws for x_start ~ N(start_mean, start_var); with ``joint``, the
    root-mean-square over starts of that distance between the conditional laws x_out | x_start (an upper bound on
    the joint law's distance, zero only when both the marginal and the dependence on the start are right)."""
    if joint:
        mean_gap = (law.offset - target.offset) + (law.gain - target.gain) * start_mean
        return math.sqrt(mean_gap**2 + (law.gain - target.gain) ** 2 * start_var
                         + (math.sqrt(law.noise_var) - math.sqrt(target.noise_var)) ** 2)
    (mean, var), (mean_t, var_t) = law.marginal(start_mean, start_var), target.marginal(start_mean, start_var)
    return math.hypot(mean - mean_t, math.sqrt(var) - math.sqrt(var_t))


def gaussian_schedule(steps: int, to_zero: bool) -> Tensor:
    """``steps`` karras steps over :data:`samplerzoo.testing.LAW_RANGE`, landing on 0 or stopping at its sigma_min."""
    return karras(steps, LAW_RANGE) if to_zero else karras(steps + 1, LAW_RANGE)[:-1]


def gaussian_law_error(spec: SamplerSpec, steps: int, to_zero: bool, joint: bool | None = None,
                       brownian: bool | None = None, **options: Any) -> float:
    """:func:`law_distance` between the sampler's exact law and :func:`exact_law` on N(0.3, 0.5^2), started from the
    exact marginal at sigma = 20; ``joint`` defaults to ``spec.reverse_sde``, ``brownian`` to ``spec.brownian``."""
    sigmas, problem = gaussian_schedule(steps, to_zero), gaussian_problem(dim=1)
    law = affine_law(spec, sigmas, problem, brownian, **options)
    return law_distance(law, exact_law(problem, sigmas), float(problem.mean[0]), problem.std**2 + float(sigmas[0]) ** 2,
                        spec.reverse_sde if joint is None else joint)


# ------------------------------------------------------------------------------------------ on a mixture

class BrownianBridgeNoise:
    """One Brownian path per sample, drawn where it is asked for: a level beyond the known ones extends the path by an
    independent increment, a level between two known ones is a Brownian bridge sample (Lévy's construction), so any
    sequence of queries gets exact Brownian increments (W(b) - W(a)) / sqrt|b - a|. From one generator, for large test
    batches (a sample here depends on its batch; :class:`samplerzoo.noise.BrownianTreeNoise` is per-sample)."""

    def __init__(self, shape: tuple[int, ...], generator: torch.Generator) -> None:
        self.shape, self.generator = shape, generator
        self.levels: list[float] = []
        self.values: list[Tensor] = []

    def normal(self) -> Tensor:
        return torch.randn(self.shape, generator=self.generator, dtype=torch.float64)

    def at(self, level: float) -> Tensor:
        i = bisect.bisect_left(self.levels, level)
        if i < len(self.levels) and self.levels[i] == level:
            return self.values[i]
        if not self.levels:
            value = torch.zeros(self.shape, dtype=torch.float64)
        elif i in (0, len(self.levels)):
            edge = 0 if i == 0 else -1
            value = self.values[edge] + math.sqrt(abs(level - self.levels[edge])) * self.normal()
        else:
            (a, b), (w_a, w_b) = self.levels[i - 1:i + 1], self.values[i - 1:i + 1]
            value = w_a + (level - a) / (b - a) * (w_b - w_a) + math.sqrt((level - a) * (b - level) / (b - a)) \
                * self.normal()
        self.levels.insert(i, level)
        self.values.insert(i, value)
        return value

    def __call__(self, sigma: Tensor, sigma_next: Tensor) -> Tensor:
        a, b = float(sigma), float(sigma_next)
        return (self.at(b) - self.at(a)) / math.sqrt(abs(b - a))


def batch_noise(shape: tuple[int, ...], generator: torch.Generator, brownian: bool) -> NoiseSampler:
    """Independent N(0, 1) draws, or Brownian increments, for a whole batch from one generator."""
    if brownian:
        return BrownianBridgeNoise(shape, generator)
    return lambda sigma, sigma_next: torch.randn(shape, generator=generator, dtype=torch.float64)


def normal_cdf(z: Tensor) -> Tensor:
    return 0.5 * torch.erfc(-z / math.sqrt(2))


def conditional_components(problem: GaussianMixture, x_start: Tensor, sigma_start: float, sigma_end: float,
                           joint: bool) -> tuple[Tensor, Tensor, Tensor]:
    """Weights (n, K), means (n, K, d) and variances (K,) of the target law of x at sigma_end, per start: the forward
    process's posterior given x_start (``joint``), or the marginal p(x; sigma_end). Component k of the marginal is
    N(mu_k, v_k I), v_k = s_k^2 + sigma_end^2; given x_start = x + tau n, tau^2 = sigma_start^2 - sigma_end^2, it is
    N(mu_k + v_k / (v_k + tau^2) (x_start - mu_k), v_k tau^2 / (v_k + tau^2)) with weight
    ~ w_k N(x_start; mu_k, (v_k + tau^2) I)."""
    means = problem.means.flatten(1)
    var = problem.stds**2 + sigma_end**2
    if not joint:
        return problem.weights.expand(len(x_start), -1), means.expand(len(x_start), -1, -1), var
    tau2 = sigma_start**2 - sigma_end**2
    offsets = x_start[:, None, :] - means[None]  # (n, K, d)
    log_weights = problem.weights.log() - 0.5 * offsets.pow(2).sum(-1) / (var + tau2) \
        - 0.5 * means.shape[1] * (var + tau2).log()
    shrink = (var / (var + tau2))[None, :, None]
    return log_weights.softmax(-1), means[None] + shrink * offsets, var * tau2 / (var + tau2)


def legendre_scores(u: Tensor, components: int = 4) -> Tensor:
    """sqrt(2m + 1) P_m(2u - 1), m = 1..components: the orthonormal Legendre polynomials on [0, 1], shape (m, *u)."""
    t = 2 * u - 1
    polys = [torch.ones_like(t), t]
    for m in range(1, components):  # Bonnet: (m + 1) P_{m+1} = (2m + 1) t P_m - m P_{m-1}
        polys.append(((2 * m + 1) * t * polys[m] - m * polys[m - 1]) / (m + 1))
    return torch.stack([math.sqrt(2 * m + 1) * polys[m] for m in range(1, components + 1)])


def smooth_test_pvalue(u: Tensor) -> float:
    """Neyman's smooth test that ``u`` is uniform on [0, 1] (Neyman 1937; Rayner & Best 1989): with the first four
    orthonormal Legendre polynomials, T = sum_m (sum_i L_m(u_i))^2 / n is chi-square with 4 degrees of freedom, whose
    survival function is e^{-T/2} (1 + T/2). Sensitive to errors of location, scale, skewness and kurtosis."""
    t = float((legendre_scores(u).sum(-1) ** 2).sum()) / len(u)
    return math.exp(-t / 2) * (1 + t / 2)


MIXTURE_SIGMAS = (2.0, 0.01)
"""Where the mixture law is tested: from sigma 2 (comparable with the components' spread, so the posterior given the
start is far from the marginal and a deterministic sampler's output is far from a draw of it) to 0.01."""


def mixture_law_pvalue(spec: SamplerSpec, problem: GaussianMixture, n: int, steps: int, joint: bool | None = None,
                       seed: int = 0, sigmas: tuple[float, float] = MIXTURE_SIGMAS, **options: Any) -> float:
    """p-value that ``n`` outputs follow the target law on a mixture: starts drawn exactly from p(x; sigma_start), the
    sampler run over ``steps`` karras steps to sigma_end, each coordinate of each output mapped through the target's
    conditional CDF (:func:`conditional_components`; ``joint`` defaults to ``spec.reverse_sde``) and tested for
    uniformity by :func:`smooth_test_pvalue`; the smallest p-value times the number of coordinates (Bonferroni)."""
    joint = spec.reverse_sde if joint is None else joint
    sigma_start, sigma_end = sigmas
    generator = torch.Generator().manual_seed(seed)
    data = problem.sample(n, generator=generator).flatten(1)
    x_start = data + sigma_start * torch.randn(data.shape, generator=generator, dtype=torch.float64)
    schedule = karras(steps + 1, SigmaRange(sigma_end, sigma_start))[:-1]
    noise = batch_noise(tuple(x_start.shape), generator, spec.brownian)
    out = kit_call(spec, model_for(spec, problem), x_start.reshape(n, *problem.sample_shape), schedule, noise=noise,
                   **options).flatten(1)
    weights, means, var = conditional_components(problem, x_start, sigma_start, sigma_end, joint)
    u = (weights[..., None] * normal_cdf((out[:, None, :] - means) / var[:, None].sqrt())).sum(1)  # (n, d)
    return min(1.0, min(smooth_test_pvalue(u[:, j]) for j in range(u.shape[1])) * u.shape[1])


def scaled_noise(spec: SamplerSpec, factor: float) -> SamplerSpec:
    """``spec`` with every noise draw scaled by ``factor``: the noise-scale error the law checks' power refers to."""
    def sample(model: Any, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler, **options: Any) -> Tensor:
        return spec.fn(model, x, sigmas, noise=lambda sigma, sigma_next: factor * noise(sigma, sigma_next), **options)
    return dataclasses.replace(spec, name=f"{spec.name}-noise-x{round(factor * 100)}pc", fn=sample)
