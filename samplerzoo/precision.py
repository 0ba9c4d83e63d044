"""Sampling in float16, bfloat16 or float64: the network cast to the dtype where the device has its kernels, else
run under ``torch.autocast``; the sampler state in the dtype; schedules' sigmas stay float64 on the CPU."""

from __future__ import annotations

from typing import Any, Literal

import torch
from torch import Tensor, nn

from .denoiser import Checkpoint
from .errors import SamplerzooError
from .guidance import _Wrapper, condition
from .steps import denoise

DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16, "float16": torch.float16}
Precision = Literal["native", "autocast", "state"]
"""How a checkpoint ran in a dtype: ``native`` (weights and state in the dtype), ``autocast`` (float32 weights
under torch.autocast, state in the dtype), ``state`` (a model that is not a torch module, such as an exact
denoiser, computes in float32 or better; only the sampler state is in the dtype)."""


def dtype_named(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise SamplerzooError(f"unknown dtype {name!r}; accepted: {', '.join(DTYPES)}")
    return DTYPES[name]


class Autocast(_Wrapper):
    """A float32 network evaluated under ``torch.autocast(dtype)``, its result in the dtype of x."""

    def __init__(self, model: Checkpoint, dtype: torch.dtype, device_type: str) -> None:
        super().__init__(model)
        self.dtype, self.device_type = dtype, device_type

    def __call__(self, x: Tensor, sigma: Tensor, **cond: Any) -> Tensor:
        with torch.autocast(self.device_type, dtype=self.dtype):
            return self.model(x, sigma, **cond).to(x.dtype)


def probe(model: Checkpoint, dtype: torch.dtype, device: str, **request: Any) -> None:
    """One denoiser call on one sample at sigma_max in ``dtype``, conditioned by ``request`` (a text model needs
    ``prompts``): raises where the device lacks a kernel."""
    x = torch.zeros(1, *model.sample_shape, dtype=dtype, device=device)
    with torch.no_grad():
        denoise(condition(model, [0], **request), x, torch.tensor(model.sigma_max, dtype=torch.float64))


def in_dtype(model: Checkpoint, dtype: torch.dtype, device: str = "cpu", **request: Any
             ) -> tuple[Checkpoint, Precision]:
    """``model`` ready to sample in ``dtype`` on ``device`` (a torch module is cast in place), and how it runs;
    ``request`` conditions the probe call (``Checkpoint.condition``'s keywords: a text model needs prompts)."""
    if not isinstance(model, nn.Module):
        return model, "native" if dtype in (torch.float32, torch.float64) else "state"
    model.to(device=device, dtype=dtype)
    try:
        probe(model, dtype, device, **request)
        return model, "native"
    except (RuntimeError, NotImplementedError) as native_error:
        model.to(dtype=torch.float32)
        if dtype == torch.float64:
            raise SamplerzooError(f"dtype float64 is not supported on {device} by this checkpoint ({native_error}); "
                                  "accepted: float32, float16, bfloat16") from None
        wrapped = Autocast(model, dtype, torch.device(device).type)
        try:
            probe(wrapped, dtype, device, **request)
        except (RuntimeError, NotImplementedError) as exc:
            name = str(dtype).removeprefix("torch.")
            raise SamplerzooError(f"dtype {name} is not supported on {device} by this checkpoint, not even under "
                                  f"autocast ({exc}); accepted: float32") from None
        return wrapped, "autocast"
