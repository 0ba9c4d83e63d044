"""FID / KID / IS / precision-recall with torch-fidelity: features extracted batch by batch with its feature
extractor (extractors.py), metrics computed from the features with its own functions (``prc`` is its
precision / recall / F-score of Kynkäänniemi et al. 2019, k = 3). Only features are kept (no images, no PNGs on
disk), and features gathered from several processes give the same values as one process.

Against an ``.npz`` of statistics only FID (and IS, which needs no reference) can be measured: KID and
precision / recall need the reference's features, and asking for them is a one-line error before any work.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torch_fidelity.metric_fid import KEY_METRIC_FID, fid_featuresdict_to_statistics, fid_statistics_to_metric
from torch_fidelity.metric_isc import KEY_METRIC_ISC_MEAN, KEY_METRIC_ISC_STD, isc_featuresdict_to_metric
from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_featuresdict_to_metric
from torch_fidelity.metric_prc import (
    KEY_METRIC_F_SCORE,
    KEY_METRIC_PRECISION,
    KEY_METRIC_RECALL,
    prc_featuresdict_to_metric,
)
from torch_fidelity.utils import resolve_feature_layer_for_metric

from ..errors import SamplerzooError, UnknownNameError
from ..files import atomic_write
from .cache import Features, cached
from .extractors import DIGITS_EXTRACTOR, INCEPTION, create, extractor_input, register_extractors, weights_hash
from .references import Reference, Statistics, TensorImages

__all__ = ["DIGITS_EXTRACTOR", "INCEPTION", "METRICS", "Features", "Meter", "TensorImages", "concat", "measure"]
METRICS = ("fid", "kid", "isc", "prc")
NEED_FEATURES = ("kid", "prc")
"""Metrics that need the reference's features, not only its statistics."""
NAMES = {KEY_METRIC_FID: "fid", KEY_METRIC_KID_MEAN: "kid", KEY_METRIC_KID_STD: "kid_std",
         KEY_METRIC_ISC_MEAN: "isc", KEY_METRIC_ISC_STD: "isc_std", KEY_METRIC_PRECISION: "precision",
         KEY_METRIC_RECALL: "recall", KEY_METRIC_F_SCORE: "f_score"}
"""Our names for torch-fidelity's metric keys, as results rows store them."""
FLOOR_SEED = 0
ISC_SPLITS = 10
"""torch-fidelity's default number of splits for the Inception Score: fewer samples give NaN."""
PRC_NEIGHBOURS = 3
"""torch-fidelity's default k for precision / recall: each set needs more than k images."""


def statistics(features: Tensor) -> Statistics:
    """Mean and covariance (N - 1 denominator) of features in float64, as NVlabs/edm's ``fid.py ref`` and pytorch-fid
    compute them."""
    stats = fid_featuresdict_to_statistics({"f": features.double()}, "f")
    return Statistics(stats["mu"], stats["sigma"])


class Meter:
    """One torch-fidelity feature extractor, and the metrics computed from its features with torch-fidelity's own
    functions: features extracted batch by batch, or by several processes, give ``calculate_metrics``'s values."""

    def __init__(self, metrics: Sequence[str], extractor: str = DIGITS_EXTRACTOR, extractor_weights: str | None = None,
                 cuda: bool = False) -> None:
        register_extractors()
        unknown = [m for m in metrics if m not in METRICS]
        if unknown:
            raise UnknownNameError("metric", unknown[0], METRICS)
        self.layers = {m: resolve_feature_layer_for_metric(m, feature_extractor=extractor) for m in metrics}
        self.extractor = create(extractor, sorted(set(self.layers.values())), extractor_weights, cuda)
        self.weights_sha256 = weights_hash(extractor, extractor_weights)
        self.cuda = cuda
        self._references: dict[str, Features] = {}

    def features(self, images: Tensor) -> Features:
        """The features of one batch of uint8 images, on the CPU (torch-fidelity's step for one batch)."""
        images = extractor_input(self.extractor, images)
        with torch.no_grad():
            out = self.extractor(images.cuda() if self.cuda else images)
        return {name: value.cpu() for name, value in self.extractor.convert_features_tuple_to_dict(out).items()}

    def extract(self, images: Dataset[Tensor], batch: int = 250) -> Features:
        """The features of every image of a dataset, in order; images of different sizes are batched by size (each
        is resized by the extractor's own rule)."""
        buckets: dict[tuple[int, ...], list[tuple[int, Tensor]]] = {}
        parts: list[tuple[Tensor, Features]] = []

        def flush(bucket: list[tuple[int, Tensor]]) -> None:
            parts.append((torch.tensor([i for i, _ in bucket]), self.features(torch.stack([x for _, x in bucket]))))
            bucket.clear()

        for index in range(len(images)):  # type: ignore[arg-type]
            image = images[index]
            bucket = buckets.setdefault(tuple(image.shape), [])
            bucket.append((index, image))
            if len(bucket) == batch:
                flush(bucket)
        for bucket in buckets.values():
            if bucket:
                flush(bucket)
        if not parts:
            raise SamplerzooError("the reference has no images")
        order = torch.cat([index for index, _ in parts]).argsort()
        return {name: torch.cat([f[name] for _, f in parts])[order] for name in parts[0][1]}

    def feature_dims(self) -> dict[str, int]:
        """The width of each feature layer the metrics use (from one blank image)."""
        sample = self.features(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))
        return {name: value.shape[1] for name, value in sample.items()}

    def check(self, reference: Reference) -> None:
        """The metrics can be measured against the reference; one line otherwise (before any sampling)."""
        if reference.statistics is None:
            count = reference.count
            if "prc" in self.layers and count is not None and count <= PRC_NEIGHBOURS:
                raise SamplerzooError(f"--reference {reference.name} has {count} images; prc (precision / recall, "
                                      f"k = {PRC_NEIGHBOURS}) needs at least {PRC_NEIGHBOURS + 1}")
            return
        needing = [m for m in self.layers if m in NEED_FEATURES]
        if needing:
            raise SamplerzooError(f"--reference {reference.name} holds FID statistics (mu, sigma) only: {needing[0]} "
                                  "needs the reference's images; accepted with an .npz: --metrics fid (and isc)")
        if "fid" in self.layers:
            dims = self.feature_dims()[self.layers["fid"]]
            if reference.statistics.dims != dims:
                raise SamplerzooError(f"--reference {reference.name}: statistics of {reference.statistics.dims} "
                                      f"features, but {self.extractor.get_name()} gives {dims}; accepted: an .npz "
                                      "made with the same extractor (zoo stats SOURCE --extractor NAME)")

    def reference_features(self, reference: Reference) -> Features:
        """The reference's features (torch-fidelity's features dict), cached on disk under the reference's identity,
        the extractor's name and weights hash, and the layers, and kept in memory for the meter's life."""
        if reference.load is None:
            raise SamplerzooError(f"--reference {reference.name} holds statistics, not images")
        layers = sorted(set(self.layers.values()))
        name = (f"samplerzoo-{reference.identity}-{self.extractor.get_name()}-{self.weights_sha256[:12]}-"
                f"{'+'.join(layers)}")
        if name not in self._references:
            load = reference.load
            self._references[name] = cached(name, lambda: self.extract(load()))
        return self._references[name]

    def reference_count(self, reference: Reference) -> int | None:
        """The number of reference images (``None`` for statistics)."""
        if reference.statistics is not None:
            return None
        return len(next(iter(self.reference_features(reference).values())))

    def score(self, samples: Features, reference: Reference) -> dict[str, float]:
        """The metrics of the sample features against the reference."""
        self.check(reference)
        needs_real = reference.statistics is None and any(m in self.layers for m in ("fid", *NEED_FEATURES))
        real = self.reference_features(reference) if needs_real else {}
        result: dict[str, Any] = {}
        if "fid" in self.layers:
            layer = self.layers["fid"]
            ours = fid_featuresdict_to_statistics(samples, layer)  # torch-fidelity's float32 mean, float64 covariance
            theirs = (fid_featuresdict_to_statistics(real, layer) if reference.statistics is None else
                      {"mu": reference.statistics.mu.astype(ours["mu"].dtype), "sigma": reference.statistics.sigma})
            result |= fid_statistics_to_metric(ours, theirs, False)
        if "kid" in self.layers:
            subset = min(1000, len(samples[self.layers["kid"]]), len(real[self.layers["kid"]]))
            result |= kid_featuresdict_to_metric(samples, real, self.layers["kid"], kid_subset_size=subset,
                                                 verbose=False)
        if "isc" in self.layers:
            result |= isc_featuresdict_to_metric(samples, self.layers["isc"], isc_splits=ISC_SPLITS, verbose=False)
        if "prc" in self.layers:
            result |= prc_featuresdict_to_metric(samples, real, self.layers["prc"], prc_neighborhood=PRC_NEIGHBOURS,
                                                 prc_batch_size=10000, save_cpu_ram=False, verbose=False)
        return {NAMES[key]: float(value) for key, value in result.items()}

    def floor(self, reference: Reference, samples: int) -> dict[str, float]:
        """The resampled floor: ``samples`` reference images drawn with replacement (seed 0) scored against the
        reference, what a sampler reproducing the data would score at this sample count; ``{}`` for statistics."""
        if reference.statistics is not None:
            return {}
        real = self.reference_features(reference)
        count = len(next(iter(real.values())))
        index = torch.randint(count, (samples,), generator=torch.Generator().manual_seed(FLOOR_SEED))
        return self.score({name: value[index] for name, value in real.items()}, reference)


def concat(batches: Sequence[Features]) -> Features:
    """Features of consecutive batches as one set, in order."""
    return {name: torch.cat([batch[name] for batch in batches]) for name in batches[0]}


def as_reference(reference: Reference | TensorImages, name: str | None) -> Reference:
    if isinstance(reference, Reference):
        return reference
    if name is None:
        raise SamplerzooError("images in memory need a reference name to cache their features under")
    return Reference.of_images(name, reference)


def measure(samples: Dataset[Tensor], reference: Reference | TensorImages, reference_name: str | None,
            metrics: list[str], extractor: str = DIGITS_EXTRACTOR, extractor_weights: str | None = None,
            cuda: bool = False, batch: int = 500) -> dict[str, float]:
    """The metrics of uint8 ``samples`` against ``reference`` (images in memory are cached under
    ``reference_name``)."""
    meter = Meter(metrics, extractor, extractor_weights, cuda)
    ref = as_reference(reference, reference_name)
    meter.check(ref)
    loader: DataLoader[Tensor] = DataLoader(samples, batch_size=batch)
    return meter.score(concat([meter.features(images) for images in loader]), ref)


def write_statistics(features: Tensor, path: Path) -> Statistics:
    """Save the FID statistics of features as NVlabs/edm's ``fid.py ref`` does: ``numpy.savez(path, mu=, sigma=)``."""
    stats = statistics(features)
    buffer = io.BytesIO()
    np.savez(buffer, mu=stats.mu, sigma=stats.sigma)
    atomic_write(Path(path), buffer.getvalue())
    return stats


def reference_statistics(source: str, out: Path, extractor: str = DIGITS_EXTRACTOR,
                         extractor_weights: str | None = None, cuda: bool = False) -> tuple[Statistics, int]:
    """Write the FID statistics of a reference (a name or a folder of images) in the extractor's FID features to
    ``out``; returns them and the number of images."""
    from .references import resolve

    reference = resolve(source)
    if reference.load is None:
        raise SamplerzooError(f"{source} already holds statistics; accepted: a registered reference or a folder of "
                              "images")
    meter = Meter(["fid"], extractor, extractor_weights, cuda)
    features = meter.reference_features(reference)[meter.layers["fid"]]
    return write_statistics(features, out), len(features)
