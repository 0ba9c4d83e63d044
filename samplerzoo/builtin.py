"""The built-in catalogue, registered through the same hooks as any third-party plugin."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from . import gits_schedules, guidance_rules, published_schedules, schedule_files, schedules, time_schedules
from .analytic import GaussianMixture, finite_dataset
from .checkpoints import CheckpointSpec
from .checkpoints.diffusers_format import noise_schedule
from .checkpoints.families import load_builtin, load_diffusers
from .data import digits
from .denoiser import Checkpoint
from .hookspecs import hookimpl
from .registry import GuidanceSpec, SamplerSpec, ScheduleSpec
from .samplers import (
    ablation,
    amed,
    ancestral,
    cfg_pp,
    consistency,
    dpm_solver,
    flow,
    langevin,
    multistep,
    ode,
    reference,
    res,
    sa_solver,
    sde,
    seeds,
    singlestep,
    unipc,
)

KARRAS_2022 = "Karras et al. 2022, Elucidating the Design Space of Diffusion-Based Generative Models"
SAMPLER_MODULES = (ode, ancestral, multistep, res, reference, sde, dpm_solver, langevin, unipc, flow, cfg_pp,
                   singlestep, ablation, seeds, consistency, sa_solver, amed)


@hookimpl
def register_samplers(register: Callable[[SamplerSpec], None]) -> None:
    for module in SAMPLER_MODULES:
        for spec in module.SPECS:
            register(spec)


@hookimpl
def register_schedules(register: Callable[[ScheduleSpec], None]) -> None:
    register(ScheduleSpec("karras", schedules.karras, "rho-spaced sigmas (Karras et al. 2022, Eq. 5)",
                          paper=f"{KARRAS_2022}, Eq. 5", reference="k_diffusion.sampling.get_sigmas_karras"))
    register(ScheduleSpec("exponential", schedules.exponential,
                          "log-uniform sigmas = uniform log-SNR steps (DPM-Solver's 'logSNR')",
                          aliases=("logsnr", "uniform_logsnr"), paper="Lu et al. 2022, DPM-Solver, Sec. 3.3",
                          reference="k_diffusion.sampling.get_sigmas_exponential"))
    register(ScheduleSpec("polyexponential", schedules.polyexponential, "polynomial ramp in log sigma",
                          paper="k-diffusion (Crowson)", reference="k_diffusion.sampling.get_sigmas_polyexponential"))
    register(ScheduleSpec("vp", schedules.vp, "time-uniform steps of the continuous VP SDE",
                          aliases=("time_uniform",), paper=f"{KARRAS_2022}, Table 1 (VP)",
                          reference="k_diffusion.sampling.get_sigmas_vp"))
    register(ScheduleSpec("linspace", schedules.linspace, "timesteps evenly spaced over the trained table",
                          needs_table=True, paper="Lin et al. 2024, Common Diffusion Noise Schedules and Sample Steps "
                          "are Flawed, Table 2", reference="k_diffusion.external.DiscreteSchedule.get_sigmas"))
    register(ScheduleSpec("discrete", schedules.discrete, "time-uniform steps of a discrete-time model, log alpha "
                          "interpolated (DPM-Solver's)", needs_table=True,
                          paper="Lu et al. 2022, DPM-Solver, NoiseScheduleVP('discrete') with time-uniform steps",
                          reference="zju-pi/diff-sampler get_schedule('discrete', rho=1); dpm_solver NoiseScheduleVP"))
    register(ScheduleSpec("leading", schedules.leading, "DDIM's leading spacing over the trained table",
                          needs_table=True, paper="Song et al. 2021, DDIM; Lin et al. 2024, Table 2",
                          reference="diffusers timestep_spacing='leading' (formula)"))
    register(ScheduleSpec("trailing", schedules.trailing, "trailing spacing over the trained table",
                          needs_table=True, paper="Lin et al. 2024, Table 2",
                          reference="diffusers timestep_spacing='trailing' (numpy formula)"))
    for name, fn, description, extra in time_schedules.SCHEDULES:
        register(ScheduleSpec(name, fn, description, **extra))
    register_published_schedules(register)


def register_published_schedules(register: Callable[[ScheduleSpec], None]) -> None:
    """ComfyUI's ddim_uniform, Laplace, LCM's skipping steps, EDM's iDDPM ladder, Align Your Steps, OptimalSteps,
    GITS, SD-Turbo, diffusers' beta sigmas, and schedule files."""
    register(ScheduleSpec("ddim_uniform", published_schedules.ddim_uniform,
                          "CompVis/ComfyUI DDIM uniform ladder 1 + k (T // n) over the trained table", needs_table=True,
                          paper="Song et al. 2021, DDIM (CompVis make_ddim_timesteps 'uniform')",
                          reference="ComfyUI ddim_scheduler (formula)"))
    register(ScheduleSpec("lcm_skipping", published_schedules.lcm_skipping,
                          "LCM's skipping-step timesteps on its distillation grid",
                          needs_table=True, paper="Luo et al. 2023, Latent Consistency Models, Sec. 4.3",
                          reference="diffusers LCMScheduler.set_timesteps"))
    register(ScheduleSpec("laplace", published_schedules.laplace, "log sigma at Laplace(mu, beta) quantiles",
                          paper="Hang et al. 2024, Improved Noise Schedule for Diffusion Training (arXiv:2407.03297)",
                          reference="ComfyUI get_sigmas_laplace (formula)"))
    register(ScheduleSpec("iddpm", published_schedules.iddpm, "EDM's iDDPM discretization (C_1, C_2, M)",
                          aliases=("improved_ddpm",), paper=f"{KARRAS_2022}, Table 1 (iDDPM + DDIM)",
                          reference="NVlabs/edm ablation_sampler discretization='iddpm' (its recursion, closed form)"))
    register(ScheduleSpec("ays", published_schedules.ays,
                          "Align Your Steps, published 10-step tables, log-linear to n steps: ays:sd15|sdxl|svd",
                          aliases=("align_your_steps",),
                          paper="Sabour, Fidler & Kreis 2024, Align Your Steps: Optimizing Sampling Schedules in "
                                "Diffusion Models", reference="diffusers AysSchedules; ComfyUI AlignYourStepsScheduler",
                          argument=lambda text: {"model_type": published_schedules.ays_model(text)},
                          argument_help="sd15, sdxl or svd"))
    register(ScheduleSpec("optimal_steps", published_schedules.optimal_steps,
                          "OptimalSteps' published flow times, log-linear to n steps: optimal_steps:flux|wan|chroma",
                          aliases=("optimalsteps",), paper="Pei et al. 2025, Optimal Stepsize for Diffusion Sampling "
                          "(arXiv:2503.21774)", reference="ComfyUI OptimalStepsScheduler (tables, interpolation)",
                          argument=lambda text: {"model_type": published_schedules.optimal_steps_model(text)},
                          argument_help="flux, wan or chroma"))
    register(ScheduleSpec("gits", gits_schedules.gits,
                          "GITS' published SD1.5 schedules (2-20 steps, log-linear beyond): gits:COEFF, 0.80-1.50",
                          paper="Chen et al. 2024, On the Trajectory Regularity of ODE-based Diffusion Sampling (GITS)",
                          reference="ComfyUI GITSScheduler (tables, interpolation)",
                          argument=lambda text: {"coeff": gits_schedules.gits_coeff(text)},
                          argument_help="0.80, 0.85, ..., 1.50 (default 1.20)"))
    register(ScheduleSpec("sd_turbo", published_schedules.sd_turbo,
                          "SD-Turbo's ladder: timesteps 999, 899, ..., 99 (at most 10 steps)", needs_table=True,
                          aliases=("sdturbo",), paper="Sauer et al. 2023, Adversarial Diffusion Distillation",
                          reference="ComfyUI SDTurboScheduler (formula)"))
    register(ScheduleSpec("beta_sigmas", published_schedules.beta_sigmas,
                          "Beta(0.6, 0.6) quantiles mapped linearly onto [sigma_min, sigma_max] (diffusers)",
                          aliases=("use_beta_sigmas",),
                          paper="Lee et al. 2024, Beta Sampling is All You Need (arXiv:2407.12173)",
                          reference="diffusers EulerDiscreteScheduler(use_beta_sigmas=True)"))
    register(ScheduleSpec("file", schedule_files.file_schedule,
                          "the sigmas of a schedule file (zoo tune writes them): file:PATH",
                          paper="zoo tune (GITS, OptimalSteps, Analytic-DPM trajectories)",
                          argument=schedule_files.bind_file, argument_help="PATH"))


@hookimpl
def register_guidance(register: Callable[[GuidanceSpec], None]) -> None:
    for spec in guidance_rules.SPECS:
        register(spec)


WEIGHTS = Path(__file__).resolve().parent / "weights"
SHIPPED = {
    "digits": "the default: epsilon-prediction UNet on scikit-learn digits, linear betas, 1000 steps",
    "digits-v": "v-prediction UNet on digits, linear betas",
    "digits-x0": "sample (x0) prediction UNet on digits, linear betas",
    "digits-edm": "EDM-preconditioned UNet on digits, continuous sigma",
    "digits-cond": "class-conditional epsilon UNet on digits, label dropout 0.1 for classifier-free guidance",
    "digits-latent": "class-conditional DiT on the latents (2x4x4) of a digits AutoencoderKL, a DiTPipeline",
    "digits-flow": "rectified-flow velocity UNet on digits, logit-normal t (SD3), FlowMatchEuler config, shift 1",
    "digits-zsnr": "v-prediction UNet on digits, zero terminal SNR (rescaled linear betas), trailing spacing",
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
