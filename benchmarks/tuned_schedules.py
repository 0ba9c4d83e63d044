"""Tuned against karras: FID of one sampler at NFE 3-10 on the schedule ``zoo tune`` finds and on karras.

For each checkpoint and NFE it tunes the sampler's schedule (``zoo tune``'s search, seeded; the schedule files go
to --schedules), then sweeps both schedules with the harness (same seeds, same samples) into one results file per
checkpoint, and writes a Markdown table of FID, tuned next to karras, with each search's cost in NFE.

    python benchmarks/tuned_schedules.py --checkpoints digits digits-edm --sampler dpmpp_2m --method gits
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

from samplerzoo.bench.harness import sweep
from samplerzoo.schedule_files import read_schedule_file
from samplerzoo.tuning import Search, tune_checkpoint


def tuned_file(args: argparse.Namespace, checkpoint: str, nfe: int) -> Path:
    """The schedule file for this point, searched now unless an earlier run left it."""
    path = args.schedules / f"{checkpoint}-{args.sampler}-{args.method}-nfe{nfe}-seed{args.seed}.json"
    if not path.exists():
        search = Search(args.sampler, nfe, args.method, args.seed, args.trajectories, args.grid)
        tune_checkpoint(checkpoint, search, path, device=args.device)
    return path


def verdict(checkpoint: str, method: str, wins: list[tuple[int, bool]]) -> str:
    """One line per checkpoint: at which NFE the tuned schedule scored below karras."""
    better = [str(nfe) for nfe, won in wins if won]
    return (f"- {checkpoint}: {method} below karras at {len(better)} of {len(wins)} NFE"
            + (f" ({', '.join(better)})." if better else "."))


def fid(row: dict[str, Any]) -> str:
    return f"{row['metrics']['fid']:.3f}" if row.get("status") == "ok" else f"- ({row.get('status')})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoints", nargs="+", default=["digits", "digits-edm"])
    parser.add_argument("--sampler", default="dpmpp_2m")
    parser.add_argument("--method", default="gits", choices=["gits", "oss", "analytic-dpm"])
    parser.add_argument("--nfe", type=int, nargs="+", default=list(range(3, 11)))
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--trajectories", type=int, default=64)
    parser.add_argument("--grid", type=int, default=60)
    parser.add_argument("--seed", type=int, default=1_000_000,
                        help="the search's first seed (the sweeps use 0..samples-1, so the default keeps them apart)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1: fastest on a busy CPU)")
    parser.add_argument("--schedules", type=Path, default=Path("results/schedules"))
    parser.add_argument("--results", type=Path, default=Path("results/tuned"))
    parser.add_argument("--out", type=Path, default=Path("results/tuned-schedules.md"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.seed < args.samples:
        print(f"note: search seeds {args.seed}.. overlap the sweep's seeds 0..{args.samples - 1}", file=sys.stderr)
    begin = time.perf_counter()
    lines = [f"| checkpoint | NFE | karras FID | {args.method} FID | search cost (NFE x trajectories) |",
             "|---|---:|---:|---:|---:|"]
    verdicts = []
    for checkpoint in args.checkpoints:
        results = args.results / f"{checkpoint}.jsonl"
        wins = []
        for nfe in args.nfe:
            path = tuned_file(args, checkpoint, nfe)
            rows = sweep(checkpoint, [args.sampler], ["karras", f"file:{path}"], [nfe], args.samples, 0, results,
                         batch=args.batch, device=args.device)
            karras_row, tuned_row = rows
            if karras_row.get("status") == tuned_row.get("status") == "ok":
                wins.append((nfe, tuned_row["metrics"]["fid"] < karras_row["metrics"]["fid"]))
            cost = read_schedule_file(path).cost
            lines.append(f"| {checkpoint} | {nfe} | {fid(karras_row)} | {fid(tuned_row)} | "
                         f"{cost['nfe']} x {cost['trajectories']} |")
            print(lines[-1], f"({time.perf_counter() - begin:.0f} s so far)", flush=True)
        verdicts.append(verdict(checkpoint, args.method, wins))
    header = [f"# {args.sampler}: {args.method}-tuned schedule against karras", "",
              f"Command: `python benchmarks/tuned_schedules.py {' '.join(sys.argv[1:])}`", "",
              f"Machine: {platform.machine()}, Python {platform.python_version()}, {args.threads} thread(s); "
              f"{args.samples} samples a point "
              f"(seeds 0..{args.samples - 1}), FID on the digits classifier's features; search seeded at "
              f"{args.seed}, {args.trajectories} trajectories, grid {args.grid}; wall time of this run "
              f"{time.perf_counter() - begin:.0f} s (points already in the rows and schedule files already written are "
              f"reused; each file records its search's seconds). Rows: {args.results}/; schedule files: "
              f"{args.schedules}/.", ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(header + lines + [""] + verdicts) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
