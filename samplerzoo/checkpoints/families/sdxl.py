"""Stable Diffusion XL: two CLIP text encoders, pooled text embeddings and size/crop time ids."""

from __future__ import annotations

from pathlib import Path

from torch import Tensor

from ...adapters import NetworkDenoiser
from .family import Family
from .pipeline import VAEDecoder, from_pretrained, latent_shape, scheduler_schedule
from .sd import ConditionalUNet, Prompts


class XLPrompts(Prompts):
    """SDXL's ``encode_prompt`` (both encoders, pooled output; zeros for an empty negative prompt where the
    config says ``force_zeros_for_empty_prompt``) and its ``add_time_ids`` at the default resolution, no crop."""

    def encode(self, prompts: list[str], negatives: list[str] | None, cfg: bool
               ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        pipe = self.pipe
        embeds, negative_embeds, pooled, negative_pooled = pipe.encode_prompt(
            prompts, device=pipe.device, num_images_per_prompt=1, do_classifier_free_guidance=cfg,
            negative_prompt=negatives)
        size = (pipe.default_sample_size * pipe.vae_scale_factor,) * 2
        time_ids = pipe._get_add_time_ids(size, (0, 0), size, dtype=embeds.dtype,
                                          text_encoder_projection_dim=int(pipe.text_encoder_2.config.projection_dim))
        time_ids = time_ids.to(pipe.device).repeat(len(prompts), 1)
        return ({"encoder_hidden_states": embeds, "text_embeds": pooled, "time_ids": time_ids},
                {"encoder_hidden_states": negative_embeds, "text_embeds": negative_pooled, "time_ids": time_ids})


def build(directory: Path) -> NetworkDenoiser:
    from diffusers import StableDiffusionXLPipeline

    pipe = from_pretrained(StableDiffusionXLPipeline, directory, text=True)
    schedule, prediction = scheduler_schedule(directory)
    return NetworkDenoiser(ConditionalUNet(pipe.unet), prediction, schedule,
                           sample_shape=latent_shape(pipe.unet.config),
                           decoder=VAEDecoder(pipe.vae),
                           conditioner=XLPrompts(pipe, [pipe.text_encoder, pipe.text_encoder_2]))


FAMILY = Family("sdxl", ("StableDiffusionXLPipeline",),
                ("unet", "vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2", "scheduler"), build,
                "Stable Diffusion XL: latent UNet, two CLIP text encoders, pooled embeddings and time ids")
