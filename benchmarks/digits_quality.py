"""Quality of the shipped digits checkpoints, measured with the shipped digits classifier.

For each checkpoint: 2,000 samples with Heun at 35 NFE (seeds 0..1999); the classifier's class histogram
of the samples (and its distance from uniform), its mean confidence on samples against its confidence on
held-out real digits, and the FID/KID of the samples next to the floor (held-out real images against the
training split). Writes results/digits-quality.md. An entry NAME:SAMPLER:SCHEDULE (e.g. digits-flow:flow_heun:normal)
measures a checkpoint with another sampler and schedule at the same 35 NFE.

    python benchmarks/digits_quality.py [--checkpoints digits,digits-v,...] [--samples 2000]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import torch

import samplerzoo as sz
from samplerzoo.bench.harness import reference_images
from samplerzoo.bench.metrics import TensorImages, measure
from samplerzoo.classifier import load_classifier
from samplerzoo.data import digits, to_uint8
from samplerzoo.denoiser import decode
from samplerzoo.guidance import class_conditioned


def sample(model: sz.Checkpoint, n: int, batch: int = 500, sampler: str = "heun",
           schedule: str = "karras") -> torch.Tensor:
    """n images (decoded, for a latent checkpoint), batch by batch."""
    images = []
    for start in range(0, n, batch):
        seeds = range(start, min(start + batch, n))
        run = sz.generate(class_conditioned(model, seeds), sampler, 35, seeds, model.sample_shape, schedule=schedule)
        images.append(decode(model, run.samples))
    return torch.cat(images)


def reconstruction_fid(model: sz.Checkpoint, held_out: torch.Tensor) -> float | None:
    """FID of a latent checkpoint's VAE reconstructions (posterior means) of the held-out digits against the
    training split: the floor its decoder puts under any sampler. None for a pixel-space checkpoint."""
    decoder = getattr(model, "decoder", None)
    if decoder is None:
        return None
    with torch.no_grad():
        latents = decoder.vae.encode(held_out).latent_dist.mean * decoder.scaling
        rebuilt = model.decode(latents)
    return measure(TensorImages(to_uint8(rebuilt)), reference_images("digits-train"), "digits-train", ["fid"])["fid"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoints", default=",".join(sorted(sz.get_checkpoints())))
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=Path("results/digits-quality.md"))
    args = parser.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    classifier = load_classifier()
    held_out, held_out_labels = digits("test")
    with torch.no_grad():
        real_probs = classifier(held_out).softmax(-1)
    real_confidence = real_probs.max(-1).values.mean().item()
    floor_metrics = measure(reference_images("digits-test"), reference_images("digits-train"), "digits-train",
                            ["fid", "kid"])
    lines = [
        "# Digits checkpoints: sample quality", "",
        f"Command: `python benchmarks/digits_quality.py {' '.join(sys.argv[1:])}` "
        f"({platform.machine()}, torch {torch.__version__}, samplerzoo {sz.__version__}).", "",
        f"Each checkpoint: {args.samples} samples, Heun (EDM Alg. 2) at exactly 35 NFE on the karras schedule, "
        "seeds 0.. (class-conditional: label seed % 10, no guidance); a latent checkpoint's samples are decoded by its "
        "VAE first. Classifier: the "
        f"shipped digits classifier (held-out accuracy "
        f"{(real_probs.argmax(-1) == held_out_labels).float().mean().item():.4f}). "
        "Uniformity: total-variation distance between the predicted class histogram and uniform (0 = uniform).", "",
        f"Floor (297 held-out real digits vs the 1,500 training digits): FID {floor_metrics['fid']:.3f}, "
        f"KID {floor_metrics['kid']:.4f}; classifier mean confidence on held-out real digits "
        f"{real_confidence:.4f}. FID's small-sample bias grows as 1/N, so the 297-image floor is inflated "
        f"relative to {args.samples}-sample points.", "",
        "| checkpoint | class histogram (0-9) | TV from uniform | mean confidence | FID | KID | seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    notes = []
    for entry in args.checkpoints.split(","):
        name, *setting = entry.split(":")
        start = time.perf_counter()
        model = sz.load(name)
        samples = sample(model, args.samples, 500, *setting)
        if not torch.isfinite(samples).all():
            lines.append(f"| {entry} | non-finite samples: not measured | | | | | |")
            continue
        with torch.no_grad():
            probs = classifier(samples.clamp(-1, 1)).softmax(-1)
        histogram = probs.argmax(-1).bincount(minlength=10)
        tv = 0.5 * (histogram / len(samples) - 0.1).abs().sum().item()
        metrics = measure(TensorImages(to_uint8(samples)), reference_images("digits-train"), "digits-train",
                          ["fid", "kid"])
        seconds = time.perf_counter() - start
        label = f"{name} ({setting[0]}, {setting[1]})" if setting else name
        lines.append(f"| {label} | {' '.join(map(str, histogram.tolist()))} | {tv:.3f} | "
                     f"{probs.max(-1).values.mean().item():.4f} | {metrics['fid']:.3f} | {metrics['kid']:.4f} | "
                     f"{seconds:.0f} |")
        print(lines[-1], flush=True)
        rebuilt = reconstruction_fid(model, held_out)
        if rebuilt is not None:
            notes.append(f"{name}: its VAE's reconstructions of the 297 held-out digits score FID {rebuilt:.3f} "
                         f"against the training split (the real held-out digits: {floor_metrics['fid']:.3f}).")
    if notes:
        lines += ["", "Latent checkpoints, the decoder's own floor: " + " ".join(notes)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
