"""The benchmark harness's own cost: the share of a sweep's wall time spent outside denoiser calls and feature
extraction, and peak memory as ``--samples`` grows.

Each measurement is a real ``harness.sweep`` of one point in a fresh process. The timing run wraps the loaded
checkpoint so every denoiser call is timed, and times ``Meter.features`` (feature extraction) and ``Meter.score``
(FID/KID from features, torch-fidelity's maths); the rest of the wall time is the harness's overhead. The memory
runs record peak RSS, the Python heap's peak (tracemalloc, numpy included) and the peak bytes of live tensors
(all tensors reachable from Python, scanned after every batch). Writes results/harness-overhead.md.

    python benchmarks/harness_overhead.py [--checkpoint digits] [--sampler dpmpp_2m] [--nfe 10 35] \
        [--samples 2000] [--memory-samples 500 1000 2000 4000] [--out results/harness-overhead.md]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import shlex
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

import samplerzoo as sz
from samplerzoo.bench import harness
from samplerzoo.bench.metrics import Meter

MB = 2**20


class Clock:
    """Seconds spent inside ``with clock:`` blocks (CUDA work is waited for)."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def __enter__(self) -> None:
        self._sync()
        self._start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self._sync()
        self.seconds += time.perf_counter() - self._start

    @staticmethod
    def _sync() -> None:
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()


class TimedDenoiser:
    """A loaded checkpoint whose calls are timed; every attribute is the checkpoint's."""

    def __init__(self, inner: Any, clock: Clock) -> None:
        self.inner, self.clock = inner, clock

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor, **cond: Any) -> torch.Tensor:
        with self.clock:
            return self.inner(x, sigma, **cond)

    def __getattr__(self, name: str) -> Any:
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)


def timed(fn: Callable[..., Any], clock: Clock) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with clock:
            return fn(*args, **kwargs)
    return wrapper


def live_tensor_bytes() -> int:
    """Bytes of the storages of every tensor reachable from Python (views counted once)."""
    storages = {}
    for obj in gc.get_objects():
        if isinstance(obj, torch.Tensor) and obj.device.type == "cpu":
            storage = obj.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
    return sum(storages.values())


def rss_mb() -> float:
    """This process's current resident set size."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MB


def one_sweep(args: argparse.Namespace, samples: int, nfe: int, folder: Path,
              progress: harness.Progress | None = None) -> dict[str, Any]:
    row = harness.sweep(args.checkpoint, [args.sampler], ["karras"], [nfe], samples, 0, folder / f"{samples}.jsonl",
                        batch=args.batch, device=args.device, progress=progress)[0]
    assert row["status"] == "ok", row
    return row


def timing_child(args: argparse.Namespace) -> dict[str, Any]:
    """One point with its denoiser calls, feature extraction and metric maths timed."""
    clocks = {name: Clock() for name in ("denoiser", "features", "metric")}
    load = harness.load

    def timed_load(name: str) -> TimedDenoiser:
        model = load(name)
        if isinstance(model, torch.nn.Module):
            model.to(args.device)
        return TimedDenoiser(model, clocks["denoiser"])

    harness.load = timed_load  # type: ignore[assignment]
    Meter.features = timed(Meter.features, clocks["features"])  # type: ignore[method-assign]
    Meter.score = timed(Meter.score, clocks["metric"])  # type: ignore[method-assign]
    with tempfile.TemporaryDirectory() as folder:
        one_sweep(args, 40, args.child_nfe, Path(folder))  # warm-up: lazy imports, reference features cached
        for clock in clocks.values():
            clock.seconds = 0.0
        begin = time.perf_counter()
        row = one_sweep(args, args.child_samples, args.child_nfe, Path(folder))
        wall = time.perf_counter() - begin
    return {"wall": wall, **{name: clock.seconds for name, clock in clocks.items()}, "fid": row["metrics"]["fid"]}


def memory_child(args: argparse.Namespace) -> dict[str, Any]:
    """One point with peak RSS, Python heap and live tensor bytes (after every batch) recorded."""
    live: list[int] = []
    model = sz.load(args.checkpoint)
    image_bytes = 4 * args.child_samples * int(torch.tensor(model.sample_shape).prod())
    del model
    before = rss_mb()
    tracemalloc.start()
    with tempfile.TemporaryDirectory() as folder:
        one_sweep(args, args.child_samples, args.child_nfe, Path(folder),
                  harness.Progress(sampled=lambda n: live.append(live_tensor_bytes())))
    heap = tracemalloc.get_traced_memory()[1]
    return {"rss_before": before, "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "heap": heap / MB, "tensors": max(live) / MB, "images": image_bytes / MB}


def child(args: argparse.Namespace, kind: str, samples: int, nfe: int) -> dict[str, Any]:
    """Run one measurement in a fresh process, so that its peak memory is its own."""
    command = [sys.executable, __file__, "--child", kind, "--child-samples", str(samples), "--child-nfe", str(nfe),
               "--checkpoint", args.checkpoint, "--sampler", args.sampler, "--batch", str(args.batch), "--device",
               args.device, "--threads", str(args.threads)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}  # numpy's BLAS (KID) too
    out = subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout
    return json.loads(out.splitlines()[-1])


def report(args: argparse.Namespace, timings: dict[int, dict[str, Any]], memory: dict[int, dict[str, Any]],
           load: float, seconds: float) -> str:
    command = "python benchmarks/harness_overhead.py " + shlex.join(sys.argv[1:])
    lines = [
        "# Harness overhead and memory", "",
        f"Command: `{command.strip()}` ({seconds:.0f} s).", "",
        f"Machine: {platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, {args.threads} torch thread(s), "
        f"device {args.device}; load average {load:.1f} when it started (shared with other jobs: absolute seconds "
        f"are inflated, shares less so). torch {torch.__version__}, samplerzoo {sz.__version__}.", "",
        f"## Time: one sweep point of `{args.checkpoint}`, {args.sampler}, {args.samples} samples, batch {args.batch}",
        "",
        "A `harness.sweep` call of one point (model loading, floor, sampling, features, FID/KID, results file) "
        "after a warm-up sweep, with its parts timed. *Overhead* is everything except denoiser calls and feature "
        "extraction (the issue's definition): the samplers' own step math, seeded noise, uint8 conversion, "
        "model loading, the floor's bookkeeping, the results file and the FID/KID maths, which is shown on its own "
        "line as well.", "",
        "| NFE | wall s | denoiser s | features s | FID/KID maths s | rest s | overhead (all but denoiser and "
        "features) | overhead without the FID/KID maths |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for nfe, t in timings.items():
        rest = t["wall"] - t["denoiser"] - t["features"] - t["metric"]
        lines.append(f"| {nfe} | {t['wall']:.2f} | {t['denoiser']:.2f} | {t['features']:.3f} | {t['metric']:.3f} | "
                     f"{rest:.3f} | {100 * (rest + t['metric']) / t['wall']:.1f}% | {100 * rest / t['wall']:.1f}% |")
    lines += [
        "", f"## Memory as `--samples` grows (NFE {args.memory_nfe})", "",
        "Peak RSS of the whole process, its RSS before the sweep (after imports), the Python heap's peak "
        "(tracemalloc: numpy's FID/KID arrays included, torch's tensors not), and the peak bytes of live tensors "
        "(scanned after every batch: the model, the reference, one batch and the features so far). *Images* is what "
        "the samples would take if they were kept (float32): the harness keeps only their features.", "",
        "| samples | peak RSS MB | RSS before the sweep MB | Python heap peak MB | live tensors peak MB | "
        "images if kept MB |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for samples, m in memory.items():
        lines.append(f"| {samples} | {m['peak_rss']:.0f} | {m['rss_before']:.0f} | {m['heap']:.1f} | "
                     f"{m['tensors']:.2f} | {m['images']:.2f} |")
    (n0, first), (n1, last) = min(memory.items()), max(memory.items())
    per_sample = (last["tensors"] - first["tensors"]) * MB / (n1 - n0)
    lines += ["", f"From {n0} to {n1} samples live tensors grow by {per_sample:.0f} bytes a sample (the features "
              f"kept: a float32 per feature dimension; the images would add {first['images'] * MB / n0:.0f}), and "
              f"peak RSS changes by {last['peak_rss'] - first['peak_rss']:+.0f} MB."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default="digits")
    parser.add_argument("--sampler", default="dpmpp_2m")
    parser.add_argument("--nfe", type=int, nargs="+", default=[10, 35])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--memory-samples", type=int, nargs="+", default=[500, 1000, 2000, 4000])
    parser.add_argument("--memory-nfe", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("results/harness-overhead.md"))
    parser.add_argument("--child", choices=["timing", "memory"], help=argparse.SUPPRESS)
    parser.add_argument("--child-samples", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child-nfe", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.child:
        print(json.dumps((timing_child if args.child == "timing" else memory_child)(args)))
        return
    begin, load = time.perf_counter(), os.getloadavg()[0]
    timings = {nfe: child(args, "timing", args.samples, nfe) for nfe in args.nfe}
    memory = {n: child(args, "memory", n, args.memory_nfe) for n in args.memory_samples}
    text = report(args, timings, memory, load, time.perf_counter() - begin)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)


if __name__ == "__main__":
    main()
