"""Fault injection: non-finite samples, concurrent writers, torn and odd results files, interrupts, damaged caches and
bad input. Whatever goes wrong, no number is reported for it, no row is lost, and no traceback is printed."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from cli_driver import zoo
from torch import Tensor

import samplerzoo as sz
from samplerzoo import plugins
from samplerzoo.bench import cache, grid, harness
from samplerzoo.bench.plots import plot
from samplerzoo.bench.references import resolve
from samplerzoo.bench.report import csv_text, markdown, read_results
from samplerzoo.bench.results import ResultsFile
from samplerzoo.errors import SamplerzooWarning

SMALL = {"samples": 16, "seed": 0, "metric_names": ("fid",)}
ZOO = [sys.executable, "-c", "from samplerzoo.cli import main; main()"]


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One reference-feature cache for this module's sweeps (the cache tests use their own)."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(autouse=True)
def cache_folder(shared_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAMPLERZOO_CACHE", str(shared_cache))


def environment() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "SAMPLERZOO_PLUGINS": "builtin"}


class NaNDenoiser:
    """A checkpoint whose network returns NaN: the fault a broken model or a bad dtype produces."""

    sigma_min, sigma_max, sigma_data, sigma_table = 0.002, 80.0, 0.5, None
    sample_shape, num_classes = (1, 8, 8), 0

    def __call__(self, x: Tensor, sigma: Tensor, **cond: Any) -> Tensor:
        return torch.full_like(x, torch.nan)


class NaNPlugin:
    @sz.hookimpl
    def register_checkpoints(self, register: Any) -> None:
        register(sz.CheckpointSpec("nan-model", NaNDenoiser, "returns NaN"))


@pytest.fixture
def nan_model() -> Iterator[str]:
    plugins.register_plugin(NaNPlugin(), "nan-plugin")
    yield "nan-model"
    plugins.unregister_plugin("nan-plugin")


# --- 1. non-finite samples are never scored ---------------------------------------------------------------


def test_generate_counts_nonfinite_samples_and_strict_raises() -> None:
    run = sz.generate(NaNDenoiser(), "heun", 5, range(4), (1, 8, 8))
    assert (run.nonfinite, run.first_nonfinite_step, run.finite) == (4, 0, False)
    assert run.nonfinite_reason() == "4 of 4 samples are not finite (NaN or inf, first in step 0 of 3)"
    with pytest.raises(sz.NonFiniteError, match="sampler 'heun': 4 of 4 samples are not finite"):
        sz.generate(NaNDenoiser(), "heun", 5, range(4), (1, 8, 8), strict=True)
    fine = sz.generate(sz.Gaussian(torch.zeros(4), 0.5), "heun", 5, range(4), (4,), strict=True)
    assert (fine.nonfinite, fine.first_nonfinite_step, fine.finite) == (0, None, True)


def test_the_first_nonfinite_step_is_where_the_state_blew_up() -> None:
    model = sz.Gaussian(torch.zeros(4), 0.5)

    def late_nan(x: Tensor, sigma: Tensor) -> Tensor:  # finite above sigma 1, NaN below
        return torch.where(sigma.reshape(-1, 1) < 1, torch.nan, model(x, sigma))

    late_nan.sigma_min, late_nan.sigma_max, late_nan.sigma_data, late_nan.sigma_table = 0.002, 80.0, 0.5, None  # type: ignore[attr-defined]
    run = sz.generate(late_nan, "euler", 10, range(3), (4,))  # type: ignore[arg-type]
    sigmas = run.sigmas
    assert run.nonfinite == 3 and sigmas[run.first_nonfinite_step] < 1 <= sigmas[run.first_nonfinite_step - 1]


@pytest.mark.parametrize(("checkpoint", "sampler", "nfe", "options"), [
    ("nan-model", "euler", 3, {}), ("digits", "pc", 4, {"snr": 1e4}), ("digits-ideal", "langevin", 101,
                                                                      {"step_lr": 100.0}),
])
def test_a_nonfinite_point_has_its_own_status_and_no_metrics(checkpoint: str, sampler: str, nfe: int,
                                                             options: dict[str, float], nan_model: str,
                                                             tmp_path: Path) -> None:
    (row,) = harness.sweep(checkpoint, [sampler], ["karras"], [nfe], results=tmp_path / "r.jsonl", batch=8,
                           options=options, **SMALL)
    assert row["status"] == "nonfinite" and "metrics" not in row and row["nonfinite_samples"] == 16
    assert row["first_nonfinite_step"] is not None and "16 of 16 samples are not finite" in row["reason"]
    assert ResultsFile(tmp_path / "r.jsonl").finished_keys() == {row["key"]}  # finished: a rerun skips it
    text = markdown(read_results(tmp_path / "r.jsonl"), "r.jsonl", "zoo report r.jsonl")
    assert "✗¹" in text and f"at NFE {nfe}: 16 of 16 samples are not finite" in text.split("Points without a value")[1]
    assert "(0 measured, 0 unreachable, 1 with non-finite samples)" in text
    (line,) = csv.DictReader(io.StringIO(csv_text(read_results(tmp_path / "r.jsonl"))))
    assert (line["status"], line["fid"], line["nonfinite_samples"]) == ("nonfinite", "", "16")
    (axes,) = plot(read_results(tmp_path / "r.jsonl")).axes
    marks = [line for line in axes.get_lines() if line.get_label() == "non-finite samples (not scored)"]
    assert len(marks) == 1 and list(marks[0].get_xdata()) == [nfe]  # at the panel's top edge, at its NFE


def test_bench_and_sample_say_so_on_the_command_line(nan_model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = zoo(["bench", "--checkpoint", nan_model, "--sampler", "euler", "--nfe", "2", "--samples", "8",
                        "--metrics", "fid", "--results", str(tmp_path / "r.jsonl")], monkeypatch, capsys)
    assert code == 0 and "nonfinite: 8 of 8 samples are not finite" in out
    code, out, err = zoo(["sample", "--checkpoint", "digits", "--sampler", "pc", "--option", "snr=1e4", "--nfe", "4",
                          "-n", "4", "--out", str(tmp_path / "grid.png")], monkeypatch, capsys)
    assert code == 1 and err.count("\n") == 1 and not (tmp_path / "grid.png").exists()
    assert err.startswith("error: 4 of 4 samples are not finite (NaN or inf, first in step 0 of 2); no grid written")


# --- 2. concurrent writers lose nothing and compute nothing twice ---------------------------------------------

APPENDER = """
import sys
from samplerzoo.bench.results import ResultsFile
path, writer, rows = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
file = ResultsFile(path)
for i in range(rows):
    key = f"{writer}-{i}"
    file.append({"key": key, "checkpoint": "c", "sampler": "s", "schedule": "k", "requested_nfe": i,
                 "status": "unreachable", "reason": "x" * (i % 7) * 500})
"""


def test_four_concurrent_appenders_lose_no_row(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text('{"key": "hand-edited", "checkpoint": "c", "sampler": "s", "schedule": "k", "requested_nfe": 1, '
                    '"status": "unreachable", "reason": "no newline"}')  # a complete last row without its newline
    writers = [subprocess.Popen([sys.executable, "-c", APPENDER, str(path), str(w), "100"]) for w in range(4)]
    assert [w.wait(timeout=120) for w in writers] == [0] * 4
    reading = ResultsFile(path).read()
    assert reading.odd == [] and reading.duplicates == []
    assert sorted(row["key"] for row in reading.rows) == sorted(["hand-edited",
                                                                 *(f"{w}-{i}" for w in range(4) for i in range(100))])


def test_a_point_claimed_by_another_process_is_read_back_not_recomputed(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    other = grid.Point("digits-ideal", "euler", "karras", 3, **SMALL)  # type: ignore[arg-type]
    row = {"key": other.key(), "checkpoint": "digits-ideal", "sampler": "euler", "schedule": "karras",
           "requested_nfe": 3, "status": "ok", "metrics": {"fid": 123.0}}
    claimed, release = threading.Event(), threading.Event()

    def other_process() -> None:
        with ResultsFile(path).claim(other.key(), wait=False) as mine:
            assert mine
            claimed.set()
            release.wait(60)
            ResultsFile(path).append(row)  # it finishes the point while the sweep waits

    thread = threading.Thread(target=other_process)
    thread.start()
    claimed.wait(60)
    started: list[int] = []

    def start_point(point: grid.Point, total: int) -> None:
        started.append(point.nfe)
        if len(started) == 2:
            release.set()

    rows = harness.sweep("digits-ideal", ["euler"], ["karras"], [2, 3, 4], results=path, batch=16,
                         progress=harness.Progress(start_point=start_point), **SMALL)
    thread.join()
    assert started == [2, 4] and rows[1] == row and [r["requested_nfe"] for r in rows] == [2, 3, 4]
    assert len(ResultsFile(path).read().rows) == 3


def test_two_zoo_bench_runs_on_one_file_share_the_points(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "r.jsonl"
    args = ["bench", "--checkpoint", "digits-ideal", "--sampler", "euler,heun", "--nfe", "2,3,4", "--samples", "64",
            "--batch", "16", "--metrics", "fid", "--json", "--results", str(path)]
    other = subprocess.Popen([*ZOO, *args], env=environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    while not (tmp_path / ".r.jsonl.locks").is_dir() and other.poll() is None:  # its checks are done: now this
        time.sleep(0.05)  # process runs the same sweep, at the same time
    code, out, err = zoo(args, monkeypatch, capsys)
    outputs = [other.communicate(timeout=300), (out, err)]
    assert [other.returncode, code] == [0, 0], outputs
    assert not any("Traceback" in out + err for out, err in outputs)
    keys = [json.loads(line)["key"] for line in path.read_text().splitlines()]
    assert len(keys) == 6 and len(set(keys)) == 6  # each point computed once, by one of the two
    for out, _ in outputs:  # and both report all six, with the same numbers
        assert sorted((r["key"], r["metrics"]["fid"]) for r in json.loads(out)) == sorted(
            (r["key"], r["metrics"]["fid"]) for r in ResultsFile(path).read().rows)


# --- 3. one policy for odd rows, shared by zoo bench and zoo report -------------------------------------------


def test_odd_rows_are_skipped_with_one_warning_kept_in_the_file_and_never_finished(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "r.jsonl"
    point = grid.Point("digits-ideal", "euler", "karras", 2, 8, 0, metric_names=("fid",))
    odd = (b"garbage\n\x89PNG\r\n\x1a\n\xff\xfe binary\n" + json.dumps({"key": point.key()}).encode() + b"\n"
           + b'{"key": "torn')
    path.write_bytes(odd)
    bench = ["bench", "--checkpoint", "digits-ideal", "--sampler", "euler", "--nfe", "2", "--samples", "8",
             "--metrics", "fid", "--results", str(path)]
    code, out, err = zoo(bench, monkeypatch, capsys)
    warning = f"warning: {path}: skipped 6 line(s) that are not results rows (line 1, 2, 3, 4, 5, 6)"
    assert code == 0 and err.splitlines()[0].startswith(warning) and " ok" in out  # the keyed stub is not finished
    assert path.read_bytes().startswith(odd + b"\n")  # left as it was; the torn tail got its newline
    code, out, err = zoo(["report", str(path)], monkeypatch, capsys)
    assert code == 0 and err.splitlines() == [f"{warning}; the file is left as it is"]
    code, _, err = zoo(bench, monkeypatch, capsys)  # the rerun finds the point finished
    with pytest.warns(SamplerzooWarning, match="skipped 6 line"):
        assert code == 0 and len(ResultsFile(path).read().rows) == 1


def test_a_binary_results_file_is_warned_about_not_a_crash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "r.jsonl"
    path.write_bytes(bytes(range(11, 256)) * 4)  # no newline: one binary line
    code, _, err = zoo(["report", str(path)], monkeypatch, capsys)
    assert code == 1 and err.splitlines()[-1] == f"error: {path}: no results rows"
    assert err.startswith(f"warning: {path}: skipped 1 line(s) that are not results rows (line 1)")


def test_a_complete_row_without_its_newline_is_kept(tmp_path: Path) -> None:
    file = ResultsFile(tmp_path / "r.jsonl")
    rows = [{"key": k, "checkpoint": "c", "sampler": "s", "schedule": "k", "requested_nfe": 1, "status": "unreachable",
             "reason": ""} for k in "ab"]
    file.path.write_text(json.dumps(rows[0]))  # a hand edit that dropped the newline
    file.append(rows[1])
    assert file.read().rows == rows and file.path.read_text().count("\n") == 2


def test_duplicate_keys_count_once_in_bench_and_report(tmp_path: Path) -> None:
    (row,) = harness.sweep("digits-ideal", ["euler"], ["karras"], [2], results=tmp_path / "r.jsonl", batch=8, **SMALL)
    ResultsFile(tmp_path / "r.jsonl").append({**row, "metrics": {"fid": -1.0}})  # an old writer's duplicate
    with pytest.warns(SamplerzooWarning, match=r"counted 1 duplicate row\(s\) once \(line 2\)"):
        assert [r["metrics"] for r in read_results(tmp_path / "r.jsonl")] == [row["metrics"]]
    with pytest.warns(SamplerzooWarning):
        again = harness.sweep("digits-ideal", ["euler"], ["karras"], [2], results=tmp_path / "r.jsonl", **SMALL)
    assert [r["metrics"] for r in again] == [row["metrics"]]


# --- 4. interrupts --------------------------------------------------------------------------------------------


INTERRUPTED = """
import faulthandler, json, signal, sys
from samplerzoo.cli import run
faulthandler.register(signal.SIGUSR1, all_threads=True)
codes = [run(["bench", "--checkpoint", "digits-ideal", "--sampler", "euler", "--nfe", "1,400,500", "--samples", "1000",
              "--batch", "100", "--metrics", "fid", "--results", path]) for path in sys.argv[1:]]
print(json.dumps(codes))
"""


def test_ctrl_c_and_sigterm_keep_finished_points_and_say_where(tmp_path: Path) -> None:
    """One real process runs two sweeps, the first stopped by SIGINT and the second by SIGTERM, each just after its
    first point is written (during the second)."""
    paths = {signal.SIGINT: tmp_path / "int.jsonl", signal.SIGTERM: tmp_path / "term.jsonl"}
    run = subprocess.Popen([sys.executable, "-c", INTERRUPTED, *map(str, paths.values())], env=environment(),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240
    for signum, path in paths.items():
        while not (path.is_file() and path.read_text().count("\n")) and time.monotonic() < deadline:
            time.sleep(0.05)
        run.send_signal(signum)
    try:
        out, err = run.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        run.send_signal(signal.SIGUSR1)  # faulthandler: where is it stuck?
        time.sleep(3)
        run.kill()
        pytest.fail(f"the signals did not stop zoo bench: {run.communicate()[1]}")
    assert run.returncode == 0 and json.loads(out) == [130, 143] and "Traceback" not in out + err, err
    lines = err.splitlines()
    assert len(lines) == 2, lines
    for line, (signum, path) in zip(lines, paths.items(), strict=True):
        name = "Ctrl-C (SIGINT)" if signum == signal.SIGINT else "SIGTERM"
        assert line.startswith(f"interrupted by {name}: 1 of 3 points of this sweep are kept in {path}; ")
        assert line.endswith("; rerun the same command to resume") and ("interrupted and not written" not in line
                                                                       or "euler karras NFE 400 was" in line), line
        reading = ResultsFile(path).read()
        assert [row["requested_nfe"] for row in reading.rows] == [1] and reading.odd == []


# --- 5. caches repair themselves ------------------------------------------------------------------------------


def reference_features() -> dict[str, Tensor]:
    meter = harness.Meter(("fid",))
    return meter.reference_features(resolve("digits-train"))


@pytest.mark.parametrize("damage", ["garbage", "empty", "truncated"])
def test_a_damaged_cache_file_is_recomputed_and_replaced(damage: str, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAMPLERZOO_CACHE", str(tmp_path / "cache"))
    fresh = reference_features()
    (path,) = cache.cache_root().glob("*.safetensors")
    data = path.read_bytes()
    path.write_bytes({"garbage": b"not a safetensors file", "empty": b"", "truncated": data[: len(data) // 2]}[damage])
    with pytest.warns(SamplerzooWarning, match="are unusable .*; recomputed and replaced"):
        again = reference_features()
    assert again.keys() == fresh.keys() and all(torch.equal(again[k], fresh[k]) for k in fresh)
    assert cache.read_features(path)[0] is not None  # replaced by a whole file
    assert list(path.parent.glob("*.tmp")) == []


def test_an_unwritable_cache_folder_means_no_caching_and_one_warning_before_sampling(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAMPLERZOO_CACHE", "/proc/samplerzoo-cache")
    seen_at_first_point: list[int] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        (row,) = harness.sweep("digits-ideal", ["euler"], ["karras"], [2], results=tmp_path / "r.jsonl", batch=8,
                               progress=harness.Progress(start_point=lambda p, t: seen_at_first_point.append(
                                   len(caught))), **SMALL)
    messages = [str(w.message) for w in caught if w.category is SamplerzooWarning]
    assert row["status"] == "ok" and messages and seen_at_first_point[0] >= 1
    assert messages[0] == ("cache folder /proc/samplerzoo-cache/features cannot be written (No such file or directory);"
                           " reference features are computed without caching (set SAMPLERZOO_CACHE to a writable "
                           "folder)")


# --- 6. every input is checked before any work, in one line ---------------------------------------------------

BENCH = ["bench", "--checkpoint", "digits-ideal", "--sampler", "euler", "--nfe", "2", "--samples", "8"]


@pytest.mark.parametrize(("args", "message"), [
    (["sample", "-n", "0"], "error: -n 0: accepted: a whole number of samples, 1 or more"),
    (["sample", "-n", "-5"], "error: -n -5: accepted: a whole number of samples, 1 or more"),
    (["sample", "--scale", "0"], "error: --scale 0: accepted: a whole number from 1 to 64"),
    (["sample", "--nfe", "0"], "error: --nfe 0: accepted: a whole number of network evaluations, 1 or more"),
    (["sample", "--out", "{tmp}/file.txt/grid.png"], "error: --out {tmp}/file.txt/grid.png: {tmp}/file.txt is a file, "
                                                     "not a folder; accepted:"),
    (["sample", "--out", "/proc/grid.png"], "error: --out /proc/grid.png cannot be written (No such file or "
                                            "directory); accepted: a file whose folder exists or can be made"),
    (["sample", "--out", "{tmp}"], "error: --out {tmp}: accepted: a .png file path"),
    (["sample", "--checkpoint", "digits-ideal", "--guidance-scale", "3", "--out", "{tmp}/g.png"],
     "error: guidance scale 3.0: classifier-free guidance needs a conditional checkpoint; this one is unconditional"),
    (["sample", "--sampler", "euler", "--option", "snr=1", "--out", "{tmp}/g.png"],
     "error: sampler 'euler' has no option 'snr'; accepted: afs, s_churn, s_noise, s_tmax, s_tmin"),
    ([*BENCH, "--samples", "0"], "error: --samples 0: accepted: a whole number of samples per point, 1 or more"),
    ([*BENCH, "--batch", "0"], "error: --batch 0: accepted: a whole number of samples per batch, 1 or more"),
    ([*BENCH, "--batch", "-1"], "error: --batch -1: accepted: a whole number of samples per batch, 1 or more"),
    ([*BENCH, "--nfe", "0,2"], "error: --nfe must be positive integers, got '0,2'"),
    ([*BENCH, "--results", "{tmp}"], "error: results file {tmp} is a folder; accepted: a file whose folder exists"),
    ([*BENCH, "--results", "{tmp}/file.txt/r.jsonl"], "error: results file {tmp}/file.txt/r.jsonl: {tmp}/file.txt is "
                                                      "a file, not a folder"),
    ([*BENCH, "--results", "/proc/r.jsonl"], "error: results file /proc/r.jsonl cannot be written"),
    ([*BENCH, "--guidance-scale", "3"], "error: guidance scale 3.0: classifier-free guidance needs a conditional"),
    ([*BENCH, "--option", "eta"], "error: --option 'eta': accepted: NAME=VALUE or NAME=V1,V2,... (a sweep axis), "
                                  "e.g. eta=0,0.5,1"),
    ([*BENCH, "--final-step", "never"], "error: unknown final step 'never'; known: auto, denoise, sigma_min, zero"),
    ([*BENCH, "--dtype", "int8"], "error: unknown dtype 'int8'; accepted: float32, float64, bfloat16, float16"),
])
def test_bad_input_is_one_line_before_any_work(args: list[str], message: str, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
                                               ) -> None:
    (tmp_path / "file.txt").write_text("a file where a folder is expected")
    monkeypatch.chdir(tmp_path)
    code, _, err = zoo([a.format(tmp=tmp_path) for a in args], monkeypatch, capsys)
    assert code == 1 and err.startswith(message.format(tmp=tmp_path)) and err.count("\n") == 1, err
    assert set(os.listdir(tmp_path)) <= {"file.txt", "cache"}  # no results file, no grid, no folder made


def test_names_given_twice_run_once_with_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = zoo([*BENCH, "--sampler", "euler,EulerDiscreteScheduler", "--nfe", "2,2", "--metrics", "fid",
                          "--json", "--results", str(tmp_path / "r.jsonl")], monkeypatch, capsys)
    assert code == 0 and len(json.loads(out)) == 1
    assert err.splitlines() == [
        "warning: sampler euler is listed 2 times (euler, EulerDiscreteScheduler); it runs once",
        "warning: NFE 2 is listed 2 times (2, 2); it runs once"]
