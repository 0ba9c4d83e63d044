"""``zoo checkpoints``, ``zoo train``, ``zoo sample``: the shipped models and what they produce."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..checks import positive
from ..errors import NonFiniteError, SamplerzooError
from .catalogue import JsonOption
from .options import parse_options
from .output import print_json, stderr, stdout, table

if TYPE_CHECKING:
    from torch import Tensor

WEIGHTS = Path(__file__).resolve().parent.parent / "weights"
RESULTS = Path("results")
MAX_SCALE = 64


def list_checkpoints(as_json: JsonOption = False) -> None:
    """List the named checkpoints: parameterization, noise schedule, size, plugin."""
    from ..checkpoints import get_checkpoints

    specs = sorted(get_checkpoints().values(), key=lambda s: s.name)
    if as_json:
        print_json([{"name": s.name, "prediction": s.prediction, "schedule": s.schedule, "size": s.size,
                     "description": s.description, "aliases": list(s.aliases), "plugin": s.plugin} for s in specs])
        return
    table("checkpoints", ("name", "prediction", "noise schedule", "size", "description", "plugin"),
          [(s.name, s.prediction, s.schedule, s.size, s.description, s.plugin) for s in specs])


def train(name: Annotated[str, typer.Argument(help="Recipe name, e.g. digits, digits-v, digits-edm.")],
          steps: Annotated[int | None, typer.Option(help="Training steps (default: the recipe's).")] = None,
          seed: Annotated[int | None, typer.Option(help="Seed (default: the recipe's).")] = None,
          out: Annotated[Path | None, typer.Option(help="Output directory (default: the shipped weights).")] = None,
          ) -> None:
    """Train a shipped digits checkpoint (or the digits classifier) from scratch, deterministically given the seed.

    digits-latent trains its autoencoder and then its DiT; --steps sets the DiT's steps (the autoencoder's scale
    with them)."""
    from ..classifier import save_classifier, train_classifier
    from ..files import check_writable
    from ..latent_training import LATENT_RECIPES, train_latent_and_save
    from ..training import RECIPES, train_and_save

    if name != "digits-classifier" and name not in RECIPES and name not in LATENT_RECIPES:
        raise SamplerzooError(f"unknown recipe {name!r}; known: {', '.join([*RECIPES, *LATENT_RECIPES])}, "
                              "digits-classifier")
    if steps is not None:
        positive("--steps", steps, "training steps")
    folder = out or WEIGHTS / name
    check_writable(folder / ".samplerzoo-probe", "--out")
    record_path = check_writable(RESULTS / "training" / f"{name}.json", "training record")

    def log(step: int, loss: float) -> None:
        stderr.print(f"{name} step {step}: loss {loss:.4f}")

    command = " ".join(["zoo train", name, *([f"--steps {steps}"] if steps else []),
                        *([f"--seed {seed}"] if seed is not None else [])])
    if name == "digits-classifier":
        options = {k: v for k, v in {"steps": steps, "seed": seed}.items() if v is not None}
        model, record = train_classifier(log=log, **options)  # type: ignore[arg-type]
        save_classifier(model, folder)
        summary = f"held-out accuracy {record['held_out_accuracy']:.4f}"
    else:
        train_named = train_and_save if name in RECIPES else train_latent_and_save
        record = train_named(name, folder, steps, seed, log=log)
        summary = f"final loss {record['final_loss']:.4f} after {record['recipe']['steps']} steps"
    record_path.write_text(json.dumps({"command": command, **record}, indent=1) + "\n")
    stdout.print(f"{name}: {summary}, {record['seconds']:.0f} s; record in {record_path}")


def image_grid(images: Tensor, columns: int, scale: int) -> Tensor:
    """uint8 images (N, C, H, W) tiled into one (rows*H*scale, columns*W*scale, C) picture, 1-pixel gaps."""
    import torch

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
           scale: Annotated[int, typer.Option(help=f"Pixel magnification in the PNG, 1 to {MAX_SCALE}.")] = 4,
           guidance_scale: Annotated[float | None, typer.Option(help="Classifier-free guidance scale (class-"
                                                                 "conditional checkpoints; labels are seed % classes)."
                                                            )] = None,
           dtype: Annotated[str, typer.Option(help="float32, float64, bfloat16 or float16.")] = "float32",
           option: Annotated[list[str] | None, typer.Option(help="A sampler option NAME=VALUE (repeatable), e.g. "
                                                            "s_churn=10.")] = None,
           schedule_option: Annotated[list[str] | None, typer.Option(help="A schedule option NAME=VALUE "
                                                                     "(repeatable), e.g. rho=5.")] = None) -> None:
    """Sample a grid of images with exactly --nfe network evaluations each and write it as a PNG (never a grid of
    NaN/inf samples)."""
    positive("-n", n, "samples")
    positive("--nfe", nfe, "network evaluations")
    if not 1 <= scale <= MAX_SCALE or isinstance(scale, bool):
        raise SamplerzooError(f"--scale {scale}: accepted: a whole number from 1 to {MAX_SCALE}")
    if out.suffix.lower() != ".png":
        raise SamplerzooError(f"--out {out}: accepted: a .png file path")
    options = parse_options(option)
    schedule_options = parse_options(schedule_option, "--schedule-option")

    from PIL import Image

    from ..checkpoints import load
    from ..data import to_uint8
    from ..denoiser import decode
    from ..files import atomic_write, check_writable
    from ..finite import count_nonfinite
    from ..guidance import class_conditioned
    from ..plugins import get_sampler, get_schedule
    from ..precision import dtype_named, in_dtype
    from ..sampling import generate

    get_sampler(sampler).check_options(options)
    # an unknown name, a bad schedule file or option fails before the checkpoint loads
    get_schedule(schedule).check_options(schedule_options)
    check_writable(out, "--out")
    model, _ = in_dtype(load(checkpoint), dtype_named(dtype))
    seeds = range(seed, seed + n)
    run = generate(class_conditioned(model, seeds, guidance_scale), sampler, nfe, seeds, model.sample_shape,
                   schedule=schedule, schedule_options=schedule_options, dtype=dtype_named(dtype), **options)
    if not run.finite:
        raise NonFiniteError(f"{run.nonfinite_reason()}; no grid written to {out}")
    images = decode(model, run.samples)  # a latent checkpoint's samples through its VAE
    if count_nonfinite(images):
        raise NonFiniteError(f"{count_nonfinite(images)} of {n} decoded images are not finite (NaN or inf); no grid "
                             f"written to {out}")
    columns = model.num_classes or int(n**0.5 + 0.999)  # conditional: label seed % classes, one column each
    grid = image_grid(to_uint8(images.float()), columns=columns, scale=scale)
    png = io.BytesIO()
    Image.fromarray(grid.squeeze(-1).numpy() if grid.shape[-1] == 1 else grid.numpy()).save(png, format="PNG")
    atomic_write(out, png.getvalue())
    stdout.print(f"wrote {out}: {n} samples, {checkpoint}, {sampler}, {run.counted_nfe} NFE (counted), "
                 f"{schedule} schedule, seeds {seed}..{seed + n - 1}", highlight=False, soft_wrap=True)


def add_commands(app: typer.Typer) -> None:
    app.command("checkpoints")(list_checkpoints)
    app.command("train")(train)
    app.command("sample")(sample)
