"""The ``zoo`` command line: parse, call the library, render. Errors become one line and exit code 1; warnings one
line each; Ctrl-C and SIGTERM one line and exit codes 130 and 143.

Command modules import the library (torch, torch-fidelity, diffusers) only when a command runs, so ``zoo --help``
starts without torch."""

from __future__ import annotations

import sys
import warnings
from typing import Any, TextIO

import typer

from ..errors import SamplerzooError, SamplerzooWarning
from . import amed, bench, catalogue, checkpoints, interrupts, likelihood, output, report, stats, tune

app = typer.Typer(help="samplerzoo: every diffusion sampler, measured.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
catalogue.add_commands(app)
checkpoints.add_commands(app)
bench.add_commands(app)
report.add_commands(app)
likelihood.add_commands(app)
tune.add_commands(app)
stats.add_commands(app)
amed.add_commands(app)

CLICK_EXCEPTION: type[Exception] = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
"""click's base exception, wherever typer takes click from (its own vendored copy since typer 0.20)."""


SHOWN: set[str] = set()
"""The samplerzoo warnings this command has printed: each is said once, wherever it is raised again."""


def show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                 file: TextIO | None = None, line: str | None = None) -> None:
    """samplerzoo's warnings as one ``warning: ...`` line, once each; others as Python prints them."""
    if issubclass(category, SamplerzooWarning):
        if str(message) not in SHOWN:
            SHOWN.add(str(message))
            output.warning(str(message))
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def run(args: list[str]) -> int:
    """Run one command and return its exit code."""
    SHOWN.clear()
    with interrupts.handled(), warnings.catch_warnings():
        warnings.simplefilter("always", SamplerzooWarning)
        warnings.showwarning = show_warning
        try:
            code: Any = app(args, standalone_mode=False)
        except SamplerzooError as exc:
            output.error(str(exc))
            return 1
        except typer.Abort:  # end of input at a prompt
            return 130
        except CLICK_EXCEPTION as exc:  # usage errors arrive here in non-standalone mode
            exc.show()  # type: ignore[attr-defined]
            return int(exc.exit_code)  # type: ignore[attr-defined]
        if interrupts.State.received is not None:  # typer has turned the interrupt into exit code 130
            interrupts.report_generic(next((arg for arg in args if not arg.startswith("-")), ""))
            return interrupts.exit_code()
    return code if isinstance(code, int) else 0


def main() -> None:
    """The ``zoo`` entry point: exits with the command's code (returns normally on success)."""
    code = run(sys.argv[1:])
    if code:
        sys.exit(code)
