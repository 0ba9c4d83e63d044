"""Per-NFE overhead of every registered sampler against k-diffusion's and diffusers' equivalents.

The overhead of a sampler is the wall time of a whole sampling run with a trivial denoiser (one elementwise
multiply, D(x, sigma) = 0.9 x; on the diffusers side an epsilon network eps(x, t) = 0 x of the same cost),
divided by the number of denoiser calls: what the sampler's own step math, Python and noise cost per call.

Run from the repository root::

    python benchmarks/overhead.py [--batch 16] [--shape 3 32 32] [--nfe 21] [--repeats 15] \
        [--noise-batches 16 100 500 2000] [--noise-shapes 1x8x8 3x32x32] [--out results/overhead.md]

It also times the per-sample noise sources alone (per draw, over a run of ``--nfe`` draws for a batch:
``CounterNoise``, generate()'s default, against ``SeededNoise``'s generator per sample and a plain ``torch.randn``
of the batch) at each ``--noise-batches`` size and ``--noise-shapes`` sample shape.

The sampler -> k-diffusion / diffusers mapping is read from each sampler's ``reference`` string
("k_diffusion.sampling.sample_x(kw=...)", "diffusers.XScheduler(kw=...)"; keyword arguments the target does
not accept are dropped), plus the small explicit table ``EXTRA`` where the reference does not say enough.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib
import importlib.metadata
import importlib.util
import io
import math
import os
import platform
import pstats
import shlex
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import diffusers
import torch
from overhead_sides import (
    DIFFUSERS_BASE,
    OPTIONS,
    SIGMA_RANGE,
    Prepare,
    Side,
    Trivial,
    counted,
    describe,
    diffusers_side,
    k_diffusion,
    k_sampling,
    measure,
    ours,
    reachable,
    references,
)
from torch import Tensor

import samplerzoo as sz
from samplerzoo.noise import CounterNoise, SeededNoise

warnings.filterwarnings("ignore", category=DeprecationWarning)  # diffusers' numpy 2 warnings
warnings.filterwarnings("ignore", category=FutureWarning)

def noise_sides(batch: int, shape: tuple[int, ...], draws: int) -> dict[str, Side]:
    """``draws`` draws for the whole batch from one source of each kind, timed per draw (a sampling run's noise);
    seeds hashed and generators seeded outside the timer."""
    seeds = range(batch)

    def run(make: Callable[[], CounterNoise | SeededNoise]) -> Prepare:
        def prepare() -> Callable[[], object]:
            source = make()
            return lambda: [source.randn() for _ in range(draws)]
        return prepare

    return {"counter": Side(run(lambda: CounterNoise(seeds, shape)), nfe=draws),
            "torch": Side(run(lambda: SeededNoise(seeds, shape)), nfe=draws),
            "randn": Side(lambda: lambda: [torch.randn(batch, *shape) for _ in range(draws)], nfe=draws)}


def noise_table(batches: list[int], shapes: list[tuple[int, ...]], draws: int, repeats: int,
                warmup: int) -> list[str]:
    """Microseconds per draw of each noise source over a run of ``draws``, per sample shape and batch size."""
    lines = ["| sample shape | batch | CounterNoise us/draw | SeededNoise us/draw | torch.randn us/draw "
             "| SeededNoise / CounterNoise |", "|---|---:|---:|---:|---:|---:|"]
    for shape in shapes:
        for batch in batches:
            sides = noise_sides(batch, shape, draws)
            measure(list(sides.values()), repeats, warmup)
            counter, seeded, randn = (sides[k].per_nfe_us() for k in ("counter", "torch", "randn"))
            lines.append(f"| {'x'.join(map(str, shape))} | {batch} | {counter:.1f} | {seeded:.1f} | {randn:.1f} "
                         f"| {seeded / counter:.2f} |")
            print(lines[-1], flush=True)
    return lines


def profile(prepare: Prepare, runs: int = 20, top: int = 8) -> str:
    """cProfile of ``runs`` runs: the top functions by own time."""
    profiler = cProfile.Profile()
    for _ in range(runs):
        run = prepare()
        profiler.enable()
        run()
        profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs().sort_stats("tottime")
    stats.print_stats(top)
    lines = out.getvalue().splitlines()
    start = next(i for i, line in enumerate(lines) if "ncalls" in line)
    return "\n".join(line.rstrip() for line in lines[start:] if line.strip())


# ---------------------------------------------------------------------------------------------- report

@dataclass
class Row:
    name: str
    nfe: str
    ours: Side
    counter: Side
    seeded: Side
    k: Side | None
    d: Side | None
    k_name: str
    d_name: str
    stochastic: bool
    brownian: bool
    adaptive: bool
    setup: tuple[Tensor, Tensor, dict[str, Any]]  # sigmas, x0, options: for the profiles

    def ratio(self) -> float | None:
        return self.ours.per_nfe_us() / self.k.per_nfe_us() if self.k else None


def fmt(side: Side | None, nfe: int | None = None) -> str:
    if side is None:
        return "-"
    text = f"{side.per_nfe_us():.1f}"
    return text if nfe is None or side.nfe == nfe else f"{text} (NFE {side.nfe})"


def table(rows: list[Row]) -> list[str]:
    lines = ["| sampler | NFE | ours us/NFE (randn noise) | ours us/NFE (counter noise) | ours us/NFE (torch "
             "generators) | k-diffusion us/NFE | diffusers us/NFE | ours / k-diffusion |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        ratio = row.ratio()
        mark = ("" if not row.stochastic else " (B)" if row.brownian else "")
        lines.append(f"| {row.name}{' (adaptive)' if row.adaptive else ''} | {row.nfe} | {fmt(row.ours)} "
                     f"| {fmt(row.counter)}{mark} | {fmt(row.seeded)}{mark} | {fmt(row.k, row.ours.nfe)} "
                     f"| {fmt(row.d, row.ours.nfe)} "
                     f"| {'-' if ratio is None else f'{ratio:.2f}'} |")
    return lines


def machine() -> list[str]:
    def version(dist: str) -> str:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return "?"
    return [f"- platform: `{platform.platform()}`, processor `{platform.processor() or platform.machine()}`, "
            f"Python {platform.python_version()}",
            f"- torch {torch.__version__} (threads: {torch.get_num_threads()}), diffusers {version('diffusers')}, "
            f"k-diffusion {version('k-diffusion')}, samplerzoo {version('samplerzoo')}",
            f"- CPU count: {os.cpu_count()}; load average (1, 5, 15 min) at the end: "
            f"{', '.join(f'{v:.2f}' for v in os.getloadavg())}"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--shape", type=int, nargs=3, default=(3, 32, 32), metavar=("C", "H", "W"))
    parser.add_argument("--nfe", type=int, default=21, help="target NFE (each sampler: the nearest reachable)")
    parser.add_argument("--repeats", type=int, default=15, help="timed runs per side (median reported)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--profile", type=int, default=3, help="cProfile the N samplers with the worst ratio")
    parser.add_argument("--samplers", nargs="*", help="only these (default: all registered)")
    parser.add_argument("--noise-batches", type=int, nargs="*", default=[16, 100, 500, 2000],
                        help="batch sizes of the noise-source table (none: skip it)")
    parser.add_argument("--noise-shapes", nargs="*", default=["1x8x8", "3x32x32"], help="sample shapes, CxHxW")
    parser.add_argument("--out", type=Path, default=Path("results/overhead.md"))
    args = parser.parse_args(argv)
    noise_shapes = [tuple(int(n) for n in shape.split("x")) for shape in args.noise_shapes]
    command = shlex.join(["python", "benchmarks/overhead.py", *(sys.argv[1:] if argv is None else argv)])

    torch.set_num_threads(1)
    torch.manual_seed(0)
    diffusers.utils.logging.set_verbosity_error()  # its "Changing scheduler config" notices
    ks = k_sampling()
    model, net = Trivial(0.9), Trivial(0.0)
    began = time.perf_counter()
    rows: list[Row] = []
    names = args.samplers or list(sz.get_samplers())
    with torch.no_grad():
        for name in names:
            spec = sz.get_sampler(name)
            options = OPTIONS.get(spec.name, {})
            if spec.adaptive:
                nfe, steps = args.nfe, args.nfe
            else:
                nfe, steps = reachable(spec, args.nfe, options)
            sigmas = sz.get_schedule("karras")(steps, SIGMA_RANGE)
            x0 = torch.randn(args.batch, *args.shape) * float(sigmas[0])
            refs = references(spec, ks)
            mine, counter, seeded = (Side(ours(spec, model, x0, sigmas, options, kind))
                                     for kind in ("randn", "counter", "torch"))
            k_side = d_side = None
            k_name = d_name = ""
            if "k_diffusion" in refs:
                fn, kwargs = refs["k_diffusion"]
                k_side, k_name = Side(k_diffusion(fn, kwargs, model, x0, sigmas)), describe(fn, kwargs, {})
            if "diffusers" in refs:
                cls, config = refs["diffusers"]
                prepare, n = diffusers_side(cls, config, net, x0, nfe)
                d_side, d_name = Side(prepare), f"{describe(cls, config, DIFFUSERS_BASE)}, {n} steps"
            sides = [s for s in (mine, counter, seeded, k_side, d_side) if s is not None]
            for side in sides:
                side.nfe = counted(side, net if side is d_side else model)
            measure(sides, args.repeats, args.warmup)
            nfe_text = f"{mine.nfe}" if not spec.adaptive else f"{mine.nfe} (counted)"
            rows.append(Row(spec.name, nfe_text, mine, counter, seeded, k_side, d_side, k_name, d_name, spec.stochastic,
                            spec.brownian, spec.adaptive, (sigmas, x0, options)))
            print("  ".join(table([rows[-1]])[-1:]), f"[{time.perf_counter() - began:.0f} s]", flush=True)

        worst = sorted((r for r in rows if r.k), key=lambda r: -(r.ratio() or 0))[:args.profile]
        profiles = []
        for row in worst:
            spec = sz.get_sampler(row.name)
            sigmas, x0, options = row.setup
            fn, kwargs = references(spec, ks)["k_diffusion"]
            profiles.append((row, profile(ours(spec, model, x0, sigmas, options, "randn")),
                             profile(k_diffusion(fn, kwargs, model, x0, sigmas))))

        noise_lines = noise_table(args.noise_batches, noise_shapes, args.nfe, args.repeats, args.warmup)

    elapsed = time.perf_counter() - began
    lines = table(rows)
    print("\n".join(lines))
    slower = [r for r in rows if r.k and (r.ratio() or 0) > 1.05]
    faster = [r for r in rows if r.k and (r.ratio() or math.inf) < 0.95]
    even = [r for r in rows if r.k and r not in slower and r not in faster]
    floor_x, floor_sigma = torch.randn(args.batch, *args.shape), torch.ones(args.batch)
    floor = Side(lambda: lambda: [model(floor_x, floor_sigma) for _ in range(args.nfe)], nfe=args.nfe)
    measure([floor], 50, 5)
    doc = [
        "# Per-NFE overhead: samplerzoo vs k-diffusion and diffusers",
        "",
        "Wall time of one sampling run with a trivial denoiser (D(x, sigma) = 0.9 x; diffusers: an epsilon network "
        "eps(x, t) = 0 x, the same one multiply), divided by the number of denoiser calls (NFE): what the "
        "sampler's own step arithmetic, Python and noise draws cost per call. Lower is better.",
        "",
        f"Command: `{command}` (batch {args.batch} of {'x'.join(map(str, args.shape))}, float32, CPU, "
        f"`torch.set_num_threads(1)`, `torch.no_grad()`; target NFE {args.nfe}, each sampler at its nearest "
        f"reachable budget on a Karras schedule from 80 to 0.002, then 0; median of {args.repeats} timed runs per "
        f"column after {args.warmup} warm-up runs; total {elapsed:.0f} s).",
        "",
        *machine(),
        "",
        "**Noisy machine.** The host has 2 CPU cores and was running two long training jobs (`zoo train ...`) "
        "during the measurement, so single timings are noisy. Every round runs all columns of a sampler once, "
        "back to back in a rotating order (ours with each noise, k-diffusion, diffusers), and the table gives "
        "medians over the rounds, so the columns of one row saw the same background load; compare within a row. "
        "Differences under ~10% are within the noise (the two 'ours' columns of a deterministic sampler run the "
        "same code and show its size).",
        "",
        "Columns:",
        "",
        "- **ours (randn noise)**: `spec.fn(model, x, sigmas, noise=lambda s, sn: torch.randn_like(x))`, the "
        "like-for-like comparison: k-diffusion gets the same `noise_sampler` (it is k-diffusion's own "
        "`default_noise_sampler`), also for dpmpp_sde / dpmpp_2m_sde / dpmpp_3m_sde, whose k-diffusion default "
        "would be a Brownian tree.",
        "- **ours (counter noise)**: what `sz.generate` uses by default: `CounterNoise` (every sample's draw hashed "
        "from its seed and the draw's index, the whole batch at once), or, marked (B), `BrownianTreeNoise` (a "
        "virtual Brownian tree per sample, normals hashed for the whole batch at once) for the samplers "
        "registered as `brownian`. Identical to the first column for deterministic samplers, which draw no noise.",
        "- **ours (torch generators)**: `sz.generate(noise=\"torch\")`: `SeededNoise` (one `torch.Generator` per "
        "sample, draws stacked: batch-size many randn calls per draw), or (B) the same Brownian tree.",
        "- **k-diffusion**: the function named in the sampler's `reference`, same sigmas, same x, "
        "`disable=True` (no tqdm bar). Empty where k-diffusion 0.1.1 has no equivalent (ComfyUI-only "
        "functions, `DPMSolver` methods).",
        "- **diffusers**: the scheduler named in the `reference` (or `EXTRA` in the script), linear betas "
        "1e-4..0.02 over 1000 steps, Karras sigmas where the scheduler supports them, no clipping, and the "
        "pipeline loop `scale_model_input -> net -> step(..., return_dict=False)` (ScoreSdeVe: "
        "`step_correct`/`step_pred`); the number of inference steps whose call count is nearest ours "
        "(shown when it differs). Its sigmas are its own, which does not matter for this cost; "
        "`set_timesteps` is outside the timer (as our schedule is). Stochastic schedulers draw with their "
        "default (global) generator.",
        "- **ours / k-diffusion**: ratio of the first column to the k-diffusion column (> 1: ours slower).",
        "",
        *lines,
        "",
        "## Noise sources alone",
        "",
        f"Standard normals for the whole batch, {args.nfe} draws from one source (a sampling run's noise), per "
        "draw (float32, CPU, one thread), median of the rounds (each round runs the three back to back): "
        "`CounterNoise(seeds, shape).randn()` (generate()'s default: "
        "every element hashed from its seed and the draw's index), `SeededNoise(seeds, shape).randn()` "
        "(`noise=\"torch\"`: one `torch.Generator` per sample, a Python loop over the batch) and a plain "
        "`torch.randn(batch, *shape)` (one generator for the batch: no per-sample seeds, the floor).",
        "",
        *noise_lines,
        "",
        "Mapping used:",
        "",
        *[f"- {r.name}: k-diffusion `{r.k_name or '-'}`; diffusers `{r.d_name or '-'}`" for r in rows],
        "",
        "## Summary",
        "",
        f"- Against k-diffusion ({len(slower) + len(faster) + len(even)} samplers with an equivalent): ours is "
        f"slower by more than 5% for {', '.join(f'{r.name} ({r.ratio():.2f}x)' for r in slower) or 'none'}; "
        f"faster by more than 5% for {', '.join(f'{r.name} ({r.ratio():.2f}x)' for r in faster) or 'none'}; "
        f"within 5% for {', '.join(r.name for r in even) or 'none'}.",
        f"- Floor: the trivial denoiser alone (a multiply of the batch, {args.nfe} calls in a loop) takes "
        f"{floor.per_nfe_us():.1f} us per call (median of 50, measured after the table); the cheapest sampler spends "
        f"{min(r.ours.per_nfe_us() for r in rows):.1f} us per call in all.",
        "",
        "### Profiles of the worst ratios (cProfile, 20 runs each, top functions by own time)",
        "",
        "Tensor arithmetic operators (`x * w`, `a + b`, also on 0-dim tensors) are not function calls to cProfile: "
        "their time is the own time (tottime) of the Python function that executes them.",
        "",
    ]
    for row, mine_text, theirs_text in profiles:
        doc += [f"**{row.name}** (ours / k-diffusion = {row.ratio():.2f})", "", "ours:", "", "```", mine_text, "```",
                "", f"k-diffusion `{row.k_name}`:", "", "```", theirs_text, "```", ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(doc) + "\n")
    print(f"wrote {args.out} ({elapsed:.0f} s)")


if __name__ == "__main__":
    main()
