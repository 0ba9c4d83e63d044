"""Fitting an AMED predictor to a checkpoint by distillation (Zhou et al. 2024; diff-sampler's AMED_loss and training
loop).

A teacher (Heun by default) runs once over the student's levels with ``between`` extra levels in each step; for every
step n of every batch the student takes its step from sigma_n to sigma_{n+1}, the loss is the squared distance to the
teacher at sigma_{n+1} summed over pixels and averaged over the batch, and one Adam update follows (so a batch makes
one update per step, as diff-sampler's loop does). AMED-Solver starts each step from the teacher's state; a multistep
student (the iPNDM plugin) follows its own trajectory and history. Gradients reach the predictor through the
network's second evaluation, whose weights stay frozen. A step to sigma = 0 is Euler and has nothing to fit.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor, nn

from .amed import AmedPredictor, PredictorInfo, fingerprint, tapped
from .denoiser import Denoiser
from .errors import SamplerzooError, UnknownNameError
from .noise import seeded_noise
from .plugins import get_sampler
from .registry import SamplerSpec
from .samplers.amed import MIDPOINT, STUDENTS, StepFn
from .samplers.wrappers import analytic_denoised
from .schedules import SigmaRange, karras
from .steps import denoise
from .tuning import teacher_states as trajectory

Conditioner = Callable[[Sequence[int]], Denoiser]
"""The model as the runs see it for these seeds (labels seed % classes, guidance): ``guidance.condition``."""


@dataclass(frozen=True)
class Fit:
    """How to fit: diff-sampler's defaults (Heun teacher, one level between, lr 5e-3, c_n within 1%; 10k
    trajectories in batches of 128 is its CIFAR-10 run, total_kimg = 10)."""

    teacher: str = "heun"
    between: int = 1
    trajectories: int = 10000
    batch: int = 128
    lr: float = 5e-3
    seed: int = 1_000_000
    """Trajectory i starts from seed + i: apart from zoo bench's seeds 0.., so a sweep is scored on unseen noise."""
    scale_dir: float = 0.01
    scale_time: float = 0.0
    held_out: int = 256


def teacher_named(name: str) -> SamplerSpec:
    teacher = get_sampler(name)
    if teacher.stochastic or teacher.adaptive:
        raise SamplerzooError(f"teacher {teacher.name!r} must be a deterministic fixed-step sampler (e.g. heun)")
    return teacher


def teacher_levels(sigma: Tensor, sigma_next: Tensor, between: int) -> Tensor:
    """[sigma, ..., sigma_next] with ``between`` levels of Karras' rho = 7 spacing (Eq. 5) between them: the
    student's karras levels refine into karras levels with (between + 1) times the steps (diff-sampler's teacher
    grid)."""
    return karras(between + 2, SigmaRange(float(sigma_next), float(sigma)))[:-1].to(sigma.dtype)


def refined_levels(sigmas: Tensor, between: int) -> Tensor:
    """The student's levels with ``between`` teacher levels inserted in every step."""
    inner = [teacher_levels(sigmas[i], sigmas[i + 1], between)[:-1] for i in range(len(sigmas) - 1)]
    return torch.cat([*inner, sigmas[-1:]])


def teacher_states(teacher: SamplerSpec, model: Denoiser, x: Tensor, sigmas: Tensor, between: int) -> list[Tensor]:
    """The teacher's state at each student level after the first, from one run over the refined levels (a multistep
    teacher keeps its history throughout, as in diff-sampler)."""
    return list(trajectory(teacher, model, x, refined_levels(sigmas, between))[between + 1::between + 1])


def first_slope_point(model: Denoiser, x: Tensor, sigma: Tensor, analytic: bool) -> Tensor:
    """D(x, sigma), or the analytical first step's closed form (no network call, the bottleneck read as zeros)."""
    return analytic_denoised(x, sigma) if analytic else denoise(model, x, sigma)


def student_step(predictor: AmedPredictor, step: StepFn, model: Denoiser, x: Tensor, sigmas: Tensor, i: int,
                 analytic: bool, history: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
    """The solver's step i under the predictor's rule, its bottleneck read at the first evaluation."""
    with tapped(model, len(x)) as tap:
        denoised = first_slope_point(model, x, sigmas[i], analytic)
        features = tap.features(predictor.info.bottleneck_dim, x.device, analytic)
    rule = predictor(features, sigmas[i], sigmas[i + 1])
    return step(model, x, sigmas[i], denoised, sigmas[i + 1], rule, history)


def bottleneck_dim(model: Denoiser, sample_shape: Sequence[int], sigma: Tensor, device: torch.device) -> int:
    with torch.no_grad(), tapped(model, 1) as tap:
        denoise(model, torch.zeros(1, *sample_shape, device=device), sigma)
    assert tap.seen is not None, "the bottleneck module did not run"
    return int(tap.seen.shape[1])


def endpoint_error(solver: str, model: Denoiser, predictor: AmedPredictor | str, start: Tensor, sigmas: Tensor,
                   target: Tensor, afs: bool) -> float:
    """Mean L2 distance per sample between the sampler's output and the teacher's."""
    with torch.no_grad():
        out = get_sampler(solver).fn(model, start * sigmas[0], sigmas, predictor=predictor, afs=afs)
    return float((out - target).flatten(1).norm(dim=1).mean())


def fit_predictor(conditioned: Conditioner, sample_shape: Sequence[int], sigmas: Tensor, fit: Fit, afs: bool,
                  checkpoint: str, device: torch.device | str = "cpu", log: Callable[[str], None] | None = None,
                  solver: str = "amed") -> AmedPredictor:
    """The fitted predictor; its info records the fit and the held-out endpoint error of the midpoint rule and of
    the predictor against the teacher."""
    device = torch.device(device)
    teacher = teacher_named(fit.teacher)
    start_time = time.perf_counter()
    probe = conditioned([fit.seed])
    torch.manual_seed(fit.seed)
    info = PredictorInfo(checkpoint, tuple(sample_shape), tuple(float(s) for s in sigmas), fingerprint(probe),
                         bottleneck_dim(probe, sample_shape, sigmas[0], device), scale_dir=fit.scale_dir,
                         scale_time=fit.scale_time, afs=afs, solver=solver)
    predictor, student = AmedPredictor(info).to(device), STUDENTS[solver]
    optimizer = torch.optim.Adam(predictor.parameters(), lr=fit.lr, betas=(0.9, 0.999), eps=1e-8)
    fitted = [i for i in range(len(sigmas) - 1) if sigmas[i + 1] > 0]
    for first in range(fit.seed, fit.seed + fit.trajectories, fit.batch):
        seeds = range(first, min(first + fit.batch, fit.seed + fit.trajectories))
        model = conditioned(seeds)
        x = seeded_noise("counter", seeds, sample_shape, device=device).randn() * sigmas[0]
        with torch.no_grad():
            targets = teacher_states(teacher, model, x, sigmas, fit.between)
        history: list[Tensor] = []
        for i in fitted:
            start = targets[i - 1] if student.from_teacher and i > 0 else x
            out, history = student_step(predictor, student.step, model, start, sigmas, i, afs and i == 0, history)
            loss = (out - targets[i]).square().sum() / len(seeds)
            grads = torch.autograd.grad(loss, list(predictor.parameters()), allow_unused=True)
            for parameter, grad in zip(predictor.parameters(), grads, strict=True):
                parameter.grad = None if grad is None else torch.nan_to_num(grad, nan=0.0, posinf=1e5, neginf=-1e5)
            optimizer.step()
            x, history = out.detach(), [d.detach() for d in history]
        if log is not None:
            done = seeds[-1] - fit.seed + 1
            log(f"trajectories {done}/{fit.trajectories}: last step's loss {float(loss.detach()):.4g}")
    predictor.eval().requires_grad_(False)
    held_out = range(fit.seed + fit.trajectories, fit.seed + fit.trajectories + fit.held_out)
    model = conditioned(held_out)
    start = seeded_noise("counter", held_out, sample_shape, device=device).randn()
    with torch.no_grad():
        target = teacher_states(teacher, model, start * sigmas[0], sigmas, fit.between)[-1]
    errors = {rule: endpoint_error(solver, model, rule if rule == MIDPOINT else predictor, start, sigmas, target, afs)
              for rule in (MIDPOINT, "fitted")}
    training: dict[str, Any] = {"teacher": teacher.name, "between": fit.between, "trajectories": fit.trajectories,
                                "batch": fit.batch, "lr": fit.lr, "seed": fit.seed, "held_out": fit.held_out,
                                "endpoint_error": errors, "seconds": round(time.perf_counter() - start_time, 1)}
    predictor.info = replace(info, training=training)
    return predictor


def frozen(model: Denoiser) -> Denoiser:
    """The network's weights out of autograd: gradients flow through its inputs only."""
    if isinstance(model, nn.Module):
        model.requires_grad_(False)
    return model


def fit_checkpoint(checkpoint: str, nfe: int, fit: Fit, schedule: str = "karras", final_step: str = "auto",
                   afs: bool = False, guidance_scale: float | None = None, device: str = "cpu",
                   log: Callable[[str], None] | None = None, solver: str = "amed") -> AmedPredictor:
    """Load ``checkpoint`` and fit a predictor to ``solver``'s levels at exactly ``nfe`` on ``schedule``."""
    from .checkpoints import load
    from .guidance import condition
    from .sampling import from_infinity, sampling_plan

    teacher_named(fit.teacher)  # a bad name fails before the checkpoint loads
    if solver not in STUDENTS:
        raise UnknownNameError("AMED solver", solver, STUDENTS)
    model = load(checkpoint)
    frozen(model)
    if isinstance(model, nn.Module):
        model.to(device)
    _, sigmas = sampling_plan(model, solver, nfe, schedule, final_step, afs=afs)  # type: ignore[arg-type]
    if from_infinity(sigmas):
        raise SamplerzooError(f"schedule {schedule!r} starts at sigma = inf on {checkpoint}; amed's predictor is "
                              "fitted on finite levels: choose a schedule that starts at the model's sigma_max")
    if not any(sigmas[1:] > 0):
        raise SamplerzooError(f"{solver} at NFE {nfe} takes only a step to sigma = 0 (Euler), which has nothing to "
                              "fit; accepted: NFE >= 2")
    return fit_predictor(lambda seeds: condition(model, seeds, guidance_scale=guidance_scale), model.sample_shape,
                         sigmas, fit, afs, checkpoint, device, log, solver)
