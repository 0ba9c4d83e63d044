"""``zoo list``, ``zoo schedules``, ``zoo guidance``, ``zoo plugins``, ``zoo info``: what the registry holds.

The registry is imported when a command runs, not when the CLI starts, so ``zoo --help`` stays fast."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from .output import print_json, stdout, table

if TYPE_CHECKING:
    from ..registry import SamplerSpec

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def order_text(spec: SamplerSpec) -> str:
    """"3 (2)": third-order steps, second-order global error (see SamplerSpec.global_order)."""
    return str(spec.order) + ("" if spec.global_order is None else f" ({spec.global_order})")


def sampler_row(s: SamplerSpec) -> dict[str, Any]:
    return {"name": s.name, "aliases": list(s.aliases), "order": s.order, "global_order": s.convergence_order,
            "nfe": s.cost, "evals_per_step": s.evals_per_step, "stochastic": s.stochastic, "plugin": s.plugin}


def list_samplers(as_json: JsonOption = False) -> None:
    """List the registered samplers: order (of a step; global in brackets where lower), evaluations per step,
    stochasticity, providing plugin."""
    from ..plugins import get_samplers

    specs = sorted(get_samplers().values(), key=lambda s: s.name)
    if as_json:
        print_json([sampler_row(s) for s in specs])
        return
    table(f"{len(specs)} samplers", ("name", "aliases", "order (global)", "NFE per step", "NFE of N steps", "kind",
                                     "plugin"),
          [(s.name, ", ".join(s.aliases), order_text(s), str(s.evals_per_step), s.cost.replace("steps", "N"),
            "stochastic" if s.stochastic else "deterministic", s.plugin) for s in specs])


def list_schedules(as_json: JsonOption = False) -> None:
    """List the registered sampling schedules."""
    from ..plugins import get_schedules

    specs = sorted(get_schedules().values(), key=lambda s: s.name)
    if as_json:
        print_json([{"name": s.name, "aliases": list(s.aliases), "description": s.description,
                     "needs_table": s.needs_table, "argument": s.argument_help, "paper": s.paper,
                     "reference": s.reference, "plugin": s.plugin} for s in specs])
        return
    table(f"{len(specs)} schedules", ("name", "aliases", "description", "needs trained table", "plugin"),
          [(s.name, ", ".join(s.aliases), s.description, "yes" if s.needs_table else "", s.plugin) for s in specs])


def list_guidance(as_json: JsonOption = False) -> None:
    """List the registered guidance rules (``--guidance``): how classifier-free guidance combines its two
    predictions, the space each acts in by default, and its options (every rule also takes space and rescale)."""
    from ..plugins import get_guidances
    from ..signatures import keyword_names

    specs = sorted(get_guidances().values(), key=lambda s: s.name)
    rows: list[dict[str, Any]] = [{"name": s.name, "aliases": list(s.aliases), "description": s.description,
                                   "space": s.space,
                                   "options": list(keyword_names(s.build, ()) or ()), "paper": s.paper,
                                   "reference": s.reference, "plugin": s.plugin} for s in specs]
    if as_json:
        print_json(rows)
        return
    table(f"{len(specs)} guidance rules", ("name", "aliases", "description", "space", "options", "plugin"),
          [(r["name"], ", ".join(r["aliases"]), r["description"], r["space"], ", ".join(r["options"]), r["plugin"])
           for r in rows])


def list_plugins(as_json: JsonOption = False) -> None:
    """List the loaded plugins, what each registered, and any errors (a broken plugin, a clashing name, two
    distributions registering the same entry-point name)."""
    from ..plugins import registry

    infos = list(registry().plugins.values())
    if as_json:
        print_json([{"plugin": i.name, "distribution": i.distribution, "version": i.version, "samplers": i.samplers,
                     "schedules": i.schedules, "checkpoints": i.checkpoints, "errors": i.errors} for i in infos])
        return
    table("plugins", ("plugin", "distribution", "samplers", "schedules", "checkpoints", "errors"),
          [(i.name, f"{i.distribution} {i.version}".strip(), ", ".join(i.samplers), ", ".join(i.schedules),
            ", ".join(i.checkpoints), str(len(i.errors))) for i in infos])
    errors = [f"plugin {i.name!r} ({f'{i.distribution} {i.version}'.strip() or 'registered at run time'}): {error}"
              for i in infos for error in i.errors]
    if errors:  # below the table, one unwrapped line each: a table cell would wrap them at any terminal width
        stdout.print("Skipped (everything else works):\n" + "\n".join(errors), soft_wrap=True, highlight=False,
                     markup=False)


def info(name: Annotated[str, typer.Argument(help="Sampler name or alias.")], as_json: JsonOption = False) -> None:
    """Describe one sampler."""
    from ..plugins import get_sampler

    s = get_sampler(name)
    if as_json:
        print_json({**sampler_row(s), "paper": s.paper, "reference": s.reference, "options": s.option_names()})
        return
    stdout.print(f"[bold]{s.name}[/bold] ({', '.join(s.aliases) or 'no aliases'})", highlight=False)
    stdout.print(f"order {order_text(s)}, {'stochastic' if s.stochastic else 'deterministic'}, "
                 f"NFE of N steps to sigma=0: {s.cost.replace('steps', 'N')}", highlight=False, markup=False,
                 soft_wrap=True)
    options = s.option_names()
    stdout.print(f"options: {', '.join(options) if options else 'none' if options is not None else 'any'}\n"
                 f"paper: {s.paper}\nreference: {s.reference}\nplugin: {s.plugin}", highlight=False, markup=False,
                 soft_wrap=True)


def add_commands(app: typer.Typer) -> None:
    app.command("list")(list_samplers)
    app.command("schedules")(list_schedules)
    app.command("guidance")(list_guidance)
    app.command("plugins")(list_plugins)
    app.command("info")(info)
