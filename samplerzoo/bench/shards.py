"""A sweep split across independent jobs (``zoo bench --shard I/K``: a Slurm job array, any scheduler, or K shells):
shard I of K runs a fixed part of the sweep's points, the same part whichever machine runs it, and every shard
appends to the same results file under its lock (results.py). The K parts are disjoint and cover the grid.

Points are dealt by cost (NFE x samples), the most expensive first, each to the shard with the least work so far
(ties to the lowest shard): a grid of mixed budgets gives every shard about the same work, not the same count.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Protocol, TypeVar

from ..errors import SamplerzooError

SHARD = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")


class Costed(Protocol):
    @property
    def nfe(self) -> int: ...

    @property
    def samples(self) -> int: ...


P = TypeVar("P", bound=Costed)


def parse_shard(text: str) -> tuple[int, int]:
    """``"2/4"`` -> (2, 4); anything but I/K with 1 <= I <= K is one line naming what is accepted."""
    match = SHARD.fullmatch(text)
    return check_shard(int(match[1]) if match else 0, int(match[2]) if match else 0, text)


def check_shard(index: int, count: int, text: str | None = None) -> tuple[int, int]:
    if not 1 <= index <= count:
        raise SamplerzooError(f"--shard {text or f'{index}/{count}'!r}: accepted: I/K with 1 <= I <= K, e.g. 1/4 "
                              "for the first of 4 jobs (a Slurm array: --shard $SLURM_ARRAY_TASK_ID/4 with "
                              "--array=1-4)")
    return index, count


def shard(grid: Sequence[P], index: int, count: int) -> list[P]:
    """The points of shard ``index`` (from 1) of ``count``, in grid order."""
    check_shard(index, count)
    load = [0] * count
    owner: dict[int, int] = {}
    for position in sorted(range(len(grid)), key=lambda i: -grid[i].nfe * grid[i].samples):  # stable: grid order
        lightest = min(range(count), key=lambda k: (load[k], k))
        owner[position] = lightest
        load[lightest] += grid[position].nfe * grid[position].samples
    return [point for position, point in enumerate(grid) if owner[position] == index - 1]
