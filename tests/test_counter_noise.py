"""CounterNoise, generate()'s default noise: a hash of (seed, draw, element), checked against a reference on Python
integers, for invariance (batch, position, chunking, dtype) and for its law (moments, independence, normality).

Statistics are over N = 20000 normals (one seed x 20000 elements, 2000 seeds x 10 elements, or 500 draws x 40
elements of one seed), fixed seeds; each within Z standard errors of its N(0, 1) value (noise_checks.py).
"""

from __future__ import annotations

import math

import pytest
import torch
from noise_checks import GAMMA, MASK, assert_correlation, assert_normal, assert_standard, splitmix64_finaliser
from torch import Tensor

import samplerzoo as sz
from samplerzoo import noise as noise_module
from samplerzoo import testing
from samplerzoo.noise import BrownianTreeNoise, CounterNoise, SeededNoise, hashed_normals, seed_keys

N = 20000


def reference_draw(seed: int, k: int, elements: int) -> list[float]:
    """Draw k of ``seed`` on Python integers and floats (the documented algorithm, written out once more): key =
    mix64(mix64(seed) - (k + 1) gamma); pattern j = mix64(key + (j + 1) gamma); Box–Muller on its top and bottom
    24 bits; the cosines of the P = ceil(elements / 2) patterns, then their sines."""
    key = splitmix64_finaliser(splitmix64_finaliser(seed) - (k + 1) * GAMMA)
    radii, angles = [], []
    for j in range(math.ceil(elements / 2)):
        bits = splitmix64_finaliser(key + (j + 1) * GAMMA)
        radii.append(math.sqrt(-2 * math.log(((bits >> 40) + 1) / 2**24)))
        angles.append(2 * math.pi * (bits & (2**24 - 1)) / 2**24)
    return ([r * math.cos(a) for r, a in zip(radii, angles, strict=True)]
            + [r * math.sin(a) for r, a in zip(radii, angles, strict=True)])[:elements]


# -------------------------------------------------------------------------------------------- the algorithm

@pytest.mark.parametrize(("dtype", "atol"), [(torch.float64, 1e-13), (torch.float32, 5e-6)])
def test_draws_follow_the_reference_on_python_integers(dtype: torch.dtype, atol: float) -> None:
    # The device-independence argument: the integer stage is exact arithmetic mod 2^64, equal bit for bit to the
    # Python-integer reference (any device computing int64 products mod 2^64 gives the same patterns), and the
    # float stage only rounds (libm in double against torch's float64 and float32 kernels).
    seeds = [0, 1, 2**40 + 3, -7, 2**64 - 1]
    noise = CounterNoise(seeds, (7,), dtype=dtype)
    for k in (0, 1, 5):
        expected = torch.tensor([reference_draw(s & MASK, k, 7) for s in seeds], dtype=torch.float64)
        torch.testing.assert_close(noise.draw(k).double(), expected, rtol=0, atol=atol)


def test_a_draw_depends_on_its_seed_and_index_only_bit_for_bit() -> None:
    noise = CounterNoise([5, 6, 7], (3, 5, 7))
    first, second, third = noise.randn(), noise(), noise.randn()
    assert first.shape == (3, 3, 5, 7) and first.dtype == torch.float32 and noise.draws == 3
    assert torch.equal(third, CounterNoise([5, 6, 7], (3, 5, 7)).draw(2))  # whatever was drawn before
    alone = torch.cat([CounterNoise([s], (3, 5, 7)).draw(1) for s in (5, 6, 7)])
    assert torch.equal(second, alone)
    assert torch.equal(CounterNoise([7, 5, 6], (3, 5, 7)).draw(1), second[[2, 0, 1]])  # any position in the batch
    assert not torch.allclose(first, second) and not torch.allclose(second[0], second[1])


# 50 samples of 3x32x32 span two chunks of HASH_CHUNK_PAIRS; chunks of one pair, or of everything (the non-CPU
# branch), hash the same patterns.
@pytest.mark.parametrize("chunk", [1, 2**40])
def test_chunking_does_not_change_the_draws(chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    seeds, shape = range(50), (3, 32, 32)
    default = CounterNoise(seeds, shape).draw(3)
    monkeypatch.setattr(noise_module, "HASH_CHUNK_PAIRS", chunk)
    batch = (slice(0, 50), slice(9, 10)) if chunk == 1 else (slice(0, 50),)  # one pair per chunk: keep it short
    for rows in batch:
        assert torch.equal(CounterNoise(seeds[rows], shape).draw(3), default[rows])


def test_a_keys_normals_do_not_depend_on_the_layout_of_the_keys() -> None:
    keys = seed_keys(range(12), torch.device("cpu")).reshape(3, 4)
    normals = hashed_normals(keys, 9, torch.float32)
    assert normals.shape == (3, 4, 9)
    assert torch.equal(hashed_normals(keys.t(), 9, torch.float32), normals.transpose(0, 1))  # strided keys
    assert torch.equal(hashed_normals(keys[:, 1::2], 9, torch.float32), normals[:, 1::2])


def test_float32_float64_and_half_types_draw_the_same_normals() -> None:
    double = CounterNoise(range(4), (33,), dtype=torch.float64).draw(2)
    single = CounterNoise(range(4), (33,)).draw(2)
    torch.testing.assert_close(single.double(), double, rtol=0, atol=5e-6)  # 24-bit uniforms: exact in both
    for half in (torch.float16, torch.bfloat16):
        assert torch.equal(CounterNoise(range(4), (33,), dtype=half).draw(2), single.to(half))


# -------------------------------------------------------------------------------------------- the law

LAYOUTS = {"one seed": ([11], (N,)), "many seeds": (range(N // 10), (10,))}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_draws_are_standard_normal(layout: str) -> None:
    z = CounterNoise(*LAYOUTS[layout], dtype=torch.float64).draw(0)
    assert_standard(z, layout)
    assert_normal(z, layout)


def test_successive_draws_of_one_seed_are_standard_normal_and_independent() -> None:
    noise = CounterNoise([3], (40,), dtype=torch.float64)
    z = torch.cat([noise.randn() for _ in range(N // 40)])  # (500 draws, 40 elements)
    assert_standard(z, "draws")
    assert_normal(z, "draws")
    assert_correlation(z[:-1], z[1:], 0.0, "successive draws")


def test_neighbouring_samples_elements_and_pairs_are_independent() -> None:
    z = CounterNoise(range(N // 10), (10,), dtype=torch.float64).draw(0)
    assert_correlation(z[:-1], z[1:], 0.0, "neighbouring seeds")
    assert_correlation(z[:, :-1], z[:, 1:], 0.0, "neighbouring elements")
    # Elements e and e + 5 are the cosine and sine of one Box–Muller pair: independent, radius shared.
    assert_correlation(z[:, :5], z[:, 5:], 0.0, "cosine and sine")
    assert_correlation(z[:, :5] ** 2, z[:, 5:] ** 2, 0.0, "squared cosine and sine")


def test_start_noise_is_independent_of_the_brownian_path_of_the_same_seeds() -> None:
    # Counting the draws down from the seed's key keeps them off the tree's nodes, which count up from it: the
    # start of a Brownian sampler in generate() (draw 0) must not share normals with its path (node 0 is W's end).
    seeds, shape = range(N // 10), (10,)
    start = CounterNoise(seeds, shape, dtype=torch.float64).draw(0)
    path = BrownianTreeNoise(seeds, shape, 0.1, 10.0, dtype=torch.float64)
    whole = path(torch.tensor(10.0, dtype=torch.float64), torch.tensor(0.1, dtype=torch.float64))
    assert_correlation(start, whole, 0.0, "start noise and the path's whole increment")


# -------------------------------------------------------------------------------------------- generate()

def test_generate_draws_counter_noise_by_default_and_torch_generators_by_name() -> None:
    model, seeds = testing.gaussian_problem(), [4, 9]
    counter = sz.generate(model, "euler_ancestral", 6, seeds, model.sample_shape, dtype=torch.float64)
    torch_run = sz.generate(model, "euler_ancestral", 6, seeds, model.sample_shape, dtype=torch.float64,
                            noise="torch")
    assert (counter.noise, torch_run.noise) == ("counter", "torch")
    assert float((counter.samples - torch_run.samples).abs().max()) > 1e-3  # the same seed, other noise

    def by_hand(source: CounterNoise | SeededNoise) -> Tensor:
        sigmas = counter.sigmas
        return sz.get_sampler("euler_ancestral").fn(model, source.randn() * float(sigmas[0]), sigmas, noise=source)

    assert torch.equal(counter.samples, by_hand(CounterNoise(seeds, model.sample_shape, dtype=torch.float64)))
    assert torch.equal(torch_run.samples, by_hand(SeededNoise(seeds, model.sample_shape, dtype=torch.float64)))


@pytest.mark.parametrize("sampler", ["euler_ancestral", "dpmpp_2m_sde"])  # per-step draws; a Brownian path
def test_generated_samples_do_not_depend_on_the_batch(sampler: str) -> None:
    model = testing.gaussian_problem()
    batch = sz.generate(model, sampler, 8, range(6), model.sample_shape, dtype=torch.float64).samples
    alone = [sz.generate(model, sampler, 8, [s], model.sample_shape, dtype=torch.float64).samples for s in (0, 5)]
    assert torch.equal(batch[[0, 5]], torch.cat(alone))


def test_an_unknown_noise_source_is_refused_with_the_known_ones() -> None:
    model = testing.gaussian_problem()
    with pytest.raises(sz.UnknownNameError, match=r"^unknown noise source 'philox'; known: counter, torch$"):
        sz.generate(model, "euler", 4, [0], model.sample_shape, noise="philox")  # type: ignore[arg-type]
