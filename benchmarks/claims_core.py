"""The machinery of benchmarks/check_claims.py: the published data, claims as sentence templates, tables checked
cell by cell."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import samplerzoo as sz

ROOT = Path(__file__).resolve().parent.parent
SWEEPS = ROOT / "results" / "sweeps"


@dataclass(frozen=True)
class Sweep:
    """The rows of one published sweep."""

    rows: tuple[dict, ...]

    @property
    def ok(self) -> list[dict]:
        return [r for r in self.rows if r["status"] == "ok"]

    def fid(self, sampler: str, nfe: int) -> float:
        return next(r["metrics"]["fid"] for r in self.ok if r["sampler"] == sampler and r["nfe"] == nfe)

    def fids(self, nfes: Iterable[int], stochastic: bool) -> dict[tuple[str, int], float]:
        """FID of every finished point of one kind of sampler at these NFE."""
        wanted = set(nfes)
        return {(r["sampler"], r["nfe"]): r["metrics"]["fid"] for r in self.ok
                if r["nfe"] in wanted and is_stochastic(r["sampler"]) == stochastic}

    def best(self, nfe: int, stochastic: bool) -> tuple[str, float]:
        at = self.fids([nfe], stochastic)
        (name, _), value = min(at.items(), key=lambda item: item[1])
        return name, value

    def nfes(self, stochastic: bool) -> list[int]:
        return sorted({r["nfe"] for r in self.rows if is_stochastic(r["sampler"]) == stochastic})


@cache
def sweep(name: str) -> Sweep:
    return Sweep(tuple(json.loads(line) for line in (SWEEPS / f"{name}.jsonl").read_text().splitlines() if line))


def best_each(checkpoint: str, stochastic: bool) -> dict[str, str]:
    """Fields at_N: the best sampler of one kind at each NFE of a sweep, with its FID to 3 places."""
    s = sweep(checkpoint)
    return {f"at_{n}": f"{name} ({value:.3f})" for n in s.nfes(stochastic) for name, value in [s.best(n, stochastic)]}


def is_stochastic(sampler: str) -> bool:
    return sz.get_sampler(sampler).stochastic


def decimals(text: str) -> int:
    return len(text.split(".")[1]) if "." in text else 0


def fixed(value: float, places: int) -> str:
    return f"{value:.{places}f}"


def names(values: Iterable[str]) -> str:
    return ", ".join(values)


Fields = dict[str, str]


@dataclass(frozen=True)
class Claim:
    """A sentence of ``file`` with ``{fields}``, which ``compute`` fills from the data."""

    file: str
    template: str
    compute: Callable[[], Fields]

    def render(self) -> str:
        return self.template.format(**self.compute())

    def pattern(self) -> re.Pattern[str]:
        """The sentence with any figures in its fields (whitespace may differ: line breaks)."""
        parts = re.split(r"\{(\w+)\}", self.template)
        regex = "".join(re.escape(part) if i % 2 == 0 else f"(?P<{part}>.+?)" for i, part in enumerate(parts))
        return re.compile(regex.replace(r"\ ", r"\s+"))


class UntrueError(Exception):
    """A claim without figures that the data contradict."""


def require(ok: bool, reason: str) -> None:
    if not ok:
        raise UntrueError(reason)


def ranked(values: dict[str, float]) -> list[str]:
    return sorted(values, key=values.__getitem__)


def check_claim(claim: Claim, text: str) -> tuple[str, str]:
    """('ok' | 'wrong' | 'missing' | 'untrue', the sentence the data give, or why it is untrue)."""
    try:
        expected = claim.render()
    except UntrueError as reason:
        return "untrue", str(reason)
    normalised = re.sub(r"\s+", " ", text)
    if expected in normalised:
        return "ok", expected
    return ("wrong" if claim.pattern().search(text) else "missing"), expected


@dataclass(frozen=True)
class Table:
    """A Markdown table whose header starts with ``header`` in ``file``: rows name a sampler (in backticks, or the first
    cell), and the columns in ``nfe_columns`` hold its FID at that NFE on ``checkpoint``."""

    file: str
    header: str
    checkpoint: str
    nfe_columns: dict[int, int]


NUMBER = re.compile(r"^(\*\*)?(-?\d+(?:\.\d+)?)(\*\*)?$")


def cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def row_sampler(first_cell: str) -> str:
    quoted = re.findall(r"`([^`]+)`", first_cell)
    return quoted[-1] if quoted else first_cell


def table_body(table: Table, lines: list[str]) -> list[int]:
    """Indices of the table's rows below its header and separator; LookupError if its header is not there."""
    start = next((i for i, line in enumerate(lines) if line.startswith(table.header)), None)
    if start is None:
        raise LookupError(f"{table.file}: table '{table.header}' not found")
    body = []
    for i in range(start + 2, len(lines)):
        if not lines[i].startswith("|"):
            break
        body.append(i)
    return body


def check_table(table: Table, lines: list[str]) -> tuple[list[str], dict[int, str]]:
    """Mismatches, and the corrected lines (by index) for ``--fix``."""
    try:
        body = table_body(table, lines)
    except LookupError as missing:
        return [str(missing)], {}
    data = sweep(table.checkpoint)
    values = {i: {col: data.fid(row_sampler(cells(lines[i])[0]), nfe) for col, nfe in table.nfe_columns.items()}
              for i in body}
    problems, fixed_lines = [], {}
    for i in body:
        row = cells(lines[i])
        for col in table.nfe_columns:
            match = NUMBER.match(row[col])
            if match is None:
                problems.append(f"{table.file}:{i + 1}: cell '{row[col]}' is not a number")
                continue
            printed, bold = match[2], match[1] is not None
            value = values[i][col]
            best = value == min(v[col] for v in values.values())
            places = decimals(printed)
            if abs(float(printed) - value) > 0.5 * 10**-places + 1e-12 or bold != best:
                problems.append(f"{table.file}:{i + 1}: {row_sampler(row[0])} at NFE {table.nfe_columns[col]}: "
                                f"'{row[col]}', data give {value:.{places + 2}f}{' (the best)' if best else ''}")
            row[col] = f"**{fixed(value, places)}**" if best else fixed(value, places)
        fixed_lines[i] = "| " + " | ".join(row) + " |"
    return problems, fixed_lines


def table_column(table: Table, column: int) -> dict[str, float]:
    """The numbers of one column of a table, by sampler ("-" cells left out): for the figures a table quotes from
    elsewhere (diff-sampler's, from ANCHORS.md)."""
    lines = (ROOT / table.file).read_text().split("\n")
    rows = [cells(lines[i]) for i in table_body(table, lines)]
    return {row_sampler(row[0]): float(row[column].strip("*")) for row in rows if row[column] != "-"}


@dataclass(frozen=True)
class RowTable:
    """A table whose rows are ``rows()`` in order (a cell "a / b" holds two rows' figures), ``columns`` mapping a
    column to a key of those rows; with ``bold``, bold marks each column's smallest figure."""

    file: str
    header: str
    rows: Callable[[], list[list[dict]]]
    columns: dict[int, str]
    bold: bool = False


def check_row_table(table: RowTable, lines: list[str]) -> list[str]:
    """Mismatches between the table's cells (at their printed precision, and their bold) and its rows' figures."""
    try:
        body = table_body(Table(table.file, table.header, "", {}), lines)
    except LookupError as missing:
        return [str(missing)]
    rows = table.rows()
    if len(rows) != len(body):
        return [f"{table.file}: table '{table.header}' has {len(body)} rows, its data {len(rows)}"]
    problems = []
    for i, data in zip(body, rows, strict=True):
        row = cells(lines[i])
        for col, key in table.columns.items():
            for text, record in zip([part.strip() for part in row[col].split(" / ")], data, strict=True):
                bold, value = text.startswith("**"), record[key]
                best = table.bold and value == min(other[0][key] for other in rows)
                printed = text.strip("*")
                if abs(float(printed) - value) > 0.5 * 10 ** -decimals(printed) + 1e-9 or bold != best:
                    problems.append(f"{table.file}:{i + 1}: column {col} ({key}): '{text}', data give {value:.6g}"
                                    f"{' (the best)' if best else ''}")
    return problems
