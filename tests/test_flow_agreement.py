"""Flow matching and zero terminal SNR against the references, on the same network, noise and timesteps.

* diffusers' FlowMatchEulerDiscreteScheduler (shift 1 and 3, dynamic exponential / linear shift, shift_terminal),
  FlowMatchHeunDiscreteScheduler and the stochastic FlowMatchLCMScheduler loops give our ``euler``, ``flow_heun`` and
  ``lcm`` results to 1e-5 in float32, on our ``normal`` schedule, which rebuilds their timesteps;
* facebookresearch's flow_matching ODESolver (torchdiffeq's euler and midpoint) gives ``euler`` and
  ``flow_midpoint`` (its time s = 1 - t runs from noise to data, its velocity is -v);
* diffusers' DDIMScheduler with rescale_betas_zero_snr=True, trailing spacing and v-prediction gives our ``ddim``,
  started at sigma = inf.
"""

from __future__ import annotations

import math

import pytest
import torch
from diffusers import (
    DDIMScheduler,
    FlowMatchEulerDiscreteScheduler,
    FlowMatchHeunDiscreteScheduler,
    FlowMatchLCMScheduler,
)
from diffusers_driver import PYTESTMARK
from torch import Tensor

import samplerzoo as sz
from samplerzoo.adapters import NetworkDenoiser
from samplerzoo.checkpoints.betas import alphas_cumprod
from samplerzoo.flow import dynamic_mu, flow_match_from_config, flow_time
from samplerzoo.noise_schedules import DiscreteVP
from samplerzoo.sampling import run_sampler

pytestmark = PYTESTMARK

SHAPE = (2, 3, 6, 6)
ATOL = 1e-5
SEQ_LEN = 1024  # Flux's packed latent length of a 512 x 512 image


class VelocityNet:
    """A fixed, smooth velocity "network" of (x_t, timestep = 1000 t), close to eps - x0 of unit data; it records
    the timesteps it is called at."""

    def __init__(self) -> None:
        self.timesteps: list[float] = []

    def __call__(self, x: Tensor, timestep: Tensor) -> Tensor:
        t = torch.as_tensor(timestep).to(x.dtype).reshape(-1, *[1] * (x.ndim - 1)) / 1000
        self.timesteps.append(float(t.flatten()[0]))
        return (0.8 + 0.4 * t) * x + 0.2 * torch.tanh(x) * torch.cos(3 * t) - 0.3 * torch.sin(2 * t + x)


def noise() -> Tensor:
    return torch.randn(SHAPE, generator=torch.Generator().manual_seed(7))


def diffusers_loop(scheduler: object, net: VelocityNet, generator: torch.Generator | None = None) -> Tensor:
    x = noise()  # flow pipelines start from the unit noise (t = 1), no init_noise_sigma
    for t in scheduler.timesteps:  # type: ignore[attr-defined]
        x = scheduler.step(net(x, t), t, x, generator=generator).prev_sample  # type: ignore[attr-defined]
    return x


def ours(config: dict, sampler: str, n: int, draw: torch.Generator | None = None) -> tuple[Tensor, Tensor, VelocityNet]:
    net = VelocityNet()
    model = NetworkDenoiser(net, "flow", flow_match_from_config(config, "test", image_seq_len=SEQ_LEN))
    sigmas = sz.get_schedule("normal")(n, model)
    start = noise()
    if draw is not None:  # the stochastic loop draws the start first, then one normal per step, from one generator
        start = torch.randn(SHAPE, generator=draw)

    def fresh(sigma: Tensor, sigma_next: Tensor) -> Tensor:
        assert draw is not None
        return torch.randn(SHAPE, generator=draw)

    with torch.no_grad():
        return run_sampler(sz.get_sampler(sampler), model, start, sigmas, fresh), sigmas, net


def agree(name: str, ours_x: Tensor, theirs: Tensor, sigmas: Tensor, their_sigmas: Tensor, our_net: VelocityNet,
          their_net: VelocityNet) -> None:
    times = flow_time(sigmas)
    torch.testing.assert_close(times.float(), their_sigmas, rtol=1e-6, atol=1e-7)
    assert len(our_net.timesteps) == len(their_net.timesteps)
    torch.testing.assert_close(torch.tensor(our_net.timesteps), torch.tensor(their_net.timesteps), rtol=0, atol=1e-6)
    diff = float((ours_x - theirs).abs().max())
    print(f"{name}: max |ours - reference| = {diff:.2e}")
    assert diff <= ATOL, f"{name}: max |ours - reference| = {diff:.3e} > {ATOL:.0e}"


EULER_CONFIGS = {
    "shift1": {"shift": 1.0},
    "shift3": {"shift": 3.0},
    "dynamic_exponential": {"use_dynamic_shifting": True},
    "dynamic_linear": {"use_dynamic_shifting": True, "time_shift_type": "linear"},
    "shift3_terminal": {"shift": 3.0, "shift_terminal": 0.1},
}


@pytest.mark.parametrize("n", [10, 25])
@pytest.mark.parametrize("case", EULER_CONFIGS)
def test_flow_match_euler(case: str, n: int) -> None:
    config = {"num_train_timesteps": 1000, **EULER_CONFIGS[case]}
    scheduler = FlowMatchEulerDiscreteScheduler(**config)
    scheduler.set_timesteps(n, mu=dynamic_mu(SEQ_LEN) if config.get("use_dynamic_shifting") else None)
    their_net = VelocityNet()
    theirs = diffusers_loop(scheduler, their_net)
    x, sigmas, net = ours(config, "euler", n)
    agree(f"FlowMatchEuler {case} n={n}", x, theirs, sigmas, scheduler.sigmas, net, their_net)


@pytest.mark.parametrize("n", [10, 25])
@pytest.mark.parametrize("shift", [1.0, 3.0])
def test_flow_match_heun(shift: float, n: int) -> None:
    scheduler = FlowMatchHeunDiscreteScheduler(shift=shift)
    scheduler.set_timesteps(n)
    their_net = VelocityNet()
    theirs = diffusers_loop(scheduler, their_net)
    x, sigmas, net = ours({"shift": shift}, "flow_heun", n)
    agree(f"FlowMatchHeun shift={shift} n={n}", x, theirs, sigmas, torch.unique_consecutive(scheduler.sigmas), net,
          their_net)


@pytest.mark.parametrize("scheduler_cls", [FlowMatchLCMScheduler, FlowMatchEulerDiscreteScheduler])
def test_stochastic_flow_sampling_is_lcm(scheduler_cls: type) -> None:
    options = {"stochastic_sampling": True} if scheduler_cls is FlowMatchEulerDiscreteScheduler else {}
    scheduler = scheduler_cls(shift=3.0, **options)
    scheduler.set_timesteps(8)
    their_net, generator = VelocityNet(), torch.Generator().manual_seed(11)
    x_theirs = torch.randn(SHAPE, generator=generator)
    for t in scheduler.timesteps:
        x_theirs = scheduler.step(their_net(x_theirs, t), t, x_theirs, generator=generator).prev_sample
    x, sigmas, net = ours({"shift": 3.0}, "lcm", 8, draw=torch.Generator().manual_seed(11))
    agree(f"{scheduler_cls.__name__} stochastic", x, x_theirs, sigmas, scheduler.sigmas, net, their_net)


@pytest.mark.parametrize(("method", "sampler"), [("euler", "euler"), ("midpoint", "flow_midpoint")])
def test_flow_matching_ode_solver(method: str, sampler: str) -> None:
    from flow_matching.solver import ODESolver

    their_net = VelocityNet()
    x, sigmas, net = ours({"shift": 3.0}, sampler, 12)
    grid = 1 - flow_time(sigmas)  # flow_matching's time: 0 at the noise, 1 at the data

    def velocity(x: Tensor, t: Tensor) -> Tensor:
        return -their_net(x, 1000 * (1 - t))

    theirs = ODESolver(velocity).sample(noise(), step_size=None, method=method, time_grid=grid.float())
    diff = float((x - theirs).abs().max())
    print(f"flow_matching ODESolver {method}: max |ours - reference| = {diff:.2e}")
    assert len(net.timesteps) == len(their_net.timesteps) and diff <= ATOL


ZSNR = {"num_train_timesteps": 1000, "beta_schedule": "linear", "beta_start": 1e-4, "beta_end": 0.02,
        "rescale_betas_zero_snr": True}


@pytest.mark.parametrize("n", [10, 25])
def test_zero_terminal_snr_ddim_from_infinity(n: int) -> None:
    scheduler = DDIMScheduler(**ZSNR, timestep_spacing="trailing", prediction_type="v_prediction", clip_sample=False,
                              set_alpha_to_one=True)
    scheduler.set_timesteps(n)
    assert scheduler.alphas_cumprod[-1] == 0
    table = alphas_cumprod(ZSNR, "test")
    torch.testing.assert_close(table.float(), scheduler.alphas_cumprod, rtol=1e-5, atol=1e-7)

    def v_net(calls: list[float]):  # a fixed smooth v "network" of (x_vp, timestep)
        def net(x: Tensor, t: Tensor) -> Tensor:
            t = torch.as_tensor(t).to(x.dtype).reshape(-1, *[1] * (x.ndim - 1))
            calls.append(float(t.flatten()[0]))
            return -0.7 * x * (t / 1000) + 0.3 * torch.tanh(x) * torch.cos(t / 200) + 0.1 * torch.sin(t / 90)
        return net

    their_calls: list[float] = []
    x_theirs, net = noise(), v_net(their_calls)
    for t in scheduler.timesteps:
        x_theirs = scheduler.step(net(x_theirs, t), t, x_theirs, eta=0.0).prev_sample
    our_calls: list[float] = []
    model = NetworkDenoiser(v_net(our_calls), "v", DiscreteVP(table))
    sigmas = sz.schedules.trailing(n, model)
    assert math.isinf(float(sigmas[0]))
    with torch.no_grad():
        x_ours = run_sampler(sz.get_sampler("ddim"), model, noise(), sigmas)
    assert our_calls == their_calls == [float(t) for t in scheduler.timesteps]
    diff = float((x_ours - x_theirs).abs().max())
    print(f"DDIM zero terminal SNR n={n}: max |ours - diffusers| = {diff:.2e}")
    assert diff <= ATOL


@pytest.mark.parametrize("config", [{"shift": 3.0}, {"use_dynamic_shifting": True}])
def test_flow_table_is_diffusers_training_grid(config: dict) -> None:
    scheduler = FlowMatchEulerDiscreteScheduler(**config)
    schedule = flow_match_from_config(config, "test", image_seq_len=SEQ_LEN)
    torch.testing.assert_close(flow_time(schedule.sigma_table).flip(0).float(), scheduler.sigmas, rtol=1e-6, atol=0)
