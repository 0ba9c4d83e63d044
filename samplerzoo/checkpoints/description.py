"""A safetensors file beside a small JSON or TOML description naming the architecture, its arguments,
the parameterization and the noise schedule. Nothing is unpickled and no code is named by the file:
architectures come from a fixed table."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from torch import nn

from ..adapters import NetworkDenoiser, parameterization
from ..errors import CheckpointError, UnknownNameError
from ..noise_schedules import EDM, VE, ContinuousVP, DiscreteVP, NoiseSchedule, SubVP
from .betas import alphas_cumprod
from .diffusers_format import UNetNetwork
from .weights import load_state_dict

DESCRIPTION_SUFFIXES = (".json", ".toml")


def _unet(arguments: dict[str, Any]) -> nn.Module:
    from diffusers import UNet2DModel

    return UNetNetwork(UNet2DModel(**arguments))


ARCHITECTURES: dict[str, Callable[[dict[str, Any]], nn.Module]] = {"UNet2DModel": _unet}


def _schedule(spec: dict[str, Any], source: str) -> NoiseSchedule:
    kind = spec.get("type")
    options = {k: v for k, v in spec.items() if k != "type"}
    try:
        if kind == "discrete_vp":
            return DiscreteVP(alphas_cumprod(options, source), options.get("sigma_to_t", "log"))
        if kind == "continuous_vp":
            return ContinuousVP(**options)
        if kind == "sub_vp":
            return SubVP(**options)
        if kind == "ve":
            return VE(**options)
        if kind == "edm":
            return EDM(**options)
    except TypeError as exc:
        raise CheckpointError(f"{source}: bad noise_schedule options ({exc})") from None
    raise CheckpointError(f"{source}: unknown noise_schedule type {kind!r}; known: discrete_vp, continuous_vp, sub_vp, "
                          "ve, edm")


def read_description(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found")
    try:
        data = tomllib.loads(path.read_text()) if path.suffix == ".toml" else json.loads(path.read_text())
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: cannot parse the description ({exc})") from None
    missing = [k for k in ("architecture", "prediction", "noise_schedule", "sample_shape") if k not in data]
    if missing:
        raise CheckpointError(f"{path}: description lacks {', '.join(missing)}")
    return data


def description_for(path: Path) -> Path:
    """The description of a weights file: the .json or .toml with the same stem."""
    if path.suffix in DESCRIPTION_SUFFIXES:
        return path
    for suffix in DESCRIPTION_SUFFIXES:
        if path.with_suffix(suffix).is_file():
            return path.with_suffix(suffix)
    raise CheckpointError(f"{path}: no description beside it; expected {path.with_suffix('.json').name} or "
                          f"{path.with_suffix('.toml').name}")


def load_described(path: Path) -> NetworkDenoiser:
    """A Denoiser from a description file (or the weights file it describes)."""
    source = description_for(Path(path))
    desc = read_description(source)
    build = ARCHITECTURES.get(desc["architecture"])
    if build is None:
        raise CheckpointError(f"{source}: unknown architecture {desc['architecture']!r}; known: "
                              f"{', '.join(ARCHITECTURES)}")
    try:
        network = build(dict(desc.get("arguments", {})))
        prediction = parameterization(desc["prediction"])
    except UnknownNameError as exc:
        raise CheckpointError(f"{source}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{source}: bad arguments for {desc['architecture']} ({exc})") from None
    load_state_dict(network, source.parent / desc.get("weights", source.with_suffix(".safetensors").name))
    return NetworkDenoiser(network.eval(), prediction, _schedule(dict(desc["noise_schedule"]), str(source)),
                           sample_shape=tuple(desc["sample_shape"]), num_classes=int(desc.get("num_classes", 0)))
