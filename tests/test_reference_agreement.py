"""Registry-driven agreement with k-diffusion: every built-in sampler whose ``reference`` names a
``k_diffusion.sampling.sample_*`` function with k-diffusion's usual (model, x, sigmas, ...) signature is run
against it, with the options written in the reference, on the same sigmas and the same noise.

A newly registered sampler is checked here by declaring its reference; nothing else is needed. References
with other calling conventions (sample_dpm_fast, DPMSolver steps) and diffusers' schedulers are covered by
the family tests (test_dpm_solver.py, test_diffusers_agreement.py).
"""

from __future__ import annotations

import ast
import inspect
import re
import types
from typing import Any

import pytest
import torch

import samplerzoo as sz
from samplerzoo import testing
from samplerzoo.noise import BrownianTreeNoise, NoiseSampler, SeededNoise
from samplerzoo.registry import SamplerSpec
from samplerzoo.schedules import SigmaRange, karras

K_REFERENCE = re.compile(r"\s*k_diffusion\.sampling\.(sample_\w+)(?:\((.*)\))?\s*")
SIGMA_FREE = {"sample_dpm_fast", "sample_dpm_adaptive"}
"""k-diffusion functions that take (sigma_min, sigma_max) instead of a schedule: test_dpm_solver.py drives them."""
SEEDS = (4, 2, 7)
RANGE = SigmaRange(0.03, 12.0)


def k_reference(spec: SamplerSpec) -> tuple[str, dict[str, Any]] | None:
    """The k-diffusion function named in ``spec.reference`` and its keyword options, if any."""
    for part in spec.reference.split(";"):
        match = K_REFERENCE.fullmatch(part)
        if match:
            call = ast.parse(f"f({match[2] or ''})", mode="eval").body
            assert isinstance(call, ast.Call)
            return match[1], {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords if kw.arg}
    return None


def k_diffusion_names() -> list[str]:
    references = {n: k_reference(spec) for n, spec in sz.get_samplers().items() if spec.plugin == "samplerzoo"}
    return sorted(n for n, ref in references.items() if ref is not None and ref[0] not in SIGMA_FREE)


def noise_for(spec: SamplerSpec, shape: tuple[int, ...]) -> NoiseSampler | None:
    """A fresh noise source per run, so both sides see the same draws."""
    if not spec.stochastic:
        return None
    if spec.brownian:
        return BrownianTreeNoise(SEEDS, shape, RANGE.sigma_min, RANGE.sigma_max, dtype=torch.float64)
    return SeededNoise(SEEDS, shape, dtype=torch.float64)


def test_the_generic_check_finds_the_k_diffusion_references() -> None:
    assert {"euler", "heun", "dpm2", "lms", "dpmpp_2m", "dpmpp_3m", "dpmpp_sde", "euler_ancestral"} <= set(
        k_diffusion_names())
    assert k_reference(sz.get_sampler("dpmpp_3m")) == ("sample_dpmpp_3m_sde", {"eta": 0})


@pytest.mark.parametrize("to_zero", [True, False], ids=["to_zero", "to_sigma_min"])
@pytest.mark.parametrize("name", k_diffusion_names())
def test_k_diffusion_reference_agreement(k_sampling: types.ModuleType, name: str, to_zero: bool) -> None:
    spec = sz.get_sampler(name)
    reference = k_reference(spec)
    assert reference is not None
    function, options = reference
    theirs_fn = getattr(k_sampling, function, None)
    assert theirs_fn is not None, f"{name}: k-diffusion has no {function}"
    assert list(inspect.signature(theirs_fn).parameters)[:3] == ["model", "x", "sigmas"], (
        f"{function} takes no sigma schedule: add it to SIGMA_FREE and test it in its family's file")
    model = testing.mixture_problem()
    sigmas = karras(7, RANGE) if to_zero else karras(8, RANGE)[:-1]
    x = SeededNoise(SEEDS, model.sample_shape, dtype=torch.float64).randn() * float(sigmas[0])
    ours = spec.fn(model, x, sigmas, noise=noise_for(spec, model.sample_shape))
    extra = {"noise_sampler": noise} if (noise := noise_for(spec, model.sample_shape)) is not None else {}
    theirs = theirs_fn(model, x, sigmas, disable=True, **options, **extra)
    gap = float((ours - theirs).abs().max())
    assert gap <= 1e-10, f"{name} vs k_diffusion.sampling.{function}({options}): max difference {gap:.3g}"
