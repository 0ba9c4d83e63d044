"""Guidance wrappers, checked on a Gaussian mixture whose components are the classes.

There the conditional denoiser is the component's own Gaussian denoiser and the Bayes classifier is the
posterior over components, so Bayes' rule makes classifier guidance at scale 1 exactly conditional.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import Tensor

import samplerzoo as sz
from samplerzoo.guidance import ClassifierFreeGuidance, ClassifierGuidance, Conditioned

MIXTURE = sz.GaussianMixture(torch.tensor([[2.0, 0.0], [-2.0, 1.0], [0.0, -2.5]], dtype=torch.float64),
                             torch.tensor([0.3, 0.5, 0.4], dtype=torch.float64),
                             torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64))
NULL = 3


class ConditionalMixture:
    """A conditional model in the CFG convention: label NULL means 'no condition' (the marginal denoiser)."""

    sigma_min, sigma_max, sigma_data, sigma_table = 0.002, 80.0, 1.0, None

    def __call__(self, x: Tensor, sigma: Tensor, class_labels: Tensor | None = None, **cond: Any) -> Tensor:
        assert class_labels is not None
        is_null = (class_labels == NULL)[:, None]
        return torch.where(is_null, MIXTURE(x, sigma), MIXTURE(x, sigma, class_labels=class_labels.clamp(max=2)))


def batch(n: int = 6, sigma: float = 1.5) -> tuple[Tensor, Tensor, Tensor]:
    g = torch.Generator().manual_seed(0)
    x = MIXTURE.sample(n, g) + sigma * torch.randn(n, 2, generator=g, dtype=torch.float64)
    return x, torch.full((n,), sigma, dtype=torch.float64), torch.arange(n) % 3


@pytest.mark.parametrize("sigma", [0.1, 1.5, 10.0])
def test_classifier_guidance_at_scale_one_is_exactly_conditional(sigma: float) -> None:
    x, s, labels = batch(sigma=sigma)
    guided = ClassifierGuidance(MIXTURE, MIXTURE.classifier, scale=1.0)
    torch.testing.assert_close(guided(x, s, class_labels=labels), MIXTURE(x, s, class_labels=labels))
    torch.testing.assert_close(ClassifierGuidance(MIXTURE, MIXTURE.classifier, 0.0)(x, s, class_labels=labels),
                               MIXTURE(x, s))


def test_classifier_free_guidance_interpolates_and_extrapolates() -> None:
    x, s, labels = batch()
    model = ConditionalMixture()
    conditional, unconditional = MIXTURE(x, s, class_labels=labels), MIXTURE(x, s)
    for scale in (0.0, 1.0, 3.5):
        for batched in (True, False):
            guided = ClassifierFreeGuidance(model, scale, NULL, batched=batched)
            expected = unconditional + scale * (conditional - unconditional)
            torch.testing.assert_close(guided(x, s, class_labels=labels), expected)


@pytest.mark.parametrize("batched", [True, False])
def test_cfg_counts_denoiser_calls_and_two_forwards_per_call(batched: bool) -> None:
    # The NFE budget is denoiser calls; each guided call is two network forwards, as one batch or as two.
    model = Conditioned(ClassifierFreeGuidance(ConditionalMixture(), 2.0, NULL, batched=batched),
                        class_labels=torch.tensor([0, 1]))
    run = sz.generate(model, "euler", 9, seeds=[0, 1], sample_shape=(2,), dtype=torch.float64)
    assert run.counted_nfe == run.declared_nfe == run.steps == 9 and run.forwards == 18
    plain = sz.generate(Conditioned(ConditionalMixture(), class_labels=torch.tensor([0, 1])), "heun", 9, seeds=[0, 1],
                        sample_shape=(2,), dtype=torch.float64)
    assert plain.counted_nfe == plain.forwards == 9


def test_guided_sampling_lands_in_the_requested_class() -> None:
    # 600 samples of class 2 (mean (0, -2.5), std 0.4): standard error of the mean 0.016 per coordinate.
    labels = torch.full((600,), 2)
    model = Conditioned(ClassifierGuidance(MIXTURE, MIXTURE.classifier, 1.0), class_labels=labels)
    run = sz.generate(model, "heun", 39, seeds=range(600), sample_shape=(2,), dtype=torch.float64)
    torch.testing.assert_close(run.samples.mean(0), torch.tensor([0.0, -2.5], dtype=torch.float64), atol=0.08, rtol=0)
    assert run.samples.std(0).sub(0.4).abs().max() < 0.05


def test_guidance_needs_labels() -> None:
    x, s, _ = batch()
    with pytest.raises(ValueError, match="needs class_labels"):
        ClassifierFreeGuidance(ConditionalMixture(), 2.0, NULL)(x, s)
