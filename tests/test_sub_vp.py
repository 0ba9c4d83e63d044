"""The sub-VP SDE as a noise schedule: its marginals, from the SDE itself, and its sigma-frame view."""

from __future__ import annotations

import math

import torch

from samplerzoo.noise_schedules import SubVP

SCHEDULE = SubVP()


def beta(t: torch.Tensor | float) -> torch.Tensor:
    return SCHEDULE.beta_min + SCHEDULE.beta_d * torch.as_tensor(t, dtype=torch.float64)


def integral(t: float) -> float:
    return SCHEDULE.beta_d * t**2 / 2 + SCHEDULE.beta_min * t


def test_marginal_moments_solve_the_sdes_moment_equations() -> None:
    # dx = -beta/2 x dt + sqrt(beta (1 - e^(-2B))) dw: the mean obeys m' = -beta m / 2 and the variance
    # v' = -beta v + beta (1 - e^(-2B)) (Ito). Integrated by RK4, they must be zeta x0 and (1 - zeta^2)^2.
    def rates(t: float, m: float, v: float) -> tuple[float, float]:
        b = float(beta(t))
        return -b * m / 2, -b * v + b * (1 - math.exp(-2 * integral(t)))

    m, v, t, h = 1.0, 0.0, 0.0, 1e-4
    for _ in range(10_000):
        k1 = rates(t, m, v)
        k2 = rates(t + h / 2, m + h / 2 * k1[0], v + h / 2 * k1[1])
        k3 = rates(t + h / 2, m + h / 2 * k2[0], v + h / 2 * k2[1])
        k4 = rates(t + h, m + h * k3[0], v + h * k3[1])
        m += h / 6 * (k1[0] + 2 * k2[0] + 2 * k3[0] + k4[0])
        v += h / 6 * (k1[1] + 2 * k2[1] + 2 * k3[1] + k4[1])
        t += h
    zeta = math.exp(-integral(1.0) / 2)
    assert math.isclose(m, zeta, rel_tol=1e-9) and math.isclose(v, (1 - zeta**2) ** 2, rel_tol=1e-9)
    # In the sigma frame x / zeta = x0 + sigma n: sigma = sqrt(v) / m.
    assert math.isclose(float(SCHEDULE.sigma(1.0)), math.sqrt(v) / m, rel_tol=1e-9)


def test_euler_maruyama_samples_of_the_sde_have_those_marginals() -> None:
    generator = torch.Generator().manual_seed(0)
    x0, steps, n = 1.3, 1000, 10_000
    x = torch.full((n,), x0, dtype=torch.float64)
    dt = 0.5 / steps
    for i in range(steps):  # up to t = 0.5
        t = i * dt
        drift = -beta(t) / 2 * x
        diffusion = (beta(t) * (1 - math.exp(-2 * integral(t)))).sqrt()
        x = x + drift * dt + diffusion * math.sqrt(dt) * torch.randn(n, generator=generator, dtype=torch.float64)
    zeta = float(SCHEDULE.c_in(SCHEDULE.sigma(0.5)))
    std = 1 - zeta**2
    assert abs(float(x.mean()) - zeta * x0) < 5 * std / math.sqrt(n)
    assert abs(float(x.std()) - std) < 5 * std / math.sqrt(2 * n) + 2e-3  # + the O(dt) Euler-Maruyama bias


def test_sigma_frame_round_trips() -> None:
    t = torch.linspace(1e-5, 1, 50, dtype=torch.float64)
    sigma = SCHEDULE.sigma(t)
    torch.testing.assert_close(SCHEDULE.t(sigma), t, rtol=1e-10, atol=1e-12)
    zeta = torch.exp(-(SCHEDULE.beta_d * t**2 / 2 + SCHEDULE.beta_min * t) / 2)
    torch.testing.assert_close(SCHEDULE.c_in(sigma), zeta, rtol=1e-12, atol=0)
    torch.testing.assert_close(sigma, (1 - zeta**2) / zeta, rtol=1e-10, atol=1e-15)
    torch.testing.assert_close(SCHEDULE.c_noise(sigma), 999 * t, rtol=1e-10, atol=1e-9)
    assert SCHEDULE.sigma_max == float(SCHEDULE.sigma(1.0)) and SCHEDULE.sigma_min < 1e-5
    drawn = SCHEDULE.training_sigmas(1000, torch.Generator().manual_seed(0))
    assert float(drawn.min()) >= SCHEDULE.sigma_min * 0.999 and float(drawn.max()) <= SCHEDULE.sigma_max * 1.001
