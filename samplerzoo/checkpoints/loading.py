"""``load(spec)``: a Checkpoint from a registered name, a diffusers directory, a described safetensors file or a
Hugging Face hub id."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ..denoiser import Checkpoint
from ..errors import CheckpointError
from ..plugins import registry
from ..registry import CheckpointSpec
from .description import DESCRIPTION_SUFFIXES, load_described
from .families import load_diffusers
from .hub import is_hub_id, resolve

__all__ = ["CheckpointSpec", "get_checkpoint", "get_checkpoints", "load"]


def get_checkpoints() -> Mapping[str, CheckpointSpec]:
    return registry().checkpoints.as_dict()


def get_checkpoint(name: str) -> CheckpointSpec:
    return registry().checkpoints.get(name)


def load(spec: str | Path) -> Checkpoint:
    """A Checkpoint from a registered checkpoint name, a local diffusers directory (a pipeline of any supported
    family, or a bare UNet2DModel), a safetensors file with its JSON/TOML description (or the description
    itself), or a Hugging Face hub id ``org/name`` (from the hub cache, else downloaded)."""
    catalogue = registry().checkpoints
    if isinstance(spec, str) and spec.lower() in catalogue.names:
        return catalogue.get(spec).load()
    path = Path(spec)
    if path.is_dir():
        return load_diffusers(path)
    if path.is_file() and path.suffix in (".safetensors", *DESCRIPTION_SUFFIXES):
        return load_described(path)
    if not path.exists() and is_hub_id(str(spec)):
        return load_diffusers(resolve(str(spec)))
    raise CheckpointError(f"{spec}: not a registered checkpoint, a diffusers model directory, a .safetensors/"
                          f".json/.toml file or a hub id org/name; registered: "
                          f"{', '.join(sorted(catalogue.specs)) or 'none'}")
