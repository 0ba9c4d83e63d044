"""The zoo command line: tables from the registry, one-line errors, non-zero exit on failure."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest
from rich.console import Console
from typer.testing import CliRunner

import samplerzoo as sz
from samplerzoo.cli import app, main, output

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


STARTUP_PROBE = """
import json, sys
from samplerzoo.cli import run
for args in json.loads(sys.argv[1]):
    assert run(args) == 0, args
heavy = ("torch", "torch_fidelity", "torchvision", "diffusers")
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules} & set(heavy))))
"""


@pytest.mark.parametrize(("commands", "imported"), [
    ([["--help"]], []),  # no torch at all: help is instant
    ([["list"], ["info", "euler"]], ["torch"]),  # the registry needs torch, but not the metrics or the loaders
])
def test_start_up_imports_only_what_the_command_needs(commands: list[list[str]], imported: list[str]) -> None:
    run = subprocess.run([sys.executable, "-c", STARTUP_PROBE, json.dumps(commands)], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "SAMPLERZOO_PLUGINS": "builtin"})
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout.splitlines()[-1]) == imported


def test_lazy_package_exports_every_public_name() -> None:
    assert sorted(sz.__all__) == sorted(sz.HOME) and all(getattr(sz, name) is not None for name in sz.__all__)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        sz.nope  # noqa: B018


@pytest.mark.parametrize("command", [["list"], ["schedules"], ["plugins"], ["checkpoints"]])
def test_tables_piped_or_narrow_keep_every_cell_whole(command: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    piped = runner.invoke(app, command, env={"COLUMNS": "30"})  # CliRunner's stdout is not a terminal
    assert piped.exit_code == 0 and "…" not in piped.stdout
    cells = {"list": ["euler_ancestral", "HeunDiscreteScheduler", "DPMSolverMultistepScheduler", "2*N-1"],
             "schedules": ["polyexponential", "log-uniform sigmas = uniform log-SNR steps (DPM-Solver's 'logSNR')"],
             "plugins": ["samplerzoo 0.1.0", "dpmpp_2m_sde_heun"], "checkpoints": ["digits-cond", "DiscreteVP"]}
    assert all(cell in piped.stdout for cell in cells[command[0]]), piped.stdout
    narrow = Console(file=io.StringIO(), force_terminal=True, width=40, color_system=None)
    monkeypatch.setattr(output, "stdout", narrow)
    assert runner.invoke(app, command).exit_code == 0
    assert "…" not in narrow.file.getvalue()  # type: ignore[attr-defined]  # cells wrap in a narrow terminal


@pytest.mark.parametrize(("command", "field"), [
    (["list", "--json"], "name"), (["schedules", "--json"], "name"), (["plugins", "--json"], "plugin"),
    (["checkpoints", "--json"], "name"), (["info", "dpm_2", "--json"], "name"),
])
def test_every_listing_prints_json(command: list[str], field: str) -> None:
    result = runner.invoke(app, command)
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert all(field in row for row in (data if isinstance(data, list) else [data]))
    if command[0] == "info":
        assert data["name"] == "dpm2" and data["options"] == ["s_churn", "s_tmin", "s_tmax", "s_noise", "afs"]
