"""AMED on digits: fit the shipped predictors, then FID against the other few-step solvers at NFE 3-10.

For each variant (AMED-Solver without and with the analytical first step, AMED-Plugin on iPNDM with it) and NFE it
fits the predictor unless the file exists (zoo train-amed's fit with diff-sampler's settings, 10,000 trajectories
seeded from --seed, kept apart from the sweep's seeds 0..samples-1), then sweeps the AMED solvers (which find the
shipped predictor fitted to each run's levels) and the comparison solvers with the harness into one results file, and
writes a Markdown table of FID with each fit's held-out distance to its teacher and its cost.

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

from samplerzoo.amed import AmedPredictor, load_predictor, predictor_name, save_predictor
from samplerzoo.amed_training import Fit, fit_checkpoint
from samplerzoo.bench.harness import sweep

DIGITS_WEIGHTS = Path(__file__).resolve().parents[1] / "samplerzoo" / "weights" / "amed"


VARIANTS = (("amed", False), ("amed", True), ("ipndm_amed", True))
"""The AMED solvers swept: AMED-Solver without and with afs, AMED-Plugin on iPNDM with afs (diff-sampler's settings)."""
SHIPPED = ("amed",)
"""The solvers whose digits predictors ship as the defaults; the others' go to --predictors and are passed to their
points by path (on digits the iPNDM plugin's fit moves it away from its teacher: see the table of fits)."""


def fit_settings(args: argparse.Namespace, solver: str) -> Fit:
    """diff-sampler's recommended fits: AMED-Solver from Heun, one level between; the iPNDM plugin from iPNDM, two
    levels between, with the time scale a_n within 20%."""
    if solver == "ipndm_amed":
        return Fit(teacher="ipndm", between=2, scale_time=0.2, trajectories=args.trajectories, seed=args.seed)
    return Fit(trajectories=args.trajectories, seed=args.seed)


def predictor_path(args: argparse.Namespace, solver: str, afs: bool, nfe: int) -> Path:
    folder = args.weights if solver in SHIPPED else args.predictors
    return folder / f"{predictor_name(args.checkpoint, solver, afs, nfe)}.safetensors"


def fitted(args: argparse.Namespace, solver: str, afs: bool, nfe: int) -> AmedPredictor:
    """The predictor for this run, fitted now unless an earlier run wrote it."""
    path = predictor_path(args, solver, afs, nfe)
    if not path.exists():
        predictor = fit_checkpoint(args.checkpoint, nfe, fit_settings(args, solver), afs=afs, device=args.device,
                                   solver=solver)
        save_predictor(path, predictor)
    return load_predictor(path)


def closer(fits: dict[tuple[str, bool, int], dict[str, Any]], shipped: bool) -> tuple[list[int], int]:
    """The NFE at which the fitted predictor ends closer to its teacher than the midpoint rule, and how many fits."""
    chosen = [(nfe, info["endpoint_error"]) for (solver, _, nfe), info in fits.items()
              if (solver in SHIPPED) == shipped]
    return [nfe for nfe, errors in chosen if errors["fitted"] < errors["midpoint"]], len(chosen)


def verdicts(args: argparse.Namespace, fits: dict[tuple[str, bool, int], dict[str, Any]],
             by_point: dict[tuple[str, int, bool], dict[str, Any]]) -> list[str]:
    """What the fits say: the shipped solver's predictors against the others' (their FID against plain ipndm's)."""
    shipped, count = closer(fits, True)
    other, other_count = closer(fits, False)
    fid_of = {key: row["metrics"]["fid"] for key, row in by_point.items() if row.get("status") == "ok"}
    both = [nfe for nfe in args.afs_nfe if ("ipndm", nfe, False) in fid_of and ("ipndm_amed", nfe, True) in fid_of]
    better = [nfe for nfe in both if fid_of[("ipndm_amed", nfe, True)] < fid_of[("ipndm", nfe, False)]]
    return [f"AMED-Solver's fitted predictor ends closer to its teacher than the midpoint rule at {len(shipped)} of "
            f"{count} fits. The iPNDM plugin's does at {len(other)} of {other_count} "
            f"({', '.join(f'NFE {n}' for n in other) or 'none'}), and its FID is below plain ipndm's at {len(better)} "
            f"of the {len(both)} NFE both ran ({', '.join(f'NFE {n}' for n in better) or 'none'}): on digits "
            "diff-sampler's recipe mostly does not pay for the plugin, so its predictors do not ship (they are in "
            f"{args.predictors}/ and the FID rows pass them by path)."]


def label(solver: str, afs: bool) -> str:
    return f"{solver}{' afs' if afs else ''}"


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
    parser.add_argument("--predictors", type=Path, default=Path("results/amed/predictors"),
                        help="where the predictors that do not ship go")
    parser.add_argument("--results", type=Path, default=Path("results/amed/bench.jsonl"))
    parser.add_argument("--out", type=Path, default=Path("results/amed.md"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    begin = time.perf_counter()
    runs = [(solver, afs, nfe) for solver, afs in VARIANTS for nfe in (args.afs_nfe if afs else args.nfe)]
    fits = {run: fitted(args, *run).info.training or {} for run in runs}
    rows = sweep(args.checkpoint, ["amed", *args.compare], ["karras"], sorted(set(args.nfe)), args.samples, 0,
                 args.results, batch=args.batch, device=args.device)
    rows += sweep(args.checkpoint, ["amed"], ["karras"], args.afs_nfe, args.samples, 0, args.results,
                  batch=args.batch, device=args.device, options=[{"afs": True}])
    for nfe in args.afs_nfe:  # a predictor that does not ship is given by its path
        options = {"afs": True, "predictor": shown(predictor_path(args, "ipndm_amed", True, nfe))}
        rows += sweep(args.checkpoint, ["ipndm_amed"], ["karras"], [nfe], args.samples, 0, args.results,
                      batch=args.batch, device=args.device, options=[options])
    by_point = {(r["sampler"], r["nfe"], bool(r["options"].get("afs"))): r for r in rows}
    solvers = [label(*variant) for variant in VARIANTS] + args.compare
    lines = ["| NFE | " + " | ".join(solvers) + " |", "|---:|" + "---:|" * len(solvers)]
    wins = []
    for nfe in sorted(set(args.nfe) | set(args.afs_nfe)):
        cells = [fid(by_point.get((solver, nfe, afs))) for solver, afs in VARIANTS]
        cells += [fid(by_point.get((name, nfe, False))) for name in args.compare]
        lines.append(f"| {nfe} | " + " | ".join(bold_best(cells)) + " |")
        ours, others = numbers(cells[:len(VARIANTS)]), numbers(cells[len(VARIANTS):])
        if ours and others:
            wins.append((nfe, min(ours) < min(others), min(ours) / min(others)))
    best = [str(nfe) for nfe, won, _ in wins if won]
    if wins:
        ratios = [ratio for *_, ratio in wins]
        lines += ["", f"An amed variant scores the lowest FID at {len(best)} of the {len(wins)} NFE where both it "
                  f"and the compared solvers ran ({', '.join(best) or 'none'}); its FID is {min(ratios):.2f}-"
                  f"{max(ratios):.2f} times the best compared solver's."]
    fit_lines = ["| predictor | teacher | distance to teacher, fitted | midpoint rule | fit seconds |",
                 "|---|---|---:|---:|---:|"]
    for (solver, afs, nfe), info in fits.items():
        errors = info.get("endpoint_error", {})
        fit_lines.append(f"| {predictor_name(args.checkpoint, solver, afs, nfe)} | {info.get('teacher')} "
                         f"({info.get('between')} between) | {errors.get('fitted', 0):.3f} | "
                         f"{errors.get('midpoint', 0):.3f} | {info.get('seconds', 0):.0f} |")
    fit_lines += ["", *verdicts(args, fits, by_point)]
    header = [f"# AMED-Solver on {args.checkpoint}: FID against the few-step solvers", "",
              f"Command: `{' '.join(['python', 'benchmarks/amed.py', *sys.argv[1:]])}`", "",
              f"Machine: {platform.machine()}, Python {platform.python_version()}, {args.threads} thread(s); "
              f"{args.samples} samples a point (seeds 0..{args.samples - 1}), karras schedule, FID on the digits "
              f"classifier's features (lower is better, the row's best in bold); wall time of this run "
              f"{time.perf_counter() - begin:.0f} s (points already in {args.results} and predictors already in "
              f"{shown(args.weights)}/ or {args.predictors}/ are reused; each predictor records its fit, and the first "
              "run took about 30 minutes). `amed afs` is amed with "
              "afs=true (diff-sampler's recommended setting), `ipndm_amed afs` AMED-Plugin on iPNDM with afs=true, "
              "each with its own predictor.", ""]
    fit_header = ["", "## The predictors", "", " ".join([
        f"Fitted by distillation ({args.trajectories} trajectories from seed {args.seed}; amed: Heun teacher, one",
        "level between, c_n within 1%; ipndm_amed: iPNDM teacher, two levels between, c_n within 1% and a_n within",
        "20%, as diff-sampler's launch.sh); the distance is the mean L2 distance per sample between the solver's",
        "output and the teacher's on 256 held-out trajectories, for the fitted predictor and for the midpoint rule",
        "r = 1/2, c = a = 1 (unfitted amed is DPM-Solver-2, unfitted ipndm_amed iPNDM on the levels with their",
        "log-midpoints inserted)."]), ""]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(header + lines + fit_header + fit_lines) + "\n")
    print("\n".join([*lines, "", *fit_lines]))


if __name__ == "__main__":
    main()
