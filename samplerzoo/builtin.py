"""The built-in catalogue, registered through the same hooks as any third-party plugin."""

from __future__ import annotations

from collections.abc import Callable

from . import schedules
from .hookspecs import hookimpl
from .registry import SamplerSpec, ScheduleSpec
from .samplers import ancestral, ode

SAMPLER_MODULES = (ode, ancestral)


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
