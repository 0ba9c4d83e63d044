"""README's offline example (zoo stats, zoo bench against the npz, zoo report), run exactly as written: the digits
twin of the CIFAR-10 commands above it."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import numpy as np
import pytest

from samplerzoo.bench.results import ResultsFile
from samplerzoo.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"


def example_commands() -> list[list[str]]:
    block = README.read_text().split("<!-- digits-example -->")[1].split("<!-- /digits-example -->")[0]
    text = block.split("```bash\n")[1].split("```")[0].replace("\\\n", " ")
    return [shlex.split(line) for line in text.splitlines() if line.strip()]


@pytest.mark.slow
def test_the_readme_digits_example_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SAMPLERZOO_CACHE", str(tmp_path / "cache"))
    commands = example_commands()
    assert [command[:2] for command in commands] == [["zoo", "stats"], ["zoo", "bench"], ["zoo", "report"]]
    for command in commands:
        monkeypatch.setattr(sys, "argv", command)
        main()  # raises SystemExit on an error
    assert "Traceback" not in capsys.readouterr().err
    with np.load(tmp_path / "digits-train.npz") as stats:
        assert stats["mu"].shape == (64,) and stats["sigma"].shape == (64, 64)
    rows = list(ResultsFile(tmp_path / "results" / "example.jsonl").rows())
    assert len(rows) == 4 and all(row["status"] == "ok" and row["reference_kind"] == "npz" for row in rows)
    for suffix in (".md", ".csv", ".png", "-pareto.png", ".html"):
        assert (tmp_path / "results" / f"example{suffix}").is_file()
    assert "none (the reference is FID statistics only)" in (tmp_path / "results" / "example.md").read_text()
