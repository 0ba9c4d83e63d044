"""Ctrl-C and SIGTERM: the command stops where it is (finished work stays, the interrupted piece is not written),
one line says what was kept and where, and ``zoo`` exits 130 (SIGINT) or 143 (SIGTERM), as shells expect."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from .output import stderr


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised wherever the program was, so that it unwinds (and cleans up) exactly as for Ctrl-C."""


class State:
    received: int | None = None
    reported = False


def _on_signal(signum: int, frame: FrameType | None) -> None:
    State.received = signum
    raise Terminated if signum == signal.SIGTERM else KeyboardInterrupt


@contextmanager
def handled() -> Iterator[None]:
    """While the block runs, SIGINT and SIGTERM become exceptions that unwind the command (main thread only)."""
    State.received, State.reported = None, False
    previous = {signum: signal.signal(signum, _on_signal) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def name(exc: BaseException | None = None) -> str:
    terminated = isinstance(exc, Terminated) or State.received == signal.SIGTERM
    return "SIGTERM" if terminated else "Ctrl-C (SIGINT)"


def exit_code() -> int:
    return 128 + (signal.SIGTERM if State.received == signal.SIGTERM else signal.SIGINT)


def report(line: str) -> None:
    """Print the command's own line about what the interrupt kept (instead of the generic one)."""
    State.reported = True
    stderr.print(line, highlight=False, soft_wrap=True, markup=False)


def report_generic(command: str) -> None:
    if not State.reported:
        report(f"interrupted by {name()}: zoo {command} stopped before it finished")
