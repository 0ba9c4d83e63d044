"""``zoo tune``: search a checkpoint's schedule for a sampler and NFE (GITS, OptimalSteps, Analytic-DPM) and write a
schedule file that ``--schedule file:PATH`` uses."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..checks import positive
from ..errors import SamplerzooError
from .output import stdout


def default_path(checkpoint: str, sampler: str, method: str, nfe: int, seed: int) -> Path:
    return Path("results") / "schedules" / f"{Path(checkpoint).name}-{sampler}-{method}-nfe{nfe}-seed{seed}.json"


def tune(
    checkpoint: Annotated[str, typer.Option(help="Checkpoint name or path.")] = "digits",
    sampler: Annotated[str, typer.Option(help="Sampler name or alias (its own steps are tuned).")] = "euler",
    nfe: Annotated[int, typer.Option(help="Exact NFE the schedule must spend with this sampler.")] = 10,
    method: Annotated[str, typer.Option(help="gits, oss or analytic-dpm.")] = "gits",
    seed: Annotated[int, typer.Option(help="First seed; trajectory i uses seed + i.")] = 0,
    trajectories: Annotated[int, typer.Option(help="Teacher trajectories the search averages over.")] = 64,
    grid: Annotated[int, typer.Option(help="Candidate noise levels (Karras rho=7, sigma_max to sigma_min).")] = 60,
    teacher: Annotated[str, typer.Option(help="Deterministic sampler run on the whole grid as the teacher.")] = "heun",
    coeff: Annotated[float, typer.Option(help="GITS: weight growth of later steps' costs.")] = 1.15,
    metric: Annotated[str, typer.Option(help="GITS step cost: dev (deviation from the chord) or l2.")] = "dev",
    final_step: Annotated[str, typer.Option(help="auto, zero, sigma_min or denoise (as in zoo bench).")] = "auto",
    guidance_scale: Annotated[float | None, typer.Option(help="Classifier-free guidance scale (class-conditional "
                                                              "checkpoints; labels are seed % classes).")] = None,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    out: Annotated[Path | None, typer.Option(help="Schedule file to write (default results/schedules/NAME.json).")]
    = None,
) -> None:
    """Find the time steps of --sampler at exactly --nfe on --checkpoint by a published search, and write them as a
    schedule file (sigmas, method, cost in NFE); --schedule file:PATH then uses them in bench, sample and generate."""
    import torch

    from ..files import check_writable
    from ..tuning import Search, plan_search, tune_checkpoint

    positive("--nfe", nfe, "network evaluations")
    positive("--trajectories", trajectories, "trajectories")
    search = Search(sampler, nfe, method, seed, trajectories, grid, teacher, coeff, metric,
                    final_step)  # type: ignore[arg-type]
    plan = plan_search(search)  # every bad request fails here, before the checkpoint loads
    path = out or default_path(checkpoint, plan.spec.name, method, nfe, seed)
    if path.exists():
        raise SamplerzooError(f"{path} already exists; remove it or choose another --out")
    check_writable(path, "--out")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SamplerzooError("--device cuda was asked for, but no CUDA device is available")
    found, digest = tune_checkpoint(checkpoint, search, path, guidance_scale, device)
    cost = found.cost
    sigmas = ", ".join(f"{s:.4g}" for s in found.sigmas)
    stdout.print(f"{method} for {plan.spec.name} at NFE {nfe} on {checkpoint}: sigmas [{sigmas}]; search cost "
                 f"{cost['nfe']} NFE per trajectory ({cost['teacher_nfe']} teacher + {cost['search_nfe']} search) x "
                 f"{trajectories} trajectories, {cost['seconds']:.1f} s", highlight=False, soft_wrap=True)
    stdout.print(f"wrote {path} (sha256 {digest[:12]}); use it with --schedule file:{path}", highlight=False,
                 soft_wrap=True)


def add_commands(app: typer.Typer) -> None:
    app.command("tune")(tune)
