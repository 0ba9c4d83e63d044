"""The sides benchmarks/overhead.py (and benchmarks/gpu.py) time: samplerzoo's samplers, their k-diffusion and diffusers
equivalents, read from each sampler's ``reference`` string (plus ``EXTRA``), all on one trivial denoiser."""

from __future__ import annotations

import ast
import gc
import importlib
import importlib.util
import inspect
import re
import statistics
import sys
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import diffusers
import torch
from torch import Tensor

from samplerzoo.errors import UnreachableNFEError
from samplerzoo.noise import BrownianTreeNoise, CounterNoise, SeededNoise
from samplerzoo.registry import SamplerSpec
from samplerzoo.schedules import SigmaRange

SIGMA_RANGE = SigmaRange(0.002, 80.0)
DIFFUSERS_BASE = {"num_train_timesteps": 1000, "beta_start": 1e-4, "beta_end": 0.02, "beta_schedule": "linear",
                  "use_karras_sigmas": True, "clip_sample": False}
"""Every scheduler gets the keys it accepts: the linear-beta table of tests/diffusers_driver.py, Karras sigmas
where supported (the sigmas only matter through the number of calls), no clipping (ours does not clip)."""

OPTIONS: dict[str, dict[str, Any]] = {"langevin": {"n_steps_each": 10}}
"""Our samplers' options (default 100 Langevin steps per level would put the smallest budget at 101)."""

EXTRA: dict[str, dict[str, Any]] = {
    "euler_maruyama": {"diffusers": ("ScoreSdeVeScheduler", {"correct_steps": 0})},
    "pc": {"diffusers": ("ScoreSdeVeScheduler", {"correct_steps": 1})},
    "ipndm": {"diffusers": ("IPNDMScheduler", {})},
    "dpm_adaptive": {"k_diffusion": ("sample_dpm_adaptive", {})},
}
"""Where the reference string does not give the mapping (or its config): sampler -> side -> (name, kwargs)."""

REFERENCE = re.compile(r"(k_diffusion\.sampling|diffusers)\.(\w+)(?:\(([^)]*)\))?")


# ---------------------------------------------------------------------------------------------- models

class Trivial:
    """D(x, sigma) = 0.9 x (and eps(x, t) = 0 x for diffusers): one elementwise op per call, calls counted."""

    sigma_min, sigma_max, sigma_data, sigma_table = SIGMA_RANGE.sigma_min, SIGMA_RANGE.sigma_max, 0.5, None

    def __init__(self, scale: float = 0.9) -> None:
        self.scale, self.calls = scale, 0

    def __call__(self, x: Tensor, sigma: Any, **cond: Any) -> Tensor:
        self.calls += 1
        return x * self.scale


# ---------------------------------------------------------------------------------------------- mapping

def k_sampling() -> types.ModuleType:
    """k-diffusion's sampling module without its heavy __init__ (as tests/conftest.py, which may have mounted it
    already: then its bare parent has no spec to find)."""
    if "k_diffusion" not in sys.modules:
        spec = importlib.util.find_spec("k_diffusion")
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit("k-diffusion is needed: pip install --no-deps k-diffusion torchsde torchdiffeq scipy")
        parent = types.ModuleType("k_diffusion")
        parent.__path__ = list(spec.submodule_search_locations)
        sys.modules["k_diffusion"] = parent
    return importlib.import_module("k_diffusion.sampling")


def parse_kwargs(text: str | None) -> dict[str, Any]:
    """``a=1, b='x'`` -> dict; anything else (a prose note in parentheses) -> {}."""
    if not text:
        return {}
    try:
        call = ast.parse(f"f({text})", mode="eval").body
        assert isinstance(call, ast.Call) and not call.args
        return {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords if kw.arg}
    except (SyntaxError, ValueError, AssertionError):
        return {}


def accepted(target: Callable[..., Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    params = inspect.signature(target).parameters
    return {k: v for k, v in kwargs.items() if k in params}


def references(spec: SamplerSpec, ks: types.ModuleType) -> dict[str, tuple[Any, dict[str, Any]]]:
    """side ("k_diffusion" / "diffusers") -> (function or scheduler class, its kwargs), first match per side."""
    found: dict[str, tuple[Any, dict[str, Any]]] = {}
    for module, name, args in REFERENCE.findall(spec.reference):
        side = "k_diffusion" if module.startswith("k_") else "diffusers"
        if side in found:
            continue
        if side == "k_diffusion" and name.startswith("sample_") and hasattr(ks, name):
            fn = getattr(ks, name)
            found[side] = (fn, accepted(fn, parse_kwargs(args)))
        elif side == "diffusers" and name.endswith("Scheduler") and hasattr(diffusers, name):
            cls = getattr(diffusers, name)
            found[side] = (cls, accepted(cls.__init__, {**DIFFUSERS_BASE, **parse_kwargs(args)}))
    for side, (name, kwargs) in EXTRA.get(spec.name, {}).items():
        target = getattr(ks, name) if side == "k_diffusion" else getattr(diffusers, name)
        base = DIFFUSERS_BASE if side == "diffusers" else {}
        found[side] = (target, accepted(target if side == "k_diffusion" else target.__init__, {**base, **kwargs}))
    return found


def describe(target: Any, kwargs: dict[str, Any], hide: dict[str, Any]) -> str:
    shown = {k: v for k, v in kwargs.items() if hide.get(k, object()) != v}
    return f"{target.__name__}({', '.join(f'{k}={v!r}' for k, v in shown.items())})"


# ---------------------------------------------------------------------------------------------- runners

Prepare = Callable[[], Callable[[], object]]
"""Set up one run outside the timer (fresh state, start noise) and return the run itself."""


@dataclass
class Side:
    prepare: Prepare
    nfe: int = 0
    times: list[float] = field(default_factory=list)
    note: str = ""

    def per_nfe_us(self) -> float:
        return statistics.median(self.times) / self.nfe * 1e6


def randn_noise(x: Tensor) -> Callable[[Tensor, Tensor], Tensor]:
    return lambda sigma, sigma_next: torch.randn_like(x)


def ours(spec: SamplerSpec, model: Trivial, x0: Tensor, sigmas: Tensor, options: dict[str, Any],
         noise_kind: str) -> Prepare:
    seeds, shape = range(x0.shape[0]), x0.shape[1:]
    lowest = float(sigmas[sigmas > 0].min())

    def prepare() -> Callable[[], object]:
        x = x0.clone()
        if noise_kind == "randn":
            noise: Callable[[Tensor, Tensor], Tensor] = randn_noise(x)
        elif spec.brownian:  # what sz.generate uses for these, whatever the noise source
            noise = BrownianTreeNoise(seeds, shape, lowest, float(sigmas[0]))
        else:
            noise = CounterNoise(seeds, shape) if noise_kind == "counter" else SeededNoise(seeds, shape)
        return lambda: spec.fn(model, x, sigmas, noise=noise, **options)
    return prepare


def k_diffusion(fn: Callable[..., Tensor], kwargs: dict[str, Any], model: Trivial, x0: Tensor,
                sigmas: Tensor) -> Prepare:
    params = inspect.signature(fn).parameters
    positive = sigmas[sigmas > 0]

    def prepare() -> Callable[[], object]:
        x = x0.clone()
        kw = {**kwargs, "disable": True}  # no tqdm progress bar
        if "noise_sampler" in params:
            kw["noise_sampler"] = randn_noise(x)
        if "sigma_min" in params:  # dpm_adaptive / dpm_fast take the endpoints only
            return lambda: fn(model, x, float(positive[-1]), float(positive[0]), **kw)
        return lambda: fn(model, x, sigmas, **kw)
    return prepare


def diffusers_calls(scheduler: Any, n: int) -> int:
    """Network calls of diffusers' loop over n inference steps (a huge number where n is not allowed)."""
    try:
        scheduler.set_timesteps(n)
    except ValueError:  # PNDM with PRK steps needs enough steps
        return 10**9
    return len(scheduler.timesteps) * (1 + scheduler.config.get("correct_steps", 0)) \
        if type(scheduler).__name__ == "ScoreSdeVeScheduler" else len(scheduler.timesteps)


def diffusers_loop(scheduler: Any, net: Trivial, x: Tensor) -> Tensor:
    """diffusers' pipeline loop (scale_model_input -> net -> step(return_dict=False), as StableDiffusionPipeline)."""
    for t in scheduler.timesteps:
        x = scheduler.step(net(scheduler.scale_model_input(x, t), t), t, x, return_dict=False)[0]
    return x


def score_sde_loop(scheduler: Any, net: Trivial, x: Tensor) -> Tensor:
    """ScoreSdeVePipeline's loop: correct_steps Langevin corrections, then the reverse-diffusion predictor."""
    for i, t in enumerate(scheduler.timesteps):
        sigma_t = scheduler.sigmas[i] * torch.ones(x.shape[0])
        for _ in range(scheduler.config.correct_steps):
            x = scheduler.step_correct(net(x, sigma_t), x, return_dict=False)[0]
        x = scheduler.step_pred(net(x, sigma_t), t, x, return_dict=False)[0]
    return x


def diffusers_side(cls: Any, config: dict[str, Any], net: Trivial, x0: Tensor, nfe: int) -> tuple[Prepare, int]:
    """The runner, and the inference steps whose call count is nearest ``nfe`` (the smallest n on a tie)."""
    try:
        cls(**config).set_timesteps(2)
    except Exception:  # e.g. a scheduler that rejects Karras sigmas with its defaults
        config = {k: v for k, v in config.items() if k != "use_karras_sigmas"}
    probe = cls(**config)
    n = min(range(1, 3 * nfe + 2), key=lambda m: (abs(diffusers_calls(probe, m) - nfe), m))
    score_sde = cls.__name__ == "ScoreSdeVeScheduler"

    def prepare() -> Callable[[], object]:
        scheduler = cls(**config)
        scheduler.set_timesteps(n)
        if score_sde:
            scheduler.set_sigmas(n)
        x = x0 * scheduler.init_noise_sigma
        loop = score_sde_loop if score_sde else diffusers_loop
        return lambda: loop(scheduler, net, x)
    return prepare, n


# ---------------------------------------------------------------------------------------------- timing

def reachable(spec: SamplerSpec, target: int, options: dict[str, Any]) -> tuple[int, int]:
    """(nfe, steps to sigma = 0) with nfe the reachable budget nearest ``target`` (the smaller on a tie)."""
    for nfe in sorted(range(1, 3 * target + 200), key=lambda n: (abs(n - target), n)):
        try:
            return nfe, spec.steps_for_nfe(nfe, True, **options)
        except UnreachableNFEError:
            continue
    raise UnreachableNFEError(f"{spec.name}: no budget near {target}")


def counted(side: Side, model: Trivial) -> int:
    model.calls = 0
    side.prepare()()
    return model.calls


def measure(sides: list[Side], repeats: int, warmup: int) -> None:
    """Warm up every side, then time ``repeats`` rounds, each running every side once in a rotating order, so that
    all sides see the same background load; gc is off inside the timed call (as timeit does)."""
    for side in sides:
        for _ in range(warmup):
            side.prepare()()
    for r in range(repeats):
        for side in sides[r % len(sides):] + sides[:r % len(sides)]:
            run = side.prepare()
            gc.collect()
            gc.disable()
            try:
                start = time.perf_counter()
                run()
                side.times.append(time.perf_counter() - start)
            finally:
                gc.enable()
