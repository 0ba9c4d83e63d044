"""Guidance rules (samplerzoo.guidance_rules): each agrees with diffusers' guider of the same method on the same
predictions, Lin et al.'s rescale agrees with StableDiffusionPipeline's ``guidance_rescale`` end to end, and the
rules keep CFG's invariants (scale 1 is the conditional prediction; each sample is guided on its own)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pipeline_builders as build
import pytest
import torch
from diffusers import DPMSolverMultistepScheduler, EulerDiscreteScheduler, StableDiffusionPipeline
from diffusers.guiders import (
    ClassifierFreeGuidance,
    ClassifierFreeZeroStarGuidance,
    TangentialClassifierFreeGuidance,
)
from diffusers.guiders.adaptive_projected_guidance import MomentumBuffer, normalized_guidance
from torch import Tensor

import samplerzoo as sz
from samplerzoo import guidance_rules as rules
from samplerzoo.adapters import NetworkDenoiser
from samplerzoo.errors import SamplerzooError
from samplerzoo.guidance import ClassifierFreeGuidance as OurCFG
from samplerzoo.noise_schedules import DiscreteVP
from samplerzoo.plugins import get_guidances, guidance_method

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::FutureWarning", "ignore::DeprecationWarning")
SCALE = 4.0


def predictions(batch: int = 3, seed: int = 0) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed)
    cond = torch.randn(batch, 4, 8, 8, generator=g)
    return cond, 0.7 * cond + 0.4 * torch.randn(batch, 4, 8, 8, generator=g)


def levels(batch: int, sigma: float) -> Tensor:
    return torch.full((batch,), sigma)


def diffusers_guider(cls: Any, **settings: Any) -> Any:
    guider = cls(guidance_scale=SCALE, **settings)
    guider.set_state(step=0, num_inference_steps=10, timestep=torch.tensor(999))
    return guider


@pytest.mark.parametrize(("name", "guider"), [
    ("cfg", lambda: diffusers_guider(ClassifierFreeGuidance)),
    ("cfg_zero_star", lambda: diffusers_guider(ClassifierFreeZeroStarGuidance, zero_init_steps=0)),
    ("tcfg", lambda: diffusers_guider(TangentialClassifierFreeGuidance)),
])
def test_stateless_rules_agree_with_diffusers_guiders(name: str, guider: Any) -> None:
    cond, uncond = predictions()
    ours = guidance_method(name).rule()(cond, uncond, SCALE, levels(3, 1.0))
    torch.testing.assert_close(ours, guider().forward(cond, uncond).pred, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("phi", [0.0, 0.7, 1.0])
def test_rescale_agrees_with_diffusers_guidance_rescale(phi: float) -> None:
    cond, uncond = predictions()
    theirs = diffusers_guider(ClassifierFreeGuidance, guidance_rescale=phi).forward(cond, uncond).pred
    torch.testing.assert_close(rules.rescaled(rules.cfg(cond, uncond, SCALE, levels(3, 1.0)), cond, phi), theirs,
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("eta", "threshold", "momentum"), [(0.0, 0.0, 0.0), (0.3, 2.5, -0.5), (1.0, 5.0, 0.4)])
def test_apg_agrees_with_diffusers_normalized_guidance_over_a_trajectory(eta: float, threshold: float,
                                                                         momentum: float) -> None:
    """diffusers' ``normalized_guidance`` with ``use_original_formulation`` is the paper's cond + (w - 1) update;
    the momentum carries over three calls at falling sigma."""
    rule = guidance_method("apg", {"eta": eta, "norm_threshold": threshold, "momentum": momentum}).rule()
    buffer = MomentumBuffer(momentum) if momentum else None
    for k in range(3):
        cond, uncond = predictions(seed=k)
        theirs = normalized_guidance(cond, uncond, SCALE - 1, buffer, eta, threshold, use_original_formulation=True)
        torch.testing.assert_close(rule(cond, uncond, SCALE, levels(3, 10.0 - k)), theirs, rtol=1e-5, atol=1e-5)


def test_apg_momentum_starts_over_where_sigma_rises() -> None:
    """A sample whose sigma rose (a new trajectory) has no memory; the others keep theirs."""
    rule = guidance_method("apg", {"momentum": -0.5, "eta": 1.0}).rule()
    cond, uncond = predictions()
    rule(cond, uncond, SCALE, levels(3, 5.0))
    later = rule(cond, uncond, SCALE, torch.tensor([4.0, 80.0, 4.0]))
    fresh = guidance_method("apg", {"eta": 1.0}).rule()(cond, uncond, SCALE, levels(3, 4.0))
    torch.testing.assert_close(later[1], fresh[1])
    assert (later[0] - fresh[0]).abs().max() > 0.1


def test_apg_with_eta_one_and_no_extras_is_cfg() -> None:
    cond, uncond = predictions()
    torch.testing.assert_close(guidance_method("apg", {"eta": 1.0}).rule()(cond, uncond, SCALE, levels(3, 1.0)),
                               rules.cfg(cond, uncond, SCALE, levels(3, 1.0)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", sorted(get_guidances()))
def test_every_rule_at_scale_one_is_the_conditional_prediction(name: str) -> None:
    cond, uncond = predictions()
    for options in ({}, {"rescale": 0.7}):
        guided = guidance_method(name, options).rule()(cond, uncond, 1.0, levels(3, 1.0))
        torch.testing.assert_close(guided, cond, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", sorted(get_guidances()))
def test_every_rule_guides_each_sample_on_its_own(name: str) -> None:
    """The batch's rows guided together equal each row guided alone (over two calls, for a rule with memory)."""
    options = {"momentum": -0.5, "norm_threshold": 3.0} if name == "apg" else {}
    together, alone = guidance_method(name, options).rule(), [guidance_method(name, options).rule() for _ in range(3)]
    for k in range(2):
        cond, uncond = predictions(seed=k)
        batched = together(cond, uncond, SCALE, levels(3, 5.0 - k))
        rows = [rule(cond[i:i + 1], uncond[i:i + 1], SCALE, levels(1, 5.0 - k)) for i, rule in enumerate(alone)]
        torch.testing.assert_close(batched, torch.cat(rows), rtol=1e-5, atol=1e-5)


class Doubling(torch.nn.Module):
    """A network whose output is known: F = 2 x_in + c_noise / 1000 (+ 1 for the conditional half)."""

    def forward(self, x: Tensor, c_noise: Tensor, class_labels: Tensor) -> Tensor:
        return 2 * x + (c_noise / 1000 + (class_labels != 10).to(x)).reshape(-1, 1, 1, 1)


def test_prediction_space_is_the_network_output() -> None:
    """space=prediction hands the rule the network's own epsilon (Doubling's F), and back maps to D exactly."""
    model = NetworkDenoiser(Doubling(), "epsilon", DiscreteVP.linear_betas(), sample_shape=(1, 4, 4), num_classes=10,
                            null_label=10)
    x, sigma = torch.randn(2, 1, 4, 4, generator=torch.Generator().manual_seed(0)), torch.tensor([3.0, 0.5])
    seen: list[tuple[Tensor, Tensor]] = []

    def spy(cond: Tensor, uncond: Tensor, scale: float, s: Tensor) -> Tensor:
        seen.append((cond, uncond))
        return rules.cfg(cond, uncond, scale, s)

    method = rules.GuidanceMethod("spy", rules.stateless(spy), "prediction")
    guided = OurCFG(model, SCALE, 10, method=method)(x, sigma, class_labels=torch.tensor([1, 2]))
    c_in = model.schedule.c_in(sigma.reshape(-1, 1, 1, 1))
    network = 2 * c_in * x + (model.schedule.c_noise(sigma) / 1000).reshape(-1, 1, 1, 1)
    torch.testing.assert_close(seen[0][0], network + 1, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(seen[0][1], network, rtol=1e-5, atol=1e-5)
    plain = OurCFG(model, SCALE, 10)(x, sigma, class_labels=torch.tensor([1, 2]))
    torch.testing.assert_close(guided, plain, rtol=1e-5, atol=1e-5)  # CFG is affine: any space gives the same D


@pytest.mark.parametrize(("prediction", "sampler", "scheduler_cls", "config"), [
    ("epsilon", "euler", EulerDiscreteScheduler, {"timestep_spacing": "leading", "steps_offset": 1}),
    ("v_prediction", "dpmpp_2m", DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++", "solver_order": 2}),
])
def test_rescale_agrees_with_stable_diffusion_guidance_rescale(tmp_path: Path, prediction: str, sampler: str,
                                                               scheduler_cls: Any, config: dict[str, Any]) -> None:
    """StableDiffusionPipeline(guidance_rescale=0.7) against our sampler with ``--guidance-option rescale=0.7``
    (cfg's default space, the network's prediction); without the rescale the two differ."""
    directory = build.stable_diffusion(tmp_path / "sd", scheduler_cls(**build.SD_BETAS, **config,
                                                                     prediction_type=prediction))
    model = sz.load(directory)
    pipe = StableDiffusionPipeline.from_pretrained(directory, safety_checker=None, feature_extractor=None,
                                                   requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    prompts, steps = ["a photo of a cat", "a painting of a dog"], 8
    latents = torch.randn((2, *model.sample_shape), generator=torch.Generator().manual_seed(7))
    theirs = pipe(prompts, guidance_scale=7.5, guidance_rescale=0.7, num_inference_steps=steps, latents=latents,
                  output_type="latent").images
    table = model.sigma_table
    assert table is not None
    sigmas = torch.cat([table[pipe.scheduler.timesteps.round().long()], torch.zeros(1, dtype=table.dtype)])
    vp = float(pipe.scheduler.init_noise_sigma) == 1.0
    start = latents * (float((1 + sigmas[0] ** 2).sqrt()) if vp else float(pipe.scheduler.init_noise_sigma))
    with pytest.raises(SamplerzooError, match=r"guidance 'apg' combines .* give a guidance scale other than 1"):
        model.condition(range(2), prompts=prompts, guidance=guidance_method("apg"))  # text conditioners check too
    results = {}
    for phi in (0.7, 0.0):
        denoiser = model.condition(range(2), prompts=prompts, guidance_scale=7.5,
                                   guidance=guidance_method("cfg", {"rescale": phi}))
        with torch.no_grad():
            results[phi] = sz.get_sampler(sampler).fn(denoiser, start, sigmas)
    diff = (results[0.7] - theirs).abs().max().item()
    print(f"sd {prediction} {sampler} guidance_rescale 0.7: max |ours - diffusers| = {diff:.2e}; without the "
          f"rescale {(results[0.0] - theirs).abs().max().item():.2e}")
    assert diff <= 1e-4
    assert (results[0.0] - theirs).abs().max() > 100 * diff


def test_bad_guidance_requests_are_one_line() -> None:
    with pytest.raises(SamplerzooError, match=r"has no option 'gamma'; accepted: eta, momentum, norm_threshold"):
        guidance_method("apg", {"gamma": 0.5})
    with pytest.raises(SamplerzooError, match=r"space='x0' is not a space; accepted: denoised, noise, prediction"):
        guidance_method("tcfg", {"space": "x0"})
    with pytest.raises(SamplerzooError, match=r"rescale=1.5 is not a number in \[0, 1\]"):
        guidance_method("cfg", {"rescale": 1.5})
    with pytest.raises(SamplerzooError, match=r"unknown guidance 'pag'"):
        guidance_method("pag")
    with pytest.raises(SamplerzooError, match=r"option eta='high' is a str; accepted: float"):
        guidance_method("apg", {"eta": "high"})


def test_a_rule_needs_a_guidance_scale_and_prediction_space_a_network() -> None:
    mixture = sz.GaussianMixture(torch.zeros(2, 2), torch.ones(2), torch.ones(2))
    with pytest.raises(SamplerzooError, match=r"guidance 'apg' combines .* give a guidance scale other than 1"):
        sz.load("digits-cond").condition(range(2), guidance=guidance_method("apg"))
    with pytest.raises(SamplerzooError, match="in space 'prediction' needs a network checkpoint"):
        OurCFG(mixture, SCALE, 1, method=guidance_method("cfg", {"rescale": 0.5}))


def test_zoo_guidance_lists_every_rule() -> None:
    from typer.testing import CliRunner

    from samplerzoo.cli import app

    result = CliRunner().invoke(app, ["guidance", "--json"])
    assert result.exit_code == 0
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert set(rows) == set(get_guidances())
    assert rows["apg"]["options"] == ["eta", "norm_threshold", "momentum"] and rows["apg"]["space"] == "denoised"


def test_zoo_bench_sweeps_guidance_rules_and_reports_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--guidance is a sweep axis: each rule is its own point, named in the report's rows and in the commands that
    rerun them; a rule without a guidance scale fails before any work."""
    from typer.testing import CliRunner

    from samplerzoo.bench.report import markdown
    from samplerzoo.cli import app

    monkeypatch.setenv("SAMPLERZOO_CACHE", str(tmp_path / "cache"))
    results = tmp_path / "g.jsonl"
    base = ["bench", "--checkpoint", "digits-cond", "--sampler", "euler", "--nfe", "4", "--samples", "20",
            "--batch", "20", "--metrics", "fid", "--results", str(results)]
    refused = CliRunner().invoke(app, [*base, "--guidance", "apg"])
    assert refused.exit_code != 0 and "give a guidance scale other than 1" in str(refused.exception)
    assert not results.exists()
    ran = CliRunner().invoke(app, [*base, "--guidance-scale", "3", "--guidance", "cfg,apg,tcfg",
                                   "--guidance-option", "rescale=0,0.5", "--json"])
    assert ran.exit_code == 0, ran.output
    rows = json.loads(ran.stdout)
    assert sorted((r["guidance"], r["guidance_options"]["rescale"]) for r in rows) == sorted(
        (g, phi) for g in ("cfg", "apg", "tcfg") for phi in (0, 0.5))
    assert all(r["status"] == "ok" and r["forwards"] == 8 for r in rows)
    fids = {(r["guidance"], r["guidance_options"]["rescale"]): r["metrics"]["fid"] for r in rows}
    assert len(set(fids.values())) == len(fids)  # every rule and rescale changes the samples
    table = CliRunner().invoke(app, [*base, "--guidance-scale", "3", "--guidance", "cfg,apg,tcfg",
                                     "--guidance-option", "rescale=0,0.5"], env={"COLUMNS": "200"})
    assert table.exit_code == 0 and "guidance" in table.stdout and "tcfg rescale=0.5" in table.stdout  # resumed
    report = markdown([json.loads(line) for line in results.read_text().splitlines()], str(results), "zoo report")
    assert "euler guidance=apg guidance.rescale=0.5" in report
    assert "--guidance tcfg --guidance-option rescale=0" in report


def test_a_plugin_registers_a_guidance_rule() -> None:
    """A third party's rule arrives through the same hook as the built-ins and is attributed to its plugin."""
    from samplerzoo import hookimpl
    from samplerzoo.plugins import get_guidance, register_plugin, unregister_plugin
    from samplerzoo.registry import GuidanceSpec

    def half_cfg(cond: Tensor, uncond: Tensor, scale: float, sigma: Tensor) -> Tensor:
        return rules.cfg(cond, uncond, (1 + scale) / 2, sigma)

    class Plugin:
        @hookimpl
        def register_guidance(self, register: Any) -> None:
            register(GuidanceSpec("half_cfg", rules.stateless(half_cfg), "CFG at the mean of 1 and the scale"))

    register_plugin(Plugin(), "half")
    try:
        assert get_guidance("half_cfg").plugin == "half"
        cond, uncond = predictions()
        torch.testing.assert_close(guidance_method("half_cfg").rule()(cond, uncond, 3.0, levels(3, 1.0)),
                                   rules.cfg(cond, uncond, 2.0, levels(3, 1.0)))
    finally:
        unregister_plugin("half")
    with pytest.raises(SamplerzooError, match="unknown guidance 'half_cfg'"):
        get_guidance("half_cfg")
