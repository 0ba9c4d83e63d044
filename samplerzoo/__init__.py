"""samplerzoo: every diffusion sampler on any diffusion checkpoint, with exact NFE accounting."""

from .adapters import NetworkDenoiser
from .analytic import Gaussian, GaussianMixture, finite_dataset
from .checkpoints import CheckpointSpec, get_checkpoint, get_checkpoints, load
from .denoiser import Checkpoint, CountingDenoiser, Denoiser
from .errors import CheckpointError, SamplerzooError, UnknownNameError, UnreachableNFEError
from .hookspecs import hookimpl
from .noise import CounterNoise, SeededNoise
from .plugins import get_sampler, get_samplers, get_schedule, get_schedules
from .registry import SamplerSpec, ScheduleSpec
from .sampling import Generation, generate

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "CheckpointSpec",
    "CounterNoise",
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
    "get_checkpoint",
    "get_checkpoints",
    "get_sampler",
    "get_samplers",
    "get_schedule",
    "get_schedules",
    "hookimpl",
    "load",
]
__version__ = "0.1.0"
