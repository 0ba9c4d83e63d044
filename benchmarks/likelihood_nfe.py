"""Where the adaptive solver spends its steps on the digits checkpoints, and why: denoiser calls of the x-only
probability-flow ODE (dopri5, rtol = atol = 1e-5, the likelihood's default) over three ranges of sigma, with the
network's time input read through each sigma -> t map, and frozen at the range's start.

The likelihood integrates the same ODE (plus the divergence), so its calls follow these. ``log`` and ``smooth`` are
DiscreteVP's piecewise-linear and C1 (PCHIP) maps through the trained levels; ``frozen`` feeds the network the time
input of the range's first sigma throughout (a different model: it shows what the network's own dependence on its
time input costs the solver, kinks or none).

Run from the repository root::

    python benchmarks/likelihood_nfe.py [--samples 10] [--checkpoints digits digits-v digits-edm]
"""

from __future__ import annotations

import argparse
import itertools
import shlex
import sys
import time
from dataclasses import dataclass

import torch
from torch import Tensor

import samplerzoo as sz
from samplerzoo.adapters import NetworkDenoiser
from samplerzoo.data import digits
from samplerzoo.noise_schedules import DiscreteVP, NoiseSchedule
from samplerzoo.samplers.reference import solve_ode

BOUNDS = (1.0, 20.0)
"""Inner ends of the three sigma ranges: [sigma_min, 1], [1, 20], [20, sigma_max]."""


@dataclass(frozen=True)
class FrozenTime:
    """A noise schedule whose time input stays at that of ``frozen_at``; all else is the wrapped schedule's."""

    schedule: NoiseSchedule
    frozen_at: float

    def __getattr__(self, name: str) -> object:
        return getattr(self.schedule, name)

    def c_noise(self, sigma: Tensor) -> Tensor:
        return self.schedule.c_noise(torch.full_like(sigma, self.frozen_at))


def variants(model: NetworkDenoiser, sigma_from: float) -> dict[str, NetworkDenoiser]:
    """The model through each sigma -> t map (discrete-time VP only), and with its time input frozen."""
    schedule = model.schedule
    found = {"frozen": model.with_schedule(FrozenTime(schedule, sigma_from))}  # type: ignore[arg-type]
    if isinstance(schedule, DiscreteVP):
        found = {mode: model.with_schedule(schedule.with_sigma_to_t(mode)) for mode in ("log", "smooth")} | found
    else:
        found = {"model": model} | found
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=10, help="test images, noised to each range's start")
    parser.add_argument("--checkpoints", nargs="*", default=["digits", "digits-v", "digits-edm"])
    args = parser.parse_args(argv)
    command = shlex.join(["python", "benchmarks/likelihood_nfe.py", *(sys.argv[1:] if argv is None else argv)])
    torch.set_num_threads(1)
    images = digits("test")[0][:args.samples]
    print(f"Command: `{command}` (x-only PF-ODE, dopri5 rtol = atol = 1e-5, {args.samples} test images)\n")
    print("| checkpoint | sigma range | time input | denoiser calls |\n|---|---|---|---:|")
    began = time.perf_counter()
    for name in args.checkpoints:
        model = sz.load(name)
        assert isinstance(model, NetworkDenoiser)
        ends = (model.sigma_min, *BOUNDS, model.sigma_max)
        for sigma_from, sigma_to in itertools.pairwise(ends):
            noise = sz.CounterNoise(range(args.samples), images.shape[1:]).randn()
            start = images + sigma_from * noise
            for label, variant in variants(model, sigma_from).items():
                with torch.no_grad():
                    calls = solve_ode(variant, start, sigma_from, sigma_to, 1e-5, 1e-5).nfe
                print(f"| {name} | {sigma_from:.4g} -> {sigma_to:.4g} | {label} | {calls} |", flush=True)
    print(f"\n{time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
