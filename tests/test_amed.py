"""AMED-Solver (Zhou et al. 2024): the step and predictor against diff-sampler's amed_sampler and AMED_predictor
written out, the bottleneck it reads, the fit, the shipped predictors, and every refusal before any work."""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from cli_driver import zoo
from safetensors.torch import save_file
from torch import Tensor, nn

import samplerzoo as sz
from samplerzoo import testing
from samplerzoo.amed import (
    AmedPredictor,
    PredictorInfo,
    bottleneck_module,
    fingerprint,
    load_predictor,
    named_predictor,
    save_predictor,
    shipped_names,
    tapped,
)
from samplerzoo.amed_training import Fit, fit_checkpoint, teacher_levels, teacher_states
from samplerzoo.errors import SamplerzooError
from samplerzoo.guidance import condition
from samplerzoo.sampling import sampling_plan
from samplerzoo.schedules import karras

AMED = sz.get_sampler("amed")


@pytest.fixture(scope="module")
def digits() -> Any:
    return sz.load("digits")


def random_predictor(model: Any, sigmas: Tensor, scale_dir: float = 0.3, scale_time: float = 0.2,
                     afs: bool = False, solver: str = "amed") -> AmedPredictor:
    """An unfitted predictor for ``model`` at ``sigmas`` whose r, c and a all vary by sample."""
    torch.manual_seed(3)
    info = PredictorInfo("digits", tuple(model.sample_shape), tuple(float(s) for s in sigmas), fingerprint(model), 16,
                         scale_dir=scale_dir, scale_time=scale_time, afs=afs, solver=solver)
    predictor = AmedPredictor(info).eval().requires_grad_(False)
    for parameter in predictor.parameters():
        parameter.mul_(3)  # spread r, c and a across their ranges
    return predictor


def their_predictor(p: AmedPredictor, h: Tensor, t_cur: Tensor, t_next: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """diff-sampler's AMED_predictor.forward written out with p's weights: EDM's PositionalEmbedding (endpoint=True,
    cos then sin), its halves flipped, map_layer0 + SiLU per level, enc_layer0/1 on the bottleneck, sigmoid heads."""
    rows, silu = h.shape[0], nn.functional.silu

    def embed(t: Tensor) -> Tensor:
        freqs = (1 / 10000) ** (torch.arange(4, dtype=torch.float32) / 3)
        angles = t.reshape(1).float().ger(freqs)
        emb = torch.cat([angles.cos(), angles.sin()], dim=1)
        emb = emb.reshape(1, 2, -1).flip(1).reshape(1, -1)
        return silu(nn.functional.linear(emb, p.map_level.weight, p.map_level.bias)).repeat(rows, 1)

    enc0, enc1 = p.encode[0], p.encode[2]
    out = torch.cat([enc1(silu(enc0(h))), embed(t_cur), embed(t_next)], dim=1)
    r = torch.sigmoid(p.head_r(out))
    assert p.head_dir is not None and p.head_time is not None
    scale_dir = torch.sigmoid(p.head_dir(out)) / (1 / (2 * p.info.scale_dir)) + (1 - p.info.scale_dir)
    scale_time = torch.sigmoid(p.head_time(out)) / (1 / (2 * p.info.scale_time)) + (1 - p.info.scale_time)
    return r.reshape(-1, 1, 1, 1), scale_dir.reshape(-1, 1, 1, 1), scale_time.reshape(-1, 1, 1, 1)


def their_amed_sampler(model: Any, p: AmedPredictor, x: Tensor, t_steps: Tensor) -> Tensor:
    """diff-sampler's amed_sampler (solvers_amed.py) written out, its hook on the UNet's middle block."""
    enc_out: list[Tensor] = []
    hook = model.net.unet.mid_block.register_forward_hook(lambda m, i, o: enc_out.append(o.detach()))
    rows = x.shape[0]
    try:
        for t_cur, t_next in itertools.pairwise(t_steps):
            enc_out.clear()
            denoised = model(x, t_cur.repeat(rows))
            d_cur = (x - denoised) / t_cur
            if t_next == 0:  # samplerzoo's step to 0 is Euler (diff-sampler ends at sigma_min)
                x = x + (t_next - t_cur) * d_cur
                continue
            r, scale_dir, scale_time = their_predictor(p, enc_out[-1].mean(dim=1).flatten(1), t_cur, t_next)
            t_mid = (t_next**r) * (t_cur ** (1 - r))
            x_next = x + (t_mid - t_cur) * d_cur
            denoised = model(x_next, (scale_time * t_mid).flatten())
            d_mid = (x_next - denoised) / t_mid
            x = x + scale_dir * (t_next - t_cur) * d_mid
    finally:
        hook.remove()
    return x


@pytest.mark.parametrize("to_zero", [True, False])
def test_the_midpoint_rule_is_dpm2(to_zero: bool) -> None:
    problem = testing.mixture_problem()
    sigmas = karras(6, problem) if to_zero else karras(7, problem)[:-1]
    x = sz.SeededNoise(range(5), problem.sample_shape, dtype=torch.float64).randn() * float(sigmas[0])
    ours = AMED.fn(problem, x, sigmas, predictor="midpoint")
    torch.testing.assert_close(ours, sz.get_sampler("dpm2").fn(problem, x, sigmas), rtol=0, atol=1e-12)


@pytest.mark.parametrize("to_zero", [True, False])
def test_amed_is_diff_samplers_amed_sampler(digits: Any, to_zero: bool) -> None:
    sigmas = karras(4, digits) if to_zero else karras(5, digits)[:-1]
    predictor = random_predictor(digits, sigmas)
    x = sz.SeededNoise(range(6), digits.sample_shape).randn() * float(sigmas[0])
    with torch.no_grad():
        ours = AMED.fn(digits, x, sigmas, predictor=predictor)
        theirs = their_amed_sampler(digits, predictor, x, sigmas)
        midpoint = AMED.fn(digits, x, sigmas, predictor="midpoint")
    # float32 from sigma_max = 80: the two orders of operations round apart by a few 1e-5 on some CPUs (4e-5 on an
    # AVX-512 Xeon, under 2e-5 on the EPYC this was written on); the predictor itself moves the result by > 0.1.
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-4)
    assert float((ours - midpoint).abs().max()) > 0.1  # the predictor changes the steps


def test_the_predictors_factors_stay_in_their_ranges(digits: Any) -> None:
    predictor = random_predictor(digits, karras(4, digits), scale_dir=0.05, scale_time=0.0)
    r, c, a = predictor(torch.randn(64, 16) * 5, torch.tensor(80.0), torch.tensor(2.0))
    assert ((r > 0) & (r < 1)).all() and float(r.std()) > 0.01
    assert ((c >= 0.95) & (c <= 1.05)).all() and float(c.std()) > 1e-3
    assert (a == 1).all()  # scale_time = 0: no time head, a_n = 1


def test_the_tap_reads_the_channel_mean_of_the_mid_block(digits: Any) -> None:
    x, seen = torch.randn(3, *digits.sample_shape), []
    hook = digits.net.unet.mid_block.register_forward_hook(lambda m, i, o: seen.append(o))
    with torch.no_grad(), tapped(digits, 3) as tap:
        digits(x, torch.full((3,), 4.0))
        digits(x * 2, torch.full((3,), 1.0))  # a second forward after the first is not read
    hook.remove()
    assert tap.seen is not None
    torch.testing.assert_close(tap.seen, seen[0].mean(dim=1).flatten(1))


@pytest.mark.parametrize("batched", [True, False])
def test_a_guided_model_is_read_on_its_conditional_rows(batched: bool) -> None:
    model = sz.load("digits-cond")
    seeds, x, sigma = range(4), torch.randn(4, *model.sample_shape), torch.full((4,), 3.0)
    guided = condition(model, seeds, guidance_scale=2.0)
    guided.batched = batched  # type: ignore[attr-defined]
    plain = condition(model, seeds)
    with torch.no_grad():
        with tapped(guided, 4) as guided_tap:
            guided(x, sigma)
        with tapped(plain, 4) as plain_tap:
            plain(x, sigma)
    assert guided_tap.seen is not None and plain_tap.seen is not None
    torch.testing.assert_close(guided_tap.seen, plain_tap.seen, rtol=1e-5, atol=1e-5)


def test_a_transformer_is_read_at_its_middle_block() -> None:
    model: Any = sz.load("digits-latent")
    blocks = model.net.transformer.transformer_blocks
    assert bottleneck_module(model) is blocks[len(blocks) // 2]
    with torch.no_grad(), tapped(model, 2) as tap:
        condition(model, range(2))(torch.randn(2, *model.sample_shape), torch.full((2,), 1.0))
    assert tap.seen is not None and tap.seen.shape[0] == 2 and tap.seen.ndim == 2


def test_a_model_without_a_network_is_refused_in_one_line() -> None:
    with pytest.raises(SamplerzooError, match=r"bottleneck .* this model has neither"):
        sz.generate(sz.load("digits-ideal"), "amed", 5, range(2), (1, 8, 8))


def test_the_teacher_refines_karras_into_karras(digits: Any) -> None:
    student, fine = karras(4, digits)[:-1], karras(7, digits)[:-1]  # positive levels (karras appends 0)
    refined = torch.cat([teacher_levels(student[i], student[i + 1], 1)[:-1] for i in range(3)] + [student[-1:]])
    torch.testing.assert_close(refined, fine, rtol=1e-5, atol=0)


def test_fitting_moves_the_solver_towards_its_teacher(tmp_path: Path) -> None:
    predictor = fit_checkpoint("digits", 5, Fit(trajectories=512, batch=128, held_out=64))
    assert predictor.info.training is not None
    errors = predictor.info.training["endpoint_error"]
    assert errors["fitted"] < 0.8 * errors["midpoint"], errors
    path = tmp_path / "p.safetensors"
    save_predictor(path, predictor)
    again = load_predictor(path)
    assert again.info == predictor.info
    features, sigma, sigma_next = torch.randn(5, 16), torch.tensor(20.0), torch.tensor(3.0)
    for ours, theirs in zip(again(features, sigma, sigma_next), predictor(features, sigma, sigma_next), strict=True):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0)


def distance_to_teacher(model: Any, nfe: int, afs: bool, predictor: str, seeds: range) -> float:
    """Mean L2 distance per sample between amed's output and the shipped fits' Heun teacher (one level between)."""
    _, sigmas = sampling_plan(model, "amed", nfe, afs=afs)
    start = sz.CounterNoise(seeds, model.sample_shape).randn()
    with torch.no_grad():
        target = teacher_states(sz.get_sampler("heun"), model, start * sigmas[0], sigmas, 1)[-1]
        out = AMED.fn(model, start * sigmas[0], sigmas, predictor=predictor, afs=afs)
    return float((out - target).flatten(1).norm(dim=1).mean())


@pytest.mark.parametrize(("nfe", "afs"), [(5, False), (5, True), (8, False)])
def test_the_shipped_predictors_beat_the_midpoint_rule_on_the_sweeps_seeds(digits: Any, nfe: int, afs: bool) -> None:
    name = f"digits-{'afs-' if afs else ''}nfe{nfe}"
    assert name in shipped_names()
    info = named_predictor(name).info
    assert info.training is not None and info.training["seed"] >= 2000  # fitted on noise the sweeps never draw
    fitted = distance_to_teacher(digits, nfe, afs, name, range(64))
    assert fitted < 0.8 * distance_to_teacher(digits, nfe, afs, "midpoint", range(64))


def test_the_shipped_predictor_fitted_to_the_run_is_the_default(digits: Any) -> None:
    default = sz.generate(digits, "amed", 5, range(3), digits.sample_shape)
    named = sz.generate(digits, "amed", 5, range(3), digits.sample_shape, predictor="digits-nfe5")
    assert default.counted_nfe == 5
    torch.testing.assert_close(default.samples, named.samples, rtol=0, atol=0)


class Calls:
    """The model, counting its calls."""

    def __init__(self, model: Any) -> None:
        self.model, self.calls = model, 0

    def __call__(self, x: Tensor, sigma: Tensor, **cond: Any) -> Tensor:
        self.calls += 1
        return self.model(x, sigma, **cond)

    def __getattr__(self, name: str) -> Any:
        if name == "model":
            raise AttributeError(name)
        return getattr(self.model, name)


def not_amed(tmp_path: Path) -> Path:
    path = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    return path


@pytest.mark.parametrize(("checkpoint", "nfe", "options", "message"), [
    ("digits", 7, {"predictor": "digits-nfe5"}, r"fitted to the levels \[157.4, .*\] \(3 steps\), and this run takes"),
    ("digits", 4, {"predictor": "digits-nfe5", "afs": True}, "fitted with afs=false, and this run has afs=true"),
    ("digits-v", 5, {"predictor": "digits-nfe5"}, "fitted to digits's network, and this model's bottleneck weights"),
    ("digits", 9, {}, "no shipped predictor was fitted to this model and these levels"),
    ("digits", 5, {"predictor": "missing.safetensors"}, "missing.safetensors: no such file; accepted: a file"),
    ("digits", 5, {"predictor": "NOT_AMED"}, "no AMED metadata"),
    ("digits", 5, {"predictor": "BROKEN"}, "not a safetensors file"),
])
def test_a_predictor_that_cannot_serve_the_run_is_refused_before_any_work(
        tmp_path: Path, checkpoint: str, nfe: int, options: dict[str, Any], message: str) -> None:
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not a file")
    names = {"NOT_AMED": str(not_amed(tmp_path)), "BROKEN": str(broken)}
    options = {k: names.get(v, v) if isinstance(v, str) else v for k, v in options.items()}
    model = Calls(sz.load(checkpoint))
    with pytest.raises(SamplerzooError, match=message) as refused:
        sz.generate(model, "amed", nfe, range(2), model.sample_shape, **options)
    assert "\n" not in str(refused.value) and model.calls == 0


def test_another_sample_shape_is_refused(digits: Any) -> None:
    predictor = named_predictor("digits-nfe5")
    other = dataclasses.replace(predictor.info, sample_shape=(1, 16, 16))
    predictor_elsewhere = AmedPredictor(other)
    with pytest.raises(SamplerzooError, match=r"samples of shape \(1, 16, 16\) \(digits\), got \(1, 8, 8\)"):
        sz.generate(digits, "amed", 5, range(2), digits.sample_shape, predictor=predictor_elsewhere)


def test_zoo_bench_refuses_a_predictor_for_other_levels_and_writes_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "bench.jsonl"
    code, _, err = zoo(["bench", "--sampler", "euler,amed", "--nfe", "5,7", "--samples", "50", "--option",
                        "predictor=digits-nfe5", "--results", str(results)], monkeypatch, capsys)
    assert code == 1 and err.count("\n") == 1 and "has no option 'predictor'" in err
    code, _, err = zoo(["bench", "--sampler", "amed", "--nfe", "5,7", "--samples", "50", "--option",
                        "predictor=digits-nfe5", "--results", str(results)], monkeypatch, capsys)
    assert code == 1 and err.count("\n") == 1 and "this run takes" in err and not results.exists()


def test_zoo_train_amed_writes_a_predictor_that_zoo_bench_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    path, results = tmp_path / "amed.safetensors", tmp_path / "bench.jsonl"
    code, out, err = zoo(["train-amed", "--nfe", "4", "--trajectories", "64", "--batch", "32", "--out", str(path)],
                         monkeypatch, capsys)
    assert code == 0, err
    assert "held-out distance to the heun teacher" in out and f"predictor={path}" in out.replace("\n", "")
    info = load_predictor(path).info
    assert info.training is not None and info.training["trajectories"] == 64 and len(info.sigmas) == 3
    code, out, err = zoo(["bench", "--sampler", "amed", "--nfe", "4", "--samples", "50", "--option",
                          f"predictor={path}", "--results", str(results)], monkeypatch, capsys)
    assert code == 0, err
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert [(r["sampler"], r["nfe"], r["status"], r["counted_nfe"]) for r in rows] == [("amed", 4, "ok", 4)]
    code, _, err = zoo(["train-amed", "--nfe", "4", "--out", str(path)], monkeypatch, capsys)
    assert code == 1 and "already exists" in err  # nothing overwritten


@pytest.mark.parametrize(("args", "message"), [
    (["--between", "-1"], "--between -1: accepted: a whole number of levels, 0 or more"),
    (["--trajectories", "0"], "--trajectories 0: accepted"),
    (["--lr", "0"], "--lr must be > 0"),
    (["--teacher", "euler_ancestral"], "teacher 'euler_ancestral' must be a deterministic fixed-step sampler"),
    (["--teacher", "hune"], "unknown sampler 'hune'"),
    (["--checkpoint", "digits-ideal"], "this model has neither"),
    (["--nfe", "1"], "takes only a step to sigma = 0"),
    (["--schedule", "karas"], "unknown schedule 'karas'"),
])
def test_zoo_train_amed_refuses_bad_input_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str], args: list[str],
                                                      message: str) -> None:
    out = tmp_path / "p.safetensors"
    code, _, err = zoo(["train-amed", "--trajectories", "8", *args, "--out", str(out)], monkeypatch, capsys)
    assert code == 1 and err.count("\n") == 1 and message in err, err
    assert not out.exists()


def test_a_compiled_network_is_refused_before_any_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    # Dynamo runs a compiled network without the Python forward hooks registered after compiling: amed would read
    # no bottleneck, so it refuses, in zoo bench before compiling and in generate() before the first call.
    results = tmp_path / "bench.jsonl"
    code, _, err = zoo(["bench", "--sampler", "amed", "--nfe", "5", "--samples", "50", "--compile", "--results",
                        str(results)], monkeypatch, capsys)
    assert code == 1 and err.count("\n") == 1 and "accepted: amed without --compile" in err and not results.exists()
    model: Any = sz.load("digits")
    model.net = torch.compile(model.net, backend="eager")
    counted = Calls(model)
    with pytest.raises(SamplerzooError, match=r"torch\.compile'd network does not run"):
        sz.generate(counted, "amed", 5, range(2), model.sample_shape)
    assert counted.calls == 0


def test_a_network_that_skips_its_bottleneck_is_refused(digits: Any) -> None:
    sigmas = karras(3, digits)
    predictor = random_predictor(digits, sigmas)
    with pytest.raises(SamplerzooError, match="without passing through its bottleneck module"):
        AMED.fn(SkipsNetwork(digits), torch.zeros(2, *digits.sample_shape), sigmas, predictor=predictor)


class SkipsNetwork(Calls):
    """Answers every call without running the network."""

    def __call__(self, x: Tensor, sigma: Tensor, **cond: Any) -> Tensor:
        return torch.zeros_like(x)


def test_a_guided_run_fits_and_samples_on_the_conditional_rows() -> None:
    predictor = fit_checkpoint("digits-cond", 4, Fit(trajectories=64, batch=32, held_out=16), guidance_scale=2.0)
    model = sz.load("digits-cond")
    guided = condition(model, range(4), guidance_scale=2.0)
    run = sz.generate(guided, "amed", 4, range(4), model.sample_shape, predictor=predictor)
    assert run.counted_nfe == 4 and run.forwards == 8 and run.finite


IPNDM_AMED = sz.get_sampler("ipndm_amed")
AB = ((1.0,), (3 / 2, -1 / 2), (23 / 12, -16 / 12, 5 / 12), (55 / 24, -59 / 24, 37 / 24, -9 / 24))


def their_ipndm_plugin(model: Any, p: AmedPredictor, x: Tensor, t_steps: Tensor) -> Tensor:
    """diff-sampler's ipndm_sampler with an AMED_predictor (max_order 4) written out, its hook on the middle block."""
    enc_out: list[Tensor] = []
    hook = model.net.unet.mid_block.register_forward_hook(lambda m, i, o: enc_out.append(o.detach()))
    rows, buffer = x.shape[0], []

    def ab(d: Tensor) -> Tensor:
        order = min(4, len(buffer) + 1)
        return sum((b * v for b, v in zip(AB[order - 1], [d, *reversed(buffer)], strict=False)), torch.zeros_like(d))

    def remember(d: Tensor) -> None:
        buffer.append(d)
        del buffer[:-3]

    try:
        for t_cur, t_next in itertools.pairwise(t_steps):
            enc_out.clear()
            d_cur = (x - model(x, t_cur.repeat(rows))) / t_cur
            if t_next == 0:  # samplerzoo's step to 0 is Euler (diff-sampler ends at sigma_min)
                x = x + (t_next - t_cur) * d_cur
                continue
            r, scale_dir, scale_time = their_predictor(p, enc_out[-1].mean(dim=1).flatten(1), t_cur, t_next)
            t_mid = (t_next**r) * (t_cur ** (1 - r))
            x_next = x + (t_mid - t_cur) * ab(d_cur)
            remember(d_cur)
            d_cur = (x_next - model(x_next, (scale_time * t_mid).flatten())) / t_mid
            x = x_next + scale_dir * (t_next - t_mid) * ab(d_cur)
            remember(d_cur)
    finally:
        hook.remove()
    return x


@pytest.mark.parametrize("to_zero", [True, False])
def test_ipndm_amed_is_diff_samplers_ipndm_plugin(digits: Any, to_zero: bool) -> None:
    sigmas = karras(5, digits) if to_zero else karras(6, digits)[:-1]
    predictor = random_predictor(digits, sigmas, solver="ipndm_amed")
    x = sz.SeededNoise(range(6), digits.sample_shape).randn() * float(sigmas[0])
    with torch.no_grad():
        ours = IPNDM_AMED.fn(digits, x, sigmas, predictor=predictor)
        theirs = their_ipndm_plugin(digits, predictor, x, sigmas)
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=2e-5)  # float32: the sums' order differs


@pytest.mark.parametrize("to_zero", [True, False])
def test_the_midpoint_rule_is_ipndm_on_the_levels_with_their_log_midpoints(to_zero: bool) -> None:
    problem = testing.mixture_problem()
    sigmas = karras(6, problem) if to_zero else karras(7, problem)[:-1]
    steps = [torch.stack([s, (s * s_next).sqrt()]) if s_next > 0 else s[None]
             for s, s_next in itertools.pairwise(sigmas)]
    refined = torch.cat([*steps, sigmas[-1:]])
    x = sz.SeededNoise(range(5), problem.sample_shape, dtype=torch.float64).randn() * float(sigmas[0])
    ours = IPNDM_AMED.fn(problem, x, sigmas, predictor="midpoint")
    torch.testing.assert_close(ours, sz.get_sampler("ipndm").fn(problem, x, refined), rtol=0, atol=1e-12)


def test_a_predictor_fitted_to_another_solver_is_refused(digits: Any) -> None:
    with pytest.raises(SamplerzooError, match="fitted to amed's steps, not ipndm_amed's"):
        sz.generate(digits, "ipndm_amed", 5, range(2), digits.sample_shape, predictor="digits-nfe5")
    with pytest.raises(SamplerzooError, match="ipndm_amed: no shipped predictor was fitted to this model"):
        sz.generate(digits, "ipndm_amed", 5, range(2), digits.sample_shape, afs=True)


def test_the_ipndm_plugin_fits_along_its_own_trajectory() -> None:
    # A multistep student follows its own trajectory and history (diff-sampler's loop); whether the fit pays is
    # measured on the shipped predictors (test_the_shipped_predictors_beat_the_midpoint_rule_on_the_sweeps_seeds).
    fit = Fit(teacher="ipndm", between=2, scale_time=0.2, trajectories=32, batch=32, held_out=8)
    predictor = fit_checkpoint("digits", 5, fit, afs=True, solver="ipndm_amed")
    assert predictor.info.solver == "ipndm_amed" and predictor.info.training is not None
    assert predictor.info.training["teacher"] == "ipndm" and predictor.info.scale_time == 0.2
    assert predictor.head_time is not None  # a_n is fitted too
    run = sz.generate(sz.load("digits"), "ipndm_amed", 5, range(2), (1, 8, 8), predictor=predictor, afs=True)
    assert run.counted_nfe == 5 and run.finite
