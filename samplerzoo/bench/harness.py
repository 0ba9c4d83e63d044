"""One sweep: for each (sampler, schedule, NFE) point, sample N images from per-sample seeds with exactly
the requested NFE (counted), batch by batch into torch-fidelity features, measure the features, and append
the finished point to the results file. Finished points are skipped when the same sweep runs again.

Everything is checked before the first sample (names, counts, sampler options, guidance, dtype, the results file,
the reference-feature cache). A point whose samples hold NaN or inf is recorded as ``nonfinite``, with no metrics.
Sweeps sharing a results file split its points: each point is claimed while it is computed (see results.py)."""

from __future__ import annotations

import contextlib
import json
import platform
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from importlib.metadata import version
from itertools import chain
from pathlib import Path
from typing import Any

from ..checkpoints import load
from ..checks import positive, unique
from ..data import digits, to_uint8
from ..denoiser import Checkpoint, decode
from ..errors import NonFiniteError, SamplerzooError, UnknownNameError, UnreachableNFEError
from ..finite import count_nonfinite
from ..guidance import class_conditioned, require_unconditional
from ..noise import NOISE_SOURCES
from ..plugins import get_sampler, get_schedule, provenance, schedule_name
from ..precision import DTYPES, dtype_named, in_dtype
from ..sampling import FINAL_STEPS, generate, nonfinite_reason, sampling_plan
from ..schedule_files import schedule_record
from . import distributed
from .extractors import check_extractor
from .metrics import DIGITS_EXTRACTOR, ISC_SPLITS, METRICS, PRC_NEIGHBOURS, Features, Meter, TensorImages, concat
from .references import DIGITS, Reference, resolve
from .results import ResultsFile

__all__ = ["DTYPES", "Point", "Progress", "base_row", "points", "reference_images", "run_point", "sweep"]
KEY_DEFAULTS: dict[str, Any] = {"extractor_weights": None, "schedule_options": {}, "reference_id": ""}
"""Fields a point's key leaves out at these values, so results files written before the fields existed resume."""


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
    noise: str = "counter"
    """generate()'s per-sample noise source (samplerzoo.noise.NOISE_SOURCES); rows without it were drawn by "torch"."""
    extractor_weights: str | None = None
    """The extractor's weights file as given (``None``: shipped, or torch-fidelity's download)."""
    schedule_options: dict[str, Any] = field(default_factory=dict)
    reference_id: str = ""
    """A folder's or npz's content hash (references.py): a changed reference is a different point."""

    def key(self) -> str:
        fields = {k: v for k, v in asdict(self).items() if k not in KEY_DEFAULTS or v != KEY_DEFAULTS[k]}
        return json.dumps(fields, sort_keys=True)


def versions() -> dict[str, str]:
    names = ("samplerzoo", "torch", "diffusers", "torch-fidelity")
    return {"python": platform.python_version(), **{n: version(n) for n in names}}


def reference_images(name: str) -> TensorImages:
    """The digits images of a digits reference (digits-train, digits-test)."""
    if name not in DIGITS:
        raise UnknownNameError("digits reference", name, DIGITS)
    return TensorImages(to_uint8(digits(DIGITS[name])[0]))


@dataclass
class Progress:
    """Callbacks the CLI uses to draw progress bars; the library itself never prints."""

    start_point: Callable[[Point, int], None] = lambda point, total: None
    sampled: Callable[[int], None] = lambda n: None
    finished: Callable[[Point, dict[str, Any]], None] = lambda point, row: None
    """A point's row is in the results file (measured by this sweep, or by another process meanwhile)."""
    start_sweep: Callable[[int, int], None] = lambda points, pending: None
    """The sweep has this many points, this many of them not yet in the results file; all checks have passed."""


@dataclass(frozen=True)
class Setup:
    """What a sweep prepares once, before it samples anything."""

    model: Checkpoint
    precision: str
    batch: int
    device: str
    meters: dict[tuple[str, str | None, tuple[str, ...]], Meter]
    references: dict[str, Reference]
    floors: dict[tuple[str, str, str | None, tuple[str, ...], int], dict[str, float]]

    def meter(self, point: Point) -> Meter:
        return self.meters[point.extractor, point.extractor_weights, point.metric_names]

    def floor(self, point: Point) -> dict[str, float]:
        return self.floors[point.reference, point.extractor, point.extractor_weights, point.metric_names,
                           point.samples]


def run_point(model: Checkpoint, point: Point, batch: int, device: str, progress: Progress,
              meter: Meter, reference: Reference | None = None) -> dict[str, Any] | None:
    """Sample this process's batches of the point and extract their features (only features are kept); the first
    process measures the features of all processes, in sample order, and returns the row's measurements. Samples
    holding NaN or inf are counted, never scored: the point is then ``nonfinite``."""
    spec = get_sampler(point.sampler)
    reference = reference or resolve(point.reference)
    # An unreachable budget fails here, on every process, before any work.
    sampling_plan(class_conditioned(model, [point.seed], point.guidance_scale), spec, point.nfe, point.schedule,
                  point.final_step, **point.options)  # type: ignore[arg-type]
    mine = distributed.shard(point.samples, batch)
    features: list[tuple[int, Features]] = []
    plan: dict[str, Any] = {}
    sampling_seconds, nonfinite, first_steps = 0.0, 0, []
    progress.start_point(point, sum(stop - start for start, stop in mine))
    begin = time.perf_counter()
    for start, stop in mine:
        tick = time.perf_counter()
        seeds = range(point.seed + start, point.seed + stop)  # class-conditional: label seed % classes
        run = generate(class_conditioned(model, seeds, point.guidance_scale), spec.name, point.nfe, seeds,
                       model.sample_shape, schedule=point.schedule, final_step=point.final_step,  # type: ignore[arg-type]
                       device=device, dtype=DTYPES[point.dtype], noise=point.noise,  # type: ignore[arg-type]
                       schedule_options=point.schedule_options, **point.options)
        sampling_seconds += time.perf_counter() - tick
        # Every batch spends the same schedule (generate() has checked its counted NFE); keep the first's.
        plan = plan or {"counted_nfe": run.counted_nfe, "steps": run.steps, "final_step_used": run.final_step}
        images = decode(model, run.samples)  # a latent checkpoint's samples through its VAE
        nonfinite += count_nonfinite(run.samples, images)
        first_steps += [] if run.first_nonfinite_step is None else [run.first_nonfinite_step]
        if not nonfinite:  # once a sample is not finite the point is not scored: no more features
            features.append((start, meter.features(to_uint8(images.float()))))
        progress.sampled(stop - start)
    gathered = distributed.gather((features, nonfinite, first_steps))
    if gathered is None:
        return None
    bad = sum(count for _, count, _ in gathered)
    measured: dict[str, Any]
    if bad:
        first = min((step for _, _, steps in gathered for step in steps), default=None)
        measured = {"status": "nonfinite", "nonfinite_samples": bad, "first_nonfinite_step": first,
                    "reason": nonfinite_reason(bad, point.samples, first, plan["steps"]) + "; not scored"}
    else:
        in_order = concat([batch_features for _, batch_features in sorted(chain(*(f for f, _, _ in gathered)),
                                                                          key=lambda item: item[0])])
        scored = {len(values) for values in in_order.values()}  # one row a sample, in every feature layer
        if scored != {point.samples}:
            raise SamplerzooError(f"{point.sampler} at NFE {point.nfe}: features of "
                                  f"{'/'.join(map(str, sorted(scored)))} samples to score, not the point's "
                                  f"{point.samples}")
        measured = {"status": "ok", "samples_scored": point.samples,
                    "metrics": meter.score(in_order, reference)}
    wall = time.perf_counter() - begin
    return {**measured, **plan, "processes": len(gathered), "wall_seconds": round(wall, 3),
            "sampling_seconds": round(sampling_seconds, 3), "metric_seconds": round(wall - sampling_seconds, 3)}


def base_row(point: Point, setup: Setup) -> dict[str, Any]:
    """A point's results row without its measurements: config, provenance, extractor weights, reference (kind,
    identity, image count) and the resampled floor at the point's sample count."""
    reference, meter = setup.references[point.reference], setup.meter(point)
    floor = setup.floor(point)
    return {"key": point.key(), **asdict(point), "requested_nfe": point.nfe, "batch": setup.batch,
            "device": setup.device, **schedule_record(point.schedule), "versions": versions(),
            "provenance": point_provenance(point),
            "extractor_weights_sha256": meter.weights_sha256, "reference_kind": reference.kind,
            "reference_id": reference.identity, "reference_samples": meter.reference_count(reference),
            "floor": floor, "floor_samples": point.samples if floor else 0,
            "floor_kind": "resampled" if floor else "none"}


def point_provenance(point: Point) -> dict[str, dict[str, str]]:
    """The plugin (and its distribution's name and version) that provided the point's sampler, schedule and
    checkpoint; a checkpoint given as a path records the path."""
    try:
        checkpoint = provenance("checkpoint", point.checkpoint)
    except UnknownNameError:
        checkpoint = {"path": point.checkpoint}
    return {"sampler": provenance("sampler", point.sampler), "schedule": provenance("schedule", point.schedule),
            "checkpoint": checkpoint}


def option_sets(options: dict[str, Any] | list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """One set of options, or a list of them (an axis of the sweep, like NFE)."""
    if options is None:
        return [{}]
    return [options] if isinstance(options, dict) else list(options) or [{}]


def points(checkpoint: str, samplers: list[str], schedules: list[str], nfes: list[int], samples: int, seed: int,
           **common: Any) -> Iterator[Point]:
    """The sweep's grid, checked before any work: names resolved (an alias, or a name given twice, runs once), NFE
    positive, the options taken by every sampler and schedule (with values of the types their signatures
    declare), the final step, noise source, metrics, extractor and reference known. ``options`` and
    ``schedule_options`` may be lists of option sets: sweep axes, like NFE."""
    sampler_names = unique("sampler", samplers, lambda name: get_sampler(name).name)
    schedule_names = unique("schedule", schedules, schedule_name)
    budgets = unique("NFE", [positive("NFE", nfe, "network evaluations") for nfe in nfes])
    sampler_sets, schedule_sets = option_sets(common.pop("options", None)), option_sets(
        common.pop("schedule_options", None))
    for name in sampler_names:
        for options in sampler_sets:
            get_sampler(name).check_options(options)
    for name in schedule_names:
        for options in schedule_sets:
            get_schedule(name).check_options(options)
    if common.get("final_step", "auto") not in FINAL_STEPS:
        raise UnknownNameError("final step", common["final_step"], FINAL_STEPS)
    if common.get("noise", "counter") not in NOISE_SOURCES:
        raise UnknownNameError("noise source", common["noise"], NOISE_SOURCES)
    for metric in common.get("metric_names", ()):
        if metric not in METRICS:
            raise UnknownNameError("metric", metric, METRICS)
    if "prc" in common.get("metric_names", ()) and samples <= PRC_NEIGHBOURS:
        raise SamplerzooError(f"--samples {samples}: prc (precision / recall, k = {PRC_NEIGHBOURS}) needs at least "
                              f"{PRC_NEIGHBOURS + 1} samples a point")
    if "isc" in common.get("metric_names", ()) and samples < ISC_SPLITS:
        raise SamplerzooError(f"--samples {samples}: isc (the Inception Score, over {ISC_SPLITS} splits) needs at "
                              f"least {ISC_SPLITS} samples a point")
    check_extractor(common.get("extractor", DIGITS_EXTRACTOR), common.get("extractor_weights"))
    reference = resolve(common.get("reference", "digits-train"))
    identity = reference.identity if reference.kind in ("folder", "npz") else ""
    for sampler in sampler_names:
        for options in sampler_sets:
            for schedule in schedule_names:
                for schedule_options in schedule_sets:
                    for nfe in budgets:
                        yield Point(checkpoint, sampler, schedule, nfe, samples, seed, options=options,
                                    schedule_options=schedule_options, reference_id=identity, **common)


def prepare(checkpoint: str, pending: list[Point], batch: int, device: str) -> Setup:
    """Make the meters, read (or compute and cache) the reference features and floors, then load and cast the
    model and check guidance: everything that can fail does so before the first sample."""
    meters: dict[tuple[str, str | None, tuple[str, ...]], Meter] = {}
    references: dict[str, Reference] = {}
    floors: dict[tuple[str, str, str | None, tuple[str, ...], int], dict[str, float]] = {}
    for point in pending:
        reference = references.get(point.reference) or references.setdefault(point.reference,
                                                                               resolve(point.reference))
        meter = meters.get((point.extractor, point.extractor_weights, point.metric_names))
        if meter is None:
            meter = meters[point.extractor, point.extractor_weights, point.metric_names] = Meter(
                point.metric_names, point.extractor, point.extractor_weights, cuda=device.startswith("cuda"))
        meter.check(reference)
        floor_key = (point.reference, point.extractor, point.extractor_weights, point.metric_names, point.samples)
        if floor_key not in floors:
            floors[floor_key] = meter.floor(reference, point.samples)
    model, precision = in_dtype(load(checkpoint), dtype_named(pending[0].dtype), device)
    for point in pending:
        conditioned = class_conditioned(model, [0], point.guidance_scale)  # a scale the model cannot take fails here
        if get_sampler(point.sampler).needs_unconditional:  # CFG++ needs classifier-free guidance
            require_unconditional(conditioned, point.sampler)
        check_plan(model, point)
    return Setup(model, precision, batch, device, meters, references, floors)


def check_plan(model: Checkpoint, point: Point) -> None:
    """Build the point's sigmas now, so a schedule that cannot serve it (a schedule file tuned for another NFE)
    fails before the first sample; an unreachable NFE stays the point's own status."""
    with contextlib.suppress(UnreachableNFEError):
        sampling_plan(model, point.sampler, point.nfe, point.schedule, point.final_step,  # type: ignore[arg-type]
                      **point.options)


def measure_point(point: Point, setup: Setup, file: ResultsFile, progress: Progress) -> dict[str, Any]:
    """Run the point and append its row (the first process writes it; the others get it)."""
    try:
        measured = run_point(setup.model, point, setup.batch, setup.device, progress, setup.meter(point),
                             setup.references[point.reference])
    except UnreachableNFEError as exc:
        measured = {"status": "unreachable", "reason": str(exc)}
    except NonFiniteError as exc:  # an adaptive solver cannot go on: no sample of the point is usable
        measured = {"status": "nonfinite", "nonfinite_samples": None, "first_nonfinite_step": None,
                    "reason": f"{exc}; not scored"}
    row: dict[str, Any] = {}  # on the other processes, replaced by the first one's row
    if distributed.rank() == 0:
        assert measured is not None  # the first process measures every point
        row = {**base_row(point, setup), "precision": setup.precision, **measured}
        file.append(row)
    return distributed.share(row)


@contextmanager
def claimed(file: ResultsFile, point: Point, wait: bool) -> Iterator[bool]:
    """Whether this sweep holds the point's claim for the block (under torchrun the first process claims for all)."""
    if distributed.rank() != 0:
        yield distributed.share(False)
        return
    with file.claim(point.key(), wait) as mine:
        yield distributed.share(mine)


def sweep(checkpoint: str, samplers: list[str], schedules: list[str], nfes: list[int], samples: int, seed: int,
          results: Path, batch: int = 500, device: str = "cpu", progress: Progress | None = None,
          **common: Any) -> list[dict[str, Any]]:
    """Run every point not yet in ``results``; returns the rows of this sweep (old and new), in order.

    Under ``torchrun`` the processes share each point's batches; the first one writes the results file. A point
    another process is computing is left to it and its row read back once it is done (or computed here, if that
    process stopped without writing it)."""
    progress = progress or Progress()
    positive("samples", samples, "samples per point")
    positive("batch", batch, "samples per batch")
    distributed.join(device)
    grid = list(points(checkpoint, samplers, schedules, nfes, samples, seed, **common))
    file = ResultsFile(results)
    first = distributed.rank() == 0
    done = distributed.share(file.finished() if first else {})
    pending = [point for point in grid if point.key() not in done]
    setup = prepare(checkpoint, pending, batch, device) if pending else None
    if first:
        file.check_writable()  # last: it makes the results file's folder
    progress.start_sweep(len(grid), len(pending))
    rows = {point.key(): done[point.key()] for point in grid if point.key() in done}

    def settle(point: Point) -> dict[str, Any]:
        """The point's row while this sweep holds its claim: found in the file, or measured and appended now."""
        row = distributed.share(file.find(point.key()) if first else None)
        if row is None:
            assert setup is not None
            row = measure_point(point, setup, file, progress)
        progress.finished(point, row)
        return row

    deferred = []
    for point in pending:
        with claimed(file, point, wait=False) as mine:
            if mine:
                rows[point.key()] = settle(point)
            else:
                deferred.append(point)
    for point in deferred:  # another process has them: wait for each, then read its row (or measure it here)
        with claimed(file, point, wait=True):
            rows[point.key()] = settle(point)
    return [rows[point.key()] for point in grid]
