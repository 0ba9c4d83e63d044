"""``zoo report``: Markdown and CSV tables (samplers x NFE) and an NFE-vs-FID plot from results files."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from ..bench.report import write_report

stdout = Console()


def report(
    results: Annotated[list[Path], typer.Argument(help="JSON-lines results files written by zoo bench.")],
    out: Annotated[Path | None, typer.Option(help="Write into this folder instead of next to each results file.")]
    = None,
) -> None:
    """Render NAME.md (tables, best per NFE, best three at each NFE), NAME.csv (one line per point) and NAME.png
    (FID vs NFE, log-log) for each NAME.jsonl."""
    command = shlex.join(["zoo", "report", *map(str, results), *(["--out", str(out)] if out else [])])
    for path in results:
        for written in write_report(path, out, command):
            stdout.print(str(written), highlight=False, soft_wrap=True)


def add_commands(app: typer.Typer) -> None:
    app.command("report")(report)
