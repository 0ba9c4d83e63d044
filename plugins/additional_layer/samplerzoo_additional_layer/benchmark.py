"""Seed 002's comparison on the digits: sampling wall time and quality of v1 / v2 against plain DDIM.

Each point samples N images from seeds 0..N-1 with exactly ``steps`` network evaluations per sample
(``samplerzoo.generate`` counts them) and measures FID / KID against digits-train in the digits classifier's
feature space (``samplerzoo.bench.metrics``), an Inception Score from the same classifier's class
probabilities, and how often a sample is classified as the class it was directed to (seed % 10).
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from samplerzoo.bench.harness import reference_images, versions
from samplerzoo.bench.metrics import TensorImages, measure
from samplerzoo.checkpoints import load
from samplerzoo.classifier import load_classifier
from samplerzoo.data import digits, to_uint8
from samplerzoo.denoiser import Checkpoint
from samplerzoo.guidance import class_conditioned
from samplerzoo.sampling import generate
from torch import Tensor

from .layer import load_layer
from .samplers import NUM_CLASSES, active_rows


@dataclass(frozen=True)
class Variant:
    """One row group of the table: a sampler with its options on a checkpoint."""

    label: str
    checkpoint: str
    sampler: str
    options: dict[str, Any] = field(default_factory=dict)
    layer: str = ""
    """Directory of a layer other than the shipped one (``load_layer``), e.g. an ablation's."""

    def sampler_options(self) -> dict[str, Any]:
        return {**self.options, **({"layer": load_layer(Path(self.layer))} if self.layer else {})}


VARIANTS = (
    Variant("DDIM, class-conditional model (seed's Folder 1)", "digits-cond", "ddim"),
    Variant("DDIM, frozen unconditional model (Folder 2)", "digits-v", "ddim"),
    Variant("v1: DDIM + add_net (Folder 3)", "digits-v", "additional_layer_v1"),
    Variant("v2: fan-out, v + 0.01 xi (the seed's text)", "digits-v", "additional_layer_v2"),
    Variant("v2: fan-out, v + v u (the seed's code)", "digits-v", "additional_layer_v2",
            {"perturbation": "multiplicative"}),
)


def with_layer(directory: str) -> tuple[Variant, ...]:
    """v1 and v2 (the seed's text) with the layer in ``directory`` instead of the shipped one."""
    return (Variant(f"v1, layer {directory}", "digits-v", "additional_layer_v1", layer=directory),
            Variant(f"v2 (text), layer {directory}", "digits-v", "additional_layer_v2", layer=directory))


def inception_score(log_probs: Tensor) -> float:
    """IS = exp(E_x KL(p(y|x) || p(y))), p(y) = E_x p(y|x) (Salimans et al. 2016), from ``(N, classes)`` log p(y|x).

    The seed prints (1/N) sum_i p(y|x_i) [ln p(y|x_i) - ln sum_j p(y|x_j)]: no exp, no sum over y, and no 1/N
    inside the marginal."""
    log_p = log_probs.double()
    log_marginal = log_p.logsumexp(0) - torch.log(torch.tensor(float(len(log_p)), dtype=torch.float64))
    return float((log_p.exp() * (log_p - log_marginal)).sum(1).mean().exp())


def classify(images: Tensor) -> Tensor:
    """log p(y | x) of uint8 digits under the shipped noise-aware classifier at sigma = 0."""
    with torch.no_grad():
        return load_classifier()(images.float() / 127.5 - 1).log_softmax(-1)


def network_rows(variant: Variant, steps: int) -> float:
    """Rows the network evaluates per final image: ``steps`` for DDIM and v1, fewer for v2's fan-out."""
    if variant.sampler != "additional_layer_v2":
        return float(steps)
    group = int(variant.options.get("group", 100))
    return sum(active_rows(group, steps)) / group


def sample_point(model: Checkpoint, variant: Variant, steps: int, samples: int, batch: int, seed: int,
                 schedule: str) -> tuple[Tensor, list[float], list[float]]:
    """uint8 samples for seeds seed..seed+samples-1, and the wall and CPU seconds of sampling each batch (the CPU
    time of this single-threaded process is what the sampler costs, whatever else the machine is running)."""
    images, wall, cpu = [], [], []
    for start in range(seed, seed + samples, batch):
        seeds = range(start, min(start + batch, seed + samples))
        begin, begin_cpu = time.perf_counter(), time.process_time()
        run = generate(class_conditioned(model, seeds), variant.sampler, steps, seeds, model.sample_shape,
                       schedule=schedule, final_step="zero", **variant.sampler_options())
        wall.append(time.perf_counter() - begin)
        cpu.append(time.process_time() - begin_cpu)
        images.append(to_uint8(run.samples))
    return torch.cat(images), wall, cpu


def nearest_neighbour_distances(images: Tensor) -> Tensor:
    """Each image's L2 distance to its nearest other image, pixels in [-1, 1]: near 0 for samples that share
    their trajectory (2.05 is the median over the 1500 digits-train images)."""
    x = (images.float() / 127.5 - 1).flatten(1)
    return torch.cdist(x, x).fill_diagonal_(float("inf")).min(1).values


def quality(images: Tensor, classes: Tensor) -> dict[str, float]:
    """FID / KID against digits-train, the classifier's Inception Score, the share classified as ``classes``, and
    how close samples are to each other (median nearest-neighbour distance, share of near twins within 0.5)."""
    metrics = measure(TensorImages(images), reference_images("digits-train"), "digits-train", ["fid", "kid"])
    log_probs, neighbours = classify(images), nearest_neighbour_distances(images)
    return {**metrics, "is": inception_score(log_probs),
            "class_hit": float((log_probs.argmax(-1) == classes).float().mean()),
            "nn_median": float(neighbours.median()), "twins": float((neighbours < 0.5).float().mean())}


def benchmark(steps: Sequence[int], samples: int, batch: int, seed: int = 0, schedule: str = "trailing",
              variants: Sequence[Variant] = VARIANTS,
              progress: Callable[[Variant, int], None] = lambda variant, steps: None,
              ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Every variant at every step count; returns the rows and the setting (machine, floor, versions)."""
    torch.set_num_threads(1)
    test_images, test_labels = digits("test")
    setting = {"samples": samples, "batch": batch, "seed": seed, "schedule": schedule, "threads": 1,
               "floor: digits-test vs digits-train (class hit = classifier accuracy)":
                   quality(to_uint8(test_images), test_labels),
               "load_average_before": os.getloadavg(), "processor": platform.processor() or platform.machine(),
               "cpu_count": os.cpu_count(), "versions": versions()}
    rows: list[dict[str, Any]] = []
    models: dict[str, Checkpoint] = {}
    for variant in variants:
        model = models.setdefault(variant.checkpoint, load(variant.checkpoint))
        for n in steps:
            progress(variant, n)
            images, wall, cpu = sample_point(model, variant, n, samples, batch, seed, schedule)
            classes = torch.arange(seed, seed + samples) % NUM_CLASSES
            rows.append({**asdict(variant), "steps": n, "nfe_per_sample": n, "network_rows_per_image":
                         network_rows(variant, n), "wall_seconds": sum(wall), "cpu_seconds": sum(cpu),
                         "batch_wall_seconds": wall, "batch_cpu_seconds": cpu,
                         "images_per_cpu_second": samples / sum(cpu), **quality(images, classes)})
    setting["load_average_after"] = os.getloadavg()
    return rows, setting


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """The rows as a markdown table, one line per (variant, steps)."""
    lines = ["| variant | steps | NFE / sample | network rows / image | CPU s | wall s | images / CPU s | FID | KID | "
             "IS | class hit | NN median | twins |", "|---|" + "---:|" * 12]
    lines += [f"| {r['label']} | {r['steps']} | {r['nfe_per_sample']} | {r['network_rows_per_image']:.2f} | "
              f"{r['cpu_seconds']:.1f} | {r['wall_seconds']:.1f} | {r['images_per_cpu_second']:.0f} | {r['fid']:.3f} | "
              f"{r['kid']:.4f} | {r['is']:.3f} | {r['class_hit']:.3f} | {r['nn_median']:.3f} | {r['twins']:.3f} |"
              for r in rows]
    return "\n".join(lines)
