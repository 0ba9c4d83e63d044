"""Run the ``zoo`` command line inside the test process (tests/ is not a package: import this module by name)."""

from __future__ import annotations

import sys

import pytest

from samplerzoo.cli import main


def zoo(args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run ``zoo ARGS`` in this process: (exit code, stdout, stderr); never a traceback."""
    monkeypatch.setattr(sys, "argv", ["zoo", *args])
    try:
        main()
        code = 0
    except SystemExit as exit_info:
        code = int(exit_info.code or 0)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err
