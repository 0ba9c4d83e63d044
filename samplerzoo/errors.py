"""User-facing errors: each one is a single line that names what was wrong and what is accepted."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class SamplerzooError(Exception):
    """Base class for errors the CLI reports as one line (never a traceback)."""


class UnknownNameError(SamplerzooError, LookupError):
    """A sampler, schedule or option value that is not registered."""

    def __init__(self, kind: str, name: str, known: Iterable[str]) -> None:
        known = sorted(set(known))
        close = difflib.get_close_matches(name.lower(), known, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        super().__init__(f"unknown {kind} {name!r}; {hint}known: {', '.join(known)}")
        self.kind, self.name, self.close_matches = kind, name, close


class UnreachableNFEError(SamplerzooError, ValueError):
    """The requested number of network evaluations cannot be spent exactly by this sampler."""


class ScheduleLengthError(SamplerzooError, ValueError):
    """A fixed-length schedule (a schedule file) was asked for another number of levels; ``sigmas`` holds its own."""

    def __init__(self, message: str, sigmas: tuple[float, ...]) -> None:
        super().__init__(message)
        self.sigmas = sigmas


class RegistrationError(SamplerzooError, ValueError):
    """A plugin registered a malformed or clashing sampler or schedule."""


class CheckpointError(SamplerzooError, ValueError):
    """A checkpoint that is missing, malformed or inconsistent; the message names the file."""


def first_line(exc: BaseException, limit: int = 200) -> str:
    """An exception from a library as one short line: its type and the first line of its message."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if len(text) > limit:
        text = text[:limit].rsplit(" ", 1)[0] + " ..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class NonFiniteError(SamplerzooError, FloatingPointError):
    """Samples (or a solver's state) contain NaN or inf: nothing is scored or written from them."""


class SamplerzooWarning(UserWarning):
    """Something the user should know that did not stop the work (skipped results lines, a cache recomputed or not
    kept, duplicate names collapsed); the CLI prints it as one ``warning: ...`` line on stderr."""
