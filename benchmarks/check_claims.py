"""Check every figure the results prose states against the data it comes from, and say what the data give instead.

* A claim (``CLAIMS``) is a sentence template with fields, e.g. "every deterministic sampler lands between {low} and
  {high} from NFE 20 on", and a function that computes the fields from the data (results/sweeps/*.jsonl). The
  rendered sentence must be in the file; if the file has the sentence with other figures, the script prints both,
  and ``--fix`` writes the recomputed ones; if the sentence is gone, the claim must be updated.
* A table of FID by NFE (``TABLES``) is compared cell by cell at each cell's printed precision, and bold must mark
  each column's best; ``--fix`` rewrites the cells (same number of decimals) and the bold.

After the sweeps are re-run, ``python benchmarks/check_claims.py --fix`` brings the figures up to date; a claim whose
wording no longer fits (a different sampler wins, a range is no longer a range) is reported, for a person to reword.

    python benchmarks/check_claims.py          # exit status 1 if any claim or cell is wrong

Covered: results/sweeps/README.md (claims_sweeps.py; claims_checkpoints.py for digits-flow, digits-latent and
the digits-edm subset) and results/additional-layer.md (claims_layer.py: its tables
against bench.json, bench-seed2000.json and the layers' training records, and its verdict). The other results pages
are written whole, prose included, by the script named at their top (digits-quality.md, overhead.md,
harness-overhead.md, sweeps/NAME.md by `zoo report`), so rerunning it is their check; law-power.md and mutants.md
have their tables from their scripts and their prose by hand (not checked here).
"""

from __future__ import annotations

import argparse
import sys

import claims_checkpoints
import claims_layer
import claims_sweeps
from claims_core import ROOT, Table, check_claim, check_row_table, check_table

CLAIMS = claims_sweeps.CLAIMS + claims_checkpoints.CLAIMS + claims_layer.CLAIMS
TABLES: list[Table] = claims_sweeps.TABLES + claims_checkpoints.TABLES
ROW_TABLES = claims_layer.ROW_TABLES


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fix", action="store_true", help="write recomputed figures into the files")
    args = parser.parse_args()
    problems: list[str] = []
    for file in sorted({c.file for c in CLAIMS} | {t.file for t in TABLES} | {t.file for t in ROW_TABLES}):
        path = ROOT / file
        text = path.read_text()
        for claim in (c for c in CLAIMS if c.file == file):
            status, expected = check_claim(claim, text)
            if status == "ok":
                continue
            found = claim.pattern().search(text)
            if status == "untrue":
                problems.append(f"{file}: '{claim.template[:60]}...' is untrue: {expected}")
            elif status == "wrong" and found:
                said = " ".join(found[0].split())
                problems.append(f"{file}: claims '{said}'\n    the data give '{expected}'")
                if args.fix:
                    text = text.replace(found[0], expected)
            else:
                problems.append(f"{file}: no sentence like '{claim.template}' (the data give '{expected}')")
        lines = text.split("\n")
        for row_table in (t for t in ROW_TABLES if t.file == file):
            problems += check_row_table(row_table, lines)
        for table in (t for t in TABLES if t.file == file):
            table_problems, fixed_lines = check_table(table, lines)
            problems += table_problems
            if args.fix:
                for i, line in fixed_lines.items():
                    lines[i] = line
        if args.fix:
            path.write_text("\n".join(lines))
    for problem in problems:
        print(problem)
    fixed_note = " (figures rewritten where only they changed)" if args.fix and problems else ""
    tables = len(TABLES) + len(ROW_TABLES)
    print(f"{len(CLAIMS)} claims and {tables} tables checked: {len(problems)} problem(s){fixed_note}")
    return 1 if problems and not args.fix else 0


if __name__ == "__main__":
    sys.exit(main())
