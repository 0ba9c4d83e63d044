"""Multistep, Runge-Kutta and reference ODE solvers against reference implementations and exact answers.

Tables, one test function each:
* K_CASES, k-diffusion: same float64 Gaussian-mixture denoiser and sigmas; agreement to 1e-12 (~1e-15 seen).
* DIFFUSERS_CASES, diffusers schedulers on an epsilon network over the linear-beta table, driven by the loop and
  network of tests/test_diffusers_agreement.py (loaded from there, not copied); agreement to 1e-4 in float32.
  IPNDMScheduler (continuous-time v-diffusion) has its own frame mapping and test below.
* ODE_REFERENCES: solve_ode against torchdiffeq's dopri5 and scipy's RK45 on the mixture.
* EQUIVALENT: identities that follow from the definitions (ipndm_v = ipndm on uniform steps, ...).
"""

from __future__ import annotations

import math
import types
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, NamedTuple

import diffusers_driver as driver
import pytest
import torch
from torch import Tensor

from samplerzoo import get_sampler, testing
from samplerzoo.analytic import GaussianMixture
from samplerzoo.noise import SeededNoise
from samplerzoo.noise_schedules import sigma_from_alpha_bar
from samplerzoo.samplers.multistep import (
    deis_weights,
    edm_fitted_vp,
    lagrange_integrals,
    lagrange_quadrature,
)
from samplerzoo.samplers.reference import solve_ode
from samplerzoo.samplers.res import res_multistep_step
from samplerzoo.schedules import SigmaRange, karras

pytestmark = driver.PYTESTMARK


def mixture() -> GaussianMixture:
    """Three well-separated components in 4-D: a curved, non-linear ODE (float64)."""
    means = torch.tensor([[1.0, -0.5, 0.2, 0.0], [-1.2, 0.3, 0.8, -0.4], [0.1, 1.1, -0.9, 0.6]], dtype=torch.float64)
    return GaussianMixture(means, torch.tensor([0.3, 0.2, 0.4], dtype=torch.float64), torch.tensor([0.5, 0.3, 0.2]))


def mixture_start(sigma_max: float, batch: int = 6) -> Tensor:
    return SeededNoise(range(batch), (4,), dtype=torch.float64).randn() * sigma_max


# ----------------------------------------------------------------------------------------------- helpers

@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_lagrange_integrals_are_exact_for_polynomials(n: int) -> None:
    # The weights integrate every polynomial of degree < n exactly: int_a^b tau^p = (b^(p+1) - a^(p+1)) / (p+1).
    nodes = torch.tensor([3.0, 2.2, 1.7, 0.9][:n], dtype=torch.float64)
    a, b = nodes[0], torch.tensor(0.4, dtype=torch.float64)
    weights = lagrange_integrals(nodes, a, b)
    for p in range(n):
        exact = (b ** (p + 1) - a ** (p + 1)) / (p + 1)
        torch.testing.assert_close((weights * nodes**p).sum(), exact, rtol=1e-14, atol=1e-14)


def test_lms_warm_up_caps_the_asymptotic_order() -> None:
    # Interior steps are 4th order, but the first (Euler) step's O(h^2) local error eventually dominates:
    # the observed order rises above 3 on 8..64 steps, then falls towards 2 (why lms declares order 3).
    spec = get_sampler("lms")
    errors = [testing.global_error(spec, n) for n in (32, 64, 256, 512)]
    assert math.log2(errors[0] / errors[1]) > 3.3
    assert math.log2(errors[2] / errors[3]) < 2.8


def test_lagrange_quadrature_matches_the_closed_form() -> None:
    nodes = torch.tensor([3.0, 2.2, 1.7, 0.9], dtype=torch.float64)
    a, b = nodes[0], torch.tensor(2.5, dtype=torch.float64)
    torch.testing.assert_close(lagrange_quadrature(nodes, a, b, torch.ones_like), lagrange_integrals(nodes, a, b),
                               rtol=1e-14, atol=1e-15)


def test_deis_time_is_the_vp_sde_fitted_to_edm_sigmas() -> None:
    # ContinuousVP.sigma forms exp(.) - 1 (not expm1): at sigma = 0.002 that costs ~1e-16 / sigma^2 = 3e-11.
    vp = edm_fitted_vp()
    torch.testing.assert_close(vp.sigma(torch.tensor([1e-3, 1.0], dtype=torch.float64)),
                               torch.tensor([0.002, 80.0], dtype=torch.float64), rtol=1e-10, atol=0)


@pytest.mark.parametrize("variable", ["t", "rho", "log_rho"])
@pytest.mark.parametrize("k", [2, 3])
def test_deis_weights_integrate_polynomials_in_their_variable(variable: str, k: int) -> None:
    # sum_j w_j p(v(s_{i-j})) = int_{s_i}^{s_{i+1}} p(v(sigma)) d sigma for deg p < k, the right side by scipy quad in
    # sigma itself (no change of variables).
    from scipy.integrate import quad

    vp = edm_fitted_vp()
    to_variable = {"t": lambda s: vp.t(s), "rho": lambda s: s, "log_rho": lambda s: s.log()}[variable]
    sigmas, i = torch.tensor([14.0, 9.0, 6.5, 4.0], dtype=torch.float64), 2
    weights = deis_weights(variable, vp)(sigmas, i, k)
    nodes = to_variable(sigmas[i - k + 1:i + 1].flip(0))
    for p in range(k):
        exact, _ = quad(lambda s, p=p: float(to_variable(torch.tensor(s, dtype=torch.float64))) ** p,
                        float(sigmas[i]), float(sigmas[i + 1]), epsabs=0, epsrel=1e-13)
        torch.testing.assert_close((weights * nodes**p).sum().item(), exact, rtol=1e-12, atol=1e-12)


UNIFORM = torch.linspace(10.0, 0.5, 9, dtype=torch.float64)
# id -> (sampler, options, same as sampler, options, sigmas): equalities that follow from the definitions.
EQUIVALENT = {
    # Exact variable-step weights reduce to the fixed ones on uniform steps.
    "ipndm_v=ipndm_on_uniform_steps": ("ipndm_v", {}, "ipndm", {}, torch.cat([UNIFORM, UNIFORM.new_zeros(1)])),
    # Above sigma = 0 they differ only in the name (lms extrapolates to 0, ipndm_v returns D there).
    "ipndm_v=lms_above_zero": ("ipndm_v", {}, "lms", {}, karras(9, SigmaRange(0.05, 20.0))[:-1]),
    # DEIS with eps interpolated in rho = sigma is lms.
    "deis_rho=lms_above_zero": ("deis", {"variable": "rho", "order": 3}, "lms", {"order": 3},
                                karras(9, SigmaRange(0.05, 20.0))[:-1]),
    "lms_order1=euler": ("lms", {"order": 1}, "euler", {}, karras(9, SigmaRange(0.05, 20.0))),
    "heun_2nd_order_final=heun_above_zero": ("heun_2nd_order_final", {}, "heun", {},
                                             karras(7, SigmaRange(0.05, 20.0))[:-1]),
}


@pytest.mark.parametrize("case", EQUIVALENT)
def test_equivalent_samplers(case: str) -> None:
    first, first_options, second, second_options, sigmas = EQUIVALENT[case]
    model, x = mixture(), mixture_start(float(sigmas[0]))
    torch.testing.assert_close(get_sampler(first).fn(model, x, sigmas, **first_options),
                               get_sampler(second).fn(model, x, sigmas, **second_options), rtol=0, atol=1e-12)


FIXED_STEP = ["lms", "ipndm", "ipndm_v", "deis", "plms", "pndm", "res_multistep", "heun_2nd_order_final"]


@pytest.mark.parametrize("name", FIXED_STEP)
def test_callback_sees_every_step_once(name: str) -> None:
    model, sigmas = mixture(), karras(6, SigmaRange(0.05, 20.0))
    seen: list[tuple[int, float]] = []
    get_sampler(name).fn(model, mixture_start(20.0), sigmas,
                         callback=lambda info: seen.append((info["i"], float(info["sigma"]))))
    assert seen == [(i, float(s)) for i, s in enumerate(sigmas[:-1])]


# ------------------------------------------------------------------------------------------ k-diffusion

# id -> (our sampler, our options, k-diffusion function, its options, tolerance)
K_CASES: dict[str, tuple[str, dict[str, Any], str, dict[str, Any], float]] = {
    **{f"lms_order{o}": ("lms", {"order": o}, "sample_lms", {"order": o}, 1e-12) for o in (1, 2, 3, 4)},
}


@pytest.mark.parametrize("to_zero", [True, False])
@pytest.mark.parametrize("case", K_CASES)
def test_k_diffusion_agreement(k_sampling: types.ModuleType, case: str, to_zero: bool) -> None:
    sampler, options, k_name, k_options, tol = K_CASES[case]
    model = mixture()
    sigmas = karras(12, SigmaRange(0.02, 20.0))
    sigmas = sigmas if to_zero else sigmas[:-1]
    x = mixture_start(20.0)
    ours = get_sampler(sampler).fn(model, x, sigmas, **options)
    theirs = getattr(k_sampling, k_name)(model, x, sigmas, disable=True, **k_options)
    diff = float((ours - theirs).abs().max())
    print(f"{case}: max |ours - k-diffusion| = {diff:.2e}")
    assert diff <= tol


# -------------------------------------------------------------------------------------------- diffusers

class DiffusersCase(NamedTuple):
    """One comparison. ``frame``: "sigma" for k-diffusion-style schedulers (x = x0 + sigma n, our schedules rebuild
    their sigmas), "vp" for those stepping x_vp = x / sqrt(1 + sigma^2) at integer timesteps: we step through
    the trained sigma at each of their timesteps, then to their final level (0, or the table's first level for
    DEIS), and compare x_vp."""

    sampler: str
    options: dict[str, Any]
    scheduler: str
    config: dict[str, Any]
    frame: str = "sigma"
    spacings: tuple[tuple[str, int], ...] = (driver.TRAILING,)
    steps: tuple[int, ...] = driver.STEPS
    step_kwargs: Mapping[str, Any] = MappingProxyType({})
    sigma_to_t: str = "linear"
    midpoints: bool = False
    """Pass PNDM's Runge-Kutta midpoints: the trained levels at timesteps t_i - (T // N) // 2."""
    float64_table: bool = False
    """Hand the scheduler our float64 sigmas (the same levels) in place of its float32 table. DEIS's closed-form
    3rd-order coefficients are differences of O(rho / h^2) terms; in float32 they cancel to ~1e-4 of the sample
    at 25 steps (1.6e-4 seen with trailing spacing), in float64 the agreement is 2-3e-6."""


ALL_SPACINGS = (driver.LEADING, driver.LEADING_OFFSET, driver.TRAILING, driver.LINSPACE)
THRESHOLDING = {"thresholding": True, "dynamic_thresholding_ratio": 0.9, "sample_max_value": 1.5}
"""Our options and diffusers' config alike (|D| reaches ~4 on the driver's network, so the threshold binds)."""
DIFFUSERS_CASES = {
    "lms": DiffusersCase("lms", {"order": 4}, "LMSDiscreteScheduler", {}, spacings=ALL_SPACINGS),
    "lms_order2": DiffusersCase("lms", {"order": 2}, "LMSDiscreteScheduler", {}, step_kwargs={"order": 2}),
    # diffusers' DEIS is the log-rho variant; it lowers the order of its last two steps only below 15 steps.
    **{f"deis{o}": DiffusersCase("deis", {"order": o, "variable": "log_rho"}, "DEISMultistepScheduler",
                                 {"solver_order": o, "lower_order_final": False}, "vp", ALL_SPACINGS,
                                 float64_table=o == 3)
       for o in (1, 2, 3)},
    # Dynamic thresholding: diffusers thresholds x0 and integrates the eps read off it, as thresholding our D does.
    "deis3_thresholding": DiffusersCase(
        "deis", {"order": 3, "variable": "log_rho", **THRESHOLDING}, "DEISMultistepScheduler",
        {"solver_order": 3, "lower_order_final": False, **THRESHOLDING}, "vp", ALL_SPACINGS, float64_table=True),
    "deis3_lower_order_final": DiffusersCase(
        "deis", {"order": 3, "variable": "log_rho", "lower_order_final": True}, "DEISMultistepScheduler",
        {"solver_order": 3, "lower_order_final": True}, "vp", steps=(5, 10), float64_table=True),
    # PNDM/PLMS step from t to t - T // N: the next timestep for leading spacing, and for trailing when N divides T
    # (10, 25; below that trailing starts at t = 999, sigma = 157, where float32 cancellation in x - sigma eps
    # alone costs ~1e-4 in either frame).
    "plms": DiffusersCase("plms", {}, "PNDMScheduler", {"skip_prk_steps": True, "set_alpha_to_one": True}, "vp",
                          (driver.LEADING, driver.LEADING_OFFSET), (1, 2, 3, 10, 25)),
    "plms_trailing": DiffusersCase("plms", {}, "PNDMScheduler", {"skip_prk_steps": True, "set_alpha_to_one": True},
                                   "vp", (driver.TRAILING,)),
    "pndm": DiffusersCase("pndm", {}, "PNDMScheduler", {"skip_prk_steps": False, "set_alpha_to_one": True}, "vp",
                          (driver.LEADING, driver.LEADING_OFFSET, driver.TRAILING), (4, 10, 25), midpoints=True),
}


def vp_timesteps(scheduler: Any) -> Tensor:
    """The timestep of each step (PNDM's ``timesteps`` also lists its Runge-Kutta stages and repeats)."""
    if type(scheduler).__name__ == "PNDMScheduler":
        return torch.as_tensor(scheduler._timesteps).flip(0).long()
    return scheduler.timesteps.long()


def vp_sigmas(model: Any, scheduler: Any) -> tuple[Tensor, Tensor]:
    """Ours and theirs for a VP-frame scheduler: the trained level of each timestep, then the final level (PNDM
    with set_alpha_to_one: 0; DEIS: the table's first level)."""
    ours = model.sigma_table[vp_timesteps(scheduler)]
    if type(scheduler).__name__ == "PNDMScheduler":
        theirs = sigma_from_alpha_bar(scheduler.alphas_cumprod[vp_timesteps(scheduler)]).to(torch.float64)
        return torch.cat([ours, ours.new_zeros(1)]), torch.cat([theirs, theirs.new_zeros(1)])
    return torch.cat([ours, model.sigma_table[:1]]), scheduler.sigmas


@pytest.mark.parametrize(("case", "spacing", "steps_offset", "n"), [
    (case, spacing, offset, n)
    for case, spec in DIFFUSERS_CASES.items() for spacing, offset in spec.spacings for n in spec.steps])
def test_diffusers_agreement(case: str, spacing: str, steps_offset: int, n: int) -> None:
    import diffusers

    spec = DIFFUSERS_CASES[case]
    scheduler = getattr(diffusers, spec.scheduler)(**driver.BETAS, **spec.config, timestep_spacing=spacing,
                                                   steps_offset=steps_offset)
    scheduler.set_timesteps(n)
    our_net, model = driver.our_model(spec.sigma_to_t)
    if spec.frame == "sigma":
        sigmas, their_sigmas = driver.our_sigmas(model, n, spacing, steps_offset), scheduler.sigmas
        start, end = float(scheduler.init_noise_sigma), 1.0
    else:
        sigmas, their_sigmas = vp_sigmas(model, scheduler)
        if spec.float64_table:
            scheduler.sigmas = sigmas.clone()
        start, end = float((1 + sigmas[0] ** 2).sqrt()), float((1 + sigmas[-1] ** 2).rsqrt())
    options = dict(spec.options)
    if spec.midpoints:
        options["midpoints"] = model.sigma_table[vp_timesteps(scheduler)[:3] - driver.T // n // 2]
    their_net = driver.EpsNet()
    theirs = driver.sample_diffusers(scheduler, their_net, **spec.step_kwargs)
    ours, _ = driver.sample_ours(spec.sampler, model, sigmas, start, **options)
    driver.assert_agreement(spec.sampler, sigmas, their_sigmas, ours * end, theirs, our_net, their_net, **options)


# IPNDMScheduler is diffusers' continuous-time v-diffusion scheduler, so it gets its own frame mapping:
# * alpha_t = cos-like, sigma_vp = sin^2(pi u / 2) on u = 1 - k/N, alpha = sqrt(1 - sigma_vp^2); the network
#   (a v-predictor) sees x_vp and t = atan2(sigma_vp, alpha) * 2 / pi. In the sigma frame sigma = sigma_vp / alpha
#   = tan(pi t / 2) and x = x_vp / alpha; its eps = sigma_vp x_vp + alpha v is our slope d, and its step
#   x_vp' = alpha' x0 + sigma_vp' eps_AB is x' = x + (sigma' - sigma) eps_AB: iPNDM in sigma.
# * It starts at t = 1, sigma = inf (alpha = 0), where it takes x0 = 0 whatever the network says (0 / max(0, 1e-8)).
#   We start at sigma_0 = 1e6 from x = sigma_0 x_T, with a network whose v, hence x0, vanishes at t = 1: the first
#   step then agrees to O(1/sigma_0). float64 on both sides, but diffusers' alpha/sigma tables are float32
#   (relative error 6e-8 on coefficients multiplying |x| up to ~20): hence IPNDM_ATOL = 1e-5 (3.4e-6 seen).
# * It takes the Adams-Bashforth step to t = 0 too (x0 from the combined eps), where diff-sampler's iPNDM returns
#   D: our option denoise_to_zero=False.
IPNDM_SIGMA_START, IPNDM_ATOL = 1e6, 1e-5


class VDiffusion:
    """Continuous cosine-like VP conditioning: c_in = alpha = 1/sqrt(1 + sigma^2), c_noise = atan(sigma) 2/pi."""

    sigma_min, sigma_max, sigma_data, sigma_table = 1e-3, IPNDM_SIGMA_START, 1.0, None

    def c_in(self, sigma: Tensor) -> Tensor:
        return (1 + sigma**2).rsqrt()

    def c_noise(self, sigma: Tensor) -> Tensor:
        return sigma.atan() * 2 / math.pi


class VNet(driver.EpsNet):
    """A smooth v-"network" of (x_vp, t in [0, 1]) vanishing at t = 1 (see above); records its timesteps."""

    def __call__(self, x: Tensor, t: Tensor) -> Tensor:
        t = torch.as_tensor(t).to(x.dtype).reshape(-1, *[1] * (x.ndim - 1))
        self.timesteps.append(float(t.flatten()[0]))
        return (1 - t) ** 2 * (0.8 * x + 0.2 * torch.tanh(x) * torch.cos(3 * t) + 0.3 * torch.sin(5 * t))


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 10, 25])
def test_diffusers_ipndm_agreement(n: int) -> None:
    from diffusers import IPNDMScheduler

    from samplerzoo.adapters import NetworkDenoiser

    scheduler = IPNDMScheduler()
    scheduler.set_timesteps(n)
    u = torch.linspace(1, 0, n + 1, dtype=torch.float64)
    sigma_vp = torch.sin(u * math.pi / 2) ** 2
    sigmas = sigma_vp / (1 - sigma_vp**2).sqrt()
    sigmas[0] = IPNDM_SIGMA_START

    x_T = torch.randn(driver.SHAPE, generator=torch.Generator().manual_seed(driver.SEED), dtype=torch.float64)
    their_net, our_net = VNet(), VNet()
    x = x_T.clone()
    for t in scheduler.timesteps:
        x = scheduler.step(their_net(x, t), t, x).prev_sample
    ours = get_sampler("ipndm").fn(NetworkDenoiser(our_net, "v", VDiffusion()), x_T * IPNDM_SIGMA_START, sigmas,
                                   denoise_to_zero=False)
    torch.testing.assert_close(torch.tensor(our_net.timesteps), torch.tensor(their_net.timesteps), rtol=0, atol=1e-6)
    diff = float((ours - x).abs().max())
    print(f"ipndm n={n}: max |ours - diffusers| = {diff:.2e}")
    assert our_net.calls == their_net.calls == n and diff <= IPNDM_ATOL


# ----------------------------------------------------------------------------- Runge-Kutta and reference solvers

def local_order_to_zero(sampler: str, sigmas: tuple[float, ...] = (0.4, 0.2, 0.1, 0.05)) -> float:
    """Slope of log(error) against log(s) of one step s -> 0 started on the exact Gaussian trajectory."""
    problem = testing.gaussian_problem()
    x = mixture_start(10.0)
    errors = []
    for s in sigmas:
        start = problem.ode_solution(x, 10.0, s)
        end = get_sampler(sampler).fn(problem, start, torch.tensor([s, 0.0], dtype=torch.float64))
        errors.append(float((end - problem.ode_solution(x, 10.0, 0.0)).abs().max()))
    return math.log(errors[0] / errors[-1]) / math.log(sigmas[0] / sigmas[-1])


def test_heun_2nd_order_final_is_second_order_on_the_step_to_zero() -> None:
    # Local error of one step h: O(h^2) for heun's final Euler step, at least O(h^3) for a 2nd-order step (the
    # midpoint rule). Here it is even higher (5.6 seen): trajectories are even functions of sigma (D depends on
    # sigma^2), x(s) = x(0) + a s^2 + ..., and the midpoint rule from s to 0 cancels the s^2 term.
    assert local_order_to_zero("heun_2nd_order_final") > 2.7
    assert abs(local_order_to_zero("heun") - 2) < 0.3


@pytest.mark.parametrize("tol", [1e-6, 1e-10])
def test_solve_ode_matches_the_gaussian_closed_form(tol: float) -> None:
    problem, x = testing.gaussian_problem(), mixture_start(80.0, batch=8)
    solution = solve_ode(problem, x, 80.0, 0.002, rtol=tol, atol=tol)
    error = float((solution.x - problem.ode_solution(x, 80.0, 0.002)).abs().max())
    print(f"dopri5 tol={tol:.0e}: max error {error:.2e} in {solution.nfe} evaluations")
    assert error < 100 * tol  # global error ~ tolerance (the final |x| ~ 0.5, so atol dominates)


def torchdiffeq_dopri5(model: GaussianMixture, x: Tensor, sigma_from: float, sigma_to: float, tol: float) -> Tensor:
    from torchdiffeq import odeint

    def slope(u: Tensor, x: Tensor) -> Tensor:  # in log sigma, like ours (in sigma it takes ~3x the steps)
        return x - model(x, u.exp() * x.new_ones(x.shape[0]))

    times = torch.tensor([sigma_from, sigma_to], dtype=torch.float64).log()
    return odeint(slope, x, times, rtol=tol, atol=tol, method="dopri5")[-1]


def scipy_rk45(model: GaussianMixture, x: Tensor, sigma_from: float, sigma_to: float, tol: float) -> Tensor:
    from scipy.integrate import solve_ivp

    def slope(u: float, y: Any) -> Any:  # in log sigma, like ours
        xs = torch.from_numpy(y).reshape(x.shape)
        return (xs - model(xs, torch.full((x.shape[0],), math.exp(u), dtype=torch.float64))).numpy().ravel()

    result = solve_ivp(slope, (math.log(sigma_from), math.log(sigma_to)), x.numpy().ravel(), method="RK45",
                       rtol=tol, atol=tol)
    return torch.from_numpy(result.y[:, -1]).reshape(x.shape)


# id -> (reference solver, rtol = atol for both). Each solver's global error is a small multiple of its tolerance
# (ours: 0.9x at 1e-6, 0.3x at 1e-10 on the Gaussian), and they control it differently (torchdiffeq: one norm over
# the whole batch), so they must agree to ODE_AGREEMENT x tolerance.
ODE_REFERENCES = {"torchdiffeq_dopri5": (torchdiffeq_dopri5, 1e-9), "scipy_rk45": (scipy_rk45, 1e-9)}
ODE_AGREEMENT = 100


@pytest.mark.parametrize("case", ODE_REFERENCES)
def test_solve_ode_agrees_with_reference_solvers(case: str) -> None:
    reference, tol = ODE_REFERENCES[case]
    model, x = mixture(), mixture_start(20.0)
    ours = solve_ode(model, x, 20.0, 0.01, rtol=tol, atol=tol).x
    diff = float((ours - reference(model, x, 20.0, 0.01, tol)).abs().max())
    print(f"dopri5 vs {case}: max difference {diff:.2e}")
    assert diff < ODE_AGREEMENT * tol


def test_dopri5_sampler_ends_with_the_denoised_sample_at_zero() -> None:
    model, x = mixture(), mixture_start(20.0)
    sigmas = karras(5, SigmaRange(0.05, 20.0))
    seen: list[int] = []
    ours = get_sampler("rk45").fn(model, x, sigmas, rtol=1e-4, atol=1e-4, callback=lambda info: seen.append(info["i"]))
    last = float(sigmas[-2])
    solution = solve_ode(model, x, float(sigmas[0]), last, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(ours, model(solution.x, torch.full((x.shape[0],), last, dtype=torch.float64)),
                               rtol=0, atol=0)
    assert seen == list(range(len(seen))) and len(seen) > 1


def test_solve_ode_rejects_sigma_zero() -> None:
    with pytest.raises(ValueError, match="positive sigmas"):
        solve_ode(mixture(), mixture_start(1.0), 1.0, 0.0)


def test_solve_ode_stops_on_a_non_finite_denoiser() -> None:
    def broken(x: Tensor, sigma: Tensor) -> Tensor:
        return torch.where(sigma.reshape(-1, 1) < 1.0, torch.nan, x * 0.5)

    with pytest.raises(FloatingPointError, match="non-finite"):
        solve_ode(broken, mixture_start(1.0), 10.0, 0.1)  # type: ignore[arg-type]


@pytest.mark.parametrize("sigmas", [(3.0, 2.0, 1.1), (20.0, 5.0, 4.5), (0.3, 0.1, 0.02)])
def test_res_multistep_step_integrates_the_interpolant_exactly(sigmas: tuple[float, float, float]) -> None:
    # x' = e^{-h} x + int_{lambda_i}^{lambda_i+1} e^{-(lambda_i+1 - tau)} P(tau) dtau, P the line through
    # (lambda_{i-1}, D_{i-1}) and (lambda_i, D_i): by Gauss-Legendre on the Lagrange basis, not by phi functions.
    sigma_prev, sigma, sigma_next = (torch.tensor(s, dtype=torch.float64) for s in sigmas)
    x, denoised, old_denoised = mixture_start(1.0, batch=3).unbind()
    ours = res_multistep_step(x, denoised, old_denoised, (sigma_prev / sigma).log(), sigma, sigma_next)
    lam = -torch.stack([sigma, sigma_prev]).log()
    lam_next = -sigma_next.log()
    weights = lagrange_quadrature(lam, lam[0], lam_next, lambda tau: (tau - lam_next).exp())
    expected = (sigma_next / sigma) * x + weights[0] * denoised + weights[1] * old_denoised
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-14)
