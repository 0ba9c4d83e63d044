"""Pipeline families agree with diffusers: a tiny random pipeline of each family is saved, loaded through
``sz.load``, and sampled by one of our samplers and by diffusers' own pipeline with the scheduler that
implements that sampler, with the same prompts, negative prompts, guidance scale, timesteps and initial
latents. Final latents agree to 1e-4 (float32) and our decode equals ``pipe.vae.decode``.

Frames: Euler and Heun schedulers start from ``init_noise_sigma * latents`` in our sigma frame; DPM-Solver
works in the VP frame (x_vp = x / sqrt(1 + sigma^2), init_noise_sigma = 1), which meets ours at sigma = 0.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pipeline_builders as build
import pytest
import torch
from diffusers import (
    DiTPipeline,
    DPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
    HeunDiscreteScheduler,
    StableDiffusionPipeline,
    StableDiffusionXLPipeline,
)
from torch import Tensor

import samplerzoo as sz
from samplerzoo.noise import NoiseSampler
from samplerzoo.sampling import run_sampler

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::DeprecationWarning")
ATOL = 1e-4
PROMPTS = ["a photo of a cat", "a painting of a dog"]
NEGATIVE = ["blurry, low quality", "watermark"]
STEPS = 8
GUIDANCE = 3.5
LEADING = {"timestep_spacing": "leading", "steps_offset": 1}  # Stable Diffusion's own scheduler configs


def table_sigmas(model: sz.Checkpoint, timesteps: Tensor) -> Tensor:
    """Our sigmas at diffusers' (integer) timesteps, landing on 0; Heun's repeated timesteps counted once."""
    table = model.sigma_table
    assert table is not None
    levels = table[torch.unique_consecutive(timesteps).round().long()]
    return torch.cat([levels, levels.new_zeros(1)])


def start(shape: tuple[int, ...]) -> Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(7))


def run_ours(model: sz.Checkpoint, denoiser: sz.Denoiser, sampler: str, scheduler: Any, latents: Tensor,
             noise: NoiseSampler | None = None) -> Tensor:
    sigmas = table_sigmas(model, scheduler.timesteps)
    if hasattr(scheduler, "sigmas"):  # LCMScheduler keeps none
        torch.testing.assert_close(sigmas[:-1].float(), torch.unique_consecutive(scheduler.sigmas)[:-1], rtol=1e-5,
                                   atol=1e-6)
    vp = float(scheduler.init_noise_sigma) == 1.0  # DPM-Solver: the VP frame
    scale = float((1 + sigmas[0] ** 2).sqrt()) if vp else float(scheduler.init_noise_sigma)
    with torch.no_grad():
        return sz.get_sampler(sampler).fn(denoiser, latents * scale, sigmas, noise=noise)


def assert_agrees(name: str, ours: Tensor, theirs: Tensor, model: sz.Checkpoint, vae: Any) -> None:
    diff = (ours - theirs).abs().max().item()
    print(f"{name}: max |ours - diffusers| = {diff:.2e} (|latents| up to {theirs.abs().max().item():.2f})")
    assert diff <= ATOL, f"{name}: max |ours - diffusers| = {diff:.3e} > {ATOL:.0e}"
    with torch.no_grad():
        expected = vae.decode(theirs / vae.config.scaling_factor).sample
        torch.testing.assert_close(model.decode(theirs), expected, rtol=0, atol=1e-6)


def assert_prompted_run_agrees(name: str, model: sz.Checkpoint, pipe: Any, sampler: str, **call: Any) -> None:
    """diffusers' ``pipe`` and our ``sampler`` on its timesteps from the same latents, with PROMPTS, NEGATIVE and
    GUIDANCE, STEPS steps (``call``: the pipeline's other arguments)."""
    pipe.set_progress_bar_config(disable=True)
    latents = start((2, *model.sample_shape))
    theirs = pipe(PROMPTS, negative_prompt=NEGATIVE, guidance_scale=GUIDANCE, num_inference_steps=STEPS,
                  latents=latents, output_type="latent", **call).images
    denoiser = model.condition(range(2), prompts=PROMPTS, negative_prompts=NEGATIVE, guidance_scale=GUIDANCE)
    assert_agrees(name, run_ours(model, denoiser, sampler, pipe.scheduler, latents), theirs, model, pipe.vae)


@pytest.mark.parametrize(("prediction", "sampler", "scheduler_cls", "config"), [
    ("epsilon", "euler", EulerDiscreteScheduler, LEADING),
    ("v_prediction", "dpmpp_2m", DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver++", "solver_order": 2}),
])
def test_stable_diffusion_agrees_with_diffusers(tmp_path: Path, prediction: str, sampler: str, scheduler_cls: Any,
                                                config: dict[str, Any]) -> None:
    directory = build.stable_diffusion(tmp_path / "sd", scheduler_cls(**build.SD_BETAS, **config,
                                                                     prediction_type=prediction))
    model = sz.load(directory)
    assert model.prediction == {"epsilon": "epsilon", "v_prediction": "v"}[prediction]
    assert model.sample_shape == (4, 8, 8) and model.num_classes == 0
    pipe = StableDiffusionPipeline.from_pretrained(directory, safety_checker=None, feature_extractor=None,
                                                   requires_safety_checker=False)
    assert_prompted_run_agrees(f"sd {prediction} {sampler}", model, pipe, sampler)


def test_stable_diffusion_xl_agrees_with_diffusers(tmp_path: Path) -> None:
    directory = build.stable_diffusion_xl(tmp_path / "sdxl", HeunDiscreteScheduler(**build.SD_BETAS, **LEADING))
    model = sz.load(directory)
    pipe = StableDiffusionXLPipeline.from_pretrained(directory)
    assert_prompted_run_agrees("sdxl heun", model, pipe, "heun")


def test_dit_agrees_with_diffusers(tmp_path: Path) -> None:
    # Stable Diffusion's betas rather than DiT's linear ones: a random network's x0 predictions at DiT's sigma_max
    # (157) make latents ~1e3, where float32 rounding alone exceeds 1e-4; at 14.6 they stay ~30, like SD's.
    scheduler = DPMSolverMultistepScheduler(**build.SD_BETAS, solver_order=2)
    directory = build.dit(tmp_path / "dit", scheduler)
    model = sz.load(directory)
    assert (model.num_classes, model.null_label, model.sample_shape) == (1000, 1000, (4, 8, 8))
    pipe = DiTPipeline.from_pretrained(directory)
    pipe.set_progress_bar_config(disable=True)
    decoded: list[Tensor] = []  # DiTPipeline returns only images: keep the latents it decodes
    decode = pipe.vae.decode
    pipe.vae.decode = lambda z, **kw: (decoded.append(z), decode(z, **kw))[1]
    labels = [207, 360]
    pipe(labels, guidance_scale=GUIDANCE, num_inference_steps=STEPS, generator=torch.Generator().manual_seed(7),
         output_type="pt")
    theirs = decoded[0] * pipe.vae.config.scaling_factor
    denoiser = model.condition(range(2), labels=labels, guidance_scale=GUIDANCE)
    ours = run_ours(model, denoiser, "dpmpp_2m", pipe.scheduler, start((2, *model.sample_shape)))
    pipe.vae.decode = decode
    assert_agrees("dit dpmpp_2m", ours, theirs, model, pipe.vae)


@pytest.mark.parametrize("distilled", [None, 4.0], ids=["default-8.5", "distilled-4"])
def test_latent_consistency_agrees_with_diffusers(tmp_path: Path, distilled: float | None) -> None:
    """The embedded guidance scale (no CFG, one forward a call), with LCMScheduler's noise draws replayed."""
    from diffusers import LatentConsistencyModelPipeline, LCMScheduler

    directory = build.latent_consistency(tmp_path / "lcm", LCMScheduler(**build.SD_BETAS))
    model = sz.load(directory)
    pipe = LatentConsistencyModelPipeline.from_pretrained(directory, safety_checker=None, feature_extractor=None,
                                                          requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    latents = start((2, *model.sample_shape))
    scale = {} if distilled is None else {"guidance_scale": distilled}
    theirs = pipe(PROMPTS, num_inference_steps=4, latents=latents, output_type="latent",
                  generator=torch.Generator().manual_seed(3), **scale).images
    draws = torch.Generator().manual_seed(3)
    counted = sz.CountingDenoiser(model.condition(range(2), prompts=PROMPTS, distilled_guidance=distilled))
    ours = run_ours(model, counted, "lcm", pipe.scheduler, latents,
                    noise=lambda sigma, sigma_next: torch.randn(latents.shape, generator=draws))
    assert_agrees(f"lcm distilled {distilled}", ours, theirs, model, pipe.vae)
    assert (counted.calls, counted.forwards) == (4, 4)  # the embedded scale costs no second forward


@pytest.mark.parametrize(("pipeline", "sample_size", "patch_size"), [
    ("PixArtSigmaPipeline", 8, 2),
    ("PixArtAlphaPipeline", 128, 16),  # PixArt-alpha 1024's latent size: the image size as micro-conditions
])
def test_pixart_agrees_with_diffusers(tmp_path: Path, pipeline: str, sample_size: int, patch_size: int) -> None:
    import diffusers

    scheduler = DPMSolverMultistepScheduler(**build.SD_BETAS, solver_order=2)  # the PixArt pipelines' default
    directory = build.pixart(tmp_path / "pixart", scheduler, pipeline, sample_size, patch_size)
    model = sz.load(directory)
    assert (model.prediction, model.num_classes, model.sample_shape) == ("epsilon", 0, (4, sample_size, sample_size))
    pipe = getattr(diffusers, pipeline).from_pretrained(directory)
    assert_prompted_run_agrees(f"{pipeline} dpmpp_2m", model, pipe, "dpmpp_2m", use_resolution_binning=False)


def test_hunyuan_dit_agrees_with_diffusers(tmp_path: Path) -> None:
    """Both text encoders, the image-size micro-condition, style 0 and the rotary grid of the pipeline's defaults."""
    from diffusers import HunyuanDiTPipeline

    scheduler = DPMSolverMultistepScheduler(**build.SD_BETAS, solver_order=2)
    directory = build.hunyuan_dit(tmp_path / "hunyuan", scheduler)
    model = sz.load(directory)
    assert (model.prediction, model.sample_shape) == ("epsilon", (4, 8, 8))
    pipe = HunyuanDiTPipeline.from_pretrained(directory, safety_checker=None, feature_extractor=None,
                                              requires_safety_checker=False)
    assert_prompted_run_agrees("hunyuandit dpmpp_2m", model, pipe, "dpmpp_2m", use_resolution_binning=False)


def test_deepfloyd_if_agrees_with_diffusers(tmp_path: Path) -> None:
    """Pixel space (decode is the identity), T5 prompts, the epsilon half of a learned-variance UNet."""
    from diffusers import IFPipeline

    # Stable Diffusion's betas, not IF's cosine ones: at the cosine schedule's sigma_max (2e4) the random network's
    # x0 predictions reach 7e4, where float32 rounding alone exceeds 1e-4 (as for DiT above).
    scheduler = DPMSolverMultistepScheduler(**build.SD_BETAS, variance_type="learned_range")
    directory = build.deepfloyd_if(tmp_path / "if", scheduler)
    model = sz.load(directory)
    assert (model.prediction, model.sample_shape) == ("epsilon", (3, 8, 8))
    pipe = IFPipeline.from_pretrained(directory, safety_checker=None, feature_extractor=None, watermarker=None,
                                      requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    latents = start((2, *model.sample_shape))  # IFPipeline takes no latents: the same draws from its generator
    theirs = pipe(PROMPTS, negative_prompt=NEGATIVE, guidance_scale=GUIDANCE, num_inference_steps=STEPS,
                  generator=torch.Generator().manual_seed(7), output_type="pt").images
    denoiser = model.condition(range(2), prompts=PROMPTS, negative_prompts=NEGATIVE, guidance_scale=GUIDANCE)
    ours = run_ours(model, denoiser, "dpmpp_2m", pipe.scheduler, latents)
    diff = (ours - theirs).abs().max().item()
    print(f"deepfloyd_if dpmpp_2m: max |ours - diffusers| = {diff:.2e} (|images| up to {theirs.abs().max():.2f})")
    assert diff <= ATOL, f"deepfloyd_if dpmpp_2m: max |ours - diffusers| = {diff:.3e}"
    torch.testing.assert_close(model.decode(ours), ours, rtol=0, atol=0)


def test_consistency_model_agrees_with_diffusers(tmp_path: Path) -> None:
    """A consistency model's boundary-condition scalings and time input ("consistency" on ConsistencyEDM), its class
    labels, and cm_multistep with the scheduler's default clip_denoised, its noise draws replayed."""
    from diffusers import CMStochasticIterativeScheduler, ConsistencyModelPipeline

    directory = build.consistency_model(tmp_path / "cm", CMStochasticIterativeScheduler())
    model = sz.load(directory)
    assert (model.prediction, model.num_classes, model.sample_shape) == ("consistency", 10, (3, 8, 8))
    pipe = ConsistencyModelPipeline.from_pretrained(directory)
    pipe.set_progress_bar_config(disable=True)
    latents, labels = start((2, *model.sample_shape)), [3, 7]
    theirs = pipe(batch_size=2, class_labels=labels, num_inference_steps=3, latents=latents, output_type="pt",
                  generator=torch.Generator().manual_seed(3)).images
    draws = torch.Generator().manual_seed(3)
    sigmas = torch.cat([pipe.scheduler.sigmas[:-1].double(), torch.zeros(1, dtype=torch.float64)])  # D at the end
    with torch.no_grad():
        ours = sz.get_sampler("cm_multistep").fn(model.condition(range(2), labels=labels), latents * 80.0, sigmas,
                                                 clip_denoised=True,
                                                 noise=lambda sigma, sigma_next: torch.randn(latents.shape,
                                                                                             generator=draws))
    torch.testing.assert_close((ours / 2 + 0.5).clamp(0, 1), torch.as_tensor(theirs),
                               rtol=0, atol=1e-5)


@pytest.mark.parametrize("negative", [NEGATIVE, None], ids=["negative-prompts", "zero-embeddings"])
def test_cogview3_agrees_with_diffusers(tmp_path: Path, negative: list[str] | None) -> None:
    """v on CogVideoX's SNR-shifted zero-terminal-SNR schedule, the size micro-conditions, and CFG against the
    negative prompts or, without them, against zero embeddings as the pipeline does."""
    from diffusers import CogVideoXDDIMScheduler, CogView3PlusPipeline

    scheduler = CogVideoXDDIMScheduler(**build.SD_BETAS, prediction_type="v_prediction", rescale_betas_zero_snr=True,
                                       snr_shift_scale=4.0, timestep_spacing="trailing")
    model = sz.load(build.cogview3(tmp_path / "cogview3", scheduler))
    assert (model.prediction, model.sample_shape) == ("v", (4, 8, 8))
    pipe = CogView3PlusPipeline.from_pretrained(tmp_path / "cogview3")
    pipe.set_progress_bar_config(disable=True)
    latents = start((2, *model.sample_shape))
    theirs = pipe(PROMPTS, negative_prompt=negative, guidance_scale=GUIDANCE, num_inference_steps=STEPS,
                  latents=latents, output_type="latent").images
    denoiser = model.condition(range(2), prompts=PROMPTS, negative_prompts=negative, guidance_scale=GUIDANCE)
    sigmas = table_sigmas(model, pipe.scheduler.timesteps)
    assert sigmas[0] == float("inf")  # zero terminal SNR: the unit latents are the start itself (run_sampler)
    with torch.no_grad():
        ours = run_sampler(sz.get_sampler("ddim"), denoiser, latents, sigmas)
    assert_agrees("cogview3 ddim", ours, theirs, model, pipe.vae)


def test_guided_text_sampling_counts_two_forwards_per_call(tmp_path: Path) -> None:
    directory = build.stable_diffusion(tmp_path / "sd", EulerDiscreteScheduler(**build.SD_BETAS, **LEADING))
    model = sz.load(directory)
    for scale, forwards in [(None, 4), (1.0, 4), (GUIDANCE, 8)]:
        run = sz.generate(model.condition(range(3), prompts=PROMPTS, guidance_scale=scale), "euler", 4, range(3),
                          model.sample_shape)
        assert (run.counted_nfe, run.forwards) == (4, forwards)
        assert run.samples.shape == (3, 4, 8, 8) and model.decode(run.samples).shape == (3, 3, 16, 16)
