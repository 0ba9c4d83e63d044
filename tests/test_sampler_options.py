"""Options shared across samplers (samplerzoo/samplers/wrappers.py and the multistep solvers' forms).

* afs (AMED's analytical first step, diff-sampler's ``afs``): NFE accounting and budgets stay exact with one call
  saved; it replaces exactly the first step's first evaluation (everything after is the sampler unchanged); its
  first slope is diff-sampler's x / sqrt(1 + sigma^2).
* Dynamic thresholding: the helper is diffusers' ``_threshold_sample``; bad values are refused in one line.
  (Agreement of the thresholded, noise-prediction and lower_order_final solvers with diffusers' schedulers is in
  test_dpm_solver.py; the orders of their interior steps, and of DEIS order 4, in test_local_order.py.)
* Global orders of the noise-prediction forms and DEIS order 4 on the Gaussian's closed form (conformance kit).
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import Tensor

import samplerzoo as sz
from samplerzoo import conformance, testing
from samplerzoo.analytic import GaussianMixture
from samplerzoo.denoiser import CountingDenoiser
from samplerzoo.errors import RegistrationError
from samplerzoo.registry import SamplerSpec
from samplerzoo.samplers.wrappers import dynamic_threshold
from samplerzoo.schedules import SigmaRange, karras

AFS_SAMPLERS = ["euler", "heun", "dpm2", "ipndm", "ipndm_v", "deis", "dpmpp_2m", "dpmpp_3m", "unipc", "unipc_bh2",
                "amed", "ipndm_amed"]
"""diff-sampler's solvers with afs: euler, heun, dpm(-2), ipndm, ipndm_v, deis, dpmpp, unipc, amed (and AMED-Plugin
on iPNDM)."""


def test_the_afs_samplers_are_the_ones_declaring_it() -> None:
    declared = sorted(n for n, s in sz.get_samplers().items() if s.analytic_first_step)
    assert declared == sorted(AFS_SAMPLERS)
    assert all("afs" in (sz.get_sampler(n).option_names() or ()) for n in AFS_SAMPLERS)


@pytest.mark.parametrize("name", AFS_SAMPLERS)
def test_afs_saves_exactly_one_evaluation(name: str) -> None:
    spec = sz.get_sampler(name)
    conformance.check_nfe_accounting(spec, afs=True)
    conformance.check_nfe_budget(spec, afs=True)
    sigmas = karras(6, SigmaRange(0.05, 10.0))
    assert spec.nfe(sigmas, afs=True) == spec.nfe(sigmas) - 1
    assert spec.steps_for_nfe(8, afs=True) == spec.steps_for_nfe(9)


class AnalyticAt:
    """The model, except at ``sigma``, where it answers diff-sampler's AFS prediction D = x - sigma x / sqrt(1 +
    sigma^2) (eps = x / sqrt(1 + sigma^2)) without calling it."""

    def __init__(self, model: GaussianMixture, sigma: float) -> None:
        self.model, self.sigma = model, sigma

    def __call__(self, x: Tensor, sigma: Tensor, **cond: Any) -> Tensor:
        if float(sigma[0]) == self.sigma:
            return x - self.sigma * x / (1 + self.sigma**2) ** 0.5
        return self.model(x, sigma, **cond)


@pytest.mark.parametrize("name", AFS_SAMPLERS)
def test_afs_replaces_only_the_first_evaluation(name: str) -> None:
    spec, model = sz.get_sampler(name), testing.gaussian_problem()
    sigmas = karras(7, SigmaRange(0.05, 80.0))
    x = torch.randn(4, *model.sample_shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * 80
    counter = CountingDenoiser(model)
    ours = testing.kit_call(spec, counter, x, sigmas, afs=True)
    theirs = testing.kit_call(spec, AnalyticAt(model, float(sigmas[0])), x, sigmas)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-12)
    assert counter.calls == spec.nfe(sigmas, afs=True) == spec.nfe(sigmas) - 1
    assert float((ours - testing.kit_call(spec, model, x, sigmas)).abs().max()) > 1e-6  # the option does something


def test_afs_euler_step_is_diff_samplers_and_calls_nothing() -> None:
    model, sigmas = CountingDenoiser(testing.gaussian_problem()), torch.tensor([80.0, 20.0], dtype=torch.float64)
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64) * 80
    ours = sz.get_sampler("euler").fn(model, x, sigmas, afs=True)
    torch.testing.assert_close(ours, x + (20.0 - 80.0) * x / (1 + 80.0**2) ** 0.5, rtol=0, atol=1e-12)
    assert model.calls == 0


@pytest.mark.parametrize("name", ["ipndm", "dpmpp_2m", "unipc"])
def test_generate_spends_the_budget_with_afs(name: str) -> None:
    problem = testing.gaussian_problem()
    result = sz.generate(problem, name, 7, range(3), problem.sample_shape, dtype=torch.float64, afs=True)
    assert result.counted_nfe == 7


def test_dynamic_threshold_is_diffusers() -> None:
    from diffusers import DPMSolverMultistepScheduler

    sample = torch.randn(5, 3, 4, 4, generator=torch.Generator().manual_seed(3)) * torch.tensor([0.5, 1, 2, 3, 6])[
        :, None, None, None]
    for ratio, max_value in ((0.995, 1.0), (0.9, 2.5), (0.5, 100.0)):
        scheduler = DPMSolverMultistepScheduler(thresholding=True, dynamic_thresholding_ratio=ratio,
                                                sample_max_value=max_value)
        theirs = scheduler._threshold_sample(sample)
        assert torch.equal(dynamic_threshold(sample, ratio, max_value), theirs)
        assert not torch.equal(theirs, sample)


@pytest.mark.parametrize(("options", "message"), [
    ({"thresholding": True, "dynamic_thresholding_ratio": 1.5}, "dynamic_thresholding_ratio must be in"),
    ({"thresholding": True, "sample_max_value": 0.5}, "sample_max_value must be >= 1"),
    ({"prediction": "x0"}, "unknown prediction 'x0'"),
])
@pytest.mark.parametrize("name", ["dpmpp_2m", "dpmpp_3m", "unipc"])
def test_bad_option_values_are_refused_before_any_call(name: str, options: dict[str, Any], message: str) -> None:
    model = CountingDenoiser(testing.gaussian_problem())
    with pytest.raises(sz.SamplerzooError, match=message) as error:
        sz.get_sampler(name).fn(model, torch.zeros(1, 4, dtype=torch.float64), karras(3, SigmaRange(0.1, 5.0)),
                                **options)
    assert "\n" not in str(error.value) and model.calls == 0


def test_analytic_first_step_needs_the_default_cost() -> None:
    with pytest.raises(RegistrationError, match="analytic_first_step needs the default per-step cost"):
        SamplerSpec("x", lambda *a, **k: None, order=1, stochastic=False, analytic_first_step=True,
                    nfe_fn=lambda sigmas, **o: 1, steps_fn=lambda nfe, to_zero, **o: 1, cost_formula="steps")


# Global orders on the Gaussian's closed form, 64..512 steps from sigma 2 (testing.fitted_order): the noise forms
# keep their data forms' declared global order (2: first-order start, 3M's published second difference); DEIS
# order 4 too (its fourth-order interior steps are in test_local_order.py). Fitted: 2.01 (2M), 2.01 (2M heun),
# 2.02 (3M), 1.86 / 1.73 (UniPC bh1 / bh2, whose uncorrected first-order last step dominates), 2.07 (DEIS 4).
ORDER_CASES = {
    "dpmpp_2m_noise": ("dpmpp_2m", {"prediction": "noise"}),
    "dpmpp_2m_noise_heun": ("dpmpp_2m", {"prediction": "noise", "solver_type": "heun"}),
    "dpmpp_3m_noise": ("dpmpp_3m", {"prediction": "noise"}),
    "unipc_noise": ("unipc", {"prediction": "noise"}),
    "unipc_bh2_noise": ("unipc_bh2", {"prediction": "noise"}),
    "deis_order4": ("deis", {"order": 4}),
}


@pytest.mark.parametrize("case", ORDER_CASES)
def test_global_order_of_the_new_forms(case: str) -> None:
    name, options = ORDER_CASES[case]
    conformance.check_convergence_order(sz.get_sampler(name), **options)


def test_deis_order4_beats_order3_on_the_gaussian() -> None:
    """From sigma 10 at 8..64 steps the fourth-order interior shows (fitted 3.51 against 2.79 for order 3)."""
    spec = sz.get_sampler("deis")
    fitted = {o: testing.fitted_order(spec, steps=(8, 16, 32, 64), sigma_max=10.0, order=o) for o in (3, 4)}
    assert fitted[4] > fitted[3] + 0.5, fitted
