"""The rectified-flow families agree with diffusers: a tiny random SD3, Flux, Chroma, AuraFlow and Sana pipeline
are saved, loaded through ``sz.load``, and sampled by our Euler and by diffusers' own pipeline with
FlowMatchEulerDiscreteScheduler, with the same prompts, negative prompts, guidance and timesteps, from the same
latents. Final latents agree to 1e-4 (float32) and our decode equals the pipeline's
``vae.decode(x / scaling_factor + shift_factor)`` (no shift where the VAE has none).

Frames: a flow pipeline starts from the unit noise at t = 1, which is our start at sigma = t / (1 - t) = inf
(``run_sampler``); both frames meet at t = sigma = 0.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pipeline_builders as build
import pytest
import torch
from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, StableDiffusion3Pipeline
from torch import Tensor

import samplerzoo as sz
from samplerzoo.denoiser import CountingDenoiser
from samplerzoo.flow import flow_sigma
from samplerzoo.sampling import run_sampler

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::DeprecationWarning")
ATOL = 1e-4
PROMPTS = ["a photo of a cat", "a painting of a dog"]
NEGATIVE = ["blurry, low quality", "watermark"]
STEPS = 6
FLUX_SCHEDULER = {"use_dynamic_shifting": True, "base_shift": 0.5, "max_shift": 1.15, "base_image_seq_len": 256,
                  "max_image_seq_len": 4096, "shift": 3.0}


def ours(denoiser: sz.Denoiser, scheduler: Any, latents: Tensor, forwards_per_call: int) -> Tensor:
    """Our Euler on the sigmas of diffusers' flow times t (the scheduler's ``sigmas``, ending at 0), one denoiser
    call a step, ``forwards_per_call`` network forwards a call."""
    sigmas = flow_sigma(scheduler.sigmas.double())
    assert sigmas[0] == float("inf") and sigmas[-1] == 0
    counter = CountingDenoiser(denoiser)
    with torch.no_grad():
        x = run_sampler(sz.get_sampler("euler"), counter, latents, sigmas)
    steps = len(sigmas) - 1
    assert (counter.calls, counter.forwards) == (steps, forwards_per_call * steps)
    return x


def assert_agrees(name: str, ours_x: Tensor, theirs: Tensor, model: sz.Checkpoint, vae: Any) -> None:
    diff = (ours_x - theirs).abs().max().item()
    print(f"{name}: max |ours - diffusers| = {diff:.2e} (|latents| up to {theirs.abs().max().item():.2f})")
    assert diff <= ATOL, f"{name}: max |ours - diffusers| = {diff:.3e} > {ATOL:.0e}"
    with torch.no_grad():
        shift = getattr(vae.config, "shift_factor", None) or 0  # SD3, Flux: a shift; AuraFlow, Sana (DC-AE): none
        expected = vae.decode(theirs / vae.config.scaling_factor + shift).sample
        torch.testing.assert_close(model.decode(theirs), expected, rtol=0, atol=1e-6)


def start(shape: tuple[int, ...]) -> Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(7))


def test_stable_diffusion_3_agrees_with_diffusers(tmp_path: Path) -> None:
    directory = build.stable_diffusion_3(tmp_path / "sd3", FlowMatchEulerDiscreteScheduler(shift=3.0))
    model = sz.load(directory)
    assert (model.prediction, model.sample_shape, model.num_classes) == ("flow", (4, 8, 8), 0)
    pipe = StableDiffusion3Pipeline.from_pretrained(directory)
    pipe.set_progress_bar_config(disable=True)
    latents = start((2, *model.sample_shape))
    theirs = pipe(PROMPTS, negative_prompt=NEGATIVE, guidance_scale=3.5, num_inference_steps=STEPS,
                  latents=latents, output_type="latent").images
    denoiser = model.condition(range(2), prompts=PROMPTS, negative_prompts=NEGATIVE, guidance_scale=3.5)
    assert_agrees("sd3 euler cfg 3.5", ours(denoiser, pipe.scheduler, latents, 2), theirs, model, pipe.vae)


@pytest.fixture(scope="module")
def flux(tmp_path_factory: pytest.TempPathFactory) -> tuple[sz.Checkpoint, FluxPipeline]:
    directory = build.flux(tmp_path_factory.mktemp("flux") / "flux",
                           FlowMatchEulerDiscreteScheduler(**FLUX_SCHEDULER))
    pipe = FluxPipeline.from_pretrained(directory)
    pipe.set_progress_bar_config(disable=True)
    return sz.load(directory), pipe


@pytest.mark.parametrize(("distilled", "cfg"), [(4.0, None), (None, 2.0)], ids=["distilled-4", "default-cfg-2"])
def test_flux_agrees_with_diffusers(flux: tuple[sz.Checkpoint, FluxPipeline], distilled: float | None,
                                    cfg: float | None) -> None:
    """Flux dev's embedded guidance (diffusers' ``guidance_scale``, default 3.5) and true CFG with negative prompts
    (diffusers' ``true_cfg_scale``) are separate knobs: ``distilled_guidance`` and ``guidance_scale``. FluxPipeline's
    default size is 128 x 128 latents (4096 tokens): three steps keep it quick."""
    model, pipe = flux
    assert (model.prediction, model.sample_shape) == ("flow", (4, 128, 128))
    latents = start((1, *model.sample_shape))
    negative = NEGATIVE[:1] if cfg else None
    theirs = pipe(PROMPTS[:1], negative_prompt=negative, true_cfg_scale=cfg or 1.0,
                  guidance_scale=3.5 if distilled is None else distilled, num_inference_steps=3,
                  latents=FluxPipeline._pack_latents(latents, *latents.shape), output_type="latent").images
    theirs = FluxPipeline._unpack_latents(theirs, 128, 128, 1)
    denoiser = model.condition(range(1), prompts=PROMPTS[:1], negative_prompts=negative, guidance_scale=cfg,
                               distilled_guidance=distilled)
    ours_x = ours(denoiser, pipe.scheduler, latents, 2 if cfg else 1)  # the embedded guidance costs no forward
    assert_agrees(f"flux euler distilled {distilled} cfg {cfg}", ours_x, theirs, model, pipe.vae)


def test_aura_flow_agrees_with_diffusers(tmp_path: Path) -> None:
    from diffusers import AuraFlowPipeline

    directory = build.aura_flow(tmp_path / "aura", FlowMatchEulerDiscreteScheduler(shift=1.73))
    model = sz.load(directory)
    assert (model.prediction, model.sample_shape) == ("flow", (4, 128, 128))  # the pipeline's 1024 pixels
    pipe = AuraFlowPipeline.from_pretrained(directory)
    pipe.set_progress_bar_config(disable=True)
    latents = start((2, *model.sample_shape))
    theirs = pipe(PROMPTS, negative_prompt=NEGATIVE, guidance_scale=3.5, num_inference_steps=STEPS, latents=latents,
                  output_type="latent").images
    denoiser = model.condition(range(2), prompts=PROMPTS, negative_prompts=NEGATIVE, guidance_scale=3.5)
    assert_agrees("aura_flow euler cfg 3.5", ours(denoiser, pipe.scheduler, latents, 2), theirs, model, pipe.vae)


def test_sana_agrees_with_diffusers(tmp_path: Path) -> None:
    """Sana's prompts behind its complex human instruction, negative prompts without it, learned sigma dropped."""
    from diffusers import SanaPipeline

    directory = build.sana(tmp_path / "sana", FlowMatchEulerDiscreteScheduler(shift=3.0))
    model = sz.load(directory)
    assert (model.prediction, model.sample_shape) == ("flow", (4, 16, 16))
    pipe = SanaPipeline.from_pretrained(directory)
    pipe.set_progress_bar_config(disable=True)
    latents = start((2, *model.sample_shape))
    theirs = pipe(PROMPTS, negative_prompt=NEGATIVE, guidance_scale=4.5, num_inference_steps=STEPS, latents=latents,
                  height=32, width=32, use_resolution_binning=False, output_type="latent").images
    denoiser = model.condition(range(2), prompts=PROMPTS, negative_prompts=NEGATIVE, guidance_scale=4.5)
    assert_agrees("sana euler cfg 4.5", ours(denoiser, pipe.scheduler, latents, 2), theirs, model, pipe.vae)


def test_sana_default_scheduler_is_dpmpp_2m_on_flow_sigmas(tmp_path: Path) -> None:
    """Sana ships DPMSolverMultistepScheduler with ``use_flow_sigmas``: DPM-Solver++(2M) in flow time, which is our
    dpmpp_2m on sigma = t / (1 - t) (lambda = log((1 - t) / t) = -log sigma), from the pipeline's first flow time
    t_0 < 1, where its latents are x_t = (1 - t_0) x.

    That scheduler stores its timesteps as int64, so the network sees floor(1000 t) while the solver steps with t
    itself (t_0 = 0.99967 is fed as 999); samplerzoo feeds 1000 t. The test gives the scheduler its float timesteps
    back to compare the solvers; with the truncation the random network's latents differ by ~0.02-0.04."""
    from diffusers import DPMSolverMultistepScheduler, SanaPipeline

    scheduler = DPMSolverMultistepScheduler(use_flow_sigmas=True, flow_shift=3.0, prediction_type="flow_prediction")
    directory = build.sana(tmp_path / "sana", scheduler)
    model = sz.load(directory)
    pipe = SanaPipeline.from_pretrained(directory)
    pipe.set_progress_bar_config(disable=True)
    set_timesteps = pipe.scheduler.set_timesteps

    def float_timesteps(*args: Any, **kwargs: Any) -> None:
        set_timesteps(*args, **kwargs)
        pipe.scheduler.timesteps = pipe.scheduler.sigmas[:-1] * pipe.scheduler.config.num_train_timesteps

    pipe.scheduler.set_timesteps = float_timesteps
    latents = start((2, *model.sample_shape))
    theirs = pipe(PROMPTS, negative_prompt=NEGATIVE, guidance_scale=4.5, num_inference_steps=STEPS, latents=latents,
                  height=32, width=32, use_resolution_binning=False, output_type="latent").images
    denoiser = model.condition(range(2), prompts=PROMPTS, negative_prompts=NEGATIVE, guidance_scale=4.5)
    times = pipe.scheduler.sigmas.double()
    with torch.no_grad():
        ours_x = sz.get_sampler("dpmpp_2m").fn(denoiser, latents / (1 - float(times[0])), flow_sigma(times))
    assert_agrees("sana dpmpp_2m (flow sigmas) cfg 4.5", ours_x.float(), theirs, model, pipe.vae)


def test_chroma_agrees_with_diffusers(tmp_path: Path) -> None:
    """Chroma's text mask (all but the first padding token masked, extended over the image tokens) and true CFG, which
    the pipeline runs as two forwards and we batch."""
    from diffusers import ChromaPipeline

    directory = build.chroma(tmp_path / "chroma", FlowMatchEulerDiscreteScheduler(**FLUX_SCHEDULER))
    model = sz.load(directory)
    assert (model.prediction, model.sample_shape) == ("flow", (4, 128, 128))
    pipe = ChromaPipeline.from_pretrained(directory)
    pipe.set_progress_bar_config(disable=True)
    latents = start((2, *model.sample_shape))
    theirs = pipe(PROMPTS, negative_prompt=NEGATIVE, guidance_scale=3.0, num_inference_steps=3,
                  latents=ChromaPipeline._pack_latents(latents, *latents.shape), output_type="latent").images
    theirs = ChromaPipeline._unpack_latents(theirs, 128, 128, 1)
    denoiser = model.condition(range(2), prompts=PROMPTS, negative_prompts=NEGATIVE, guidance_scale=3.0)
    assert_agrees("chroma euler cfg 3", ours(denoiser, pipe.scheduler, latents, 2), theirs, model, pipe.vae)
