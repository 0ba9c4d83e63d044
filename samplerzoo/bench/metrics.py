"""FID / KID / IS through torch-fidelity, with samples streamed from memory (no PNGs on disk).

The digits classifier is registered with torch-fidelity as the feature extractor ``digits-classifier``:
its 64-unit penultimate layer for FID/KID, its logits for the Inception Score. ``inception-v3-compat``
works when its weights are available locally (``feature_extractor_weights_path`` or torch-fidelity's
cache); nothing is downloaded.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch_fidelity
from torch import Tensor
from torch.utils.data import Dataset
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

from ..classifier import WEIGHTS, load_classifier
from ..errors import SamplerzooError

DIGITS_EXTRACTOR = "digits-classifier"
INCEPTION = "inception-v3-compat"
INCEPTION_WEIGHTS = "weights-inception-2015-12-05-6726825d.pth"
CACHE_ENV = "SAMPLERZOO_CACHE"


def cache_root() -> Path:
    """Where reference statistics are cached: $SAMPLERZOO_CACHE, else ~/.cache/samplerzoo."""
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "samplerzoo")) / "fidelity"


class DigitsFeatures(FeatureExtractorBase):
    """torch-fidelity feature extractor over uint8 digits images, backed by the shipped classifier."""

    def __init__(self, name: str, features_list: list[str], feature_extractor_weights_path: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(name, features_list)
        self.classifier = load_classifier(Path(feature_extractor_weights_path) if feature_extractor_weights_path
                                          else WEIGHTS)

    @staticmethod
    def get_provided_features_list() -> tuple[str, ...]:
        return ("features", "logits_unbiased")

    @staticmethod
    def get_default_feature_layer_for_metric(metric: str) -> str:
        return "logits_unbiased" if metric == "isc" else "features"

    @staticmethod
    def can_be_compiled() -> bool:
        return False

    @staticmethod
    def get_dummy_input_for_compile() -> Tensor:
        return torch.zeros(1, 1, 8, 8, dtype=torch.uint8)

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        images = x.float() / 127.5 - 1
        features = self.classifier.features(images)
        provided = {"features": self.classifier.embedding(images), "logits_unbiased": self.classifier.head(features)}
        return tuple(provided[name] for name in self.features_list)


def register_extractors() -> None:
    if DIGITS_EXTRACTOR not in FEATURE_EXTRACTORS_REGISTRY:
        torch_fidelity.register_feature_extractor(DIGITS_EXTRACTOR, DigitsFeatures)


class ImageStream(Dataset[Tensor]):
    """``n`` uint8 images produced batch by batch on demand, in order: only one batch is alive at a time,
    so memory stays flat however many samples a metric reads."""

    def __init__(self, n: int, batch: int, make_batch: Callable[[int, int], Tensor]) -> None:
        self.n, self.batch, self.make_batch = n, batch, make_batch
        self._start, self._images = -1, torch.empty(0)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> Tensor:
        if not self._start <= index < self._start + len(self._images):
            self._start = index - index % self.batch
            self._images = self.make_batch(self._start, min(self._start + self.batch, self.n))
        return self._images[index - self._start]


class TensorImages(Dataset[Tensor]):
    """A fixed uint8 image tensor as a torch-fidelity input (the reference data)."""

    def __init__(self, images: Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> Tensor:
        return self.images[index]


def inception_weights(path: str | None) -> str | None:
    """A local Inception weights file: the given path, else torch-fidelity's cache; never a download."""
    candidates = [Path(path)] if path else [Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch"))
                                             / "hub" / "checkpoints" / INCEPTION_WEIGHTS]
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        raise SamplerzooError(f"{INCEPTION} needs its weights locally ({candidates[0]} not found); pass "
                              "--feature-weights PATH (nothing is downloaded)")
    return str(found)


def measure(samples: ImageStream | TensorImages, reference: TensorImages, reference_name: str, metrics: list[str],
            extractor: str = DIGITS_EXTRACTOR, feature_weights: str | None = None, cuda: bool = False,
            batch: int = 500) -> dict[str, float]:
    """FID / KID / IS of ``samples`` against ``reference``; the reference statistics are cached by name."""
    register_extractors()
    unknown = set(metrics) - {"fid", "kid", "isc"}
    if unknown:
        raise SamplerzooError(f"unknown metric {sorted(unknown)[0]!r}; known: fid, kid, isc")
    weights = inception_weights(feature_weights) if extractor == INCEPTION else feature_weights
    n = min(len(samples), len(reference))
    result = torch_fidelity.calculate_metrics(
        input1=samples, input2=reference, input2_cache_name=f"samplerzoo-{reference_name}-{extractor}",
        cache_root=str(cache_root()),
        cuda=cuda, batch_size=batch, fid="fid" in metrics, kid="kid" in metrics, isc="isc" in metrics,
        feature_extractor=extractor, feature_extractor_weights_path=weights, kid_subset_size=min(1000, n),
        save_cpu_ram=True, verbose=False)
    names = {"frechet_inception_distance": "fid", "kernel_inception_distance_mean": "kid",
             "kernel_inception_distance_std": "kid_std", "inception_score_mean": "isc",
             "inception_score_std": "isc_std"}
    return {names[k]: float(v) for k, v in result.items() if k in names}
