"""``zoo train-amed``: fit the predictor of AMED-Solver (or of AMED-Plugin on iPNDM) to a checkpoint at one NFE and
schedule, and write it for ``--option predictor=PATH``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..checks import positive
from ..errors import SamplerzooError
from ..files import check_writable
from .options import check_device
from .output import stdout


def train_amed(
    checkpoint: Annotated[str, typer.Option(help="Checkpoint name or path.")] = "digits",
    nfe: Annotated[int, typer.Option(help="Exact NFE of the runs the predictor serves.")] = 5,
    solver: Annotated[str, typer.Option(help="amed (AMED-Solver) or ipndm_amed (AMED-Plugin on iPNDM).")] = "amed",
    schedule: Annotated[str, typer.Option(help="The runs' schedule (as zoo bench --schedule).")] = "karras",
    final_step: Annotated[str, typer.Option(help="auto, zero, sigma_min or denoise (as in zoo bench).")] = "auto",
    afs: Annotated[bool, typer.Option(help="The runs use the analytical first step (--option afs=true).")] = False,
    teacher: Annotated[str, typer.Option(help="Deterministic sampler run on the refined levels.")] = "heun",
    between: Annotated[int, typer.Option(help="Teacher levels inserted in each student step (diff-sampler's M).")]
    = 1,
    trajectories: Annotated[int, typer.Option(help="Training trajectories (seed, seed + 1, ...).")] = 10000,
    batch: Annotated[int, typer.Option(help="Trajectories per batch (one Adam update per step and batch).")] = 128,
    lr: Annotated[float, typer.Option(help="Adam's learning rate.")] = 5e-3,
    scale_dir: Annotated[float, typer.Option(help="c_n within [1 - this, 1 + this]; 0 fixes c_n = 1.")] = 0.01,
    scale_time: Annotated[float, typer.Option(help="a_n within [1 - this, 1 + this]; 0 fixes a_n = 1.")] = 0.0,
    seed: Annotated[int, typer.Option(help="First trajectory's seed (and the predictor's initialisation); apart "
                                           "from zoo bench's seeds 0.. by default.")] = 1_000_000,
    guidance_scale: Annotated[float | None, typer.Option(help="Classifier-free guidance scale of the runs.")] = None,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    out: Annotated[Path | None, typer.Option(help="File to write (default results/amed/NAME-nfeN.safetensors).")]
    = None,
) -> None:
    """Fit the predictor of AMED-Solver or AMED-Plugin on iPNDM (Zhou et al. 2024) by distillation from --teacher and
    write it; zoo bench --sampler SOLVER --option predictor=PATH then uses it at exactly that NFE and schedule."""
    from ..amed import predictor_name, save_predictor
    from ..amed_training import Fit, fit_checkpoint
    from ..errors import UnknownNameError
    from ..samplers.amed import STUDENTS

    if solver not in STUDENTS:
        raise UnknownNameError("AMED solver", solver, STUDENTS)

    for flag, value, unit in (("--nfe", nfe, "network evaluations"), ("--trajectories", trajectories, "trajectories"),
                              ("--batch", batch, "trajectories")):
        positive(flag, value, unit)
    if between < 0:
        raise SamplerzooError(f"--between {between}: accepted: a whole number of levels, 0 or more")
    if lr <= 0 or not 0 <= scale_dir < 1 or not 0 <= scale_time < 1:
        raise SamplerzooError(f"--lr must be > 0 and --scale-dir, --scale-time in [0, 1), got {lr}, {scale_dir}, "
                              f"{scale_time}")
    check_device(device)
    path = out or Path("results") / "amed" / f"{predictor_name(Path(checkpoint).name, solver, afs, nfe)}.safetensors"
    if path.exists():
        raise SamplerzooError(f"{path} already exists; remove it or choose another --out")
    check_writable(path, "--out")
    fit = Fit(teacher, between, trajectories, batch, lr, seed, scale_dir, scale_time)
    predictor = fit_checkpoint(checkpoint, nfe, fit, schedule, final_step, afs, guidance_scale, device,
                               log=lambda line: stdout.print(line, highlight=False), solver=solver)
    save_predictor(path, predictor)
    assert predictor.info.training is not None
    errors, seconds = predictor.info.training["endpoint_error"], predictor.info.training["seconds"]
    stdout.print(f"{solver} on {checkpoint} at NFE {nfe}: held-out distance to the {teacher} teacher "
                 f"{errors['fitted']:.4g} (midpoint rule {errors['midpoint']:.4g}), {seconds:.1f} s; wrote {path}; "
                 f"use it with --sampler {solver} --option predictor={path}", highlight=False, soft_wrap=True)


def add_commands(app: typer.Typer) -> None:
    app.command("train-amed")(train_amed)
