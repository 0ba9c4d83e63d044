"""Training the shipped digits checkpoints (and any NetworkDenoiser) with one loss for every parameterization.

With D = c_skip x + c_out F, the usual objective of each parameterization is ||F_hat - F_target||^2 =
||D(x0 + sigma n, sigma) - x0||^2 / c_out^2: epsilon-matching (lambda = 1/sigma^2, Ho et al. 2020),
v-matching (lambda = (sigma^2 + 1)/sigma^2, Salimans & Ho 2022), x0-matching (lambda = 1) and EDM's
weighting (Karras et al. 2022, Eq. 8) all come out of that one line. For a rectified-flow velocity (c_out =
-sigma/(1 + sigma) = -t) it is ||v_hat - (eps - x0)||^2, the flow-matching loss (Lipman et al. 2023; Esser et al.
2024, Eq. 2-3): D - x0 = -t (v_hat - v).
"""

from __future__ import annotations

import copy
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .adapters import NetworkDenoiser
from .checkpoints.diffusers_format import UNetNetwork, noise_schedule, save_diffusers
from .data import digits
from .denoiser import noised
from .noise_schedules import NoiseSchedule

DIGITS_UNET: dict[str, Any] = {
    "sample_size": 8, "in_channels": 1, "out_channels": 1, "block_out_channels": [32, 64], "layers_per_block": 1,
    "down_block_types": ["DownBlock2D", "AttnDownBlock2D"], "up_block_types": ["AttnUpBlock2D", "UpBlock2D"],
    "norm_num_groups": 16, "attention_head_dim": 16,
}
LINEAR_BETAS: dict[str, Any] = {"_class_name": "DDPMScheduler", "beta_schedule": "linear", "beta_start": 1e-4,
                                "beta_end": 0.02, "num_train_timesteps": 1000, "clip_sample": False}
RECTIFIED_FLOW: dict[str, Any] = {"_class_name": "FlowMatchEulerDiscreteScheduler", "num_train_timesteps": 1000,
                                  "shift": 1.0, "use_dynamic_shifting": False}


@dataclass(frozen=True)
class Recipe:
    """How one shipped checkpoint is trained; stored with its results so the run can be replayed."""

    name: str
    scheduler: dict[str, Any]
    unet: dict[str, Any] = field(default_factory=lambda: dict(DIGITS_UNET))
    steps: int = 4000
    batch: int = 128
    lr: float = 2e-3
    ema: float = 0.999
    label_dropout: float = 0.0
    seed: int = 0
    threads: int = 1


RECIPES = {r.name: r for r in [
    Recipe("digits", {**LINEAR_BETAS, "prediction_type": "epsilon"}),
    Recipe("digits-v", {**LINEAR_BETAS, "prediction_type": "v_prediction"}),
    Recipe("digits-x0", {**LINEAR_BETAS, "prediction_type": "sample"}),
    # sigma_data = 0.75: the pixel standard deviation of the digits training split, not CIFAR's 0.5.
    Recipe("digits-edm", {"_class_name": "EDMEulerScheduler", "sigma_min": 0.002, "sigma_max": 80.0,
                          "sigma_data": 0.75, "prediction_type": "epsilon"}),
    # classes 0-9 and a null class 10, used for a label dropped out (classifier-free guidance).
    Recipe("digits-cond", {**LINEAR_BETAS, "prediction_type": "epsilon"},
           unet={**DIGITS_UNET, "num_class_embeds": 11}, label_dropout=0.1),
    # Rectified flow with SD3's logit-normal t (m = 0, s = 1): the velocity loss ||v_hat - (eps - x0)||^2.
    Recipe("digits-flow", RECTIFIED_FLOW),
    # Zero terminal SNR (Lin et al. 2024): rescaled linear betas, v-prediction, trailing timesteps recorded.
    Recipe("digits-zsnr", {**LINEAR_BETAS, "_class_name": "DDIMScheduler", "prediction_type": "v_prediction",
                           "rescale_betas_zero_snr": True, "timestep_spacing": "trailing", "set_alpha_to_one": True}),
]}


def denoising_loss(model: NetworkDenoiser, x0: Tensor, sigma: Tensor, noise: Tensor, **cond: Any) -> Tensor:
    """Mean of ||D(x0 + sigma n, sigma) - x0||^2 / c_out^2: the parameterization's own target loss (at sigma = inf,
    a zero-terminal-SNR level, the model sees the normalised state n)."""
    _, c_out, _ = model.coefficients(sigma, x0.ndim)
    return ((model(noised(x0, sigma.reshape(c_out.shape), noise), sigma, **cond) - x0) / c_out).pow(2).mean()


def optimize(optimizer: torch.optim.Optimizer, loss: Tensor, losses: list[float], step: int,
             log: Callable[[int, float], None] | None) -> None:
    """One optimizer step on ``loss``; the loss is recorded and the mean of the last 100 logged every 100 steps."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    losses.append(loss.item())
    if log is not None and (step + 1) % 100 == 0:
        log(step + 1, sum(losses[-100:]) / 100)


def fit(model: NetworkDenoiser, data: Tensor, labels: Tensor, *, steps: int, batch: int, lr: float, ema: float,
        label_dropout: float, null_label: int | None, generator: torch.Generator,
        log: Callable[[int, float], None] | None = None) -> tuple[NetworkDenoiser, list[float]]:
    """Adam on the denoising loss of random batches of ``data`` (with their ``labels`` when the model is
    class-conditional, dropped to ``null_label`` with probability ``label_dropout``); returns the EMA model and
    the losses. The learning rate warms up for 200 steps, then decays as sqrt(1 - step / steps)."""
    ema_model = copy.deepcopy(model).requires_grad_(False)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses: list[float] = []
    for step in range(steps):
        lr_scale = min(1.0, (step + 1) / 200) * (1 - step / steps) ** 0.5  # warm-up, then decay
        for group in optimizer.param_groups:
            group["lr"] = lr * lr_scale
        index = torch.randint(len(data), (batch,), generator=generator)
        cond = {}
        if model.num_classes:
            drop = torch.rand(batch, generator=generator) < label_dropout
            cond["class_labels"] = labels[index] if null_label is None else torch.where(drop, null_label, labels[index])
        sigma = model.schedule.training_sigmas(batch, generator)
        noise = torch.randn(data[index].shape, generator=generator)
        optimize(optimizer, denoising_loss(model, data[index], sigma, noise, **cond), losses, step, log)
        with torch.no_grad():
            for p_ema, p in zip(ema_model.parameters(), model.parameters(), strict=True):
                p_ema.lerp_(p, 1 - ema)
    return ema_model.eval(), losses


def loss_record(losses: list[float]) -> dict[str, Any]:
    return {"final_loss": sum(losses[-200:]) / min(200, len(losses)),
            "loss_every_100": [sum(losses[i:i + 100]) / len(losses[i:i + 100]) for i in range(0, len(losses), 100)]}


def machine() -> dict[str, str]:
    return {"torch": torch.__version__, "machine": platform.machine(),
            "processor": platform.processor() or platform.machine()}


def train(recipe: Recipe, log: Callable[[int, float], None] | None = None, schedule: NoiseSchedule | None = None
          ) -> tuple[NetworkDenoiser, dict[str, Any]]:
    """Train ``recipe`` on the digits training split; returns the EMA denoiser and a record of the run.
    ``schedule`` replaces the noise schedule the recipe's scheduler config gives (same prediction type)."""
    from diffusers import UNet2DModel

    torch.set_num_threads(recipe.threads)
    torch.manual_seed(recipe.seed)
    generator = torch.Generator().manual_seed(recipe.seed)
    images, labels = digits("train")
    configured, prediction = noise_schedule(recipe.scheduler, recipe.name, "log")
    schedule = schedule or configured
    num_classes = int(recipe.unet.get("num_class_embeds") or 0)
    null_label = num_classes - 1 if num_classes and recipe.label_dropout > 0 else None
    model = NetworkDenoiser(UNetNetwork(UNet2DModel(**recipe.unet)), prediction, schedule,
                            sample_shape=tuple(images.shape[1:]), num_classes=num_classes - (null_label is not None),
                            null_label=null_label)
    start = time.time()
    ema, losses = fit(model, images, labels, steps=recipe.steps, batch=recipe.batch, lr=recipe.lr, ema=recipe.ema,
                      label_dropout=recipe.label_dropout, null_label=null_label, generator=generator, log=log)
    record = {"recipe": asdict(recipe), "seconds": round(time.time() - start, 1), **loss_record(losses),
              "parameters": sum(p.numel() for p in model.parameters()), **machine()}
    return ema, record


def train_and_save(name: str, out: Path, steps: int | None = None, seed: int | None = None,
                   log: Callable[[int, float], None] | None = None) -> dict[str, Any]:
    """Train the named recipe and write it as a diffusers directory; returns the training record."""
    recipe = RECIPES[name]
    if steps is not None or seed is not None:
        recipe = Recipe(**{**asdict(recipe), "steps": steps or recipe.steps,
                           "seed": recipe.seed if seed is None else seed})
    model, record = train(recipe, log)
    save_diffusers(model, out, recipe.scheduler)
    return record
