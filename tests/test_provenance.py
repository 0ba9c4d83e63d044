"""Provenance: every results row names the plugin (distribution and version) behind its sampler, schedule and
checkpoint; two distributions registering one entry-point name are both reported, not one silently dropped."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from samplerzoo import plugins
from samplerzoo.bench import harness
from samplerzoo.cli import app

PLUGIN = """
import samplerzoo as sz
from samplerzoo.samplers.ode import sample_euler

@sz.hookimpl
def register_samplers(register):
    register(sz.SamplerSpec("{sampler}", sample_euler, order=1, stochastic=False))
"""


def test_rows_record_which_distribution_provided_each_part(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAMPLERZOO_CACHE", str(tmp_path / "cache"))
    (row,) = harness.sweep("digits-ideal", ["rk4"], ["karras"], [5], 8, 0, tmp_path / "r.jsonl", batch=8,
                           metric_names=("fid",))
    builtin = {"plugin": "builtin", "distribution": "samplerzoo", "version": "0.1.0"}
    assert row["provenance"] == {"sampler": {"plugin": "rk4", "distribution": "samplerzoo-rk4", "version": "0.1.0"},
                                 "schedule": builtin, "checkpoint": builtin, "guidance": builtin}


@pytest.fixture
def two_distributions_one_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Two installed distributions (real dist-info on sys.path) that both register entry point ``dup``."""
    for letter, version in (("a", "1.0"), ("b", "2.0")):
        (tmp_path / f"szdup_{letter}.py").write_text(PLUGIN.format(sampler=f"dup_{letter}"))
        info = tmp_path / f"szdup_{letter}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: szdup-{letter}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(f"[samplerzoo]\ndup = szdup_{letter}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("SAMPLERZOO_PLUGINS", "dup")
    plugins.reload()
    yield
    monkeypatch.undo()
    plugins.reload()


def test_a_second_distribution_with_the_same_entry_point_name_is_reported(two_distributions_one_name: None) -> None:
    infos = plugins.registry().plugins
    (loaded,) = (info for name, info in infos.items() if name == "dup")
    (other,) = (info for name, info in infos.items() if name.startswith("dup ("))
    assert {loaded.distribution, other.distribution} == {"szdup-a", "szdup-b"}
    assert loaded.samplers and not other.samplers
    assert other.errors == [f"entry point name 'dup' is already taken by {loaded.distribution} {loaded.version}; "
                            "not loaded"]
    listing = CliRunner().invoke(app, ["plugins"]).stdout
    assert (f"plugin 'dup' ({other.distribution} {other.version}): entry point name 'dup' is already taken by "
            f"{loaded.distribution} {loaded.version}; not loaded") in listing
