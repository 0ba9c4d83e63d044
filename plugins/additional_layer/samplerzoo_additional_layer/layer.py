"""add_net, the trainable "additional layer" of seed 002 (Sec. 4.2 a), scaled from CIFAR's 32x32x3 to 8x8x1.

The paper's layer maps the frozen model's unconditional v to a class-directed v: Conv2d(3, 1, 17) (32 -> 16),
ReLU, one Linear(256, 256) per class, ReLU, ConvTranspose2d(1, 3, 17) (16 -> 32), ReLU. Here the side is
halved the same way (a 'valid' convolution with kernel H/2 + 1: 8 -> 4 with k = 5), so the per-class Linear is
16 -> 16. The paper's final ReLU makes every output v >= 0, which no v of data in [-1, 1] satisfies; it is an
option (``final_relu``) and off in the shipped layer.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import torch
from samplerzoo.checkpoints.weights import load_state_dict
from samplerzoo.errors import CheckpointError
from torch import Tensor, nn

Layer = Callable[[Tensor, Tensor], Tensor]
"""``layer(v, classes) -> v``: a class-directed v for each unconditional v; ``classes`` is ``(batch,)`` long."""

WEIGHTS = Path(__file__).resolve().parent / "weights"
WEIGHTS_FILE, DESCRIPTION_FILE, RECORD_FILE = "layer.safetensors", "layer.json", "training.json"


def identity_layer(v: Tensor, classes: Tensor) -> Tensor:
    """The disabled layer: with it, ``additional_layer_v1`` is plain DDIM."""
    return v


class AdditionalLayer(nn.Module):
    """Conv2d(C, 1, k), ReLU, one Linear(d, d) per class, ReLU, ConvTranspose2d(1, C, k) [, ReLU], d = (H/2)^2."""

    def __init__(self, channels: int = 1, size: int = 8, num_classes: int = 10, final_relu: bool = False) -> None:
        super().__init__()
        self.arguments = {"channels": channels, "size": size, "num_classes": num_classes, "final_relu": final_relu}
        self.sample_shape = (channels, size, size)
        self.checkpoint = ""  # the frozen model it was trained on, set when loaded
        kernel, code = size // 2 + 1, (size // 2) ** 2  # a 'valid' convolution halves the side
        self.encoder = nn.Conv2d(channels, 1, kernel)
        self.transform = nn.ModuleList(nn.Linear(code, code) for _ in range(num_classes))
        self.decoder = nn.ConvTranspose2d(1, channels, kernel)
        self.final_relu = final_relu

    def forward(self, v: Tensor, classes: Tensor) -> Tensor:
        h = torch.relu(self.encoder(v.to(self.encoder.weight.dtype))).flatten(1)
        per_class = torch.stack([linear(h) for linear in self.transform], 1)  # (batch, classes, d)
        h = torch.relu(per_class[torch.arange(len(h), device=h.device), classes])
        out = self.decoder(h.reshape(len(h), 1, *[self.sample_shape[1] // 2] * 2))
        return (torch.relu(out) if self.final_relu else out).to(v.dtype)


def save_layer(layer: AdditionalLayer, directory: Path, checkpoint: str, record: dict[str, Any]) -> None:
    """Write the weights (safetensors), a JSON description and the training record into ``directory``."""
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    save_file(layer.state_dict(), directory / WEIGHTS_FILE)
    description = {"architecture": "AdditionalLayer", "arguments": layer.arguments, "checkpoint": checkpoint}
    (directory / DESCRIPTION_FILE).write_text(json.dumps(description, indent=2) + "\n")
    (directory / RECORD_FILE).write_text(json.dumps(record, indent=1) + "\n")


def load_layer(directory: Path = WEIGHTS) -> AdditionalLayer:
    """A layer written by :func:`save_layer`, frozen and in eval mode."""
    path = Path(directory) / DESCRIPTION_FILE
    if not path.is_file():
        raise CheckpointError(f"{path}: file not found; train it with `zoo-additional-layer train`")
    description = json.loads(path.read_text())
    if description.get("architecture") != "AdditionalLayer":
        raise CheckpointError(f"{path}: architecture must be AdditionalLayer")
    layer = AdditionalLayer(**description.get("arguments", {}))
    load_state_dict(layer, Path(directory) / WEIGHTS_FILE)
    layer.checkpoint = str(description.get("checkpoint", ""))
    return layer.requires_grad_(False).eval()


@cache
def shipped_layer() -> AdditionalLayer:
    """The layer shipped in this package, trained on the frozen ``digits-v`` checkpoint."""
    return load_layer(WEIGHTS)
