"""The cache of reference features under ``$SAMPLERZOO_CACHE`` (default ``~/.cache/samplerzoo``).

Files are safetensors (nothing is unpickled), written atomically (a temporary file, then ``os.replace``) and checked
when read: an empty, truncated or garbage file, or one whose tensors do not fit together, is recomputed and
replaced. A cache folder that cannot be written means no caching, with one warning; the harness finds out before
it samples anything.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from ..errors import SamplerzooWarning
from ..files import atomic_write

CACHE_ENV = "SAMPLERZOO_CACHE"
Features = dict[str, Tensor]


def cache_root() -> Path:
    """Where reference features are cached: $SAMPLERZOO_CACHE/features, else ~/.cache/samplerzoo/features."""
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "samplerzoo")) / "features"


def writable_root() -> Path | None:
    """The cache folder, made if missing; ``None`` (and one warning) when it cannot be written."""
    root = cache_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=root, prefix=".probe-"):
            pass
    except OSError as exc:
        warnings.warn(f"cache folder {root} cannot be written ({exc.strerror or exc}); reference features are "
                      f"computed without caching (set {CACHE_ENV} to a writable folder)", SamplerzooWarning,
                      stacklevel=3)
        return None
    return root


def read_features(path: Path) -> tuple[Features | None, str]:
    """The features in a cache file, or ``None`` and why they cannot be used."""
    from safetensors.torch import load_file

    try:
        features = load_file(str(path))
    except Exception as exc:  # safetensors raises assorted types for damaged files
        return None, f"{type(exc).__name__}: {exc}"
    lengths = {len(value) for value in features.values()}
    if not features or len(lengths) != 1 or any(value.ndim != 2 for value in features.values()):
        return None, "its tensors are not one set of per-image features"
    if not all(bool(torch.isfinite(value).all()) for value in features.values()):
        return None, "it holds NaN or inf"
    return features, ""


def cached(name: str, compute: Callable[[], Features]) -> Features:
    """The features cached as ``name``, computed (and cached, when the folder is writable) if missing or damaged."""
    from safetensors.torch import save

    root = writable_root()
    if root is None:
        return compute()
    path = root / f"{name}.safetensors"
    if path.exists():
        features, reason = read_features(path)
        if features is not None:
            return features
        warnings.warn(f"cached reference features {path} are unusable ({reason}); recomputed and replaced",
                      SamplerzooWarning, stacklevel=2)
    features = compute()
    atomic_write(path, save({key: value.contiguous() for key, value in features.items()}))
    return features
