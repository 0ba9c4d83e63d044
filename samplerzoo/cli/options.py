"""Parsing of option values shared by the commands (``--option NAME=VALUE``, comma-separated lists)."""

from __future__ import annotations

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


def parse_options(pairs: list[str] | None) -> dict[str, Any]:
    """``["snr=1e4", "eta=0"]`` -> ``{"snr": 10000.0, "eta": 0}``: a value is read as JSON, else kept as text."""
    options: dict[str, Any] = {}
    for pair in pairs or []:
        name, sep, text = pair.partition("=")
        if not sep or not name.strip():
            raise SamplerzooError(f"--option {pair!r}: accepted: NAME=VALUE, e.g. s_churn=10")
        try:
            options[name.strip()] = json.loads(text)
        except json.JSONDecodeError:
            options[name.strip()] = text
    return options
