"""benchmarks/gpu.py, the one-command GPU benchmark, in its tiny CPU configuration (CI's smoke test): every section
is measured and written, and the sampling loops read nothing of their state back to the host."""

from __future__ import annotations

import dataclasses
import importlib
import re
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.mark.slow
def test_gpu_benchmark_runs_on_the_cpu_in_its_smoke_configuration(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    monkeypatch.setenv("SAMPLERZOO_CACHE", str(tmp_path / "cache"))
    gpu = importlib.import_module("gpu")
    out = tmp_path / "gpu.md"
    gpu.main(["--smoke", "--device", "cpu", "--out", str(out)])
    text = out.read_text()
    assert text.startswith("# samplerzoo on cpu") and "--smoke" in text
    overhead = re.findall(r"^\| (euler\w*) \| 21 \| (\d+) \| (\d+) \| (\d+) \|$", text, re.M)
    assert [name for name, *_ in overhead] == ["euler"]  # ours, k-diffusion, diffusers: all timed
    assert re.findall(r"^\| (euler\w*) \| 0 \(no host read of the state\) \| meta device \|$", text, re.M) == [
        "euler"]
    throughput = re.findall(r"^\| (digits|tiny SD) \| 2 \| float32 \| off \| off \| inference \| - \| [\d,]+ \| "
                            r"[\d,]+ \| (\d+\.\d\d) \| [\d,]+ \| \d+\.\d\d \|", text, re.M)
    assert [name for name, _ in throughput] == ["digits", "tiny SD"] and all(float(r) > 0 for _, r in throughput)
    assert "NaN" not in text and "budget ran out" not in text
    sys.modules.pop("gpu", None)


def test_a_sampler_that_reads_its_state_back_fails_the_meta_check(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    gpu = importlib.import_module("gpu")
    spec = gpu.get_sampler("euler")

    def reads_back(model, x, sigmas, **kwargs):  # type: ignore[no-untyped-def]
        if float(x.abs().max()) > 1e9:  # a host read of the state: a sync on a GPU
            return x
        return spec.fn(model, x, sigmas, **kwargs)

    monkeypatch.setattr(gpu, "get_sampler", lambda name: dataclasses.replace(spec, fn=reads_back))
    (row,) = gpu.sync_rows(["euler"], 2, (1, 8, 8), "cpu")
    assert "reads the state back" in row
