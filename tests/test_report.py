"""zoo report: Markdown tables with best values and unreachable marks, a long CSV, a log-log NFE-vs-FID plot."""

from __future__ import annotations

import csv
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from samplerzoo.bench.harness import Point
from samplerzoo.bench.report import markdown, plot, read_results, write_report
from samplerzoo.bench.results import ResultsFile
from samplerzoo.cli import main

FLOOR = {"fid": 1.79, "kid": 0.0275, "kid_std": 0.02}
REASON = "sampler 'heun' spends 2*steps-1 evaluations, so NFE 4 is unreachable; nearest reachable: 3, 5"


def row(sampler: str, nfe: int, fid: float | None, checkpoint: str = "digits", **extra: Any) -> dict[str, Any]:
    """A results row as harness.sweep writes it."""
    point = Point(checkpoint, sampler, "karras", nfe, 100, 7)
    base = {"key": point.key(), **asdict(point), "requested_nfe": nfe, "batch": 50, "device": "cpu",
            "versions": {"samplerzoo": "0.1.0", "torch": "2.14.1"}, "reference_samples": 1500, "floor": FLOOR,
            "floor_samples": 297}
    if fid is None:
        return {**base, "status": "unreachable", "reason": REASON}
    return {**base, "status": "ok", "counted_nfe": nfe, "steps": nfe, "final_step_used": "zero",
            "metrics": {"fid": fid, "kid": fid / 100, "kid_std": 0.01}, "wall_seconds": 30.0,
            "sampling_seconds": 20.0, "metric_seconds": 10.0, **extra}


ROWS = [row("euler", 3, 5.0), row("euler", 10, 0.5), row("heun", 3, 9.0), row("heun", 4, None),
        row("heun", 10, 0.25), row("euler_ancestral", 10, 0.75), row("my_plugin_sampler", 10, 2.0),
        row("euler", 3, 7.0, checkpoint="digits-v")]


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
    for fact in ("Samples: 100 per point, seeds 7–106", "digits-train (1500 images)", "FID 1.79, KID 0.0275",
                 "Floor (297 held-out real images", "Device: cpu", "samplerzoo 0.1.0, torch 2.14.1",
                 "Total wall time: 3 min 00 s over 7 points (6 measured, 1 unreachable)",
                 "`zoo bench --checkpoint digits --sampler heun --schedule karras --nfe 3,4,10 --samples 100 --seed 7 "
                 "--batch 50 --metrics fid,kid --final-step auto --dtype float32 --results sweep.jsonl`",
                 "--sampler euler_ancestral,my_plugin_sampler --schedule karras --nfe 10 --samples 100",
                 "### KID, karras schedule", "Regenerate this report: `zoo report sweep.jsonl`"):
        assert fact in text, fact


def test_csv_has_one_line_per_point_and_round_trips(results: Path, tmp_path: Path) -> None:
    write_report(results, tmp_path / "out")
    with (tmp_path / "out" / "sweep.csv").open() as f:
        lines = list(csv.DictReader(f))
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


def test_plot_is_log_log_with_a_line_per_sampler_and_the_floor(results: Path) -> None:
    figure = plot(read_results(results))
    digits, digits_v = figure.axes[:2]
    assert (digits.get_xscale(), digits.get_yscale()) == ("log", "log")
    lines = {line.get_label(): line for line in digits.get_lines()}
    assert sorted(lines) == ["euler", "euler_ancestral", "floor (297 held-out real images)", "heun",
                             "my_plugin_sampler"]
    assert list(lines["heun"].get_xdata()) == [3, 10] and list(lines["heun"].get_ydata()) == [9.0, 0.25]
    assert lines["euler"].get_linestyle() == "-" and lines["euler_ancestral"].get_linestyle() == "--"
    assert list(lines["floor (297 held-out real images)"].get_ydata()) == [FLOOR["fid"]] * 2
    assert digits_v.get_title().startswith("digits-v, karras schedule")


def test_report_command_writes_beside_the_results_file(results: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    with results.open("a") as f:
        f.write('{"key": "torn')  # a line still being written is left out
    monkeypatch.setattr(sys, "argv", ["zoo", "report", str(results)])
    main()
    written = [results.with_suffix(suffix) for suffix in (".md", ".csv", ".png")]
    assert capsys.readouterr().out.split() == [str(path) for path in written]
    assert written[2].read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert "| heun |  | 9 | —¹ | **0.25** |" in written[0].read_text()


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
