"""Paper-derived laws of the stochastic samplers that have no external reference, on a Gaussian target.

On N(mu, s^2) each of these samplers is an affine map of its start and its noise draws, so its exact law (the
offset, gain and noise variance of x_out | x_start: :func:`samplerzoo.laws.affine_law`) is compared, to 1e-12, with
the law its paper's algorithm gives, written out here as a recursion on those three numbers, or with a closed form.
The recursions use only the algorithms' definitions and Euler's, Heun's and DPM-Solver-2's steps on the Gaussian's
linear ODE dx/dsigma = sigma (x - mu) / (s^2 + sigma^2), never the samplers' code; ``sample_moments`` checks, within
standard errors, that real noise gives that law.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from torch import Tensor

from samplerzoo import get_sampler, laws, testing
from samplerzoo.analytic import Gaussian
from samplerzoo.schedules import SigmaRange, karras

MEAN, STD = 0.3, 0.5  # testing.gaussian_problem(), per coordinate
RANGE = testing.LAW_RANGE  # testing.sample_moments' schedule
EXACT = 1e-12


def exact_law(name: str, steps: int, **options: Any) -> tuple[float, float]:
    """Exact mean and std of the sampler's output on N(MEAN, STD^2), started from N(0, sigma_0^2) as usual."""
    sigmas = karras(steps, RANGE)
    mean, var = laws.affine_law(get_sampler(name), sigmas, **options).marginal(0.0, float(sigmas[0]) ** 2)
    return mean, math.sqrt(var)


# ------------------------------------------------------------------------ the steps, on the Gaussian's ODE

def slope(sigma: float) -> float:
    """dx/dsigma = (x - D(x, sigma)) / sigma = slope(sigma) (x - mu) on N(mu, s^2)."""
    return sigma / (STD**2 + sigma**2)


def euler_gain(sigma: float, sigma_next: float) -> float:
    """What an Euler step multiplies x - mu by."""
    return 1 + (sigma_next - sigma) * slope(sigma)


def heun_gain(sigma: float, sigma_next: float) -> float:
    """Heun's step (Karras et al. 2022, Alg. 1): the mean of the slopes at x and at the Euler point; Euler to 0."""
    if sigma_next == 0:
        return euler_gain(sigma, sigma_next)
    return 1 + (sigma_next - sigma) / 2 * (slope(sigma) + slope(sigma_next) * euler_gain(sigma, sigma_next))


def dpm2_gain(sigma: float, sigma_next: float) -> float:
    """DPM-Solver-2 (Lu et al. 2022, Alg. 1, r = 1/2, in sigma): the slope at the log-sigma midpoint; Euler to 0."""
    if sigma_next == 0:
        return euler_gain(sigma, sigma_next)
    mid = math.sqrt(sigma * sigma_next)
    return 1 + (sigma_next - sigma) * slope(mid) * euler_gain(sigma, mid)


@dataclass
class Recursion:
    """x_out = mu + centre + gain x_start + N(0, noise_var), step by step (start: x_out = x_start)."""

    centre: float = -MEAN
    gain: float = 1.0
    noise_var: float = 0.0

    def step(self, factor: float) -> None:
        """A deterministic step: x - mu is multiplied by ``factor``."""
        self.centre, self.gain, self.noise_var = factor * self.centre, factor * self.gain, factor**2 * self.noise_var

    def add_noise(self, variance: float) -> None:
        self.noise_var += variance

    def solve(self, levels: list[float], gain: Callable[[float, float], float]) -> None:
        for sigma, sigma_next in itertools.pairwise(levels):
            self.step(gain(sigma, sigma_next))

    def law(self) -> laws.AffineLaw:
        return laws.AffineLaw(MEAN + self.centre, self.gain, self.noise_var)


def assert_same_law(law: laws.AffineLaw, expected: laws.AffineLaw) -> None:
    gaps = [abs(law.offset - expected.offset), abs(law.gain - expected.gain), abs(law.noise_var - expected.noise_var)]
    assert max(gaps) < EXACT, (law, expected)


def schedule(steps: int, to_zero: bool) -> list[float]:
    return [float(s) for s in laws.gaussian_schedule(steps, to_zero)]


# ------------------------------------------------------------------------------------ EDM's churn (Alg. 2)

def churn_law(sigmas: list[float], gain: Callable[[float, float], float], s_churn: float, s_tmin: float = 0.0,
              s_tmax: float = math.inf, s_noise: float = 1.0) -> laws.AffineLaw:
    """Karras et al. 2022, Alg. 2: before step i, if S_tmin <= sigma_i <= S_tmax, raise sigma_i to sigma_hat =
    (1 + gamma) sigma_i, gamma = min(S_churn / N, sqrt(2) - 1), by adding N(0, S_noise^2 (sigma_hat^2 - sigma_i^2));
    then step from sigma_hat to sigma_{i+1}."""
    law, gamma = Recursion(), min(s_churn / (len(sigmas) - 1), math.sqrt(2) - 1)
    for sigma, sigma_next in itertools.pairwise(sigmas):
        sigma_hat = sigma * (1 + gamma) if s_tmin <= sigma <= s_tmax else sigma
        law.add_noise(s_noise**2 * (sigma_hat**2 - sigma**2))
        law.step(gain(sigma_hat, sigma_next))
    return law.law()


CHURN_CASES: dict[str, tuple[str, dict[str, float], Callable[[float, float], float]]] = {
    "edm": ("edm", {}, heun_gain),  # its defaults: S_churn 40, S_tmin 0.05, S_tmax 50, S_noise 1.003
    "heun": ("heun", {"s_churn": 10.0, "s_tmin": 0.1, "s_tmax": 5.0}, heun_gain),
    "euler": ("euler", {"s_churn": 80.0, "s_noise": 1.01}, euler_gain),  # gamma capped at sqrt(2) - 1
    "dpm2": ("dpm2", {"s_churn": 10.0, "s_tmin": 0.05}, dpm2_gain),
}
EDM_DEFAULTS = {"s_churn": 40.0, "s_tmin": 0.05, "s_tmax": 50.0, "s_noise": 1.003}  # Karras et al. 2022, Table 5


@pytest.mark.parametrize("to_zero", [True, False])
@pytest.mark.parametrize("case", CHURN_CASES)
def test_churn_law_is_karras_algorithm_2(case: str, to_zero: bool) -> None:
    name, options, gain = CHURN_CASES[case]
    for steps in (12, 150):  # gamma = S_churn / N is capped at sqrt(2) - 1 below N = 97 for EDM's S_churn = 40
        sigmas = schedule(steps, to_zero)
        expected = churn_law(sigmas, gain, **(EDM_DEFAULTS if name == "edm" else options))
        assert_same_law(laws.affine_law(get_sampler(name), torch.tensor(sigmas, dtype=torch.float64), **options),
                        expected)


# ------------------------------------------------------------------------------------- Restart (Alg. 1)

def restart_law(sigmas: list[float], n_restart: int = 3, k: int = 2, t_min: float = 0.06, t_max: float = 0.30,
                t_max_jump: bool = False) -> laws.AffineLaw:
    """Xu et al. 2023, Alg. 1 with Heun: down the main schedule to the positive level nearest t_min (after the first;
    their code snaps t_min to the schedule), then K times: jump forward to t_max, x + N(0, t_max^2 - t_min^2), and
    Heun back down N_restart rho-spaced levels (Karras et al.'s Eq. 5, rho = 7); then on down the schedule.
    ``t_max_jump`` makes the jump's variance t_max^2: the bug the check must catch."""
    positive = [i for i in range(1, len(sigmas)) if sigmas[i] > 0]
    i = min(positive, key=lambda j: abs(sigmas[j] - t_min))
    law = Recursion()
    law.solve(sigmas[:i + 1], heun_gain)
    levels = [float(s) for s in karras(n_restart, SigmaRange(sigmas[i], t_max))[:-1]]
    for _ in range(k):
        law.add_noise(t_max**2 - (0 if t_max_jump else sigmas[i] ** 2))
        law.solve(levels, heun_gain)
    law.solve(sigmas[i:], heun_gain)
    return law.law()


@pytest.mark.parametrize("to_zero", [True, False])
@pytest.mark.parametrize("restarts", [None, (5, 1, 0.1, 1.0)])
def test_restart_law_is_xu_et_al_algorithm_1(restarts: tuple[int, int, float, float] | None, to_zero: bool) -> None:
    options = {} if restarts is None else {"restarts": (restarts,)}
    for steps in (10, 40):
        sigmas = schedule(steps, to_zero)
        law = laws.affine_law(get_sampler("restart"), torch.tensor(sigmas, dtype=torch.float64), **options)
        assert_same_law(law, restart_law(sigmas, *(restarts or ())))
        # A jump of std t_max instead of sqrt(t_max^2 - t_min^2) moves the output's std by ~1e-4: far above 1e-12.
        wrong = restart_law(sigmas, *(restarts or ()), t_max_jump=True)
        assert abs(wrong.noise_var - law.noise_var) > 1e-5, (wrong, law)


def test_restart_default_interval_keeps_its_backward_passes_error() -> None:
    # The default interval's K = 2 backward passes take N_restart - 1 = 2 Heun steps over [0.06, 0.30] at any
    # step count, so their error stays as the main schedule is refined: from the exact marginal at sigma 20 the std
    # settles 3.4e-3 above the exact process's (0.5033 vs 0.4999, at 200 and 800 steps alike), where Heun's error
    # vanishes. It is second order in the backward step: 5 levels leave 1.0e-3, 9 levels 2.6e-4.
    def std(steps: int, n_restart: int = 3) -> float:
        sigmas = laws.gaussian_schedule(steps, True)
        law = laws.affine_law(get_sampler("restart"), sigmas, restarts=((n_restart, 2, 0.06, 0.30),))
        return math.sqrt(law.marginal(MEAN, STD**2 + float(sigmas[0]) ** 2)[1])

    exact = STD**2 / math.sqrt(STD**2 + RANGE.sigma_min**2)  # D at sigma_min of the exact marginal there
    bias = [std(steps) - exact for steps in (200, 800)]
    assert 3e-3 < bias[0] < 4e-3 and abs(bias[0] - bias[1]) < 1e-4, bias
    finer = [std(200, n) - exact for n in (5, 9)]
    assert 3 < bias[0] / finer[0] < 4.5 and 3 < finer[0] / finer[1] < 4.5, (bias, finer)


def test_edm_s_noise_inflates_the_variance_by_its_excess_noise() -> None:
    # S_noise = 1.003 adds (S_noise^2 - 1) ~ 0.6% more churn variance than the SDE: a small, positive excess
    # over the S_noise = 1 law that does not vanish as steps grow (S_churn fixes the total churn): 1.5e-3 measured.
    for steps in (50, 200):
        (_, std), (_, std_1) = exact_law("edm", steps), exact_law("edm", steps, s_noise=1.0)
        assert 0 < std - std_1 < 0.003, (steps, std, std_1)


@pytest.mark.parametrize(("name", "options"), [
    ("dpm2_ancestral", {}), ("edm", {}), ("euler_maruyama", {"form": "vp"}), ("langevin", {"n_steps_each": 2}),
    ("restart", {"restarts": ((3, 2, 0.06, 1.0),)})])
def test_samples_follow_the_exact_law(name: str, options: dict[str, Any]) -> None:
    # 4000 samples x 4 independent coordinates: standard errors 0.5 / sqrt(16000) = 0.004 (mean) and
    # 0.5 / sqrt(32000) = 0.003 (std); 4 standard errors allowed.
    mean, std = testing.sample_moments(get_sampler(name), steps=25, **options)
    law_mean, law_std = exact_law(name, 25, **options)
    assert abs(mean - law_mean) < 0.016 and abs(std - law_std) < 0.012, (mean, law_mean, std, law_std)


def test_restart_contracts_the_main_solver_error() -> None:
    # Xu et al. 2023, Sec. 3: the forward jump + backward ODE contracts the error accumulated before t_min. With
    # an accurate backward pass (17 levels), the std bias of coarse Heun (8 steps: 0.085) shrinks with each
    # restart (measured 0.019, 0.0050, 0.0014 for K = 1, 2, 4), down to the backward pass's own error.
    _, heun_std = exact_law("heun", 8)
    bias = [exact_law("restart", 8, restarts=((17, k, 0.06, 1.0),))[1] - STD for k in (1, 2, 4)]
    assert heun_std - STD > bias[0] > bias[1] > bias[2] > 0 and bias[2] < (heun_std - STD) / 20, (heun_std, bias)


# ------------------------------------------------------------------------- pc, VP form (Song et al. Alg. 2)

def vp_score(problem: Gaussian, y: Tensor, sigma: float) -> Tensor:
    """grad log p of the VP-frame marginal at y = x / c, c = sqrt(1 + sigma^2): c times the sigma frame's score."""
    c = math.sqrt(1 + sigma**2)
    x = c * y
    return c * (problem(x, torch.full((len(x),), sigma, dtype=x.dtype)) - x) / sigma**2


def song_pc_vp(problem: Gaussian, x: Tensor, sigmas: Tensor, draws: list[Tensor], snr: float,
               n_corrector: int) -> Tensor:
    """Song et al. 2021's PC sampler for the VP SDE, written in its own frame y = x / sqrt(1 + sigma^2) as their code
    runs it (pc_sampler: corrector first; LangevinCorrector; ReverseDiffusionPredictor with VPSDE.discretize):
    at level i, alpha = alpha_bar_i / alpha_bar_{i+1} (the next level's alpha_bar is the larger), beta = 1 - alpha;
    the VP score is s = sqrt(1 + sigma^2) (D - x) / sigma^2; corrector y <- y + e s + sqrt(2 e) z with
    e = 2 alpha (snr ||z|| / ||s||)^2; predictor y <- (2 - sqrt(alpha)) y + beta s + sqrt(beta) z, its mean at the
    end. Per-sample norms (theirs average over the batch)."""
    noise = iter(draws)
    c = float((1 + sigmas[0] ** 2).sqrt())
    y = x / c
    for sigma, sigma_next in itertools.pairwise(sigmas.tolist()):
        alpha = (1 + sigma_next**2) / (1 + sigma**2)
        for _ in range(n_corrector):
            s, z = vp_score(problem, y, sigma), next(noise)
            e = 2 * alpha * (snr * z.norm(dim=1, keepdim=True) / s.norm(dim=1, keepdim=True)) ** 2
            y = y + e * s + (2 * e).sqrt() * z
        y = (2 - math.sqrt(alpha)) * y + (1 - alpha) * vp_score(problem, y, sigma)
        if sigma_next > 0:
            y = y + math.sqrt(1 - alpha) * next(noise)
    return y * math.sqrt(1 + float(sigmas[-1]) ** 2)


@pytest.mark.parametrize("to_zero", [True, False])
@pytest.mark.parametrize("n_corrector", [0, 1, 2])  # 0: euler_maruyama's VP form
def test_pc_vp_is_song_et_al_in_their_frame(n_corrector: int, to_zero: bool) -> None:
    problem, sigmas = testing.gaussian_problem(), laws.gaussian_schedule(12, to_zero)
    g = torch.Generator().manual_seed(0)
    draws = [torch.randn(3, 4, generator=g, dtype=torch.float64) for _ in range(12 * (n_corrector + 1))]
    x = torch.randn(3, 4, generator=g, dtype=torch.float64) * float(sigmas[0])
    replay = iter(draws)
    ours = get_sampler("pc").fn(problem, x, sigmas, noise=lambda sigma, sigma_next: next(replay), form="vp",
                                n_corrector=n_corrector)
    theirs = song_pc_vp(problem, x, sigmas, draws, 0.16, n_corrector)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-12)


# --------------------------------------------------------------------- Langevin, Analytic-DDPM, and real noise

def langevin_recursion(steps: int, n_steps_each: int = 100, step_lr: float | None = None,
                       denoise_to_zero: bool = True) -> tuple[float, float]:
    """Song & Ermon 2019, Alg. 1 on N(MEAN, STD^2), written out as a recursion on (mean, variance): at each level
    sigma after the start, v = STD^2 + sigma^2 and T steps x <- x + a (MEAN - x) / v + sqrt(2 a) z; then the
    denoising step x <- MEAN + STD^2 / v_L (x - MEAN)."""
    levels = [float(s) for s in karras(steps, RANGE)[1:-1]]
    ratio = 0.2 if step_lr is None else step_lr / levels[-1] ** 2
    mean, var = 0.0, RANGE.sigma_max**2
    for sigma in levels:
        v, a = STD**2 + sigma**2, ratio * sigma**2
        for _ in range(n_steps_each):
            mean, var = mean + a * (MEAN - mean) / v, (1 - a / v) ** 2 * var + 2 * a
    if denoise_to_zero:
        shrink = STD**2 / (STD**2 + levels[-1] ** 2)
        mean, var = MEAN + shrink * (mean - MEAN), shrink**2 * var
    return mean, math.sqrt(var)


@pytest.mark.parametrize("options", [{}, {"n_steps_each": 7, "step_lr": 3e-5}, {"denoise_to_zero": False}])
def test_langevin_law_is_its_recursion(options: dict[str, Any]) -> None:
    (law_mean, law_std), (mean, std) = exact_law("langevin", 12, **options), langevin_recursion(12, **options)
    assert abs(law_mean - mean) < 1e-12 and abs(law_std - std) < 1e-12, (law_mean, mean, law_std, std)


def test_langevin_converges_as_levels_are_added() -> None:
    # Its bias comes from the spacing of the levels (the chain barely mixes at sigma << STD) and halves per
    # doubling of the levels: std bias 0.0064, 0.0031, 0.0015, 0.0007 measured at 25..200 steps (T = 100).
    std_bias = [langevin_recursion(steps)[1] - STD for steps in (25, 50, 100, 200)]
    assert all(coarse >= 1.8 * fine > 0 for coarse, fine in itertools.pairwise(std_bias)), std_bias
    assert std_bias[-1] < 2e-3, std_bias


def test_ddpm_analytic_is_exact_on_a_gaussian() -> None:
    # With the exact Gamma, each step is the true reverse conditional q(x_next | x) (Gaussian data: the posterior
    # of x0 has constant variance), so down to sigma_L the chain samples q(x_L | x_start) exactly, at any step
    # count. x_start = x_L + sqrt(sigma_0^2 - sigma_L^2) n, so with v_L = STD^2 + sigma_L^2 and k = v_L / (STD^2 +
    # sigma_0^2): x_L = MEAN + k (x - MEAN) + N(0, v_L (1 - k)). The last step returns D(x_L) = MEAN + k_L (x_L -
    # MEAN), k_L = STD^2 / v_L (no noise, as DDPM). Started from x ~ N(0, sigma_0^2) (the prior mismatch).
    # (DDPM's fixed_small std is off by 0.32, 0.16, 0.075 at 3, 10, 25 steps.)
    s0, v_L = RANGE.sigma_max, STD**2 + RANGE.sigma_min**2
    k, k_L = v_L / (STD**2 + s0**2), STD**2 / v_L
    mean, std = MEAN - k_L * k * MEAN, k_L * math.sqrt(k**2 * s0**2 + v_L * (1 - k))
    for steps in (2, 5, 25):
        law_mean, law_std = exact_law("ddpm_analytic", steps)
        assert abs(law_mean - mean) < 1e-12 and abs(law_std - std) < 1e-12, (steps, law_mean, law_std)


def test_mean_square_eps_matches_its_closed_form() -> None:
    # eps_hat ~ N(0, Gamma) per coordinate, so the mean of 20000 x 4 squares has relative standard error
    # sqrt(2 / 80000) = 0.5%; 4 standard errors allowed.
    from samplerzoo.samplers.sde import gaussian_mean_square_eps, mean_square_eps

    problem, sigmas = testing.gaussian_problem(), karras(8, RANGE)
    g = torch.Generator().manual_seed(0)
    data = problem.sample(20000, generator=g)
    estimate = mean_square_eps(problem, data, sigmas, lambda sigma, sigma_next: torch.randn(
        data.shape, generator=g, dtype=data.dtype))
    exact = gaussian_mean_square_eps(sigmas, STD)
    assert estimate[-1] == 0 and bool(((estimate[:-1] / exact[:-1] - 1).abs() < 4 * math.sqrt(2 / 80000)).all())
    # The estimated table is as good as the exact one, up to its Monte-Carlo error.
    std_estimated, std_exact = (exact_law("ddpm_analytic", 8, gamma=gamma)[1] for gamma in (estimate, exact))
    assert abs(std_estimated - std_exact) < 0.005, (std_estimated, std_exact)
