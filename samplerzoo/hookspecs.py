"""Hook specifications: the whole plugin interface of samplerzoo.

A plugin is a module (or object) with functions marked ``@samplerzoo.hookimpl``, exposed through the
entry-point group ``samplerzoo``. Hooks receive a ``register`` callback instead of returning values,
so the registry validates every name, rejects clashes and records which plugin registered what.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from .registry import CheckpointSpec, SamplerSpec, ScheduleSpec

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
def register_checkpoints(register: Callable[[CheckpointSpec], None]) -> None:
    """Register named checkpoints: call ``register(CheckpointSpec(name, load, ...))`` once per checkpoint."""
