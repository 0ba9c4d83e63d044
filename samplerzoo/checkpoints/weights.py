"""Reading weights safely: safetensors, or ``torch.load(weights_only=True)`` for legacy .bin files."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import CheckpointError


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        return torch.load(path, map_location="cpu", weights_only=True)  # never unpickle arbitrary objects
    except Exception as exc:  # safetensors and torch raise assorted types for damaged files
        raise CheckpointError(f"{path}: corrupt or unreadable weights ({type(exc).__name__}: {exc})") from None


def load_state_dict(module: nn.Module, path: Path) -> None:
    """Load weights into ``module``, naming the first missing, unexpected or mis-shaped tensor on failure."""
    tensors = read_tensors(path)
    expected = module.state_dict()
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        detail = f"missing {missing[0]!r}" if missing else f"unexpected {unexpected[0]!r}"
        raise CheckpointError(f"{path}: weights do not fit the architecture ({detail}; "
                              f"{len(missing)} missing, {len(unexpected)} unexpected tensors)")
    for name, tensor in tensors.items():
        if tensor.shape != expected[name].shape:
            raise CheckpointError(f"{path}: tensor {name!r} has shape {tuple(tensor.shape)}, the architecture "
                                  f"expects {tuple(expected[name].shape)}")
    module.load_state_dict(tensors)
