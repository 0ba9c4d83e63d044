"""What the commands print: results and tables on stdout, errors, warnings and progress on stderr.

A table is a rich table whose cells wrap (never cut) on a terminal, and plain aligned columns at full width
anywhere else (a pipe, a file, a log), so every name and number survives ``zoo list > log``. Every listing also
prints as JSON with ``--json``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

stdout = Console()
stderr = Console(stderr=True)
LABEL_STYLES = {"error": "red", "warning": "yellow"}


def labelled(label: str, message: str) -> None:
    """``label: message`` on stderr as one unwrapped line (the message is never read as rich markup)."""
    stderr.print(f"[{LABEL_STYLES[label]}]{label}:[/] ", end="", highlight=False)
    stderr.print(message, highlight=False, soft_wrap=True, markup=False)


def error(message: str) -> None:
    labelled("error", message)


def warning(message: str) -> None:
    labelled("warning", message)


def print_json(value: Any) -> None:
    stdout.print_json(json.dumps(value))


def plain(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[str] = ()) -> str:
    """The table as text: the title, a header, a rule, and one line per row, columns two spaces apart."""
    widths = [max([len(column), *(len(row[i]) for row in rows)]) for i, column in enumerate(columns)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(cell.rjust(width) if column in right else cell.ljust(width)
                         for cell, width, column in zip(cells, widths, columns, strict=True)).rstrip()

    return "\n".join([title, line(columns), line(["-" * width for width in widths]), *map(line, rows)])


def table(title: str, columns: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[str] = ()) -> None:
    """Print a table: wrapped cells on a terminal, plain full-width columns elsewhere."""
    if not stdout.is_terminal:
        stdout.print(plain(title, columns, rows, right), soft_wrap=True, highlight=False, markup=False)
        return
    rich_table = Table(title=title)
    for column in columns:
        rich_table.add_column(column, overflow="fold", justify="right" if column in right else "left")
    for row in rows:
        rich_table.add_row(*map(Text, row))
    stdout.print(rich_table)
