"""Schedule files: the sigmas ``zoo tune`` finds (or any you write), used wherever a schedule name is accepted as
``file:PATH``.

A schedule file is JSON: ``sigmas`` (decreasing, as the sampler runs them: ending at 0, or at its last level when
the run stops at sigma_min) and what made them (method, sampler, checkpoint, nfe, seed, cost, samplerzoo version).
Results rows of a run on ``file:PATH`` record the file's SHA-256 and method (:func:`schedule_record`).
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .errors import SamplerzooError, ScheduleLengthError
from .files import atomic_write, read_json_object
from .schedules import HasSigmaRange, append_zero

FORMAT = "samplerzoo-schedule"


@dataclass(frozen=True)
class ScheduleFile:
    """A schedule file's content; ``sigmas`` as run, the rest is provenance."""

    sigmas: tuple[float, ...]
    method: str = ""
    sampler: str = ""
    checkpoint: str = ""
    nfe: int | None = None
    final_step: str = ""
    seed: int | None = None
    cost: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    samplerzoo: str = ""

    @property
    def levels(self) -> tuple[float, ...]:
        """The noise levels, without a final 0."""
        return self.sigmas[:-1] if self.sigmas[-1] == 0 else self.sigmas

    def describe(self) -> str:
        """"gits for euler at NFE 10 on digits", or "written by hand"."""
        if not self.method:
            return "no method recorded"
        return f"{self.method} for {self.sampler or '?'} at NFE {self.nfe} on {self.checkpoint or '?'}"


def check_sigmas(sigmas: list[Any], where: str) -> tuple[float, ...]:
    """A valid sigma list (finite, strictly decreasing, positive but for a final 0), or a one-line error."""
    if not sigmas or not all(isinstance(s, int | float) and not isinstance(s, bool) for s in sigmas):
        raise SamplerzooError(f"{where}: 'sigmas' must be a non-empty list of numbers")
    values = tuple(float(s) for s in sigmas)
    if not all(math.isfinite(s) for s in values) or min(values[:-1] or values) <= 0 or values[-1] < 0:
        raise SamplerzooError(f"{where}: sigmas must be finite and positive (a final 0 allowed), got {list(values)}")
    if any(b >= a for a, b in pairwise(values)):
        raise SamplerzooError(f"{where}: sigmas must decrease strictly, got {list(values)}")
    return values


def read_schedule_file(path: Path) -> ScheduleFile:
    """The schedule file at ``path``, or a one-line error naming what is wrong with it."""
    expected = "a JSON object with 'sigmas' (as zoo tune writes)"
    data = read_json_object(path, f"schedule file {path}", SamplerzooError, expected)
    if "sigmas" not in data:
        raise SamplerzooError(f"schedule file {path}: expected {expected}")
    known = {k: data[k] for k in ScheduleFile.__dataclass_fields__ if k in data and k != "sigmas"}
    try:
        return ScheduleFile(check_sigmas(data["sigmas"], f"schedule file {path}"), **known)
    except TypeError as exc:
        raise SamplerzooError(f"schedule file {path}: malformed ({exc})") from None


def write_schedule_file(path: Path, schedule: ScheduleFile) -> str:
    """Write ``schedule`` as JSON (creating folders; all at once); returns the file's SHA-256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, (json.dumps({"format": FORMAT, **asdict(schedule)}, indent=1) + "\n").encode())
    return sha256(path)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def file_schedule(n: int, model: HasSigmaRange, schedule_file: ScheduleFile | None = None, path: str = "") -> Tensor:
    """The sigmas of a schedule file (``file:PATH``), which must hold exactly the n levels the plan asks for."""
    if schedule_file is None:
        raise SamplerzooError("schedule 'file' needs the path of a schedule file: file:PATH")
    levels = schedule_file.levels
    if len(levels) != n:
        raise ScheduleLengthError(f"schedule file {path} holds {len(levels)} noise levels "
                                  f"({schedule_file.describe()}), but this run needs {n}: tune for this sampler and "
                                  "NFE", levels)
    return append_zero(torch.tensor(levels, dtype=torch.float64))


def bind_file(path: str) -> dict[str, Any]:
    """``file:PATH``'s options: the file, read and checked now (before any work)."""
    return {"schedule_file": read_schedule_file(Path(path)), "path": path}


def schedule_record(schedule: str) -> dict[str, Any]:
    """What a results row records about a ``file:PATH`` schedule (its SHA-256 and provenance); {} for other names."""
    base, colon, path = schedule.partition(":")
    if not colon or base.lower() != "file":
        return {}
    content = read_schedule_file(Path(path))
    return {"schedule_file": {"path": path, "sha256": sha256(Path(path)), "method": content.method,
                              "sampler": content.sampler, "checkpoint": content.checkpoint, "nfe": content.nfe,
                              "seed": content.seed}}
