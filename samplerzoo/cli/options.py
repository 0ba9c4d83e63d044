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


def check_device(device: str) -> None:
    """A CUDA device is asked for only where one is available."""
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise SamplerzooError(f"--device {device} was asked for, but no CUDA device is available; accepted: cpu")
