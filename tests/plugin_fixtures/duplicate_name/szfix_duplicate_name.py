"""Fixture plugin: its first sampler clashes with the built-in euler (skipped, reported), its second is fine."""

from __future__ import annotations

from collections.abc import Callable

import samplerzoo as sz
from samplerzoo.samplers.ode import sample_euler


@sz.hookimpl
def register_samplers(register: Callable[[sz.SamplerSpec], None]) -> None:
    register(sz.SamplerSpec("euler", sample_euler, order=1, stochastic=False))
    register(sz.SamplerSpec("fixture_ok", sample_euler, order=1, stochastic=False))
