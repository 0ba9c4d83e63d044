"""Chroma: a Flux-style packed-latent transformer (ChromaTransformer2DModel, its modulations from a small
approximator network instead of Flux's guidance and CLIP embeddings) on a T5 text encoder, rectified flow and true
classifier-free guidance (lodestones' Chroma; diffusers' ChromaPipeline)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from ...adapters import NetworkDenoiser
from .family import Family
from .flux import FluxNetwork, packed_layout
from .pipeline import VAEDecoder, from_pretrained
from .sd import Prompts


class ChromaNetwork(FluxNetwork):
    """Flux's packing, and Chroma's text attention mask (all but the first padding token masked) extended over the
    image tokens, as the pipeline's ``_prepare_attention_mask`` does."""

    def inputs(self, cond: dict[str, Tensor], image_tokens: int) -> dict[str, Tensor | None]:
        mask = cond["attention_mask"]
        return {"attention_mask": torch.cat([mask, mask.new_ones(len(mask), image_tokens)], dim=1)}


class ChromaPrompts(Prompts):
    """The pipeline's ``encode_prompt``: T5 hidden states (encoded with the attention mask) and the transformer's
    text mask; negative prompts default to "", as there."""

    def encode(self, prompts: list[str], negatives: list[str] | None, cfg: bool
               ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        embeds, _, mask, negative_embeds, _, negative_mask = self.pipe.encode_prompt(
            prompts, negative_prompt=negatives, device=self.pipe.device, do_classifier_free_guidance=cfg)
        return ({"encoder_hidden_states": embeds, "attention_mask": mask},
                {"encoder_hidden_states": negative_embeds, "attention_mask": negative_mask})


def build(directory: Path) -> NetworkDenoiser:
    from diffusers import ChromaPipeline

    pipe = from_pretrained(ChromaPipeline, directory, text=True)
    schedule, prediction, shape = packed_layout(pipe, directory, "ChromaPipeline")
    return NetworkDenoiser(ChromaNetwork(pipe.transformer, ChromaPipeline), prediction, schedule, sample_shape=shape,
                           decoder=VAEDecoder(pipe.vae), conditioner=ChromaPrompts(pipe, [pipe.text_encoder]))


FAMILY = Family("chroma", ("ChromaPipeline",), ("transformer", "vae", "text_encoder", "tokenizer", "scheduler"),
                build, "Chroma: Flux-style packed-latent transformer, rectified flow, a T5 text encoder, true CFG")
