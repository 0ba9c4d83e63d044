"""The ``zoo`` command line: parse, call the library, render. Errors become one line and exit code 1."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from ..errors import SamplerzooError
from . import bench, catalogue, checkpoints, likelihood, report

app = typer.Typer(help="samplerzoo: every diffusion sampler, measured.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
catalogue.add_commands(app)
checkpoints.add_commands(app)
bench.add_commands(app)
report.add_commands(app)
likelihood.add_commands(app)

stderr = Console(stderr=True)


def main() -> None:
    try:
        app(standalone_mode=False)
    except SamplerzooError as exc:
        stderr.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except typer.Abort:
        sys.exit(130)
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
