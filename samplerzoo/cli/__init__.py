"""The ``zoo`` command line: parse, call the library, render. Errors become one line and exit code 1."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from ..errors import SamplerzooError
from . import bench, catalogue, checkpoints, likelihood, report, tune

app = typer.Typer(help="samplerzoo: every diffusion sampler, measured.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
catalogue.add_commands(app)
checkpoints.add_commands(app)
bench.add_commands(app)
report.add_commands(app)
likelihood.add_commands(app)
tune.add_commands(app)

stderr = Console(stderr=True)
CLICK_EXCEPTION: type[Exception] = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")
"""click's base exception, wherever typer takes click from (its own vendored copy since typer 0.20)."""


def main() -> None:
    try:
        app(standalone_mode=False)
    except SamplerzooError as exc:
        stderr.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except typer.Abort:
        sys.exit(130)
    except CLICK_EXCEPTION as exc:  # usage errors arrive here in non-standalone mode
        exc.show()  # type: ignore[attr-defined]
        sys.exit(exc.exit_code)  # type: ignore[attr-defined]
