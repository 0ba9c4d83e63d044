"""Loading pipelines: hub ids through a real hub-cache layout, the family hook, decoding, and one-line errors
for bad input before any work."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pipeline_builders as build
import pytest
import torch
from diffusers import DDPMScheduler, EulerDiscreteScheduler

import samplerzoo as sz
from samplerzoo.checkpoints.families.pipeline import VAEDecoder
from samplerzoo.plugins import register_plugin, unregister_plugin

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def sd_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    scheduler = EulerDiscreteScheduler(**build.SD_BETAS, timestep_spacing="leading", steps_offset=1)
    return build.stable_diffusion(tmp_path_factory.mktemp("sd") / "sd", scheduler)


@pytest.fixture(scope="module")
def dit_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build.dit(tmp_path_factory.mktemp("dit") / "dit", DDPMScheduler(**build.SD_BETAS))


def write_hub_cache(hub: Path, repo_id: str, pipeline: Path) -> str:
    """huggingface_hub's cache layout: blobs/<sha256>, snapshots/<commit>/<path> -> ../../blobs/<sha256>,
    refs/main = <commit>."""
    repo = hub / f"models--{repo_id.replace('/', '--')}"
    commit = hashlib.sha1(repo_id.encode()).hexdigest()
    for file in sorted(p for p in pipeline.rglob("*") if p.is_file()):
        data = file.read_bytes()
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = repo / "snapshots" / commit / file.relative_to(pipeline)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    return commit


def test_hub_ids_resolve_from_the_cache_offline_and_fail_in_one_line_otherwise(tmp_path: Path, dit_dir: Path) -> None:
    commit = write_hub_cache(tmp_path / "hf" / "hub", "tiny-org/tiny-dit", dit_dir)
    script = ("import samplerzoo as sz\n"
              "from samplerzoo.checkpoints.hub import resolve\n"
              "m = sz.load('tiny-org/tiny-dit')\n"
              "print(m.sample_shape, m.num_classes, resolve('tiny-org/tiny-dit'))\n"
              "try:\n    sz.load('tiny-org/not-cached')\n"
              "except sz.CheckpointError as e:\n    print('error:', e)\n")
    # The hub's environment is read at import: a fresh interpreter with HF_HOME pointing at the fake cache.
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    env.pop("HF_HUB_CACHE", None)
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    lines = done.stdout.strip().splitlines()
    snapshot = tmp_path / "hf" / "hub" / "models--tiny-org--tiny-dit" / "snapshots" / commit
    assert done.returncode == 0 and lines[0] == f"(4, 8, 8) 1000 {snapshot}", done.stderr[-2000:]
    assert lines[1].startswith("error: tiny-org/not-cached: not in the Hugging Face cache") and len(lines) == 2
    assert lines[1].endswith(f"({tmp_path / 'hf' / 'hub'}) and not downloadable (HF_HUB_OFFLINE is set)")


class ClaimsFakePipelines:
    """A plugin family: claims model_index.json files whose _class_name is FakePipeline."""

    @sz.hookimpl
    def load_pipeline(self, directory: Path, model_index: dict[str, object]) -> sz.Checkpoint | None:
        if model_index["_class_name"] != "FakePipeline":
            return None
        return sz.load("digits-ideal")


def test_a_plugin_family_is_asked_through_the_hook(tmp_path: Path) -> None:
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "FakePipeline"}))
    register_plugin(ClaimsFakePipelines(), "fake-family")
    try:
        assert sz.load(tmp_path).sample_shape == (1, 8, 8)
    finally:
        unregister_plugin("fake-family")
    with pytest.raises(sz.CheckpointError, match="'FakePipeline' is not supported; supported families: "
                                                 "unet2d: DDPMPipeline, DDIMPipeline, PNDMPipeline, "
                                                 "ConsistencyModelPipeline; sd: "):
        sz.load(tmp_path)


def test_vae_decoder_applies_shift_and_latent_statistics() -> None:
    torch.manual_seed(0)
    x = torch.randn(5, 4, 4, 4)
    shifted = build.vae()
    shifted.register_to_config(scaling_factor=1.5, shift_factor=0.2)
    with torch.no_grad():  # SD3 / Flux: z = x / scaling + shift
        torch.testing.assert_close(VAEDecoder(shifted, batch=2)(x), shifted.decode(x / 1.5 + 0.2).sample)
        stats = build.vae()  # SDXL pipelines with latents_mean / latents_std in the VAE config
        mean, std = [0.1, -0.2, 0.3, 0.0], [1.0, 2.0, 0.5, 1.5]
        stats.register_to_config(scaling_factor=0.5, latents_mean=mean, latents_std=std)
        z = x * torch.tensor(std).reshape(1, 4, 1, 1) / 0.5 + torch.tensor(mean).reshape(1, 4, 1, 1)
        torch.testing.assert_close(VAEDecoder(stats, batch=3)(x), stats.decode(z).sample)


def test_pixel_checkpoints_decode_to_themselves() -> None:
    x = torch.randn(2, 1, 8, 8)
    assert torch.equal(sz.load("digits-ideal").decode(x), x)


def without(directory: Path, component: str, tmp_path: Path) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(directory, copy)
    shutil.rmtree(copy / component)
    return copy


def test_bad_pipelines_and_requests_give_one_clear_line(tmp_path: Path, sd_dir: Path, dit_dir: Path) -> None:
    (tmp_path / "odd").mkdir()
    (tmp_path / "odd" / "model_index.json").write_text(json.dumps({"_class_name": "KandinskyV22Pipeline"}))
    sd, dit = sz.load(sd_dir), sz.load(dit_dir)
    cases = [
        (lambda: sz.load(tmp_path / "odd"), "pipeline class 'KandinskyV22Pipeline' is not supported; supported "
                                            "families: unet2d"),
        (lambda: sz.load(without(sd_dir, "vae", tmp_path)), "missing component folder 'vae'; a "
                                                            "StableDiffusionPipeline needs unet, vae, text_encoder"),
        (lambda: sz.load("digits-ideal").condition([0], prompts=["a cat"]),
         "prompts need a text-conditioned checkpoint; this one is unconditional"),
        (lambda: dit.condition([0], prompts=["a cat"]),
         "prompts need a text-conditioned checkpoint; this one is class-conditional (labels 0..999)"),
        (lambda: dit.condition([0, 1], labels=[3, 1000]), "label 1000 is out of range; this checkpoint has labels "
                                                          "0..999"),
        (lambda: sd.condition([0, 1]), "this checkpoint is text-conditioned: give a prompt"),
        (lambda: sd.condition([0], prompts=["a"], labels=[1]), "labels need a class-conditional checkpoint"),
        (lambda: sd.condition([0], prompts=["a"], negative_prompts=["b"]), "negative prompts act only through "
                                                                         "classifier-free guidance"),
        (lambda: sz.load("digits-ideal").condition([0], guidance_scale=3.0),
         "classifier-free guidance needs a conditional checkpoint; this one is unconditional"),
        (lambda: sz.load("no-such-org/../x"), "not a registered checkpoint, a diffusers model directory"),
    ]
    for make, message in cases:
        with pytest.raises(sz.SamplerzooError) as error:
            make()
        assert message in str(error.value) and "\n" not in str(error.value), str(error.value)


def test_a_flow_pipeline_with_a_noise_prediction_scheduler_is_one_line(tmp_path: Path) -> None:
    from diffusers import DPMSolverMultistepScheduler

    directory = build.sana(tmp_path / "sana", DPMSolverMultistepScheduler(**build.SD_BETAS))  # epsilon, no flow sigmas
    with pytest.raises(sz.CheckpointError, match=r"a SanaPipeline needs a flow scheduler .* got prediction epsilon$"):
        sz.load(directory)


def test_dit_labels_cycle_over_samples_and_guidance_uses_the_null_class(dit_dir: Path) -> None:
    model = sz.load(dit_dir)
    guided = model.condition([4, 5, 6], labels=[7, 9], guidance_scale=2.0)
    assert guided.cond["class_labels"].tolist() == [7, 9, 7]  # sample i takes labels[i % 2]
    assert guided.model.unconditional["class_labels"].tolist() == [1000] * 3
    assert model.condition([998, 1001]).cond["class_labels"].tolist() == [998, 1]  # default: i % num_classes


def test_zoo_train_digits_latent_writes_a_loadable_dit_pipeline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                ) -> None:
    from samplerzoo.cli import main

    monkeypatch.chdir(tmp_path)  # the record goes to ./results/training/
    monkeypatch.setattr(sys, "argv", ["zoo", "train", "digits-latent", "--steps", "3", "--out", str(tmp_path / "dl")])
    main()
    record = json.loads((tmp_path / "results" / "training" / "digits-latent.json").read_text())
    assert record["command"] == "zoo train digits-latent --steps 3" and len(record["loss_every_100"]) == 1
    assert record["recipe"]["vae_steps"] == 1 and 0 < record["vae"]["scaling_factor"] < 100
    index = json.loads((tmp_path / "dl" / "model_index.json").read_text())
    assert index["_class_name"] == "DiTPipeline" and index["transformer"] == ["diffusers", "DiTTransformer2DModel"]
    model = sz.load(tmp_path / "dl")
    assert (model.sample_shape, model.num_classes, model.null_label) == ((2, 4, 4), 10, 10)
    run = sz.generate(model.condition([0, 1], guidance_scale=2.0), "dpmpp_2m", 4, [0, 1], model.sample_shape)
    assert (run.counted_nfe, run.forwards) == (4, 8) and model.decode(run.samples).shape == (2, 1, 8, 8)


def test_shipped_digits_latent_is_listed_and_samples_a_decoded_grid(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    from samplerzoo.cli import main

    spec = sz.get_checkpoint("digits-latent")
    assert (spec.prediction, spec.schedule) == ("epsilon", "DiscreteVP")
    model = sz.load("digits-latent")
    assert (model.sample_shape, model.num_classes, model.null_label) == ((2, 4, 4), 10, 10)
    out = tmp_path / "grid.png"
    monkeypatch.setattr(sys, "argv", ["zoo", "sample", "--checkpoint", "digits-latent", "--sampler", "heun", "--nfe",
                                      "7", "-n", "10", "--scale", "1", "--guidance-scale", "2", "--out", str(out)])
    main()
    assert Image.open(out).size == (10 * 9, 9)  # ten decoded 8x8 digits, one class per column
