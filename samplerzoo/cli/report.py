"""``zoo report``: Markdown, CSV and HTML tables (samplers x NFE), an NFE-vs-FID plot and a Pareto view from
results files."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer

from . import interrupts
from .output import stdout


def report(
    results: Annotated[list[Path], typer.Argument(help="JSON-lines results files written by zoo bench.")],
    out: Annotated[Path | None, typer.Option(help="Write into this folder instead of next to each results file.")]
    = None,
) -> None:
    """Render NAME.md (tables, best per NFE, best three at each NFE), NAME.csv (one line per point) and NAME.png
    (FID vs NFE, log-log) for each NAME.jsonl. Lines that are not results rows are skipped with one warning."""
    from ..bench.publish import write_report

    command = shlex.join(["zoo", "report", *map(str, results), *(["--out", str(out)] if out else [])])
    written: list[Path] = []
    try:
        for path in results:
            for file in write_report(path, out, command):
                written.append(file)
                stdout.print(str(file), highlight=False, soft_wrap=True)
    except KeyboardInterrupt as exc:
        kept = f"{len(written)} file(s) written (listed above)" if written else "nothing written"
        interrupts.report(f"interrupted by {interrupts.name(exc)}: {kept}; each file is written whole or not at all")
        raise


def add_commands(app: typer.Typer) -> None:
    app.command("report")(report)
