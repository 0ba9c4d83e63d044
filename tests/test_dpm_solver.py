"""DPM-Solver family: agreement with k-diffusion and diffusers, Brownian noise, and the 3M order finding.

* k-diffusion: same exact (float64) Gaussian-mixture denoiser, same sigmas, and the same noise source handed
  to both (``noise=`` here, ``noise_sampler=`` there, built afresh per run from the same seeds).
* diffusers: driven by the loop and epsilon network of tests/test_diffusers_agreement.py (loaded from there),
  float32, 1e-4.
"""

from __future__ import annotations

import itertools
import math
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import diffusers_driver as driver
import pytest
import torch
from torch import Tensor

import samplerzoo as sz
from samplerzoo import laws, testing
from samplerzoo.analytic import GaussianMixture
from samplerzoo.denoiser import CountingDenoiser
from samplerzoo.noise import BrownianTreeNoise, NoiseSampler, SeededNoise, TorchsdeBrownianNoise
from samplerzoo.samplers.exponential import phi
from samplerzoo.schedules import SigmaRange, karras

SEEDS = (3, 1, 4, 1)
SHAPE = (2, 3)
RANGE = SigmaRange(0.03, 15.0)
F64_ATOL = 1e-10  # float64, same arithmetic up to operation order


@contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """Run with torch's default dtype set to ``dtype`` (restored after)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def mixture() -> GaussianMixture:
    """A 3-component mixture: its denoiser is nonlinear in x and in sigma (responsibilities change with both)."""
    means = torch.tensor([[[1.0, -0.5, 0.2], [0.4, 0.1, -0.3]], [[-1.2, 0.8, 0.0], [0.2, -0.9, 0.6]],
                          [[0.3, 0.3, -1.5], [-0.7, 0.5, 0.9]]], dtype=torch.float64)
    return GaussianMixture(means, torch.tensor([0.3, 0.5, 0.2], dtype=torch.float64),
                           torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64))


def schedule(steps: int, to_zero: bool) -> Tensor:
    return karras(steps, RANGE) if to_zero else karras(steps + 1, RANGE)[:-1]


NoiseFactory = Callable[[], NoiseSampler | None]
NOISES: dict[str, NoiseFactory] = {
    "none": lambda: None,
    "gaussian": lambda: SeededNoise(SEEDS, SHAPE, dtype=torch.float64),
    "brownian": lambda: TorchsdeBrownianNoise(SEEDS, SHAPE, RANGE.sigma_min, RANGE.sigma_max, dtype=torch.float64),
}

Reference = Callable[[types.ModuleType, Any, Tensor, Tensor, NoiseSampler | None], Tensor]


def k_sampler(name: str, **k_options: Any) -> Reference:
    """k-diffusion's sample_<name> on the same sigmas, given our noise source as its noise_sampler."""
    def run(k: types.ModuleType, model: Any, x: Tensor, sigmas: Tensor, noise: NoiseSampler | None) -> Tensor:
        extra = {} if noise is None else {"noise_sampler": noise}
        return getattr(k, f"sample_{name}")(model, x, sigmas, disable=True, **k_options, **extra)
    return run


def to_zero_by_denoising(run: Callable[[Tensor, Tensor], Tensor]) -> Callable[[Any, Tensor, Tensor], Tensor]:
    """k-diffusion's DPM-Solver cannot step to sigma = 0: ours then ends with x = D at the last positive sigma."""
    def wrapped(model: Any, x: Tensor, sigmas: Tensor) -> Tensor:
        if float(sigmas[-1]) > 0:
            return run(x, sigmas)
        x = run(x, sigmas[:-1]) if len(sigmas) > 2 else x
        return model(x, sigmas[-2] * x.new_ones(x.shape[0]))
    return wrapped


def k_dpm_solver_steps(order: int) -> Reference:
    """Step by step with k-diffusion's DPMSolver.dpm_solver_{order}_step (t = lambda = -log sigma)."""
    def run(k: types.ModuleType, model: Any, x: Tensor, sigmas: Tensor, noise: NoiseSampler | None) -> Tensor:
        solver = k.DPMSolver(model)
        step = getattr(solver, f"dpm_solver_{order}_step")

        def solve(x: Tensor, levels: Tensor) -> Tensor:
            for sigma, sigma_next in itertools.pairwise(levels):
                x, _ = step(x, solver.t(sigma), solver.t(sigma_next))
            return x
        return to_zero_by_denoising(solve)(model, x, sigmas)
    return run


def k_dpm_fast(k: types.ModuleType, model: Any, x: Tensor, sigmas: Tensor, noise: NoiseSampler | None) -> Tensor:
    """sample_dpm_fast(model, x, sigma_min, sigma_max, n) with our budget: n = the remaining evaluations.

    k-diffusion's DPM-Solver-fast/adaptive build their lambda grid (torch.linspace) and atol/rtol (torch.tensor)
    in the default dtype: in float32 they would be ~1e-7 off ours (2.6e-6 and 5e-10 at the end, seen), so the
    references run with a float64 default."""
    def solve(x: Tensor, levels: Tensor) -> Tensor:
        with default_dtype(torch.float64):
            return k.sample_dpm_fast(model, x, float(levels[-1]), float(levels[0]), len(levels) - 1,
                                     disable=True)
    return to_zero_by_denoising(solve)(model, x, sigmas)


def k_dpm_adaptive(**k_options: Any) -> Reference:
    """sample_dpm_adaptive, one sample at a time (its error norm is taken over the whole batch)."""
    def run(k: types.ModuleType, model: Any, x: Tensor, sigmas: Tensor, noise: NoiseSampler | None) -> Tensor:
        def solve(x: Tensor, levels: Tensor) -> Tensor:
            with default_dtype(torch.float64):
                return torch.cat([k.sample_dpm_adaptive(model, x[j:j + 1], float(levels[-1]), float(levels[0]),
                                                        disable=True, **k_options) for j in range(len(x))])
        return to_zero_by_denoising(solve)(model, x, sigmas)
    return run


# id -> (our sampler, its options, reference, noise)
K_CASES: dict[str, tuple[str, dict[str, Any], Reference, str]] = {
    "dpmpp_2m": ("dpmpp_2m", {}, k_sampler("dpmpp_2m"), "none"),
    "dpmpp_3m": ("dpmpp_3m", {}, k_sampler("dpmpp_3m_sde", eta=0.0), "none"),
    "dpmpp_2m_heun_ode": ("dpmpp_2m", {"solver_type": "heun"}, k_sampler("dpmpp_2m_sde", eta=0.0, solver_type="heun"),
                          "none"),
    "dpmpp_2m_sde": ("dpmpp_2m_sde", {}, k_sampler("dpmpp_2m_sde"), "brownian"),
    "dpmpp_2m_sde_eta": ("dpmpp_2m_sde", {"eta": 0.6, "s_noise": 0.9}, k_sampler("dpmpp_2m_sde", eta=0.6, s_noise=0.9),
                         "gaussian"),
    "dpmpp_2m_sde_heun": ("dpmpp_2m_sde_heun", {}, k_sampler("dpmpp_2m_sde", solver_type="heun"), "brownian"),
    "dpmpp_3m_sde": ("dpmpp_3m_sde", {}, k_sampler("dpmpp_3m_sde"), "brownian"),
    "dpmpp_3m_sde_eta": ("dpmpp_3m_sde", {"eta": 0.5}, k_sampler("dpmpp_3m_sde", eta=0.5), "gaussian"),
    "dpmpp_2s_ancestral": ("dpmpp_2s_ancestral", {}, k_sampler("dpmpp_2s_ancestral"), "gaussian"),
    "dpmpp_2s_ancestral_eta": ("dpmpp_2s_ancestral", {"eta": 0.5, "s_noise": 1.1},
                               k_sampler("dpmpp_2s_ancestral", eta=0.5, s_noise=1.1), "gaussian"),
    "dpmpp_2s": ("dpmpp_2s", {}, k_sampler("dpmpp_2s_ancestral", eta=0.0), "none"),
    "dpm_solver_data_2": ("dpm_solver", {"order": 2, "prediction": "data"}, k_sampler("dpmpp_2s_ancestral", eta=0.0),
                          "none"),
    "dpmpp_sde": ("dpmpp_sde", {}, k_sampler("dpmpp_sde"), "brownian"),
    "dpmpp_sde_r": ("dpmpp_sde", {"eta": 0.7, "r": 0.4}, k_sampler("dpmpp_sde", eta=0.7, r=0.4), "gaussian"),
    **{f"dpm_solver_{k}": ("dpm_solver", {"order": k}, k_dpm_solver_steps(k), "none") for k in (1, 2, 3)},
    "dpm_fast": ("dpm_fast", {}, k_dpm_fast, "none"),
    "dpm_adaptive": ("dpm_adaptive", {}, k_dpm_adaptive(), "none"),
    "dpm_adaptive_12": ("dpm_adaptive", {"order": 2, "rtol": 0.01, "atol": 0.001, "pcoeff": 0.3, "dcoeff": 0.1},
                        k_dpm_adaptive(order=2, rtol=0.01, atol=0.001, pcoeff=0.3, dcoeff=0.1), "none"),
}


@pytest.mark.parametrize("to_zero", [True, False], ids=["to_zero", "to_sigma_min"])
@pytest.mark.parametrize("case", K_CASES)
def test_k_diffusion_agreement(k_sampling: types.ModuleType, case: str, to_zero: bool) -> None:
    name, options, reference, noise = K_CASES[case]
    model, sigmas = mixture(), schedule(7, to_zero)
    x = SeededNoise([9, 8, 7, 6], SHAPE, dtype=torch.float64).randn() * float(sigmas[0])
    ours = sz.get_sampler(name).fn(model, x, sigmas, noise=NOISES[noise](), **options)
    theirs = reference(k_sampling, model, x, sigmas, NOISES[noise]())
    diff = float((ours - theirs).abs().max())
    print(f"{case}: max |ours - k-diffusion| = {diff:.2e}")
    assert diff <= F64_ATOL, f"{case}: {diff:.3e}"


@pytest.mark.parametrize("order", [2, 3])
def test_dpm_adaptive_spends_what_k_diffusion_spends(k_sampling: types.ModuleType, order: int) -> None:
    model, sigmas = mixture(), schedule(7, False)
    x = SeededNoise([5], SHAPE, dtype=torch.float64).randn() * float(sigmas[0])
    counter = CountingDenoiser(model)
    sz.get_sampler("dpm_adaptive").fn(counter, x, sigmas, order=order)
    with default_dtype(torch.float64):
        _, info = k_sampling.sample_dpm_adaptive(model, x, float(sigmas[-1]), float(sigmas[0]), order=order,
                                                 disable=True, return_info=True)
    assert counter.calls == info["nfe"] and info["n_reject"] > 0, (counter.calls, info)


# -------------------------------------------------------------------------------------------- diffusers



pytestmark = driver.PYTESTMARK


def table_sigmas(model: Any, timesteps: Tensor) -> Tensor:
    """Our sigmas at diffusers' (integer) timesteps, then 0: these schedulers' own spacings
    ("linspace" and "leading" round over T - 1 and N + 1 points) are not all rebuilt by our schedules."""
    return torch.cat([model.sigma_table.to(torch.float64)[timesteps.long()], torch.zeros(1, dtype=torch.float64)])


# diffusers' DPMSolverMultistepScheduler in the VP frame (init_noise_sigma = 1; ends at sigma = 0, where the frames
# coincide). Settings under which it is our solver:
# * final_sigmas_type="zero" (default): its last step is first order, x = D, like ours and k-diffusion's.
# * lower_order_final=False for order 3: with the default True and fewer than 15 steps it also drops to order 2
#   on the second-to-last step, which k-diffusion and we do not.
# * solver_type "midpoint" (default) / "heun" = our solver_type; algorithm_type "sde-dpmsolver++" = our
#   dpmpp_2m_sde with eta = 1, its noise drawn from the same generator.
# * Not dpmpp_3m_sde: diffusers 0.42's third-order "sde-dpmsolver++" step weights D2 with
#   ((1 - e^{-2h} - 2h) / (2h)^2 - 0.5), i.e. -(phi_2(-2h) + 1/2) ~ -1, where its own ODE branch (and k-diffusion)
#   have -(phi_2(-h) - 1/2) = O(h): a sign slip; the two differ by O(1) once third-order steps start.
# id -> (our sampler, our options, diffusers scheduler, its config)
DIFFUSERS_CASES: dict[str, tuple[str, dict[str, Any], str, dict[str, Any]]] = {
    "dpmpp_2m": ("dpmpp_2m", {}, "DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "dpmpp_2m_heun": ("dpmpp_2m", {"solver_type": "heun"}, "DPMSolverMultistepScheduler",
                      {"algorithm_type": "dpmsolver++", "solver_order": 2, "solver_type": "heun"}),
    "dpmpp_3m": ("dpmpp_3m", {"solver_type": "midpoint"}, "DPMSolverMultistepScheduler",
                 {"algorithm_type": "dpmsolver++", "solver_order": 3, "lower_order_final": False}),
    "dpmpp_3m_heun": ("dpmpp_3m", {}, "DPMSolverMultistepScheduler",
                      {"algorithm_type": "dpmsolver++", "solver_order": 3, "lower_order_final": False,
                       "solver_type": "heun"}),
    "dpmpp_2m_sde": ("dpmpp_2m_sde", {}, "DPMSolverMultistepScheduler",
                     {"algorithm_type": "sde-dpmsolver++", "solver_order": 2}),
    "dpmpp_2m_sde_heun": ("dpmpp_2m_sde_heun", {}, "DPMSolverMultistepScheduler",
                          {"algorithm_type": "sde-dpmsolver++", "solver_order": 2, "solver_type": "heun"}),
    # UniPCMultistepScheduler: predict_x0=True (default) is our data-prediction UniPC. With solver_type="bh1" its
    # step to sigma = 0 is NaN in diffusers 0.42 (B(h) = -h = -inf times a zero residual; with lower_order_final=False
    # R is singular there), so bh1 is compared with final_sigmas_type="sigma_min": both stop at the table's
    # smallest sigma (diffusers' float32 value of it), and ours is taken to diffusers' VP frame there.
    "unipc_bh1_3": ("unipc", {"order": 3}, "UniPCMultistepScheduler",
                    {"solver_order": 3, "solver_type": "bh1", "final_sigmas_type": "sigma_min"}),
    "unipc_bh1_1": ("unipc", {"order": 1}, "UniPCMultistepScheduler",
                    {"solver_order": 1, "solver_type": "bh1", "final_sigmas_type": "sigma_min"}),
    "unipc_bh1_3_full": ("unipc", {"lower_order_final": False}, "UniPCMultistepScheduler",
                         {"solver_order": 3, "solver_type": "bh1", "lower_order_final": False,
                          "final_sigmas_type": "sigma_min"}),
    "unipc_bh2_2": ("unipc_bh2", {"order": 2}, "UniPCMultistepScheduler", {"solver_order": 2}),
    "unipc_bh2_3": ("unipc_bh2", {}, "UniPCMultistepScheduler", {"solver_order": 3}),
    "unipc_bh2_3_sigma_min": ("unipc_bh2", {}, "UniPCMultistepScheduler",
                              {"solver_order": 3, "final_sigmas_type": "sigma_min"}),
    # Noise prediction (eps integrated, diffusers' algorithm_type="dpmsolver", UniPC predict_x0=False): diffusers
    # allows only final_sigmas_type="sigma_min" for "dpmsolver" (and its default lower_order_final=True would lower
    # the last step there below 15 steps; lowered orders are compared in test_diffusers_lower_order_final).
    **{f"dpmpp_{o}m_noise_{solver}": (f"dpmpp_{o}m", {"prediction": "noise", "solver_type": solver},
                                      "DPMSolverMultistepScheduler",
                                      {"algorithm_type": "dpmsolver", "solver_order": o, "solver_type": solver,
                                       "lower_order_final": False, "final_sigmas_type": "sigma_min"})
       for o in (2, 3) for solver in ("midpoint", "heun")},
    **{f"unipc_{variant}_noise": (f"unipc{'_bh2' if variant == 'bh2' else ''}", {"prediction": "noise"},
                                  "UniPCMultistepScheduler",
                                  {"solver_order": 3, "solver_type": variant, "predict_x0": False,
                                   "final_sigmas_type": "sigma_min"})
       for variant in ("bh1", "bh2")},
    # Imagen's dynamic thresholding of D (diffusers' thresholding=True): |D| reaches ~4 on this network, so it clips.
    "dpmpp_2m_thresholding": ("dpmpp_2m", {"thresholding": True}, "DPMSolverMultistepScheduler",
                              {"algorithm_type": "dpmsolver++", "solver_order": 2, "thresholding": True}),
    "dpmpp_3m_thresholding": ("dpmpp_3m", {"solver_type": "midpoint", "thresholding": True,
                                           "dynamic_thresholding_ratio": 0.9, "sample_max_value": 1.5},
                              "DPMSolverMultistepScheduler",
                              {"algorithm_type": "dpmsolver++", "solver_order": 3, "lower_order_final": False,
                               "thresholding": True, "dynamic_thresholding_ratio": 0.9, "sample_max_value": 1.5}),
    "dpmpp_2m_noise_thresholding": ("dpmpp_2m", {"prediction": "noise", "thresholding": True},
                                    "DPMSolverMultistepScheduler",
                                    {"algorithm_type": "dpmsolver", "solver_order": 2, "lower_order_final": False,
                                     "final_sigmas_type": "sigma_min", "thresholding": True}),
    "dpmpp_2m_sde_thresholding": ("dpmpp_2m_sde", {"thresholding": True, "sample_max_value": 1.5},
                                  "DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++",
                                                                  "solver_order": 2, "thresholding": True,
                                                                  "sample_max_value": 1.5}),
    "unipc_bh2_thresholding": ("unipc_bh2", {"thresholding": True, "sample_max_value": 2.0},
                               "UniPCMultistepScheduler",
                               {"solver_order": 3, "thresholding": True, "sample_max_value": 2.0}),
}
TIGHT = {case: 2e-5 if case.startswith("unipc") and "noise" in case else 1e-5
         for case in DIFFUSERS_CASES if "noise" in case or "thresholding" in case}
"""Cases held tighter than driver.ATOL (float32, |x| up to ~4): up to 7e-6 seen; UniPC's noise form 1.2e-5 (bh2,
linspace, N = 10: from sigma 157 its steps x - sigma_next (e^h - 1) eps cancel in float32 on both sides)."""


@pytest.mark.filterwarnings("ignore:algorithm_type dpmsolver is deprecated:FutureWarning")
@pytest.mark.parametrize("n", driver.STEPS)
@pytest.mark.parametrize(("spacing", "steps_offset"), [("linspace", 0), driver.LEADING_OFFSET, driver.TRAILING])
@pytest.mark.parametrize("case", DIFFUSERS_CASES)
def test_diffusers_agreement(case: str, spacing: str, steps_offset: int, n: int) -> None:
    sampler, options, scheduler_name, config = DIFFUSERS_CASES[case]
    compare_with_diffusers(sampler, options, scheduler_name, config, spacing, steps_offset, n,
                           TIGHT.get(case, driver.ATOL))


def compare_with_diffusers(sampler: str, options: dict[str, Any], scheduler_name: str, config: dict[str, Any],
                           spacing: str, steps_offset: int, n: int, atol: float) -> None:
    """Our sampler and diffusers' scheduler on the same network and timesteps (the scheduler's own)."""
    import diffusers

    config = {"final_sigmas_type": "zero", **config}
    scheduler = getattr(diffusers, scheduler_name)(**driver.BETAS, **config, timestep_spacing=spacing,
                                                   steps_offset=steps_offset)
    scheduler.set_timesteps(n)
    our_net, model = driver.our_model("log")  # integer timesteps: any sigma_to_t recovers them
    sigmas = table_sigmas(model, scheduler.timesteps)
    if config["final_sigmas_type"] == "sigma_min":
        # The table's level at t = 0, as diffusers has it: its float32 table is 8e-5 (relative) off there, and the
        # steps onto it move lambda by that much, which third-order steps turn into 1.3e-4 at the end (N = 10).
        sigmas[-1] = scheduler.sigmas[-1].to(torch.float64)
    their_net = driver.EpsNet()
    assert scheduler.init_noise_sigma == 1.0
    theirs = driver.sample_diffusers(scheduler, their_net)
    ours, _ = driver.sample_ours(sampler, model, sigmas, float((1 + sigmas[0] ** 2).sqrt()), **options)
    ours = ours / float((1 + sigmas[-1] ** 2).sqrt())  # to the VP frame (a no-op at sigma = 0)
    driver.assert_agreement(sampler, sigmas, scheduler.sigmas, ours, theirs, our_net, their_net, atol=atol,
                            **options)


# diffusers' default lower_order_final=True lowers the orders of the last steps below 15 steps (the last to 1, for
# solver_order 3 the one before to 2): our lower_order_final=True, step i of N at order <= N - i.
@pytest.mark.filterwarnings("ignore:algorithm_type dpmsolver is deprecated:FutureWarning")
@pytest.mark.parametrize("n", [4, 10])
@pytest.mark.parametrize(("order", "algorithm", "final"), [
    (2, "dpmsolver++", "sigma_min"), (3, "dpmsolver++", "zero"), (3, "dpmsolver++", "sigma_min"),
    (3, "dpmsolver", "sigma_min")])
def test_diffusers_lower_order_final(order: int, algorithm: str, final: str, n: int) -> None:
    options = {"lower_order_final": True, "solver_type": "midpoint",
               "prediction": "data" if algorithm == "dpmsolver++" else "noise"}
    config = {"algorithm_type": algorithm, "solver_order": order, "final_sigmas_type": final}
    compare_with_diffusers(f"dpmpp_{order}m", options, "DPMSolverMultistepScheduler", config, *driver.TRAILING, n,
                           1e-5)


# -------------------------------------------------------------------------------------------- Brownian noise

def test_brownian_noise_is_k_diffusions_per_sample_tree(k_sampling: types.ModuleType) -> None:
    ours = NOISES["brownian"]()
    x = torch.zeros(len(SEEDS), *SHAPE, dtype=torch.float64)
    theirs = k_sampling.BrownianTreeNoiseSampler(x, RANGE.sigma_min, RANGE.sigma_max, seed=list(SEEDS))
    for sigma, sigma_next in [(15.0, 7.0), (7.0, 0.5), (0.5, 0.03), (2.0, 3.0)]:
        a, b = torch.tensor(sigma, dtype=torch.float64), torch.tensor(sigma_next, dtype=torch.float64)
        torch.testing.assert_close(ours(a, b), theirs(a, b), rtol=0, atol=1e-15)  # same trees; rounding only


BROWNIAN = [BrownianTreeNoise, TorchsdeBrownianNoise]  # generate()'s, and k-diffusion's trees


@pytest.mark.parametrize("brownian", BROWNIAN)
def test_brownian_noise_depends_on_the_sample_seed_only(brownian: Callable[..., NoiseSampler]) -> None:
    a, b = torch.tensor(5.0, dtype=torch.float64), torch.tensor(1.0, dtype=torch.float64)
    batch = brownian([5, 6, 7], SHAPE, 0.1, 10.0)(a, b)
    alone = torch.cat([brownian([s], SHAPE, 0.1, 10.0)(a, b) for s in (5, 6, 7)])
    assert torch.equal(batch, alone)
    assert batch.shape == (3, *SHAPE) and not torch.allclose(batch[0], batch[1])


@pytest.mark.parametrize("brownian", BROWNIAN)
def test_brownian_increments_are_standard_and_additive(brownian: Callable[..., NoiseSampler]) -> None:
    noise = brownian([11], (20000,), 0.1, 10.0, dtype=torch.float64)
    s0, s1, s2 = (torch.tensor(v, dtype=torch.float64) for v in (8.0, 3.0, 0.5))
    n01, n12, n02 = noise(s0, s1), noise(s1, s2), noise(s0, s2)
    for n in (n01, n12, n02):  # N(0, 1) per element: standard error of the std ~ 0.005
        assert abs(float(n.mean())) < 0.03 and abs(float(n.std()) - 1) < 0.03
    assert abs(float((n01 * n12).mean())) < 0.03  # disjoint intervals: independent
    # One path: W(s2) - W(s0) = (W(s1) - W(s0)) + (W(s2) - W(s1)).
    joined = (n01 * (s0 - s1).sqrt() + n12 * (s1 - s2).sqrt()) / (s0 - s2).sqrt()
    torch.testing.assert_close(joined, n02, rtol=0, atol=1e-9)
    torch.testing.assert_close(noise(s1, s0), -n01 * 1.0, rtol=0, atol=0)  # reversed interval: negated


@pytest.mark.parametrize("name", ["dpmpp_sde", "dpmpp_2m_sde", "dpmpp_3m_sde"])
def test_sde_samplers_with_brownian_noise_are_batch_invariant(name: str) -> None:
    model, sigmas = mixture(), schedule(6, True)

    def run(seeds: list[int]) -> Tensor:
        x = SeededNoise(seeds, SHAPE, dtype=torch.float64).randn() * float(sigmas[0])
        noise = BrownianTreeNoise(seeds, SHAPE, RANGE.sigma_min, RANGE.sigma_max, dtype=torch.float64)
        return sz.get_sampler(name).fn(model, x, sigmas, noise=noise)

    gap = float((run([0, 1, 2]) - torch.cat([run([s]) for s in (0, 1, 2)])).abs().max())
    assert gap <= 1e-12


# -------------------------------------------------------------------------------------------- Brownian draws

@pytest.mark.parametrize(("name", "overlapping"), [("dpmpp_2m_sde", False), ("dpmpp_2m_sde_heun", False),
                                                   ("dpmpp_3m_sde", False), ("dpmpp_sde", True)])
def test_brownian_samplers_need_their_path_only_where_draws_overlap(name: str, overlapping: bool) -> None:
    # The multistep SDE solvers ask for noise over consecutive intervals, whose Brownian increments are independent:
    # their exact law is the same with independent draws (generate()'s SeededNoise would do). dpmpp_sde's two draws
    # per step, over (sigma, sigma_s) and (sigma, sigma_next), overlap: independent draws leave its std ~5% low.
    spec, sigmas = sz.get_sampler(name), laws.gaussian_schedule(15, True)
    brownian, independent = (laws.affine_law(spec, sigmas, brownian=b) for b in (True, False))
    gap = abs(brownian.noise_var - independent.noise_var)
    assert (brownian.offset, brownian.gain) == (independent.offset, independent.gain)
    assert (gap > 1e-3) if overlapping else gap < 1e-12, (brownian, independent)


# -------------------------------------------------------------------------------------------- 3M's second difference

def test_multistep_terms_are_exact_on_a_quadratic() -> None:
    from samplerzoo.samplers.exponential import multistep_terms

    lambdas = [torch.tensor(v, dtype=torch.float64) for v in (0.4, 0.1, -0.5)]
    values = [3 + 2 * lam + 5 * lam**2 for lam in lambdas]  # f' = 2 + 10 lambda, f'' = 10
    h = torch.tensor(0.3, dtype=torch.float64)
    terms = multistep_terms(values, lambdas, h, "taylor")
    torch.testing.assert_close(torch.stack(terms), torch.stack([values[0], h * (2 + 10 * lambdas[0]), h**2 * 10]))
    assert torch.isclose(multistep_terms(values, lambdas, h, "reference")[2], h**2 * 5)


def test_phi_functions_match_their_integrals() -> None:
    z = torch.tensor(-0.7, dtype=torch.float64)
    theta = torch.linspace(0, 1, 20001, dtype=torch.float64)
    for k in (1, 2, 3):
        integrand = (z * (1 - theta)).exp() * theta ** (k - 1) / math.factorial(k - 1)
        torch.testing.assert_close(phi(k, z), torch.trapezoid(integrand, theta), rtol=1e-8, atol=0)


@pytest.mark.parametrize(("name", "option"), [("dpmpp_2m", "solver_type"), ("dpmpp_3m", "second_difference")])
def test_unknown_option_values_are_refused(name: str, option: str) -> None:
    model = testing.gaussian_problem()
    with pytest.raises(sz.UnknownNameError, match=f"unknown {option} 'bogus'"):
        sz.get_sampler(name).fn(model, torch.zeros(1, 4, dtype=torch.float64), karras(3, model), **{option: "bogus"})


# DPMSolverSDEScheduler is k-diffusion's dpmpp_sde (r = 1/2) in the Euler family's frame, with its own Brownian
# noise (torchsde.BrownianInterval, one tree for the batch) drawn at its float32 sigmas: the skeleton (sub-steps,
# ancestral splits, midpoints, timesteps) is compared with s_noise = 0 on both sides; the noise injection is
# compared with k-diffusion above. Integer timesteps only, as for KDPM2 (see test_diffusers_agreement.py).
# diffusers bounds its Brownian interval by float32 .item() sigmas and queries it at others, which torchsde warns of.
@pytest.mark.filterwarnings("ignore:Should have t:UserWarning")
@pytest.mark.parametrize("n", driver.STEPS)
@pytest.mark.parametrize(("spacing", "steps_offset"), [driver.LEADING, driver.LEADING_OFFSET, driver.TRAILING])
def test_diffusers_dpm_solver_sde_skeleton(spacing: str, steps_offset: int, n: int) -> None:
    from diffusers import DPMSolverSDEScheduler

    scheduler = DPMSolverSDEScheduler(**driver.BETAS, timestep_spacing=spacing, steps_offset=steps_offset)
    scheduler.set_timesteps(n)
    our_net, model = driver.our_model("log")  # the midpoints' timesteps are interpolated in log sigma
    sigmas = driver.our_sigmas(model, n, spacing, steps_offset)
    their_net = driver.EpsNet()
    theirs = driver.sample_diffusers(scheduler, their_net, s_noise=0.0)
    ours, _ = driver.sample_ours("dpmpp_sde", model, sigmas, float(scheduler.init_noise_sigma), s_noise=0.0)
    driver.assert_agreement("dpmpp_sde", sigmas, torch.unique_consecutive(scheduler.sigmas), ours, theirs, our_net,
                            their_net)


# DPMSolverSinglestepScheduler takes its intermediate points from its own timesteps (step k of order 2 goes from
# t_2k to t_2k+2 through t_2k+1), where our dpm_solver puts them at lambda + r1 h: so its steps are compared by
# driving our step, singlestep_update, with diffusers' r1 for each pair. Orders [1, 2, 1, 2, ...] need
# lower_order_final=False; algorithm "dpmsolver" allows only final_sigmas_type="sigma_min" (diffusers' float32
# level, as for UniPC above). Order 3 differs by design: diffusers' second sub-step uses its solver_type's
# second-order rule (midpoint or, with "heun", a Taylor third step), DPM-Solver-3 (Lu et al. 2022a) the phi_2 rule.
# (It has one timestep spacing of its own, N + 1 rounded points over T - 1 less the last.)
@pytest.mark.filterwarnings("ignore:.algorithm_types=dpmsolver. is deprecated:FutureWarning")
@pytest.mark.parametrize("n", [6, 10, 24])
@pytest.mark.parametrize(("prediction", "algorithm"), [("noise", "dpmsolver"), ("data", "dpmsolver++")])
def test_diffusers_singlestep_agreement(prediction: str, algorithm: str, n: int) -> None:
    from diffusers import DPMSolverSinglestepScheduler

    from samplerzoo.samplers.exponential import evaluate, half_log_snr
    from samplerzoo.samplers.singlestep import singlestep_update

    scheduler = DPMSolverSinglestepScheduler(**driver.BETAS, solver_order=2, algorithm_type=algorithm,
                                             lower_order_final=False, final_sigmas_type="sigma_min")
    scheduler.set_timesteps(n)
    assert scheduler.order_list == [1, 2] * (n // 2)
    our_net, model = driver.our_model("log")
    sigmas = table_sigmas(model, scheduler.timesteps)
    sigmas[-1] = scheduler.sigmas[-1].to(torch.float64)
    their_net = driver.EpsNet()
    theirs = driver.sample_diffusers(scheduler, their_net)
    init, _ = driver.seeded()
    x = init * float((1 + sigmas[0] ** 2).sqrt())
    with torch.no_grad():
        for sigma, sigma_mid, sigma_next in zip(sigmas[:-1:2], sigmas[1::2], sigmas[2::2], strict=True):
            lam, lam_mid, lam_next = half_log_snr(sigma), half_log_snr(sigma_mid), half_log_snr(sigma_next)
            r1 = float((lam_mid - lam) / (lam_next - lam))
            _, f0 = evaluate(model, x, sigma, prediction)
            x, _ = singlestep_update(model, x, sigma, sigma_next, f0, 2, prediction, r1)
    ours = x / float((1 + sigmas[-1] ** 2).sqrt())
    driver.assert_agreement("dpm_solver", sigmas[::2], scheduler.sigmas[::2], ours, theirs, our_net, their_net,
                            order=2)
