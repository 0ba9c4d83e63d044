"""The digits classifier: a small noise-aware CNN p(y | x; sigma).

It serves classifier guidance (Dhariwal & Nichol 2021) at any sigma, and at sigma = 0 its penultimate
layer is the feature space in which FID/KID are measured for the digits checkpoints.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .checkpoints.weights import load_state_dict
from .data import digits
from .errors import CheckpointError

WEIGHTS = Path(__file__).resolve().parent / "weights" / "digits-classifier"


class DigitsClassifier(nn.Module):
    """conv-conv-conv on [x / sqrt(1 + sigma^2), log-noise channel] -> ``features`` units -> class logits."""

    feature_mean: Tensor
    feature_std: Tensor

    def __init__(self, width: int = 32, features: int = 64, num_classes: int = 10) -> None:
        super().__init__()
        self.arguments = {"width": width, "features": features, "num_classes": num_classes}
        self.trunk = nn.Sequential(
            nn.Conv2d(2, width, 3, padding=1), nn.GELU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.GELU(),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.GELU(),
            nn.Flatten(), nn.Linear(2 * width * 16, features), nn.GELU())
        self.head = nn.Linear(features, num_classes)
        # Per-unit statistics of the clean training features, so metric features are O(1) like Inception's
        # (KID's cubic kernel (x.y/d + 1)^3 is meaningless on raw activations of large magnitude).
        self.register_buffer("feature_mean", torch.zeros(features))
        self.register_buffer("feature_std", torch.ones(features))

    def embedding(self, x: Tensor) -> Tensor:
        """Standardized clean-image features: the space FID and KID are measured in."""
        return (self.features(x) - self.feature_mean) / self.feature_std

    def features(self, x: Tensor, sigma: Tensor | None = None) -> Tensor:
        """Penultimate activations; ``sigma=None`` means clean images."""
        s = torch.zeros(len(x), device=x.device, dtype=x.dtype) if sigma is None else sigma.to(x)
        s = s.reshape(-1, 1, 1, 1)
        noise_channel = (s + 1e-3).log().div(4).expand_as(x)
        return self.trunk(torch.cat([x / (1 + s**2).sqrt(), noise_channel], 1))

    def forward(self, x: Tensor, sigma: Tensor | None = None) -> Tensor:
        return self.head(self.features(x, sigma))


def training_sigmas(n: int, generator: torch.Generator) -> Tensor:
    """Half clean (sigma = 0), half log-uniform on [0.01, 80]: good on data and along sampling paths."""
    log_sigma = torch.empty(n).uniform_(torch.log(torch.tensor(0.01)).item(), torch.log(torch.tensor(80.0)).item(),
                                        generator=generator)
    return torch.where(torch.rand(n, generator=generator) < 0.5, torch.zeros(n), log_sigma.exp())


def train_classifier(steps: int = 3000, batch: int = 128, lr: float = 2e-3, seed: int = 0,
                     log: Callable[[int, float], None] | None = None) -> tuple[DigitsClassifier, dict[str, Any]]:
    from .training import optimize

    torch.set_num_threads(1)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    images, labels = digits("train")
    model = DigitsClassifier()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses: list[float] = []
    start = time.time()
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = lr * (1 - step / steps)
        index = torch.randint(len(images), (batch,), generator=generator)
        sigma = training_sigmas(batch, generator)
        x = images[index] + sigma.reshape(-1, 1, 1, 1) * torch.randn(images[index].shape, generator=generator)
        optimize(optimizer, nn.functional.cross_entropy(model(x, sigma), labels[index]), losses, step, log)
    model.eval()
    with torch.no_grad():
        clean = model.features(images)
        model.feature_mean.copy_(clean.mean(0))
        model.feature_std.copy_(clean.std(0).clamp_min(1e-6))
    test_images, test_labels = digits("test")
    with torch.no_grad():
        probs = model(test_images).softmax(-1)
    record = {"steps": steps, "batch": batch, "lr": lr, "seed": seed, "seconds": round(time.time() - start, 1),
              "final_loss": sum(losses[-200:]) / 200,
              "held_out_accuracy": (probs.argmax(-1) == test_labels).float().mean().item(),
              "held_out_mean_confidence": probs.max(-1).values.mean().item(), "torch": torch.__version__}
    return model, record


def save_classifier(model: DigitsClassifier, directory: Path) -> None:
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    save_file(model.state_dict(), directory / "model.safetensors")
    description = {"architecture": "DigitsClassifier", "arguments": model.arguments, "sample_shape": [1, 8, 8]}
    (directory / "model.json").write_text(json.dumps(description, indent=2) + "\n")


def load_classifier(directory: Path = WEIGHTS) -> DigitsClassifier:
    """The classifier saved by :func:`save_classifier` (safetensors + JSON description)."""
    description_path = Path(directory) / "model.json"
    if not description_path.is_file():
        raise CheckpointError(f"{description_path}: file not found; train it with `zoo train digits-classifier`")
    description = json.loads(description_path.read_text())
    if description.get("architecture") != "DigitsClassifier":
        raise CheckpointError(f"{description_path}: architecture must be DigitsClassifier")
    model = DigitsClassifier(**description.get("arguments", {}))
    load_state_dict(model, Path(directory) / "model.safetensors")
    return model.eval()
