"""``zoo report``'s files for a results file: NAME.md (tables), NAME.csv (one line per point), NAME.png (metric
against NFE), NAME-pareto.png (metric against wall time) and NAME.html (all of it in one self-contained file,
sortable tables). Each file is written whole or not at all."""

from __future__ import annotations

import io
from pathlib import Path

from matplotlib.figure import Figure

from ..files import atomic_write, check_writable
from . import html
from .plots import pareto, plot
from .report import csv_text, markdown, metric_names, read_results

SUFFIXES = (".md", ".csv", ".png", "-pareto.png", ".html")


def png(figure: Figure) -> bytes:
    image = io.BytesIO()
    figure.savefig(image, format="png", dpi=110, bbox_inches="tight")
    return image.getvalue()


def write_report(results: Path, out: Path | None = None, command: str | None = None) -> list[Path]:
    """Write the report files for ``results`` (``NAME.jsonl``) next to it, or into ``out``; returns the paths
    written. The figures show FID, else the first metric measured; the Pareto view needs measured wall times."""
    rows = read_results(results)
    folder = out or results.parent
    paths = {suffix: check_writable(folder / (results.stem + suffix), "report file") for suffix in SUFFIXES}
    command = command or f"zoo report {results}"
    atomic_write(paths[".md"], markdown(rows, str(results), command).encode())
    atomic_write(paths[".csv"], csv_text(rows).encode())
    written = [paths[".md"], paths[".csv"]]
    images: dict[str, bytes] = {}
    metrics = metric_names(rows)
    if metrics:
        images[f"{metrics[0]} against NFE"] = png(plot(rows, metrics[0]))
        atomic_write(paths[".png"], images[f"{metrics[0]} against NFE"])
        written.append(paths[".png"])
        if any(row.get("sampling_seconds") for row in rows):
            images[f"{metrics[0]} against wall time"] = png(pareto(rows, metrics[0]))
            atomic_write(paths["-pareto.png"], images[f"{metrics[0]} against wall time"])
            written.append(paths["-pareto.png"])
    atomic_write(paths[".html"], html.render(rows, str(results), command, images).encode())
    return [*written, paths[".html"]]
