"""Exact denoisers: the ground truth every sampler is checked against.

For data distributed as an isotropic Gaussian mixture sum_k w_k N(mu_k, s_k^2 I), the noisy marginal at
level sigma is sum_k w_k N(mu_k, (s_k^2 + sigma^2) I) and the ideal denoiser (Tweedie's formula) is
D(x, sigma) = sum_k r_k(x) [mu_k + s_k^2 / (s_k^2 + sigma^2) (x - mu_k)], with r_k the posterior
responsibilities. A finite data set is the mixture with s_k = 0 (D is a softmax-weighted mean of the data).
At sigma = inf (given the normalised state, the Denoiser convention) D is the prior mean sum_k w_k mu_k.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from .denoiser import Denoiser, per_sample
from .guidance import condition_on_labels


class GaussianMixture:
    """Exact denoiser (and sampler of the data) for an isotropic Gaussian mixture.

    ``means`` has shape ``(K, *sample_shape)``; ``stds`` and ``weights`` have shape ``(K,)``.
    """

    sigma_table: Tensor | None = None
    num_classes = 0

    def __init__(self, means: Tensor, stds: Tensor | float, weights: Tensor | None = None, *,
                 sigma_min: float = 0.002, sigma_max: float = 80.0) -> None:
        self.means = torch.as_tensor(means)
        k = self.means.shape[0]
        self.stds = torch.as_tensor(stds, dtype=self.means.dtype).expand(k).clone()
        w = torch.ones(k, dtype=self.means.dtype) if weights is None else torch.as_tensor(weights)
        self.weights = (w / w.sum()).to(self.means.dtype)
        self.sample_shape = tuple(self.means.shape[1:])
        self.sigma_min, self.sigma_max = sigma_min, sigma_max
        second_moment = (self.weights * (self.means.flatten(1).pow(2).mean(1) + self.stds**2)).sum()
        mean = (self.weights[:, None] * self.means.flatten(1)).sum(0).mean()
        self.sigma_data = float((second_moment - mean**2).clamp_min(0).sqrt())

    def _component_log_probs(self, x: Tensor, sigma: Tensor) -> Tensor:
        """log w_k + log N(x; mu_k, (s_k^2 + sigma^2) I) for each component, shape ``(batch, K)``."""
        mu = self.means.flatten(1).to(x)
        xf = x.flatten(1)
        var = self.stds.to(x) ** 2 + sigma.reshape(-1, 1).to(x) ** 2
        sq_dist = (xf.pow(2).sum(1, keepdim=True) - 2 * xf @ mu.T + mu.pow(2).sum(1)).clamp_min(0)
        return self.weights.to(x).log() - 0.5 * sq_dist / var - 0.5 * xf.shape[1] * (2 * math.pi * var).log()

    def log_prob(self, x: Tensor, sigma: Tensor) -> Tensor:
        """log p(x; sigma) of the data convolved with N(0, sigma^2 I), shape ``(batch,)``."""
        return self._component_log_probs(x, sigma).logsumexp(-1)

    def responsibilities(self, x: Tensor, sigma: Tensor) -> Tensor:
        """Posterior weights r_k(x) of each component given the noisy x, shape ``(batch, K)``; at sigma = inf the
        noise says nothing about the component, so they are the prior weights."""
        infinite = torch.isinf(sigma.reshape(-1, 1)).to(x.device)
        return torch.where(infinite, self.weights.to(x), self._component_log_probs(x, sigma).softmax(-1))

    def __call__(self, x: Tensor, sigma: Tensor, class_labels: Tensor | None = None, **cond: Any) -> Tensor:
        """The exact denoiser; with ``class_labels`` (component indices) the exact class-conditional one. A float16
        or bfloat16 x is denoised in float32: squared distances at sigma_max overflow float16."""
        if x.dtype in (torch.float16, torch.bfloat16):
            return self(x.float(), sigma, class_labels, **cond).to(x.dtype)
        r = self.responsibilities(x, sigma)
        if class_labels is not None:
            r = torch.nn.functional.one_hot(class_labels.to(x.device), len(self.weights)).to(x)
        mu = self.means.flatten(1).to(x)
        s2 = self.stds.to(x) ** 2
        shrink = s2 / (s2 + sigma.reshape(-1, 1).to(x) ** 2)  # (batch, K)
        xf = x.flatten(1)
        # sum_k r_k [mu_k + shrink_k (x - mu_k)] = (r*shrink).sum x + (r*(1-shrink)) @ mu
        denoised = (r * shrink).sum(1, keepdim=True) * xf + (r * (1 - shrink)) @ mu
        return denoised.reshape(x.shape)

    def decode(self, x: Tensor) -> Tensor:
        """Samples are the data itself (a pixel-space Checkpoint)."""
        return x

    def condition(self, samples: Sequence[int], **request: Any) -> Denoiser:
        """Unconditional: requests for labels, prompts or guidance fail as for any unconditional checkpoint."""
        return condition_on_labels(self, samples, **request)

    def classifier(self, x: Tensor, sigma: Tensor) -> Tensor:
        """The Bayes classifier's logits log p(k | x; sigma), reading each component as a class."""
        return self._component_log_probs(x, sigma).log_softmax(-1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Draw n samples of the clean data."""
        k = torch.multinomial(self.weights.double(), n, replacement=True, generator=generator)
        z = torch.randn((n, *self.sample_shape), generator=generator, dtype=self.means.dtype)
        return self.means[k] + self.stds[k].reshape(-1, *[1] * len(self.sample_shape)) * z


class Gaussian(GaussianMixture):
    """Isotropic Gaussian N(mean, std^2 I): its probability-flow ODE has a closed-form solution."""

    def __init__(self, mean: Tensor, std: float, *, sigma_min: float = 0.002, sigma_max: float = 80.0) -> None:
        super().__init__(torch.as_tensor(mean)[None], std, sigma_min=sigma_min, sigma_max=sigma_max)
        self.mean, self.std = self.means[0], std

    def __call__(self, x: Tensor, sigma: Tensor, class_labels: Tensor | None = None, **cond: Any) -> Tensor:
        s = per_sample(sigma, x).to(x)
        mean = self.mean.to(x)
        return mean + self.std**2 / (self.std**2 + s**2) * (x - mean)

    def ode_solution(self, x: Tensor, sigma_from: float, sigma_to: float) -> Tensor:
        """Exact solution of dx/dsigma = (x - D(x, sigma)) / sigma from sigma_from to sigma_to.

        The ODE is linear: x(sigma) - mean scales as sqrt(sigma^2 + std^2).
        """
        ratio = math.sqrt(sigma_to**2 + self.std**2) / math.sqrt(sigma_from**2 + self.std**2)
        mean = self.mean.to(x)
        return mean + ratio * (x - mean)


def finite_dataset(data: Tensor, *, sigma_min: float = 0.002, sigma_max: float = 80.0) -> GaussianMixture:
    """Exact denoiser of an empirical data set: a softmax-weighted mean of the data points."""
    return GaussianMixture(data, 0.0, sigma_min=sigma_min, sigma_max=sigma_max)
