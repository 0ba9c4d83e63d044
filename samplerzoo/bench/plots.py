"""The report's figures, pure functions of the rows: metric against NFE, and the Pareto view of the metric against
wall time.

Readable with 35+ samplers: each schedule gets one panel for deterministic and one for stochastic samplers; in
each the best few (by mean rank over the NFE budgets) are drawn in color and named in the legend, the rest faint
and grey. Both axes are logarithmic with real tick labels (1, 2, 5 x 10^k on the metric axis).
"""

from __future__ import annotations

import math
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullLocator

from ..errors import SamplerzooError
from .report import HIGHER_IS_BETTER, TITLES, Grid, Section, floor_comparable, grids, kind, ranking, sections, value

HIGHLIGHTED = 6
"""Samplers drawn in color in each panel; the others are faint."""
KINDS = {False: "deterministic", True: "stochastic", None: "not installed here"}
FAINT = {"color": "0.6", "alpha": 0.45, "linewidth": 0.8, "zorder": 1}


def mean_rank(grid: Grid, names: list[str], name: str) -> float:
    """The sampler's mean rank among ``names`` over the NFE budgets where any of them was measured (a sampler
    measured at fewer than half of those ranks last)."""
    orders = [[n for n, _ in ranking(grid, nfe) if n in names] for nfe in grid.nfes]
    orders = [order for order in orders if order]
    ranks = [order.index(name) for order in orders if name in order]
    return sum(ranks) / len(ranks) if ranks and 2 * len(ranks) >= len(orders) else math.inf


def best(grid: Grid, names: list[str], k: int = HIGHLIGHTED) -> list[str]:
    """The ``k`` best of ``names`` by mean rank, best first."""
    ranks = {n: mean_rank(grid, names, n) for n in names}
    return sorted((n for n in names if ranks[n] < math.inf), key=lambda n: (ranks[n], n))[:k]


def log_axis(ax: Any, axis: str) -> None:
    """A log axis labelled at 1, 2 and 5 x 10^k in plain numbers."""
    getattr(ax, f"set_{axis}scale")("log")
    target = getattr(ax, f"{axis}axis")
    target.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    target.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    target.set_minor_locator(LogLocator(base=10, subs=(3.0, 4.0, 6.0, 7.0, 8.0, 9.0)))


def curve(grid: Grid, name: str) -> list[tuple[float, float]]:
    return sorted((row.get("counted_nfe", nfe), v) for (sampler, nfe), row in grid.cells.items()
                  if sampler == name and (v := value(row, grid.metric)) is not None and v > 0)


def nfe_panel(ax: Any, section: Section, grid: Grid, names: list[str], title: str) -> None:
    """One panel: ``names`` faint, their best few in color, non-finite points and a comparable floor marked."""
    top = best(grid, names)
    for name in names:
        points = curve(grid, name)
        if points and name not in top:
            ax.plot(*zip(*points, strict=True), **FAINT)
    colors = [f"C{i}" for i in range(10)]
    for i, name in enumerate(top):
        ax.plot(*zip(*curve(grid, name), strict=True), color=colors[i], marker="osD^vP"[i % 6], markersize=5,
                linewidth=2, label=f"{i + 1}. {name}", zorder=3)
    faint = len([n for n in names if n not in top and curve(grid, n)])
    if faint:
        ax.plot([], [], label=f"{faint} other samplers", **FAINT)
    failed = sorted(row.get("counted_nfe", nfe) for (name, nfe), row in grid.cells.items()
                    if row["status"] == "nonfinite" and name in names)
    if failed:  # at the top edge of the panel: there is no value to place them at
        ax.plot(failed, [0.97] * len(failed), "x", color="red", markersize=7, transform=ax.get_xaxis_transform(),
                label="non-finite samples (not scored)")
    first = section.rows[0]
    floor = first.get("floor", {}).get(grid.metric)
    if floor and floor_comparable(first):
        ax.axhline(floor, color="black", linewidth=1, linestyle=(0, (1, 3)),
                   label=f"floor ({first['floor_samples']} reference images resampled)")
    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator(grid.nfes))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_locator(NullLocator())
    log_axis(ax, "y")
    ax.grid(True, which="major", alpha=0.35)
    ax.grid(True, which="minor", alpha=0.12)
    ax.set_xlabel("NFE (denoiser calls per sample, counted)")
    ax.set_ylabel(TITLES.get(grid.metric, grid.metric) + (" (higher is better)" if grid.metric in HIGHER_IS_BETTER
                                                          else " (lower is better)"))
    ax.set_title(title, fontsize="medium")
    ax.legend(loc="best", fontsize="small", framealpha=0.85)


def panels(rows: list[dict[str, Any]], metric: str) -> list[tuple[Section, Grid, list[list[str]]]]:
    out = []
    for section in sections(rows):
        for grid in grids(section):
            if grid.metric == metric:
                groups = [[n for n in grid.samplers if kind(n) is k] for k in KINDS]
                out.append((section, grid, [g for g in groups if g]))
    return out


def plot(rows: list[dict[str, Any]], metric: str = "fid") -> Figure:
    """``metric`` against counted NFE on log-log axes: a row of panels (deterministic, stochastic) per checkpoint
    section and schedule, the best few samplers of each panel in color."""
    layout = panels(rows, metric)
    if not layout:
        raise SamplerzooError(f"no {metric} values to plot")
    columns = max(len(groups) for _, _, groups in layout)
    figure = Figure(figsize=(7.5 * columns, 5.5 * len(layout)), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(layout), columns, squeeze=False)
    for row_axes, (section, grid, groups) in zip(axes, layout, strict=True):
        for ax, names in zip(row_axes, groups, strict=False):
            label = KINDS[kind(names[0])]
            shown = min(HIGHLIGHTED, len(best(grid, names)))
            nfe_panel(ax, section, grid, names, f"{section.settings['checkpoint']}, {grid.schedule} schedule: {label} "
                      f"samplers\n(best {shown} of {len(names)} in color; {section.settings['samples']} samples a "
                      "point)")
        for ax in row_axes[len(groups):]:
            figure.delaxes(ax)
    return figure


def frontier(points: list[tuple[float, float, str]]) -> list[tuple[float, float, str]]:
    """The Pareto front of (seconds, metric, label) points, lower both being better: fastest first."""
    front: list[tuple[float, float, str]] = []
    for seconds, metric, name in sorted(points):
        if not front or metric < front[-1][1]:
            front.append((seconds, metric, name))
    return front


def pareto(rows: list[dict[str, Any]], metric: str = "fid") -> Figure:
    """``metric`` against sampling wall time, one dot per measured point, the Pareto front (no point both faster and
    better) joined and labelled: one panel per checkpoint section and schedule."""
    layout = panels(rows, metric)
    if not layout:
        raise SamplerzooError(f"no {metric} values to plot")
    figure = Figure(figsize=(11, 6 * len(layout)), layout="constrained")
    FigureCanvasAgg(figure)
    sign = -1 if metric in HIGHER_IS_BETTER else 1
    for ax, (section, grid, _) in zip(figure.subplots(len(layout), 1, squeeze=False)[:, 0], layout, strict=True):
        points = [(row["sampling_seconds"], v, f"{name} @ {row.get('counted_nfe', nfe)}")
                  for (name, nfe), row in grid.cells.items()
                  if (v := value(row, metric)) is not None and v > 0 and row.get("sampling_seconds", 0) > 0]
        if not points:
            continue
        ax.scatter([p[0] for p in points], [p[1] for p in points], s=14, color="0.55", alpha=0.6,
                   label=f"{len(points)} points (sampler @ NFE)")
        front = [(s, sign * m, n) for s, m, n in frontier([(s, sign * m, n) for s, m, n in points])]
        ax.plot([p[0] for p in front], [p[1] for p in front], "-o", color="C3", markersize=5, label="Pareto front")
        for i, (seconds, v, name) in enumerate(front):  # alternately above and below, so neighbours do not collide
            ax.annotate(name, (seconds, v), textcoords="offset points", xytext=(6, 5) if i % 2 else (-6, -11),
                        ha="left" if i % 2 else "right", fontsize="small")
        log_axis(ax, "x")
        log_axis(ax, "y")
        ax.grid(True, which="major", alpha=0.35)
        ax.set_xlabel(f"sampling seconds per point ({section.settings['samples']} samples, "
                      f"{section.rows[0].get('device', 'cpu')})")
        ax.set_ylabel(TITLES.get(metric, metric))
        ax.set_title(f"{section.settings['checkpoint']}, {grid.schedule} schedule: {TITLES.get(metric, metric)} "
                     "against wall time", fontsize="medium")
        ax.legend(loc="upper right", fontsize="small")
    return figure
