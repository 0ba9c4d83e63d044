"""Registry-driven checks: every built-in sampler gets these without new test code.

Installed plugins' samplers are not run here: a plugin package checks its own samplers with the same kit
(``samplerzoo.conformance`` and the ``samplerzoo_plugin`` pytest marker), on the problems and options that
suit them, so installing a plugin never changes whether samplerzoo's own suite passes.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

import samplerzoo as sz
from samplerzoo import conformance, testing
from samplerzoo.adapters import NetworkDenoiser
from samplerzoo.noise_schedules import EDM
from samplerzoo.schedules import karras

SAMPLERS = sorted(n for n, spec in sz.get_samplers().items() if spec.plugin == "samplerzoo")
BUDGETED = [n for n in SAMPLERS if not sz.get_sampler(n).adaptive]  # adaptive ones report counted NFE only
DETERMINISTIC = [n for n in BUDGETED if not sz.get_sampler(n).stochastic]
STOCHASTIC = [n for n in SAMPLERS if sz.get_sampler(n).stochastic]


def test_builtin_catalogue_is_registered() -> None:
    assert {"euler", "heun", "dpm2", "euler_ancestral", "ddim", "ddpm"} <= set(SAMPLERS)


@pytest.mark.parametrize("name", BUDGETED)
@pytest.mark.parametrize("steps", [1, 2, 5, 10])
@pytest.mark.parametrize("to_zero", [True, False])
def test_counted_nfe_equals_declared(name: str, steps: int, to_zero: bool) -> None:
    conformance.check_nfe_accounting(sz.get_sampler(name), steps=[steps], to_zero=[to_zero])


@pytest.mark.parametrize("name", BUDGETED)
def test_nfe_budget_is_spent_exactly_or_refused(name: str) -> None:
    conformance.check_nfe_budget(sz.get_sampler(name))  # NFE 1..12, landing on 0 and stopping at sigma_min


def test_heun_budget_explains_itself() -> None:
    with pytest.raises(sz.UnreachableNFEError, match=r"spends 2\*steps-1 evaluations, so NFE 10 is unreachable; "
                                                     r"nearest reachable: 9, 11"):
        sz.get_sampler("heun").steps_for_nfe(10)
    assert sz.get_sampler("heun").steps_for_nfe(10, to_zero=False) == 5


SUPERCONVERGENT = {("flow_midpoint", "gaussian"): 3}
"""The midpoint rule in flow time is third order on the Gaussian: its flow-ODE solution x_t - (1 - t) mu is
proportional to sqrt((1 - t)^2 s^2 + t^2), whose square is quadratic in t, and the h^2 global error term vanishes
(errors 4.8e-7, 5.9e-8, 7.2e-9 at 64, 128, 256 steps). On the mixture it fits 1.99, its order 2."""


@pytest.mark.parametrize("problem", ["gaussian", "mixture"])
@pytest.mark.parametrize("name", DETERMINISTIC)
def test_convergence_order(name: str, problem: str) -> None:
    # Gaussian: closed-form PF-ODE solution; mixture: dopri5 reference at rtol = atol = 1e-11.
    exact = testing.gaussian_problem() if problem == "gaussian" else testing.mixture_problem()
    spec = sz.get_sampler(name)
    if (name, problem) in SUPERCONVERGENT:
        spec = dataclasses.replace(spec, global_order=SUPERCONVERGENT[name, problem])
    conformance.check_convergence_order(spec, problem=exact)


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_deterministic_samplers_ignore_noise(name: str) -> None:
    conformance.check_determinism(sz.get_sampler(name))


@pytest.mark.parametrize("name", SAMPLERS)
def test_batch_invariance(name: str) -> None:
    options = {"s_churn": 5.0} if name in ("euler", "heun", "dpm2") else {}
    conformance.check_batch_invariance(sz.get_sampler(name), **options)


@pytest.mark.parametrize("name", STOCHASTIC)
def test_stochastic_samplers_are_seeded(name: str) -> None:
    conformance.check_determinism(sz.get_sampler(name))


LAW_OPTIONS = {"langevin": {"n_steps_each": 10}}
"""Cheaper than the defaults, same law checks: langevin's default 100 steps a level is checked by its recursion
(tests/test_sde_laws.py)."""
# pc's corrector sets its step size 2 (snr ||z|| / ||s||)^2 from per-sample norms, which concentrate only in high
# dimension (on these 1-, 2- and 4-D problems its std drifts to ~0.78): tests/test_sde.py checks it against diffusers'
# ScoreSdeVeScheduler and on a 256-D Gaussian instead.
# lcm re-noises the posterior mean, x = D(x; sigma) + sigma_next z: its law reaches the target only for a consistency
# model, not as steps grow (tests/test_flow.py::test_lcm_law_on_the_gaussian checks its own exact law); so do
# cm_multistep and tcd (tests/test_consistency.py checks their exact laws).
DIMENSION_FREE = [n for n in STOCHASTIC if n not in ("pc", "lcm", "cm_multistep", "tcd")]
LAW_STEPS = {"sa_solver": (50, 100, 200, 400), "sa_solver_pece": (50, 100, 200, 400)}
"""sa_solver's high-order predictor-corrector is pre-asymptotic at 25 steps (exact-law error 5.9e-4 and 6.1e-4 at 25
and 50 steps to sigma_min), then shrinks 3.0x and 3.8x per doubling: weak order 2 from 50 steps."""


@pytest.mark.parametrize("name", DIMENSION_FREE)
def test_law_on_a_gaussian(name: str) -> None:
    # The exact law of the output (its joint law with the start for a reverse-SDE sampler) converges to the target
    # at the declared weak order.
    conformance.check_gaussian_law(sz.get_sampler(name), steps=LAW_STEPS.get(name, (25, 50, 100, 200)),
                                   **LAW_OPTIONS.get(name, {}))


# The mixture test on one sampler of each noise mechanism (ancestral, Brownian SDE solver, EDM's churn, Restart's
# jumps, reverse diffusion, Analytic-DPM's variance): every sampler's own code is checked by its exact Gaussian law
# above, which has no sampling error; the test's power per sampler is in results/law-power.md. (langevin's chain
# needs 10 steps a level over all 200 levels to settle on the mixture: 2000 calls; at 50 levels seed 1 fails.)
MIXTURE_CHECKED = ["euler_ancestral", "dpmpp_2m_sde", "edm", "restart", "euler_maruyama", "ddpm_analytic"]


@pytest.mark.parametrize("name", MIXTURE_CHECKED)
def test_law_on_a_mixture(name: str) -> None:
    conformance.check_mixture_law(sz.get_sampler(name), **LAW_OPTIONS.get(name, {}))


# (sampler, options, whether they make it a reverse-SDE sampler): options that make a sampler stochastic, or change
# the SDE it discretises. eta < 1 and EDM's churn keep only the marginals.
OPTION_LAWS = [
    ("euler_ancestral", {"eta": 0.5}, False), ("ddpm", {"variance": "fixed_large"}, True), ("ddim", {"eta": 1.0}, True),
    ("euler", {"s_churn": 10.0}, False), ("heun", {"s_churn": 10.0}, False), ("dpm2", {"s_churn": 10.0}, False),
    ("res_multistep_ancestral", {"eta": 0.5}, False), ("dpmpp_2m_sde", {"eta": 0.5}, False),
    ("dpm2_ancestral", {"eta": 0.5}, False), ("euler_maruyama", {"form": "vp"}, True),
]


@pytest.mark.parametrize(("name", "options", "joint"), OPTION_LAWS)
def test_law_with_options(name: str, options: dict[str, float], joint: bool) -> None:
    # The exact law alone: it has no sampling error, and the mixture test runs each sampler's code at its defaults.
    spec = dataclasses.replace(sz.get_sampler(name), stochastic=True, reverse_sde=joint, weak_order=1)
    conformance.check_gaussian_law(spec, **options)


INFINITE_START_NFE = {"heunpp2": 72}
"""heunpp2 spends 3 evaluations a step for Euler-like accuracy (its weights turn into Euler's as sigma falls): from
infinity its error is 0.07 at 4 x 24 NFE, 0.024 at 4 x 72, where the check's 0.05 applies."""


@pytest.mark.parametrize("name", SAMPLERS)
def test_starts_at_infinite_sigma(name: str) -> None:
    # From pure noise (a flow model's t = 1): finite samples, the exact NFE, and the exact answer (conformance kit).
    conformance.check_infinite_start(sz.get_sampler(name), nfe=INFINITE_START_NFE.get(name, 24))


def test_callback_sees_every_step() -> None:
    seen: list[int] = []
    model = testing.gaussian_problem()
    sigmas = karras(5, model)
    sz.get_sampler("heun").fn(model, torch.randn(2, 4, dtype=torch.float64) * 80, sigmas,
                              callback=lambda info: seen.append(info["i"]))
    assert seen == [0, 1, 2, 3, 4]


def test_ddpm_rejects_unknown_variance() -> None:
    model = testing.gaussian_problem()
    message = r"unknown ddpm variance 'learned'; .*known: fixed_large, fixed_small"
    with pytest.raises(sz.UnknownNameError, match=message):
        sz.get_sampler("ddpm").fn(model, torch.zeros(1, 4, dtype=torch.float64), karras(2, model),
                                  variance="learned")


@pytest.mark.parametrize("name", ["euler", "heun", "dpm2", "euler_ancestral"])
@pytest.mark.parametrize("final_step", ["zero", "sigma_min", "denoise"])
def test_final_step_semantics_spend_the_budget(name: str, final_step: str) -> None:
    model = testing.gaussian_problem()
    nfe = 9 if sz.get_sampler(name).evals_per_step == 1 or final_step == "zero" else 8 + (final_step == "denoise")
    run = sz.generate(model, name, nfe, seeds=[0, 1], sample_shape=model.sample_shape, dtype=torch.float64,
                      final_step=final_step)  # type: ignore[arg-type]
    assert run.counted_nfe == run.declared_nfe == nfe
    assert (run.sigmas[-1] == 0) == (final_step == "zero")
    assert run.sigmas[-1] == pytest.approx(0 if final_step == "zero" else model.sigma_min)


def test_denoise_final_step_is_the_denoised_sigma_min_sample() -> None:
    model = testing.gaussian_problem()
    kwargs = {"seeds": [0, 1], "sample_shape": model.sample_shape, "dtype": torch.float64}
    stopped = sz.generate(model, "euler", 5, final_step="sigma_min", **kwargs)
    denoised = sz.generate(model, "euler", 6, final_step="denoise", **kwargs)
    sigma_min = torch.full((2,), model.sigma_min, dtype=torch.float64)
    torch.testing.assert_close(denoised.samples, model(stopped.samples, sigma_min))
    with pytest.raises(sz.UnknownNameError, match="unknown final step 'none'"):
        sz.generate(model, "euler", 5, final_step="none", **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(("name", "nfe", "ends_at"), [("heun", 35, "zero"), ("heun", 10, "sigma_min"),
                                                     ("dpm2", 20, "sigma_min"), ("euler", 10, "zero")])
def test_auto_final_step_lands_on_zero_when_the_budget_allows(name: str, nfe: int, ends_at: str) -> None:
    model = testing.gaussian_problem()
    run = sz.generate(model, name, nfe, seeds=[0], sample_shape=model.sample_shape, dtype=torch.float64)
    assert run.final_step == ends_at and run.counted_nfe == nfe


@pytest.mark.parametrize("name", SAMPLERS)
def test_float32_network_stays_float32(name: str) -> None:
    # A float32 network must see float32 inputs: a sampler that promotes x (e.g. by float64 per-sample sigmas)
    # crashes a real conv net with "Input type (double) and bias type (float)".
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(1, 1, 3, padding=1)

    def net(x: torch.Tensor, c_noise: torch.Tensor) -> torch.Tensor:
        return conv(x) * 0.1

    model = NetworkDenoiser(net, "edm", EDM(), sample_shape=(1, 4, 4))
    sigmas = karras(4, model)
    noise = sz.SeededNoise(range(2), (1, 4, 4))
    spec = sz.get_sampler(name)
    with torch.no_grad():
        start = noise.randn() * float(sigmas[0])
        out = testing.kit_call(spec, testing.model_for(spec, model), start, sigmas, noise=noise)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
