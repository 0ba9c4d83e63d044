"""The results file: JSON lines, one finished point per line, appended atomically and read back tolerantly.

A line is written with one ``write`` on an ``O_APPEND`` descriptor and fsynced, so a finished point is
either wholly on disk or not at all. A torn last line (a crash mid-write) is cut off before the next
append, so nothing already written is lost and nothing is corrupted.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class ResultsFile:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def rows(self) -> Iterator[dict[str, Any]]:
        if not self.path.is_file():
            return
        for line in self.path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line: never a finished point
            if isinstance(row, dict):
                yield row

    def finished_keys(self) -> set[str]:
        return {row["key"] for row in self.rows() if "key" in row}

    def _cut_torn_tail(self) -> None:
        data = self.path.read_bytes() if self.path.is_file() else b""
        if data and not data.endswith(b"\n"):
            with self.path.open("r+b") as f:
                f.truncate(data.rfind(b"\n") + 1)

    def append(self, row: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._cut_torn_tail()
        line = (json.dumps(row, sort_keys=True) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
