"""Shared by the noise tests (tests/ is not a package; conftest puts this folder on sys.path): SplitMix64 on Python
integers, and statistical checks of standard normal noise, each figure within Z standard errors of its N(0, 1)
value."""

from __future__ import annotations

import math

import torch
from torch import Tensor

MASK = 2**64 - 1
GAMMA = 0x9E3779B97F4A7C15
"""SplitMix64's increment (Steele, Lea & Flood 2014), as an unsigned integer."""
Z = 4.0  # standard errors allowed in the statistical checks
KS_CRITICAL = 1.95
"""sqrt(n) times the Kolmogorov-Smirnov distance that N(0, 1) samples exceed with probability 0.001
(Kolmogorov's limit law, P(sqrt(n) D > x) ~ 2 exp(-2 x^2))."""


def splitmix64_finaliser(z: int) -> int:
    """The reference finaliser on Python integers, mod 2^64."""
    z &= MASK
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9 & MASK
    z = (z ^ (z >> 27)) * 0x94D049BB133111EB & MASK
    return z ^ (z >> 31)


def assert_standard(z: Tensor, name: str) -> None:
    """Mean 0, variance 1 and fourth moment 3 of N(0, 1), within Z standard errors."""
    n = z.numel()
    mean, var, fourth = float(z.mean()), float(z.var()), float(z.pow(4).mean())
    assert abs(mean) < Z / math.sqrt(n), f"{name}: mean {mean:.4f}"
    assert abs(var - 1) < Z * math.sqrt(2 / n), f"{name}: variance {var:.4f}"
    assert abs(fourth - 3) < Z * math.sqrt(96 / n), f"{name}: fourth moment {fourth:.4f}"


def assert_correlation(x: Tensor, y: Tensor, rho: float, name: str) -> None:
    """Sample correlation of x and y within Z standard errors, (1 - rho^2) / sqrt(n), of rho."""
    r = float(torch.corrcoef(torch.stack([x.flatten(), y.flatten()]))[0, 1])
    assert abs(r - rho) < Z * (1 - rho**2) / math.sqrt(x.numel()), f"{name}: correlation {r:.4f}, not {rho:.4f}"


def assert_normal(z: Tensor, name: str) -> None:
    """Kolmogorov-Smirnov test against N(0, 1) at the 0.001 level: sup |F_n - Phi| < 1.95 / sqrt(n)."""
    x = z.flatten().double().sort().values
    n = len(x)
    phi = torch.special.ndtr(x)
    steps = torch.arange(1, n + 1, dtype=torch.float64) / n
    distance = float(torch.maximum(steps - phi, phi - (steps - 1 / n)).max())
    assert distance < KS_CRITICAL / math.sqrt(n), f"{name}: Kolmogorov-Smirnov distance {distance:.4f} from N(0, 1)"
