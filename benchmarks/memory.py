"""Peak memory against the number of samples, for a latent checkpoint (digits-latent by default): the benchmark
harness (``zoo bench``'s path: sample, decode, extract features, batch by batch) and ``zoo sample``'s path (sample
and decode batch by batch, keep uint8 images for the grid). Each measurement runs in a fresh process.

    python benchmarks/memory.py                                   # digits-latent, 500 2000 8000 samples
    python benchmarks/memory.py --samples 1000 4000 --guidance-scale 3 --device cuda

Recorded: peak RSS, RSS before sampling, and the peak bytes of live tensors, scanned right after every batch is
decoded (when that batch's latents and images are both alive; torch's CPU tensors, see harness_overhead.py), next to
what every sample's latents and images would take if they were kept. On CUDA, also torch's peak allocated bytes.
Flat in N means one batch is alive at a time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
from harness_overhead import MB, live_tensor_bytes, rss_mb

import samplerzoo as sz
import samplerzoo.denoiser
from samplerzoo.bench import harness
from samplerzoo.cli.checkpoints import sample_images
from samplerzoo.precision import in_dtype

PATHS = ("bench", "sample")


def watch_decoding(peaks: list[int]) -> None:
    """Record live tensor bytes each time a batch has been decoded (both modules' ``decode``)."""
    decode = samplerzoo.denoiser.decode

    def watched(model: Any, x: torch.Tensor) -> torch.Tensor:
        images = decode(model, x)
        peaks.append(live_tensor_bytes())
        return images

    samplerzoo.denoiser.decode = watched  # type: ignore[assignment]
    harness.decode = watched  # type: ignore[assignment]


def child(args: argparse.Namespace) -> dict[str, Any]:
    """One run of ``args.path`` with ``args.child_samples`` samples; its peaks."""
    peaks: list[int] = []
    watch_decoding(peaks)
    model = sz.load(args.checkpoint)
    shape = tuple(model.sample_shape)
    image = model.decode(torch.zeros(1, *shape)).shape[1:]
    kept = 4 * args.child_samples * (torch.Size(shape).numel() + image.numel())
    cuda = args.device.startswith("cuda")
    before = rss_mb()
    if args.path == "bench":
        del model
        with tempfile.TemporaryDirectory() as folder:
            row = harness.sweep(args.checkpoint, [args.sampler], ["karras"], [args.nfe], args.child_samples, 0,
                                Path(folder) / "r.jsonl", batch=args.batch, device=args.device,
                                metric_names=("fid",), guidance_scale=args.guidance_scale)[0]
        assert row["status"] == "ok", row
    else:
        model, _ = in_dtype(model, torch.float32, args.device)
        request = {"guidance_scale": args.guidance_scale}
        sample_images(model, args.sampler, args.nfe, range(args.child_samples), args.batch, request, Path("-"),
                      device=args.device)
    return {"rss_before": before, "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "tensors": max(peaks) / MB, "kept": kept / MB,
            "cuda": torch.cuda.max_memory_allocated() / MB if cuda else None}


def measure(args: argparse.Namespace, path: str, samples: int) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", path, "--child-samples", str(samples), "--checkpoint",
               args.checkpoint, "--sampler", args.sampler, "--nfe", str(args.nfe), "--batch", str(args.batch),
               "--device", args.device, *(["--guidance-scale", str(args.guidance_scale)] if args.guidance_scale
                                          else [])]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    return json.loads(subprocess.run(command, check=True, capture_output=True, text=True, env=env).stdout
                      .splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default="digits-latent")
    parser.add_argument("--samples", type=int, nargs="+", default=[500, 2000, 8000])
    parser.add_argument("--batch", type=int, default=250)
    parser.add_argument("--sampler", default="dpmpp_2m")
    parser.add_argument("--nfe", type=int, default=10)
    parser.add_argument("--guidance-scale", type=float, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--child", choices=PATHS, help=argparse.SUPPRESS)
    parser.add_argument("--child-samples", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.child:
        args.path = args.child
        print(json.dumps(child(args)))
        return
    print(f"python benchmarks/memory.py {' '.join(sys.argv[1:])}".rstrip())
    print(f"{args.checkpoint}, {args.sampler} NFE {args.nfe}, batch {args.batch}, guidance "
          f"{args.guidance_scale or 'none'}, {args.device}; python {platform.python_version()}, torch "
          f"{torch.__version__}, {os.cpu_count()} CPUs; one fresh process per line")
    cuda = args.device.startswith("cuda")
    print(f"{'path':<7} {'samples':>8} {'peak RSS MB':>12} {'RSS before MB':>14} {'live tensors peak MB':>21} "
          f"{'all kept MB':>12}" + (f" {'CUDA peak MB':>13}" if cuda else ""))
    for path in PATHS:
        for samples in args.samples:
            m = measure(args, path, samples)
            print(f"{path:<7} {samples:>8} {m['peak_rss']:>12.0f} {m['rss_before']:>14.0f} {m['tensors']:>21.2f} "
                  f"{m['kept']:>12.2f}" + (f" {m['cuda']:>13.1f}" if cuda else ""), flush=True)


if __name__ == "__main__":
    main()
