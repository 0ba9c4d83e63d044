"""samplerzoo: every diffusion sampler on any diffusion checkpoint, with exact NFE accounting."""

from .adapters import NetworkDenoiser
from .analytic import Gaussian, GaussianMixture, finite_dataset
from .denoiser import CountingDenoiser, Denoiser
from .errors import SamplerzooError, UnknownNameError, UnreachableNFEError
from .hookspecs import hookimpl
from .noise import SeededNoise
from .plugins import get_sampler, get_samplers, get_schedule, get_schedules
from .registry import SamplerSpec, ScheduleSpec
from .sampling import Generation, generate

__all__ = [
    "CountingDenoiser",
    "Denoiser",
    "Gaussian",
    "GaussianMixture",
    "Generation",
    "NetworkDenoiser",
    "SamplerSpec",
    "SamplerzooError",
    "ScheduleSpec",
    "SeededNoise",
    "UnknownNameError",
    "UnreachableNFEError",
    "finite_dataset",
    "generate",
    "get_sampler",
    "get_samplers",
    "get_schedule",
    "get_schedules",
    "hookimpl",
]
__version__ = "0.1.0"
