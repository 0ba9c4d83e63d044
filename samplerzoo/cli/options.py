"""Parsing of option values shared by the commands (``--option NAME=VALUE``, comma-separated lists)."""

from __future__ import annotations

import itertools
import json
from typing import Any

from ..errors import SamplerzooError


def split_names(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def split_ints(value: str, what: str) -> list[int]:
    try:
        numbers = [int(v) for v in split_names(value)]
    except ValueError:
        raise SamplerzooError(f"{what} must be comma-separated integers, got {value!r}") from None
    if not numbers or min(numbers) < 1:
        raise SamplerzooError(f"{what} must be positive integers, got {value!r}")
    return numbers


def option_values(text: str) -> list[Any]:
    """``"0,0.5,1"`` -> ``[0, 0.5, 1]`` (a grid); ``"0.5"`` -> ``[0.5]``; ``"[1, 2]"`` -> ``[[1, 2]]``: values are
    read as JSON where they parse, else kept as text."""
    try:
        values = json.loads(f"[{text}]")
    except json.JSONDecodeError:
        values = []
        for part in text.split(","):
            try:
                values.append(json.loads(part))
            except json.JSONDecodeError:
                values.append(part.strip())
    return values if isinstance(values, list) and values else [text]


def parse_option_grid(pairs: list[str] | None, flag: str = "--option") -> dict[str, list[Any]]:
    """``["eta=0,0.5,1", "s_noise=1"]`` -> ``{"eta": [0, 0.5, 1], "s_noise": [1]}``."""
    grid: dict[str, list[Any]] = {}
    for pair in pairs or []:
        name, sep, text = pair.partition("=")
        if not sep or not name.strip() or not text.strip():
            raise SamplerzooError(f"{flag} {pair!r}: accepted: NAME=VALUE or NAME=V1,V2,... (a sweep axis), e.g. "
                                  "eta=0,0.5,1")
        if name.strip() in grid:
            raise SamplerzooError(f"{flag} {name.strip()} is given twice; accepted: one {flag} per name (list "
                                  "several values as NAME=V1,V2)")
        grid[name.strip()] = option_values(text)
    return grid


def option_sets(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every combination of the grid's values, in order (the last name varies fastest)."""
    return [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]


def parse_options(pairs: list[str] | None, flag: str = "--option") -> dict[str, Any]:
    """``["snr=1e4", "eta=0"]`` -> ``{"snr": 10000.0, "eta": 0}``: one value per name (no grid)."""
    grid = parse_option_grid(pairs, flag)
    several = next((name for name, values in grid.items() if len(values) > 1), None)
    if several is not None:
        raise SamplerzooError(f"{flag} {several}: one value accepted here, got {len(grid[several])}; a grid of "
                              "values is a sweep axis of zoo bench")
    return {name: values[0] for name, values in grid.items()}


def split_labels(value: str | None) -> list[int] | None:
    """``"3,7"`` -> ``[3, 7]``: class labels (their range is checked against the checkpoint)."""
    if value is None:
        return None
    try:
        labels = [int(v) for v in split_names(value)]
    except ValueError:
        raise SamplerzooError(f"--labels must be comma-separated whole numbers, got {value!r}") from None
    if not labels:
        raise SamplerzooError("--labels is empty; accepted: comma-separated class labels, e.g. 3,7")
    return labels


def check_device(device: str) -> None:
    """A CUDA device is asked for only where one is available."""
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise SamplerzooError(f"--device {device} was asked for, but no CUDA device is available; accepted: cpu")
