"""Training add_net on a frozen checkpoint: the seed's ``eval_loss`` with the additional layer (seed 002, Sec. 4.2 d).

The frozen model's v at x = x0 + sigma n goes through add_net with the image's class, and the loss is the
seed's weighted v-loss, mean((add_net(v_hat, c) - v)^2) * w with v = alpha n - sigma_vp x0 and
w = e^lambda / (e^lambda + 1) = alpha^2 (lambda the log-SNR). Noise levels follow the frozen model's own
training distribution (digits-v: timesteps uniform over its 1000 levels); the seed draws its training time
uniformly over [0, 1] on its own log-SNR schedule.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from samplerzoo.adapters import NetworkDenoiser
from samplerzoo.checkpoints import load
from samplerzoo.data import digits
from samplerzoo.errors import SamplerzooError
from samplerzoo.noise_schedules import vp_input_scale
from samplerzoo.training import optimize
from torch import Tensor

from .layer import AdditionalLayer, Layer, identity_layer
from .samplers import v_from_denoised

SIGMA_BANDS = {"sigma >= 5": (5.0, float("inf")), "1 <= sigma < 5": (1.0, 5.0), "sigma < 1": (0.0, 1.0)}
"""Noise bands for the held-out losses: v1 and v2 use the layer at sigma >= 5 on the benchmark's schedule."""


@dataclass(frozen=True)
class LayerRecipe:
    """How the shipped layer is trained; stored in its training record so the run can be replayed."""

    checkpoint: str = "digits-v"
    steps: int = 3000
    batch: int = 128
    lr: float = 3e-3
    seed: int = 0
    final_relu: bool = False
    min_sigma: float = 0.0
    """Train only on noise levels sigma >= min_sigma (an ablation: the samplers use the layer at high noise only)."""
    threads: int = 1


def v_target(x0: Tensor, sigma: Tensor, noise: Tensor) -> Tensor:
    """v = alpha n - sigma_vp x0 (Salimans & Ho 2022; the seed's ``targets``)."""
    alpha = vp_input_scale(sigma)
    return alpha * noise - sigma * alpha * x0


def frozen_v(model: NetworkDenoiser, x0: Tensor, sigma: Tensor, noise: Tensor) -> Tensor:
    """The frozen model's v at x = x0 + sigma n; ``sigma`` has shape ``(batch, 1, 1, 1)``."""
    x = x0 + sigma * noise
    with torch.no_grad():
        return v_from_denoised(x, sigma, model(x, sigma.flatten()))


def layer_errors(layer: Layer, v_hat: Tensor, x0: Tensor, classes: Tensor, sigma: Tensor, noise: Tensor) -> Tensor:
    """Per-sample mean((add_net(v_hat, c) - v)^2); the identity layer gives the frozen model's own error."""
    return (layer(v_hat, classes) - v_target(x0, sigma, noise)).pow(2).mean((1, 2, 3))


def layer_loss(layer: Layer, v_hat: Tensor, x0: Tensor, classes: Tensor, sigma: Tensor, noise: Tensor) -> Tensor:
    """The seed's weighted v-loss: mean of w * mean((add_net(v_hat, c) - v)^2), w = alpha^2 = e^lambda/(e^lambda+1)."""
    return (layer_errors(layer, v_hat, x0, classes, sigma, noise) * vp_input_scale(sigma).flatten() ** 2).mean()


def training_sigmas(model: NetworkDenoiser, n: int, generator: torch.Generator, min_sigma: float = 0.0) -> Tensor:
    """n of the frozen model's training noise levels, restricted to sigma >= min_sigma by rejection."""
    sigmas = torch.empty(0)
    while len(sigmas) < n:
        draw = model.schedule.training_sigmas(n, generator)
        sigmas = torch.cat([sigmas, draw[draw >= min_sigma]])
    return sigmas[:n].reshape(-1, 1, 1, 1)


def held_out(layer: Layer, model: NetworkDenoiser, repeats: int = 8, seed: int = 1) -> dict[str, dict[str, float]]:
    """Unweighted v-MSE of the layer and of the frozen model on the held-out split, per noise band, plus the
    weighted loss over all levels: does the class-directed v beat the unconditional one, and where?"""
    generator = torch.Generator().manual_seed(seed)
    images, labels = digits("test")
    x0, classes = images.repeat(repeats, 1, 1, 1), labels.repeat(repeats)
    sigma = training_sigmas(model, len(x0), generator)
    noise = torch.randn(x0.shape, generator=generator)
    v_hat = frozen_v(model, x0, sigma, noise)
    result: dict[str, dict[str, float]] = {}
    with torch.no_grad():
        for name, candidate in (("layer", layer), ("frozen model", identity_layer)):
            errors = layer_errors(candidate, v_hat, x0, classes, sigma, noise)
            result[name] = {"weighted loss": float(layer_loss(candidate, v_hat, x0, classes, sigma, noise))}
            for band, (low, high) in SIGMA_BANDS.items():
                inside = (sigma.flatten() >= low) & (sigma.flatten() < high)
                result[name][f"v mse, {band}"] = float(errors[inside].mean())
    return result


def train_layer(recipe: LayerRecipe, log: Callable[[int, float], None] | None = None,
                ) -> tuple[AdditionalLayer, dict[str, Any]]:
    """Train add_net on the frozen ``recipe.checkpoint`` with the digits training split and its labels."""
    torch.set_num_threads(recipe.threads)
    torch.manual_seed(recipe.seed)
    generator = torch.Generator().manual_seed(recipe.seed)
    model = load(recipe.checkpoint)
    if not isinstance(model, NetworkDenoiser):
        raise SamplerzooError(f"{recipe.checkpoint}: the layer trains on a network checkpoint with a noise schedule")
    model.requires_grad_(False)
    images, labels = digits("train")
    layer = AdditionalLayer(images.shape[1], images.shape[-1], final_relu=recipe.final_relu)
    optimizer = torch.optim.Adam(layer.parameters(), lr=recipe.lr)
    losses: list[float] = []
    start = time.time()
    for step in range(recipe.steps):
        for group in optimizer.param_groups:
            group["lr"] = recipe.lr * (1 - step / recipe.steps)
        index = torch.randint(len(images), (recipe.batch,), generator=generator)
        sigma = training_sigmas(model, recipe.batch, generator, recipe.min_sigma)
        noise = torch.randn(images[index].shape, generator=generator)
        v_hat = frozen_v(model, images[index], sigma, noise)
        loss = layer_loss(layer, v_hat, images[index], labels[index], sigma, noise)
        optimize(optimizer, loss, losses, step, log)
    layer.requires_grad_(False).eval()
    record = {"recipe": asdict(recipe), "seconds": round(time.time() - start, 1),
              "final_loss": sum(losses[-200:]) / min(200, len(losses)),
              "loss_every_100": [sum(losses[i:i + 100]) / len(losses[i:i + 100]) for i in range(0, len(losses), 100)],
              "held_out": held_out(layer, model), "parameters": sum(p.numel() for p in layer.parameters()),
              "torch": torch.__version__, "machine": platform.machine(),
              "processor": platform.processor() or platform.machine()}
    return layer, record
