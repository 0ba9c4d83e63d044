"""Reports of a results file: Markdown tables (samplers x NFE, best per NFE in bold, the best three at each NFE),
a long-format CSV (one line per point) and an NFE-vs-metric plot on log-log axes. Points without a value (an
unreachable NFE, non-finite samples) are marked in the tables and the plot and explained in numbered notes.

Everything but ``read_results`` and ``write_report`` is a pure function of the rows. Files are read with the
results file's one policy for odd lines (``results.py``: skipped with one warning, duplicates counted once).
"""

from __future__ import annotations

import csv
import io
import json
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import SamplerzooError
from ..plugins import get_sampler
from .results import ResultsFile

TITLES = {"fid": "FID", "kid": "KID", "isc": "IS", "precision": "precision", "recall": "recall",
          "f_score": "F-score"}
HIGHER_IS_BETTER = {"isc", "precision", "recall", "f_score"}
METRIC_KEYS = {"prc": ("precision", "recall")}
"""The values a metric asked for is reported as, where they are not its own name."""
SETTINGS = ("checkpoint", "reference", "extractor", "samples", "seed", "final_step", "dtype", "guidance_scale",
            "labels", "prompts", "distilled_guidance")
"""What a section's rows share: all of a point's config but sampler, options, schedule and NFE."""
CSV_COLUMNS = ("checkpoint", "schedule", "sampler", "options", "schedule_options", "guidance", "guidance_options",
               "stochastic", "requested_nfe", "counted_nfe", "forwards", "status")
CSV_TRAILING = ("samples", "samples_scored", "seed", "final_step", "final_step_used", "dtype", "guidance_scale",
                "labels", "prompts", "prompts_file", "distilled_guidance", "reference", "reference_samples",
                "reference_kind", "reference_id", "extractor",
                "extractor_weights_sha256", "floor_kind", "floor_samples", "device", "processes", "wall_seconds",
                "sampling_seconds", "metric_seconds", "model_precision", "nonfinite_samples", "first_nonfinite_step",
                "reason")
"""``model_precision`` is the row's ``precision`` (the dtype the model ran in), not the metric."""
SUPERSCRIPTS = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")
MARKS = {"unreachable": "—", "nonfinite": "✗"}
"""A table cell's mark for a point without a value, by status (any other status: ?)."""


@dataclass(frozen=True)
class Section:
    """The rows of one checkpoint under one set of sweep settings."""

    settings: dict[str, Any]
    rows: list[dict[str, Any]]


@dataclass(frozen=True)
class Grid:
    """One table: the rows of a section on one schedule, samplers x requested NFE, for one metric."""

    schedule: str
    metric: str
    samplers: list[str]
    nfes: list[int]
    cells: dict[tuple[str, int], dict[str, Any]]


def read_results(path: Path) -> list[dict[str, Any]]:
    """The rows of a JSON-lines results file (odd lines skipped with one warning, a key's first row only); a missing
    file, or one without a single results row, is a one-line error."""
    if not path.is_file():
        raise SamplerzooError(f"{path}: no such results file")
    rows = ResultsFile(path).read().rows
    if not rows:
        raise SamplerzooError(f"{path}: no results rows")
    return rows


def stochastic(sampler: str) -> bool | None:
    """Whether a sampler injects noise, from the registry; ``None`` when it is not installed here."""
    try:
        return get_sampler(sampler).stochastic
    except SamplerzooError:
        return None


def label(row: dict[str, Any]) -> str:
    """A table row's name: the sampler, with its options if it has any, and its guidance rule if not plain CFG."""
    options = {**(row.get("options") or {}),
               **{f"schedule.{k}": v for k, v in (row.get("schedule_options") or {}).items()},
               **({"guidance": row["guidance"]} if row.get("guidance", "cfg") != "cfg" else {}),
               **{f"guidance.{k}": v for k, v in (row.get("guidance_options") or {}).items()}}
    return " ".join([row["sampler"], *(f"{k}={v}" for k, v in sorted(options.items()))])


def sections(rows: list[dict[str, Any]]) -> list[Section]:
    """The rows grouped by checkpoint and sweep settings, in order of first appearance."""
    grouped: dict[str, Section] = {}
    for row in rows:
        settings = {key: row.get(key) for key in SETTINGS}
        grouped.setdefault(json.dumps(settings, sort_keys=True), Section(settings, [])).rows.append(row)
    return list(grouped.values())


def metric_names(rows: Iterable[dict[str, Any]]) -> list[str]:
    """The metrics asked for or measured in ``rows`` (standard deviations left out), FID first."""
    asked = {name for row in rows for m in row.get("metric_names", []) for name in METRIC_KEYS.get(m, (m,))}
    names = {name for name in asked | {n for row in rows for n in row.get("metrics", {})}
             if not name.endswith("_std") and name != "f_score"}
    return sorted(names, key=lambda name: (name != "fid", name))


def kind(name: str) -> bool | None:
    """Whether the sampler of a table row name is stochastic (``None``: not installed)."""
    return stochastic(name.split(" ")[0])


def sampler_order(labels: Iterable[str]) -> list[str]:
    """Deterministic samplers first, then stochastic ones, then ones not installed; by name within each."""
    return sorted(set(labels), key=lambda name: ({False: 0, True: 1, None: 2}[kind(name)], name))


def grids(section: Section) -> list[Grid]:
    """One grid per schedule and metric of a section."""
    out = []
    for schedule in dict.fromkeys(row["schedule"] for row in section.rows):
        rows = [row for row in section.rows if row["schedule"] == schedule]
        cells = {(label(row), row["requested_nfe"]): row for row in rows}
        samplers = sampler_order(name for name, _ in cells)
        nfes = sorted({nfe for _, nfe in cells})
        out += [Grid(schedule, metric, samplers, nfes, cells) for metric in metric_names(rows)]
    return out


def value(row: dict[str, Any] | None, metric: str) -> float | None:
    if row is None or row["status"] != "ok" or metric not in row.get("metrics", {}):
        return None
    return float(row["metrics"][metric])


def ranking(grid: Grid, nfe: int) -> list[tuple[str, float]]:
    """The samplers measured at ``nfe``, best first."""
    measured = [(name, v) for name in grid.samplers
                if (v := value(grid.cells.get((name, nfe)), grid.metric)) is not None]
    return sorted(measured, key=lambda item: -item[1] if grid.metric in HIGHER_IS_BETTER else item[1])


def unmeasured(section: Section) -> dict[tuple[str, int], str]:
    """The reasons of the section's points without a value (unreachable, non-finite), by (sampler, NFE), in table
    order: footnotes 1, 2, ..."""
    reasons = {(label(row), row["requested_nfe"]): row.get("reason", "") for row in section.rows
               if row["status"] != "ok"}
    order = sampler_order(name for name, _ in reasons)
    return {point: reasons[point] for point in sorted(reasons, key=lambda p: (order.index(p[0]), p[1]))}


def floor_comparable(row: dict[str, Any]) -> bool:
    """Whether the row's floor was measured on as many images as the point has samples (FID and KID are biased
    by sample count, so only such a floor is a bound for the point)."""
    return bool(row.get("floor")) and row.get("floor_samples") == row.get("samples")


def floor_text(row: dict[str, Any]) -> str:
    """What the floor is, or why none is shown."""
    values = ", ".join(f"{TITLES.get(k, k)} {number(v)}" for k, v in row.get("floor", {}).items()
                       if not k.endswith("_std"))
    if floor_comparable(row):
        return (f"{values} ({row['floor_samples']} reference images drawn with replacement, seed 0, scored against "
                "the reference: what a sampler reproducing the data would score at this sample count)")
    if row.get("floor"):
        return (f"not shown: measured on {row.get('floor_samples')} held-out images, not comparable with "
                f"{row.get('samples')}-sample points (fewer images score worse); a rerun records a resampled floor")
    return "none (the reference is FID statistics only)" if row.get("reference_kind") == "npz" else "not measured"


def number(x: float) -> str:
    return f"{x:.4g}"


def cell(grid: Grid, name: str, nfe: int, notes: list[tuple[str, int]]) -> str:
    """A table cell: the value (bold when best at its NFE); a mark and a footnote when there is none (``—``
    unreachable, ``✗`` non-finite samples); blank if not run."""
    row = grid.cells.get((name, nfe))
    if row is None:
        return ""
    if row["status"] != "ok":
        return MARKS.get(row["status"], "?") + str(notes.index((name, nfe)) + 1).translate(SUPERSCRIPTS)
    v = value(row, grid.metric)
    if v is None:
        return ""
    text = number(v) + (f" (NFE {row['counted_nfe']})" if row.get("counted_nfe", nfe) != nfe else "")
    best = ranking(grid, nfe)[0][1]
    return f"**{text}**" if v == best else text


STOCHASTIC = {False: "", True: "yes", None: "?"}
"""A table's stochastic column, by the sampler's kind (``None``: not installed here)."""


def stochastic_text(name: str) -> str:
    return STOCHASTIC[kind(name)]


def table(grid: Grid, notes: list[tuple[str, int]]) -> list[str]:
    """The Markdown table of a grid; ``notes`` are the points without a value, numbered from 1."""
    lines = ["| sampler | stochastic | " + " | ".join(map(str, grid.nfes)) + " |",
             "|---|---|" + "---:|" * len(grid.nfes)]
    for name in grid.samplers:
        cells = " | ".join(cell(grid, name, nfe, notes) for nfe in grid.nfes)
        lines.append(f"| {name} | {stochastic_text(name)} | {cells} |")
    return lines


def podium(grid: Grid) -> list[str]:
    """The best three samplers at each NFE, as a Markdown table."""
    lines = ["| NFE | 1st | 2nd | 3rd |", "|---:|---|---|---|"]
    for nfe in grid.nfes:
        best = [f"{name} {number(v)}" for name, v in ranking(grid, nfe)[:3]]
        lines.append(f"| {nfe} | " + " | ".join(best + [""] * (3 - len(best))) + " |")
    return lines


def duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"
    return f"{int(seconds // 60)} min {int(seconds % 60):02d} s" if seconds >= 60 else f"{seconds:.1f} s"


def bench_commands(section: Section, results: str) -> list[str]:
    """``zoo bench`` commands that regenerate the section's points: one per set of options, schedules and NFE."""
    plans: dict[tuple[str, str], tuple[set[str], set[int]]] = {}
    for row in section.rows:
        options = " ".join([*(f"--option {k}={json.dumps(v)}" for k, v in sorted((row.get("options") or {}).items())),
                            *(f"--schedule-option {k}={json.dumps(v)}"
                              for k, v in sorted((row.get("schedule_options") or {}).items())),
                            *([f"--guidance {row['guidance']}"] if row.get("guidance", "cfg") != "cfg" else []),
                            *(f"--guidance-option {k}={json.dumps(v)}"
                              for k, v in sorted((row.get("guidance_options") or {}).items()))])
        schedules, nfes = plans.setdefault((row["sampler"], options), (set(), set()))
        schedules.add(row["schedule"])
        nfes.add(row["requested_nfe"])
    groups: dict[tuple[str, str, str], list[str]] = {}
    for (sampler, options), (schedules, nfes) in plans.items():
        key = (",".join(sorted(schedules)), ",".join(map(str, sorted(nfes))), options)
        groups.setdefault(key, []).append(sampler)
    s, first = section.settings, section.rows[0]
    common = (f"--samples {s['samples']} --seed {s['seed']} --batch {first.get('batch', 500)} "
              f"--metrics {','.join(first.get('metric_names', ['fid', 'kid']))} --final-step {s['final_step']} "
              f"--dtype {s['dtype']}" + (f" --guidance-scale {s['guidance_scale']}" if s["guidance_scale"] else "")
              + (f" --labels {','.join(map(str, s['labels']))}" if s.get("labels") else "")
              + (f" --prompts {first.get('prompts_file', 'FILE')}" if s.get("prompts") else "")
              + "".join(f" --negative-prompt {shlex.quote(text)}" for text in first.get("negative_prompts", []))
              + (f" --distilled-guidance {s['distilled_guidance']}" if s.get("distilled_guidance") is not None else "")
              + (f" --device {first['device']}" if first.get("device", "cpu") != "cpu" else "")
              + (f" --reference {s['reference']}" if s["reference"] != "digits-train" else "")
              + (f" --extractor {s['extractor']}" if s["extractor"] != "digits-classifier" else "")
              + (f" --extractor-weights {first['extractor_weights']}" if first.get("extractor_weights") else ""))
    return [f"zoo bench --checkpoint {s['checkpoint']} --sampler {','.join(samplers)} --schedule {schedules} "
            f"--nfe {nfes} {common}{' ' + options if options else ''} --results {results}"
            for (schedules, nfes, options), samplers in groups.items()]


def conditioning(settings: dict[str, Any], first: dict[str, Any]) -> str:
    """The labels or prompts a section was conditioned on, as a clause of the checkpoint line."""
    if settings.get("labels"):
        return f", labels {', '.join(map(str, settings['labels']))}"
    if settings.get("prompts"):
        return (f", {first.get('prompt_count', '?')} prompts from `{first.get('prompts_file', '?')}` "
                f"({settings['prompts']})")
    return ""


def forwards_note(rows: list[dict[str, Any]]) -> str:
    """What one denoiser call costs in network forward passes (classifier-free guidance: 2), from the rows."""
    ratios = sorted({row["forwards"] / row["counted_nfe"] for row in rows if row.get("forwards") and
                     row.get("counted_nfe")})
    if not ratios:
        return "network forward passes were not recorded"
    return "network forward passes per call: " + " or ".join(f"{r:g}" for r in ratios)


def reference_count(row: dict[str, Any]) -> str:
    count = row.get("reference_samples")
    return "FID statistics" if row.get("reference_kind") == "npz" else f"{count if count else '?'} images"


def distinct(values: Iterable[Any]) -> list[Any]:
    return list({json.dumps(v, sort_keys=True): v for v in values}.values())


def header(section: Section, results: str) -> list[str]:
    """What a reader needs to trust and reproduce a section's tables."""
    s, rows = section.settings, section.rows
    first = rows[0]
    counts = {status: sum(row["status"] == status for row in rows) for status in ("ok", *MARKS)}
    versions = "; ".join(", ".join(f"{k} {v}" for k, v in sorted(vs.items()))
                         for vs in distinct(row.get("versions", {}) for row in rows))
    processes = max(row.get("processes", 1) for row in rows)
    lines = [
        f"- Checkpoint: `{s['checkpoint']}`" + (f", guidance scale {s['guidance_scale']}" if s["guidance_scale"]
                                                 else "") + conditioning(s, first),
        f"- Cost: NFE counts denoiser calls per sample; {forwards_note(rows)}",
        f"- Reference: {s['reference']} ({reference_count(first)}), features: {s['extractor']}"
        + (f" (weights sha256 {first['extractor_weights_sha256'][:12]})" if first.get("extractor_weights_sha256")
           else ""),
        f"- Samples: {s['samples']} per point, seeds {s['seed']}–{s['seed'] + s['samples'] - 1} (sample i uses seed "
        f"{s['seed']} + i); final step {s['final_step']}; {s['dtype']}",
        f"- Floor: {floor_text(first)}",
        f"- Device: {', '.join(distinct(row.get('device', '?') for row in rows))}"
        + (f", {processes} processes (torchrun)" if processes > 1 else ""),
        f"- Versions: {versions}",
        f"- Total wall time: {duration(sum(row.get('wall_seconds', 0.0) for row in rows))} over {len(rows)} points "
        f"({counts['ok']} measured, {counts['unreachable']} unreachable"
        + (f", {counts['nonfinite']} with non-finite samples" if counts["nonfinite"] else "") + ")",
        "- Points regenerated by (finished points are skipped):",
    ]
    return lines + [f"  - `{command}`" for command in bench_commands(section, results)]


def markdown(rows: list[dict[str, Any]], results: str, command: str) -> str:
    """The Markdown report of a results file's rows."""
    lines = [f"# Results: {results}", "", f"Regenerate this report: `{command}`. The CSV beside it has one line per "
             "point (long format: pivot it for any table).", ""]
    for section in sections(rows):
        reasons = unmeasured(section)
        notes = list(reasons)
        lines += [f"## {section.settings['checkpoint']}", "", *header(section, results), ""]
        for grid in grids(section):
            title = f"{TITLES.get(grid.metric, grid.metric)}, {grid.schedule} schedule"
            better = "higher" if grid.metric in HIGHER_IS_BETTER else "lower"
            lines += [f"### {title}", "", f"{better.capitalize()} is better; the best at each NFE (column) is in bold, "
                      "— marks an NFE the sampler cannot spend exactly and ✗ a point whose samples were not finite "
                      "(NaN/inf, not scored; see the notes), a blank was not run; "
                      "stochastic ? means the sampler is not installed here.", "",
                      *table(grid, notes), "", f"Best three at each NFE ({title}):", "", *podium(grid), ""]
        if reasons:
            lines += ["Points without a value:", ""]
            lines += [f"{n}. {name} at NFE {nfe}: {reason}"
                      for n, ((name, nfe), reason) in enumerate(reasons.items(), 1)]
            lines.append("")
    return "\n".join(lines)


def csv_text(rows: list[dict[str, Any]]) -> str:
    """Long format, one line per point (``pandas.read_csv`` then ``pivot`` gives any table); metrics and floors
    in their own columns (``fid``, ``kid``, ``kid_std``, ``floor_fid``, ...), blank when not measured."""
    metrics = sorted({name for row in rows for name in [*row.get("metrics", {}), *(
        key for m in row.get("metric_names", []) for key in METRIC_KEYS.get(m, (m,)))]})
    floors = sorted({name for row in rows for name in row.get("floor", {})})
    columns = [*CSV_COLUMNS, *metrics, *(f"floor_{name}" for name in floors), *CSV_TRAILING]
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        line = {key: row.get(key, "") for key in columns} | {"model_precision": row.get("precision", "")}
        line |= {name: row.get("metrics", {}).get(name, "") for name in metrics}
        line |= {f"floor_{name}": row.get("floor", {}).get(name, "") for name in floors}
        line |= {"options": json.dumps(row.get("options") or {}, sort_keys=True),
                 "schedule_options": json.dumps(row.get("schedule_options") or {}, sort_keys=True),
                 "guidance": row.get("guidance", "cfg"),
                 "guidance_options": json.dumps(row.get("guidance_options") or {}, sort_keys=True),
                 "stochastic": stochastic(row["sampler"])}
        writer.writerow({key: "" if v is None else v for key, v in line.items()})
    return out.getvalue()
