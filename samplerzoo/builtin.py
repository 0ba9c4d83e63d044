"""The built-in catalogue, registered through the same hooks as any third-party plugin."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from . import schedules
from .analytic import GaussianMixture, finite_dataset
from .checkpoints import CheckpointSpec
from .checkpoints.diffusers_format import load_diffusers, noise_schedule
from .checkpoints.families import load_builtin
from .data import digits
from .denoiser import Checkpoint
from .hookspecs import hookimpl
from .registry import SamplerSpec, ScheduleSpec
from .samplers import (
    ablation,
    ancestral,
    cfg_pp,
    dpm_solver,
    langevin,
    multistep,
    ode,
    reference,
    sde,
    seeds,
    singlestep,
    unipc,
)

SAMPLER_MODULES = (ode, ancestral, multistep, reference, sde, dpm_solver, langevin, unipc, cfg_pp, singlestep,
                   ablation, seeds)


@hookimpl
def register_samplers(register: Callable[[SamplerSpec], None]) -> None:
    for module in SAMPLER_MODULES:
        for spec in module.SPECS:
            register(spec)


@hookimpl
def register_schedules(register: Callable[[ScheduleSpec], None]) -> None:
    register(ScheduleSpec("karras", schedules.karras, "rho-spaced sigmas (Karras et al. 2022, Eq. 5)"))
    register(ScheduleSpec("exponential", schedules.exponential,
                          "log-uniform sigmas = uniform log-SNR steps (DPM-Solver's 'logSNR')",
                          aliases=("logsnr", "uniform_logsnr")))
    register(ScheduleSpec("polyexponential", schedules.polyexponential, "polynomial ramp in log sigma"))
    register(ScheduleSpec("vp", schedules.vp, "time-uniform steps of the continuous VP SDE",
                          aliases=("time_uniform",)))
    register(ScheduleSpec("linspace", schedules.linspace, "timesteps evenly spaced over the trained table",
                          needs_table=True))
    register(ScheduleSpec("leading", schedules.leading, "DDIM's leading spacing over the trained table",
                          needs_table=True))
    register(ScheduleSpec("trailing", schedules.trailing, "trailing spacing over the trained table",
                          needs_table=True))


WEIGHTS = Path(__file__).resolve().parent / "weights"
SHIPPED = {
    "digits": "the default: epsilon-prediction UNet on scikit-learn digits, linear betas, 1000 steps",
    "digits-v": "v-prediction UNet on digits, linear betas",
    "digits-x0": "sample (x0) prediction UNet on digits, linear betas",
    "digits-edm": "EDM-preconditioned UNet on digits, continuous sigma",
    "digits-cond": "class-conditional epsilon UNet on digits, label dropout 0.1 for classifier-free guidance",
    "digits-latent": "class-conditional DiT on the latents (2x4x4) of a digits AutoencoderKL, a DiTPipeline",
}


def ideal_digits() -> GaussianMixture:
    """The exact denoiser of the digits training split: its exact ODE solution reproduces training images."""
    return finite_dataset(digits("train")[0])


@hookimpl
def register_checkpoints(register: Callable[[CheckpointSpec], None]) -> None:
    for name, description in SHIPPED.items():
        directory = WEIGHTS / name
        pipeline = (directory / "model_index.json").is_file()
        scheduler_path = directory / "scheduler" / "scheduler_config.json" if pipeline else directory / \
            "scheduler_config.json"
        if not scheduler_path.is_file():
            continue  # not trained yet in this checkout: `zoo train NAME` makes it
        schedule, prediction = noise_schedule(json.loads(scheduler_path.read_text()), str(directory), "log")
        size = sum(f.stat().st_size for f in directory.rglob("*.safetensors")) / 2**20
        register(CheckpointSpec(name, partial(load_diffusers, directory), description, prediction,
                                type(schedule).__name__, f"{size:.1f} MiB"))
    register(CheckpointSpec("digits-ideal", ideal_digits, "exact denoiser of the 1500 digits training images",
                            "exact", "any sigma", "no weights"))


@hookimpl
def load_pipeline(directory: Path, model_index: dict[str, Any]) -> Checkpoint | None:
    return load_builtin(directory, model_index)
