"""scikit-learn's digits as image data: 1797 8x8 grey digits, scaled to [-1, 1], split once and for all."""

from __future__ import annotations

from functools import cache
from typing import Literal

import torch
from torch import Tensor

Split = Literal["train", "test"]
HELD_OUT = 297
"""Size of the held-out split; the remaining 1500 images are the training split."""
SPLIT_SEED = 0


@cache
def _digits() -> tuple[Tensor, Tensor]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.as_tensor(bunch.images, dtype=torch.float32)[:, None] / 8 - 1  # pixel values 0..16
    labels = torch.as_tensor(bunch.target, dtype=torch.long)
    order = torch.randperm(len(images), generator=torch.Generator().manual_seed(SPLIT_SEED))
    return images[order], labels[order]


def digits(split: Split = "train") -> tuple[Tensor, Tensor]:
    """Images ``(N, 1, 8, 8)`` in [-1, 1] and labels ``(N,)``: a fixed seeded split, 1500 train / 297 test."""
    images, labels = _digits()
    if split == "train":
        return images[HELD_OUT:], labels[HELD_OUT:]
    if split == "test":
        return images[:HELD_OUT], labels[:HELD_OUT]
    raise ValueError(f"unknown split {split!r}; known: train, test")


def to_uint8(images: Tensor) -> Tensor:
    """[-1, 1] images to uint8 [0, 255], as a feature extractor or a PNG wants them."""
    return ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
