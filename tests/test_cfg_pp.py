"""CFG++ samplers and the unconditional-prediction interface of guidance.py.

* Under guidance with identical halves (conditional = unconditional) every CFG++ sampler is its base sampler, to
  rounding: the guidance vector vanishes and the steps are the base ones (ComfyUI's code reduces the same way).
* euler_cfg_pp is Chung et al. 2024's Alg. 1 (DDIM-CFG++), written here in the VP frame with epsilon predictions;
  the other CFG++ samplers are ComfyUI's recursions, written here at a guidance scale where D_w and D_u differ.
* A model without classifier-free guidance is refused in one line before any denoiser call.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest
import torch
from torch import Tensor

import samplerzoo as sz
from samplerzoo import testing
from samplerzoo.denoiser import CountingDenoiser
from samplerzoo.guidance import ClassifierFreeGuidance, Conditioned
from samplerzoo.noise import SeededNoise
from samplerzoo.schedules import SigmaRange, karras

BASE = {"euler_cfg_pp": "euler", "euler_ancestral_cfg_pp": "euler_ancestral",
        "dpmpp_2s_ancestral_cfg_pp": "dpmpp_2s_ancestral", "dpmpp_2m_cfg_pp": "dpmpp_2m",
        "res_multistep_cfg_pp": "res_multistep", "res_multistep_ancestral_cfg_pp": "res_multistep_ancestral",
        "gradient_estimation_cfg_pp": "gradient_estimation"}
RANGE = SigmaRange(0.03, 12.0)
NULL = 2


class TwoGaussians:
    """Class 0: N(1, 0.5^2); class 1: N(-0.5, 0.7^2); label NULL: the equal-weight mixture (exact denoisers)."""

    sigma_min, sigma_max, sigma_data, sigma_table = 0.002, 80.0, 1.0, None
    mixture = sz.GaussianMixture(torch.tensor([[1.0] * 3, [-0.5] * 3], dtype=torch.float64),
                                 torch.tensor([0.5, 0.7], dtype=torch.float64))

    def __call__(self, x: Tensor, sigma: Tensor, class_labels: Tensor | None = None, **cond: Any) -> Tensor:
        assert class_labels is not None
        is_null = (class_labels == NULL)[:, None]
        return torch.where(is_null, self.mixture(x, sigma),
                           self.mixture(x, sigma, class_labels=class_labels.clamp(max=1)))


def guided(scale: float, labels: Tensor) -> Conditioned:
    return Conditioned(ClassifierFreeGuidance(TwoGaussians(), scale, NULL), class_labels=labels)


def start(n: int, sigma: float) -> Tensor:
    return SeededNoise(range(n), (3,), dtype=torch.float64).randn() * sigma


@pytest.mark.parametrize("name", sorted(BASE))
def test_identical_halves_reduce_to_the_base_sampler(name: str) -> None:
    problem = testing.mixture_problem()
    sigmas = karras(8, RANGE)
    x = SeededNoise(range(4), problem.sample_shape, dtype=torch.float64).randn() * float(sigmas[0])
    ours = sz.get_sampler(name).fn(ClassifierFreeGuidance(problem, 3.0, unconditional={}), x, sigmas,
                                   noise=SeededNoise(range(4), problem.sample_shape, dtype=torch.float64))
    base = sz.get_sampler(BASE[name]).fn(problem, x, sigmas,
                                         noise=SeededNoise(range(4), problem.sample_shape, dtype=torch.float64))
    assert float((ours - base).abs().max()) < 1e-12


def test_euler_cfg_pp_is_ddim_cfg_pp_in_the_vp_frame() -> None:
    # Chung et al. 2024, Alg. 1: x_{t-1} = sqrt(ab_{t-1}) x0_w + sqrt(1 - ab_{t-1}) eps_u, with eps from the VP frame
    # x_vp = sqrt(ab) x, ab = 1 / (1 + sigma^2); our sigma-frame sample is x_vp / sqrt(ab).
    labels, scale = torch.tensor([0, 1, 0, 1]), 0.6
    model = guided(scale, labels)
    sigmas = karras(6, RANGE)
    x = start(4, float(sigmas[0]))
    ours = sz.get_sampler("euler_cfg_pp").fn(model, x, sigmas)
    x_vp = x / math.sqrt(1 + float(sigmas[0]) ** 2)
    for sigma, sigma_next in zip(sigmas[:-1].tolist(), sigmas[1:].tolist(), strict=True):
        ab, ab_next = 1 / (1 + sigma**2), 1 / (1 + sigma_next**2)
        level = torch.full((4,), sigma, dtype=torch.float64)
        x_in = x_vp / math.sqrt(ab)
        denoised_c = TwoGaussians()(x_in, level, class_labels=labels)
        denoised_u = TwoGaussians()(x_in, level, class_labels=torch.full_like(labels, NULL))
        x0_w = denoised_u + scale * (denoised_c - denoised_u)
        eps_u = (x_vp - math.sqrt(ab) * denoised_u) / math.sqrt(1 - ab)
        x_vp = math.sqrt(ab_next) * x0_w + math.sqrt(1 - ab_next) * eps_u
    torch.testing.assert_close(ours, x_vp, rtol=0, atol=1e-12)


LABELS, SCALE = torch.tensor([0, 1, 0, 1]), 0.6
"""The written-out recursions below run at guidance 0.6, where D_w and D_u differ."""


def predictions(x: Tensor, sigma: Tensor) -> tuple[Tensor, Tensor]:
    """(D_w, D_u) of guided(SCALE, LABELS) at x, sigma: D_w = D_u + SCALE (D_c - D_u)."""
    level = torch.full((len(x),), float(sigma), dtype=torch.float64)
    denoised_c = TwoGaussians()(x, level, class_labels=LABELS)
    denoised_u = TwoGaussians()(x, level, class_labels=torch.full_like(LABELS, NULL))
    return denoised_u + SCALE * (denoised_c - denoised_u), denoised_u


def ancestral(sigma: Tensor, sigma_next: Tensor, eta: float) -> tuple[Tensor, Tensor]:
    """k-diffusion's get_ancestral_step: (sigma_down, sigma_up)."""
    sigma_up = torch.minimum(sigma_next, eta * (sigma_next**2 * (sigma**2 - sigma_next**2) / sigma**2).sqrt())
    return (sigma_next**2 - sigma_up**2).sqrt(), sigma_up


def run_ours(name: str, **options: Any) -> tuple[Tensor, Tensor, Tensor, SeededNoise]:
    """(ours, sigmas, the start x, a fresh copy of the noise ours drew) for 6 Karras steps under guided(0.6)."""
    sigmas = karras(6, RANGE)
    x = start(4, float(sigmas[0]))
    ours = sz.get_sampler(name).fn(guided(SCALE, LABELS), x, sigmas,
                                   noise=SeededNoise(range(4), (3,), dtype=torch.float64), **options)
    return ours, sigmas, x, SeededNoise(range(4), (3,), dtype=torch.float64)


def test_dpmpp_2m_cfg_pp_is_comfyuis_recursion() -> None:
    # ComfyUI's sample_dpmpp_2m_cfg_pp in t = -log sigma, h = t_next - t, r = h_last / h:
    # x <- D_w - e^{-h} D_u - expm1(-h) (D_w - D_u,prev) / (2 r) + e^{-h} x, without the history term on the first
    # step and on the step to 0. Its history is the unconditional D_u.
    ours, sigmas, x, _ = run_ours("dpmpp_2m_cfg_pp")
    t = -sigmas.log()  # inf at sigma = 0, where e^{-h} = 0
    previous = None
    for i in range(len(sigmas) - 1):
        denoised_w, denoised_u = predictions(x, sigmas[i])
        h = t[i + 1] - t[i]
        mix = -torch.exp(-h) * denoised_u
        if previous is not None and sigmas[i + 1] > 0:
            mix = mix - torch.expm1(-h) / (2 * (t[i] - t[i - 1]) / h) * (denoised_w - previous)
        x = denoised_w + mix + torch.exp(-h) * x
        previous = denoised_u
    torch.testing.assert_close(ours, x, rtol=0, atol=1e-12)


@pytest.mark.parametrize(("name", "eta"), [("res_multistep_cfg_pp", 0.0), ("res_multistep_ancestral_cfg_pp", 1.0)])
def test_res_multistep_cfg_pp_is_comfyuis_recursion(name: str, eta: float) -> None:
    # ComfyUI's res_multistep(cfg_pp=True): the first step and a step to sigma_down = 0 are
    # x <- D_w + (x - D_u) / sigma * sigma_down; the others, in t = -log sigma with h = t(sigma_down) - t(sigma),
    # c2 = (t(sigma_prev) - t(sigma_down,prev)) / h, phi_1(-h) = expm1(-h) / -h and phi_2(-h) = (phi_1(-h) - 1) / -h,
    # are x <- e^{-h} (x + D_w - D_u) + h ((phi_1 - phi_2 / c2) D_u + phi_2 / c2 D_u,prev); then noise of std
    # sigma_up. The history is the unconditional D_u.
    ours, sigmas, x, noise = run_ours(name)
    previous = previous_down = None
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        sigma_down, sigma_up = ancestral(sigma, sigma_next, eta)
        denoised_w, denoised_u = predictions(x, sigma)
        if sigma_down == 0 or previous is None:
            x = denoised_w + (x - denoised_u) / sigma * sigma_down
        else:
            h = sigma.log() - sigma_down.log()
            c2 = (previous_down.log() - sigmas[i - 1].log()) / h
            phi_1 = torch.expm1(-h) / -h
            phi_2 = (phi_1 - 1) / -h
            x = torch.exp(-h) * (x + denoised_w - denoised_u) + h * ((phi_1 - phi_2 / c2) * denoised_u
                                                                     + phi_2 / c2 * previous)
        if sigma_next > 0:
            x = x + noise(sigma, sigma_next) * sigma_up
        previous, previous_down = denoised_u, sigma_down
    torch.testing.assert_close(ours, x, rtol=0, atol=1e-12)


def test_euler_ancestral_cfg_pp_is_comfyuis_recursion() -> None:
    # ComfyUI's sample_euler_ancestral_cfg_pp (alpha = 1 in the sigma frame): x <- D_w + sigma_down (x - D_u) / sigma
    # plus noise of std sigma_up; the step to 0 is x = D_w.
    ours, sigmas, x, noise = run_ours("euler_ancestral_cfg_pp")
    for sigma, sigma_next in itertools.pairwise(sigmas):
        denoised_w, denoised_u = predictions(x, sigma)
        if sigma_next == 0:
            x = denoised_w
            continue
        sigma_down, sigma_up = ancestral(sigma, sigma_next, 1.0)
        x = denoised_w + sigma_down * (x - denoised_u) / sigma + noise(sigma, sigma_next) * sigma_up
    torch.testing.assert_close(ours, x, rtol=0, atol=1e-12)


def test_dpmpp_2s_ancestral_cfg_pp_is_comfyuis_recursion() -> None:
    # ComfyUI's sample_dpmpp_2s_ancestral_cfg_pp: g = D_w - D_u at x; DDIM on D_u to the log-midpoint s of sigma and
    # sigma_down, an evaluation there whose unconditional D_u(x_2, s) makes the step x <- (sigma_down / sigma) x
    # - expm1(-h) D_u(x_2, s) (a step to sigma_down = 0: Euler on D_u), then noise of std sigma_up, then x <- x + g.
    ours, sigmas, x, noise = run_ours("dpmpp_2s_ancestral_cfg_pp")
    for sigma, sigma_next in itertools.pairwise(sigmas):
        denoised_w, denoised_u = predictions(x, sigma)
        sigma_down, sigma_up = ancestral(sigma, sigma_next, 1.0)
        if sigma_down == 0:
            x = denoised_u
        else:
            h = sigma.log() - sigma_down.log()
            sigma_s = (sigma.log() - h / 2).exp()
            x_2 = sigma_s / sigma * x - torch.expm1(-h / 2) * denoised_u
            _, denoised_u_2 = predictions(x_2, sigma_s)
            x = sigma_down / sigma * x - torch.expm1(-h) * denoised_u_2
        if sigma_next > 0:
            x = x + noise(sigma, sigma_next) * sigma_up
        x = x + (denoised_w - denoised_u)
    torch.testing.assert_close(ours, x, rtol=0, atol=1e-12)


def test_gradient_estimation_cfg_pp_is_comfyuis_recursion() -> None:
    # ComfyUI's sample_gradient_estimation(cfg_pp=True), ge_gamma = 2: d = (x - D_u) / sigma; x <- D_w + d sigma_next,
    # and from the second step on x <- x + (ge_gamma - 1) (d - d_prev) (sigma_next - sigma); the step to 0 is x = D_w.
    ours, sigmas, x, _ = run_ours("gradient_estimation_cfg_pp")
    previous = None
    for i in range(len(sigmas) - 1):
        denoised_w, denoised_u = predictions(x, sigmas[i])
        d = (x - denoised_u) / sigmas[i]
        if sigmas[i + 1] == 0:
            x = denoised_w
        else:
            x = denoised_w + d * sigmas[i + 1]
            if previous is not None:
                x = x + (2.0 - 1) * (d - previous) * (sigmas[i + 1] - sigmas[i])
        previous = d
    torch.testing.assert_close(ours, x, rtol=0, atol=1e-12)


def test_guidance_moves_cfg_pp_samples_toward_the_class() -> None:
    # The guidance vector is not lost: class 0 (mean 1) lies above the mixture (mean 0.25), and the samples' mean
    # rises with the scale (0: the unconditional sampler), for every CFG++ sampler.
    labels = torch.zeros(200, dtype=torch.long)
    sigmas = karras(12, RANGE)
    x = start(200, float(sigmas[0]))
    for name in BASE:
        means = [float(sz.get_sampler(name).fn(guided(scale, labels), x, sigmas,
                                               noise=SeededNoise(range(200), (3,), dtype=torch.float64)).mean())
                 for scale in (0.0, 0.2, 0.4)]
        assert means[0] < means[1] - 0.1 < means[2] - 0.2, (name, means)


@pytest.mark.parametrize("name", sorted(BASE))
def test_an_unguided_model_is_refused_before_any_call(name: str) -> None:
    counter = CountingDenoiser(Conditioned(TwoGaussians(), class_labels=torch.tensor([0])))
    with pytest.raises(sz.SamplerzooError, match=rf"^sampler '{name}' needs the unconditional prediction beside the "
                                                 r"guided one: .*classifier-free guidance"):
        sz.get_sampler(name).fn(counter, start(1, 10.0), karras(4, RANGE))
    assert counter.calls == 0


def test_generate_counts_cfg_pp_calls_and_forwards() -> None:
    run = sz.generate(guided(2.0, torch.tensor([0, 1])), "dpmpp_2s_ancestral_cfg_pp", 9, seeds=[0, 1],
                      sample_shape=(3,), dtype=torch.float64)
    assert run.counted_nfe == run.declared_nfe == 9 and run.forwards == 18
    with pytest.raises(sz.SamplerzooError, match="needs the unconditional prediction"):
        sz.generate(testing.gaussian_problem(), "euler_cfg_pp", 5, seeds=[0], sample_shape=(4,))


def test_a_sweep_refuses_cfg_pp_without_guidance_before_sampling(tmp_path: Any) -> None:
    from samplerzoo.bench import harness
    results = tmp_path / "r.jsonl"
    with pytest.raises(sz.SamplerzooError, match="sampler 'euler_cfg_pp' needs the unconditional prediction"):
        harness.sweep("digits-ideal", ["euler_cfg_pp"], ["karras"], [4], results=results, samples=8, seed=0, batch=8,
                      metric_names=("fid",))
    assert not results.exists()

