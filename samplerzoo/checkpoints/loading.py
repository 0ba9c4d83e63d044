"""``load(spec)``: a Denoiser from a registered name, a diffusers directory, or a described safetensors file."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ..denoiser import Checkpoint
from ..errors import CheckpointError
from ..plugins import registry
from ..registry import CheckpointSpec
from .description import DESCRIPTION_SUFFIXES, load_described
from .diffusers_format import load_diffusers

__all__ = ["CheckpointSpec", "get_checkpoint", "get_checkpoints", "load"]


def get_checkpoints() -> Mapping[str, CheckpointSpec]:
    return registry().checkpoints.as_dict()


def get_checkpoint(name: str) -> CheckpointSpec:
    return registry().checkpoints.get(name)


def load(spec: str | Path) -> Checkpoint:
    """A Denoiser from a registered checkpoint name, a diffusers model directory, or a safetensors file with
    its JSON/TOML description (or the description itself)."""
    catalogue = registry().checkpoints
    if isinstance(spec, str) and spec.lower() in catalogue.names:
        return catalogue.get(spec).load()
    path = Path(spec)
    if path.is_dir():
        return load_diffusers(path)
    if path.is_file() and path.suffix in (".safetensors", *DESCRIPTION_SUFFIXES):
        return load_described(path)
    raise CheckpointError(f"{spec}: not a registered checkpoint, a diffusers model directory, or a .safetensors/"
                          f".json/.toml file; registered: {', '.join(sorted(catalogue.specs)) or 'none'}")
