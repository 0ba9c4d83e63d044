"""Sampling throughput (images x NFE per second) of ``generate()`` against the pure-forward limit, for each
combination of the network's fast path: torch.compile, channels-last memory, inference mode or no_grad, dtype, and
classifier-free guidance's two branches in one batched forward or two.

The limit is the network alone: the inputs of the network's first call in the run are recorded, and the network
is timed on them, NFE times in a row (x2 forwards a call under guidance), with the same fast path; so
``ratio = throughput / limit`` is the share of a run's time spent in the network; "ratio in CPU time" is the
same in this process's CPU seconds, the figure to read on a shared CPU (wall time there mostly measures the other
processes). Each figure is the median of ``--repeats`` timed runs after one warm-up (whose compilation is timed on
its own as "compile s").

Run from the repository root (CPU, a few minutes without --compile; each compiled combination adds its compile
time, about 7 minutes for the digits UNet on a loaded 2-core CPU)::

    python benchmarks/throughput.py [--checkpoint digits] [--sampler euler] [--nfe 10] [--batch 128] \
        [--compile off on] [--channels-last off on] [--grad inference no_grad] [--dtype float32 bfloat16] \
        [--cfg-checkpoint digits-latent --guidance-scale 3] [--device cpu] [--out results/throughput.md] [--append]
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from samplerzoo import sampling
from samplerzoo.acceleration import accelerate, network_holder
from samplerzoo.checkpoints import load
from samplerzoo.guidance import ClassifierFreeGuidance, condition
from samplerzoo.precision import dtype_named, in_dtype

GRAD_MODES: dict[str, Callable[[], AbstractContextManager[Any]]] = {"inference": torch.inference_mode,
                                                                     "no_grad": torch.no_grad}


@dataclass(frozen=True)
class Combination:
    checkpoint: str
    sampler: str
    nfe: int
    batch: int
    compile: bool = False
    channels_last: bool = False
    grad: str = "inference"
    dtype: str = "float32"
    guidance_scale: float | None = None
    cfg_batched: bool = True
    device: str = "cpu"
    prompt: str | None = None
    """for a text-conditioned checkpoint"""
    label: str = ""
    """how the table names the checkpoint (default: its name)"""

    def request(self) -> dict[str, Any]:
        """What the checkpoint is conditioned on (Checkpoint.condition's keywords)."""
        prompts = {"prompts": [self.prompt]} if self.prompt is not None else {}
        return {**prompts, "guidance_scale": self.guidance_scale}


@dataclass
class Figures:
    combination: Combination
    throughput: float
    """images x NFE per second of generate()"""
    limit: float
    """images x NFE per second of the network forwards alone"""
    cpu_throughput: float
    """images x NFE per CPU second of this process"""
    cpu_ratio: float
    """the same ratio in CPU time of this process (all its threads): on a shared CPU, where wall time mostly
    measures the other processes, the robust figure"""
    compile_seconds: float
    peak_memory_mb: float | None
    finite: bool

    @property
    def ratio(self) -> float:
        return self.throughput / self.limit


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


class Recorder(nn.Module):
    """The network, with the arguments of its first call kept (for the forward-only limit)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.first: tuple[tuple[Any, ...], dict[str, Any]] | None = None

    def forward(self, *args: Any, **kwargs: Any) -> Tensor:
        if self.first is None:
            self.first = (args, kwargs)
        return self.net(*args, **kwargs)


@contextmanager
def grad_mode(name: str) -> Iterator[None]:
    """generate() with autograd turned off by ``name`` (sampling.no_autograd, restored after)."""
    default = sampling.no_autograd
    sampling.no_autograd = GRAD_MODES[name]  # type: ignore[assignment]
    try:
        yield
    finally:
        sampling.no_autograd = default


def timed(run: Callable[[], object], device: str, repeats: int) -> tuple[float, float]:
    """The median wall time and the median CPU time (this process) of ``repeats`` runs (CUDA work waited for)."""
    wall, cpu = [], []
    for _ in range(repeats):
        synchronize(device)
        start, start_cpu = time.perf_counter(), time.process_time()
        run()
        synchronize(device)
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall), statistics.median(cpu)


def measure(c: Combination, repeats: int = 3) -> Figures:
    """Throughput and forward limit of one combination, on a freshly loaded checkpoint."""
    dtype = dtype_named(c.dtype)
    model, _ = in_dtype(load(c.checkpoint), dtype, c.device, prompts=None if c.prompt is None else [c.prompt])
    seeds = range(c.batch)
    start = time.perf_counter()
    accelerate(model, compile=c.compile, channels_last=c.channels_last, device=c.device, dtype=dtype,
               batch=c.batch, **{**c.request(), **({} if c.cfg_batched else {"guidance_scale": None})})
    synchronize(c.device)
    compile_seconds = time.perf_counter() - start if c.compile else 0.0
    holder = network_holder(model)
    assert holder is not None
    recorder = Recorder(holder.net)  # type: ignore[arg-type]
    holder.net = recorder
    denoiser = condition(model, seeds, **c.request())
    guidance = getattr(denoiser, "model", None)
    if isinstance(guidance, ClassifierFreeGuidance):
        guidance.batched = c.cfg_batched

    def run() -> sampling.Generation:
        return sampling.generate(denoiser, c.sampler, c.nfe, seeds, model.sample_shape, device=c.device,
                                 dtype=dtype)

    if c.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    with grad_mode(c.grad):
        finite = run().finite  # warm-up (and a compiled network's recompilation for a new shape, if any)
        seconds, cpu_seconds = timed(run, c.device, repeats)
    assert recorder.first is not None
    args, kwargs = recorder.first
    holder.net = recorder.net
    forwards = c.nfe * (2 if c.guidance_scale not in (None, 1) and not c.cfg_batched else 1)
    with GRAD_MODES[c.grad]():
        limit_seconds, limit_cpu = timed(lambda: [recorder.net(*args, **kwargs) for _ in range(forwards)], c.device,
                                         repeats)
    peak = torch.cuda.max_memory_allocated() / 2**20 if c.device.startswith("cuda") else None
    work = c.batch * c.nfe
    return Figures(c, work / seconds, work / limit_seconds, work / cpu_seconds, limit_cpu / cpu_seconds,
                   compile_seconds, peak, finite)


def row(f: Figures) -> str:
    c = f.combination
    cfg = "-" if c.guidance_scale is None else f"{c.guidance_scale:g}, {'batched' if c.cfg_batched else 'two'}"
    memory = "-" if f.peak_memory_mb is None else f"{f.peak_memory_mb:.0f}"
    status = "" if f.finite else " (NaN/inf samples: not a valid run)"
    return (f"| {c.label or c.checkpoint} | {c.batch} | {c.dtype} | {'on' if c.compile else 'off'} | "
            f"{'on' if c.channels_last else 'off'} | {c.grad} | {cfg} | {f.throughput:,.0f} | {f.limit:,.0f} | "
            f"{f.ratio:.2f}{status} | {f.cpu_throughput:,.0f} | {f.cpu_ratio:.2f} | {f.compile_seconds:.0f} | "
            f"{memory} |")


HEADER = ["| checkpoint | batch | dtype | compile | channels-last | autograd off by | CFG | img x NFE/s | "
          "forward limit | ratio | img x NFE per CPU s | ratio in CPU time | compile s | peak MiB |",
          "|" + "---|" * 14]


def machine() -> str:
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    gpu = f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return (f"{platform.platform()}, {os.cpu_count()} CPUs{gpu}, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), Python {platform.python_version()}; load average (1, 5, 15 min) "
            f"at the end: {load}")


def combinations(args: argparse.Namespace) -> list[Combination]:
    on = {"on": True, "off": False}
    grid = [Combination(args.checkpoint, args.sampler, args.nfe, batch, on[compile], on[channels_last], grad, dtype,
                        device=args.device)
            for batch, compile, channels_last, grad, dtype in itertools.product(
                args.batch, args.compile, args.channels_last, args.grad, args.dtype)]
    if args.cfg_checkpoint:
        grid += [Combination(args.cfg_checkpoint, args.sampler, args.nfe, args.batch[0], grad="inference",
                             guidance_scale=args.guidance_scale, cfg_batched=batched, device=args.device)
                 for batched in (True, False)]
    return grid


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default="digits")
    parser.add_argument("--sampler", default="euler")
    parser.add_argument("--nfe", type=int, default=10)
    parser.add_argument("--batch", type=int, nargs="+", default=[128])
    parser.add_argument("--compile", nargs="+", choices=("off", "on"), default=["off", "on"])
    parser.add_argument("--channels-last", nargs="+", choices=("off", "on"), default=["off", "on"])
    parser.add_argument("--grad", nargs="+", choices=tuple(GRAD_MODES), default=list(GRAD_MODES))
    parser.add_argument("--dtype", nargs="+", default=["float32", "bfloat16"])
    parser.add_argument("--cfg-checkpoint", default="digits-latent", help="'' to skip the guidance rows")
    parser.add_argument("--guidance-scale", type=float, default=3.0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("results/throughput.md"))
    parser.add_argument("--append", action="store_true", help="add this run's table to --out")
    args = parser.parse_args(argv)
    lines = [f"`python benchmarks/throughput.py {shlex.join(sys.argv[1:] if argv is None else argv)}` "
             f"({args.sampler}, NFE {args.nfe}, median of {args.repeats})", "", *HEADER]
    print("\n".join(lines), flush=True)
    for combination in combinations(args):
        lines.append(row(measure(combination, args.repeats)))
        print(lines[-1], flush=True)
    lines += ["", f"Machine: {machine()}.", ""]
    print(lines[-2])
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        before = args.out.read_text() + "\n" if args.append and args.out.is_file() else ""
        args.out.write_text(before + "\n".join(lines))


if __name__ == "__main__":
    main()
