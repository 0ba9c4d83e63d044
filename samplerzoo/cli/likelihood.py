"""``zoo nll``: bits/dim of the digits under a checkpoint, through the probability-flow ODE."""

from __future__ import annotations

import time
from typing import Annotated, cast

import typer

from ..checks import positive
from ..errors import SamplerzooError, UnknownNameError
from .output import stderr, stdout

SPLITS = ("train", "test")


def nll(checkpoint: Annotated[str, typer.Option(help="Checkpoint name or path.")] = "digits",
        split: Annotated[str, typer.Option(help="Digits split: train or test.")] = "test",
        samples: Annotated[int | None, typer.Option(help="The first N images of the split (default: all).")] = None,
        divergence: Annotated[str, typer.Option(help="exact (d vector-Jacobian products per call) or hutchinson."
                                                )] = "hutchinson",
        probes: Annotated[int, typer.Option(help="Hutchinson probes per image.")] = 1,
        probe: Annotated[str, typer.Option(help="Hutchinson probe: rademacher or gaussian.")] = "rademacher",
        sigma_min: Annotated[float | None, typer.Option(help="Density at this sigma (default: the model's).")] = None,
        sigma_max: Annotated[float | None, typer.Option(help="Terminal sigma (default: the model's).")] = None,
        bin_width: Annotated[float | None, typer.Option(help="Dequantization bin width in [-1, 1] (default 2/256: "
                                                             "8-bit).")] = None,
        rtol: Annotated[float, typer.Option(help="Relative tolerance of the adaptive solver.")] = 1e-5,
        atol: Annotated[float, typer.Option(help="Absolute tolerance of the adaptive solver.")] = 1e-5,
        seed: Annotated[int, typer.Option(help="First seed; image i dequantizes and probes with seed + i.")] = 0,
        batch: Annotated[int, typer.Option(help="Images per solver batch (does not change the results).")] = 100,
        sigma_to_t: Annotated[str, typer.Option(help="Discrete-time VP networks: smooth (a C1 sigma -> t through "
                                                      "the trained levels), model (the checkpoint's own map), log, "
                                                      "linear or nearest.")] = "smooth",
        ) -> None:
    """Bits/dim of a digits split under a checkpoint (class-conditional: its null-label model), with the standard
    error over images and the counted denoiser calls. Progress (images, with an ETA) goes to stderr."""
    from rich.progress import (
        BarColumn,
        Progress,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from ..checkpoints import load
    from ..data import Split, digits
    from ..likelihood import BIN_WIDTH, SIGMA_TO_T, image_bits_per_dim, sigma_range, with_sigma_to_t

    if split not in SPLITS:
        raise UnknownNameError("split", split, SPLITS)
    if sigma_to_t not in SIGMA_TO_T:
        raise UnknownNameError("sigma_to_t", sigma_to_t, SIGMA_TO_T)
    images = digits(cast(Split, split))[0]
    if samples is not None and not 1 <= samples <= len(images):
        raise SamplerzooError(f"--samples {samples}: the {split} split has {len(images)} images; accepted: "
                              f"1..{len(images)}")
    positive("--batch", batch, "images per batch")
    positive("--probes", probes, "probes per image")
    width = BIN_WIDTH if bin_width is None else bin_width
    if not 0 < width <= 2:
        raise SamplerzooError(f"--bin-width {bin_width}: accepted: a width in (0, 2]")
    images = images[:samples]
    model = load(checkpoint)
    low, high = sigma_range(model, sigma_min, sigma_max)
    bars = Progress(TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                    TextColumn("{task.completed:.0f}/{task.total:.0f} images"), TimeElapsedColumn(),
                    TextColumn("ETA"), TimeRemainingColumn(), console=stderr, transient=True,
                    disable=not stderr.is_terminal)
    task = bars.add_task(f"nll {checkpoint} {split}", total=len(images))
    start = time.perf_counter()
    with bars:
        result = image_bits_per_dim(model, images, range(seed, seed + len(images)), bin_width=width, batch=batch,
                                    sigma_min=low, sigma_max=high, divergence=divergence, probes=probes,
                                    probe=probe, rtol=rtol, atol=atol, sigma_to_t=sigma_to_t,
                                    progress=lambda done: bars.update(task, completed=done))
    seconds = time.perf_counter() - start
    bpd = result.bpd.double()
    error = float(bpd.std() / len(bpd) ** 0.5) if len(bpd) > 1 else float("nan")
    estimate = "exact divergence" if divergence == "exact" else f"Hutchinson, {probes} {probe} probe(s)"
    read_as = getattr(getattr(with_sigma_to_t(model, sigma_to_t), "schedule", None), "sigma_to_t", None)
    estimate += f", sigma -> t {read_as}" if read_as else ""
    stdout.print(f"{checkpoint}, {split} split, {len(bpd)} images: {float(bpd.mean()):.4f} +- {error:.4f} bits/dim "
                 f"(standard error over images); sigma {low:.6g} -> {high:.6g}, {estimate}, bin width {width:.6g}; "
                 f"{result.nfe} denoiser calls in {result.batches} batch(es) of up to {batch}; {seconds:.1f} s",
                 highlight=False, soft_wrap=True)


def add_commands(app: typer.Typer) -> None:
    app.command("nll")(nll)
