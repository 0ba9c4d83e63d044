"""--dtype: every shipped checkpoint and the exact model sample in float16, bfloat16 and float64, finite and close to
float32 (the same start noise, the same sigmas), natively or under autocast where a device lacks the kernels."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

import samplerzoo as sz
from samplerzoo.bench import harness
from samplerzoo.checkpoints import get_checkpoints
from samplerzoo.guidance import class_conditioned
from samplerzoo.noise import SeededNoise
from samplerzoo.noise_schedules import EDM
from samplerzoo.precision import in_dtype

SHIPPED = sorted(name for name, spec in get_checkpoints().items() if spec.plugin == "samplerzoo")
"""Every checkpoint samplerzoo ships, read from the registry so a new one is covered."""
TOLERANCE = {torch.float64: 1e-4, torch.float16: 0.01, torch.bfloat16: 0.1}
"""Largest difference from float32 of the median sample (its mean absolute pixel difference, pixels in [-1, 1])
after 4 Euler steps from sigma_max; float64: of every pixel. Measured on 16 samples: float64 within 1e-5 (float32's
rounding), float16 (11-bit mantissa) within 0.0035 and bfloat16 (8 bits) within 0.047 on the networks. The exact
digits model snaps to its nearest training image, so a rounding can flip a sample to another image (a worst sample
0.3-0.4 off) while the median sample agrees to 1e-9: hence the median."""


def euler_from(model: sz.Checkpoint, x: Tensor, sigmas: Tensor, seeds: range) -> Tensor:
    with torch.no_grad():
        return sz.get_sampler("euler").fn(class_conditioned(model, seeds), x, sigmas)


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_checkpoint_samples_in_every_dtype_close_to_float32(name: str) -> None:
    reference_model = sz.load(name)
    sigmas = sz.get_schedule("karras")(4, reference_model)
    seeds = range(8)
    x = SeededNoise(seeds, reference_model.sample_shape).randn() * float(sigmas[0])
    reference = euler_from(reference_model, x, sigmas, seeds)
    for dtype, tolerance in TOLERANCE.items():
        model, precision = in_dtype(sz.load(name), dtype)
        samples = euler_from(model, x.to(dtype), sigmas, seeds)
        assert samples.dtype == dtype and bool(torch.isfinite(samples).all())
        difference = (samples.double() - reference.double()).abs()
        off = difference.max() if dtype == torch.float64 else difference.flatten(1).mean(1).median()
        assert float(off) <= tolerance, (name, dtype, float(off))
        exact = not isinstance(model, nn.Module)
        assert precision == ("native" if not exact or dtype == torch.float64 else "state")


class NoHalfKernels(nn.Module):
    """A network on a device without float16 kernels: float16 weights and inputs fail the way torch says so."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(0.5))

    def forward(self, x: Tensor, c_noise: Tensor) -> Tensor:
        if x.dtype == torch.float16:
            raise RuntimeError('"addmm_impl_cpu_" not implemented for \'Half\'')
        return x * self.scale + torch.zeros(1, dtype=torch.float16)  # under autocast: computes in float32


def test_a_device_without_the_kernels_falls_back_to_autocast() -> None:
    model = sz.NetworkDenoiser(NoHalfKernels(), "edm", EDM(), sample_shape=(4,))
    cast, precision = in_dtype(model, torch.float16)
    assert precision == "autocast" and next(model.parameters()).dtype == torch.float32
    x, sigma = torch.randn(3, 4), torch.full((3,), 2.0)
    assert torch.allclose(cast(x.half(), sigma).float(), model(x, sigma), atol=2e-3)
    assert cast(x.half(), sigma).dtype == torch.float16


def test_bench_records_the_dtype_and_how_it_ran(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAMPLERZOO_CACHE", str(tmp_path / "cache"))
    (row,) = harness.sweep("digits", ["euler"], ["karras"], [3], 8, 0, tmp_path / "r.jsonl", batch=8,
                           metric_names=("fid",), dtype="bfloat16")
    assert (row["status"], row["dtype"], row["precision"]) == ("ok", "bfloat16", "native")
