"""AuraFlow: an AuraFlowTransformer2DModel (MMDiT and single-stream DiT blocks) predicting the rectified-flow velocity
on VAE latents, a T5-family (UMT5) text encoder and a FlowMatch scheduler (fal.ai AuraFlow; diffusers'
AuraFlowPipeline)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor, nn

from ...adapters import NetworkDenoiser
from .family import Family
from .pipeline import VAEDecoder, flow_schedule, from_pretrained
from .sd import Prompts

DEFAULT_SIZE = 1024
"""AuraFlowPipeline's default height and width in pixels, whatever the transformer's ``sample_size``."""
MAX_SEQUENCE_LENGTH = 256
"""Text tokens a prompt is padded or cut to (the pipeline's ``max_sequence_length`` default)."""


class AuraFlowNetwork(nn.Module):
    """An AuraFlowTransformer2DModel as ``net(x_in, c_noise, encoder_hidden_states)``; its timestep is the flow time
    t = c_noise / 1000, as the pipeline passes it."""

    def __init__(self, transformer: Any) -> None:
        super().__init__()
        self.transformer: Any = transformer

    def forward(self, x: Tensor, c_noise: Tensor, encoder_hidden_states: Tensor) -> Tensor:
        return self.transformer(x, encoder_hidden_states=encoder_hidden_states, timestep=c_noise / 1000,
                                return_dict=False)[0]


class AuraFlowPrompts(Prompts):
    """The pipeline's ``encode_prompt``: the text encoder's hidden states, zeroed at padding (negative prompts
    default to "", as there)."""

    def encode(self, prompts: list[str], negatives: list[str] | None, cfg: bool
               ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        embeds, _, negative_embeds, _ = self.pipe.encode_prompt(
            prompts, negative_prompt=negatives, do_classifier_free_guidance=cfg, device=self.pipe.device,
            max_sequence_length=MAX_SEQUENCE_LENGTH)
        return {"encoder_hidden_states": embeds}, {"encoder_hidden_states": embeds if negative_embeds is None
                                                   else negative_embeds}


def build(directory: Path) -> NetworkDenoiser:
    from diffusers import AuraFlowPipeline

    pipe = from_pretrained(AuraFlowPipeline, directory, text=True)
    schedule, prediction = flow_schedule(directory, "AuraFlowPipeline")
    side = DEFAULT_SIZE // pipe.vae_scale_factor
    return NetworkDenoiser(AuraFlowNetwork(pipe.transformer), prediction, schedule,
                           sample_shape=(int(pipe.transformer.config.in_channels), side, side),
                           decoder=VAEDecoder(pipe.vae), conditioner=AuraFlowPrompts(pipe, [pipe.text_encoder]))


FAMILY = Family("aura_flow", ("AuraFlowPipeline",), ("transformer", "vae", "text_encoder", "tokenizer", "scheduler"),
                build, "AuraFlow: latent MMDiT, rectified flow, a UMT5 text encoder")
