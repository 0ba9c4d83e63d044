"""Checkpoints: named built-ins, diffusers model directories, and safetensors files with a description."""

from .loading import CheckpointSpec, get_checkpoint, get_checkpoints, load

__all__ = ["CheckpointSpec", "get_checkpoint", "get_checkpoints", "load"]
