"""samplerzoo: every diffusion sampler on any diffusion checkpoint, with exact NFE accounting.

The names below load on first use (PEP 562), so ``import samplerzoo.cli`` (and ``zoo --help``) does not import
torch; ``import samplerzoo as sz; sz.generate(...)`` works as usual.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .adapters import NetworkDenoiser
    from .analytic import Gaussian, GaussianMixture, finite_dataset
    from .checkpoints import CheckpointSpec, get_checkpoint, get_checkpoints, load
    from .denoiser import Checkpoint, CountingDenoiser, Denoiser
    from .errors import CheckpointError, NonFiniteError, SamplerzooError, UnknownNameError, UnreachableNFEError
    from .hookspecs import hookimpl
    from .noise import CounterNoise, SeededNoise
    from .plugins import (
        get_guidance,
        get_guidances,
        get_sampler,
        get_samplers,
        get_schedule,
        get_schedules,
        guidance_method,
    )
    from .registry import GuidanceSpec, SamplerSpec, ScheduleSpec
    from .sampling import Generation, generate

MODULES = {
    "adapters": ["NetworkDenoiser"],
    "analytic": ["Gaussian", "GaussianMixture", "finite_dataset"],
    "checkpoints": ["CheckpointSpec", "get_checkpoint", "get_checkpoints", "load"],
    "denoiser": ["Checkpoint", "CountingDenoiser", "Denoiser"],
    "errors": ["CheckpointError", "NonFiniteError", "SamplerzooError", "UnknownNameError", "UnreachableNFEError"],
    "hookspecs": ["hookimpl"],
    "noise": ["CounterNoise", "SeededNoise"],
    "plugins": ["get_guidance", "get_guidances", "get_sampler", "get_samplers", "get_schedule", "get_schedules",
                "guidance_method"],
    "registry": ["GuidanceSpec", "SamplerSpec", "ScheduleSpec"],
    "sampling": ["Generation", "generate"],
}
"""Where each public name lives."""
HOME = {name: module for module, names in MODULES.items() for name in names}
__all__ = [
    "Checkpoint", "CheckpointError", "CheckpointSpec", "CounterNoise", "CountingDenoiser", "Denoiser", "Gaussian",
    "GaussianMixture", "Generation", "GuidanceSpec", "NetworkDenoiser", "NonFiniteError", "SamplerSpec",
    "SamplerzooError", "ScheduleSpec", "SeededNoise", "UnknownNameError", "UnreachableNFEError", "finite_dataset",
    "generate", "get_checkpoint", "get_checkpoints", "get_guidance", "get_guidances", "get_sampler", "get_samplers",
    "get_schedule", "get_schedules", "guidance_method", "hookimpl", "load",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    if name not in HOME:
        raise AttributeError(f"module 'samplerzoo' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{HOME[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
