"""Flow and zero-terminal-SNR checkpoints: diffusers configs, training losses, and the shipped digits-flow/-zsnr."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch
from diffusers import UNet2DModel

import samplerzoo as sz
from samplerzoo.cli import main
from samplerzoo.flow import FlowMatch, TrigFlow
from samplerzoo.noise_schedules import DiscreteVP
from samplerzoo.training import RECIPES, Recipe, denoising_loss, train

TINY = {"sample_size": 8, "in_channels": 1, "out_channels": 1, "block_out_channels": [8, 16], "layers_per_block": 1,
        "down_block_types": ["DownBlock2D", "DownBlock2D"], "up_block_types": ["UpBlock2D", "UpBlock2D"],
        "norm_num_groups": 4}
FLOW = {"_class_name": "FlowMatchEulerDiscreteScheduler", "num_train_timesteps": 1000, "shift": 3.0}


def bare(directory: Path, scheduler: dict[str, object]) -> tuple[Path, UNet2DModel]:
    torch.manual_seed(0)
    unet = UNet2DModel(**TINY).eval()
    unet.save_pretrained(directory, safe_serialization=True)
    (directory / "scheduler_config.json").write_text(json.dumps(scheduler))
    return directory, unet


def test_flow_match_directory_is_a_rectified_flow_denoiser(tmp_path: Path) -> None:
    directory, unet = bare(tmp_path, FLOW)
    model = sz.load(directory)
    assert isinstance(model.schedule, FlowMatch) and model.prediction == "flow" and math.isinf(model.sigma_max)
    x, t = torch.randn(3, 1, 8, 8), 0.6
    sigma = t / (1 - t)
    with torch.no_grad():  # written out by hand: x_t = (1 - t) x, D = x_t - t v(x_t, 1000 t)
        x_t = (1 - t) * x
        expected = x_t - t * unet(x_t, torch.full((3,), 1000 * t)).sample
        torch.testing.assert_close(model(x, torch.full((3,), sigma)), expected, atol=1e-5, rtol=1e-5)
        noise = torch.randn(3, 1, 8, 8)  # at t = 1 the model sees the unit noise: D = n - v(n, 1000)
        torch.testing.assert_close(model(noise, torch.full((3,), math.inf)),
                                   noise - unet(noise, torch.full((3,), 1000.0)).sample, atol=1e-5, rtol=1e-5)


def test_other_flow_configs(tmp_path: Path) -> None:
    dynamic = sz.load(bare(tmp_path / "flux", {**FLOW, "use_dynamic_shifting": True})[0])
    assert dynamic.schedule.time_shift.mu == pytest.approx(0.5 + 0.65 * (16 - 256) / 3840)  # (8/2)^2 = 16 tokens
    sana = sz.load(bare(tmp_path / "sana", {"_class_name": "DPMSolverMultistepScheduler", "use_flow_sigmas": True,
                                            "flow_shift": 3.0, "prediction_type": "flow_prediction"})[0])
    assert sana.prediction == "flow" and sana.schedule.time_shift.shift == 3.0
    scm = sz.load(bare(tmp_path / "scm", {"_class_name": "SCMScheduler", "sigma_data": 0.5})[0])
    assert isinstance(scm.schedule, TrigFlow) and scm.prediction == "v" and scm.sigma_data == 0.5
    zsnr = sz.load(bare(tmp_path / "zsnr", {**RECIPES["digits-zsnr"].scheduler})[0])
    assert isinstance(zsnr.schedule, DiscreteVP) and math.isinf(zsnr.sigma_max) and zsnr.prediction == "v"


@pytest.mark.parametrize(("change", "message"), [
    ({"time_shift_type": "logistic"}, "unknown time_shift_type 'logistic'; known: exponential, linear"),
    ({"shift": 0}, "shift must be > 0, got 0"),
    ({"sigma_min": 1.2}, "sigma_min 1.2 is not a flow time; flow times (diffusers' sigmas) lie in (0, 1]"),
    ({"prediction_type": "epsilon"}, "a rectified-flow scheduler config needs prediction_type flow_prediction"),
    ({"shift": "3"}, "shift must be a finite number, got '3'"),
    ({"use_dynamic_shifting": True, "max_shift": math.nan}, "max_shift must be a finite number, got nan"),
    ({"_class_name": "SCMScheduler", "sigma_data": 0}, "sigma_data must be > 0, got 0"),
])
def test_bad_flow_configs_are_one_line(change: dict[str, object], message: str, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    directory, _ = bare(tmp_path, {**FLOW, **change})
    out = str(tmp_path / "g.png")
    monkeypatch.setattr(sys, "argv", ["zoo", "sample", "--checkpoint", str(directory), "--out", out])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 1 and err.count("\n") == 1 and message in err, err


def test_flow_loss_is_the_velocity_loss_and_zsnr_trains_at_infinity() -> None:
    model, _ = train(Recipe("digits-flow", RECIPES["digits-flow"].scheduler, unet=dict(TINY), steps=2, batch=8))
    x0, noise = torch.randn(4, 1, 8, 8), torch.randn(4, 1, 8, 8)
    sigma = torch.tensor([0.1, 1.0, 5.0, 50.0])
    t = (sigma / (1 + sigma))[:, None, None, None]
    with torch.no_grad():  # ||v_hat(x_t, 1000 t) - (eps - x0)||^2 on x_t = (1 - t) x0 + t eps
        velocity = model.net((1 - t) * x0 + t * noise, 1000 * t.flatten())
        torch.testing.assert_close(denoising_loss(model, x0, sigma, noise), (velocity - (noise - x0)).pow(2).mean())
    zsnr, record = train(Recipe("digits-zsnr", RECIPES["digits-zsnr"].scheduler, unet=dict(TINY), steps=2, batch=8))
    inf = torch.full((4,), math.inf)
    with torch.no_grad():
        assert torch.isfinite(denoising_loss(zsnr, x0, inf, noise)) and math.isfinite(record["final_loss"])


SHIPPED = [name for name in ("digits-flow", "digits-zsnr") if name in sz.get_checkpoints()]


def test_shipped_flow_checkpoints_are_listed(capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    assert SHIPPED == ["digits-flow", "digits-zsnr"], "train them: zoo train digits-flow; zoo train digits-zsnr"
    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.setattr(sys, "argv", ["zoo", "checkpoints"])
    main()
    out = capsys.readouterr().out
    assert "digits-flow" in out and "FlowMatch" in out and "digits-zsnr" in out
    flow = sz.load("digits-flow")
    assert flow.prediction == "flow" and flow.schedule.time_shift.shift == 1.0 and flow.sample_shape == (1, 8, 8)


@pytest.mark.parametrize(("checkpoint", "schedule"), [("digits-flow", "karras"), ("digits-flow", "normal"),
                                                     ("digits-zsnr", "trailing")])
def test_shipped_flow_checkpoints_bench(checkpoint: str, schedule: str, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from samplerzoo.bench import harness

    monkeypatch.setenv("SAMPLERZOO_CACHE", str(tmp_path / "cache"))
    rows = harness.sweep(checkpoint, ["dpmpp_2m", "flow_heun"], [schedule], [10], samples=40, seed=0,
                         results=tmp_path / "r.jsonl", batch=40, metric_names=("fid",))
    assert [(r["status"], r["counted_nfe"]) for r in rows] == [("ok", 10), ("ok", 10)]
    assert all(math.isfinite(r["metrics"]["fid"]) for r in rows)
