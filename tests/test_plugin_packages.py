"""Real plugin packages installed by pip: the template plugin runs in ``zoo``; broken ones are skipped and reported.

The packages under plugin_fixtures/ are broken on purpose, so they (and plugins/rk4) are installed offline into a
temporary ``--target`` directory, with real dist-info and entry points, and only the ``zoo`` subprocesses that get
it on PYTHONPATH see them.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
PACKAGES = [*sorted(p for p in (HERE / "plugin_fixtures").iterdir() if p.is_dir()), HERE.parent / "plugins" / "rk4"]
ZOO = Path(sys.executable).with_name("zoo")
FAILURES = {  # one line per broken plugin in `zoo plugins`
    "broken_import": "failed to load 'szfix_broken_import': ModuleNotFoundError: No module named "
                     "'samplerzoo_no_such_dependency'",
    "raising_hook": "register_samplers: RuntimeError: this hook always fails",
    "duplicate_name": "sampler 'euler' from 'samplerzoo-fixture-duplicate-name': name 'euler' is already taken by "
                      "'euler' from 'samplerzoo'",
    "malformed_spec": "register_samplers: register() takes a SamplerSpec, got dict",
}


@pytest.fixture(scope="session")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plugin packages pip-installed (no network, no build isolation) into a fresh directory."""
    root = tmp_path_factory.mktemp("plugin_packages")
    # copies, so that building leaves no build/ or egg-info in the checkout
    copies = [shutil.copytree(p, root / "src" / p.name, ignore=shutil.ignore_patterns("*.egg-info", "build"))
              for p in PACKAGES]
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                          "--no-index", "--target", str(root / "site"), *map(str, copies)],
                         capture_output=True, text=True)
    assert pip.returncode == 0, pip.stderr
    return root / "site"


def zoo(site: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``zoo`` in a subprocess that sees the installed plugin packages, from a scratch directory."""
    env = {k: v for k, v in os.environ.items() if k != "SAMPLERZOO_PLUGINS"}
    env["PYTHONPATH"] = os.pathsep.join([str(site), *filter(None, [os.environ.get("PYTHONPATH")])])
    return subprocess.run([str(ZOO), *args], cwd=site.parent, env=env, capture_output=True, text=True, timeout=300)


def test_plugins_reports_each_broken_plugin_on_one_line(site: Path) -> None:
    run = zoo(site, "plugins")
    assert run.returncode == 0, run.stderr
    reported = {line.split("'")[1]: line.split("): ", 1)[1] for line in run.stdout.splitlines()
                if line.startswith("plugin '")}
    assert {name: reported.get(name) for name in FAILURES} == FAILURES
    assert "rk4" not in reported and "builtin" not in reported


def test_list_keeps_every_good_sampler(site: Path) -> None:
    run = zoo(site, "list", "--json")
    assert run.returncode == 0, run.stderr
    rows = {row["name"]: row for row in json.loads(run.stdout)}
    assert (rows["rk4"]["plugin"], rows["rk4"]["nfe"], rows["rk4"]["order"]) == ("samplerzoo-rk4", "4*steps-3", 4)
    assert rows["fixture_ok"]["plugin"] == "samplerzoo-fixture-duplicate-name"  # the clash skipped only `euler`
    assert rows["euler"]["plugin"] == rows["heun"]["plugin"] == "samplerzoo"
    assert "fixture_malformed" not in rows


def test_bench_runs_the_template_plugin(site: Path) -> None:
    results = site.parent / "bench.jsonl"
    run = zoo(site, "bench", "--checkpoint", "digits-ideal", "--sampler", "rk4", "--nfe", "5", "--samples", "40",
              "--batch", "20", "--results", str(results))
    assert run.returncode == 0, run.stderr
    (row,) = [json.loads(line) for line in results.read_text().splitlines()]
    assert (row["sampler"], row["status"], row["counted_nfe"], row["steps"], row["final_step_used"]) == (
        "rk4", "ok", 5, 2, "zero")  # 4 * 2 - 3 = 5: one RK4 step, then Euler onto sigma = 0
    assert 0 < row["metrics"]["fid"] < 100 and "rk4" in run.stdout
