"""CogView3-Plus: a CogView3PlusTransformer2DModel (DiT with a size and crop micro-condition) predicting v on VAE
latents, a T5 text encoder and CogVideoX's SNR-shifted zero-terminal-SNR schedule (Zheng et al. 2024, CogView3;
diffusers' CogView3PlusPipeline)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor, nn

from ...adapters import NetworkDenoiser
from .family import Family
from .pipeline import VAEDecoder, from_pretrained, latent_shape, scheduler_schedule
from .sd import Prompts


class CogView3Network(nn.Module):
    """A CogView3PlusTransformer2DModel as ``net(x_in, c_noise, encoder_hidden_states)``, with the pipeline's
    defaults for the latents' size as micro-conditions: original and target size the image's pixels, crop (0, 0)."""

    def __init__(self, transformer: Any, vae_scale_factor: int) -> None:
        super().__init__()
        self.transformer: Any = transformer
        self.vae_scale_factor = vae_scale_factor

    def forward(self, x: Tensor, c_noise: Tensor, encoder_hidden_states: Tensor) -> Tensor:
        size = x.new_tensor([[x.shape[2] * self.vae_scale_factor, x.shape[3] * self.vae_scale_factor]])
        size = size.repeat(len(x), 1).to(encoder_hidden_states.dtype)
        return self.transformer(x, encoder_hidden_states=encoder_hidden_states, timestep=c_noise, original_size=size,
                                target_size=size, crop_coords=size.new_zeros(len(x), 2), return_dict=False)[0]


class CogView3Prompts(Prompts):
    """The pipeline's ``encode_prompt`` (T5, 224 tokens); with no negative prompt classifier-free guidance runs
    against zero embeddings, as there."""

    def encode(self, prompts: list[str], negatives: list[str] | None, cfg: bool
               ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        embeds, negative_embeds = self.pipe.encode_prompt(prompts, negatives, do_classifier_free_guidance=cfg,
                                                          device=self.pipe.device)
        return {"encoder_hidden_states": embeds}, {"encoder_hidden_states": negative_embeds}


def build(directory: Path) -> NetworkDenoiser:
    from diffusers import CogView3PlusPipeline

    pipe = from_pretrained(CogView3PlusPipeline, directory, text=True)
    schedule, prediction = scheduler_schedule(directory)
    return NetworkDenoiser(CogView3Network(pipe.transformer, pipe.vae_scale_factor), prediction, schedule,
                           sample_shape=latent_shape(pipe.transformer.config), decoder=VAEDecoder(pipe.vae),
                           conditioner=CogView3Prompts(pipe, [pipe.text_encoder]))


FAMILY = Family("cogview3", ("CogView3PlusPipeline",), ("transformer", "vae", "text_encoder", "tokenizer", "scheduler"),
                build, "CogView3-Plus: latent DiT, a T5 text encoder, v on an SNR-shifted zero-terminal-SNR schedule")
