"""Fixture plugin: registers a dict instead of a SamplerSpec, so it must be reported and skipped."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import samplerzoo as sz


@sz.hookimpl
def register_samplers(register: Callable[[Any], None]) -> None:
    register({"name": "fixture_malformed", "order": 1})
