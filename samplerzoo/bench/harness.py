"""One sweep: for each (sampler, schedule, NFE) point, sample N images from per-sample seeds with exactly
the requested NFE (counted), batch by batch into torch-fidelity features, measure the features, and append
the finished point to the results file. Finished points are skipped when the same sweep runs again."""

from __future__ import annotations

import functools
import json
import platform
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from importlib.metadata import version
from itertools import chain
from pathlib import Path
from typing import Any

import torch

from ..checkpoints import load
from ..data import Split, digits, to_uint8
from ..denoiser import Checkpoint, decode
from ..errors import SamplerzooError, UnreachableNFEError
from ..guidance import class_conditioned
from ..plugins import get_sampler, get_schedule
from ..sampling import generate, resolve_final_step
from ..schedule_files import schedule_record
from . import distributed
from .metrics import DIGITS_EXTRACTOR, Features, Meter, TensorImages, concat, measure
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
    """The metrics of real held-out images against the reference: the best a sampler can hope for (measured once a
    process for each reference, feature extractor and set of metrics)."""
    return dict(_floor(point.reference, point.extractor, point.metric_names))


@functools.cache
def _floor(reference: str, extractor: str, metric_names: tuple[str, ...]) -> dict[str, float]:
    held_out = HELD_OUT.get(reference)
    if held_out is None:
        return {}
    return measure(reference_images(held_out), reference_images(reference), reference, list(metric_names), extractor)


@dataclass
class Progress:
    """Callbacks the CLI uses to draw progress bars; the library itself never prints."""

    start_point: Callable[[Point, int], None] = lambda point, total: None
    sampled: Callable[[int], None] = lambda n: None


def run_point(model: Checkpoint, point: Point, batch: int, device: str, progress: Progress,
              meter: Meter) -> dict[str, Any] | None:
    """Sample this process's batches of the point and extract their features (only features are kept); the first
    process measures the features of all processes, in sample order, and returns the row's measurements."""
    spec = get_sampler(point.sampler)
    # An unreachable budget fails here, on every process, before any work.
    resolve_final_step(class_conditioned(model, [point.seed], point.guidance_scale), spec.name, point.nfe,
                       point.final_step, **point.options)  # type: ignore[arg-type]
    mine = distributed.shard(point.samples, batch)
    features: list[tuple[int, Features]] = []
    plan: dict[str, Any] = {}
    sampling_seconds = 0.0
    progress.start_point(point, sum(stop - start for start, stop in mine))
    begin = time.perf_counter()
    for start, stop in mine:
        tick = time.perf_counter()
        seeds = range(point.seed + start, point.seed + stop)  # class-conditional: label seed % classes
        run = generate(class_conditioned(model, seeds, point.guidance_scale), spec.name, point.nfe, seeds,
                       model.sample_shape, schedule=point.schedule, final_step=point.final_step,  # type: ignore[arg-type]
                       device=device, dtype=DTYPES[point.dtype], **point.options)
        images = to_uint8(decode(model, run.samples).float())  # a latent checkpoint's samples through its VAE
        sampling_seconds += time.perf_counter() - tick
        # Every batch spends the same schedule (generate() has checked its counted NFE); keep the first's.
        plan = plan or {"counted_nfe": run.counted_nfe, "steps": run.steps, "final_step_used": run.final_step}
        features.append((start, meter.features(images)))
        progress.sampled(stop - start)
    gathered = distributed.gather(features)
    if gathered is None:
        return None
    in_order = [batch_features for _, batch_features in sorted(chain(*gathered), key=lambda item: item[0])]
    metrics = meter.score(concat(in_order), reference_images(point.reference), point.reference)
    wall = time.perf_counter() - begin
    return {"status": "ok", **plan, "metrics": metrics, "processes": len(gathered),
            "wall_seconds": round(wall, 3), "sampling_seconds": round(sampling_seconds, 3),
            "metric_seconds": round(wall - sampling_seconds, 3)}


def base_row(point: Point, batch: int, device: str) -> dict[str, Any]:
    """A point's results row without its measurements: config, provenance, reference and floor."""
    held_out = HELD_OUT.get(point.reference)
    return {"key": point.key(), **asdict(point), **schedule_record(point.schedule), "requested_nfe": point.nfe,
            "batch": batch, "device": device,
            "versions": versions(), "reference_samples": len(reference_images(point.reference)),
            "floor": floor(point), "floor_samples": len(reference_images(held_out)) if held_out else 0}


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
    """Run every point not yet in ``results``; returns the rows of this sweep (old and new), in order.

    Under ``torchrun`` the processes share each point's batches; the first one writes the results file."""
    progress = progress or Progress()
    distributed.join(device)
    grid = list(points(checkpoint, samplers, schedules, nfes, samples, seed, **common))
    file = ResultsFile(results)
    done = distributed.share({row["key"]: row for row in file.rows() if "key" in row})
    model = load(checkpoint) if any(p.key() not in done for p in grid) else None
    if isinstance(model, torch.nn.Module):
        model.to(device)
    rows: list[dict[str, Any]] = []
    meters: dict[tuple[str, tuple[str, ...]], Meter] = {}
    for point in grid:
        if point.key() in done:
            rows.append(done[point.key()])
            continue
        assert model is not None
        if (point.extractor, point.metric_names) not in meters:
            meters[point.extractor, point.metric_names] = Meter(point.metric_names, point.extractor,
                                                                cuda=device.startswith("cuda"))
        try:
            measured = run_point(model, point, batch, device, progress, meters[point.extractor, point.metric_names])
        except UnreachableNFEError as exc:
            measured = {"status": "unreachable", "reason": str(exc)}
        row: dict[str, Any] = {}  # on the other processes, replaced by the first one's row
        if distributed.rank() == 0:
            assert measured is not None  # the first process measures every point
            row = {**base_row(point, batch, device), **measured}
            file.append(row)
        rows.append(distributed.share(row))
    return rows
