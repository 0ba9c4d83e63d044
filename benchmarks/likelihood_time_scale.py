"""The likelihood's NFE on a VP model against its network's time input (results/likelihood.md).

digits' recipe (network, linear-beta schedule, epsilon prediction, 4000 steps, seed 0), trained with the time input
c_noise = t * scale, t the (fractional) training timestep in 0..999, drawn from the integers (Ho et al. 2020, Alg. 1)
or, with ``--continuous``, uniformly on [0, 999] through the schedule's sigma(t) (continuous-time DDPM training,
Song et al. 2021, Sec. 3). scale = 1 on the integers is diffusers' convention and reproduces the shipped digits.
Each trained network is then measured as ``zoo nll --samples 100`` measures one: the first 100 test images,
Hutchinson with one Rademacher probe, dopri5 at rtol = atol = 1e-5, the smooth sigma -> t map. EDM feeds its UNet
ln(sigma) / 4, which spans 2.7 over its range; scale = 1/250 spans 4.

Run from the repository root (about 10 minutes of one CPU core a scale)::

    python benchmarks/likelihood_time_scale.py [--scales 1 0.004] [--continuous] [--steps 4000]
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
import time

import torch
from torch import Tensor

from samplerzoo.adapters import NetworkDenoiser
from samplerzoo.data import digits
from samplerzoo.likelihood import image_bits_per_dim
from samplerzoo.noise_schedules import DiscreteVP
from samplerzoo.training import RECIPES, train


def time_scaled(scale: float, continuous: bool) -> type[DiscreteVP]:
    """DiscreteVP whose network time input is t * scale (the sigma <-> t maps unchanged), trained on fractional t
    where ``continuous``."""

    class TimeScaledVP(DiscreteVP):
        def c_noise(self, sigma: Tensor) -> Tensor:
            return super().c_noise(sigma) * scale

        def training_sigmas(self, n: int, generator: torch.Generator) -> Tensor:
            if not continuous:
                return super().training_sigmas(n, generator)
            return self.sigma(torch.rand(n, generator=generator, dtype=torch.float64) * (len(self.sigma_table) - 1))\
                .float()

    return TimeScaledVP


def trained(scale: float, continuous: bool, steps: int) -> NetworkDenoiser:
    """digits' recipe with the time input scaled by ``scale`` (fractional training timesteps where ``continuous``);
    deterministic given the recipe's seed."""
    recipe = dataclasses.replace(RECIPES["digits"], steps=steps)
    return train(recipe, schedule=time_scaled(scale, continuous).linear_betas())[0]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", type=float, nargs="*", default=[1.0, 0.004])
    parser.add_argument("--continuous", action="store_true", help="train on t ~ U[0, 999], not on the integers")
    parser.add_argument("--steps", type=int, default=RECIPES["digits"].steps)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    images = digits("test")[0][:100]
    print(f"Command: `{shlex.join(['python', *sys.argv])}`\n")
    print("| time input | training t | training s | bits/dim | calls | likelihood CPU s |\n"
          "|---|---|---:|---:|---:|---:|")
    for scale in args.scales:
        start = time.process_time()
        model = trained(scale, args.continuous, args.steps)
        train_s, start = time.process_time() - start, time.process_time()
        result = image_bits_per_dim(model, images, range(100), divergence="hutchinson")
        bpd = result.bpd.double()
        drawn = "U[0, 999]" if args.continuous else "integers"
        print(f"| t * {scale:g} | {drawn} | {train_s:.0f} | {bpd.mean():.4f} +- {bpd.std() / len(bpd) ** 0.5:.4f} | "
              f"{result.nfe} | {time.process_time() - start:.1f} |", flush=True)


if __name__ == "__main__":
    main()
