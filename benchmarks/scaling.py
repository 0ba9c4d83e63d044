"""How a ``zoo bench`` point scales: wall time and peak memory against the number of samples (memory should stay
flat: the harness keeps features, not images), and wall time against the number of processes (``torchrun`` with
gloo on the CPU, nccl on GPUs: the processes share each point's batches). Writes results/scaling.md.

Every run is a fresh ``zoo bench`` process (or torchrun's process group) on an empty results file, after one
warm-up run that fills the reference-feature cache; peak memory is the largest resident set of the run's
processes (``wait4``). The row's own ``sampling_seconds`` (sampling only) is reported beside the wall time,
which includes start-up (importing torch: seconds on a loaded machine) and the FID/KID features; CPU seconds
(user + system, all processes) are the cost that does not depend on what else the machine runs.

Run from the repository root (about 5 minutes on an idle 2-core CPU with the defaults)::

    python benchmarks/scaling.py [--checkpoint digits] [--sampler euler] [--nfe 4] [--samples 250 500 1000 2000] \
        [--processes 1 2] [--process-samples 1000] [--batch 125] [--out results/scaling.md]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ZOO = [sys.executable, "-c", "from samplerzoo.cli import main; main()"]


def run(command: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    """(wall seconds, CPU seconds of the process and its children, their peak resident MiB) of ``command``."""
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise SystemExit(f"failed: {shlex.join(command)}\n{process.stderr.read().decode() if process.stderr else ''}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def bench(args: argparse.Namespace, samples: int, results: Path) -> list[str]:
    return ["bench", "--checkpoint", args.checkpoint, "--sampler", args.sampler, "--nfe", str(args.nfe),
            "--samples", str(samples), "--batch", str(args.batch), "--results", str(results)]


def sampling_seconds(results: Path) -> float:
    (row,) = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    assert row["status"] == "ok", row
    return float(row["sampling_seconds"])


def load() -> str:
    return ", ".join(f"{v:.1f}" for v in os.getloadavg())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default="digits")
    parser.add_argument("--sampler", default="euler")
    parser.add_argument("--nfe", type=int, default=4)
    parser.add_argument("--samples", type=int, nargs="+", default=[250, 500, 1000, 2000])
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--process-samples", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=125)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=Path("results/scaling.md"))
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="scaling-"))
    threads = max(1, (os.cpu_count() or 1) // max(args.processes))
    env = {**os.environ, "SAMPLERZOO_CACHE": str(folder / "cache"), "OMP_NUM_THREADS": str(threads)}
    run([*ZOO, *bench(args, args.batch, folder / "warm.jsonl")], env)  # fills the reference-feature cache
    lines = [f"Command: `python benchmarks/scaling.py {shlex.join(sys.argv[1:] if argv is None else argv)}`", "",
             f"{args.checkpoint}, {args.sampler}, NFE {args.nfe}, batch {args.batch}, {args.device}, "
             f"{threads} thread(s) a process (OMP_NUM_THREADS). Load average (1, 5, 15 min) is taken as each run "
             "ends: the machine is shared, so compare figures taken at a similar load.", "",
             "## Samples (one process)", "", "| samples | wall s | CPU s | sampling s | sampling ms / sample | "
             "peak RSS MiB | load average |", "|---|---|---|---|---|---|---|"]
    print("\n".join(lines), flush=True)
    for samples in args.samples:
        results = folder / f"samples-{samples}.jsonl"
        wall, cpu, peak = run([*ZOO, *bench(args, samples, results)], env)
        sampling = sampling_seconds(results)
        lines.append(f"| {samples} | {wall:.1f} | {cpu:.1f} | {sampling:.1f} | {1000 * sampling / samples:.2f} | "
                     f"{peak:.0f} | {load()} |")
        print(lines[-1], flush=True)
    lines += ["", f"## Processes (torchrun, {args.process_samples} samples)", "",
              "| processes | wall s | CPU s (all processes) | sampling s (first process) | speed-up of sampling | "
              "peak RSS MiB (largest process) | load average |", "|---|---|---|---|---|---|---|"]
    print("\n".join(lines[-4:]), flush=True)
    first_sampling = None
    for processes in args.processes:
        results = folder / f"processes-{processes}.jsonl"
        torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                    str(processes), "--no-python", *ZOO]
        wall, cpu, peak = run([*torchrun, *bench(args, args.process_samples, results), "--device", args.device], env)
        sampling = sampling_seconds(results)
        first_sampling = first_sampling or sampling
        lines.append(f"| {processes} | {wall:.1f} | {cpu:.1f} | {sampling:.1f} | {first_sampling / sampling:.2f} | "
                     f"{peak:.0f} | {load()} |")
        print(lines[-1], flush=True)
    lines += ["", f"Machine: {platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}.", ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("# Scaling of a zoo bench point\n\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
