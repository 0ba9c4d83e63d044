"""The built-in catalogue, registered through the same hooks as any third-party plugin."""

from __future__ import annotations

from collections.abc import Callable

from . import schedules
from .hookspecs import hookimpl
from .registry import SamplerSpec, ScheduleSpec
from .samplers import ancestral, ode

KARRAS = "Karras et al. 2022, Elucidating the Design Space of Diffusion-Based Generative Models"


@hookimpl
def register_samplers(register: Callable[[SamplerSpec], None]) -> None:
    register(SamplerSpec(
        "euler", ode.sample_euler, order=1, stochastic=False, aliases=("EulerDiscreteScheduler",),
        paper=f"{KARRAS}, Alg. 1 (churn: Alg. 2)",
        reference="k_diffusion.sampling.sample_euler; diffusers.EulerDiscreteScheduler"))
    register(SamplerSpec(
        "heun", ode.sample_heun, order=2, stochastic=False, evals_per_step=2, final_step_evals=1,
        aliases=("HeunDiscreteScheduler", "edm_heun"), paper=f"{KARRAS}, Alg. 2",
        reference="k_diffusion.sampling.sample_heun; diffusers.HeunDiscreteScheduler"))
    register(SamplerSpec(
        "dpm2", ode.sample_dpm2, order=2, stochastic=False, evals_per_step=2, final_step_evals=1,
        aliases=("dpm_2", "KDPM2DiscreteScheduler", "DPM2"),
        paper="Lu et al. 2022, DPM-Solver, Alg. 1 (DPM-Solver-2, r=1/2) in the sigma frame",
        reference="k_diffusion.sampling.sample_dpm_2; diffusers.KDPM2DiscreteScheduler"))
    register(SamplerSpec(
        "euler_ancestral", ancestral.sample_euler_ancestral, order=1, stochastic=True,
        aliases=("euler_a", "EulerAncestralDiscreteScheduler"),
        paper="Ho et al. 2020 (posterior step); Song et al. 2021, DDIM Eq. 16 (eta)",
        reference="k_diffusion.sampling.sample_euler_ancestral; diffusers.EulerAncestralDiscreteScheduler"))
    register(SamplerSpec(
        "ddim", ancestral.sample_ddim, order=1, stochastic=False, aliases=("DDIMScheduler",),
        paper="Song et al. 2021, Denoising Diffusion Implicit Models, Eq. 12",
        reference="diffusers.DDIMScheduler"))
    register(SamplerSpec(
        "ddpm", ancestral.sample_ddpm, order=1, stochastic=True, aliases=("DDPMScheduler",),
        paper="Ho et al. 2020, Denoising Diffusion Probabilistic Models, Alg. 2",
        reference="diffusers.DDPMScheduler"))


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
