"""Checks of user input that run before any work: each failure is one line naming the value and what is accepted."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from typing import TypeVar

from .errors import SamplerzooError, SamplerzooWarning

T = TypeVar("T")


def positive(name: str, value: object, unit: str) -> int:
    """``value`` when it is a whole number >= 1; ``unit`` says what it counts (``"samples"``)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SamplerzooError(f"{name} {value}: accepted: a whole number of {unit}, 1 or more")
    return value


def unique(kind: str, values: Iterable[T], canonical: Callable[[T], T] = lambda value: value) -> list[T]:
    """``values`` by their canonical form (an alias becomes its name), each once, in order; a value given more than
    once is said in one warning. An empty list is an error."""
    given: dict[T, list[T]] = {}
    for value in values:
        given.setdefault(canonical(value), []).append(value)
    if not given:
        raise SamplerzooError(f"no {kind} given; accepted: one or more, comma-separated")
    for name, spellings in given.items():
        if len(spellings) > 1:
            warnings.warn(f"{kind} {name} is listed {len(spellings)} times ({', '.join(map(str, spellings))}); "
                          "it runs once", SamplerzooWarning, stacklevel=3)
    return list(given)
