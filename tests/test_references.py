"""The benchmark on the user's data: references by name, folder of images or npz of FID statistics; feature
extractors (the digits classifier, torch-fidelity's Inception with a local weights file in its exact format);
``zoo stats``; the resampled floor; sampler and schedule options (grids); one-line errors before any sampling."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import scipy.linalg
import torch
from cli_driver import zoo
from PIL import Image

from samplerzoo.bench import grid, harness
from samplerzoo.bench.metrics import Meter
from samplerzoo.bench.references import resolve
from samplerzoo.bench.results import ResultsFile
from samplerzoo.data import digits, to_uint8

BENCH = ["bench", "--checkpoint", "digits-ideal", "--sampler", "euler", "--nfe", "3", "--samples", "16",
         "--batch", "16", "--metrics", "fid"]


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAMPLERZOO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # nothing downloaded before: offline, empty


def write_digits(root: Path, count: int, size: int = 8, suffix: str = ".png", start: int = 0) -> None:
    """Digits-train images ``start..start+count`` as RGB files of ``size`` pixels, spread over nested folders."""
    images = to_uint8(digits("train")[0][start:start + count])[:, 0].numpy()
    for i, image in enumerate(images):
        folder = root / f"class{i % 3}" / ("deep" if i % 2 else "")
        folder.mkdir(parents=True, exist_ok=True)
        picture = Image.fromarray(image).convert("RGB").resize((size, size), Image.Resampling.NEAREST)
        picture.save(folder / f"{start + i:04d}{suffix}", **({} if suffix == ".png" else {"quality": 95}))


def test_a_folder_of_lossless_8x8_digits_gives_the_digits_features(tmp_path: Path) -> None:
    write_digits(tmp_path / "ref", 60)
    meter = Meter(["fid"])
    folder = meter.reference_features(resolve(str(tmp_path / "ref")))["features"]
    names = sorted(p.name for p in (tmp_path / "ref").rglob("*.png"))
    assert names == [f"{i:04d}.png" for i in range(60)]
    order = [int(p.stem) for p in sorted((tmp_path / "ref").rglob("*.png"))]  # path order, found recursively
    direct = meter.features(to_uint8(digits("train")[0][:60]))["features"][order]
    assert torch.allclose(folder, direct, atol=1e-4)  # RGB grey -> luma is the same image; 8x8 is not resized


def test_images_of_any_size_and_format_are_resized_by_the_extractor_and_the_cache_follows_the_content(
        tmp_path: Path) -> None:
    root = tmp_path / "mixed"
    write_digits(root, 10, size=24, suffix=".jpg")
    write_digits(root, 10, size=17, suffix=".webp", start=10)
    write_digits(root, 10, size=8, suffix=".png", start=20)
    reference = resolve(str(root))
    meter = Meter(["fid"])
    features = meter.reference_features(reference)["features"]
    assert reference.kind == "folder" and features.shape == (30, 64) and torch.isfinite(features).all()
    direct = Meter(["fid"]).features(to_uint8(digits("train")[0][:30]))["features"]
    order = [int(p.stem) for p in sorted(root.rglob("*.*"))]
    assert torch.nn.functional.cosine_similarity(features, direct[order]).mean() > 0.9  # the same digits
    write_digits(root, 1, start=30)  # a changed folder: a new identity, its features recomputed
    changed = resolve(str(root))
    assert changed.identity != reference.identity
    assert Meter(["fid"]).reference_features(changed)["features"].shape == (31, 64)


def test_zoo_stats_writes_edms_npz_and_fid_against_it_is_edms_formula(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    write_digits(tmp_path / "ref", 200)
    code, out, _ = zoo(["stats", str(tmp_path / "ref"), "-o", str(tmp_path / "ref.npz")], monkeypatch, capsys)
    assert code == 0 and "mu (64,), sigma (64, 64) of 200 images" in out
    features = Meter(["fid"]).reference_features(resolve(str(tmp_path / "ref")))["features"].double().numpy()
    with np.load(tmp_path / "ref.npz") as data:
        assert sorted(data) == ["mu", "sigma"] and data["mu"].dtype == np.float64
        mu_ref, sigma_ref = data["mu"], data["sigma"]
    assert np.allclose(mu_ref, features.mean(0)) and np.allclose(sigma_ref, np.cov(features, rowvar=False))

    by_npz = harness.sweep("digits-ideal", ["euler"], ["karras"], [3], 50, 0, tmp_path / "npz.jsonl",
                           metric_names=("fid",), reference=str(tmp_path / "ref.npz"))[0]
    by_folder = harness.sweep("digits-ideal", ["euler"], ["karras"], [3], 50, 0, tmp_path / "dir.jsonl",
                              metric_names=("fid",), reference=str(tmp_path / "ref"))[0]
    samples = Meter(["fid"]).features(to_uint8(harness.generate(
        harness.load("digits-ideal"), "euler", 3, range(50), (1, 8, 8)).samples))["features"].double().numpy()
    mu, sigma = samples.mean(0), np.cov(samples, rowvar=False)
    root, _ = scipy.linalg.sqrtm(sigma @ sigma_ref, disp=False)  # NVlabs/edm fid.py, written out
    edm = float(np.real(np.square(mu - mu_ref).sum() + np.trace(sigma + sigma_ref - 2 * root)))
    assert by_npz["metrics"]["fid"] == pytest.approx(edm, rel=1e-4)
    assert by_folder["metrics"]["fid"] == pytest.approx(edm, rel=1e-4)
    assert (by_npz["reference_kind"], by_npz["reference_samples"], by_npz["floor"]) == ("npz", None, {})
    assert by_folder["reference_kind"] == "folder" and by_folder["reference_samples"] == 200
    assert by_npz["reference_id"].startswith("npz-") and by_folder["reference_id"].startswith("folder-")
    sha = hashlib.sha256((Path(harness.__file__).parents[1] / "weights/digits-classifier/model.safetensors"
                          ).read_bytes()).hexdigest()
    assert by_npz["extractor_weights_sha256"] == sha


def test_the_floor_is_resampled_at_the_points_sample_count_as_the_sweeps_readme_computed_it() -> None:
    floor = Meter(["fid"]).floor(resolve("digits-train"), 2000)
    assert round(floor["fid"], 3) == 0.128  # results/sweeps/README.md, "Two floors"


def test_option_grids_are_sweep_axes_recorded_in_rows_and_reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "grid.jsonl"
    code, out, _ = zoo([*BENCH, "--option", "s_churn=0,1", "--schedule-option", "rho=3,7", "--results", str(path)],
                       monkeypatch, capsys)
    rows = list(ResultsFile(path).rows())
    assert code == 0 and all(r["status"] == "ok" for r in rows), rows
    assert [(r["options"], r["schedule_options"]) for r in rows] == [
        ({"s_churn": 0}, {"rho": 3}), ({"s_churn": 0}, {"rho": 7}), ({"s_churn": 1}, {"rho": 3}),
        ({"s_churn": 1}, {"rho": 7})]
    assert len({r["metrics"]["fid"] for r in rows}) == 4  # each option changes the samples
    assert "s_churn=0 schedule.rho=3" in out
    code, out, _ = zoo(["report", str(path)], monkeypatch, capsys)
    text = path.with_suffix(".md").read_text()
    assert "| euler s_churn=1 schedule.rho=7 |" in text and "--schedule-option rho=3" in text
    code, _, _ = zoo(["sample", "--checkpoint", "digits-ideal", "--sampler", "euler", "--nfe", "3", "-n", "4",
                      "--schedule-option", "rho=5", "--out", str(tmp_path / "g.png")], monkeypatch, capsys)
    assert code == 0 and (tmp_path / "g.png").is_file()


def test_the_new_fields_stay_out_of_a_points_key_at_their_defaults_so_old_results_files_resume() -> None:
    plain = json.loads(grid.Point("digits", "euler", "karras", 10, 100, 0).key())
    assert not {"extractor_weights", "schedule_options", "reference_id"} & set(plain)
    changed = grid.Point("digits", "euler", "karras", 10, 100, 0, schedule_options={"rho": 5},
                            reference_id="folder-0123", extractor_weights="w.pth")
    assert json.loads(changed.key()) == {**plain, "schedule_options": {"rho": 5}, "reference_id": "folder-0123",
                                         "extractor_weights": "w.pth"}


@pytest.mark.parametrize(("args", "message"), [
    (["--extractor", "inception"], "error: unknown feature extractor 'inception'; did you mean inception-v3-compat"),
    (["--reference", "cifar11-train"], "error: unknown reference 'cifar11-train'; accepted: digits-train, "),
    (["--reference", "{tmp}/empty"], "error: --reference {tmp}/empty: no images in this folder or below; accepted"),
    (["--reference", "{tmp}/broken"], "error: {tmp}/broken/b.png: not a readable image (UnidentifiedImageError"),
    (["--reference", "{tmp}/nomu.npz"], "error: {tmp}/nomu.npz: no 'mu' array; accepted: an .npz with mu (D,)"),
    (["--reference", "{tmp}/skew.npz"], "error: {tmp}/skew.npz: mu (3,) and sigma (3, 4) do not fit"),
    (["--reference", "{tmp}/small.npz"], "error: --reference {tmp}/small.npz: statistics of 3 features, but "
                                         "digits-classifier gives 64"),
    (["--reference", "{tmp}/small.npz", "--metrics", "fid,kid"], "error: --reference {tmp}/small.npz holds FID "
                                                                 "statistics (mu, sigma) only: kid needs"),
    (["--reference", "cifar10-train"], "error: reference cifar10-train: torch-fidelity could not download it into "),
    (["--metrics", "prc", "--samples", "3"], "error: --samples 3: prc (precision / recall, k = 3) needs at least 4"),
    (["--metrics", "isc", "--samples", "9"], "error: --samples 9: isc (the Inception Score, over 10 splits) needs"),
    (["--metrics", "fid,lpips"], "error: unknown metric 'lpips'; did you mean isc? known: fid, isc, kid, prc"),
    (["--option", "eta=0.5"], "error: sampler 'euler' has no option 'eta'; accepted: afs, s_churn, s_noise, s_tmax, "),
    (["--option", "s_churn=lots"], "error: sampler 'euler': option s_churn='lots' is a str; accepted: float"),
    (["--schedule-option", "rho=true"], "error: schedule 'karras': option rho=True is a bool; accepted: float"),
    (["--schedule-option", "sigma=1"], "error: schedule 'karras' has no option 'sigma'; accepted: rho"),
    (["--extractor", "inception-v3-compat", "--extractor-weights", "{tmp}/none.pth"],
     "error: --extractor-weights {tmp}/none.pth: no such file; accepted: the inception-v3-compat weights file"),
    (["--extractor", "inception-v3-compat", "--extractor-weights", "{tmp}/nomu.npz"],
     "error: --extractor-weights {tmp}/nomu.npz: inception-v3-compat cannot load it ("),
    (["--extractor", "dinov2-vit-s-14", "--extractor-weights", "{tmp}/nomu.npz"],
     "error: dinov2-vit-s-14: torch-fidelity loads DINOv2 only through torch.hub"),
])
def test_bad_input_is_one_line_before_any_sampling(args: list[str], message: str, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    write_digits(tmp_path / "broken", 2)
    (tmp_path / "broken" / "b.png").write_bytes(b"not a png")
    np.savez(tmp_path / "nomu.npz", mean=np.zeros(3), sigma=np.eye(3))
    np.savez(tmp_path / "skew.npz", mu=np.zeros(3), sigma=np.zeros((3, 4)))
    np.savez(tmp_path / "small.npz", mu=np.zeros(3), sigma=np.eye(3))
    monkeypatch.setattr(harness, "generate", lambda *a, **k: pytest.fail("sampled before the error"))
    code, _, err = zoo([*BENCH, *[a.format(tmp=tmp_path) for a in args], "--results", str(tmp_path / "r.jsonl")],
                         monkeypatch, capsys)
    assert code == 1 and err.startswith(message.format(tmp=tmp_path)) and err.count("\n") == 1, err
    assert not (tmp_path / "r.jsonl").exists()


def random_inception_weights(path: Path) -> None:
    """torch-fidelity's Inception state dict (the exact keys and shapes it loads), randomly initialised: He-normal
    convolutions so the features do not collapse through 20 layers."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class Unloaded(FeatureExtractorInceptionV3):
        def load_state_dict(self, *args: object, **kwargs: object) -> None:  # type: ignore[override]
            return None  # keep the fresh parameters

    torch.save({}, path)
    model = Unloaded("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(path))
    generator = torch.Generator().manual_seed(0)
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            fan_in = module.weight[0].numel()
            module.weight.data = torch.randn(module.weight.shape, generator=generator) * (2 / fan_in) ** 0.5
    torch.save(model.state_dict(), path)


@pytest.mark.slow
def test_zoo_bench_on_a_folder_with_inception_and_a_local_weights_file(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    weights = tmp_path / "inception.pth"
    random_inception_weights(weights)
    write_digits(tmp_path / "ref", 5, size=12)
    path = tmp_path / "r.jsonl"
    # KID and precision / recall: FID's 2048 x 2048 matrix square root (scipy) alone takes minutes here, and the
    # Inception Score needs 10 samples.
    args = ["bench", "--checkpoint", "digits-ideal", "--sampler", "euler", "--nfe", "2", "--samples", "4",
            "--metrics", "kid,prc", "--reference", str(tmp_path / "ref"), "--extractor", "inception-v3-compat"]
    code, _, err = zoo([*args, "--extractor-weights", str(weights), "--results", str(path)], monkeypatch, capsys)
    (row,) = list(ResultsFile(path).rows())
    assert code == 0 and row["status"] == "ok", err
    assert row["extractor_weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert (row["reference_kind"], row["reference_samples"], row["extractor"]) == ("folder", 5, "inception-v3-compat")
    assert set(row["metrics"]) == {"kid", "kid_std", "precision", "recall", "f_score"}
    assert all(np.isfinite(v) for v in row["metrics"].values()), row["metrics"]
    code, _, err = zoo([*args, "--results", str(tmp_path / "offline.jsonl")], monkeypatch, capsys)
    target = tmp_path / "torch" / "hub" / "checkpoints" / "weights-inception-2015-12-05-6726825d.pth"
    assert code == 1 and err.count("\n") == 1 and err.startswith("error: inception-v3-compat: its weights could not "
                                                                 "be loaded (URLError"), err
    assert "fetch https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/" in err and str(target) in err
