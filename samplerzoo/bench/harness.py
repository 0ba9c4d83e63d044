"""One sweep: for each (sampler, schedule, NFE) point, sample N images from per-sample seeds with exactly
the requested NFE (counted), stream them into torch-fidelity, and append the finished point to the
results file. Finished points are skipped when the same sweep runs again."""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import torch

from ..checkpoints import load
from ..data import Split, digits, to_uint8
from ..denoiser import Checkpoint
from ..errors import SamplerzooError, UnreachableNFEError
from ..guidance import class_conditioned
from ..plugins import get_sampler, get_schedule
from ..sampling import generate
from .metrics import DIGITS_EXTRACTOR, ImageStream, TensorImages, measure
from .results import ResultsFile

REFERENCES: dict[str, Split] = {"digits-train": "train", "digits-test": "test"}
HELD_OUT = {"digits-train": "digits-test"}
"""The real images that measure a reference's floor: what a perfect sampler of the data would score."""
DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True)
class Point:
    """One cell of a sweep; its JSON is the key that identifies a finished point in the results file."""

    checkpoint: str
    sampler: str
    schedule: str
    nfe: int
    samples: int
    seed: int
    final_step: str = "auto"
    metric_names: tuple[str, ...] = ("fid", "kid")
    extractor: str = DIGITS_EXTRACTOR
    reference: str = "digits-train"
    dtype: str = "float32"
    guidance_scale: float | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def key(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def versions() -> dict[str, str]:
    names = ("samplerzoo", "torch", "diffusers", "torch-fidelity")
    return {"python": platform.python_version(), **{n: version(n) for n in names}}


def reference_images(name: str) -> TensorImages:
    if name not in REFERENCES:
        raise SamplerzooError(f"unknown reference {name!r}; known: {', '.join(REFERENCES)}")
    return TensorImages(to_uint8(digits(REFERENCES[name])[0]))


def floor(point: Point) -> dict[str, float]:
    """The metrics of real held-out images against the reference: the best a sampler can hope for."""
    held_out = HELD_OUT.get(point.reference)
    if held_out is None:
        return {}
    return measure(reference_images(held_out), reference_images(point.reference), point.reference,
                   list(point.metric_names), point.extractor)


@dataclass
class Progress:
    """Callbacks the CLI uses to draw progress bars; the library itself never prints."""

    start_point: Callable[[Point, int], None] = lambda point, total: None
    sampled: Callable[[int], None] = lambda n: None


def run_point(model: Checkpoint, point: Point, batch: int, device: str, progress: Progress) -> dict[str, Any]:
    """Sample the point's images batch by batch and measure them; returns the results row."""
    spec = get_sampler(point.sampler)
    dtype, runs, sampling_seconds = DTYPES[point.dtype], [], [0.0]

    def make_batch(start: int, stop: int) -> torch.Tensor:
        begin = time.perf_counter()
        seeds = range(point.seed + start, point.seed + stop)  # class-conditional: label seed % classes
        run = generate(class_conditioned(model, seeds, point.guidance_scale), spec.name, point.nfe, seeds,
                       model.sample_shape, schedule=point.schedule, final_step=point.final_step,  # type: ignore[arg-type]
                       device=device, dtype=dtype, **point.options)
        runs.append(run)
        sampling_seconds[0] += time.perf_counter() - begin
        progress.sampled(stop - start)
        return to_uint8(run.samples.float().cpu())

    progress.start_point(point, point.samples)
    begin = time.perf_counter()
    metrics = measure(ImageStream(point.samples, batch, make_batch), reference_images(point.reference),
                      point.reference, list(point.metric_names), point.extractor, cuda=device.startswith("cuda"))
    wall = time.perf_counter() - begin
    first = runs[0]  # every batch spends the same schedule; generate() has checked its counted NFE
    return {"status": "ok", "counted_nfe": first.counted_nfe, "steps": first.steps,
            "final_step_used": first.final_step, "metrics": metrics,
            "wall_seconds": round(wall, 3), "sampling_seconds": round(sampling_seconds[0], 3),
            "metric_seconds": round(wall - sampling_seconds[0], 3)}


def points(checkpoint: str, samplers: list[str], schedules: list[str], nfes: list[int], samples: int, seed: int,
           **common: Any) -> Iterator[Point]:
    for sampler in samplers:
        name = get_sampler(sampler).name  # unknown names fail here, before any work
        for schedule in schedules:
            get_schedule(schedule)
            for nfe in nfes:
                yield Point(checkpoint, name, schedule, nfe, samples, seed, **common)


def sweep(checkpoint: str, samplers: list[str], schedules: list[str], nfes: list[int], samples: int, seed: int,
          results: Path, batch: int = 500, device: str = "cpu", progress: Progress | None = None,
          **common: Any) -> list[dict[str, Any]]:
    """Run every point not yet in ``results``; returns the rows of this sweep (old and new), in order."""
    progress = progress or Progress()
    grid = list(points(checkpoint, samplers, schedules, nfes, samples, seed, **common))
    file = ResultsFile(results)
    done = {row["key"]: row for row in file.rows() if "key" in row}
    model = load(checkpoint) if any(p.key() not in done for p in grid) else None
    if isinstance(model, torch.nn.Module):
        model.to(device)
    rows, floors = [], {}
    for point in grid:
        if point.key() in done:
            rows.append(done[point.key()])
            continue
        assert model is not None
        floor_key = (point.reference, point.extractor, point.metric_names)
        if floor_key not in floors:
            floors[floor_key] = floor(point)
        base = {"key": point.key(), **asdict(point), "requested_nfe": point.nfe, "batch": batch, "device": device,
                "versions": versions(), "reference_samples": len(reference_images(point.reference)),
                "floor": floors[floor_key], "floor_samples": len(reference_images(HELD_OUT[point.reference]))
                if point.reference in HELD_OUT else 0}
        try:
            row = {**base, **run_point(model, point, batch, device, progress)}
        except UnreachableNFEError as exc:
            row = {**base, "status": "unreachable", "reason": str(exc)}
        file.append(row)
        rows.append(row)
    return rows

