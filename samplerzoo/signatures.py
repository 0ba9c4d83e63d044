"""Options given by name (``--option eta=0.5``, ``--schedule-option rho=5``) checked against the signature of the
function that takes them: an unknown name, or a value whose type the parameter does not declare, is one line."""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .errors import SamplerzooError

NUMBERS: dict[type, tuple[type, ...]] = {float: (int, float), int: (int,), complex: (int, float, complex)}
"""The Python values accepted for a numeric annotation (a bool is never a number here)."""


def keyword_names(fn: Callable[..., Any], skip: Iterable[str]) -> tuple[str, ...] | None:
    """The function's keyword parameters but ``skip``; ``None`` when it takes any (``**options``)."""
    parameters = inspect.signature(fn).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return tuple(p.name for p in parameters if p.name not in set(skip)
                 and p.kind in (inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD))


def declared_types(fn: Callable[..., Any]) -> dict[str, Any]:
    """The parameters' annotations, resolved; a parameter whose annotation cannot be resolved falls back to the type
    of its default."""
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # an annotation naming something imported only for type checking
        hints = {}
    out = {}
    for p in inspect.signature(fn).parameters.values():
        if p.name in hints:
            out[p.name] = hints[p.name]
        elif p.default is not inspect.Parameter.empty and p.default is not None:
            out[p.name] = type(p.default)
    return out


def accepts(annotation: Any, value: Any) -> bool:
    """Whether ``value`` fits ``annotation`` (unions, Optional, Literal, numbers, bool, str; anything else is taken on
    trust)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(accepts(arm, value) for arm in typing.get_args(annotation))
    if origin is typing.Literal:
        return value in typing.get_args(annotation)
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation in NUMBERS:
        return isinstance(value, NUMBERS[annotation]) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    return True


def describe(annotation: Any) -> str:
    if typing.get_origin(annotation) is typing.Literal:
        return "one of " + ", ".join(map(repr, typing.get_args(annotation)))
    text = getattr(annotation, "__name__", None) or str(annotation)
    return text.replace("typing.", "").replace("NoneType", "None")


def check_options(fn: Callable[..., Any], options: Mapping[str, Any], owner: str, skip: Iterable[str] = ()) -> None:
    """Refuse an option ``fn`` does not take, naming the ones it does, or a value of a type it does not declare."""
    known = keyword_names(fn, skip)
    unknown = [name for name in options if known is not None and name not in known]
    if unknown:
        raise SamplerzooError(f"{owner} has no option {unknown[0]!r}; accepted: "
                              f"{', '.join(sorted(known or [])) or 'no options'}")
    annotations = declared_types(fn)
    for name, value in options.items():
        if name in annotations and not accepts(annotations[name], value):
            raise SamplerzooError(f"{owner}: option {name}={value!r} is a {type(value).__name__}; accepted: "
                                  f"{describe(annotations[name])}")
