"""BrownianTreeNoise, generate()'s Brownian noise: its hash, batch invariance, one path per seed, and its law.

Statistics are over N = 20000 increments (one seed x 20000 elements, or 2000 seeds x 10 elements), fixed seeds;
each is checked within Z standard errors of its Brownian value (noise_checks.py).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import pytest
import torch
from noise_checks import assert_correlation, assert_normal, assert_standard, splitmix64_finaliser
from torch import Tensor

import samplerzoo as sz
from samplerzoo import testing
from samplerzoo.noise import GAMMA, BrownianTreeNoise, NoiseSampler, SeededNoise, as_int64, mix64, shift_right
from samplerzoo.schedules import SigmaRange, karras

N = 20000
LAYOUTS = {"one seed": ([11], (N,)), "many seeds": (range(N // 10), (10,))}
BROWNIAN = sorted(n for n in sz.get_samplers() if sz.get_sampler(n).brownian)


def brownian(seeds: Sequence[int] = (5, 6, 7), shape: Sequence[int] = (3, 5, 7),
             dtype: torch.dtype = torch.float64) -> BrownianTreeNoise:
    return BrownianTreeNoise(seeds, shape, 0.1, 10.0, dtype=dtype)


def increment(noise: BrownianTreeNoise, sigma: float, sigma_next: float) -> Tensor:
    return noise(torch.tensor(sigma, dtype=torch.float64), torch.tensor(sigma_next, dtype=torch.float64))


# -------------------------------------------------------------------------------------------- the hash

def test_mix64_is_splitmix64_on_int64_bit_patterns() -> None:
    values = [0, 1, 2**63 - 1, 2**63, 2**64 - 1, GAMMA % 2**64, *range(3, 2**64, 2**64 // 97)]
    ours = mix64(torch.tensor([as_int64(v) for v in values], dtype=torch.int64)).tolist()
    assert ours == [as_int64(splitmix64_finaliser(v)) for v in values]
    assert ours[5] == as_int64(0xE220A8397B1DCDAF)  # SplitMix64's first output from seed 0
    assert shift_right(torch.tensor([-1]), 60).item() == 15  # logical, not arithmetic


# -------------------------------------------------------------------------------------------- one path per seed

# (30001,): three samples hash one node per chunk, one alone two (NODE_CHUNK_ELEMENTS).
@pytest.mark.parametrize("shape", [(3, 5, 7), (30001,)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_sample_depends_on_its_seed_only_bit_for_bit(dtype: torch.dtype, shape: tuple[int, ...]) -> None:
    batch = increment(brownian(shape=shape, dtype=dtype), 5.0, 1.0)
    alone = torch.cat([increment(brownian([s], shape, dtype), 5.0, 1.0) for s in (5, 6, 7)])
    permuted = increment(brownian([7, 5, 6], shape, dtype), 5.0, 1.0)
    assert batch.shape == (3, *shape) and batch.dtype == dtype
    assert torch.equal(batch, alone) and torch.equal(permuted, batch[[2, 0, 1]])
    assert not torch.allclose(batch[0], batch[1])


def test_the_same_seeds_give_the_same_noise() -> None:
    assert torch.equal(increment(brownian(), 9.0, 0.2), increment(brownian(), 9.0, 0.2))
    assert not torch.allclose(increment(brownian(), 9.0, 0.2), increment(brownian([8, 9, 10]), 9.0, 0.2))


def test_float32_and_float64_draw_the_same_path() -> None:
    torch.testing.assert_close(increment(brownian(dtype=torch.float32), 4.0, 0.3),
                               increment(brownian(), 4.0, 0.3).float(), rtol=0, atol=1e-5)


def test_a_point_of_the_path_does_not_depend_on_the_queries_before() -> None:
    fresh = increment(brownian(), 6.0, 2.0)
    noise = brownian()
    for sigma, sigma_next in [(9.0, 6.0), (2.0, 0.1), (6.0, 5.9), (3.0, 2.5)]:
        increment(noise, sigma, sigma_next)
    assert torch.equal(increment(noise, 6.0, 2.0), fresh)


# Rounding only: |W| reaches ~10 here (3 sd of sqrt(9.9)), and float32 keeps ~1e-6 of it.
@pytest.mark.parametrize(("dtype", "atol"), [(torch.float32, 1e-5), (torch.float64, 1e-12)])
def test_increments_add_up_along_one_path(dtype: torch.dtype, atol: float) -> None:
    # W(c) - W(a) = (W(b) - W(a)) + (W(c) - W(b)), queried in any order; 3e-5 spans ~3 cells of the finest level.
    noise = brownian(dtype=dtype)
    for a, b, c in [(9.0, 4.0, 0.2), (0.2, 4.0, 9.0), (3.0, 3.0 + 3e-5, 2.0)]:
        bc, ac, ab = increment(noise, b, c), increment(noise, a, c), increment(noise, a, b)
        joined = ab * math.sqrt(abs(b - a)) + bc * math.sqrt(abs(c - b))
        torch.testing.assert_close(joined, ac * math.sqrt(abs(c - a)), rtol=0, atol=atol)
    assert torch.equal(increment(noise, 0.2, 9.0), -increment(noise, 9.0, 0.2))  # reversed: exactly negated


def test_the_path_spans_sigma_min_to_sigma_max() -> None:
    noise = brownian()
    assert increment(noise, 10.0 + 1e-9, 0.1 - 1e-9).isfinite().all()  # a schedule's rounding at the ends
    with pytest.raises(ValueError, match=r"sigma = 10.5, outside"):
        increment(noise, 10.5, 1.0)


# -------------------------------------------------------------------------------------------- the law

@pytest.mark.parametrize("layout", LAYOUTS)
def test_increments_are_standard_normal(layout: str) -> None:
    noise = BrownianTreeNoise(*LAYOUTS[layout], 0.1, 10.0, dtype=torch.float64)
    # Long and short intervals, in both directions; the last spans ~3 cells of the finest level.
    for a, b in [(8.0, 3.0), (3.0, 0.5), (0.1, 10.0), (3.0, 2.99), (3.0, 3.0 + 3e-5)]:
        assert_standard(increment(noise, a, b), f"({a}, {b})")
    assert_normal(increment(noise, 8.0, 3.0), "(8.0, 3.0)")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_increments_correlate_as_brownian_motion(layout: str) -> None:
    noise = BrownianTreeNoise(*LAYOUTS[layout], 0.1, 10.0, dtype=torch.float64)
    whole, first, rest, inner = (increment(noise, a, b) for a, b in [(8.0, 0.5), (8.0, 3.0), (3.0, 0.5), (3.0, 1.0)])
    assert_correlation(first, rest, 0.0, "disjoint")
    # Intervals I and J: corr(W(I) / sqrt|I|, W(J) / sqrt|J|) = |I & J| / sqrt(|I| |J|).
    assert_correlation(first, whole, math.sqrt(5 / 7.5), "sharing a start")
    assert_correlation(inner, whole, math.sqrt(2 / 7.5), "nested")
    assert_correlation(inner, rest, math.sqrt(2 / 2.5), "nested, sharing a start")


def test_neighbouring_draws_are_independent() -> None:
    z = increment(BrownianTreeNoise(range(N // 10), (10,), 0.1, 10.0, dtype=torch.float64), 8.0, 3.0)
    assert_correlation(z[:-1], z[1:], 0.0, "neighbouring seeds")
    assert_correlation(z[:, :-1], z[:, 1:], 0.0, "neighbouring elements")
    # Elements e and e + 5 are the cosine and sine of one Box–Muller pair: independent, radius shared.
    assert_correlation(z[:, :5], z[:, 5:], 0.0, "cosine and sine")
    assert_correlation(z[:, :5] ** 2, z[:, 5:] ** 2, 0.0, "squared cosine and sine")


# -------------------------------------------------------------------------------------------- samplers on it

@pytest.mark.parametrize("name", BROWNIAN)
def test_samples_converge_as_steps_are_refined(name: str) -> None:
    """One Brownian path per seed, whatever the steps: refining them makes each sample converge (strongly), where
    independent draws per step give a different sample at every step count."""
    problem, sigma_range, seeds = testing.gaussian_problem(), SigmaRange(0.02, 20.0), range(16)
    shape = problem.sample_shape
    x = SeededNoise(seeds, shape, dtype=torch.float64).randn() * sigma_range.sigma_max

    def gaps(make_noise: Callable[[], NoiseSampler]) -> list[float]:
        """RMS change of the samples per doubling of the steps."""
        samples = [sz.get_sampler(name).fn(problem, x, karras(steps, sigma_range), noise=make_noise())
                   for steps in (8, 16, 32, 64)]
        return [float((a - b).pow(2).mean().sqrt()) for a, b in itertools.pairwise(samples)]

    brownian_gaps = gaps(lambda: BrownianTreeNoise(seeds, shape, sigma_range.sigma_min, sigma_range.sigma_max,
                                                   dtype=torch.float64))
    independent_gaps = gaps(lambda: SeededNoise(seeds, shape, dtype=torch.float64))
    # Strong order >= 1/2: the change shrinks by sqrt(2) or more per doubling, so halves over the two doublings.
    assert brownian_gaps[-1] < 0.5 * brownian_gaps[0] and brownian_gaps == sorted(brownian_gaps, reverse=True), \
        f"{name}: {brownian_gaps}"
    assert min(independent_gaps) > 0.3, f"{name}: independent draws {independent_gaps}"
