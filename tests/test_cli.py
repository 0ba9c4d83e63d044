"""The zoo command line: tables from the registry, one-line errors, non-zero exit on failure."""

from __future__ import annotations

import json
import sys

import pytest
from typer.testing import CliRunner

import samplerzoo as sz
from samplerzoo.cli import app, main

runner = CliRunner()


def test_list_shows_every_sampler_as_json() -> None:
    result = runner.invoke(app, ["list", "--json"])
    assert result.exit_code == 0
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert set(rows) == set(sz.get_samplers())
    assert rows["heun"] == {"name": "heun", "aliases": ["HeunDiscreteScheduler", "edm_heun"], "order": 2,
                            "global_order": 2, "nfe": "2*steps-1", "evals_per_step": 2, "stochastic": False,
                            "plugin": "samplerzoo"}
    assert (rows["lms"]["order"], rows["lms"]["global_order"]) == (4, 2)  # 4th-order steps after an Euler start


def test_list_renders_a_table() -> None:
    result = runner.invoke(app, ["list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "euler_ancestral" in result.stdout and "stochastic" in result.stdout and "2*N-1" in result.stdout


def test_schedules_and_plugins() -> None:
    schedules = json.loads(runner.invoke(app, ["schedules", "--json"]).stdout)
    assert {"karras", "leading"} <= {row["name"] for row in schedules}
    ays = next(row for row in schedules if row["name"] == "ays")
    assert ays["argument"] == "sd15, sdxl or svd" and "Align Your Steps" in ays["paper"]
    plugins = runner.invoke(app, ["plugins"], env={"COLUMNS": "200"})
    assert plugins.exit_code == 0 and "builtin" in plugins.stdout


def test_info_describes_a_sampler_by_alias() -> None:
    result = runner.invoke(app, ["info", "KDPM2DiscreteScheduler"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "dpm2" in result.stdout and "2*N-1" in result.stdout


def test_unknown_sampler_is_one_line_and_exit_1(monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "argv", ["zoo", "info", "dpm3"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: unknown sampler 'dpm3'; did you mean dpm2")


def test_unknown_option_is_a_usage_error_not_a_traceback(monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "argv", ["zoo", "--bogus"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "No such option: --bogus" in err and "Traceback" not in err
