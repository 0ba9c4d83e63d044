"""Feature extractors by name: the digits classifier (``digits-classifier``) and every extractor torch-fidelity
registers (``inception-v3-compat`` for the standard FID, ``dinov2-vit-*`` for FD-DINOv2, ``clip-*``, ``vgg16``).

Weights come the way torch-fidelity fetches them (its URL, into torch.hub's ``checkpoints`` folder, reused once
there) or from a local file (``--extractor-weights PATH``, in the format torch-fidelity loads). Offline and
without the file, one line names the file to fetch and where to put it. Each extractor resizes images by its own
rule (Inception: TF1-compatible bilinear to 299 x 299; the digits classifier: luma, then antialiased bilinear to
8 x 8); grey images are given to the RGB extractors as three equal channels, as ``PIL``'s ``convert("RGB")`` does.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import torch
import torch_fidelity
from torch import Tensor
from torch.nn import functional
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY
from torch_fidelity.utils import create_feature_extractor

from ..classifier import WEIGHTS, load_classifier
from ..errors import SamplerzooError, UnknownNameError
from ..files import file_hash

DIGITS_EXTRACTOR = "digits-classifier"
INCEPTION = "inception-v3-compat"
DIGITS_SIZE = 8
LUMA = (0.299, 0.587, 0.114)
"""ITU-R 601-2 luma weights, PIL's ``convert("L")``."""


def weight_sources() -> dict[str, tuple[str, str]]:
    """For each torch-fidelity extractor that loads a weights file: (URL, file name in torch.hub's checkpoints)."""
    from torch_fidelity.feature_extractor_clip import MODEL_METADATA, MODEL_URLS
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

    sources = {INCEPTION: (URL_INCEPTION_V3, URL_INCEPTION_V3.rsplit("/", 1)[1]),
               "vgg16": ("https://download.pytorch.org/models/vgg16-397923af.pth", "vgg16-397923af.pth")}
    return sources | {name: (url, f"{name}-{MODEL_METADATA[name]['hash']}.pt") for name, url in MODEL_URLS.items()}


class DigitsFeatures(FeatureExtractorBase):
    """torch-fidelity feature extractor over uint8 images of any size and 1 or 3 channels, backed by the shipped
    digits classifier: 64 standardized penultimate units for FID / KID / precision-recall, logits for IS."""

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
        return torch.zeros(1, 1, DIGITS_SIZE, DIGITS_SIZE, dtype=torch.uint8)

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        images = digits_input(x) / 127.5 - 1
        features = self.classifier.features(images)
        provided = {"features": self.classifier.embedding(images), "logits_unbiased": self.classifier.head(features)}
        return tuple(provided[name] for name in self.features_list)


def digits_input(x: Tensor) -> Tensor:
    """uint8 images (N, 1 or 3, H, W) as the classifier's float (N, 1, 8, 8) in [0, 255]: luma, then antialiased
    bilinear resizing when the size differs."""
    images = x.float()
    if images.shape[1] == 3:
        images = torch.einsum("nchw,c->nhw", images, images.new_tensor(LUMA))[:, None]
    if images.shape[-2:] != (DIGITS_SIZE, DIGITS_SIZE):
        images = functional.interpolate(images, size=(DIGITS_SIZE, DIGITS_SIZE), mode="bilinear", antialias=True,
                               align_corners=False).clamp(0, 255)
    return images


def register_extractors() -> None:
    if DIGITS_EXTRACTOR not in FEATURE_EXTRACTORS_REGISTRY:
        torch_fidelity.register_feature_extractor(DIGITS_EXTRACTOR, DigitsFeatures)


def extractor_names() -> list[str]:
    register_extractors()
    return sorted(FEATURE_EXTRACTORS_REGISTRY)


def check_extractor(name: str, weights: str | None = None) -> None:
    """A known extractor name and, when given, an existing weights file it can load; one line otherwise."""
    if name not in extractor_names():
        raise UnknownNameError("feature extractor", name, extractor_names())
    if weights is None:
        return
    if not Path(weights).is_file():
        raise SamplerzooError(f"--extractor-weights {weights}: no such file; accepted: the {name} weights file "
                              "torch-fidelity loads" + (f" ({weight_sources()[name][1]})" if name in weight_sources()
                                                        else ""))
    if name.startswith("dinov2"):
        raise SamplerzooError(f"{name}: torch-fidelity loads DINOv2 only through torch.hub (facebookresearch/dinov2), "
                              f"not from a weights file; run once with internet, or put the hub repository and "
                              f"checkpoint under {torch.hub.get_dir()}")


def hub_file(name: str) -> Path | None:
    """Where torch-fidelity keeps the extractor's downloaded weights (``None``: shipped, or not one file)."""
    source = weight_sources().get(name)
    return Path(torch.hub.get_dir()) / "checkpoints" / source[1] if source else None


def weights_file(name: str, weights: str | None) -> Path | None:
    """The file the extractor's weights are read from: the given one, the shipped digits classifier, or
    torch-fidelity's downloaded copy (``None`` when it is not on disk yet, or is a torch.hub repository)."""
    if weights:
        return Path(weights)
    if name == DIGITS_EXTRACTOR:
        return WEIGHTS / "model.safetensors"
    found = hub_file(name)
    return found if found is not None and found.is_file() else None


def weights_hash(name: str, weights: str | None) -> str:
    """The SHA-256 of the extractor's weights file; ``torch.hub`` for weights torch.hub manages as a repository."""
    found = weights_file(name, weights)
    return file_hash(found) if found is not None else "torch.hub"


def offline_help(name: str) -> str:
    """What to fetch, and where to put it, to use the extractor without a network."""
    source = weight_sources().get(name)
    if source is None:
        return (f"run once with internet (torch.hub fetches facebookresearch/dinov2 into {torch.hub.get_dir()})"
                if name.startswith("dinov2") else "make its weights available locally")
    return (f"fetch {source[0]} into {hub_file(name)} (or pass --extractor-weights PATH; $TORCH_HOME moves the "
            "folder)")


def create(name: str, layers: list[str], weights: str | None = None, cuda: bool = False) -> FeatureExtractorBase:
    """The extractor with its weights loaded; a download that fails, or a file it cannot load, is one line."""
    check_extractor(name, weights)
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # torch.hub's "Downloading: ..." line; failures are said below
            return create_feature_extractor(name, layers, cuda=cuda, feature_extractor_weights_path=weights,
                                            verbose=False)
    except SamplerzooError:
        raise
    except Exception as exc:  # urllib, torch.load and load_state_dict raise assorted types, often over many lines
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if weights:
            raise SamplerzooError(f"--extractor-weights {weights}: {name} cannot load it ({type(exc).__name__}: "
                                  f"{reason[:200]}); accepted: the weights file torch-fidelity loads for {name}"
                                  ) from None
        raise SamplerzooError(f"{name}: its weights could not be loaded ({type(exc).__name__}: {reason[:200]}); "
                              f"{offline_help(name)}") from None


def extractor_input(extractor: FeatureExtractorBase, images: Tensor) -> Tensor:
    """uint8 images as the extractor takes them: grey given to an RGB extractor as three equal channels."""
    if extractor.get_name() != DIGITS_EXTRACTOR and images.shape[1] == 1:
        return images.expand(-1, 3, -1, -1)
    return images
