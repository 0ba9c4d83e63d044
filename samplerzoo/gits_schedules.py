"""GITS' published schedules for Stable Diffusion 1.5 (``gits:COEFF``), from their data file ``tables/gits_sd15.json``.

Geometry-Inspired Time Scheduling (Chen et al. 2024, On the Trajectory Regularity of ODE-based Diffusion Sampling,
ICML 2024) searches the sampling steps by dynamic programming over a fine grid of a model's noise levels, trading
the teacher trajectory's deviation against a cost coefficient (``coeff``: larger spends more steps at low noise).
ComfyUI's GITSScheduler ships the searched tables for SD1.5 at 2 to 20 steps for coeff 0.80, 0.85, ..., 1.50, each
from sigma_max 14.6146 to sigma_min 0.0292; ``zoo tune --method gits`` runs the search itself for any checkpoint.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from torch import Tensor

from .errors import UnknownNameError
from .published_schedules import loglinear
from .schedules import HasSigmaRange, append_zero, check_steps

TABLES = Path(__file__).resolve().parent / "tables" / "gits_sd15.json"
DEFAULT_COEFF = "1.20"
"""ComfyUI's GITSScheduler default."""


@cache
def gits_tables() -> dict[str, tuple[tuple[float, ...], ...]]:
    """Per coefficient ("0.80" .. "1.50"), the published sigmas for 2, 3, ..., 20 steps: n + 1 levels each, the last
    sigma_min (ComfyUI's GITSScheduler NOISE_LEVELS)."""
    published = json.loads(TABLES.read_text())
    return {coeff: tuple(tuple(levels) for levels in tables) for coeff, tables in published.items()}


def gits_coeff(text: str) -> str:
    """A coefficient as the tables key it ("1.2" and "1.20" are the same), or a one-line error naming them."""
    try:
        key = f"{float(text):.2f}"
    except ValueError:
        key = text
    if key not in gits_tables():
        raise UnknownNameError("GITS coefficient", text, gits_tables())
    return key


def gits(n: int, model: HasSigmaRange, coeff: str = DEFAULT_COEFF) -> Tensor:
    """GITS' published SD1.5 schedule for ``coeff``: at 2 to 20 steps its table, otherwise the 20-step table
    interpolated linearly in log sigma at n + 1 even positions; the last level becomes 0 (ComfyUI's GITSScheduler;
    n = 1 is the interpolation's sigma_max alone). The tables are SD1.5's: the model's own range is not used."""
    check_steps(n)
    tables = gits_tables()[gits_coeff(coeff)]
    published = tables[n - 2] if 2 <= n <= len(tables) + 1 else tables[-1]
    return append_zero(loglinear(published, n + 1)[:-1])
