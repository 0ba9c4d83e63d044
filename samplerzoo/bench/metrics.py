"""FID / KID / IS with torch-fidelity: features extracted batch by batch with its feature extractor, metrics
computed from the features with its own functions. Only features are kept (no images, no PNGs on disk), and
features gathered from several processes give the same values as one process.

The digits classifier is registered with torch-fidelity as the feature extractor ``digits-classifier``:
its 64-unit penultimate layer for FID/KID, its logits for the Inception Score. ``inception-v3-compat``
works when its weights are available locally (``feature_extractor_weights_path`` or torch-fidelity's
cache); nothing is downloaded.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch_fidelity
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_featuresdict_to_statistics, fid_statistics_to_metric
from torch_fidelity.metric_isc import KEY_METRIC_ISC_MEAN, KEY_METRIC_ISC_STD, isc_featuresdict_to_metric
from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_featuresdict_to_metric
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY
from torch_fidelity.utils import (
    create_feature_extractor,
    extract_featuresdict_from_input_id,
    resolve_feature_layer_for_metric,
)

from ..classifier import WEIGHTS, load_classifier
from ..errors import SamplerzooError
from .cache import Features, cached

DIGITS_EXTRACTOR = "digits-classifier"
INCEPTION = "inception-v3-compat"
INCEPTION_WEIGHTS = "weights-inception-2015-12-05-6726825d.pth"
METRICS = ("fid", "kid", "isc")
NAMES = {KEY_METRIC_FID: "fid", KEY_METRIC_KID_MEAN: "kid", KEY_METRIC_KID_STD: "kid_std",
         KEY_METRIC_ISC_MEAN: "isc", KEY_METRIC_ISC_STD: "isc_std"}
"""Our names for torch-fidelity's metric keys, as results rows store them."""


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


class Meter:
    """One torch-fidelity feature extractor, and FID / KID / IS computed from its features with torch-fidelity's own
    functions: features extracted batch by batch, or by several processes, give ``calculate_metrics``'s values."""

    def __init__(self, metrics: Sequence[str], extractor: str = DIGITS_EXTRACTOR, feature_weights: str | None = None,
                 cuda: bool = False) -> None:
        register_extractors()
        unknown = set(metrics) - set(METRICS)
        if unknown:
            raise SamplerzooError(f"unknown metric {sorted(unknown)[0]!r}; known: {', '.join(METRICS)}")
        self.layers = {m: resolve_feature_layer_for_metric(m, feature_extractor=extractor) for m in metrics}
        weights = inception_weights(feature_weights) if extractor == INCEPTION else feature_weights
        self.extractor = create_feature_extractor(extractor, sorted(set(self.layers.values())), cuda=cuda,
                                                  feature_extractor_weights_path=weights, verbose=False)
        self.cuda = cuda
        self._references: dict[str, Features] = {}

    def features(self, images: Tensor) -> Features:
        """The features of one batch of uint8 images, on the CPU (torch-fidelity's step for one batch)."""
        with torch.no_grad():
            out = self.extractor(images.cuda() if self.cuda else images)
        return {name: value.cpu() for name, value in self.extractor.convert_features_tuple_to_dict(out).items()}

    def reference_features(self, reference: TensorImages, reference_name: str) -> Features:
        """The reference's features (torch-fidelity's features dict), cached on disk under the reference's name and
        the extractor's, and kept in memory for the meter's life."""
        layers = sorted(set(self.layers.values()))
        name = f"samplerzoo-{reference_name}-{self.extractor.get_name()}-{'+'.join(layers)}"
        if name not in self._references:
            self._references[name] = cached(name, lambda: extract_featuresdict_from_input_id(
                2, self.extractor, input2=reference, batch_size=500, cuda=self.cuda, save_cpu_ram=True,
                verbose=False))
        return self._references[name]

    def score(self, samples: Features, reference: TensorImages, reference_name: str) -> dict[str, float]:
        """The metrics of the sample features against the reference images."""
        real = self.reference_features(reference, reference_name)
        result: dict[str, float] = {}
        if "fid" in self.layers:
            layer = self.layers["fid"]
            result |= fid_statistics_to_metric(fid_featuresdict_to_statistics(samples, layer),
                                               fid_featuresdict_to_statistics(real, layer), False)
        if "kid" in self.layers:
            subset = min(1000, len(samples[self.layers["kid"]]), len(real[self.layers["kid"]]))
            result |= kid_featuresdict_to_metric(samples, real, self.layers["kid"], kid_subset_size=subset,
                                                 verbose=False)
        if "isc" in self.layers:
            result |= isc_featuresdict_to_metric(samples, self.layers["isc"], verbose=False)
        return {NAMES[key]: float(value) for key, value in result.items()}


def concat(batches: Sequence[Features]) -> Features:
    """Features of consecutive batches as one set, in order."""
    return {name: torch.cat([batch[name] for batch in batches]) for name in batches[0]}


def measure(samples: Dataset[Tensor], reference: TensorImages, reference_name: str, metrics: list[str],
            extractor: str = DIGITS_EXTRACTOR, feature_weights: str | None = None, cuda: bool = False,
            batch: int = 500) -> dict[str, float]:
    """FID / KID / IS of uint8 ``samples`` against ``reference``; the reference's features are cached by name."""
    meter = Meter(metrics, extractor, feature_weights, cuda)
    loader: DataLoader[Tensor] = DataLoader(samples, batch_size=batch)
    return meter.score(concat([meter.features(images) for images in loader]), reference, reference_name)
