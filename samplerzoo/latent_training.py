"""Training ``digits-latent``: an AutoencoderKL on the digits, then a class-conditional DiT on its latents
(Rombach et al. 2022, Sec. 3; Peebles & Xie 2023), saved as a diffusers DiTPipeline directory.

The autoencoder minimises ||D(z) - x||^2 + kl_weight * KL(q(z|x) || N(0, I)) per element, z drawn from the
posterior (Kingma & Welling 2014, Eq. 10). Its latents are scaled to unit variance by ``scaling_factor``
(1 / std of the training posterior means, as Stable Diffusion's 0.18215 was chosen), and the DiT learns them
with the same denoising loss and loop as the pixel checkpoints (``training.fit``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .adapters import NetworkDenoiser
from .checkpoints.diffusers_format import noise_schedule
from .checkpoints.families.dit import DiTNetwork
from .data import digits
from .training import LINEAR_BETAS, fit, loss_record, machine, optimize

DIGITS_VAE: dict[str, Any] = {
    "in_channels": 1, "out_channels": 1, "latent_channels": 2, "sample_size": 8, "block_out_channels": [32, 32],
    "layers_per_block": 1, "down_block_types": ["DownEncoderBlock2D"] * 2, "up_block_types": ["UpDecoderBlock2D"] * 2,
    "norm_num_groups": 8, "mid_block_add_attention": False,
}
DIGITS_DIT: dict[str, Any] = {
    "sample_size": 4, "patch_size": 1, "in_channels": 2, "out_channels": 2, "num_layers": 3,
    "num_attention_heads": 4, "attention_head_dim": 16, "num_embeds_ada_norm": 10,
}


@dataclass(frozen=True)
class LatentRecipe:
    """How ``digits-latent`` is trained: the autoencoder stage, then the denoiser stage (classes 0-9, null 10)."""

    name: str = "digits-latent"
    vae: dict[str, Any] = field(default_factory=lambda: dict(DIGITS_VAE))
    transformer: dict[str, Any] = field(default_factory=lambda: dict(DIGITS_DIT))
    scheduler: dict[str, Any] = field(default_factory=lambda: {**LINEAR_BETAS, "prediction_type": "epsilon"})
    vae_steps: int = 1000
    vae_lr: float = 1e-3
    kl_weight: float = 1e-3
    steps: int = 3000
    batch: int = 96
    lr: float = 1e-3
    ema: float = 0.999
    label_dropout: float = 0.1
    seed: int = 0
    threads: int = 1


LATENT_RECIPES = {r.name: r for r in [LatentRecipe()]}


def vae_loss(vae: Any, x: Tensor, kl_weight: float, generator: torch.Generator) -> Tensor:
    """Mean squared reconstruction error of a posterior sample plus ``kl_weight`` times the mean KL per latent."""
    posterior = vae.encode(x).latent_dist
    z = posterior.mean + posterior.std * torch.randn(posterior.mean.shape, generator=generator)
    kl = posterior.kl() / posterior.mean[0].numel()
    return (vae.decode(z).sample - x).pow(2).mean() + kl_weight * kl.mean()


def train_vae(recipe: LatentRecipe, generator: torch.Generator, log: Callable[[int, float], None] | None = None
              ) -> tuple[Any, list[float]]:
    from diffusers import AutoencoderKL

    images, _ = digits("train")
    vae: Any = AutoencoderKL(**recipe.vae)
    optimizer = torch.optim.Adam(vae.parameters(), lr=recipe.vae_lr)
    losses: list[float] = []
    for step in range(recipe.vae_steps):
        for group in optimizer.param_groups:
            group["lr"] = recipe.vae_lr * min(1.0, (step + 1) / 100) * (1 - step / recipe.vae_steps)
        index = torch.randint(len(images), (recipe.batch,), generator=generator)
        optimize(optimizer, vae_loss(vae, images[index], recipe.kl_weight, generator), losses, step, log)
    vae.eval().requires_grad_(False)
    with torch.no_grad():
        vae.register_to_config(scaling_factor=float(1 / vae.encode(images).latent_dist.mean.std()))
    return vae, losses


def reconstruction(vae: Any) -> dict[str, float]:
    """Held-out reconstruction error and the digits classifier's accuracy on reconstructions (posterior means)."""
    from .classifier import load_classifier

    images, labels = digits("test")
    with torch.no_grad():
        rebuilt = vae.decode(vae.encode(images).latent_dist.mean).sample
        accuracy = (load_classifier()(rebuilt.clamp(-1, 1)).argmax(-1) == labels).float().mean()
    return {"held_out_mse": (rebuilt - images).pow(2).mean().item(), "held_out_accuracy": accuracy.item()}


def train_latent(recipe: LatentRecipe, log: Callable[[int, float], None] | None = None
                 ) -> tuple[Any, NetworkDenoiser, dict[str, Any]]:
    """Train both stages from ``recipe.seed``; returns the VAE, the EMA latent denoiser and a record."""
    from diffusers import DiTTransformer2DModel

    torch.set_num_threads(recipe.threads)
    torch.manual_seed(recipe.seed)
    generator = torch.Generator().manual_seed(recipe.seed)
    start = time.time()
    vae, vae_losses = train_vae(recipe, generator, log)
    vae_seconds = time.time() - start
    images, labels = digits("train")
    with torch.no_grad():
        latents = vae.encode(images).latent_dist.mean * vae.config.scaling_factor
    schedule, prediction = noise_schedule(recipe.scheduler, recipe.name, "log")
    classes = int(recipe.transformer["num_embeds_ada_norm"])
    # eval(): diffusers' DiT drops labels by itself in training mode; the dropout here is seeded and explicit.
    transformer: Any = DiTTransformer2DModel(**recipe.transformer)
    model = NetworkDenoiser(DiTNetwork(transformer.eval()), prediction, schedule,
                            sample_shape=tuple(latents.shape[1:]), num_classes=classes, null_label=classes)
    ema, losses = fit(model, latents, labels, steps=recipe.steps, batch=recipe.batch, lr=recipe.lr, ema=recipe.ema,
                      label_dropout=recipe.label_dropout, null_label=classes, generator=generator, log=log)
    record = {"recipe": asdict(recipe), "seconds": round(time.time() - start, 1),
              "vae": {"seconds": round(vae_seconds, 1), **loss_record(vae_losses), **reconstruction(vae),
                      "scaling_factor": vae.config.scaling_factor,
                      "parameters": sum(p.numel() for p in vae.parameters())},
              **loss_record(losses), "parameters": sum(p.numel() for p in model.parameters()), **machine()}
    return vae, ema, record


def save_pipeline(vae: Any, model: NetworkDenoiser, scheduler: dict[str, Any], out: Path) -> None:
    """Write a diffusers DiTPipeline directory (model_index.json, transformer/, vae/, scheduler/)."""
    from diffusers import DDPMScheduler, DiTPipeline

    config = {k: v for k, v in scheduler.items() if k != "_class_name"}
    assert isinstance(model.net, DiTNetwork)
    pipe: Any = DiTPipeline(transformer=model.net.transformer, vae=vae, scheduler=DDPMScheduler(**config))
    pipe.save_pretrained(out)


def train_latent_and_save(name: str, out: Path, steps: int | None = None, seed: int | None = None,
                          log: Callable[[int, float], None] | None = None) -> dict[str, Any]:
    """Train the named latent recipe (``steps`` scales both stages) and write its pipeline directory."""
    recipe = LATENT_RECIPES[name]
    if steps is not None:
        recipe = replace(recipe, steps=steps, vae_steps=max(1, steps * recipe.vae_steps // recipe.steps))
    if seed is not None:
        recipe = replace(recipe, seed=seed)
    vae, model, record = train_latent(recipe, log)
    save_pipeline(vae, model, recipe.scheduler, out)
    return record
