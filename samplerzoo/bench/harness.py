"""One sweep: for each (sampler, schedule, NFE) point, sample N images from per-sample seeds with exactly
the requested NFE (counted), batch by batch into torch-fidelity features, measure the features, and append
the finished point to the results file. Finished points are skipped when the same sweep runs again.

Everything is checked before the first sample (names, counts, sampler options, guidance, dtype, the results file,
the reference-feature cache). A point whose samples hold NaN or inf is recorded as ``nonfinite``, with no metrics.
Sweeps sharing a results file split its points: each point is claimed while it is computed (see results.py)."""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from importlib.metadata import version
from itertools import chain
from pathlib import Path
from typing import Any

from torch import Tensor

from ..acceleration import accelerate
from ..checkpoints import load
from ..checks import positive
from ..data import digits, to_uint8
from ..denoiser import Checkpoint, Denoiser, decode
from ..errors import NonFiniteError, SamplerzooError, UnknownNameError, UnreachableNFEError
from ..finite import count_nonfinite
from ..guidance import condition, require_unconditional
from ..plugins import get_sampler, guidance_method, provenance
from ..precision import DTYPES, dtype_named, in_dtype
from ..sampling import generate, nonfinite_reason, sampler_levels, sampling_plan
from ..schedule_files import schedule_record
from . import distributed
from .grid import Point, points
from .metrics import Features, Meter, TensorImages, concat
from .prompts import PromptSet
from .references import DIGITS, Reference, resolve
from .results import ResultsFile
from .shards import shard

__all__ = ["DTYPES", "Progress", "base_row", "reference_images", "run_point", "sweep"]


def conditioned(model: Checkpoint, point: Point, seeds: Sequence[int], prompts: PromptSet | None) -> Denoiser:
    """The model conditioned as the point asks: its labels or the sweep's prompts, its guidance scale and rule."""
    return condition(model, seeds, labels=point.labels, prompts=prompts.prompts if prompts else None,
                     negative_prompts=prompts.negative_prompts if prompts else None,
                     guidance_scale=point.guidance_scale, distilled_guidance=point.distilled_guidance,
                     guidance=guidance_method(point.guidance, point.guidance_options))


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
    prompts: PromptSet | None = None
    fast_path: dict[str, bool] = field(default_factory=dict)
    """``compile`` and ``channels_last`` as the network ran (recorded in each row; they do not change the images
    beyond float tolerance, so they are not part of a point's key)."""

    def meter(self, point: Point) -> Meter:
        return self.meters[point.extractor, point.extractor_weights, point.metric_names]

    def floor(self, point: Point) -> dict[str, float]:
        return self.floors[point.reference, point.extractor, point.extractor_weights, point.metric_names,
                           point.samples]


@dataclass(frozen=True)
class Batch:
    """What a point keeps of one sampled batch: its plan, its non-finite count and its features, never its samples."""

    plan: dict[str, Any]
    nonfinite: int
    first_nonfinite_step: int | None
    features: Features | None
    sampling_seconds: float


def sample_batch(model: Checkpoint, point: Point, seeds: Sequence[int], device: str, meter: Meter,
                 prompts: PromptSet | None, score: bool) -> Batch:
    """One batch sampled, decoded (a latent checkpoint's VAE decodes in chunks) and reduced to features; its latents
    and images are freed on return, so a point holds one batch at a time whatever its number of samples."""
    tick = time.perf_counter()
    run = generate(conditioned(model, point, seeds, prompts), point.sampler, point.nfe, seeds, model.sample_shape,
                   schedule=point.schedule, final_step=point.final_step,  # type: ignore[arg-type]
                   device=device, dtype=DTYPES[point.dtype], noise=point.noise,  # type: ignore[arg-type]
                   schedule_options=point.schedule_options, **point.options)
    seconds = time.perf_counter() - tick
    images = decode(model, run.samples)
    bad = count_nonfinite(run.samples, images)
    # counted_nfe: denoiser calls per sample (the budget); forwards: network forward passes per sample (CFG: 2x).
    plan = {"counted_nfe": run.counted_nfe, "forwards": run.forwards, "steps": run.steps,
            "final_step_used": run.final_step}
    features = meter.features(to_uint8(images.float())) if score and not bad else None
    return Batch(plan, bad, run.first_nonfinite_step, features, seconds)


def run_point(model: Checkpoint, point: Point, batch: int, device: str, progress: Progress,
              meter: Meter, reference: Reference | None = None, prompts: PromptSet | None = None
              ) -> dict[str, Any] | None:
    """Sample this process's batches of the point and extract their features (only features are kept); the first
    process measures the features of all processes, in sample order, and returns the row's measurements. Samples
    holding NaN or inf are counted, never scored: the point is then ``nonfinite``."""
    reference = reference or resolve(point.reference)
    # An unreachable budget fails here, on every process, before any work.
    sampling_plan(conditioned(model, point, [point.seed], prompts), point.sampler, point.nfe, point.schedule,
                  point.final_step, **point.options)  # type: ignore[arg-type]
    mine = distributed.shard(point.samples, batch)
    features: list[tuple[int, Features]] = []
    plan: dict[str, Any] = {}
    sampling_seconds, nonfinite, first_steps = 0.0, 0, []
    progress.start_point(point, sum(stop - start for start, stop in mine))
    begin = time.perf_counter()
    for start, stop in mine:
        seeds = range(point.seed + start, point.seed + stop)  # class-conditional: label seed % classes
        # once a sample is not finite the point is not scored: no more features
        done = sample_batch(model, point, seeds, device, meter, prompts, score=not nonfinite)
        sampling_seconds += done.sampling_seconds
        plan = plan or done.plan  # every batch spends the same schedule (generate() has checked its counted NFE)
        nonfinite += done.nonfinite
        first_steps += [] if done.first_nonfinite_step is None else [done.first_nonfinite_step]
        if done.features is not None and not nonfinite:
            features.append((start, done.features))
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


def prompt_fields(prompts: PromptSet | None) -> dict[str, Any]:
    """Where a row's prompts came from (its key has their hash): the file, the number of prompts and the negative
    prompts."""
    if prompts is None:
        return {}
    return {"prompts_file": prompts.source, "prompt_count": len(prompts.prompts),
            "negative_prompts": list(prompts.negative_prompts or ())}


def point_provenance(point: Point) -> dict[str, dict[str, str]]:
    """The plugin (and its distribution's name and version) that provided the point's sampler, schedule, guidance
    rule and checkpoint; a checkpoint given as a path records the path."""
    try:
        checkpoint = provenance("checkpoint", point.checkpoint)
    except UnknownNameError:
        checkpoint = {"path": point.checkpoint}
    return {"sampler": provenance("sampler", point.sampler), "schedule": provenance("schedule", point.schedule),
            "checkpoint": checkpoint, "guidance": provenance("guidance", point.guidance)}


def prepare(checkpoint: str, pending: list[Point], batch: int, device: str, prompts: PromptSet | None = None,
            compile: bool = False, channels_last: bool = False) -> Setup:
    """Make the meters, read (or compute and cache) the reference features and floors, then load and cast the
    model, check its conditioning (labels, prompts, guidance) and, if asked, compile it or put it in channels-last
    memory (acceleration.py): everything that can fail does so before the first sample."""
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
    first = pending[0]
    model, precision = in_dtype(load(checkpoint), dtype_named(first.dtype), device, labels=first.labels,
                                prompts=prompts.prompts if prompts else None,
                                negative_prompts=prompts.negative_prompts if prompts else None,
                                guidance_scale=first.guidance_scale, distilled_guidance=first.distilled_guidance)
    for point in {(p.labels, p.guidance_scale, p.distilled_guidance, p.guidance, json.dumps(p.guidance_options)): p
                  for p in pending}.values():
        conditioned(model, point, [0], prompts)  # labels, prompts or a guidance scale the model cannot take fail here
    for point in pending:
        spec = get_sampler(point.sampler)
        if spec.needs_unconditional:  # CFG++ needs classifier-free guidance
            require_unconditional(conditioned(model, point, [0], prompts), point.sampler)
        sigmas = check_plan(model, point)
        if spec.check is not None:
            spec.check(tuple(model.sample_shape), model=model, compiled=compile,
                       sigmas=None if sigmas is None else sampler_levels(spec, sigmas), **point.options)
    model = accelerate(model, compile=compile, channels_last=channels_last, device=device,
                       dtype=dtype_named(first.dtype), batch=min(batch, first.samples), labels=first.labels,
                       prompts=prompts.prompts if prompts else None,
                       negative_prompts=prompts.negative_prompts if prompts else None,
                       guidance_scale=first.guidance_scale, distilled_guidance=first.distilled_guidance)
    return Setup(model, precision, batch, device, meters, references, floors, prompts,
                 {"compile": compile, "channels_last": channels_last})


def check_plan(model: Checkpoint, point: Point) -> Tensor | None:
    """The point's sigmas, built now so a schedule that cannot serve it (a schedule file tuned for another NFE)
    fails before the first sample; None for an unreachable NFE, which stays the point's own status."""
    try:
        return sampling_plan(model, point.sampler, point.nfe, point.schedule, point.final_step,  # type: ignore[arg-type]
                             **point.options)[1]
    except UnreachableNFEError:
        return None


def measure_point(point: Point, setup: Setup, file: ResultsFile, progress: Progress) -> dict[str, Any]:
    """Run the point and append its row (the first process writes it; the others get it)."""
    try:
        measured = run_point(setup.model, point, setup.batch, setup.device, progress, setup.meter(point),
                             setup.references[point.reference], setup.prompts)
    except UnreachableNFEError as exc:
        measured = {"status": "unreachable", "reason": str(exc)}
    except NonFiniteError as exc:  # an adaptive solver cannot go on: no sample of the point is usable
        measured = {"status": "nonfinite", "nonfinite_samples": None, "first_nonfinite_step": None,
                    "reason": f"{exc}; not scored"}
    row: dict[str, Any] = {}  # on the other processes, replaced by the first one's row
    if distributed.rank() == 0:
        assert measured is not None  # the first process measures every point
        row = {**base_row(point, setup), "precision": setup.precision, **setup.fast_path, **measured,
               **prompt_fields(setup.prompts)}
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
          prompts: PromptSet | None = None, compile: bool = False, channels_last: bool = False,
          shard_of: tuple[int, int] = (1, 1), **common: Any) -> list[dict[str, Any]]:
    """Run every point not yet in ``results``; returns the rows of this sweep (old and new), in order. ``prompts``
    condition a text model (sample with seed s takes prompt s mod P); ``labels`` (in ``common``) a class-conditional
    one.

    ``shard_of=(I, K)`` keeps shard I of K of the grid (shards.py): K jobs given 1/K .. K/K run the whole sweep
    between them, into one results file. ``compile`` and ``channels_last`` choose the network's fast path.

    Under ``torchrun`` the processes share each point's batches; the first one writes the results file. A point
    another process is computing is left to it and its row read back once it is done (or computed here, if that
    process stopped without writing it)."""
    progress = progress or Progress()
    positive("samples", samples, "samples per point")
    positive("batch", batch, "samples per batch")
    distributed.join(device)
    if common.get("labels") is not None:
        common["labels"] = tuple(common["labels"])
    grid = shard(list(points(checkpoint, samplers, schedules, nfes, samples, seed,
                             prompts=prompts.identity if prompts else None, **common)), *shard_of)
    file = ResultsFile(results)
    first = distributed.rank() == 0
    done = distributed.share(file.finished() if first else {})
    pending = [point for point in grid if point.key() not in done]
    setup = prepare(checkpoint, pending, batch, device, prompts, compile, channels_last) if pending else None
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
