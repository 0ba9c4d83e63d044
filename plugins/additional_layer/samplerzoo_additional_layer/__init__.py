"""samplerzoo plugin: the "additional layer" fast-sampling method of seed 002, samplers v1 and v2.

A small add_net, trained on top of the frozen ``digits-v`` checkpoint, turns the model's unconditional v
into a class-directed v during the first half of DDIM's steps (v1); v2 also fans a few early trajectories
out into many samples through it.
"""

from __future__ import annotations

from collections.abc import Callable

from samplerzoo import SamplerSpec, hookimpl

from .layer import AdditionalLayer, identity_layer, load_layer, shipped_layer
from .samplers import SPECS, sample_additional_layer_v1, sample_additional_layer_v2

__all__ = ["AdditionalLayer", "identity_layer", "load_layer", "register_samplers", "sample_additional_layer_v1",
           "sample_additional_layer_v2", "shipped_layer"]


@hookimpl
def register_samplers(register: Callable[[SamplerSpec], None]) -> None:
    for spec in SPECS:
        register(spec)
