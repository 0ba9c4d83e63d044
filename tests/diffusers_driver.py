"""Drive diffusers' schedulers and our samplers side by side: one epsilon network, one beta table, one noise.

Shared by the agreement tests (tests/ is not a package; conftest puts this folder on sys.path).

diffusers' conventions met on the way:

* Euler-family and KDPM2 schedulers start from ``init_noise_sigma * noise``, which is sigma_max for
  ``linspace``/``trailing`` but sqrt(sigma_max^2 + 1) for ``leading``; both sides start from that same x.
* DDIM/DDPM work in the VP frame, x_vp = x / sqrt(1 + sigma^2) with init_noise_sigma = 1; they end at
  alpha_bar = 1 (sigma = 0), where the frames coincide.
* Heun and KDPM2 default to beta 0.00085..0.012 (Stable Diffusion's range), unlike the others: pass the betas.
* DDIM and DDPM default to ``clip_sample=True``.
* DDPMScheduler adds noise on every step whose timestep is > 0, the last one included (see ``final_ddpm_noise_std``).
* diffusers builds its sigma table in float32: up to 5e-6 off (relative) from our float64 table, and 8e-5
  (8e-7 absolute) at t = 0, where 1 - alpha_bar ~ 1e-4 cancels. That also puts a floor of ~7e-4 steps under
  the timesteps it derives from sigmas (KDPM2's midpoints). Hence SIGMA_RTOL/SIGMA_ATOL and TIMESTEP_ATOL.
"""

from __future__ import annotations

import inspect

import pytest
import torch
from diffusers import (
    SchedulerMixin,
)
from torch import Tensor

from samplerzoo import get_sampler, schedules
from samplerzoo.adapters import NetworkDenoiser
from samplerzoo.noise_schedules import DiscreteVP

# diffusers' set_timesteps hands torch tensors to numpy 2, which warns thousands of times (KDPM2's __init__).
PYTESTMARK = pytest.mark.filterwarnings(
    "ignore:__array_wrap__ must accept context:DeprecationWarning",
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning",
)

T = 1000
BETAS = {"num_train_timesteps": T, "beta_start": 1e-4, "beta_end": 0.02, "beta_schedule": "linear"}
SHAPE = (2, 3, 8, 8)
SEED = 2024
STEPS = (10, 25)
ATOL = 1e-4  # final samples (float32, |x| ~ 4)
SIGMA_RTOL, SIGMA_ATOL = 1e-5, 2e-6  # our float64 table vs diffusers' float32 one
TIMESTEP_ATOL = 1e-3  # training steps; a wrong sigma_to_t / interpolation mode is off by up to 1e-2
LEADING, LEADING_OFFSET, TRAILING, LINSPACE = ("leading", 0), ("leading", 1), ("trailing", 0), ("linspace", 0)


class EpsNet:
    """A fixed, smooth epsilon "network" of (x_in, t) that counts its calls and records their timesteps.

    Its x-coefficient tends to 1 at t = T (the true epsilon of pure noise), so samples end O(1) and
    the 1e-4 tolerance is hundreds of float32 ulps rather than one.
    """

    def __init__(self) -> None:
        self.timesteps: list[float] = []

    @property
    def calls(self) -> int:
        return len(self.timesteps)

    def __call__(self, x: Tensor, t: Tensor) -> Tensor:
        t = torch.as_tensor(t).to(x.dtype).reshape(-1, *[1] * (x.ndim - 1))  # ours: (batch,); diffusers: scalar
        self.timesteps.append(float(t.flatten()[0]))
        return (0.6 + 0.4 * t / T) * x + 0.1 * torch.tanh(x) * torch.cos(t / 150) + 0.1 * torch.sin(t / 20)


def our_model(sigma_to_t: str) -> tuple[EpsNet, NetworkDenoiser]:
    net = EpsNet()
    return net, NetworkDenoiser(net, "epsilon", DiscreteVP.linear_betas(sigma_to_t=sigma_to_t))


def our_sigmas(model: NetworkDenoiser, n: int, spacing: str, steps_offset: int) -> Tensor:
    """diffusers' timestep spacings rebuilt by our schedules from the model's trained sigma table."""
    if spacing == "leading":
        return schedules.leading(n, model, steps_offset=steps_offset)
    if spacing == "trailing":
        return schedules.trailing(n, model)
    # Fractional timesteps: diffusers' Euler family interpolates sigma linearly in t (interpolation_type="linear").
    return schedules.linspace(n, model, interpolation="linear")


def seeded() -> tuple[Tensor, torch.Generator]:
    """The initial noise and the generator it came from; stochastic steps keep drawing from it, as in diffusers."""
    g = torch.Generator().manual_seed(SEED)
    return torch.randn(SHAPE, generator=g), g


def sample_ours(sampler: str, model: NetworkDenoiser, sigmas: Tensor, start_scale: float,
                **options) -> tuple[Tensor, torch.Generator]:
    init, g = seeded()

    def noise(sigma: Tensor, sigma_next: Tensor) -> Tensor:
        return torch.randn(SHAPE, generator=g)

    with torch.no_grad():
        return get_sampler(sampler).fn(model, init * start_scale, sigmas, noise=noise, **options), g


def sample_diffusers(scheduler: SchedulerMixin, net: EpsNet, **step_kwargs) -> Tensor:
    """diffusers' standard denoising loop; noise draws come from the same seeded generator as ours."""
    init, g = seeded()
    x = init * scheduler.init_noise_sigma
    if "generator" in inspect.signature(scheduler.step).parameters:  # Heun's and KDPM2's step() take none
        step_kwargs["generator"] = g
    for t in scheduler.timesteps:
        x = scheduler.step(net(scheduler.scale_model_input(x, t), t), t, x, **step_kwargs).prev_sample
    return x


def assert_agreement(sampler: str, sigmas: Tensor, their_sigmas: Tensor, ours: Tensor, theirs: Tensor,
                     our_net: EpsNet, their_net: EpsNet, atol: float = ATOL, **options) -> None:
    torch.testing.assert_close(sigmas, their_sigmas.to(torch.float64), rtol=SIGMA_RTOL, atol=SIGMA_ATOL)
    nfe = get_sampler(sampler).nfe(sigmas, **options)  # N, or 2N - 1 for heun and dpm2 (Euler on the step to 0)
    assert our_net.calls == their_net.calls == nfe, (our_net.calls, their_net.calls, nfe)
    torch.testing.assert_close(torch.tensor(our_net.timesteps, dtype=torch.float64),
                               torch.tensor(their_net.timesteps, dtype=torch.float64), rtol=0, atol=TIMESTEP_ATOL)
    diff = (ours - theirs).abs().max().item()
    print(f"{sampler}: max |ours - diffusers| = {diff:.2e}")
    assert diff <= atol, f"{sampler}: max |ours - diffusers| = {diff:.3e} > {atol:.0e}"
