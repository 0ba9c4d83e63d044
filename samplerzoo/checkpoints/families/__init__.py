"""Model families: one small module per kind of diffusers pipeline, chosen by ``model_index.json``'s
``_class_name``. Each builds its network wrapper, names its noise schedule and parameterization (from the
scheduler config), decodes with the pipeline's VAE and builds conditioning with the pipeline's own prompt
encoders. A plugin adds a family with the ``load_pipeline`` hook; no sampler knows about any of them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...denoiser import Checkpoint
from ...errors import CheckpointError
from ...noise_schedules import SigmaToT
from ...plugins import plugin_manager
from ..diffusers_format import load_unet_denoiser, read_json
from . import aura_flow, chroma, cogview3, deepfloyd_if, dit, flux, hunyuandit, lcm, pixart, sana, sd, sd3, sdxl, unet2d
from .family import Family


def builtin_families() -> tuple[Family, ...]:
    return (unet2d.FAMILY, sd.FAMILY, lcm.FAMILY, sdxl.FAMILY, dit.FAMILY, pixart.FAMILY, hunyuandit.FAMILY,
            cogview3.FAMILY, sd3.FAMILY, flux.FAMILY, chroma.FAMILY, aura_flow.FAMILY, sana.FAMILY, deepfloyd_if.FAMILY)


def supported() -> str:
    return "; ".join(f"{f.name}: {', '.join(f.pipelines)}" for f in builtin_families())


def check_components(directory: Path, model_index: dict[str, Any], family: Family) -> None:
    """Every component folder the family needs is present (and not marked absent, ``[null, null]``, in
    model_index.json)."""
    for name in family.components:
        entry = model_index.get(name)
        if (isinstance(entry, list) and entry[:1] == [None]) or not (directory / name).is_dir():
            raise CheckpointError(f"{directory}: missing component folder {name!r}; a {model_index['_class_name']} "
                                  f"needs {', '.join(family.components)}")


def load_builtin(directory: Path, model_index: dict[str, Any]) -> Checkpoint | None:
    """The checkpoint of a built-in family's pipeline directory, or None when no built-in family claims it."""
    family = next((f for f in builtin_families() if model_index.get("_class_name") in f.pipelines), None)
    if family is None:
        return None
    check_components(directory, model_index, family)
    return family.build(directory)


def load_pipeline(directory: Path) -> Checkpoint:
    """A pipeline directory (``model_index.json``) through the first plugin or built-in family that claims it."""
    index_path = directory / "model_index.json"
    model_index = read_json(index_path)
    class_name = model_index.get("_class_name")
    if not isinstance(class_name, str):
        raise CheckpointError(f"{index_path}: no _class_name naming the pipeline class")
    checkpoint = plugin_manager()[0].hook.load_pipeline(directory=directory, model_index=model_index)
    if checkpoint is None:
        raise CheckpointError(f"{index_path}: pipeline class {class_name!r} is not supported; supported families: "
                              f"{supported()}")
    return checkpoint


def load_diffusers(directory: Path, sigma_to_t: SigmaToT = "log") -> Checkpoint:
    """A Checkpoint from a local diffusers directory: a pipeline (``model_index.json``, through its family), a
    bare UNet2DModel with its scheduler config, or the legacy root layout."""
    directory = Path(directory)
    if (directory / "model_index.json").is_file():
        return load_pipeline(directory)
    return load_unet_denoiser(directory, directory / "scheduler_config.json", sigma_to_t)
