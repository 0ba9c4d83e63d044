"""``zoo checkpoints``, ``zoo train``, ``zoo sample``: the shipped models and what they produce."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..checks import positive
from ..errors import NonFiniteError, SamplerzooError
from .catalogue import JsonOption
from .options import check_device, parse_options
from .output import print_json, stderr, stdout, table

if TYPE_CHECKING:
    from torch import Tensor

    from ..denoiser import Checkpoint

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


def sample(checkpoint: Annotated[str, typer.Option(help="Checkpoint name, path or hub id org/name.")] = "digits",
           sampler: Annotated[str, typer.Option(help="Sampler name or alias.")] = "dpm2",
           nfe: Annotated[int, typer.Option(help="Exact number of denoiser calls per sample.")] = 20,
           schedule: Annotated[str, typer.Option(help="Sampling schedule.")] = "karras",
           seed: Annotated[int, typer.Option(help="First seed; sample i uses seed + i.")] = 0,
           n: Annotated[int, typer.Option("-n", help="Number of samples.")] = 64,
           out: Annotated[Path, typer.Option(help="PNG file to write.")] = Path("grid.png"),
           scale: Annotated[int, typer.Option(help=f"Pixel magnification in the PNG, 1 to {MAX_SCALE}.")] = 4,
           prompt: Annotated[list[str] | None, typer.Option(help="Prompt for a text-conditioned checkpoint "
                                                            "(repeatable: the sample with seed s takes prompt s mod P)."
                                                            )] = None,
           negative_prompt: Annotated[list[str] | None, typer.Option(help="Negative prompt (repeatable, cycled like "
                                                                     "the prompts); needs --guidance-scale.")] = None,
           label: Annotated[list[int] | None, typer.Option(help="Class label (repeatable: the sample with seed s "
                                                           "takes label s mod L; default s mod classes).")] = None,
           guidance_scale: Annotated[float | None, typer.Option(help="Classifier-free guidance scale (conditional "
                                                                "checkpoints; 1 or unset: none).")] = None,
           distilled_guidance: Annotated[float | None, typer.Option(help="The guidance scale a guidance-distilled "
                                                                    "checkpoint embeds (Flux dev; default 3.5), not "
                                                                    "CFG.")] = None,
           guidance: Annotated[str, typer.Option(help="The guidance rule combining CFG's two predictions (zoo "
                                                      "guidance): cfg, apg, cfg_zero_star, tcfg, ...")] = "cfg",
           guidance_option: Annotated[list[str] | None, typer.Option(help="A guidance option NAME=VALUE "
                                                                     "(repeatable), e.g. eta=0, rescale=0.7.")
                                      ] = None,
           device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
           dtype: Annotated[str, typer.Option(help="float32, float64, bfloat16 or float16.")] = "float32",
           batch: Annotated[int, typer.Option(help="Samples sampled and decoded at a time (does not change the "
                                                   "images).")] = 64,
           option: Annotated[list[str] | None, typer.Option(help="A sampler option NAME=VALUE (repeatable), e.g. "
                                                            "s_churn=10.")] = None,
           schedule_option: Annotated[list[str] | None, typer.Option(help="A schedule option NAME=VALUE "
                                                                     "(repeatable), e.g. rho=5.")] = None,
           compile: Annotated[bool, typer.Option("--compile", help="torch.compile the network first.")] = False,
           channels_last: Annotated[bool, typer.Option("--channels-last", help="Run a convolutional network in "
                                                                               "channels-last memory.")] = False,
           ) -> None:
    """Sample a grid of images with exactly --nfe denoiser calls each and write it as a PNG (never a grid of NaN/inf
    samples). Latent checkpoints' samples are decoded by their VAE."""
    positive("-n", n, "samples")
    positive("--nfe", nfe, "network evaluations")
    positive("--batch", batch, "samples per batch")
    if not 1 <= scale <= MAX_SCALE or isinstance(scale, bool):
        raise SamplerzooError(f"--scale {scale}: accepted: a whole number from 1 to {MAX_SCALE}")
    if out.suffix.lower() != ".png":
        raise SamplerzooError(f"--out {out}: accepted: a .png file path")
    options = parse_options(option)
    schedule_options = parse_options(schedule_option, "--schedule-option")
    guidance_options = parse_options(guidance_option, "--guidance-option")

    from PIL import Image

    from ..acceleration import accelerate
    from ..checkpoints import load
    from ..files import atomic_write, check_writable
    from ..plugins import get_sampler, get_schedule, guidance_method
    from ..precision import dtype_named, in_dtype

    get_sampler(sampler).check_options(options)
    check_device(device)
    # an unknown name, a bad schedule file or option fails before the checkpoint loads
    get_schedule(schedule).check_options(schedule_options)
    method = guidance_method(guidance, guidance_options)
    check_writable(out, "--out")
    request = {"labels": label, "prompts": prompt, "negative_prompts": negative_prompt,
               "guidance_scale": guidance_scale, "distilled_guidance": distilled_guidance, "guidance": method}
    model, _ = in_dtype(load(checkpoint), dtype_named(dtype), device, **request)  # a bad request fails here
    model = accelerate(model, compile=compile, channels_last=channels_last, device=device, dtype=dtype_named(dtype),
                       batch=min(batch, n), **request)
    seeds = range(seed, seed + n)
    images, calls, forwards = sample_images(model, sampler, nfe, seeds, batch, request, out, schedule=schedule,
                                            schedule_options=schedule_options, device=device,
                                            dtype=dtype_named(dtype), **options)
    grid = image_grid(images, columns=grid_columns(model.num_classes, label, prompt, n), scale=scale)
    png = io.BytesIO()
    Image.fromarray(grid.squeeze(-1).numpy() if grid.shape[-1] == 1 else grid.numpy()).save(png, format="PNG")
    atomic_write(out, png.getvalue())
    stdout.print(f"wrote {out}: {n} samples, {checkpoint}, {sampler}, {calls} denoiser calls and {forwards} network "
                 f"forwards a sample (counted), {schedule} schedule, seeds {seed}..{seed + n - 1}", highlight=False,
                 soft_wrap=True)


def grid_columns(num_classes: int, labels: list[int] | None, prompts: list[str] | None, n: int) -> int:
    """One column per label (or class) or prompt, so each column holds one condition; else a square grid."""
    if labels or num_classes:
        return len(labels) if labels else num_classes
    return len(prompts) if prompts and len(prompts) > 1 else int(n**0.5 + 0.999)


def sample_images(model: Checkpoint, sampler: str, nfe: int, seeds: range, batch: int, request: dict[str, Any],
                  out: Path, **settings: Any) -> tuple[Tensor, int, int]:
    """uint8 images of ``seeds``, sampled and decoded ``batch`` at a time (only the uint8 images are kept), with the
    denoiser calls and network forwards a sample; NaN/inf samples or images are an error."""
    import torch

    from ..data import to_uint8
    from ..denoiser import decode
    from ..finite import count_nonfinite
    from ..guidance import condition
    from ..sampling import generate

    images, calls, forwards = [], 0, 0
    for start in range(0, len(seeds), batch):
        chunk = seeds[start:start + batch]
        run = generate(condition(model, chunk, **request), sampler, nfe, chunk, model.sample_shape, **settings)
        if not run.finite:
            raise NonFiniteError(f"{run.nonfinite_reason()}; no grid written to {out}")
        decoded = decode(model, run.samples)  # a latent checkpoint's samples through its VAE
        if count_nonfinite(decoded):
            raise NonFiniteError(f"{count_nonfinite(decoded)} of {len(chunk)} decoded images are not finite (NaN or "
                                 f"inf); no grid written to {out}")
        images.append(to_uint8(decoded.float().cpu()))
        calls, forwards = run.counted_nfe, run.forwards
    return torch.cat(images), calls, forwards


def add_commands(app: typer.Typer) -> None:
    app.command("checkpoints")(list_checkpoints)
    app.command("train")(train)
    app.command("sample")(sample)
