"""What samples are measured against (``--reference``): a registered name (``digits-train``, ``digits-test``, or a
dataset torch-fidelity registers, e.g. ``cifar10-train``, which it downloads), a folder of images (png, jpg, jpeg,
webp, any size, found recursively), or an ``.npz`` of FID statistics ``mu``, ``sigma`` (NVlabs/edm's and
pytorch-fid's format), which serves FID only.

A reference's identity keys its cached features: its name, a hash of a folder's file list and sizes, or a hash of
the npz file, so a changed folder or file is never served stale features. Everything is checked when the
reference is resolved, before any sampling: an empty folder, an unreadable image (named), an npz without ``mu`` /
``sigma`` or with mismatched dimensions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..data import Split, digits, to_uint8
from ..errors import SamplerzooError
from ..files import file_hash

Kind = Literal["digits", "dataset", "folder", "npz", "images"]
DIGITS: dict[str, Split] = {"digits-train": "train", "digits-test": "test"}
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")


class TensorImages(Dataset[Tensor]):
    """A fixed uint8 image tensor as a torch-fidelity input (the reference data)."""

    def __init__(self, images: Tensor) -> None:
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> Tensor:
        return self.images[index]


class ImageFiles(Dataset[Tensor]):
    """Image files as uint8 RGB tensors (3, H, W) at their own size, in path order; an unreadable file is a one-line
    error naming it."""

    def __init__(self, files: list[Path]) -> None:
        self.files = files

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> Tensor:
        from PIL import Image

        path = self.files[index]
        try:
            with Image.open(path) as image:
                rgb = np.asarray(image.convert("RGB"))
        except (OSError, ValueError, SyntaxError) as exc:  # PIL's UnidentifiedImageError is an OSError
            raise SamplerzooError(f"{path}: not a readable image ({type(exc).__name__}: {exc}); accepted: png, jpg, "
                                  "jpeg, webp files") from None
        return torch.from_numpy(rgb.copy()).permute(2, 0, 1)


@dataclass(frozen=True)
class Statistics:
    """FID statistics of a reference: the mean and covariance of its features."""

    mu: np.ndarray
    sigma: np.ndarray

    @property
    def dims(self) -> int:
        return int(self.mu.shape[0])


@dataclass(frozen=True)
class Reference:
    """A resolved ``--reference``: its kind, the identity its features are cached under, and how to read it."""

    name: str
    kind: Kind
    identity: str
    load: Callable[[], Dataset[Any]] | None = None
    """The reference images (uint8 tensors, any size); ``None`` for statistics."""
    statistics: Statistics | None = None
    count: int | None = None
    """Its number of images, where known before loading (folders, digits)."""

    @property
    def serves_only_fid(self) -> bool:
        return self.statistics is not None

    @classmethod
    def of_images(cls, name: str, images: TensorImages) -> Reference:
        """Images in memory, cached under ``name`` (the caller vouches that the name identifies them)."""
        return cls(name, "images", name, lambda: images, count=len(images))


def dataset_names() -> list[str]:
    from torch_fidelity.registry import DATASETS_REGISTRY

    return sorted(DATASETS_REGISTRY)


def accepted() -> str:
    return (f"accepted: {', '.join([*DIGITS, *dataset_names()])}, a folder of images ({', '.join(IMAGE_SUFFIXES)}), "
            "or an .npz of FID statistics (mu, sigma)")


def resolve(spec: str) -> Reference:
    """The reference ``spec`` names, checked (but not read) now."""
    if spec in DIGITS:
        return Reference(spec, "digits", spec, lambda: TensorImages(to_uint8(digits(DIGITS[spec])[0])),
                         count=len(digits(DIGITS[spec])[0]))
    if spec in dataset_names():
        return Reference(spec, "dataset", spec, lambda: torch_fidelity_dataset(spec))
    path = Path(spec)
    if path.is_dir():
        return folder(path)
    if path.suffix.lower() == ".npz" and path.is_file():
        return Reference(spec, "npz", f"npz-{file_hash(path)[:16]}", statistics=read_statistics(path))
    if path.exists():
        raise SamplerzooError(f"--reference {spec}: neither a folder of images nor an .npz file; {accepted()}")
    raise SamplerzooError(f"unknown reference {spec!r}; {accepted()}")


def image_files(root: Path) -> list[Path]:
    """The image files in a folder and below, sorted by path."""
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def folder(root: Path) -> Reference:
    """A folder reference, identified by its file list and sizes."""
    files = image_files(root)
    if not files:
        raise SamplerzooError(f"--reference {root}: no images in this folder or below; accepted: "
                              f"{', '.join(IMAGE_SUFFIXES)} files")
    listing = "\n".join(f"{p.relative_to(root).as_posix()}\t{p.stat().st_size}" for p in files)
    identity = f"folder-{hashlib.sha256(listing.encode()).hexdigest()[:16]}"
    return Reference(str(root), "folder", identity, lambda: ImageFiles(files), count=len(files))


def read_statistics(path: Path) -> Statistics:
    """``mu`` (D,) and ``sigma`` (D, D) from an npz (nothing unpickled), checked."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: np.asarray(data[key], dtype=np.float64) for key in ("mu", "sigma") if key in data}
    except (OSError, ValueError) as exc:
        raise SamplerzooError(f"{path}: not a readable .npz ({exc}); accepted: numpy.savez(path, mu=..., "
                              "sigma=...)") from None
    missing = [key for key in ("mu", "sigma") if key not in arrays]
    if missing:
        raise SamplerzooError(f"{path}: no {missing[0]!r} array; accepted: an .npz with mu (D,) and sigma (D, D), as "
                              "NVlabs/edm's fid.py ref and pytorch-fid write")
    mu, sigma = arrays["mu"], arrays["sigma"]
    if mu.ndim != 1 or sigma.shape != (len(mu), len(mu)):
        raise SamplerzooError(f"{path}: mu {tuple(mu.shape)} and sigma {tuple(sigma.shape)} do not fit; accepted: "
                              "mu (D,) and sigma (D, D)")
    if not (np.isfinite(mu).all() and np.isfinite(sigma).all()):
        raise SamplerzooError(f"{path}: mu or sigma holds NaN or inf")
    return Statistics(mu, sigma)


def torch_fidelity_dataset(name: str) -> Dataset[Any]:
    """A dataset torch-fidelity registers, downloaded by it (into $TORCH_HOME/fidelity_datasets) when missing."""
    import os

    from torch_fidelity.registry import DATASETS_REGISTRY

    root = os.path.join(torch.hub._get_torch_home(), "fidelity_datasets")
    try:
        os.makedirs(root, exist_ok=True)
        dataset: Dataset[Any] = DATASETS_REGISTRY[name](root, True)
    except Exception as exc:  # torchvision raises URLError, RuntimeError, ... while downloading
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise SamplerzooError(f"reference {name}: torch-fidelity could not download it into {root} ({reason}); "
                              "offline, pass a folder of its images or an .npz of its FID statistics") from None
    return dataset
