"""The benchmark harness: exact NFE per point, per-sample seeds, crash-safe resumable results, clear errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
import torch_fidelity

import samplerzoo as sz
from samplerzoo.bench import grid, harness
from samplerzoo.bench.metrics import DIGITS_EXTRACTOR, NAMES, TensorImages, measure
from samplerzoo.bench.results import ResultsFile
from samplerzoo.cli import main
from samplerzoo.data import to_uint8
from samplerzoo.errors import SamplerzooWarning

SMALL = {"samples": 40, "seed": 0, "metric_names": ("fid",)}


@pytest.fixture(autouse=True)
def private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAMPLERZOO_CACHE", str(tmp_path / "cache"))


def test_points_spend_exactly_their_nfe_and_unreachable_ones_say_why(tmp_path: Path) -> None:
    rows = harness.sweep("digits-ideal", ["heun"], ["karras"], [5, 6], results=tmp_path / "r.jsonl", batch=20,
                         final_step="zero", **SMALL)
    ok, unreachable = rows
    assert ok["status"] == "ok" and ok["counted_nfe"] == ok["requested_nfe"] == 5 and ok["metrics"]["fid"] > 0
    assert unreachable["status"] == "unreachable" and "NFE 6 is unreachable; nearest reachable: 5, 7" in unreachable[
        "reason"]
    assert [json.loads(line)["requested_nfe"] for line in (tmp_path / "r.jsonl").read_text().splitlines()] == [5, 6]
    assert {"versions", "device", "wall_seconds", "seed", "samples", "schedule", "options"} <= set(ok)
    assert ok["noise"] == "counter"  # generate()'s default noise source, recorded


def test_images_and_metrics_do_not_depend_on_batch_size(tmp_path: Path) -> None:
    runs = [sz.generate(sz.load("digits-ideal"), "euler_ancestral", 4, seeds, (1, 8, 8)).samples
            for seeds in (range(40), range(32, 40))]
    assert torch.equal(runs[0][32:], runs[1])  # a sample is a function of its own seed alone
    fid = [harness.sweep("digits-ideal", ["euler_ancestral"], ["karras"], [4], results=tmp_path / f"{b}.jsonl",
                         batch=b, **SMALL)[0]["metrics"]["fid"] for b in (8, 40)]
    # Same images; the classifier's float32 features may round differently at another batch size (BLAS picks
    # its kernels by shape), which moves FID in the 8th digit.
    assert fid[0] == pytest.approx(fid[1], rel=1e-6)


def test_the_noise_source_is_part_of_a_point_and_recorded_in_its_row(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    rows = [harness.sweep("digits-ideal", ["euler_ancestral"], ["karras"], [4], results=path, batch=20, noise=noise,
                          **SMALL)[0] for noise in ("counter", "torch")]
    assert [row["noise"] for row in rows] == ["counter", "torch"] and rows[0]["key"] != rows[1]["key"]
    assert rows[0]["metrics"]["fid"] != rows[1]["metrics"]["fid"]  # the same seeds, other noise, other images
    assert len(list(ResultsFile(path).rows())) == 2


def test_rerun_skips_finished_points_and_a_crash_loses_none(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    started: list[int] = []

    def crash_on_second(point: grid.Point, total: int) -> None:
        started.append(point.nfe)
        if len(started) == 2:
            raise KeyboardInterrupt  # killed while the second point runs

    with pytest.raises(KeyboardInterrupt):
        harness.sweep("digits-ideal", ["euler"], ["karras"], [3, 4, 5], results=path, batch=20,
                      progress=harness.Progress(start_point=crash_on_second), **SMALL)
    assert [row["requested_nfe"] for row in ResultsFile(path).rows()] == [3]
    with path.open("a") as f:
        f.write('{"key": "torn')  # and the process died mid-write of a line
    started.clear()
    with pytest.warns(SamplerzooWarning, match="skipped 1 line.* not results rows .line 2"):
        rows = harness.sweep("digits-ideal", ["euler"], ["karras"], [3, 4, 5], results=path, batch=20,
                             progress=harness.Progress(start_point=lambda p, t: started.append(p.nfe)), **SMALL)
    assert started == [4, 5] and [row["requested_nfe"] for row in rows] == [3, 4, 5]
    lines = path.read_text().splitlines()  # the torn line was ended, not deleted: rows never run into it
    assert lines[1] == '{"key": "torn' and [json.loads(lines[i])["requested_nfe"] for i in (0, 2, 3)] == [3, 4, 5]


def test_metrics_from_batched_features_equal_torch_fidelity() -> None:
    reference = harness.reference_images("digits-train")
    real = harness.reference_images("digits-test").images.float()
    noisy = (real + 40 * torch.randn(real.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 255)
    samples = TensorImages(noisy.to(torch.uint8))
    ours = measure(samples, reference, "digits-train", ["fid", "kid", "isc", "prc"], batch=50)
    theirs = torch_fidelity.calculate_metrics(
        input1=samples, input2=reference, fid=True, kid=True, isc=True, prc=True, feature_extractor=DIGITS_EXTRACTOR,
        kid_subset_size=len(samples), cache=False, cuda=False, save_cpu_ram=True, verbose=False)
    assert ours == {name: theirs[key] for key, name in NAMES.items()}
    assert ours["fid"] > 1 and ours["isc"] > 1 and 0 < ours["precision"] < 1 and 0 < ours["recall"] < 1


@pytest.mark.parametrize(("args", "message"), [
    (["--sampler", "dpm3"], "error: unknown sampler 'dpm3'; did you mean dpm2"),
    (["--nfe", "10,x"], "error: --nfe must be comma-separated integers, got '10,x'"),
    (["--checkpoint", "nowhere"], "error: nowhere: not a registered checkpoint"),
    (["--noise", "philox"], "error: unknown noise source 'philox'; known: counter, torch"),
    (["--device", "cuda"] if not torch.cuda.is_available() else ["--dtype", "int8"], "error: "),
])
def test_bench_errors_are_one_line(args: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "argv", ["zoo", "bench", "--samples", "8", "--results", str(tmp_path / "r.jsonl"), *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 1 and err.startswith(message) and err.count("\n") == 1, err
    assert not (tmp_path / "r.jsonl").exists()


def test_bench_command_prints_the_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setattr(sys, "argv", ["zoo", "bench", "--checkpoint", "digits-ideal", "--sampler", "dpm_2", "--nfe",
                                      "3", "--samples", "30", "--metrics", "fid,kid", "--results",
                                      str(tmp_path / "r.jsonl")])
    main()
    lines = capsys.readouterr().out.splitlines()  # piped: plain columns, every cell whole
    assert lines[1].split()[:3] == ["sampler", "schedule", "NFE"] and {"fid", "kid"} <= set(lines[1].split())
    assert lines[3].split()[:3] == ["dpm2", "karras", "3"] and lines[3].split()[-1] == "ok"
    assert sz.get_sampler("dpm2").name == "dpm2"


def test_auto_final_step_makes_even_budgets_reachable_and_is_recorded(tmp_path: Path) -> None:
    rows = harness.sweep("digits-ideal", ["dpm2"], ["karras"], [5, 6], results=tmp_path / "r.jsonl", batch=20,
                         **SMALL)
    assert [(r["counted_nfe"], r["final_step_used"]) for r in rows] == [(5, "zero"), (6, "sigma_min")]


@pytest.mark.parametrize("guidance_scale", [None, 2.0])
def test_class_conditional_checkpoints_are_benchmarked_with_labels(tmp_path: Path, guidance_scale: float | None
                                                                   ) -> None:
    rows = harness.sweep("digits-cond", ["euler"], ["karras"], [2], results=tmp_path / "r.jsonl", batch=20,
                         guidance_scale=guidance_scale, **SMALL)
    assert rows[0]["status"] == "ok" and rows[0]["counted_nfe"] == 2 and rows[0]["guidance_scale"] == guidance_scale


def test_a_sweep_scores_every_sample_as_torch_fidelity_does(tmp_path: Path) -> None:
    # The row's FID / KID are torch-fidelity's calculate_metrics on the same images (regenerated from the seeds), so
    # a sample lost between sampling and scoring changes them; the row records how many samples were scored.
    row, = harness.sweep("digits-ideal", ["euler_ancestral"], ["karras"], [4], results=tmp_path / "r.jsonl", batch=16,
                         samples=40, seed=3, metric_names=("fid", "kid"))
    assert row["samples_scored"] == row["samples"] == 40
    images = sz.generate(sz.load("digits-ideal"), "euler_ancestral", 4, range(3, 43), (1, 8, 8)).samples
    theirs = torch_fidelity.calculate_metrics(
        input1=TensorImages(to_uint8(images)), input2=harness.reference_images("digits-train"), fid=True, kid=True,
        feature_extractor=DIGITS_EXTRACTOR, kid_subset_size=40, cache=False, cuda=False, save_cpu_ram=True,
        verbose=False)
    expected = {name: theirs[key] for key, name in NAMES.items() if key in theirs}
    assert row["metrics"] == pytest.approx(expected, rel=1e-6)


def test_a_point_whose_features_miss_a_sample_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    features = harness.Meter.features

    def drop_last(meter: harness.Meter, images: torch.Tensor) -> dict[str, torch.Tensor]:
        cut = -1 if len(images) == 20 else None  # the sampler's batches; the reference's are extracted whole
        return {name: value[:cut] for name, value in features(meter, images).items()}

    monkeypatch.setattr(harness.Meter, "features", drop_last)
    with pytest.raises(sz.SamplerzooError, match=r"^euler at NFE 3: features of 38 samples to score, not the "
                                                 r"point's 40$"):
        harness.sweep("digits-ideal", ["euler"], ["karras"], [3], results=tmp_path / "r.jsonl", batch=20, **SMALL)
    assert not (tmp_path / "r.jsonl").exists() or not (tmp_path / "r.jsonl").read_text()
