"""The results prose states what its data say (benchmarks/check_claims.py), and the checker sees a wrong figure."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import check_claims  # noqa: E402
from claims_core import ROOT, check_claim, check_row_table, check_table  # noqa: E402


def test_every_claim_and_table_holds() -> None:
    for claim in check_claims.CLAIMS:
        status, expected = check_claim(claim, (ROOT / claim.file).read_text())
        assert status == "ok", f"{claim.file}: {status}: {expected}"
    for table in check_claims.TABLES:
        assert check_table(table, (ROOT / table.file).read_text().split("\n"))[0] == []
    for row_table in check_claims.ROW_TABLES:
        assert check_row_table(row_table, (ROOT / row_table.file).read_text().split("\n")) == []


def test_a_changed_figure_is_caught_and_fixed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    # One figure of a sentence and one table cell off, in a copy of the README: both reported, --fix restores them.
    readme = (ROOT / "results/sweeps/README.md").read_text()
    wrong = readme.replace("(FID 4.4-43)", "(FID 5-30)").replace("| 14.6 | **2.16** |", "| 14.9 | **2.16** |")
    assert wrong != readme and wrong.count("(FID 5-30)") == 1
    copy = tmp_path / "results" / "sweeps" / "README.md"
    copy.parent.mkdir(parents=True)
    copy.write_text(wrong)
    layer = tmp_path / "results" / "additional-layer.md"
    layer.write_text((ROOT / "results/additional-layer.md").read_text())
    monkeypatch.setattr(check_claims, "ROOT", tmp_path)
    monkeypatch.setattr(sys, "argv", ["check_claims.py"])
    assert check_claims.main() == 1
    out = capsys.readouterr().out
    assert "claims 'At NFE 3-5 every solver is far from the floor (FID 5-30).'" in out
    assert "dpmpp_2m at NFE 5: '14.9', data give 14.637" in out and "2 problem(s)" in out
    monkeypatch.setattr(sys, "argv", ["check_claims.py", "--fix"])
    check_claims.main()
    assert copy.read_text() == readme
