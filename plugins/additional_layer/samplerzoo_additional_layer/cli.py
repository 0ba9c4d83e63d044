"""``zoo-additional-layer``: train the shipped add_net, and benchmark v1 / v2 against DDIM."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from samplerzoo.errors import SamplerzooError

from .layer import WEIGHTS, save_layer

app = typer.Typer(help="The 'additional layer' method of seed 002 on samplerzoo.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)
stdout = Console()
stderr = Console(stderr=True)


@app.command()
def train(checkpoint: Annotated[str, typer.Option(help="Frozen checkpoint the layer is trained on.")] = "digits-v",
          steps: Annotated[int, typer.Option(help="Training steps.")] = 3000,
          seed: Annotated[int, typer.Option(help="Seed of the initialisation and of the batches.")] = 0,
          final_relu: Annotated[bool, typer.Option(help="Keep the paper's final ReLU (forces v >= 0).")] = False,
          min_sigma: Annotated[float, typer.Option(help="Train only on noise levels sigma >= this (ablation).")]
          = 0.0,
          out: Annotated[Path, typer.Option(help="Output directory (default: the shipped layer).")] = WEIGHTS,
          ) -> None:
    """Train add_net on a frozen checkpoint with the seed's weighted v-loss; writes weights and a training record."""
    from .training import LayerRecipe, train_layer

    recipe = LayerRecipe(checkpoint=checkpoint, steps=steps, seed=seed, final_relu=final_relu, min_sigma=min_sigma)
    command = " ".join(["zoo-additional-layer train", f"--checkpoint {checkpoint}", f"--steps {steps}",
                        f"--seed {seed}", *(["--final-relu"] if final_relu else []),
                        *([f"--min-sigma {min_sigma:g}"] if min_sigma else []),
                        *([f"--out {out}"] if out != WEIGHTS else [])])
    layer, record = train_layer(recipe, log=lambda step, loss: stderr.print(f"step {step}: loss {loss:.4f}"))
    save_layer(layer, out, checkpoint, {"command": command, **record})
    stdout.print(f"layer: final loss {record['final_loss']:.4f} after {steps} steps, {record['seconds']:.0f} s; "
                 f"written to {out}")
    stdout.print(json.dumps(record["held_out"], indent=1))


@app.command()
def bench(steps: Annotated[str, typer.Option(help="Comma-separated step counts (= NFE per sample).")] = "5,10,50",
          samples: Annotated[int, typer.Option(help="Samples per point, seeds seed..seed+samples-1.")] = 2000,
          batch: Annotated[int, typer.Option(help="Sampling batch (a multiple of v2's group of 100).")] = 500,
          seed: Annotated[int, typer.Option(help="First seed (class = seed % 10).")] = 0,
          schedule: Annotated[str, typer.Option(help="Sampling schedule.")] = "trailing",
          out: Annotated[Path, typer.Option(help="JSON file for the rows and the setting.")]
          = Path("results/additional-layer/bench.json"),
          layer: Annotated[list[str] | None, typer.Option(help="Also run v1 and v2 with the layer in this "
                                                                "directory (repeatable).")] = None,
          standard: Annotated[bool, typer.Option(help="Run the standard variants: DDIM on digits-cond and digits-v, "
                                                      "v1 and v2 with the shipped layer.")] = True,
          ) -> None:
    """Wall time, FID/KID, Inception Score and class hit rate of DDIM, v1 and v2; prints a markdown table."""
    from .benchmark import VARIANTS, benchmark, markdown_table, with_layer

    try:
        step_counts = [int(s) for s in steps.split(",")]
    except ValueError:
        raise SamplerzooError(f"--steps must be comma-separated integers, got {steps!r}") from None
    variants = (VARIANTS if standard else ()) + tuple(v for directory in layer or [] for v in with_layer(directory))
    rows, setting = benchmark(step_counts, samples, batch, seed, schedule, variants,
                              progress=lambda variant, n: stderr.print(f"{variant.label}: {n} steps"))
    command = " ".join([f"zoo-additional-layer bench --steps {steps} --samples {samples} --batch {batch}",
                        f"--seed {seed} --schedule {schedule} --out {out}", *([] if standard else ["--no-standard"]),
                        *(f"--layer {directory}" for directory in layer or [])])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"command": command, "setting": setting, "rows": rows}, indent=1) + "\n")
    stdout.print(markdown_table(rows), highlight=False, soft_wrap=True)


def main() -> None:
    """Usage errors are click's (standalone mode); samplerzoo errors become one line and exit code 1."""
    try:
        app()
    except SamplerzooError as exc:
        stderr.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)
