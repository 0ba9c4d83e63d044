"""Pipelines through the CLI: ``zoo sample`` with prompts, negative prompts, labels and guidance; ``zoo bench`` with a
prompts file or labels, rows recording denoiser calls and network forwards; each bad request one line before work."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pipeline_builders as build
import pytest
from diffusers import EulerDiscreteScheduler

from samplerzoo.bench import harness
from samplerzoo.bench.prompts import read_prompts
from samplerzoo.cli import main

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def sd_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny text-to-image pipeline with grey 8x8 images, so the digits feature extractor scores it."""
    scheduler = EulerDiscreteScheduler(**build.SD_BETAS, timestep_spacing="leading", steps_offset=1)
    return build.stable_diffusion(tmp_path_factory.mktemp("sd") / "sd", scheduler, digits_sized=True)


@pytest.fixture(autouse=True, scope="module")
def private_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One feature cache for the module's sweeps (the digits reference's features are computed once)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SAMPLERZOO_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield


def zoo(monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    monkeypatch.setattr(sys, "argv", ["zoo", *args])
    try:
        main()
    except SystemExit as exit:
        return int(exit.code or 0)
    return 0


def test_zoo_sample_writes_a_prompted_guided_grid(sd_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    out = tmp_path / "grid.png"
    code = zoo(monkeypatch, "sample", "--checkpoint", str(sd_dir), "--sampler", "euler", "--nfe", "3", "-n", "4",
               "--prompt", "a photo of a cat", "--prompt", "a painting of a dog", "--negative-prompt", "blurry",
               "--guidance-scale", "3", "--batch", "3", "--scale", "1", "--out", str(out))
    assert code == 0
    assert "3 denoiser calls and 6 network forwards a sample" in capsys.readouterr().out
    assert Image.open(out).size == (2 * 9, 2 * 9)  # one column per prompt, decoded 8x8 images


FAMILIES = {  # builder, its scheduler, extra zoo sample flags, decoded image side, forwards per call
    "pixart": (build.pixart, "dpm", ["--guidance-scale", "2"], 16, 2),
    "hunyuandit": (build.hunyuan_dit, "dpm", ["--guidance-scale", "2"], 64, 2),
    "lcm": (build.latent_consistency, "lcm", ["--distilled-guidance", "6"], 16, 1),
    "aura_flow": (build.aura_flow, "flow", ["--guidance-scale", "2"], 1024, 2),
    "chroma": (build.chroma, "flow", ["--guidance-scale", "2"], 256, 2),
    "sana": (build.sana, "flow", [], 32, 1),
    "deepfloyd_if": (build.deepfloyd_if, "dpm", ["--guidance-scale", "2"], 8, 2),
    "cogview3": (build.cogview3, "cogvideox", ["--guidance-scale", "2"], 16, 2),
}


def scheduler_of(kind: str) -> Any:
    from diffusers import (
        CogVideoXDDIMScheduler,
        DPMSolverMultistepScheduler,
        FlowMatchEulerDiscreteScheduler,
        LCMScheduler,
    )

    return {"dpm": lambda: DPMSolverMultistepScheduler(**build.SD_BETAS),
            "lcm": lambda: LCMScheduler(**build.SD_BETAS),
            "flow": lambda: FlowMatchEulerDiscreteScheduler(shift=3.0),
            "cogvideox": lambda: CogVideoXDDIMScheduler(**build.SD_BETAS, prediction_type="v_prediction",
                                                        rescale_betas_zero_snr=True, snr_shift_scale=4.0)}[kind]()


@pytest.mark.parametrize("family", FAMILIES)
def test_zoo_sample_reaches_every_text_family(family: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    builder, kind, flags, side, forwards = FAMILIES[family]
    directory = builder(tmp_path / family, scheduler_of(kind))
    out = tmp_path / "grid.png"
    code = zoo(monkeypatch, "sample", "--checkpoint", str(directory), "--sampler", "euler", "--nfe", "2", "-n", "2",
               "--prompt", "a photo of a cat", "--scale", "1", "--out", str(out), *flags)
    assert code == 0, capsys.readouterr().err
    assert f"2 denoiser calls and {2 * forwards} network forwards a sample" in capsys.readouterr().out
    assert Image.open(out).size == (2 * (side + 1), side + 1)  # two decoded images and their borders


@pytest.mark.parametrize("family", FAMILIES)
def test_every_text_family_samples_in_bfloat16_without_float32(family: str, tmp_path: Path) -> None:
    import torch

    import samplerzoo as sz
    from samplerzoo.precision import in_dtype

    builder, kind, flags, _, _ = FAMILIES[family]
    model, precision = in_dtype(sz.load(builder(tmp_path / family, scheduler_of(kind))), torch.bfloat16,
                                prompts=["a cat"])
    floats = {p.dtype for p in model.parameters() if p.is_floating_point()}  # network, text encoders, VAE
    assert precision == "native" and floats == {torch.bfloat16}
    knobs = {"--guidance-scale": "guidance_scale", "--distilled-guidance": "distilled_guidance"}
    options = {knobs[flag]: float(value) for flag, value in zip(flags[::2], flags[1::2], strict=True)}
    run = sz.generate(model.condition(range(2), prompts=["a cat"], **options), "euler", 2, range(2),
                      model.sample_shape, dtype=torch.bfloat16)
    images = model.decode(run.samples)
    assert run.samples.dtype == images.dtype == torch.bfloat16 and bool(torch.isfinite(images).all())


def test_a_pipeline_samples_and_decodes_in_half_precision_without_float32(sd_dir: Path) -> None:
    import torch

    import samplerzoo as sz
    from samplerzoo.precision import in_dtype

    model, precision = in_dtype(sz.load(sd_dir), torch.bfloat16, prompts=["a cat"])  # the probe needs a prompt
    floats = {p.dtype for p in model.parameters() if p.is_floating_point()}  # network, text encoders, VAE
    assert precision == "native" and floats == {torch.bfloat16}
    run = sz.generate(model.condition(range(2), prompts=["a cat"], guidance_scale=2.0), "euler", 3, range(2),
                      model.sample_shape, dtype=torch.bfloat16)
    images = model.decode(run.samples)
    assert run.samples.dtype == images.dtype == torch.bfloat16 and bool(torch.isfinite(images).all())


def test_zoo_bench_cycles_a_prompts_file_and_records_calls_and_forwards(sd_dir: Path, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a photo of a cat\n\na red cube on a blue sphere\n")
    results = tmp_path / "r.jsonl"
    common = ["bench", "--checkpoint", str(sd_dir), "--sampler", "euler", "--nfe", "2", "--samples", "6", "--batch",
              "4", "--metrics", "fid", "--prompts", str(prompts), "--results", str(results)]
    assert zoo(monkeypatch, *common, "--guidance-scale", "2", "--negative-prompt", "blurry") == 0
    table = capsys.readouterr().out
    assert "calls" in table and "forwards" in table and "network forward passes per sample" in table
    assert zoo(monkeypatch, *common, "--json") == 0  # no guidance: another point, one forward a call
    plain = json.loads(capsys.readouterr().out)[0]
    guided = json.loads(results.read_text().splitlines()[0])
    assert (guided["counted_nfe"], guided["forwards"], plain["counted_nfe"], plain["forwards"]) == (2, 4, 2, 2)
    assert guided["status"] == plain["status"] == "ok" and guided["metrics"]["fid"] > 0
    identity = read_prompts(prompts, ("blurry",)).identity
    assert guided["prompts"] == identity and json.loads(guided["key"])["prompts"] == identity
    assert (guided["prompts_file"], guided["prompt_count"], guided["negative_prompts"]) == (str(prompts), 2,
                                                                                             ["blurry"])
    assert plain["prompts"] != identity  # the negative prompt is part of the prompts' identity
    renamed = tmp_path / "same.txt"
    shutil.copy(prompts, renamed)  # same text, another name: the same points, already finished
    assert read_prompts(renamed, ("blurry",)).identity == identity
    assert zoo(monkeypatch, "report", str(results)) == 0
    report = results.with_suffix(".md").read_text()
    for forwards in (2, 1):  # guided, then plain: two sections
        assert f"NFE counts denoiser calls per sample; network forward passes per call: {forwards}\n" in report
    assert f"2 prompts from `{prompts}` ({identity})" in report
    assert f"--prompts {prompts} --negative-prompt blurry" in report


def test_labels_condition_bench_points_and_enter_their_key(tmp_path: Path) -> None:
    small = {"samples": 20, "seed": 0, "metric_names": ("fid",), "batch": 20}
    path = tmp_path / "r.jsonl"
    default, labelled = (harness.sweep("digits-cond", ["euler"], ["karras"], [2], results=path, labels=labels,
                                       **small)[0] for labels in (None, [3, 7]))
    assert list(labelled["labels"]) == [3, 7] and json.loads(labelled["key"])["labels"] == [3, 7]
    assert "labels" not in json.loads(default["key"]) and "prompts" not in json.loads(default["key"])
    assert labelled["metrics"]["fid"] != default["metrics"]["fid"]  # two classes look less like all ten


def odd_pipeline(tmp_path: Path) -> Path:
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "model_index.json").write_text(json.dumps({"_class_name": "KandinskyV22Pipeline"}))
    return tmp_path / "odd"


def without_vae(sd_dir: Path, tmp_path: Path) -> Path:
    shutil.copytree(sd_dir, tmp_path / "novae")
    shutil.rmtree(tmp_path / "novae" / "vae")
    return tmp_path / "novae"


def empty_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, offline: bool) -> str:
    """An empty hub cache; offline (HF_HUB_OFFLINE), or online with an endpoint nothing listens on."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", offline)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    return "tiny-org/not-cached"


BAD = [
    (["sample", "--checkpoint", "digits", "--prompt", "a cat"],
     "prompts need a text-conditioned checkpoint; this one is unconditional"),
    (["bench", "--checkpoint", "digits-cond", "--labels", "3,12"],
     "label 12 is out of range; this checkpoint has labels 0..9"),
    (["sample", "--checkpoint", "digits-cond", "--label", "-1"], "label -1 is out of range"),
    (["bench", "--checkpoint", "SD"], "this checkpoint is text-conditioned: give a prompt"),
    (["sample", "--checkpoint", "SD", "--label", "1", "--prompt", "a"], "labels need a class-conditional checkpoint"),
    (["bench", "--checkpoint", "SD", "--negative-prompt", "x"], "--negative-prompt needs --prompts FILE"),
    (["bench", "--checkpoint", "SD", "--prompts", "MISSING"], "cannot be read (No such file or directory)"),
    (["bench", "--checkpoint", "SD", "--prompts", "EMPTY"], "no prompts in the file"),
    (["bench", "--checkpoint", "digits", "--labels", "a,b"], "--labels must be comma-separated whole numbers"),
    (["sample", "--checkpoint", "SD", "--prompt", "a", "--distilled-guidance", "3"],
     "distilled guidance 3.0: it needs a guidance-distilled checkpoint (Flux dev"),
    (["bench", "--checkpoint", "digits-cond", "--distilled-guidance", "3"], "this one is class-conditional"),
    (["sample", "--checkpoint", "ODD"], "pipeline class 'KandinskyV22Pipeline' is not supported; supported families"),
    (["bench", "--checkpoint", "NOVAE"], "missing component folder 'vae'"),
    (["sample", "--checkpoint", "HUB"], "tiny-org/not-cached: not in the Hugging Face cache"),
    (["bench", "--checkpoint", "UNREACHABLE"], "and not downloadable (OSError: "),
]


@pytest.mark.parametrize(("args", "message"), BAD, ids=[message[:30] for _, message in BAD])
def test_bad_requests_are_one_line_before_any_work(args: list[str], message: str, sd_dir: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty.txt").write_text("\n  \n")
    places = {"SD": lambda: str(sd_dir), "ODD": lambda: str(odd_pipeline(tmp_path)),
              "NOVAE": lambda: str(without_vae(sd_dir, tmp_path)),
              "HUB": lambda: empty_hub(tmp_path, monkeypatch, True),
              "UNREACHABLE": lambda: empty_hub(tmp_path, monkeypatch, False),
              "MISSING": lambda: str(tmp_path / "missing.txt"), "EMPTY": lambda: str(tmp_path / "empty.txt")}
    args = [places[arg]() if arg in places else arg for arg in args]
    out, results = tmp_path / "grid.png", tmp_path / "r.jsonl"
    extra = ["--out", str(out)] if args[0] == "sample" else ["--results", str(results), "--samples", "4"]
    assert zoo(monkeypatch, *args, *extra) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err, err
    assert not out.exists() and not results.exists()
