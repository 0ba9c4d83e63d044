"""``zoo bench``: sweep samplers x schedules x NFE into FID/KID, appended to a results file."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..checks import positive
from ..errors import SamplerzooError
from . import interrupts
from .catalogue import JsonOption
from .options import check_device, option_sets, parse_option_grid, split_ints, split_labels, split_names
from .output import print_json, stderr, stdout, table

if TYPE_CHECKING:
    from rich.progress import Progress

    from ..bench.grid import Point

ENDS = {"zero": "0", "sigma_min": "sigma_min", "denoise": "D(sigma_min)"}
DTYPE_NAMES = ("float32", "float64", "bfloat16", "float16")


def status_text(row: dict[str, Any]) -> str:
    return "ok" if row["status"] == "ok" else f"{row['status']}: {row.get('reason', '')}"


def options_text(row: dict[str, Any]) -> str:
    schedule = {f"schedule.{k}": v for k, v in (row.get("schedule_options") or {}).items()}
    both = {**(row.get("options") or {}), **schedule}
    return " ".join(f"{k}={v}" for k, v in sorted(both.items())) or "-"


def guidance_text(row: dict[str, Any]) -> str:
    """The point's guidance rule and its options (``cfg`` for rows written before rules existed)."""
    options = " ".join(f"{k}={v}" for k, v in sorted((row.get("guidance_options") or {}).items()))
    return " ".join([row.get("guidance", "cfg"), *([options] if options else [])])


def floor_line(rows: list[dict[str, Any]]) -> str:
    """The resampled floor, said for what it is; nothing when it was not measured (an .npz reference)."""
    row = next((row for row in rows if row.get("floor") and row.get("floor_samples") == row.get("samples")), None)
    if row is None:
        return ""
    values = ", ".join(f"{k} {v:.4g}" for k, v in row["floor"].items() if not k.endswith("_std"))
    return (f"floor ({row['floor_samples']} reference images drawn with replacement, scored against the reference: "
            f"what a sampler reproducing the data would score): {values}")


def render(rows: list[dict[str, Any]], title: str) -> None:
    """The sweep's table; an options (guidance) column only when some point has options (a rule other than cfg)."""
    metric_names = sorted({m for row in rows for m in row.get("metrics", {}) if not m.endswith("_std")})
    with_options = any(options_text(row) != "-" for row in rows)
    with_guidance = any(guidance_text(row) != "cfg" for row in rows)
    columns = ("sampler", *(["options"] if with_options else []), *(["guidance"] if with_guidance else []),
               "schedule", "NFE", "calls", "forwards", "ends at", *metric_names, "seconds", "status")
    table(title, columns, [
        (row["sampler"], *([options_text(row)] if with_options else []),
         *([guidance_text(row)] if with_guidance else []), row["schedule"], str(row["requested_nfe"]),
         str(row.get("counted_nfe", "-")), str(row.get("forwards", "-")), ENDS.get(row.get("final_step_used", ""), "-"),
         *[f"{row['metrics'][m]:.4g}" if m in row.get("metrics", {}) else "-" for m in metric_names],
         f"{row['wall_seconds']:.1f}" if "wall_seconds" in row else "-", status_text(row)) for row in rows],
          right=("NFE", "calls", "forwards", *metric_names, "seconds"))


@dataclass
class Tally:
    """What the sweep has done so far, for the progress bars and for the line an interrupt prints."""

    bars: Progress
    points: int = 0
    finished: int = 0
    running: Point | None = None
    tasks: dict[str, Any] = field(default_factory=dict)

    def start_sweep(self, points: int, pending: int) -> None:
        self.points, self.finished = points, points - pending
        if pending:
            self.bars.start()  # only once work begins, so an early error stays one line
            self.tasks["sweep"] = self.bars.add_task("points", total=points, completed=points - pending)
            self.tasks["point"] = self.bars.add_task("sampling", total=None)

    def start_point(self, point: Point, total: int) -> None:
        self.running = point
        description = f"{point.sampler} {point.schedule} NFE {point.nfe}"
        self.bars.reset(self.tasks["point"], total=total, description=description)

    def sampled(self, n: int) -> None:
        self.bars.advance(self.tasks["point"], n)

    def point_finished(self, point: Point, row: dict[str, Any]) -> None:
        self.finished += 1
        self.running = None
        if "sweep" in self.tasks:
            self.bars.update(self.tasks["sweep"], completed=self.finished)

    def interrupted_line(self, path: Path, signal_name: str) -> str:
        """What the interrupt kept, from the file itself: the running point may have been written just before."""
        from ..bench.results import parse

        if self.running is not None and path.is_file() and any(
                row["key"] == self.running.key() for row in parse(path.read_bytes()).rows):
            self.point_finished(self.running, {})
        running = self.running
        lost = (f"; {running.sampler} {running.schedule} NFE {running.nfe} was interrupted and not written"
                if running else "")
        return (f"interrupted by {signal_name}: {self.finished} of {self.points} points of this sweep are kept in "
                f"{path}{lost}; rerun the same command to resume")


def bench(
    checkpoint: Annotated[str, typer.Option(help="Checkpoint name or path.")] = "digits",
    sampler: Annotated[str, typer.Option(help="Comma-separated sampler names or aliases.")] = "dpm2",
    schedule: Annotated[str, typer.Option(help="Comma-separated schedules.")] = "karras",
    nfe: Annotated[str, typer.Option(help="Comma-separated exact NFE budgets.")] = "10,20",
    samples: Annotated[int, typer.Option(help="Samples per point.")] = 2000,
    batch: Annotated[int, typer.Option(help="Sampling batch size (does not change the images).")] = 500,
    seed: Annotated[int, typer.Option(help="First seed; sample i uses seed + i.")] = 0,
    metrics: Annotated[str, typer.Option(help="Comma-separated: fid, kid, isc, prc (precision/recall).")] = "fid,kid",
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    dtype: Annotated[str, typer.Option(help=f"One of {', '.join(DTYPE_NAMES)}.")] = "float32",
    final_step: Annotated[str, typer.Option(help="auto (0 if the budget allows, else sigma_min), zero, sigma_min or "
                                                 "denoise.")] = "auto",
    results: Annotated[Path | None, typer.Option(help="JSON-lines results file (default results/bench-NAME.jsonl).")]
    = None,
    guidance_scale: Annotated[float | None, typer.Option(help="Classifier-free guidance scale (conditional "
                                                              "checkpoints; 1 or unset: none).")] = None,
    guidance: Annotated[str, typer.Option(help="Comma-separated guidance rules combining CFG's two predictions (zoo "
                                               "guidance): cfg, apg, cfg_zero_star, tcfg, ...; needs "
                                               "--guidance-scale.")] = "cfg",
    guidance_option: Annotated[list[str] | None, typer.Option(help="A guidance option NAME=VALUE for every rule of "
                                                                   "the sweep (repeatable), e.g. eta=0, rescale=0.7, "
                                                                   "space=prediction; NAME=V1,V2,... is a sweep "
                                                                   "axis.")] = None,
    labels: Annotated[str | None, typer.Option(help="Comma-separated class labels; the sample with seed s takes "
                                                    "label s mod L (default: s mod classes).")] = None,
    prompts: Annotated[Path | None, typer.Option(help="Text file, one prompt a line, for text-conditioned "
                                                      "checkpoints; the sample with seed s takes prompt s mod P.")]
    = None,
    negative_prompt: Annotated[list[str] | None, typer.Option(help="Negative prompt (repeatable: cycled like the "
                                                                   "prompts); needs --guidance-scale.")] = None,
    distilled_guidance: Annotated[float | None, typer.Option(help="The guidance scale a guidance-distilled "
                                                                  "checkpoint embeds (Flux dev; default 3.5), not "
                                                                  "CFG.")] = None,
    noise: Annotated[str, typer.Option(help="Per-sample noise: counter (hashed per seed, batched) or torch (one "
                                            "torch.Generator per seed, NVlabs/edm's draws).")] = "counter",
    option: Annotated[list[str] | None, typer.Option(help="A sampler option NAME=VALUE for every sampler of the "
                                                          "sweep (repeatable), e.g. s_churn=10; NAME=V1,V2,... is a "
                                                          "sweep axis, e.g. eta=0,0.5,1.")] = None,
    schedule_option: Annotated[list[str] | None, typer.Option(help="A schedule option NAME=VALUE (repeatable), e.g. "
                                                                   "rho=5; NAME=V1,V2,... is a sweep axis.")] = None,
    reference: Annotated[str, typer.Option(help="What samples are measured against: digits-train, digits-test, a "
                                                "torch-fidelity dataset (cifar10-train, ...), a folder of images, or "
                                                "an .npz of FID statistics (mu, sigma; FID only).")] = "digits-train",
    extractor: Annotated[str, typer.Option(help="Feature extractor: digits-classifier, or one torch-fidelity "
                                                "registers (inception-v3-compat, dinov2-vit-s-14, clip-vit-b-32, "
                                                "...).")] = "digits-classifier",
    extractor_weights: Annotated[Path | None, typer.Option(help="The extractor's weights file (the format "
                                                                "torch-fidelity loads) instead of its download.")]
    = None,
    compile: Annotated[bool, typer.Option("--compile", help="torch.compile the network (the first batch compiles "
                                                            "it: minutes for a UNet on a CPU).")] = False,
    channels_last: Annotated[bool, typer.Option("--channels-last", help="Run a convolutional network in channels-"
                                                                        "last memory.")] = False,
    shard: Annotated[str, typer.Option(help="I/K: run shard I of K of the sweep's points (K independent jobs, one "
                                            "results file), e.g. 1/4.")] = "1/1",
    as_json: JsonOption = False,
) -> None:
    """Sweep samplers x schedules x NFE on a checkpoint: exact NFE, per-sample seeds, FID/KID, resumable; under
    torchrun the processes share each point's samples, and --shard I/K splits the points between independent jobs
    appending to one results file. A point with NaN/inf samples is recorded as nonfinite."""
    positive("--samples", samples, "samples per point")
    positive("--batch", batch, "samples per batch")
    if dtype not in DTYPE_NAMES:
        raise SamplerzooError(f"unknown dtype {dtype!r}; accepted: {', '.join(DTYPE_NAMES)}")
    nfes = split_ints(nfe, "--nfe")
    options = option_sets(parse_option_grid(option))
    schedule_options = option_sets(parse_option_grid(schedule_option, "--schedule-option"))
    guidance_options = option_sets(parse_option_grid(guidance_option, "--guidance-option"))
    from ..bench.shards import parse_shard

    shard_of = parse_shard(shard)

    label_list = split_labels(labels)
    if negative_prompt and prompts is None:
        raise SamplerzooError("--negative-prompt needs --prompts FILE (the prompts it is the negative of)")
    path = results or Path("results") / f"bench-{Path(checkpoint).name}.jsonl"

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..bench import distributed
    from ..bench.harness import Progress as Callbacks
    from ..bench.harness import sweep
    from ..bench.prompts import read_prompts

    prompt_set = read_prompts(prompts, tuple(negative_prompt or ())) if prompts is not None else None

    check_device(device)
    distributed.join(device)  # under torchrun: only the first process draws and prints
    first = distributed.rank() == 0
    bars = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    console=stderr, transient=True, disable=not first or not stderr.is_terminal)
    tally = Tally(bars)
    try:
        rows = sweep(checkpoint, split_names(sampler), split_names(schedule), nfes, samples, seed, path, batch=batch,
                     device=device, progress=Callbacks(tally.start_point, tally.sampled, tally.point_finished,
                                                       tally.start_sweep),
                     metric_names=tuple(split_names(metrics)), final_step=final_step, dtype=dtype,
                     guidance_scale=guidance_scale, guidance=split_names(guidance),
                     guidance_options=guidance_options, options=options, schedule_options=schedule_options, noise=noise,
                     reference=reference, extractor=extractor,
                     extractor_weights=str(extractor_weights) if extractor_weights else None, labels=label_list,
                     prompts=prompt_set, distilled_guidance=distilled_guidance, compile=compile,
                     channels_last=channels_last, shard_of=shard_of)
    except KeyboardInterrupt as exc:
        if bars.live.is_started:
            bars.stop()
        if first and tally.points:
            interrupts.report(tally.interrupted_line(path, interrupts.name(exc)))
        raise
    finally:
        if bars.live.is_started:
            bars.stop()
    if not first:
        return
    if as_json:
        print_json(rows)
        return
    render(rows, f"{checkpoint}: {samples} samples a point, seeds {seed}.., results in {path}; NFE and calls: "
                 "denoiser calls per sample, forwards: network forward passes per sample")
    floor = floor_line(rows)
    if floor:
        stdout.print(floor, highlight=False)


def add_commands(app: typer.Typer) -> None:
    app.command("bench")(bench)
