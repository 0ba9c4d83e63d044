"""Noise sources. Samplers draw all randomness through one, so a sample depends on its own seed only."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Literal, Protocol

import torch
from torch import Tensor

from .errors import UnknownNameError


class NoiseSampler(Protocol):
    """``noise(sigma, sigma_next) -> Tensor`` shaped like the batch (k-diffusion's noise_sampler)."""

    def __call__(self, sigma: Tensor, sigma_next: Tensor) -> Tensor: ...


class SeededNoise:
    """One generator per sample seed, stacked into a batch (NVlabs/edm's StackedRandomGenerator).

    Sample ``i`` of the batch always draws from ``torch.Generator().manual_seed(seeds[i])``, so the
    same seed gives the same noise at any batch size or batch position, and on the CPU exactly NVlabs/edm's
    draws. One ``randn`` call per sample and draw: a Python loop over the batch (:class:`CounterNoise` has none).
    ``generate(noise="torch")``.
    """

    def __init__(self, seeds: Sequence[int], sample_shape: Sequence[int], *, device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32) -> None:
        self.seeds = [int(s) for s in seeds]
        self.sample_shape = tuple(sample_shape)
        self.device, self.dtype = torch.device(device), dtype
        self.generators = [torch.Generator(self.device).manual_seed(s) for s in self.seeds]

    def randn(self) -> Tensor:
        """A standard normal batch of shape ``(len(seeds), *sample_shape)``."""
        return torch.stack([torch.randn(self.sample_shape, generator=g, device=self.device, dtype=self.dtype)
                            for g in self.generators])

    def __call__(self, sigma: Tensor | None = None, sigma_next: Tensor | None = None) -> Tensor:
        return self.randn()


def gaussian_noise_like(x: Tensor) -> NoiseSampler:
    """Fallback source for a sampler called without one: fresh ``randn_like`` draws (not reproducible)."""
    return lambda sigma, sigma_next: torch.randn_like(x)


# --- Counter-based normals (SplitMix64 hashes), vectorised over samples ------------------------------------

GAMMA = 0x9E3779B97F4A7C15 - 2**64
"""SplitMix64's increment, 2^64 / golden ratio (odd), as the signed int64 torch stores."""
MIX = (0xBF58476D1CE4E5B9 - 2**64, 0x94D049BB133111EB - 2**64)
"""SplitMix64's two finaliser multipliers (Stafford's Mix13), as signed int64."""
UNIFORM_BITS = 24
"""Bits per Box–Muller uniform: exact in float32, so float32 and float64 runs draw the same normals (to rounding)."""
DRAW_BLOCK = 64
"""Most draws :class:`CounterNoise` hashes at once, when they fit in ``HASH_CHUNK_PAIRS``: a small batch's run (its
start and steps) then costs one hash of the whole block, where a draw at a time is bound by per-op overhead."""
HASH_CHUNK_PAIRS = 2**16
"""Box–Muller pairs :func:`hashed_normals` makes at once on the CPU: 512 KiB of int64 scratch, which stays in cache
(about 1.5x faster than whole batches of 3x32x32 samples)."""


def as_int64(value: int) -> int:
    """``value`` mod 2^64 as a signed int64: the bit pattern torch keeps for it."""
    return (value + 2**63) % 2**64 - 2**63


def shift_right(z: Tensor, bits: int, out: Tensor | None = None) -> Tensor:
    """Logical right shift of int64 bit patterns (torch's ``>>`` is arithmetic on int64: mask the sign copies off),
    into ``out`` if given."""
    return torch.bitwise_right_shift(z, bits, out=out).bitwise_and_((1 << (64 - bits)) - 1)


def mix64_(z: Tensor) -> Tensor:
    """SplitMix64's finaliser (Steele, Lea & Flood 2014) on int64 bit patterns, in place; products wrap mod 2^64 as
    wanted."""
    scratch = torch.empty_like(z)
    for bits, multiplier in ((30, MIX[0]), (27, MIX[1]), (31, None)):
        z.bitwise_xor_(shift_right(z, bits, out=scratch))
        if multiplier is not None:
            z.mul_(multiplier)
    return z


def mix64(z: Tensor) -> Tensor:
    """:func:`mix64_` on a copy of ``z``."""
    return mix64_(z.clone())


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The float type normals are made in: float64 for float64 output, float32 for the rest (half types round it)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def box_muller_(bits: Tensor, out: Tensor) -> Tensor:
    """Two standard normals per random 64-bit pattern into ``out`` (``bits.shape[-1]`` columns each half): Box–Muller
    (1958) on two 24-bit uniforms, u1 in (0, 1] and u2 in [0, 1), the r cos(2 pi u2) of every pattern, then the
    r sin(2 pi u2), r = sqrt(-2 ln u1). ``bits`` is used up.

    |z| <= sqrt(48 ln 2) = 5.77: the tail beyond (probability 8e-9) is cut off.
    """
    pairs, unit = bits.shape[-1], 2.0**-UNIFORM_BITS
    u1 = shift_right(bits, 64 - UNIFORM_BITS).add_(1).to(out.dtype).mul_(unit)
    radius = u1.log_().mul_(-2).sqrt_()
    angle = bits.bitwise_and_((1 << UNIFORM_BITS) - 1).to(out.dtype).mul_(2 * math.pi * unit)
    torch.cos(angle, out=out[..., :pairs]).mul_(radius)
    torch.sin(angle, out=out[..., pairs:]).mul_(radius)
    return out


@functools.lru_cache(maxsize=16)
def stream_offsets(count: int, device: torch.device) -> Tensor:
    """(j + 1) gamma for j < count (mod 2^64): the counters of a SplitMix64 stream's first ``count`` outputs."""
    return torch.arange(1, count + 1, dtype=torch.int64, device=device) * GAMMA


def hashed_normals(keys: Tensor, elements: int, dtype: torch.dtype) -> Tensor:
    """``elements`` standard normals per key, shape ``(*keys.shape, elements)``, computed in ``dtype``.

    Key k's normals come from the SplitMix64 stream that starts at k, outputs mix64(k + (j + 1) gamma), j < P =
    ceil(elements / 2) (Steele, Lea & Flood 2014), through :func:`box_muller_`: element e < P is the cosine of
    output e, element P + e its sine. Every step is elementwise integer arithmetic mod 2^64 (exact on any device)
    and then log, sqrt, cos, sin of exactly representable uniforms (rounding only), so a key's normals do not depend
    on the other keys, the batch, the chunking or the device. On the CPU the keys are hashed in chunks of
    ``HASH_CHUNK_PAIRS`` so that the int64 scratch stays in cache.
    """
    pairs = (elements + 1) // 2
    flat = keys.reshape(-1)
    offsets = stream_offsets(pairs, keys.device)
    out = torch.empty(len(flat), 2 * pairs, dtype=dtype, device=keys.device)
    rows = max(1, HASH_CHUNK_PAIRS // pairs) if keys.device.type == "cpu" else max(1, len(flat))
    for start in range(0, len(flat), rows):
        box_muller_(mix64_(flat[start:start + rows, None] + offsets), out[start:start + rows])
    return out[:, :elements].reshape(*keys.shape, elements)


def seed_keys(seeds: Sequence[int], device: torch.device) -> Tensor:
    """mix64 of each seed (mod 2^64): the key every per-sample stream of that seed derives from."""
    return mix64(torch.tensor([as_int64(int(s)) for s in seeds], dtype=torch.int64, device=device))


class CounterNoise:
    """Per-sample noise from a counter-based generator: draw k of the sample with seed s is a fixed function of
    (s, k), so the same seed gives the same noise at any batch size, batch position, process count and device,
    with no generator state and no loop over the batch. ``generate()``'s default (``noise="counter"``).

    Draw k's normals for seed s are :func:`hashed_normals` of the key mix64(mix64(s) - (k + 1) gamma): the
    SplitMix64 construction (Steele, Lea & Flood 2014) used as a counter-based generator in the sense of Salmon et
    al. 2011 ("Parallel random numbers: as easy as 1, 2, 3"), a hash of (seed, draw, element). The draws count
    down from the seed's key, :class:`BrownianTreeNoise`'s nodes count up from it, so a Brownian sampler's start
    noise and its path (same seeds) never share a stream. float32 and float64 draw the same normals up to
    rounding (24-bit uniforms are exact in both); float16 and bfloat16 round the float32 ones.
    Not torch's (or NVlabs/edm's) draws: :class:`SeededNoise` gives those.
    """

    def __init__(self, seeds: Sequence[int], sample_shape: Sequence[int], *, device: torch.device | str = "cpu",
                 dtype: torch.dtype = torch.float32) -> None:
        self.seeds = [int(s) for s in seeds]
        self.sample_shape = tuple(sample_shape)
        self.device, self.dtype = torch.device(device), dtype
        self.sample_keys = seed_keys(self.seeds, self.device)
        self.draws = 0
        """Draws made so far: the next :meth:`randn` is draw number ``draws``."""
        self.elements = math.prod(self.sample_shape)
        per_draw = max(1, len(self.seeds) * ((self.elements + 1) // 2))
        self.draws_per_block = max(1, min(DRAW_BLOCK, HASH_CHUNK_PAIRS // per_draw))
        self._block: tuple[int, Tensor] = (-1, torch.empty(0))

    def block(self, index: int) -> Tensor:
        """The normals of draws index * b, ..., (index + 1) * b - 1 (b = ``draws_per_block``), shape (b, samples,
        elements): draw k's key for every sample is mix64(mix64(seed) - (k + 1) gamma)."""
        first, count = index * self.draws_per_block, self.draws_per_block
        counters = -stream_offsets(first + count, self.device)[first:]  # -(k + 1) gamma
        keys = mix64(self.sample_keys + counters[:, None])
        return hashed_normals(keys, self.elements, compute_dtype(self.dtype))

    def draw(self, k: int) -> Tensor:
        """Draw ``k`` (from 0) for every sample, shape ``(len(seeds), *sample_shape)``, whatever was drawn before.
        Small draws are hashed with the rest of their block (up to ``DRAW_BLOCK``), which is kept until a draw
        outside it is asked for."""
        index, row = divmod(k, self.draws_per_block)
        if self.draws_per_block == 1:  # a large draw: nothing to share, nothing kept
            normals = self.block(index)[0]
        else:
            if self._block[0] != index:
                self._block = (index, self.block(index))
            normals = self._block[1][row].clone()  # the block stays: the caller may write into its copy
        return normals.to(self.dtype).reshape(len(self.seeds), *self.sample_shape)

    def randn(self) -> Tensor:
        """The next draw: a standard normal batch of shape ``(len(seeds), *sample_shape)``."""
        self.draws += 1
        return self.draw(self.draws - 1)

    def __call__(self, sigma: Tensor | None = None, sigma_next: Tensor | None = None) -> Tensor:
        return self.randn()


NoiseSource = Literal["counter", "torch"]
NOISE_SOURCES: dict[str, type[CounterNoise] | type[SeededNoise]] = {"counter": CounterNoise, "torch": SeededNoise}
"""Per-sample noise sources by the name ``generate(noise=...)`` and results rows use."""


def seeded_noise(source: str, seeds: Sequence[int], sample_shape: Sequence[int], *,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> CounterNoise | SeededNoise:
    """The named per-sample noise source (:data:`NOISE_SOURCES`) for ``seeds``."""
    if source not in NOISE_SOURCES:
        raise UnknownNameError("noise source", source, NOISE_SOURCES)
    return NOISE_SOURCES[source](seeds, sample_shape, device=device, dtype=dtype)


# --- Brownian paths from a virtual Brownian tree, vectorised over samples ---------------------------------

QUERY_GRID = 2.0**-40
"""Queried sigmas snap to this grid (relative to the path's interval), as torchsde rounds times to its tol: a sigma
off by rounding (k-diffusion's exp(-log sigma)) then gets the same W, where a Brownian path, rough as
|W(t + d) - W(t)| ~ sqrt(d), would move by ~1e-8 for d ~ 1e-16 at the tree's nodes (its ends among them)."""
END_SLACK = 1e-6
"""How far (relative to the path's interval) a queried sigma may round outside it: a schedule's recomputed ends."""
NODE_CHUNK_ELEMENTS = 2**16
"""Normals hashed at once (nodes x samples x elements) per chunk of a query: bounds its memory."""


def schauder_weights(s: float, depth: int) -> dict[int, float]:
    """Weights of the node normals in B(s), s in [0, 1], for the virtual Brownian tree of ``depth`` levels.

    Lévy's construction (Lévy 1948; in Ciesielski's 1961 Schauder-function form): B(1) = Z_0, and the midpoint of
    each dyadic interval [j 2^-k, (j + 1) 2^-k], k < depth, is the mean of its ends plus the bridge's
    sd 2^-(k+2)/2 times its normal Z_n, node n = 2^k + j. So B(s) = s Z_0 + sum_n tent_n(s) Z_n over the
    ``depth`` intervals containing s (tents of height 2^-(k+2)/2), plus, inside the finest interval [a, b],
    the Brownian bridge sqrt((s - a)(b - s) / (b - a)) Z_n with node n = 2^depth + j of that interval.
    """
    weights = {0: s}
    for level in range(depth):
        width = 2.0**-level
        j = min(int(s / width), 2**level - 1)
        weights[2**level + j] = 2.0 ** (-(level + 2) / 2) * (1 - abs(s - (j + 0.5) * width) / (width / 2))
    width = 2.0**-depth
    j = min(int(s / width), 2**depth - 1)
    weights[2**depth + j] = math.sqrt(max(s - j * width, 0.0) * max((j + 1) * width - s, 0.0) / width)
    return weights


def increment_weights(s: float, s_next: float, depth: int) -> tuple[list[int], list[float]]:
    """Nodes (ascending) and weights of B(s_next) - B(s), the zero weights dropped.

    Differencing weights, not values, keeps the increment of a short interval free of cancellation; the fixed node
    order makes the reversed increment the exact negative.
    """
    first, second = schauder_weights(s, depth), schauder_weights(s_next, depth)
    weights = {n: second.get(n, 0.0) - first.get(n, 0.0) for n in sorted(first.keys() | second.keys())}
    nodes = [n for n, w in weights.items() if w != 0.0]
    return nodes, [weights[n] for n in nodes]


class BrownianTreeNoise:
    """Increments of one Brownian path per sample seed, (W(t_next) - W(t)) / sqrt|t_next - t| with t = sigma.

    The SDE samplers ask for noise over overlapping intervals (dpmpp_sde: (sigma, sigma_s) and then
    (sigma, sigma_next)); a Brownian path makes those draws consistent, and makes a sample converge as the
    steps are refined. Sample ``i`` follows the path W = sqrt(sigma_max - sigma_min) B((t - sigma_min) /
    (sigma_max - sigma_min)), B a standard Brownian motion on [0, 1] built by :func:`schauder_weights`: a
    virtual Brownian tree (Gaines & Lyons 1997; Li et al. 2020, "Scalable gradients for stochastic differential
    equations"), resolved to 2^-depth of the interval (depth 20: ~1e-6; torchsde resolves 1e-6 in t) and a
    Brownian bridge below that.

    Nothing is stored. Node n's normals for sample i are :func:`hashed_normals` of the counter-based key (in the
    manner of SplitMix64, Steele et al. 2014, and of Salmon et al. 2011) mix64(mix64(seed_i) + (n + 1) gamma). So
    W(t) is a fixed function of (seed, t): the same whatever was queried before, in any batch (bit for bit: every
    step is elementwise), on any device (up to the rounding of log and cos). A query hashes the normals of the
    <= 2 (depth + 2) nodes on the paths of its two ends, vectorised over samples and elements. Not torchsde's
    draws: :class:`TorchsdeBrownianNoise` reproduces k-diffusion's.
    """

    def __init__(self, seeds: Sequence[int], sample_shape: Sequence[int], sigma_min: float, sigma_max: float, *,
                 depth: int = 20, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> None:
        self.sample_shape, self.depth, self.dtype = tuple(sample_shape), depth, dtype
        self.compute_dtype = compute_dtype(dtype)
        self.sigma_min, self.sigma_max = float(sigma_min), float(sigma_max)
        self.device = torch.device(device)
        self.sample_keys = seed_keys(seeds, self.device)
        self.elements = math.prod(self.sample_shape)
        self.nodes_per_chunk = max(1, NODE_CHUNK_ELEMENTS // max(1, len(self.sample_keys) * self.elements))

    def position(self, sigma: Tensor | float) -> float:
        """sigma's place s along [sigma_min, sigma_max], on the grid of ``QUERY_GRID`` in [0, 1]; up to ``END_SLACK``
        outside counts as the end."""
        s = (float(sigma) - self.sigma_min) / (self.sigma_max - self.sigma_min)
        if not -END_SLACK <= s <= 1 + END_SLACK:
            raise ValueError(f"Brownian noise asked at sigma = {float(sigma)}, outside its path's "
                             f"[{self.sigma_min}, {self.sigma_max}]")
        return round(min(max(s, 0.0), 1.0) / QUERY_GRID) * QUERY_GRID

    def node_normals(self, nodes: list[int]) -> Tensor:
        """Normals of ``nodes`` for every sample and element: shape (len(nodes), samples, elements)."""
        node_ids = torch.tensor(nodes, dtype=torch.int64, device=self.device)
        keys = mix64(self.sample_keys + ((node_ids + 1) * GAMMA)[:, None])
        return hashed_normals(keys, self.elements, self.compute_dtype)

    def __call__(self, sigma: Tensor, sigma_next: Tensor) -> Tensor:
        """(W(sigma_next) - W(sigma)) / sqrt|sigma_next - sigma| for every sample, sigma != sigma_next."""
        nodes, weights = increment_weights(self.position(sigma), self.position(sigma_next), self.depth)
        total = torch.zeros(len(self.sample_keys), self.elements, device=self.device, dtype=self.compute_dtype)
        for start in range(0, len(nodes), self.nodes_per_chunk):
            chunk = slice(start, start + self.nodes_per_chunk)
            terms = self.node_normals(nodes[chunk]) * torch.tensor(weights[chunk], dtype=total.dtype,
                                                                   device=self.device)[:, None, None]
            for term in terms:  # one add per node: the sum's order never depends on the batch
                total += term
        scale = math.sqrt((self.sigma_max - self.sigma_min) / abs(float(sigma_next) - float(sigma)))
        return (total * scale).to(self.dtype).reshape(len(self.sample_keys), *self.sample_shape)


class TorchsdeBrownianNoise:
    """:class:`BrownianTreeNoise`'s increments from torchsde: identical to k-diffusion's per-sample trees, but slow.

    Each sample has its own ``torchsde.BrownianTree`` (entropy = its seed) over [sigma_min, sigma_max], exactly
    as in k-diffusion's ``BrownianTreeNoiseSampler(seed=[...])``, so runs match k-diffusion's bit for bit. A query
    walks each sample's tree in Python (~14 ms per sample): use it to compare with k-diffusion, not to sample.
    """

    def __init__(self, seeds: Sequence[int], sample_shape: Sequence[int], sigma_min: float, sigma_max: float, *,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> None:
        import torchsde

        w0 = torch.zeros(tuple(sample_shape), device=device, dtype=dtype)
        t0, t1 = torch.as_tensor(float(sigma_min)), torch.as_tensor(float(sigma_max))
        self.trees = [torchsde.BrownianTree(t0, w0, t1, entropy=int(seed)) for seed in seeds]

    def __call__(self, sigma: Tensor, sigma_next: Tensor) -> Tensor:
        low, high = sorted((torch.as_tensor(sigma), torch.as_tensor(sigma_next)), key=float)
        sign = 1.0 if float(sigma) <= float(sigma_next) else -1.0
        return torch.stack([tree(low, high) for tree in self.trees]) * (sign / (high - low).sqrt())
