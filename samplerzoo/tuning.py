"""Per-checkpoint schedule search for any sampler: GITS, OptimalSteps and Analytic-DPM's least-KL trajectory.

Every method chooses the sampler's n steps (n from its NFE declaration, so the schedule spends exactly the budget)
among a fine grid of candidate noise levels: Karras' rho = 7 spacing of ``grid`` levels from the model's sigma_max to
its sigma_min, plus sigma = 0 when the run ends there. A teacher (by default Heun on the whole grid) gives the
reference trajectory of ``trajectories`` seeded noises through those levels.

* ``gits`` (Chen et al. 2024, On the Trajectory Regularity of ODE-based Diffusion Sampling, Sec. 4): the cost of a
  step i -> j compares the student's step from the teacher's state at i with the teacher at j (by default GITS'
  deviation from the trajectory's chord, or the L2 distance); dynamic programming finds the n-step path of least
  cost, each later step's cost weighted by ``coeff`` (1.15, GITS' default).
* ``oss`` (Pei et al. 2025, Optimal Stepsize for Diffusion Sampling): the student runs from the start; dynamic
  programming over (steps taken, level reached) keeps, per trajectory, the student state closest (mean squared error)
  to the teacher at each level; the n-step paths of the trajectories are combined by their per-step median.
* ``analytic-dpm`` (Bao et al. 2022, Analytic-DPM, Sec. 5; the seeds' Liu slides): the trajectory minimising the KL
  of the shortened DDPM process with the optimal reverse variance, d/2 sum_k log(gamma*^2 / lambda^2), by dynamic
  programming; its moments E||eps||^2 / d come from the teacher's samples, noised at every level.

The student's step is the sampler's own: ``spec.fn`` on the two-point schedule [sigma_i, sigma_j] (a multistep
sampler thus takes its first-order start step there, as GITS and OSS cost every solver by an Euler step). GITS and OSS
match deterministic trajectories, so they take deterministic samplers; Analytic-DPM's trajectory serves any sampler.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
from torch import Tensor

from .denoiser import CountingDenoiser, Denoiser, per_sample
from .errors import SamplerzooError, UnknownNameError
from .noise import SeededNoise
from .plugins import get_sampler
from .registry import SamplerSpec
from .sampling import FinalStep, resolve_final_step
from .schedule_files import ScheduleFile, write_schedule_file
from .schedules import SigmaRange, karras
from .steps import denoise

METHODS: tuple[str, ...] = ("gits", "oss", "analytic-dpm")
METRICS: tuple[str, ...] = ("dev", "l2")
"""GITS' step costs: deviation from the trajectory's chord (its default) or L2 distance to the teacher."""


@dataclass(frozen=True)
class Search:
    """What to search: the sampler (with its options) and budget, the method and its settings."""

    sampler: str
    nfe: int
    method: str
    seed: int = 0
    trajectories: int = 64
    grid: int = 60
    teacher: str = "heun"
    coeff: float = 1.15
    metric: str = "dev"
    final_step: FinalStep = "auto"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Plan:
    """A checked search: the sampler, how its run ends, its number of steps and the teacher."""

    spec: SamplerSpec
    final_step: FinalStep
    steps: int
    teacher: SamplerSpec


@dataclass(frozen=True)
class Tuned:
    """The schedule found (as the sampler runs it), its objective (the least path cost; None for OSS, whose paths are
    per trajectory) and its cost in denoiser calls per trajectory."""

    sigmas: Tensor
    objective: float | None
    teacher_nfe: int
    search_nfe: int


def plan_search(search: Search) -> Plan:
    """Check a search before any work: method, sampler, teacher, budget, grid; one-line errors otherwise."""
    if search.method not in METHODS:
        raise UnknownNameError("tuning method", search.method, METHODS)
    if search.metric not in METRICS:
        raise UnknownNameError("GITS metric", search.metric, METRICS)
    spec, teacher = get_sampler(search.sampler), get_sampler(search.teacher)
    if search.method != "analytic-dpm" and spec.stochastic:
        raise SamplerzooError(f"method {search.method!r} matches deterministic trajectories, and sampler "
                              f"{spec.name!r} is stochastic; use --method analytic-dpm, whose trajectory serves any "
                              "sampler")
    if teacher.stochastic or teacher.adaptive:
        raise SamplerzooError(f"teacher {teacher.name!r} must be a deterministic fixed-step sampler (e.g. heun)")
    no_model = cast(Denoiser, SigmaRange())  # the plan depends on the sampler's cost only: no checkpoint loads for it
    final_step, steps = resolve_final_step(no_model, spec.name, search.nfe, search.final_step, **search.options)
    levels = steps + (final_step != "zero")  # a run to sigma_min visits one level more than it takes steps
    if search.grid < max(levels, 2):
        raise SamplerzooError(f"--grid {search.grid}: {spec.name} at NFE {search.nfe} takes {steps} steps through "
                              f"{levels} levels; the grid needs at least that many")
    if search.trajectories < 1 or search.coeff <= 0:
        raise SamplerzooError(f"--trajectories must be >= 1 and --coeff > 0, got {search.trajectories}, "
                              f"{search.coeff}")
    return Plan(spec, final_step, steps, teacher)


def candidate_levels(model: Denoiser, grid: int) -> Tensor:
    """``grid`` candidate levels, Karras rho = 7 from sigma_max to sigma_min (GITS' polynomial teacher grid)."""
    return karras(grid, model)[:-1]


def teacher_states(teacher: SamplerSpec, model: Denoiser, x: Tensor, sigmas: Tensor) -> Tensor:
    """The teacher's state at every level of ``sigmas`` and its final sample: shape (len(sigmas), *x.shape)."""
    states: list[Tensor] = []
    final = teacher.fn(model, x, sigmas, callback=lambda info: states.append(info["x"]))
    if len(states) != len(sigmas) - 1:
        raise SamplerzooError(f"teacher {teacher.name!r} reported {len(states)} of {len(sigmas) - 1} steps to its "
                              "callback; choose a teacher that reports each step (e.g. heun)")
    return torch.stack([*states, final])


Step = Callable[[Tensor, int, int], Tensor]
"""``step(x, i, j)``: the student's step from state x at node i to node j."""


class FirstCallCache:
    """A denoiser that remembers its last answer: every step leaving a node starts with the same D(x, sigma_i), so
    the steps i -> j for all j share one evaluation (an Euler-type student costs one evaluation per node)."""

    def __init__(self, model: Denoiser) -> None:
        self.model = model
        self.key: tuple[Tensor, Tensor] | None = None
        self.value: Tensor | None = None

    def __call__(self, x: Tensor, sigma: Tensor, **cond: Any) -> Tensor:
        if self.key is not None and self.key[0] is x and torch.equal(self.key[1], sigma) and not cond:
            assert self.value is not None
            return self.value
        self.key, self.value = (x, sigma), self.model(x, sigma, **cond)
        return self.value

    def __getattr__(self, name: str) -> Any:
        if name == "model":
            raise AttributeError(name)
        return getattr(self.model, name)


def student_step(spec: SamplerSpec, model: Denoiser, nodes: Tensor, options: dict[str, Any]) -> Step:
    """The sampler's own step between two nodes: ``spec.fn`` on the schedule [nodes[i], nodes[j]]."""
    cached = FirstCallCache(model)

    def step(x: Tensor, i: int, j: int) -> Tensor:
        return spec.fn(cached, x, torch.stack([nodes[i], nodes[j]]), **options)
    return step


def least_cost_path(cost: Tensor, edges: int, coeff: float = 1.0) -> tuple[list[int], float]:
    """The path 0 -> N-1 of exactly ``edges`` edges minimising cost[i0, i1] + coeff cost[i1, i2] + coeff^2 ... over
    an (N, N) cost matrix (inf where a step is not allowed), by dynamic programming (Bellman); and its cost.

    V_1(i) = cost[i, N-1] and V_k(i) = min_j cost[i, j] + coeff V_{k-1}(j) (GITS' recursion; coeff 1 is Analytic-DPM's
    least-cost path)."""
    value = cost[:, -1].clone()
    choices = []
    for _ in range(edges - 1):
        total = cost + coeff * value[None, :]
        value, best = total.min(1)
        choices.append(best)
    path = [0]
    for best in reversed(choices):
        path.append(int(best[path[-1]]))
    path.append(cost.shape[0] - 1)
    objective = float(value[0])
    if not math.isfinite(objective):
        raise SamplerzooError(f"no {edges}-step path through the {cost.shape[0]} candidate levels")
    return path, objective


def deviation(points: Tensor, start: Tensor, end: Tensor) -> Tensor:
    """Per sample, the distance of ``points`` from the straight line through ``start`` and ``end`` (GITS' trajectory
    deviation: sampling trajectories bend off their chord in a regular, content-independent way)."""
    chord = (end - start).flatten(1)
    unit = chord / chord.norm(dim=1, keepdim=True)
    offset = (end - points).flatten(1)
    return (offset - (offset * unit).sum(1, keepdim=True) * unit).norm(dim=1)


def gits_costs(step: Step, states: Tensor, metric: str = "dev") -> Tensor:
    """cost[i, j], j > i, of the student's step from the teacher's state at i to node j, averaged over trajectories:
    ``dev`` (GITS' default) its deviation from the teacher's chord less the teacher's own at j; ``l2`` its distance to
    the teacher's state at j."""
    n = len(states)
    cost = torch.full((n, n), math.inf, dtype=torch.float64)
    chord = states[0], states[-1]
    for i in range(n - 1):
        start = states[i]  # one tensor for all the steps leaving i: they share its first evaluation
        for j in range(i + 1, n):
            z = step(start, i, j)
            gap = deviation(z, *chord) - deviation(states[j], *chord) if metric == "dev" else \
                (z - states[j]).flatten(1).norm(dim=1)
            cost[i, j] = float(gap.double().mean())
    return cost


def oss_paths(step: Step, states: Tensor, edges: int) -> Tensor:
    """Per trajectory, the ``edges``-step path from node 0 to the last node whose student state stays closest to the
    teacher: round r takes every state reached in r - 1 steps one step further, and at each node keeps, per
    trajectory, the arrival with the least mean squared error to the teacher there (Pei et al. 2025, Alg. 1).
    Returns node indices, shape (trajectories, edges + 1)."""
    end, batch = len(states) - 1, states.shape[1]
    reached = {0: states[0]}
    parents = torch.zeros(edges, end + 1, batch, dtype=torch.long)
    for r in range(edges):
        targets = [end] if r == edges - 1 else range(r + 1, end - (edges - r - 1) + 1)
        best = torch.full((end + 1, batch), math.inf, dtype=torch.float64)
        arrived: dict[int, Tensor] = {}
        for i, x in reached.items():
            for j in (j for j in targets if j > i):
                z = step(x, i, j)
                error = (z - states[j]).flatten(1).pow(2).mean(1).double()
                better = error < best[j]
                best[j] = torch.where(better, error, best[j])
                parents[r, j] = torch.where(better, i, parents[r, j])
                arrived[j] = torch.where(per_sample(better, z), z, arrived.get(j, z))
        reached = arrived
    node = torch.full((batch,), end, dtype=torch.long)
    path = [node]
    for r in reversed(range(edges)):
        node = parents[r, node, torch.arange(batch)]
        path.append(node)
    return torch.stack(path[::-1], dim=1)


def median_path(paths: Tensor) -> list[int]:
    """Each step's median node over the trajectories' paths (the lower median: still strictly increasing)."""
    return [int(v) for v in paths.sort(0).values[(len(paths) - 1) // 2]]


def eps_moment(model: Denoiser, x0: Tensor, levels: Tensor, noise: SeededNoise) -> Tensor:
    """Gamma(sigma) = E||eps_theta(x0 + sigma n, sigma)||^2 / d at every level, by Monte Carlo over x0 and n."""
    moments = []
    for sigma in levels:
        x = x0 + sigma.to(x0.dtype) * noise.randn()
        eps = (x - denoise(model, x, sigma)) / sigma.to(x.dtype)
        moments.append(eps.flatten(1).pow(2).mean(1).double().mean())
    return torch.stack(moments)


def analytic_dpm_costs(levels: Tensor, moments: Tensor) -> Tensor:
    """J[i, j] = log(gamma*^2 / lambda^2) for the jump from level t = levels[i] down to s = levels[j], j > i.

    The seeds' gamma*^2 = lambda^2 + (sqrt((1 - abar_t) abar_s / abar_t) - sqrt(1 - abar_s - lambda^2))^2 (1 - Gamma_t),
    with the DDPM posterior variance lambda^2 of the jump and abar = 1 / (1 + sigma^2), reduces in the sigma frame to
    gamma*^2 / lambda^2 = 1 + (sigma_t^2 / sigma_s^2 - 1) (1 - Gamma_t); 1 - Gamma_t is clipped to [0, 1] as the
    seeds clip gamma*^2 to [lambda^2, lambda^2 + (...)^2].
    """
    t, s = levels[:, None], levels[None, :]
    cost = torch.log1p((t**2 / s**2 - 1) * (1 - moments[:, None]).clamp(0, 1))
    return torch.where(s < t, cost, torch.full_like(cost, math.inf))


def analytic_dpm_search(model: Denoiser, samples: Tensor, levels: Tensor, noise: SeededNoise, count: int,
                        to_zero: bool) -> tuple[Tensor, float]:
    """The least-KL trajectory of ``count`` levels from sigma_max down to sigma_min (the step to 0 is the decoder,
    not part of the KL), with its KL d/2 sum J; ``samples`` stand in for the data, noised at every level."""
    moments = eps_moment(model, samples, levels, noise)
    path, cost = least_cost_path(analytic_dpm_costs(levels, moments), count - 1) if count > 1 else ([0], 0.0)
    return torch.cat([levels[path], levels.new_zeros(int(to_zero))]), cost * samples[0].numel() / 2


def trajectory_search(search: Search, plan: Plan, model: Denoiser, states: Tensor, nodes: Tensor
                      ) -> tuple[Tensor, float | None]:
    """GITS' or OSS' path through ``nodes`` for the teacher ``states`` there, and GITS' least cost."""
    step = student_step(plan.spec, model, nodes, search.options)
    if search.method == "gits":
        path, cost = least_cost_path(gits_costs(step, states, search.metric), plan.steps, search.coeff)
        return nodes[path], cost
    return nodes[median_path(oss_paths(step, states, plan.steps))], None


def tune(model: Denoiser, sample_shape: Sequence[int], search: Search, device: torch.device | str = "cpu") -> Tuned:
    """Search the schedule; ``model`` is the Denoiser as the runs will see it (conditioned, guided)."""
    plan = plan_search(search)
    levels = candidate_levels(model, search.grid)
    with_zero = torch.cat([levels, levels.new_zeros(1)])
    to_zero = plan.final_step == "zero"
    counter = CountingDenoiser(model)
    noise = SeededNoise(range(search.seed, search.seed + search.trajectories), sample_shape, device=device)
    objective: float | None
    with torch.no_grad():
        teacher = teacher_states(plan.teacher, counter, noise.randn() * float(levels[0]), with_zero)
        teacher_nfe = counter.calls
        if search.method == "analytic-dpm":
            count = plan.steps if to_zero else plan.steps + 1
            sigmas, objective = analytic_dpm_search(counter, teacher[-1], levels, noise, count, to_zero)
        else:
            nodes, states = (with_zero, teacher) if to_zero else (levels, teacher[:-1])
            sigmas, objective = trajectory_search(search, plan, counter, states, nodes)
    declared = plan.spec.nfe(sigmas, **search.options)
    expected = search.nfe - (plan.final_step == "denoise")
    if declared is not None and declared != expected:
        raise SamplerzooError(f"internal: the schedule found costs {declared} NFE, not {expected}")
    return Tuned(sigmas, objective, teacher_nfe, counter.calls - teacher_nfe)


def tune_checkpoint(checkpoint: str, search: Search, path: Path, guidance_scale: float | None = None,
                    device: str = "cpu") -> tuple[ScheduleFile, str]:
    """Load ``checkpoint``, search its schedule, write the schedule file (with the search's cost and settings) to
    ``path``; returns its content and SHA-256. The search's seeds double as the class labels' (seed % classes)."""
    from . import __version__
    from .checkpoints import load
    from .guidance import class_conditioned

    plan = plan_search(search)
    model = load(checkpoint)
    if isinstance(model, torch.nn.Module):
        model.to(device)
    seeds = range(search.seed, search.seed + search.trajectories)
    start = time.perf_counter()
    found = tune(class_conditioned(model, seeds, guidance_scale), model.sample_shape, search, device)
    cost = {"nfe": found.teacher_nfe + found.search_nfe, "teacher_nfe": found.teacher_nfe,
            "search_nfe": found.search_nfe, "trajectories": search.trajectories,
            "seconds": round(time.perf_counter() - start, 1)}
    options = {"grid": search.grid, "teacher": plan.teacher.name, "objective": found.objective,
               **({"coeff": search.coeff, "metric": search.metric} if search.method == "gits" else {}),
               **({"guidance_scale": guidance_scale} if guidance_scale is not None else {})}
    content = ScheduleFile(tuple(float(s) for s in found.sigmas), search.method, plan.spec.name, checkpoint,
                           search.nfe, plan.final_step, search.seed, cost, options, __version__)
    return content, write_schedule_file(path, content)
