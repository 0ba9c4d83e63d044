"""AMED-Solver on digits: fit the shipped predictors, then FID against the other few-step solvers at NFE 3-10.

For each NFE (with and without the analytical first step) it fits the predictor unless the file exists (zoo
train-amed's fit: Heun teacher with one level between, 10,000 trajectories seeded from --seed, kept apart from the
sweep's seeds 0..samples-1), then sweeps amed (which finds the shipped predictor fitted to each run's levels) and
the comparison solvers with the harness into one results file, and writes a Markdown table of FID with each fit's
held-out distance to its teacher and its cost.

    python benchmarks/amed.py
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

from samplerzoo.amed import AmedPredictor, load_predictor, save_predictor
from samplerzoo.amed_training import Fit, fit_checkpoint
from samplerzoo.bench.harness import sweep

DIGITS_WEIGHTS = Path(__file__).resolve().parents[1] / "samplerzoo" / "weights" / "amed"


def fitted(args: argparse.Namespace, nfe: int, afs: bool) -> AmedPredictor:
    """The predictor for this run, fitted now unless an earlier run wrote it."""
    path = args.weights / f"{args.checkpoint}-{'afs-' if afs else ''}nfe{nfe}.safetensors"
    if not path.exists():
        fit = Fit(trajectories=args.trajectories, seed=args.seed)
        save_predictor(path, fit_checkpoint(args.checkpoint, nfe, fit, afs=afs, device=args.device))
    return load_predictor(path)


def fid(row: dict[str, Any] | None) -> str:
    if row is None:
        return "-"
    return f"{row['metrics']['fid']:.3f}" if row.get("status") == "ok" else f"- ({row.get('status')})"


def shown(path: Path) -> str:
    """``path`` relative to the repository where it is inside it."""
    root = DIGITS_WEIGHTS.parents[2]
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


def numbers(cells: list[str]) -> list[float]:
    return [float(c) for c in cells if c.replace(".", "", 1).isdigit()]


def bold_best(cells: list[str]) -> list[str]:
    """The lowest FID of a row in bold."""
    values = [float(c) if c.replace(".", "", 1).isdigit() else float("inf") for c in cells]
    best = min(values)
    return [f"**{c}**" if v == best and v < float("inf") else c for c, v in zip(cells, values, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default="digits")
    parser.add_argument("--nfe", type=int, nargs="+", default=[3, 4, 5, 6, 7, 8, 10])
    parser.add_argument("--afs-nfe", type=int, nargs="*", default=[3, 5, 7, 9])
    parser.add_argument("--compare", nargs="+", default=["dpm2", "heun", "ipndm", "dpmpp_2m", "unipc"])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--trajectories", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=1_000_000, help="the fits' first seed (apart from the sweep's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1: fastest on a busy CPU)")
    parser.add_argument("--weights", type=Path, default=DIGITS_WEIGHTS)
    parser.add_argument("--results", type=Path, default=Path("results/amed/bench.jsonl"))
    parser.add_argument("--out", type=Path, default=Path("results/amed.md"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    begin = time.perf_counter()
    runs = [(nfe, False) for nfe in args.nfe] + [(nfe, True) for nfe in args.afs_nfe]
    fits = {run: fitted(args, *run).info.training or {} for run in runs}
    rows = sweep(args.checkpoint, ["amed", *args.compare], ["karras"], sorted(set(args.nfe)), args.samples, 0,
                 args.results, batch=args.batch, device=args.device)
    rows += sweep(args.checkpoint, ["amed"], ["karras"], args.afs_nfe, args.samples, 0, args.results,
                  batch=args.batch, device=args.device, options=[{"afs": True}])
    by_point = {(r["sampler"], r["nfe"], bool(r["options"].get("afs"))): r for r in rows}
    solvers = ["amed", "amed afs", *args.compare]
    lines = ["| NFE | " + " | ".join(solvers) + " |", "|---:|" + "---:|" * len(solvers)]
    wins = []
    for nfe in sorted(set(args.nfe) | set(args.afs_nfe)):
        cells = [fid(by_point.get(("amed", nfe, False))), fid(by_point.get(("amed", nfe, True))),
                 *(fid(by_point.get((name, nfe, False))) for name in args.compare)]
        lines.append(f"| {nfe} | " + " | ".join(bold_best(cells)) + " |")
        ours, others = numbers(cells[:2]), numbers(cells[2:])
        if ours and others:
            wins.append((nfe, min(ours) < min(others), min(ours) / min(others)))
    best = [str(nfe) for nfe, won, _ in wins if won]
    if wins:
        ratios = [ratio for *_, ratio in wins]
        lines += ["", f"An amed variant scores the lowest FID at {len(best)} of the {len(wins)} NFE where both it "
                  f"and the compared solvers ran ({', '.join(best) or 'none'}); its FID is {min(ratios):.2f}-"
                  f"{max(ratios):.2f} times the best compared solver's."]
    fit_lines = ["| predictor | distance to teacher, fitted | midpoint rule (= dpm2) | fit seconds |",
                 "|---|---:|---:|---:|"]
    for (nfe, afs), info in fits.items():
        errors = info.get("endpoint_error", {})
        fit_lines.append(f"| {args.checkpoint}-{'afs-' if afs else ''}nfe{nfe} | {errors.get('fitted', 0):.3f} | "
                         f"{errors.get('midpoint', 0):.3f} | {info.get('seconds', 0):.0f} |")
    header = [f"# AMED-Solver on {args.checkpoint}: FID against the few-step solvers", "",
              f"Command: `{' '.join(['python', 'benchmarks/amed.py', *sys.argv[1:]])}`", "",
              f"Machine: {platform.machine()}, Python {platform.python_version()}, {args.threads} thread(s); "
              f"{args.samples} samples a point (seeds 0..{args.samples - 1}), karras schedule, FID on the digits "
              f"classifier's features (lower is better, the row's best in bold); wall time of this run "
              f"{time.perf_counter() - begin:.0f} s (points already in {args.results} and predictors already in "
              f"{shown(args.weights)}/ are reused; each predictor records its fit, and the first run took about 20 "
              "minutes). `amed afs` is amed with "
              "afs=true (diff-sampler's recommended setting), each with its own predictor.", ""]
    fit_header = ["", "## The predictors", "",
                  f"Fitted by distillation (Heun teacher, one level between; {args.trajectories} trajectories "
                  f"from seed {args.seed}); the distance is the mean L2 distance per sample between the solver's "
                  "output and the teacher's on 256 held-out trajectories, for the fitted predictor and for the "
                  "midpoint rule r = 1/2, c = 1 (an unfitted AMED step: DPM-Solver-2).", ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(header + lines + fit_header + fit_lines) + "\n")
    print("\n".join([*lines, "", *fit_lines]))


if __name__ == "__main__":
    main()
