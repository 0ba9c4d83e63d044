"""``zoo bench``: sweep samplers x schedules x NFE into FID/KID, appended to a results file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..bench import distributed
from ..bench.harness import DTYPES, Point, sweep
from ..bench.harness import Progress as Callbacks
from ..errors import SamplerzooError

stdout = Console()
stderr = Console(stderr=True)


def split_names(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def split_ints(value: str, what: str) -> list[int]:
    try:
        numbers = [int(v) for v in split_names(value)]
    except ValueError:
        raise SamplerzooError(f"{what} must be comma-separated integers, got {value!r}") from None
    if not numbers or min(numbers) < 1:
        raise SamplerzooError(f"{what} must be positive integers, got {value!r}")
    return numbers


def render(rows: list[dict[str, Any]], title: str) -> Table:
    metric_names = sorted({m for row in rows for m in row.get("metrics", {}) if not m.endswith("_std")})
    table = Table(title=title)
    for column in ("sampler", "schedule", "NFE", "counted", "ends at", *metric_names, "seconds", "status"):
        table.add_column(column, justify="right" if column not in ("sampler", "schedule", "status") else "left")
    for row in rows:
        metrics = row.get("metrics", {})
        table.add_row(row["sampler"], row["schedule"], str(row["requested_nfe"]), str(row.get("counted_nfe", "-")),
                      {"zero": "0", "sigma_min": "sigma_min", "denoise": "D(sigma_min)"}.get(
                          row.get("final_step_used", ""), "-"),
                      *[f"{metrics[m]:.4g}" if m in metrics else "-" for m in metric_names],
                      f"{row['wall_seconds']:.1f}" if "wall_seconds" in row else "-",
                      row["status"] if row["status"] == "ok" else f"unreachable: {row['reason']}")
    return table


def bench(
    checkpoint: Annotated[str, typer.Option(help="Checkpoint name or path.")] = "digits",
    sampler: Annotated[str, typer.Option(help="Comma-separated sampler names or aliases.")] = "dpm2",
    schedule: Annotated[str, typer.Option(help="Comma-separated schedules.")] = "karras",
    nfe: Annotated[str, typer.Option(help="Comma-separated exact NFE budgets.")] = "10,20",
    samples: Annotated[int, typer.Option(help="Samples per point.")] = 2000,
    batch: Annotated[int, typer.Option(help="Sampling batch size (does not change the images).")] = 500,
    seed: Annotated[int, typer.Option(help="First seed; sample i uses seed + i.")] = 0,
    metrics: Annotated[str, typer.Option(help="Comma-separated: fid, kid, isc.")] = "fid,kid",
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    dtype: Annotated[str, typer.Option(help=f"One of {', '.join(DTYPES)}.")] = "float32",
    final_step: Annotated[str, typer.Option(help="auto (0 if the budget allows, else sigma_min), zero, sigma_min or "
                                                 "denoise.")] = "auto",
    results: Annotated[Path | None, typer.Option(help="JSON-lines results file (default results/bench-NAME.jsonl).")]
    = None,
    guidance_scale: Annotated[float | None, typer.Option(help="Classifier-free guidance scale for class-conditional "
                                                              "checkpoints (labels are seed % classes).")] = None,
    noise: Annotated[str, typer.Option(help="Per-sample noise: counter (hashed per seed, batched) or torch (one "
                                            "torch.Generator per seed, NVlabs/edm's draws).")] = "counter",
) -> None:
    """Sweep samplers x schedules x NFE on a checkpoint: exact NFE, per-sample seeds, FID/KID, resumable; under
    torchrun the processes share each point's samples."""
    if dtype not in DTYPES:
        raise SamplerzooError(f"unknown dtype {dtype!r}; known: {', '.join(DTYPES)}")
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise SamplerzooError("--device cuda was asked for, but no CUDA device is available")
    path = results or Path("results") / f"bench-{Path(checkpoint).name}.jsonl"
    nfes = split_ints(nfe, "--nfe")
    distributed.join(device)  # under torchrun: only the first process draws and prints
    first = distributed.rank() == 0
    bars = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=stderr, transient=True, disable=not first)
    task = bars.add_task("sampling", total=None)

    def start_point(point: Point, total: int) -> None:
        bars.start()  # only once work begins, so an early error stays one line
        bars.reset(task, total=total, description=f"{point.sampler} {point.schedule} NFE {point.nfe}")

    try:
        rows = sweep(checkpoint, split_names(sampler), split_names(schedule), nfes, samples, seed, path, batch=batch,
                     device=device, progress=Callbacks(start_point, lambda n: bars.advance(task, n)),
                     metric_names=tuple(split_names(metrics)), final_step=final_step, dtype=dtype,
                     guidance_scale=guidance_scale, noise=noise)
    finally:
        if bars.live.is_started:
            bars.stop()
    if not first:
        return
    floors: dict[str, float] = next((row["floor"] for row in rows if row.get("floor")), {})
    floor_text = ", ".join(f"{k} {v:.4g}" for k, v in floors.items() if not k.endswith("_std"))
    stdout.print(render(rows, f"{checkpoint}: {samples} samples a point, seeds {seed}.., results in {path}"))
    if floor_text:
        stdout.print(f"floor (held-out real images vs the reference): {floor_text}")


def add_commands(app: typer.Typer) -> None:
    app.command("bench")(bench)
