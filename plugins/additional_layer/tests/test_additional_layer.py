"""The additional-layer plugin (seed 002): registration, the method's structure, NFE, seeding, shipped layer.

Checks on samplerzoo's Gaussian test problem run with a stand-in layer (the identity, or a class stamp that
makes each sample's class visible in its output): the shipped layer only fits 8x8x1 digits.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

import pytest
import samplerzoo as sz
import torch
from samplerzoo import conformance, testing
from samplerzoo.cli import main as zoo_main
from samplerzoo.noise import SeededNoise
from samplerzoo.plugins import registry
from samplerzoo.schedules import SigmaRange, karras
from torch import Tensor

from samplerzoo_additional_layer import AdditionalLayer, identity_layer, shipped_layer
from samplerzoo_additional_layer.benchmark import inception_score, nearest_neighbour_distances
from samplerzoo_additional_layer.cli import main
from samplerzoo_additional_layer.layer import RECORD_FILE, WEIGHTS
from samplerzoo_additional_layer.samplers import (
    active_rows,
    denoised_from_v,
    fan_out_factors,
    v_from_denoised,
)

torch.set_num_threads(1)
V1, V2 = "additional_layer_v1", "additional_layer_v2"
SIGMAS = karras(6, SigmaRange(0.05, 10.0))


def class_stamp(v: Tensor, classes: Tensor) -> Tensor:
    """A stand-in layer whose output shows which class each row was directed to."""
    return v + 0.1 * (classes + 1).to(v).reshape(-1, *[1] * (v.ndim - 1))


def run(sampler: str, seeds: range | list[int], sigmas: Tensor = SIGMAS, **options: Any) -> Tensor:
    """Samples of the Gaussian problem for ``seeds``, noise per sample seed (as samplerzoo.testing.run_seeded)."""
    problem = testing.gaussian_problem()
    noise = SeededNoise(seeds, problem.sample_shape, dtype=torch.float64)
    return sz.get_sampler(sampler).fn(problem, noise.randn() * float(sigmas[0]), sigmas, noise=noise, **options)


def test_samplers_register_through_the_entry_point() -> None:
    assert conformance.plugin_samplers("additional_layer") == [V1, V2]
    assert registry().plugins["additional_layer"].distribution == "samplerzoo-additional-layer"
    assert sz.get_sampler(V1).plugin == sz.get_sampler(V2).plugin == "samplerzoo-additional-layer"


@pytest.mark.parametrize("eta", [0.0, 0.5])
def test_v1_with_the_identity_layer_is_ddim(eta: float) -> None:
    seeds = list(range(8))
    ddim = testing.run_seeded(sz.get_sampler("ddim"), seeds, eta=eta)
    v1 = testing.run_seeded(sz.get_sampler(V1), seeds, eta=eta, layer=identity_layer)
    assert float((v1 - ddim).abs().max()) <= 1e-12


def test_v_and_denoised_convert_both_ways() -> None:
    x, sigma = torch.randn(3, 1, 8, 8, dtype=torch.float64), torch.tensor(2.5, dtype=torch.float64)
    denoised = torch.randn_like(x)
    assert torch.allclose(denoised_from_v(x, sigma, v_from_denoised(x, sigma, denoised)), denoised, atol=1e-14)


def test_layer_sees_the_v_network_output() -> None:
    model = sz.load("digits-v")
    x, sigma = torch.randn(4, 1, 8, 8) * 3, torch.full((4,), 3.0)
    with torch.no_grad():
        network_v = model.net(model.schedule.c_in(sigma).reshape(-1, 1, 1, 1) * x, model.schedule.c_noise(sigma))
        v = v_from_denoised(x, sigma.reshape(-1, 1, 1, 1), model(x, sigma))
    assert torch.allclose(v, network_v, atol=1e-5)


@pytest.mark.parametrize("sampler,options", [(V1, {}), (V2, {"group": 10}), (V2, {"group": 20})])
@pytest.mark.parametrize("nfe", [2, 5, 8])
def test_counted_nfe_equals_declared_through_generate(sampler: str, options: dict[str, Any], nfe: int) -> None:
    problem = testing.gaussian_problem()
    generation = sz.generate(problem, sampler, nfe, seeds=range(40), sample_shape=problem.sample_shape,
                             dtype=torch.float64, final_step="zero", layer=identity_layer, **options)
    assert generation.counted_nfe == generation.declared_nfe == nfe


def test_v2_evaluates_fewer_rows_early() -> None:
    problem, rows = testing.gaussian_problem(), []

    def counting(x: Tensor, sigma: Tensor) -> Tensor:
        rows.append(len(x))
        return problem(x, sigma)

    sigmas = karras(5, SigmaRange(0.05, 10.0))
    noise = SeededNoise(range(200), problem.sample_shape, dtype=torch.float64)
    sz.get_sampler(V2).fn(counting, noise.randn() * 10.0, sigmas, noise=noise, layer=class_stamp)
    assert rows == [2 * r for r in active_rows(100, 5)] == [2, 20, 100, 200, 200]


def test_fan_out_plan() -> None:
    assert fan_out_factors(10) == [] and fan_out_factors(100) == [5, 2] and fan_out_factors(500) == [5, 5, 2]
    assert fan_out_factors(2000) == [5, 5, 2, 2, 2]
    assert active_rows(100, 4) == [1, 10, 50, 100] and active_rows(30, 2) == [1, 10]


def test_deterministic_and_seeded() -> None:
    assert torch.equal(testing.run_seeded(sz.get_sampler(V1), [0, 1], layer=class_stamp),
                       testing.run_seeded(sz.get_sampler(V1), [0, 1], layer=class_stamp))
    first, again = run(V2, range(20), layer=class_stamp, group=10), run(V2, range(20), layer=class_stamp, group=10)
    other = run(V2, range(20, 40), layer=class_stamp, group=10)
    assert torch.equal(first, again) and not torch.allclose(first, other)


def test_v1_passes_the_conformance_checks_that_apply() -> None:
    """With a class-dependent stand-in layer. v1 reads each sample's class from its noise seed, so the determinism
    check, which changes the noise seeds alone, gets the classes fixed; the convergence order is DDIM's only with
    the layer disabled (a trained layer changes the ODE being solved), and that check passes no noise source."""
    spec = sz.get_sampler(V1)
    conformance.check_nfe_accounting(spec, layer=class_stamp)
    conformance.check_nfe_budget(spec, layer=class_stamp)
    conformance.check_batch_invariance(spec, layer=class_stamp)
    conformance.check_determinism(spec, layer=class_stamp, classes=torch.tensor([3, 4]))
    conformance.check_convergence_order(spec, layer=identity_layer, classes=torch.zeros(8, dtype=torch.long))


@pytest.mark.parametrize("sampler", [V1, V2])
def test_starts_at_infinite_sigma(sampler: str) -> None:
    """From pure noise (sigma = inf) through generate(): finite, exact NFE, right answer (the layer disabled)."""
    conformance.check_infinite_start(sz.get_sampler(sampler), layer=identity_layer)


def test_v1_classes_follow_the_seeds() -> None:
    spec = sz.get_sampler(V1)
    seeds = [3, 14, 25]
    by_seed = testing.run_seeded(spec, seeds, layer=class_stamp)
    explicit = testing.run_seeded(spec, seeds, layer=class_stamp, classes=torch.tensor([3, 4, 5]))
    assert torch.equal(by_seed, explicit)
    assert not torch.allclose(by_seed, testing.run_seeded(spec, seeds, layer=class_stamp, classes=torch.zeros(3)))


def test_v2_group_shares_the_trajectory_of_its_first_seed() -> None:
    """With add_net and the perturbation disabled, a fanned-out group is its root trajectory, copied."""
    samples = run(V2, range(200), layer=identity_layer, w=0.0)
    roots = testing.run_seeded(sz.get_sampler("ddim"), [0, 100])
    assert float((samples - roots.repeat_interleave(100, 0)).abs().max()) <= 1e-12


def test_v2_classes_and_groups() -> None:
    """Sample p of a group is directed to class p % 10 (seed % 10 when groups start at multiples of 10), and a
    group depends only on its own seeds."""
    calls: list[Tensor] = []

    def recording(v: Tensor, classes: Tensor) -> Tensor:
        calls.append(classes.clone())
        return class_stamp(v, classes)

    together = run(V2, range(200), layer=recording)
    assert torch.equal(calls[0], torch.arange(10).repeat(2))  # step 0: each root into the 10 classes
    assert torch.equal(calls[-1], torch.arange(200) % 10)
    alone = torch.cat([run(V2, range(0, 100), layer=class_stamp), run(V2, range(100, 200), layer=class_stamp)])
    assert float((together - alone).abs().max()) <= 1e-12
    assert not torch.equal(together[:100:10], together[100::10])  # groups are distinct


def test_shipped_layer_samples_the_digits_checkpoint() -> None:
    layer = shipped_layer()
    assert isinstance(layer, AdditionalLayer) and layer.checkpoint == "digits-v"
    assert layer.sample_shape == (1, 8, 8) and not layer.final_relu
    record = json.loads((WEIGHTS / RECORD_FILE).read_text())
    assert record["command"].startswith("zoo-additional-layer train") and record["recipe"]["seed"] == 0
    model = sz.load("digits-v")
    for sampler, options in ((V1, {}), (V2, {"group": 10})):
        generation = sz.generate(model, sampler, 4, range(10), model.sample_shape, schedule="trailing", **options)
        assert generation.samples.shape == (10, 1, 8, 8) and generation.samples.isfinite().all()
    plain = sz.generate(model, "ddim", 4, range(10), model.sample_shape, schedule="trailing").samples
    disabled = sz.generate(model, V1, 4, range(10), model.sample_shape, schedule="trailing", layer=identity_layer)
    assert torch.allclose(disabled.samples, plain, atol=1e-4)


def test_final_relu_option_forces_nonnegative_v() -> None:
    layer = AdditionalLayer(final_relu=True)
    assert (layer(torch.randn(5, 1, 8, 8), torch.arange(5)) >= 0).all()


@pytest.mark.parametrize("sampler,batch,steps,options,message", [
    (V1, 16, 2, {}, r"^additional_layer_v1: its layer was trained on digits-v with samples of shape \(1, 8, 8\), "
                    r"got \(4,\); pass layer="),
    (V2, 100, 2, {}, r"^additional_layer_v2: its layer was trained on digits-v"),
    (V2, 16, 2, {"layer": identity_layer}, r"a group of 100 needs a batch that is a multiple of it \(got 16\)"),
    (V2, 15, 2, {"layer": identity_layer, "group": 15}, r"the group \(15\) must be a positive multiple of 10"),
    (V2, 100, 2, {"layer": identity_layer}, r"and at least 3 steps \(got 2\)$"),
    (V2, 10, 2, {"layer": identity_layer, "group": 10, "perturbation": "x"},
     r"^unknown perturbation 'x'; known: additive, multiplicative$"),
])
def test_bad_input_is_one_line(sampler: str, batch: int, steps: int, options: dict[str, Any], message: str) -> None:
    with pytest.raises(sz.SamplerzooError, match=message) as error:
        run(sampler, range(batch), karras(steps, SigmaRange(0.05, 10.0)), **options)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("sampler", [V1, V2])
def test_a_layer_for_another_model_is_refused_before_any_work(sampler: str, tmp_path: Any,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    # digits-latent samples latents of shape (2, 4, 4): the shipped layer (digits-v's pixels) cannot serve it, and
    # SamplerSpec.check says so before any point is measured (before, euler's point was measured and written first).
    results = tmp_path / "latent.jsonl"
    monkeypatch.setattr(sys, "argv", ["zoo", "bench", "--checkpoint", "digits-latent", "--sampler", f"euler,{sampler}",
                                      "--nfe", "4", "--samples", "100", "--results", str(results)])
    with pytest.raises(SystemExit) as exit_info:
        zoo_main()
    out, err = capsys.readouterr()
    assert exit_info.value.code != 0 and "Traceback" not in out + err
    assert f"{sampler}: its layer was trained on digits-v with samples of shape (1, 8, 8), got (2, 4, 4)" in err
    assert not results.exists()


def test_v1_needs_seeds_or_classes() -> None:
    problem = testing.gaussian_problem()
    with pytest.raises(sz.SamplerzooError, match="needs the per-sample seeded noise"):
        sz.get_sampler(V1).fn(problem, torch.randn(2, 4, dtype=torch.float64), SIGMAS, layer=identity_layer)


def test_inception_score() -> None:
    one_hot = torch.full((20, 10), -1e4).scatter(1, (torch.arange(20) % 10)[:, None], 0.0).log_softmax(-1)
    assert math.isclose(inception_score(one_hot), 10.0, rel_tol=1e-9)
    assert math.isclose(inception_score(torch.randn(1, 10).log_softmax(-1).expand(50, 10)), 1.0, rel_tol=1e-9)
    log_p = torch.randn(30, 10, dtype=torch.float64).log_softmax(-1)
    p = log_p.exp()
    kl = (p * (p.log() - p.mean(0).log())).sum(1)
    assert math.isclose(inception_score(log_p), float(kl.mean().exp()), rel_tol=1e-12)


def test_near_twins_are_measured() -> None:
    images = torch.randint(0, 256, (5, 1, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    distances = nearest_neighbour_distances(torch.cat([images, images[:1]]))
    assert distances[0] == distances[-1] == 0 and (distances[1:-1] > 1).all()


def test_cli_reports_errors_on_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(sys, "argv", ["zoo-additional-layer", "bench", "--steps", "5,x"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 1
    assert capsys.readouterr().err.strip() == "error: --steps must be comma-separated integers, got '5,x'"
