"""The network's fast path (torch.compile, channels-last, inference mode) and sweeps split into shards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch._inductor.config
from torch import nn

from samplerzoo.acceleration import ChannelsLast, accelerate, compile_problem
from samplerzoo.adapters import NetworkDenoiser
from samplerzoo.bench import grid, harness
from samplerzoo.bench.results import ResultsFile
from samplerzoo.bench.shards import parse_shard, shard
from samplerzoo.cli import run
from samplerzoo.errors import SamplerzooError
from samplerzoo.noise_schedules import EDM
from samplerzoo.sampling import generate


class TinyNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 1, 3, padding=1)

    def forward(self, x: torch.Tensor, c_noise: torch.Tensor) -> torch.Tensor:
        return self.b(torch.tanh(self.a(x) + c_noise[:, None, None, None]))


def tiny_checkpoint() -> NetworkDenoiser:
    torch.manual_seed(0)
    return NetworkDenoiser(TinyNet(), "edm", EDM(), sample_shape=(1, 8, 8))


@pytest.mark.slow
def test_compiled_channels_last_network_gives_the_plain_networks_samples() -> None:
    model = tiny_checkpoint()
    plain = generate(model, "heun", 9, range(6), model.sample_shape)
    assert not plain.samples.is_inference()  # sampled in inference mode, returned as an ordinary tensor
    plain.samples.clamp_(-100, 100)  # so it can be changed in place
    assert compile_problem("cpu") is None
    accelerate(model, compile=True, channels_last=True, batch=6)  # inductor, for real: it compiles here
    assert isinstance(model.net._orig_mod, ChannelsLast)  # type: ignore[union-attr]
    assert model.net._orig_mod.net.a.weight.is_contiguous(memory_format=torch.channels_last)  # type: ignore[union-attr]
    fast = generate(model, "heun", 9, range(6), model.sample_shape)
    torch.testing.assert_close(fast.samples, plain.samples, rtol=1e-4, atol=1e-5)
    assert fast.counted_nfe == 9


def test_channels_last_alone_gives_the_same_samples() -> None:
    model = tiny_checkpoint()
    plain = generate(model, "euler", 4, range(3), model.sample_shape).samples
    accelerate(model, channels_last=True, batch=3)
    torch.testing.assert_close(generate(model, "euler", 4, range(3), model.sample_shape).samples, plain)


def test_compile_without_its_backend_is_one_line_before_any_work(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(torch._inductor.config.cpp, "cxx", (None, str(tmp_path / "no-such-c++")))
    out = tmp_path / "grid.png"
    assert run(["sample", "--checkpoint", "digits", "-n", "4", "--compile", "--out", str(out)]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: --compile: torch.compile is unavailable on cpu: its CPU backend needs a C++ "
                           "compiler") and line.endswith("accepted: run without --compile")
    assert not out.exists()
    model = tiny_checkpoint()
    with pytest.raises(SamplerzooError, match="unavailable on cpu"):  # zoo bench's path: harness.prepare
        accelerate(model, compile=True)
    assert isinstance(model.net, TinyNet)  # nothing was changed


def test_fast_path_needs_a_torch_network() -> None:
    with pytest.raises(SamplerzooError, match="--compile needs a checkpoint with a torch network"):
        harness.sweep("digits-ideal", ["euler"], ["karras"], [4], 8, 0, Path("unused.jsonl"), compile=True)


def test_shard_values_are_checked_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert parse_shard("2/4") == (2, 4) and parse_shard(" 1 / 1 ") == (1, 1)
    for bad in ("0/4", "5/4", "1/0", "a/b", "1-4", "/4"):
        with pytest.raises(SamplerzooError, match=r"accepted: I/K with 1 <= I <= K"):
            parse_shard(bad)
    assert run(["bench", "--checkpoint", "digits-ideal", "--shard", "3/2"]) == 1
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: --shard '3/2': accepted: I/K")


def test_shards_are_disjoint_cover_the_grid_and_balance_the_work() -> None:
    cells = list(grid.points("digits-ideal", ["euler", "heun", "dpm2"], ["karras"], [4, 10, 20, 40], 100, 0))
    for count in (1, 2, 3, 5, 12, 20):
        parts = [shard(cells, index, count) for index in range(1, count + 1)]
        assert sorted(p.key() for part in parts for p in part) == sorted(p.key() for p in cells)
        assert parts == [shard(cells, index, count) for index in range(1, count + 1)]  # deterministic
        assert all(part == [p for p in cells if p in part] for part in parts)  # grid order kept
    work = [sum(p.nfe for p in shard(cells, index, 3)) for index in (1, 2, 3)]
    assert max(work) - min(work) <= 4  # the cheapest point's cost: as even as the points allow
    assert work == [74, 74, 74]


def test_shards_append_to_one_results_file_and_make_the_whole_sweep(tmp_path: Path) -> None:
    sweep = ["bench", "--checkpoint", "digits-ideal", "--sampler", "euler,heun", "--nfe", "3,5", "--samples", "16",
             "--batch", "8", "--metrics", "kid"]
    shared = tmp_path / "shared.jsonl"
    for index in (1, 2, 3):
        assert run([*sweep, "--shard", f"{index}/3", "--results", str(shared)]) == 0
    whole = tmp_path / "whole.jsonl"
    assert run([*sweep, "--results", str(whole)]) == 0
    sharded, single = ResultsFile(shared).finished(), ResultsFile(whole).finished()
    assert len(shared.read_text().splitlines()) == 4 and sharded.keys() == single.keys()
    assert all(sharded[k]["metrics"] == single[k]["metrics"] for k in single)
    assert all(not row["compile"] and not row["channels_last"] for row in sharded.values())
    assert json.loads(shared.read_text().splitlines()[0])["status"] == "ok"
