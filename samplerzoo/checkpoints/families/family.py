"""What a model family module declares (the registry of families is the package, ``families``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ...denoiser import Checkpoint


@dataclass(frozen=True)
class Family:
    """A pipeline family: the ``_class_name`` values it loads, the component folders it needs, and its builder."""

    name: str
    pipelines: tuple[str, ...]
    components: tuple[str, ...]
    build: Callable[[Path], Checkpoint]
    description: str
