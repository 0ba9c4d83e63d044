"""Fixture plugin: its hook raises, so it must be reported while everything else keeps working."""

from __future__ import annotations

from collections.abc import Callable

import samplerzoo as sz


@sz.hookimpl
def register_samplers(register: Callable[[sz.SamplerSpec], None]) -> None:
    raise RuntimeError("this hook always fails")
