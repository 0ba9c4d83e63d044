"""zoo report: Markdown tables with best values and unreachable marks, a long CSV, a log-log NFE-vs-FID plot (best
samplers of each kind in color), a Pareto view, a self-contained HTML file with sortable tables."""

from __future__ import annotations

import csv
import io
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from samplerzoo.bench.grid import Point
from samplerzoo.bench.plots import frontier, pareto, plot
from samplerzoo.bench.report import csv_text, markdown, read_results
from samplerzoo.bench.results import ResultsFile
from samplerzoo.cli import main

FLOOR = {"fid": 1.79, "kid": 0.0275, "kid_std": 0.02}
REASON = "sampler 'heun' spends 2*steps-1 evaluations, so NFE 4 is unreachable; nearest reachable: 3, 5"


def row(sampler: str, nfe: int, fid: float | None, checkpoint: str = "digits", floor_samples: int = 100,
        **extra: Any) -> dict[str, Any]:
    """A results row as harness.sweep writes it."""
    point = Point(checkpoint, sampler, "karras", nfe, 100, 7)
    base = {"key": point.key(), **asdict(point), "requested_nfe": nfe, "batch": 50, "device": "cpu",
            "versions": {"samplerzoo": "0.1.0", "torch": "2.14.1"}, "reference_samples": 1500, "floor": FLOOR,
            "floor_samples": floor_samples, "floor_kind": "resampled"}
    if fid is None:
        return {**base, "status": "unreachable", "reason": REASON}
    return {**base, "status": "ok", "counted_nfe": nfe, "steps": nfe, "final_step_used": "zero",
            "metrics": {"fid": fid, "kid": fid / 100, "kid_std": 0.01}, "wall_seconds": 30.0,
            "sampling_seconds": 20.0, "metric_seconds": 10.0, **extra}


ROWS = [row("euler", 3, 5.0), row("euler", 10, 0.5), row("heun", 3, 9.0), row("heun", 4, None),
        row("heun", 10, 0.25), row("euler_ancestral", 10, 0.75), row("my_plugin_sampler", 10, 2.0),
        row("euler", 3, 7.0, checkpoint="digits-v", floor_samples=297)]


@pytest.fixture
def results(tmp_path: Path) -> Path:
    file = ResultsFile(tmp_path / "sweep.jsonl")
    for r in ROWS:
        file.append(r)
    return file.path


def fid_table(text: str, checkpoint: str = "digits") -> list[list[str]]:
    section = text.split(f"## {checkpoint}\n")[1].split("### FID, karras schedule")[1]
    return [[c.strip() for c in line.strip("|").split("|")] for line in section.split("\n\n")[2].splitlines()]


def test_markdown_tables_mark_the_best_unreachable_and_missing_points(results: Path) -> None:
    text = markdown(read_results(results), "sweep.jsonl", "zoo report sweep.jsonl")
    table = fid_table(text)
    assert table[0] == ["sampler", "stochastic", "3", "4", "10"]
    body = {cells[0]: cells[1:] for cells in table[2:]}
    assert list(body) == ["euler", "heun", "euler_ancestral", "my_plugin_sampler"]  # ODE, SDE, not installed
    assert body["euler"] == ["", "**5**", "", "0.5"]
    assert body["heun"] == ["", "9", "—¹", "**0.25**"]
    assert body["euler_ancestral"] == ["yes", "", "", "0.75"] and body["my_plugin_sampler"] == ["?", "", "", "2"]
    assert f"1. heun at NFE 4: {REASON}" in text
    assert "| 10 | heun 0.25 | euler 0.5 | euler_ancestral 0.75 |" in text and "| 4 |  |  |  |" in text
    assert fid_table(text, "digits-v")[2] == ["euler", "", "**7**"]  # another checkpoint: its own section
    floor = "Floor: FID 1.79, KID 0.0275 (100 reference images drawn with replacement, seed 0, scored against"
    assert floor in text.split("## digits-v")[0]
    assert ("Floor: not shown: measured on 297 held-out images, not comparable with 100-sample points"
            in text.split("## digits-v")[1])  # rows written before the resampled floor
    for fact in ("Samples: 100 per point, seeds 7–106", "digits-train (1500 images)", "Device: cpu",
                 "samplerzoo 0.1.0, torch 2.14.1",
                 "Total wall time: 3 min 00 s over 7 points (6 measured, 1 unreachable)",
                 "`zoo bench --checkpoint digits --sampler heun --schedule karras --nfe 3,4,10 --samples 100 --seed 7 "
                 "--batch 50 --metrics fid,kid --final-step auto --dtype float32 --results sweep.jsonl`",
                 "--sampler euler_ancestral,my_plugin_sampler --schedule karras --nfe 10 --samples 100",
                 "### KID, karras schedule", "Regenerate this report: `zoo report sweep.jsonl`"):
        assert fact in text, fact


def test_csv_has_one_line_per_point_and_round_trips(results: Path) -> None:
    lines = list(csv.DictReader(io.StringIO(csv_text(read_results(results)))))
    assert len(lines) == len(ROWS)
    for line, original in zip(lines, ROWS, strict=True):
        assert (line["checkpoint"], line["sampler"], int(line["requested_nfe"])) == (
            original["checkpoint"], original["sampler"], original["nfe"])
        assert line["status"] == original["status"] and float(line["floor_fid"]) == FLOOR["fid"]
        if original["status"] == "ok":
            assert float(line["fid"]) == original["metrics"]["fid"] and float(line["kid"]) == original["metrics"]["kid"]
        else:
            assert line["fid"] == "" and line["reason"] == REASON
    assert [line["stochastic"] for line in lines[4:7]] == ["False", "True", ""]


def test_plot_has_a_panel_per_kind_with_the_best_in_color_on_log_axes_and_a_comparable_floor(results: Path) -> None:
    figure = plot(read_results(results))
    deterministic, stochastic, not_installed, digits_v = figure.axes  # the second row's empty panels are removed
    assert (deterministic.get_xscale(), deterministic.get_yscale()) == ("log", "log")
    lines = {line.get_label(): line for line in deterministic.get_lines()}
    assert sorted(lines) == ["1. euler", "2. heun", "floor (100 reference images resampled)"]  # tied: by name
    assert list(lines["2. heun"].get_xdata()) == [3, 10] and list(lines["2. heun"].get_ydata()) == [9.0, 0.25]
    assert list(lines["floor (100 reference images resampled)"].get_ydata()) == [FLOOR["fid"]] * 2
    assert next(line.get_label() for line in stochastic.get_lines()) == "1. euler_ancestral"
    assert "stochastic samplers" in stochastic.get_title() and "not installed" in not_installed.get_title()
    ticks = [t.get_text() for t in deterministic.yaxis.get_majorticklabels()]
    assert {"0.5", "1", "2", "5"} <= set(ticks)  # real numbers on the log axis, not one 10^0
    assert digits_v.get_title().startswith("digits-v, karras schedule: deterministic")
    assert not [line for line in digits_v.get_lines() if line.get_label().startswith("floor")]  # not comparable


def test_many_samplers_are_readable_the_best_six_in_color_the_rest_faint() -> None:
    rows = [row(f"s{i:02d}", nfe, (i + 1) * 10 / nfe) for i in range(30) for nfe in (5, 10, 20)]
    (ax,) = plot(rows).axes  # not installed: one panel
    labels = [line.get_label() for line in ax.get_lines() if not line.get_label().startswith(("_", "floor"))]
    assert labels == ["1. s00", "2. s01", "3. s02", "4. s03", "5. s04", "6. s05", "24 other samplers"]
    faint = [line for line in ax.get_lines() if line.get_label().startswith("_")]
    assert len(faint) == 24 and all(line.get_alpha() < 0.5 for line in faint)


def test_pareto_front_is_the_points_no_other_beats_in_both_time_and_metric() -> None:
    points = [(1.0, 9.0, "a"), (2.0, 5.0, "b"), (3.0, 6.0, "c"), (4.0, 1.0, "d"), (0.5, 20.0, "e")]
    assert frontier(points) == [(0.5, 20.0, "e"), (1.0, 9.0, "a"), (2.0, 5.0, "b"), (4.0, 1.0, "d")]
    rows = [row("euler", 3, 5.0, sampling_seconds=1.0), row("heun", 3, 9.0, sampling_seconds=2.0),
            row("heun", 10, 0.25, sampling_seconds=4.0)]
    (ax,) = pareto(rows).axes
    front = next(line for line in ax.get_lines() if line.get_label() == "Pareto front")
    assert list(front.get_xdata()) == [1.0, 4.0] and list(front.get_ydata()) == [5.0, 0.25]
    assert (ax.get_xscale(), ax.get_yscale()) == ("log", "log")


def test_report_command_writes_beside_the_results_file(results: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    with results.open("a") as f:
        f.write('{"key": "torn')  # a line still being written is left out
    monkeypatch.setattr(sys, "argv", ["zoo", "report", str(results)])
    main()
    written = [results.parent / (results.stem + suffix) for suffix in (".md", ".csv", ".png", "-pareto.png", ".html")]
    assert capsys.readouterr().out.split() == [str(path) for path in written]
    assert all(path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") for path in written[2:4])
    assert "| heun |  | 9 | —¹ | **0.25** |" in written[0].read_text()
    page = written[4].read_text()
    assert page.count("data:image/png;base64,") == 2 and "<script src" not in page and 'src="http' not in page
    assert page.count('<table class="sortable">') == 4 + 1  # FID and KID for each checkpoint, and all points
    assert '<td data-value="0.25" class="best">0.25</td>' in page and "addEventListener('click'" in page


@pytest.mark.parametrize(("content", "warning", "message"), [
    (None, "", "no such results file"), ("", "", "no results rows"),
    ("not json\n{}\n", "skipped 2 line(s) that are not results rows (line 1, 2)", "no results rows"),
    ('{"sampler": "euler"}\n', "skipped 1 line(s) that are not results rows (line 1)", "no results rows"),
])
def test_report_errors_are_one_line(content: str | None, warning: str, message: str, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "sweep.jsonl"
    if content is not None:
        path.write_text(content)
    monkeypatch.setattr(sys, "argv", ["zoo", "report", str(path)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    lines = capsys.readouterr().err.splitlines()
    if warning:  # odd lines: the one warning the results file's policy gives, then the error
        assert lines[0].startswith("warning: ") and warning in lines[0], lines
        lines = lines[1:]
    assert exit_info.value.code == 1 and len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
