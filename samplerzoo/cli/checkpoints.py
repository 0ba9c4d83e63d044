"""``zoo checkpoints``, ``zoo train``, ``zoo sample``: the shipped models and what they produce."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import torch
import typer
from rich.console import Console
from rich.table import Table
from torch import Tensor

from ..checkpoints import get_checkpoints
from ..errors import SamplerzooError

stdout = Console()
stderr = Console(stderr=True)
WEIGHTS = Path(__file__).resolve().parent.parent / "weights"
RESULTS = Path("results")


def list_checkpoints() -> None:
    """List the named checkpoints: parameterization, noise schedule, size, plugin."""
    table = Table(title="checkpoints")
    for column in ("name", "prediction", "noise schedule", "size", "description", "plugin"):
        table.add_column(column)
    for spec in sorted(get_checkpoints().values(), key=lambda s: s.name):
        table.add_row(spec.name, spec.prediction, spec.schedule, spec.size, spec.description, spec.plugin)
    stdout.print(table)


def train(name: Annotated[str, typer.Argument(help="Recipe name, e.g. digits, digits-v, digits-edm.")],
          steps: Annotated[int | None, typer.Option(help="Training steps (default: the recipe's).")] = None,
          seed: Annotated[int | None, typer.Option(help="Seed (default: the recipe's).")] = None,
          out: Annotated[Path | None, typer.Option(help="Output directory (default: the shipped weights).")] = None,
          ) -> None:
    """Train a shipped digits checkpoint (or the digits classifier) from scratch, deterministically given the seed.

    digits-latent trains its autoencoder and then its DiT; --steps sets the DiT's steps (the autoencoder's scale
    with them)."""
    from ..classifier import save_classifier, train_classifier
    from ..latent_training import LATENT_RECIPES, train_latent_and_save
    from ..training import RECIPES, train_and_save

    def log(step: int, loss: float) -> None:
        stderr.print(f"{name} step {step}: loss {loss:.4f}")

    command = " ".join(["zoo train", name, *([f"--steps {steps}"] if steps else []),
                        *([f"--seed {seed}"] if seed is not None else [])])
    if name == "digits-classifier":
        options = {k: v for k, v in {"steps": steps, "seed": seed}.items() if v is not None}
        model, record = train_classifier(log=log, **options)  # type: ignore[arg-type]
        save_classifier(model, out or WEIGHTS / name)
        summary = f"held-out accuracy {record['held_out_accuracy']:.4f}"
    elif name in RECIPES or name in LATENT_RECIPES:
        train_named = train_and_save if name in RECIPES else train_latent_and_save
        record = train_named(name, out or WEIGHTS / name, steps, seed, log=log)
        summary = f"final loss {record['final_loss']:.4f} after {record['recipe']['steps']} steps"
    else:
        raise SamplerzooError(f"unknown recipe {name!r}; known: {', '.join([*RECIPES, *LATENT_RECIPES])}, "
                              "digits-classifier")
    record_path = RESULTS / "training" / f"{name}.json"
    record_path.parent.mkdir(parents=True, exist_ok=True)
    record_path.write_text(json.dumps({"command": command, **record}, indent=1) + "\n")
    stdout.print(f"{name}: {summary}, {record['seconds']:.0f} s; record in {record_path}")


def image_grid(images: Tensor, columns: int, scale: int) -> Tensor:
    """uint8 images (N, C, H, W) tiled into one (rows*H*scale, columns*W*scale, C) picture, 1-pixel gaps."""
    n, c, h, w = images.shape
    rows = -(-n // columns)
    padded = torch.full((rows * columns, c, h + 1, w + 1), 255, dtype=torch.uint8)
    padded[:n, :, :h, :w] = images
    grid = padded.reshape(rows, columns, c, h + 1, w + 1).permute(0, 3, 1, 4, 2).reshape(rows * (h + 1),
                                                                                           columns * (w + 1), c)
    return grid.repeat_interleave(scale, 0).repeat_interleave(scale, 1)


def sample(checkpoint: Annotated[str, typer.Option(help="Checkpoint name or path.")] = "digits",
           sampler: Annotated[str, typer.Option(help="Sampler name or alias.")] = "dpm2",
           nfe: Annotated[int, typer.Option(help="Exact number of network evaluations per sample.")] = 20,
           schedule: Annotated[str, typer.Option(help="Sampling schedule.")] = "karras",
           seed: Annotated[int, typer.Option(help="First seed; sample i uses seed + i.")] = 0,
           n: Annotated[int, typer.Option("-n", help="Number of samples.")] = 64,
           out: Annotated[Path, typer.Option(help="PNG file to write.")] = Path("grid.png"),
           scale: Annotated[int, typer.Option(help="Pixel magnification in the PNG.")] = 4,
           guidance_scale: Annotated[float | None, typer.Option(help="Classifier-free guidance scale (class-"
                                                                 "conditional checkpoints; labels are seed % classes)."
                                                            )] = None) -> None:
    """Sample a grid of images with exactly --nfe network evaluations each and write it as a PNG."""
    from PIL import Image

    from ..checkpoints import load
    from ..data import to_uint8
    from ..denoiser import decode
    from ..guidance import class_conditioned
    from ..plugins import get_schedule
    from ..sampling import generate

    get_schedule(schedule)  # an unknown name or a bad schedule file fails before the checkpoint loads
    model = load(checkpoint)
    seeds = range(seed, seed + n)
    run = generate(class_conditioned(model, seeds, guidance_scale), sampler, nfe, seeds, model.sample_shape,
                   schedule=schedule)
    columns = model.num_classes or int(n**0.5 + 0.999)  # conditional: label seed % classes, one column each
    grid = image_grid(to_uint8(decode(model, run.samples)), columns=columns, scale=scale)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid.squeeze(-1).numpy() if grid.shape[-1] == 1 else grid.numpy()).save(out)
    stdout.print(f"wrote {out}: {n} samples, {checkpoint}, {sampler}, {run.counted_nfe} NFE (counted), "
                 f"{schedule} schedule, seeds {seed}..{seed + n - 1}")


def add_commands(app: typer.Typer) -> None:
    app.command("checkpoints")(list_checkpoints)
    app.command("train")(train)
    app.command("sample")(sample)
