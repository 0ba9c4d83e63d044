"""The fast path of a checkpoint's network: ``torch.compile`` and channels-last memory, each a measured choice
(``benchmarks/throughput.py``; figures in results/throughput.md). Neither changes what is computed, only how: the
images agree with the plain network's to float tolerance.

Both act on the network inside the checkpoint (``NetworkDenoiser.net``), in place, so every wrapper built later
(conditioning, classifier-free guidance, autocast) calls the fast network. They are applied after the checkpoint
is cast to its dtype, and :func:`accelerate` runs the network once at the sweep's batch size: a backend that cannot
compile fails there, as one line, before any sample is drawn (and that first call is the compilation itself).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .denoiser import Checkpoint
from .errors import SamplerzooError
from .guidance import condition
from .steps import denoise


class ChannelsLast(nn.Module):
    """A 4-D convolutional network fed channels-last (NHWC) inputs; its weights are converted by
    :func:`accelerate`. Conditioning tensors pass through as they are."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x: Tensor, c_noise: Tensor, **cond: Any) -> Tensor:
        return self.net(x.contiguous(memory_format=torch.channels_last) if x.ndim == 4 else x, c_noise, **cond)


def network_holder(model: Any) -> nn.Module | None:
    """The module holding the checkpoint's network as ``.net``: the checkpoint itself, or the one a wrapper such as
    :class:`~samplerzoo.precision.Autocast` holds as ``.model``; ``None`` for a model without a torch network."""
    while model is not None:
        if isinstance(model, nn.Module) and isinstance(getattr(model, "net", None), nn.Module):
            return model
        model = model.__dict__.get("model") if hasattr(model, "__dict__") else None
    return None


def compile_problem(device: str) -> str | None:
    """Why torch.compile's default backend (inductor) cannot run on ``device`` here, or ``None`` when it can: dynamo
    unsupported (Python or platform), no triton for CUDA, no C++ compiler for the CPU."""
    import torch._dynamo

    if not torch._dynamo.is_dynamo_supported():
        return "torch.compile (dynamo) is not supported on this Python or platform"
    if torch.device(device).type == "cuda":
        from torch.utils._triton import has_triton

        return None if has_triton() else "its CUDA backend needs triton, which is not installed"
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler

        get_cpp_compiler()
    except Exception as exc:  # inductor's own check: InvalidCxxCompiler and friends
        return f"its CPU backend needs a C++ compiler ({first_line(exc)})"
    return None


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def accelerate(model: Checkpoint, *, compile: bool = False, channels_last: bool = False, device: str = "cpu",
               dtype: torch.dtype = torch.float32, batch: int = 1, **request: Any) -> Checkpoint:
    """``model`` with its network compiled and/or in channels-last memory, warmed up (compiled) by one denoiser call
    on ``batch`` samples in ``dtype`` at sigma_max, conditioned by ``request`` (``Checkpoint.condition``'s labels,
    prompts, guidance_scale: through classifier-free guidance when it asks for it, so the compiled shape is the
    sweep's). Raises one line when the backend is unavailable or fails to compile."""
    import torch._dynamo.exc

    if not compile and not channels_last:
        return model
    holder = network_holder(model)
    if holder is None:
        asked = "--compile" if compile else "--channels-last"
        raise SamplerzooError(f"{asked} needs a checkpoint with a torch network (a diffusers or described "
                              f"checkpoint); this one is a {type(model).__name__}")
    if compile:
        problem = compile_problem(device)
        if problem is not None:
            raise SamplerzooError(f"--compile: torch.compile is unavailable on {device}: {problem}; accepted: run "
                                  "without --compile")
    net: nn.Module = holder.net  # type: ignore[assignment]
    if channels_last:
        net = ChannelsLast(net.to(memory_format=torch.channels_last))
    if compile:
        net = torch.compile(net)  # type: ignore[assignment]
    holder.net = net
    try:
        x = torch.zeros(batch, *model.sample_shape, device=device, dtype=dtype)
        with torch.inference_mode():
            denoise(condition(model, range(batch), **request), x,
                    torch.tensor(model.sigma_max, dtype=torch.float64))
    except torch._dynamo.exc.TorchDynamoException as exc:
        raise SamplerzooError(f"--compile: torch.compile failed on this checkpoint's network on {device} "
                              f"({first_line(exc)}); accepted: run without --compile") from None
    return model
