"""Hook specifications: the whole plugin interface of samplerzoo.

A plugin is a module (or object) with functions marked ``@samplerzoo.hookimpl``, exposed through the
entry-point group ``samplerzoo``. Hooks receive a ``register`` callback instead of returning values,
so the registry validates every name, rejects clashes and records which plugin registered what.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from .denoiser import Checkpoint
    from .registry import CheckpointSpec, GuidanceSpec, SamplerSpec, ScheduleSpec

PROJECT = "samplerzoo"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_samplers(register: Callable[[SamplerSpec], None]) -> None:
    """Register samplers: call ``register(SamplerSpec(...))`` once per sampler."""


@hookspec
def register_schedules(register: Callable[[ScheduleSpec], None]) -> None:
    """Register sampling schedules: call ``register(ScheduleSpec(...))`` once per schedule."""


@hookspec
def register_guidance(register: Callable[[GuidanceSpec], None]) -> None:
    """Register classifier-free guidance rules: call ``register(GuidanceSpec(...))`` once per rule."""


@hookspec
def register_checkpoints(register: Callable[[CheckpointSpec], None]) -> None:
    """Register named checkpoints: call ``register(CheckpointSpec(name, load, ...))`` once per checkpoint."""


@hookspec(firstresult=True)
def load_pipeline(directory: Path, model_index: dict[str, Any]) -> Checkpoint | None:
    """Load a diffusers pipeline directory whose ``model_index.json`` (parsed: ``model_index``) names a pipeline
    class this plugin's family handles, or return None. The first non-None answer wins; plugins are asked before
    the built-in families (``samplerzoo/checkpoints/families``)."""
