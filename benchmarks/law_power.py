"""Power of the conformance kit's mixture law test (``check_mixture_law``): how often it rejects each stochastic
sampler, the same sampler with 5% too much or too little noise, and a deterministic solver posing as one.

Each cell is the fraction of ``--seeds`` independent runs (seeds 0, 1, ...; the kit's own test uses seed 0) whose
p-value falls below the test's level: for the real sampler that is its false-alarm rate (alpha plus whatever its
discretisation bias at the test's step count adds), for the altered ones the power.

    python benchmarks/law_power.py --seeds 20 --out results/law-power.md
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

import samplerzoo as sz
from samplerzoo import conformance, laws, testing


def rejection_rate(spec: sz.SamplerSpec, seeds: int, samples: int, steps: int, alpha: float,
                   joint: bool | None = None) -> float:
    """Fraction of seeds whose mixture law test rejects ``spec`` at level ``alpha``."""
    options = dict(spec.law_options)
    pvalues = [laws.mixture_law_pvalue(spec, testing.mixture_problem(dim=2), samples, steps, joint, seed, **options)
               for seed in range(seeds)]
    return sum(p < alpha for p in pvalues) / seeds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--samples", type=int, default=conformance.MIXTURE_SAMPLES)
    parser.add_argument("--steps", type=int, default=conformance.MIXTURE_STEPS)
    parser.add_argument("--alpha", type=float, default=conformance.MIXTURE_ALPHA)
    parser.add_argument("--samplers", nargs="*", help="default: every built-in stochastic sampler")
    parser.add_argument("--out", type=Path, help="also write the table, with the command, to this Markdown file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    names = args.samplers or sorted(n for n, spec in sz.get_samplers().items()
                                    if spec.stochastic and spec.plugin == "samplerzoo" and n != "pc")
    header = ["sampler", "target", "rejects it", "rejects noise x1.05", "rejects noise x0.95", "s per run"]
    rows = []
    for name in names:
        spec, tick = sz.get_sampler(name), time.perf_counter()
        rates = [rejection_rate(s, args.seeds, args.samples, args.steps, args.alpha)
                 for s in (spec, laws.scaled_noise(spec, 1.05), laws.scaled_noise(spec, 0.95))]
        seconds = (time.perf_counter() - tick) / (3 * args.seeds)
        rows.append([name, "posterior" if spec.reverse_sde else "marginal", *(f"{r:.2f}" for r in rates),
                     f"{seconds:.1f}"])
        print(" | ".join(rows[-1]), flush=True)
    euler = rejection_rate(sz.get_sampler("euler"), args.seeds, args.samples, args.steps, args.alpha, joint=True)
    rows.append(["euler (deterministic)", "posterior", f"{euler:.2f}", "", "", ""])
    table = "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
                       *("| " + " | ".join(row) + " |" for row in rows)])
    print(table)
    if args.out:
        machine = platform.processor() or platform.machine()
        args.out.write_text(f"# Power of the mixture law test\n\n```bash\npython {' '.join(sys.argv)}\n```\n\n"
                            f"{args.samples} samples, {args.steps} karras steps from sigma 2 to 0.01 on the 2-D "
                            f"mixture, level {args.alpha:g}, {args.seeds} seeds; {machine}, torch {torch.__version__}. "
                            f"Each cell: the fraction of seeds rejected.\n\n{table}\n")


if __name__ == "__main__":
    main()
