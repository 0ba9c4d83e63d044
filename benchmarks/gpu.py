"""One command for one GPU: samplerzoo's speed on the device, written to results/gpu.md.

1. Per-call sampler overhead against k-diffusion and diffusers on the device (benchmarks/overhead_sides.py's trivial
   denoiser D = 0.9 x, so the step math, Python and noise are all that is timed; every run waits for the device).
2. Host-device synchronisation inside a step: each sampler is run under ``torch.cuda.set_sync_debug_mode("warn")``
   at two budgets and the synchronising calls are counted; (calls at the larger - calls at the smaller) / (steps
   difference) is the number per step, which must be 0 (an adaptive solver's step-size control needs 1). On a CPU
   the same question is asked on the ``meta`` device: a sampler that reads a value of its state back to the host
   (``.item()``, ``float(x)``, ``if x > 0``) fails there, since a meta tensor has no values.
3. Throughput of generate() against the network-only limit (benchmarks/throughput.py) at each ``--batch`` for the
   digits UNet and for a tiny Stable-Diffusion-style pipeline (UNet2DConditionModel + CLIP text encoder + VAE,
   randomly initialised here, as in tests/pipeline_builders.py), in each ``--dtype``, with torch.compile off and
   on (the compiled rows at the largest batch in float16, to fit the time), with peak device memory.

Run on a machine with one H100/H200 (about 5 minutes; ``--budget`` stops starting new rows after that many
seconds and says which were left out)::

    python benchmarks/gpu.py                      # --device cuda, writes results/gpu.md

and on a CPU, as CI does (tests/test_gpu_benchmark.py), in a tiny configuration::

    python benchmarks/gpu.py --smoke --out /tmp/gpu.md

No GPU was lent to the session that wrote this script, so results/gpu.md is not in the repository yet: run the
first command on a GPU and commit the file it writes.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]  # throughput.py and overhead_sides.py; the tiny pipeline builder

import overhead_sides  # noqa: E402
import throughput  # noqa: E402

from samplerzoo.noise import BrownianTreeNoise, CounterNoise  # noqa: E402
from samplerzoo.plugins import get_sampler, get_schedule  # noqa: E402
from samplerzoo.sampling import sampling_plan  # noqa: E402

SAMPLERS = ["euler", "heun", "euler_ancestral", "dpmpp_2m", "dpmpp_sde", "dpmpp_3m_sde", "uni_pc", "ipndm",
            "lms", "restart", "dpm_adaptive"]


class Clock:
    """Elapsed seconds since the start, against a budget."""

    def __init__(self, budget: float) -> None:
        self.start, self.budget = time.perf_counter(), budget

    def left(self) -> bool:
        return time.perf_counter() - self.start < self.budget

    def elapsed(self) -> float:
        return time.perf_counter() - self.start


# ---------------------------------------------------------------------------------------------- 1. overhead

def synced(prepare: overhead_sides.Prepare, device: str) -> overhead_sides.Prepare:
    """The run waits for the device at its end (the timer starts after prepare, on an idle device)."""
    def ready() -> Callable[[], object]:
        run = prepare()
        throughput.synchronize(device)

        def run_and_wait() -> None:
            run()
            throughput.synchronize(device)
        return run_and_wait
    return ready


def overhead_rows(samplers: list[str], batch: int, shape: tuple[int, ...], nfe: int, repeats: int,
                  device: str) -> list[str]:
    ks = overhead_sides.k_sampling()
    rows = []
    for name in samplers:
        spec = get_sampler(name)
        options = overhead_sides.OPTIONS.get(spec.name, {})
        if spec.adaptive:
            continue
        target, steps = overhead_sides.reachable(spec, nfe, options)
        model = overhead_sides.Trivial()
        sigmas = get_schedule("karras")(steps, overhead_sides.SIGMA_RANGE)
        x0 = torch.randn(batch, *shape, device=device) * float(sigmas[0])
        sides: dict[str, overhead_sides.Side] = {
            "samplerzoo": overhead_sides.Side(synced(counter_run(spec, model, x0, sigmas, options), device))}
        refs = overhead_sides.references(spec, ks)
        if "k_diffusion" in refs:
            fn, kwargs = refs["k_diffusion"]
            k_run = overhead_sides.k_diffusion(fn, kwargs, model, x0, sigmas)
            sides["k-diffusion"] = overhead_sides.Side(synced(k_run, device))
        if "diffusers" in refs:
            cls, config = refs["diffusers"]
            prepare, _ = overhead_sides.diffusers_side(cls, config, model, x0, target)
            sides["diffusers"] = overhead_sides.Side(synced(prepare, device))
        for side in sides.values():
            side.nfe = overhead_sides.counted(side, model)
        overhead_sides.measure(list(sides.values()), repeats, warmup=1)
        us = {k: f"{s.per_nfe_us():.0f}" for k, s in sides.items()}
        rows.append(f"| {spec.name} | {target} | {us['samplerzoo']} | {us.get('k-diffusion', '-')} | "
                    f"{us.get('diffusers', '-')} |")
    return rows


def counter_run(spec: Any, model: Any, x0: Tensor, sigmas: Tensor, options: dict[str, Any]) -> overhead_sides.Prepare:
    """Our sampler with generate()'s noise on x0's device: CounterNoise, or the Brownian tree for SDE samplers."""
    seeds, shape, device = range(x0.shape[0]), x0.shape[1:], x0.device
    lowest = float(sigmas[sigmas > 0].min())

    def prepare() -> Callable[[], object]:
        x = x0.clone()
        noise = (BrownianTreeNoise(seeds, shape, lowest, float(sigmas[0]), device=device) if spec.brownian
                 else CounterNoise(seeds, shape, device=device))
        return lambda: spec.fn(model, x, sigmas, noise=noise, **options)
    return prepare


# ---------------------------------------------------------------------------------------------- 2. syncs

def synchronisations(run: Callable[[], object]) -> int:
    """The synchronising CUDA calls ``run`` makes (torch's sync debug mode, one warning each)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            run()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


def sampler_run(name: str, nfe: int, batch: int, shape: tuple[int, ...], device: str) -> tuple[Callable[[], object],
                                                                                                  int]:
    """A sampling run of ``name`` at ``nfe`` on ``device`` as generate() makes it (minus the final NaN count), and
    its number of steps."""
    spec = get_sampler(name)
    model = overhead_sides.Trivial()
    options = overhead_sides.OPTIONS.get(spec.name, {})
    _, sigmas = sampling_plan(model, spec.name, overhead_sides.reachable(spec, nfe, options)[0], "karras", **options)
    seeds = range(batch)
    x = CounterNoise(seeds, shape, device=device).randn() * float(sigmas[0])
    noise = (BrownianTreeNoise(seeds, shape, float(sigmas[sigmas > 0].min()), float(sigmas[0]), device=device)
             if spec.brownian else CounterNoise(seeds, shape, device=device))
    return (lambda: spec.fn(model, x, sigmas, noise=noise, **options)), len(sigmas) - 1


def sync_rows(samplers: list[str], batch: int, shape: tuple[int, ...], device: str) -> list[str]:
    rows = []
    for name in samplers:
        spec = get_sampler(name)
        if spec.adaptive:
            rows.append(f"| {spec.name} | adaptive: step-size control reads its error estimate (k-diffusion's too) "
                        "| - |")
            continue
        if device.startswith("cuda"):
            (small, small_steps), (large, large_steps) = (sampler_run(name, n, batch, shape, device) for n in (10, 20))
            small(), large()  # warm-up: first-call allocations
            per_step = (synchronisations(large) - synchronisations(small)) / max(1, large_steps - small_steps)
            rows.append(f"| {spec.name} | {per_step:g} per step | cuda sync debug mode |")
            continue
        run, _ = sampler_run(name, 10, batch, shape, "meta")
        try:
            run()
            rows.append(f"| {spec.name} | 0 (no host read of the state) | meta device |")
        except (RuntimeError, NotImplementedError) as exc:
            rows.append(f"| {spec.name} | reads the state back: {str(exc).splitlines()[0][:80]} | meta device |")
    return rows


# ---------------------------------------------------------------------------------------------- 3. throughput

def tiny_sd(folder: Path) -> Path:
    """A tiny randomly-initialised Stable Diffusion pipeline, saved (the tests' builder)."""
    import pipeline_builders
    from diffusers import EulerDiscreteScheduler

    return pipeline_builders.stable_diffusion(folder / "tiny-sd", EulerDiscreteScheduler(**pipeline_builders.SD_BETAS))


def throughput_combinations(args: argparse.Namespace, sd: Path) -> list[throughput.Combination]:
    models = [("digits", None, "digits"), (str(sd), "a photo of a cat", "tiny SD")]
    grid = [throughput.Combination(path, args.sampler, args.nfe, batch, dtype=dtype, device=args.device,
                                   prompt=prompt, label=label)
            for path, prompt, label in models for dtype in args.dtype for batch in args.batch]
    if args.compile:
        grid += [throughput.Combination(path, args.sampler, args.nfe, max(args.batch), compile=True,
                                        dtype=args.dtype[-1], device=args.device, prompt=prompt, label=label)
                 for path, prompt, label in models]
    return grid


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--smoke", action="store_true", help="a tiny CPU configuration (CI)")
    parser.add_argument("--samplers", nargs="+", default=SAMPLERS)
    parser.add_argument("--overhead-batch", type=int, default=16)
    parser.add_argument("--batch", type=int, nargs="+", default=[256, 1024, 2048])
    parser.add_argument("--dtype", nargs="+", default=["float32", "bfloat16", "float16"])
    parser.add_argument("--sampler", default="dpmpp_2m", help="the sampler of the throughput rows")
    parser.add_argument("--nfe", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-compile", dest="compile", action="store_false")
    parser.add_argument("--budget", type=float, default=300.0, help="seconds after which no new row is started")
    parser.add_argument("--out", type=Path, default=Path("results/gpu.md"))
    args = parser.parse_args(argv)
    if args.smoke:
        args.samplers, args.batch, args.dtype, args.nfe = ["euler"], [2], ["float32"], 2
        args.repeats, args.compile, args.overhead_batch = 1, False, 2
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda, but no CUDA device is available; accepted: --device cpu (or --smoke)")
    clock = Clock(args.budget)
    shape = (3, 32, 32)
    command = f"python benchmarks/gpu.py {shlex.join(sys.argv[1:] if argv is None else argv)}"
    lines = [f"# samplerzoo on {args.device}", "", f"Command: `{command}`", "", f"Machine: {throughput.machine()}.",
             "", f"## Per-call sampler overhead (microseconds per denoiser call, batch {args.overhead_batch} x "
             f"{'x'.join(map(str, shape))}, trivial denoiser, median of {args.repeats})", "",
             "| sampler | NFE | samplerzoo | k-diffusion | diffusers |", "|---|---|---|---|---|"]
    lines += overhead_rows(args.samplers, args.overhead_batch, shape, 21, args.repeats, args.device)
    print(f"overhead measured ({clock.elapsed():.0f} s)", file=sys.stderr, flush=True)
    lines += ["", f"## Host-device synchronisation inside a step ({args.device})", "",
              "| sampler | synchronising calls | checked with |", "|---|---|---|"]
    lines += sync_rows(args.samplers, args.overhead_batch, shape, args.device)
    print(f"synchronisations counted ({clock.elapsed():.0f} s)", file=sys.stderr, flush=True)
    lines += ["", f"## Throughput against the forward limit ({args.sampler}, NFE {args.nfe}, median of "
              f"{args.repeats})", "", *throughput.HEADER]
    skipped = []
    with tempfile.TemporaryDirectory() as folder:
        sd = tiny_sd(Path(folder))
        print(f"tiny SD pipeline built ({clock.elapsed():.0f} s)", file=sys.stderr, flush=True)
        for combination in throughput_combinations(args, sd):
            if not clock.left():
                skipped.append(combination)
                continue
            lines.append(throughput.row(throughput.measure(combination, args.repeats)))
            print(lines[-1], flush=True)
    if skipped:
        lines += ["", f"Not measured (the {args.budget:.0f} s budget ran out): "
                  + "; ".join(f"{c.label} batch {c.batch} {c.dtype} compile {'on' if c.compile else 'off'}"
                              for c in skipped)]
    lines += ["", f"Total {clock.elapsed():.0f} s.", ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
