"""The published sweep (results/sweeps/): every registered sampler on a checkpoint, FID/KID against NFE.

Deterministic samplers run at NFE 3, 4, 5, 6, 8, 10, 15, 20, 35, 50 and stochastic ones at 10, 20, 50, on the
karras schedule (a flow checkpoint: ``normal``, diffusers' FlowMatch timesteps from t = 1, sigma = inf) with the
automatic final step, 2,000 samples a point (seeds 0..1999). Adaptive samplers (dopri5, dpm_adaptive) choose their
own NFE and are left out, and so are the CFG++ samplers without guidance (they need the unconditional branch). With
``--guidance-scale G`` (a class-conditional checkpoint, labels seed % classes) the points use classifier-free guidance
and go to ``NAME-cfgG.jsonl``; NFE counts denoiser calls, each two network forwards. Points already in the results
file are skipped, so an interrupted run resumes where it stopped and a newly registered sampler only adds its own
points.

    python benchmarks/published_sweep.py --checkpoint digits-ideal
    python benchmarks/published_sweep.py --checkpoint digits
    python benchmarks/published_sweep.py --checkpoint digits-flow        # --schedules normal,karras for both
    python benchmarks/published_sweep.py --checkpoint digits-latent --guidance-scale 2   # -> digits-latent-cfg2.jsonl
    python benchmarks/published_sweep.py --checkpoint digits --noise torch --samplers NEW,...  # add samplers
    zoo report results/sweeps/digits.jsonl results/sweeps/digits-ideal.jsonl
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import samplerzoo as sz
from samplerzoo.bench.harness import sweep

DETERMINISTIC_NFE = [3, 4, 5, 6, 8, 10, 15, 20, 35, 50]
STOCHASTIC_NFE = [10, 20, 50]


def default_schedule(checkpoint: str) -> str:
    """karras, or ``normal`` for a flow checkpoint (the timesteps its diffusers scheduler samples on)."""
    spec = sz.get_checkpoints().get(checkpoint)
    return "normal" if spec is not None and spec.prediction == "flow" else "karras"


def parse(nfes: str) -> list[int]:
    return [int(n) for n in nfes.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default="digits")
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=Path("results/sweeps"))
    parser.add_argument("--samplers", help="comma-separated subset (default: every registered sampler)")
    parser.add_argument("--schedules", help="comma-separated (default: karras; normal for a flow checkpoint)")
    parser.add_argument("--guidance-scale", type=float, help="classifier-free guidance (class-conditional models)")
    parser.add_argument("--noise", default="counter", help="per-sample noise: counter, or torch (the digits and "
                        "digits-ideal sweeps' first rows; keep it when adding samplers to them)")
    parser.add_argument("--deterministic-nfe", default=",".join(map(str, DETERMINISTIC_NFE)))
    parser.add_argument("--stochastic-nfe", default=",".join(map(str, STOCHASTIC_NFE)))
    args = parser.parse_args()
    scale = args.guidance_scale
    schedules = args.schedules.split(",") if args.schedules else [default_schedule(args.checkpoint)]
    names = args.samplers.split(",") if args.samplers else sorted(sz.get_samplers())
    specs = [spec for spec in map(sz.get_sampler, names) if scale is not None or not spec.needs_unconditional]
    groups = [([s.name for s in specs if not s.stochastic and not s.adaptive], parse(args.deterministic_nfe)),
              ([s.name for s in specs if s.stochastic], parse(args.stochastic_nfe))]
    args.out.mkdir(parents=True, exist_ok=True)
    results = args.out / (f"{args.checkpoint}.jsonl" if scale is None else f"{args.checkpoint}-cfg{scale:g}.jsonl")
    begin = time.perf_counter()
    for samplers, nfes in groups:
        for name in samplers:  # one sampler at a time, so progress shows in the results file as it goes
            rows = sweep(args.checkpoint, [name], schedules, nfes, args.samples, 0, results, batch=args.batch,
                         device=args.device, guidance_scale=scale, noise=args.noise)
            fids = ", ".join(f"{r['schedule']}/{r['requested_nfe']}:{r['metrics']['fid']:.3f}" if r["status"] == "ok"
                             else f"{r['schedule']}/{r['requested_nfe']}:-" for r in rows)
            print(f"{name:28s} {fids}  ({time.perf_counter() - begin:.0f} s so far)", flush=True)
    print(f"total wall time of this run: {time.perf_counter() - begin:.0f} s")


if __name__ == "__main__":
    main()
