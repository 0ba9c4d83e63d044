"""The conformance kit catches each kind of broken sampler with a one-line message, and runs as a pytest plugin.

That every registered sampler passes it is tests/test_samplers.py's job (its generic checks call the kit).
"""

from __future__ import annotations

import importlib.metadata
import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
from torch import Tensor

import samplerzoo as sz
from samplerzoo import conformance, plugins
from samplerzoo.denoiser import Denoiser
from samplerzoo.noise import NoiseSampler
from samplerzoo.samplers.ancestral import sample_euler_ancestral
from samplerzoo.samplers.ode import sample_euler

pytest_plugins = ["pytester"]


def spec(name: str, fn: Callable[..., Tensor], **fields: Any) -> sz.SamplerSpec:
    return sz.SamplerSpec(name, fn, **{"order": 1, "stochastic": False, **fields})


def euler_calling_twice(model: Denoiser, x: Tensor, sigmas: Tensor, **kwargs: Any) -> Tensor:
    for i in range(len(sigmas) - 1):
        model(x, sigmas[i] * x.new_ones(len(x)))
        x = sample_euler(model, x, sigmas[i:i + 2])
    return x


def test_uncounted_calls_fail_nfe_accounting() -> None:
    with pytest.raises(AssertionError, match=r"^twice: 1 steps ending at sigma=0 made 2 denoiser calls, declared 1$"):
        conformance.check_nfe_accounting(spec("twice", euler_calling_twice))


def test_wrong_budget_inverse_fails_nfe_budget() -> None:
    off_by_one = spec("off_by_one", sample_euler, nfe_fn=lambda sigmas: len(sigmas) - 1,
                      steps_fn=lambda nfe, to_zero: nfe + 1, cost_formula="steps")
    with pytest.raises(AssertionError, match=r"^off_by_one: NFE 1 to 0 planned 2 steps, which made 2 denoiser calls$"):
        conformance.check_nfe_budget(off_by_one)


def test_determinism_catches_noise_outside_the_noise_source() -> None:
    def global_rng(model: Denoiser, x: Tensor, sigmas: Tensor, *, noise: NoiseSampler | None = None) -> Tensor:
        return sample_euler_ancestral(model, x, sigmas, noise=lambda sigma, sigma_next: torch.randn_like(x))

    with pytest.raises(AssertionError, match=r"^global_rng: the same seeds gave samples differing by \d"):
        conformance.check_determinism(spec("global_rng", global_rng, stochastic=True))
    with pytest.raises(AssertionError, match=r"^claims_ode: deterministic, but other noise seeds moved the samples "
                                             r"by \d"):
        conformance.check_determinism(spec("claims_ode", sample_euler_ancestral))
    with pytest.raises(AssertionError, match=r"^claims_sde: stochastic, but other noise seeds left the samples "
                                             r"unchanged$"):
        conformance.check_determinism(spec("claims_sde", sample_euler, stochastic=True))


def test_batch_statistics_fail_batch_invariance() -> None:
    def centred(model: Denoiser, x: Tensor, sigmas: Tensor, **kwargs: Any) -> Tensor:
        return sample_euler(model, x - 1e-3 * x.mean(0), sigmas)

    with pytest.raises(AssertionError, match=r"^centred: a batch of 16 differs from one sample at a time by "
                                             r"0\.000\d+ \(allowed 1e-12\)$"):
        conformance.check_batch_invariance(spec("centred", centred))


def test_overstated_order_fails_convergence() -> None:
    with pytest.raises(AssertionError, match=r"^euler_as_2: fitted convergence order 1\.0\d on the Gaussian, "
                                             r"expected 2 ± 0\.3$"):
        conformance.check_convergence_order(spec("euler_as_2", sample_euler, order=2))


def test_too_much_noise_misses_the_target() -> None:
    # s_noise = 1.3: measured std 0.590 at 50 steps, 0.619 at 200 (target 0.5): the error grows instead of halving.
    with pytest.raises(AssertionError, match=r"^euler_ancestral: sample std 0\.5\d+ at 50 steps, 0\.6\d+ at 200: the "
                                             r"error must halve toward 0\.5$"):
        conformance.check_reaches_target(sz.get_sampler("euler_ancestral"), n=500, s_noise=1.3)


def test_infinite_start_catches_a_sampler_that_mishandles_sigma_inf() -> None:
    with pytest.raises(AssertionError, match=r"^euler_at_inf: from sigma = inf the samples are not finite$"):
        conformance.check_infinite_start(spec("euler_at_inf", sample_euler, starts_at_infinity=True))

    def skips_the_call(model: Denoiser, x: Tensor, sigmas: Tensor, **kwargs: Any) -> Tensor:
        return sample_euler(model, x * sigmas[1], sigmas[1:])  # one call fewer than its declared steps

    with pytest.raises(AssertionError, match=r"^skips: from sigma = inf: sampler 'skips' declared 24 evaluations "
                                             r"but made 23$"):
        conformance.check_infinite_start(spec("skips", skips_the_call, starts_at_infinity=True))

    def ignores_d(model: Denoiser, x: Tensor, sigmas: Tensor, **kwargs: Any) -> Tensor:
        model(x, sigmas[0] * x.new_ones(len(x)))  # counted, but x(sigma_1) = sigma_1 n drops D(n; inf)
        return sample_euler(model, x * sigmas[1], sigmas[1:])

    with pytest.raises(AssertionError, match=r"^ignores_d: from sigma = inf the samples are off the exact solution "
                                             r"by -0\.00\d+ on average \(allowed 1e-3\): is D\(n; inf\) used\?$"):
        conformance.check_infinite_start(spec("ignores_d", ignores_d, starts_at_infinity=True))


def test_reference_agreement_with_k_diffusion(k_sampling: types.ModuleType) -> None:
    def k_euler_ancestral(model: Denoiser, x: Tensor, sigmas: Tensor, noise: NoiseSampler) -> Tensor:
        return k_sampling.sample_euler_ancestral(model, x, sigmas, noise_sampler=noise, disable=True)

    conformance.check_reference_agreement(sz.get_sampler("euler_ancestral"), k_euler_ancestral)
    with pytest.raises(AssertionError, match=r"^euler: differs from the reference by 0\.2\d+ over 10 steps "
                                             r"\(allowed 1e-10\)$"):
        conformance.check_reference_agreement(sz.get_sampler("euler"), lambda m, x, s, n: k_sampling.sample_heun(
            m, x, s, disable=True))


def test_check_sampler_runs_what_applies() -> None:
    assert conformance.check_sampler("dpm_2") == ["check_nfe_accounting", "check_nfe_budget", "check_determinism",
                                                  "check_batch_invariance", "check_convergence_order",
                                                  "check_infinite_start"]
    assert conformance.check_sampler(sz.get_sampler("dopri5")) == ["check_determinism", "check_batch_invariance",
                                                                   "check_infinite_start"]


class DemoPlugin:
    @sz.hookimpl
    def register_samplers(self, register: Callable[[sz.SamplerSpec], None]) -> None:
        register(spec("demo_euler", sample_euler))


class FailingPlugin:
    @sz.hookimpl
    def register_samplers(self, register: Callable[[sz.SamplerSpec], None]) -> None:
        register(spec("euler", sample_euler))


@pytest.fixture
def demo_plugins() -> Iterator[None]:
    plugins.register_plugin(DemoPlugin(), "demo")
    plugins.register_plugin(FailingPlugin(), "failing")
    yield
    plugins.unregister_plugin("demo")
    plugins.unregister_plugin("failing")


def test_plugin_samplers(demo_plugins: None) -> None:
    assert conformance.plugin_samplers("demo") == ["demo_euler"]
    with pytest.raises(AssertionError, match=r"^samplerzoo plugin 'missing' is not installed \(pip install -e it\); "
                                             r"installed: ") as missing:
        conformance.plugin_samplers("missing")
    assert {"builtin", "demo", "failing"} <= set(str(missing.value).split("installed: ")[1].split(", "))
    with pytest.raises(AssertionError, match=r"^samplerzoo plugin 'failing' reported errors: sampler 'euler' from "
                                             r"'failing': name 'euler' is already taken by 'euler' from 'samplerzoo'$"):
        conformance.plugin_samplers("failing")


def test_pytest_plugin_parametrizes_and_checks(pytester: pytest.Pytester, demo_plugins: None) -> None:
    assert "samplerzoo.pytest_plugin" in {ep.value for ep in importlib.metadata.entry_points(group="pytest11")}, (
        "the pytest11 entry point is missing: reinstall samplerzoo (pip install -e .)")
    pytester.makepyfile(test_demo="""
        import pytest

        @pytest.mark.samplerzoo_plugin("demo")
        def test_conformance(samplerzoo_sampler, sampler_conformance):
            assert sampler_conformance(samplerzoo_sampler)[-1] == "check_infinite_start"
    """, test_failing="""
        import pytest

        @pytest.mark.samplerzoo_plugin("failing")
        def test_failing(samplerzoo_sampler):
            pass
    """)
    result = pytester.runpytest("-p", "no:cacheprovider", "-v", "--continue-on-collection-errors")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*test_demo.py::test_conformance?demo_euler? PASSED*"])
    result.stdout.re_match_lines([r"^samplerzoo plugin 'failing' reported errors: sampler 'euler' from 'failing'"])
