"""diffusers' ``beta_schedule`` names turned into ``alphas_cumprod`` (Ho et al. 2020; Nichol & Dhariwal 2021), with
the optional zero-terminal-SNR rescale (Lin et al. 2024) and the CogVideoX schedulers' SNR shift."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ..errors import CheckpointError
from ..noise_schedules import rescale_zero_terminal_snr, zero_terminal_snr

BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2")
SNR_SHIFTED = {"CogVideoXDDIMScheduler": 3.0, "CogVideoXDPMScheduler": 3.0}
"""Schedulers that divide the SNR by ``snr_shift_scale`` (their default here) before any zero-SNR rescale."""


def cosine_betas(steps: int, max_beta: float = 0.999) -> Tensor:
    """beta_t = 1 - abar(t+1)/abar(t), abar(t) = cos^2((t/T + 0.008)/1.008 pi/2), capped (iDDPM, Eq. 17)."""
    def alpha_bar(t: float) -> float:
        return math.cos((t / steps + 0.008) / 1.008 * math.pi / 2) ** 2
    return torch.tensor([min(1 - alpha_bar(i + 1) / alpha_bar(i), max_beta) for i in range(steps)],
                        dtype=torch.float64)


def alphas_cumprod(config: Mapping[str, Any], source: str) -> Tensor:
    """``alphas_cumprod`` of a diffusers (or legacy ``GaussianDDPMScheduler``) scheduler config."""
    steps = int(config.get("num_train_timesteps", config.get("timesteps", 1000)))
    trained = config.get("trained_betas")
    schedule = config.get("beta_schedule", "linear")
    start, end = float(config.get("beta_start", 1e-4)), float(config.get("beta_end", 0.02))
    if trained is not None:
        betas = torch.as_tensor(trained, dtype=torch.float64)
    elif schedule == "linear":
        betas = torch.linspace(start, end, steps, dtype=torch.float64)
    elif schedule == "scaled_linear":
        betas = torch.linspace(start**0.5, end**0.5, steps, dtype=torch.float64) ** 2
    elif schedule == "squaredcos_cap_v2":
        betas = cosine_betas(steps)
    else:
        raise CheckpointError(f"{source}: unknown beta_schedule {schedule!r}; known: {', '.join(BETA_SCHEDULES)}, "
                              "or trained_betas")
    if not ((betas > 0) & (betas < 1)).all():
        raise CheckpointError(f"{source}: betas must lie in (0, 1)")
    rescale = bool(config.get("rescale_betas_zero_snr", False))
    if config.get("_class_name") in SNR_SHIFTED:
        shift = float(config.get("snr_shift_scale", SNR_SHIFTED[config["_class_name"]]))
        if not shift > 0:
            raise CheckpointError(f"{source}: snr_shift_scale must be > 0, got {shift}")
        alpha_bar = torch.cumprod(1 - betas, 0)
        alpha_bar = alpha_bar / (shift + (1 - shift) * alpha_bar)  # SNR / shift, as SD3's resolution shift
        return zero_terminal_snr(alpha_bar) if rescale else alpha_bar
    if rescale:
        betas = rescale_zero_terminal_snr(betas)
    return torch.cumprod(1 - betas, 0)

