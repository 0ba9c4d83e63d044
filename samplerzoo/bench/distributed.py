"""A sweep over the processes ``torchrun`` starts: each samples its share of a point's batches and extracts their
features; the first process gathers the features, measures them and writes the results row.

Outside torchrun (or with one process) every function here is the identity of the single-process path.
"""

from __future__ import annotations

import atexit
import os
from typing import TypeVar

import torch
import torch.distributed as dist

T = TypeVar("T")


def join(device: str) -> None:
    """Join the process group torchrun describes (``WORLD_SIZE`` > 1) once: gloo on the CPU, nccl on CUDA."""
    if int(os.environ.get("WORLD_SIZE", "1")) == 1 or dist.is_initialized():
        return
    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if cuda else "gloo")
    atexit.register(dist.destroy_process_group)


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def shard(samples: int, batch: int) -> list[tuple[int, int]]:
    """This process's batches as ``[start, stop)`` sample ranges: every ``world_size()``-th batch from batch
    ``rank()``. A batch holds the same samples as in a single process, so its features are the same too."""
    return [(start, min(start + batch, samples)) for start in range(rank() * batch, samples, world_size() * batch)]


def gather(value: T) -> list[T] | None:
    """Every process's ``value``, in rank order, on the first process; ``None`` on the others."""
    if world_size() == 1:
        return [value]
    gathered: list[T] | None = [value] * world_size() if rank() == 0 else None
    dist.gather_object(value, gathered, dst=0)
    return gathered


def share(value: T) -> T:
    """The first process's ``value``, on every process."""
    if world_size() == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]
