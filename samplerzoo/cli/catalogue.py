"""``zoo list``, ``zoo schedules``, ``zoo plugins``, ``zoo info``: what the registry holds."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from ..plugins import get_sampler, get_samplers, get_schedules, registry
from ..registry import SamplerSpec

stdout = Console()
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def order_text(spec: SamplerSpec) -> str:
    """"3 (2)": third-order steps, second-order global error (see SamplerSpec.global_order)."""
    return str(spec.order) + ("" if spec.global_order is None else f" ({spec.global_order})")


def list_samplers(as_json: JsonOption = False) -> None:
    """List the registered samplers: order (of a step; global in brackets where lower), evaluations per step,
    stochasticity, providing plugin."""
    specs = sorted(get_samplers().values(), key=lambda s: s.name)
    if as_json:
        rows = [{"name": s.name, "aliases": list(s.aliases), "order": s.order,
                 "global_order": s.convergence_order, "nfe": s.cost,
                 "evals_per_step": s.evals_per_step, "stochastic": s.stochastic, "plugin": s.plugin}
                for s in specs]
        stdout.print_json(json.dumps(rows))
        return
    table = Table(title=f"{len(specs)} samplers")
    for column in ("name", "aliases", "order (global)", "NFE per step", "NFE of N steps", "kind", "plugin"):
        table.add_column(column)
    for s in specs:
        table.add_row(s.name, ", ".join(s.aliases), order_text(s), str(s.evals_per_step), s.cost.replace("steps", "N"),
                      "stochastic" if s.stochastic else "deterministic", s.plugin)
    stdout.print(table)


def list_schedules(as_json: JsonOption = False) -> None:
    """List the registered sampling schedules."""
    specs = sorted(get_schedules().values(), key=lambda s: s.name)
    if as_json:
        rows = [{"name": s.name, "aliases": list(s.aliases), "description": s.description,
                 "needs_table": s.needs_table, "argument": s.argument_help, "paper": s.paper,
                 "reference": s.reference, "plugin": s.plugin} for s in specs]
        stdout.print_json(json.dumps(rows))
        return
    table = Table(title=f"{len(specs)} schedules")
    for column in ("name", "aliases", "description", "needs trained table", "plugin"):
        table.add_column(column)
    for s in specs:
        table.add_row(s.name, ", ".join(s.aliases), s.description, "yes" if s.needs_table else "", s.plugin)
    stdout.print(table)


def list_plugins() -> None:
    """List the loaded plugins, what each registered, and any errors."""
    table = Table(title="plugins")
    for column in ("plugin", "distribution", "samplers", "schedules", "errors"):
        table.add_column(column)
    errors = []
    for info in registry().plugins.values():
        dist = f"{info.distribution} {info.version}".strip()
        table.add_row(info.name, dist, ", ".join(info.samplers), ", ".join(info.schedules), str(len(info.errors)))
        errors += [f"plugin {info.name!r} ({dist or 'registered at run time'}): {error}" for error in info.errors]
    stdout.print(table)
    if errors:  # below the table, one unwrapped line each: a table cell would wrap them at any terminal width
        stdout.print("Skipped (everything else works):\n" + "\n".join(errors), soft_wrap=True, highlight=False,
                     markup=False)


def info(name: Annotated[str, typer.Argument(help="Sampler name or alias.")]) -> None:
    """Describe one sampler."""
    s = get_sampler(name)
    stdout.print(f"[bold]{s.name}[/bold] ({', '.join(s.aliases) or 'no aliases'})", highlight=False)
    stdout.print(f"order {order_text(s)}, {'stochastic' if s.stochastic else 'deterministic'}, "
                 f"NFE of N steps to sigma=0: {s.cost.replace('steps', 'N')}", highlight=False)
    stdout.print(f"paper: {s.paper}\nreference: {s.reference}\nplugin: {s.plugin}", highlight=False)


def add_commands(app: typer.Typer) -> None:
    app.command("list")(list_samplers)
    app.command("schedules")(list_schedules)
    app.command("plugins")(list_plugins)
    app.command("info")(info)
