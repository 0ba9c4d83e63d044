"""Checkpoint loading: diffusers layouts, described safetensors files, and one-line errors for bad input."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from diffusers import DDPMScheduler, UNet2DModel
from PIL import Image

import samplerzoo as sz
from samplerzoo.checkpoints.betas import alphas_cumprod
from samplerzoo.checkpoints.diffusers_format import UNetNetwork, save_diffusers
from samplerzoo.checkpoints.families import load_diffusers
from samplerzoo.cli import main
from samplerzoo.noise_schedules import EDM, SubVP
from samplerzoo.training import Recipe, denoising_loss, train

TINY = {"sample_size": 8, "in_channels": 1, "out_channels": 1, "block_out_channels": [8, 16], "layers_per_block": 1,
        "down_block_types": ["DownBlock2D", "DownBlock2D"], "up_block_types": ["UpBlock2D", "UpBlock2D"],
        "norm_num_groups": 4}
SCHEDULER = {"_class_name": "DDPMScheduler", "beta_schedule": "linear", "beta_start": 1e-4, "beta_end": 0.02,
             "num_train_timesteps": 1000, "prediction_type": "epsilon"}


def tiny_unet(**overrides: object) -> UNet2DModel:
    torch.manual_seed(0)
    return UNet2DModel(**{**TINY, **overrides}).eval()


def write_bare(directory: Path, unet: UNet2DModel, scheduler: dict[str, object]) -> Path:
    unet.save_pretrained(directory, safe_serialization=True)
    (directory / "scheduler_config.json").write_text(json.dumps(scheduler))
    return directory


def expected_epsilon_denoiser(unet: UNet2DModel, x: torch.Tensor, sigma: float, t: int) -> torch.Tensor:
    """D = x - sigma * eps(x / sqrt(1 + sigma^2), t), written out by hand (k-diffusion's eps denoiser)."""
    with torch.no_grad():
        return x - sigma * unet(x / (1 + sigma**2) ** 0.5, torch.tensor([t] * len(x))).sample[:, :1]


def check_epsilon_checkpoint(model: sz.Checkpoint, unet: UNet2DModel) -> None:
    t = 321
    sigma = float(model.sigma_table[t])
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        got = model(x, torch.full((3,), sigma))
    torch.testing.assert_close(got, expected_epsilon_denoiser(unet, x, sigma, t), atol=1e-5, rtol=1e-5)
    assert model.sample_shape == (1, 8, 8) and model.num_classes == 0


def test_bare_unet_directory(tmp_path: Path) -> None:
    unet = tiny_unet()
    check_epsilon_checkpoint(sz.load(write_bare(tmp_path, unet, SCHEDULER)), unet)


def test_pipeline_layout(tmp_path: Path) -> None:
    unet = tiny_unet()
    unet.save_pretrained(tmp_path / "unet", safe_serialization=True)
    (tmp_path / "scheduler").mkdir()
    (tmp_path / "scheduler" / "scheduler_config.json").write_text(json.dumps(SCHEDULER))
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "DDPMPipeline",
                                                           "unet": ["diffusers", "UNet2DModel"]}))
    check_epsilon_checkpoint(sz.load(tmp_path), unet)


def test_legacy_root_layout_with_learned_variance_and_bin_weights(tmp_path: Path) -> None:
    # google/ddpm-cifar10-32's layout: GaussianDDPMScheduler, "timesteps", .bin weights; here with a
    # learned-variance network (2C output channels) whose second half must be dropped.
    unet = tiny_unet(out_channels=2)
    (tmp_path / "config.json").write_text(json.dumps({"_class_name": "UNet2DModel", **TINY, "out_channels": 2}))
    torch.save(unet.state_dict(), tmp_path / "diffusion_pytorch_model.bin")
    legacy = {"_class_name": "GaussianDDPMScheduler", "beta_start": 1e-4, "beta_end": 0.02, "beta_schedule": "linear",
              "timesteps": 1000, "variance_type": "fixed_large"}
    (tmp_path / "scheduler_config.json").write_text(json.dumps(legacy))
    check_epsilon_checkpoint(sz.load(tmp_path), unet)


@pytest.mark.parametrize("config", [
    {"beta_schedule": "linear", "beta_start": 1e-4, "beta_end": 0.02},
    {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012},
    {"beta_schedule": "squaredcos_cap_v2"},
    {"trained_betas": torch.linspace(1e-4, 0.05, 1000).tolist()},
])
def test_beta_schedules_match_diffusers(config: dict[str, object]) -> None:
    theirs = DDPMScheduler(num_train_timesteps=1000, **config).alphas_cumprod.double()
    torch.testing.assert_close(alphas_cumprod({"num_train_timesteps": 1000, **config}, "cfg"), theirs,
                               atol=2e-7, rtol=1e-5)


@pytest.mark.parametrize("scheduler", ["CogVideoXDDIMScheduler", "CogVideoXDPMScheduler"])
@pytest.mark.parametrize("config", [{}, {"snr_shift_scale": 1.0},
                                    {"snr_shift_scale": 4.0, "rescale_betas_zero_snr": True}])
def test_cogvideox_snr_shift_matches_diffusers(scheduler: str, config: dict[str, object]) -> None:
    """alpha_bar / (s + (1 - s) alpha_bar), then the zero-SNR rescale (the CogVideoX / CogView3 schedulers' order),
    read from the config diffusers saves; where it lacks snr_shift_scale, diffusers' default s = 3."""
    import diffusers

    made = getattr(diffusers, scheduler)(**config)
    saved = {"_class_name": scheduler, **made.config}
    if not config:
        del saved["snr_shift_scale"]
    torch.testing.assert_close(alphas_cumprod(saved, "cfg"), made.alphas_cumprod.double(), atol=1e-12, rtol=0)


@pytest.mark.parametrize(("prediction_type", "canonical"), [("epsilon", "epsilon"), ("v_prediction", "v"),
                                                            ("sample", "x0")])
def test_prediction_type_is_read(tmp_path: Path, prediction_type: str, canonical: str) -> None:
    model = sz.load(write_bare(tmp_path, tiny_unet(), {**SCHEDULER, "prediction_type": prediction_type}))
    assert model.prediction == canonical


def test_edm_scheduler_config_means_edm_preconditioning(tmp_path: Path) -> None:
    config = {"_class_name": "EDMEulerScheduler", "sigma_min": 0.002, "sigma_max": 80.0, "sigma_data": 0.75,
              "prediction_type": "epsilon"}
    model = sz.load(write_bare(tmp_path, tiny_unet(), config))
    assert model.prediction == "edm" and model.schedule == EDM(0.002, 80.0, 0.75)


def test_class_conditional_unet(tmp_path: Path) -> None:
    unet = tiny_unet(num_class_embeds=11)
    model = sz.load(write_bare(tmp_path, unet, SCHEDULER))
    assert model.num_classes == 11
    x, sigma = torch.randn(2, 1, 8, 8), torch.full((2,), 1.0)
    with torch.no_grad():
        a, b = (model(x, sigma, class_labels=torch.tensor([label, label])) for label in (3, 7))
    assert not torch.allclose(a, b)


def described(tmp_path: Path, suffix: str, **changes: object) -> Path:
    unet = tiny_unet()
    from safetensors.torch import save_file

    tmp_path.mkdir(parents=True, exist_ok=True)
    save_file(UNetNetwork(unet).state_dict(), tmp_path / "model.safetensors")
    desc = {"architecture": "UNet2DModel", "arguments": TINY, "prediction": "edm", "sample_shape": [1, 8, 8],
            "noise_schedule": {"type": "edm", "sigma_data": 0.75}, **changes}
    path = tmp_path / f"model{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps(desc))
    else:
        lines = [f"architecture = {json.dumps(desc['architecture'])}", f"prediction = {json.dumps(desc['prediction'])}",
                 f"sample_shape = {desc['sample_shape']}", "[noise_schedule]", 'type = "edm"', "sigma_data = 0.75",
                 "[arguments]", *[f"{k} = {json.dumps(v)}" for k, v in TINY.items()]]
        path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("suffix", [".json", ".toml"])
def test_described_safetensors(tmp_path: Path, suffix: str) -> None:
    described(tmp_path, suffix)
    model = sz.load(tmp_path / "model.safetensors")
    assert model.prediction == "edm" and model.schedule == EDM(sigma_data=0.75) and model.sample_shape == (1, 8, 8)
    x, sigma = torch.randn(2, 1, 8, 8), torch.full((2,), 0.5)
    s2 = 0.5**2 + 0.75**2
    c_skip, c_out, c_in = 0.75**2 / s2, 0.5 * 0.75 / s2**0.5, s2**-0.5
    with torch.no_grad():
        expected = c_skip * x + c_out * tiny_unet()(c_in * x, torch.log(sigma) / 4).sample
        torch.testing.assert_close(model(x, sigma), expected, atol=1e-5, rtol=1e-5)


def test_described_sub_vp_checkpoint(tmp_path: Path) -> None:
    described(tmp_path, ".json", prediction="epsilon", noise_schedule={"type": "sub_vp", "beta_d": 19.9})
    model = sz.load(tmp_path / "model.json")
    assert model.schedule == SubVP()
    x, sigma = torch.randn(2, 1, 8, 8), torch.full((2,), 3.0)
    zeta = 2 / (3.0 + 13**0.5)  # the network sees the SDE's x = zeta (x0 + sigma n) and 999 t
    t = SubVP().t(torch.tensor(3.0, dtype=torch.float64))
    with torch.no_grad():
        expected = x - 3.0 * tiny_unet()(zeta * x, torch.full((2,), 999 * float(t))).sample
        torch.testing.assert_close(model(x, sigma), expected, atol=1e-5, rtol=1e-5)


def test_save_and_reload_round_trip(tmp_path: Path) -> None:
    original = sz.load(write_bare(tmp_path / "a", tiny_unet(), SCHEDULER))
    save_diffusers(original, tmp_path / "b", SCHEDULER)
    again = load_diffusers(tmp_path / "b")
    x, sigma = torch.randn(2, 1, 8, 8), torch.full((2,), 2.0)
    with torch.no_grad():
        torch.testing.assert_close(again(x, sigma), original(x, sigma))


def corrupt(tmp_path: Path) -> Path:
    directory = write_bare(tmp_path, tiny_unet(), SCHEDULER)
    (directory / "diffusion_pytorch_model.safetensors").write_bytes(b"\x00garbage" * 10)
    return directory


def wrong_shape(tmp_path: Path) -> Path:
    directory = write_bare(tmp_path, tiny_unet(), SCHEDULER)
    config = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps({**config, "in_channels": 3, "out_channels": 3}))
    return directory


BAD = [
    (lambda p: p / "missing", "missing: not a registered checkpoint, a diffusers model directory"),
    (lambda p: write_bare(p, tiny_unet(), {**SCHEDULER, "prediction_type": "flux"}),
     "scheduler_config.json: unknown prediction_type 'flux'; known: epsilon, v_prediction, sample"),
    (lambda p: write_bare(p, tiny_unet(), {**SCHEDULER, "beta_schedule": "sigmoid"}),
     "scheduler_config.json: unknown beta_schedule 'sigmoid'; known: linear, scaled_linear, squaredcos_cap_v2"),
    (corrupt, "diffusion_pytorch_model.safetensors: corrupt or unreadable weights"),
    (wrong_shape, "diffusion_pytorch_model.safetensors: tensor 'conv_in.weight' has shape (8, 1, 3, 3), the "
                  "architecture expects (8, 3, 3, 3)"),
    (lambda p: (p.mkdir(exist_ok=True), (p / "scheduler_config.json").write_text("{"), p)[-1],
     "scheduler_config.json: not valid JSON"),
    (lambda p: described(p, ".json", prediction="flux"), "model.json: unknown parameterization 'flux'"),
    (lambda p: described(p, ".json", architecture="os.system"),
     "model.json: unknown architecture 'os.system'; known: UNet2DModel"),
    (lambda p: described(p, ".json", noise_schedule={"type": "cosine"}), "model.json: unknown noise_schedule type"),
]


@pytest.mark.parametrize(("make", "message"), BAD)
def test_bad_checkpoints_give_one_clear_line(tmp_path: Path, make, message: str) -> None:  # type: ignore[no-untyped-def]
    target = make(tmp_path / "ckpt")
    with pytest.raises(sz.CheckpointError) as error:
        sz.load(target)
    assert message in str(error.value) and "\n" not in str(error.value), str(error.value)


def test_digits_ideal_is_registered_and_exact() -> None:
    model = sz.load("digits-ideal")
    assert model.sample_shape == (1, 8, 8) and "digits-ideal" in sz.get_checkpoints()
    train_images = sz.get_checkpoint("digits-ideal").load().means
    with torch.no_grad():
        torch.testing.assert_close(model(train_images[:4] + 1e-3, torch.full((4,), 0.01)), train_images[:4])


def test_sample_command_writes_a_grid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "grid.png"
    monkeypatch.setattr(sys, "argv", ["zoo", "sample", "--checkpoint", "digits-ideal", "--sampler", "heun",
                                      "--nfe", "7", "-n", "6", "--scale", "2", "--out", str(out)])
    main()
    assert Image.open(out).size == (3 * 9 * 2, 2 * 9 * 2)


def test_training_is_deterministic_and_uses_the_parameterization_loss() -> None:
    recipe = Recipe("digits", {**SCHEDULER}, unet=dict(TINY), steps=3, batch=8)
    (a, record_a), (b, record_b) = train(recipe), train(recipe)
    assert record_a["loss_every_100"] == record_b["loss_every_100"]
    for p, q in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q)
    x0, noise, sigma = torch.randn(4, 1, 8, 8), torch.randn(4, 1, 8, 8), torch.tensor([0.1, 1.0, 5.0, 20.0])
    with torch.no_grad():  # for epsilon prediction the loss is plain epsilon matching
        eps = a.net(a.schedule.c_in(sigma[:, None, None, None]) * (x0 + sigma[:, None, None, None] * noise),
                    a.schedule.c_noise(sigma))
        torch.testing.assert_close(denoising_loss(a, x0, sigma, noise), (eps - noise).pow(2).mean())


def test_null_label_beside_a_diffusers_model_enables_guidance(tmp_path: Path) -> None:
    directory = write_bare(tmp_path / "cond", tiny_unet(num_class_embeds=11), SCHEDULER)
    (directory / "samplerzoo.json").write_text(json.dumps({"null_label": 10}))
    model = sz.load(directory)
    assert (model.num_classes, model.null_label) == (10, 10)
    save_diffusers(model, tmp_path / "again", SCHEDULER)
    assert json.loads((tmp_path / "again" / "samplerzoo.json").read_text()) == {"null_label": 10}
    from samplerzoo.guidance import class_conditioned

    guided = class_conditioned(model, [3, 14], guidance_scale=2.0)
    run = sz.generate(guided, "euler", 2, seeds=[3, 14], sample_shape=model.sample_shape)
    assert run.counted_nfe == 2 and guided.cond["class_labels"].tolist() == [3, 4]


def test_guidance_without_a_null_label_and_a_bad_null_label_are_clear_errors(tmp_path: Path) -> None:
    from samplerzoo.guidance import class_conditioned

    directory = write_bare(tmp_path / "cond", tiny_unet(num_class_embeds=11), SCHEDULER)
    with pytest.raises(sz.SamplerzooError, match="classifier-free guidance needs a model trained with a null label"):
        class_conditioned(sz.load(directory), [0], guidance_scale=2.0)
    (directory / "samplerzoo.json").write_text(json.dumps({"null_label": 11}))
    with pytest.raises(sz.CheckpointError, match="null_label 11 is not one of the model's 11 class embeddings"):
        sz.load(directory)
