"""Shared fixtures. tests/ is not a package (see pyproject: importlib mode)."""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from pathlib import Path

import pytest
import torch

# The tests' tensors are tiny: intra-op threads only add contention (on a loaded 2-core machine a small
# softmax took ~10 ms with threads and ~2 us without).
torch.set_num_threads(1)

# Shared test helpers (diffusers_driver.py) live beside the tests, which are not a package.
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="session")
def k_sampling() -> types.ModuleType:
    """k-diffusion's ``sampling`` module, loaded under a bare parent package.

    k-diffusion's ``__init__`` imports heavy optional modules (models, evaluation, wandb), so the real
    package directory is mounted as an empty namespace and only ``sampling`` (with ``utils``) is imported.
    Install with ``pip install --no-deps k-diffusion`` (plus scipy, torchdiffeq, torchsde).
    """
    spec = importlib.util.find_spec("k_diffusion")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("k-diffusion is a test dependency: pip install --no-deps k-diffusion torchsde torchdiffeq")
    if "k_diffusion" not in sys.modules:
        parent = types.ModuleType("k_diffusion")
        parent.__path__ = list(spec.submodule_search_locations)
        sys.modules["k_diffusion"] = parent
    return importlib.import_module("k_diffusion.sampling")
