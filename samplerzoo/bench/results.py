"""The results file: JSON lines, one finished point per line, safe for any number of concurrent writers.

- Writers take an advisory lock (``filelock``) while they repair and append, and a row is one ``write`` of a whole
  line on an ``O_APPEND`` descriptor, fsynced: no row is torn or lost, whichever processes append.
- Repair only ever adds a newline. A last line without one (a hand edit, or a writer killed mid-line) is ended, so a
  complete row stays a row and a torn one stays an odd line; nothing already written is deleted.
- One policy for odd lines (:class:`Reading`), used by ``zoo bench`` and ``zoo report`` alike: lines that are not
  UTF-8 JSON objects with a results row's fields are skipped with one warning naming their line numbers, never
  count as finished, and stay in the file. A key written twice counts once (its first row).
- A point being computed is claimed with a non-blocking lock of its own, so concurrent sweeps on one file split the
  points between them instead of computing them twice.

The locks live in a hidden folder beside the file (``.NAME.locks/``, ignored by git).
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from ..errors import SamplerzooError, SamplerzooWarning
from ..files import check_writable

REQUIRED = ("key", "checkpoint", "sampler", "schedule", "requested_nfe", "status")
"""The fields every results row has."""
STATUS_FIELDS: dict[str, tuple[str, ...]] = {"ok": ("metrics",), "unreachable": ("reason",),
                                             "nonfinite": ("nonfinite_samples", "reason")}
"""The statuses a row can have, and the fields each one adds."""
LOCK_TIMEOUT = 600.0
"""Seconds to wait for another writer's append (milliseconds in practice) before giving up with an error."""


def problem(row: Any) -> str | None:
    """Why a parsed JSON line is not a results row, or ``None`` when it is one."""
    if not isinstance(row, dict):
        return "not a JSON object"
    missing = [name for name in REQUIRED if name not in row]
    if missing:
        return f"no {missing[0]}"
    fields = STATUS_FIELDS.get(row["status"])
    if fields is None:
        return f"unknown status {row['status']!r}"
    missing = [name for name in fields if name not in row]
    return f"status {row['status']} without {missing[0]}" if missing else None


def line_numbers(numbers: list[int]) -> str:
    shown = ", ".join(map(str, numbers[:10]))
    return shown + (f" and {len(numbers) - 10} more" if len(numbers) > 10 else "")


@dataclass(frozen=True)
class Reading:
    """A results file as read: its rows (the first row of each key, in file order) and the lines left out."""

    rows: list[dict[str, Any]]
    odd: list[int]
    """Line numbers (from 1) of lines that are not results rows: garbage, binary, torn or incomplete."""
    duplicates: list[int]
    """Line numbers of rows whose key an earlier row already has."""

    def warning(self, path: Path) -> str | None:
        """The one line that says what was left out, or ``None`` when nothing was."""
        parts = []
        if self.odd:
            parts.append(f"skipped {len(self.odd)} line(s) that are not results rows (line {line_numbers(self.odd)})")
        if self.duplicates:
            parts.append(f"counted {len(self.duplicates)} duplicate row(s) once (line "
                         f"{line_numbers(self.duplicates)})")
        return f"{path}: {'; '.join(parts)}; the file is left as it is" if parts else None


def parse(data: bytes) -> Reading:
    """The odd-line policy, on the bytes of a results file."""
    rows: list[dict[str, Any]] = []
    odd, duplicates, seen = [], [], set()
    for number, line in enumerate(data.split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            row = None
        if row is None or problem(row) is not None:
            odd.append(number)
        elif row["key"] in seen:
            duplicates.append(number)
        else:
            seen.add(row["key"])
            rows.append(row)
    return Reading(rows, odd, duplicates)


class ResultsFile:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.locks = self.path.parent / f".{self.path.name}.locks"

    def check_writable(self) -> None:
        """Fail now, before any point is computed, if rows could not be appended later."""
        check_writable(self.path, "results file")
        self._lock_folder()

    def _lock_folder(self) -> Path:
        try:
            self.locks.mkdir(parents=True, exist_ok=True)
            ignore = self.locks / ".gitignore"
            if not ignore.exists():
                ignore.write_text("*\n")
        except OSError as exc:
            raise SamplerzooError(f"results file {self.path}: cannot make its lock folder {self.locks} "
                                  f"({exc.strerror or exc}); accepted: a results file in a writable folder") from None
        return self.locks

    @contextmanager
    def _locked(self, reading: bool = False) -> Iterator[None]:
        """Hold the file's lock (readers too: a reader then never sees a row half appended). A reader of a file in
        a folder it cannot write (a published results file) reads without the lock."""
        try:
            folder = self._lock_folder() if not reading or self.path.is_file() else None
        except SamplerzooError:
            if not reading:
                raise
            folder = None
        if folder is None:
            yield
            return
        lock = FileLock(folder / "file.lock", timeout=LOCK_TIMEOUT)
        try:
            lock.acquire()
        except Timeout:
            raise SamplerzooError(f"results file {self.path} stayed locked by another process for "
                                  f"{LOCK_TIMEOUT:.0f} s ({lock.lock_file})") from None
        try:
            yield
        finally:
            lock.release()

    def read(self) -> Reading:
        """The rows of the file under the odd-line policy; what was left out is reported as one warning."""
        with self._locked(reading=True):
            data = self.path.read_bytes() if self.path.is_file() else b""
        reading = parse(data)
        message = reading.warning(self.path)
        if message:
            warnings.warn(message, SamplerzooWarning, stacklevel=2)
        return reading

    def rows(self) -> Iterator[dict[str, Any]]:
        yield from self.read().rows

    def finished(self) -> dict[str, dict[str, Any]]:
        """The finished rows by key."""
        return {row["key"]: row for row in self.read().rows}

    def finished_keys(self) -> set[str]:
        return set(self.finished())

    def find(self, key: str) -> dict[str, Any] | None:
        return self.finished().get(key)

    def _end_last_line(self) -> None:
        """Give a last line without a newline its newline (under the lock): a complete row is kept as a row, a torn
        one becomes an odd line of its own instead of running into the next row."""
        if self.path.is_file() and self.path.stat().st_size:
            with self.path.open("rb") as f:
                f.seek(-1, os.SEEK_END)
                ended = f.read(1) == b"\n"
            if not ended:
                self._write(b"\n")

    def _write(self, data: bytes) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)

    def append(self, row: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = (json.dumps(row, sort_keys=True) + "\n").encode()
        with self._locked():
            self._end_last_line()
            self._write(line)

    @contextmanager
    def claim(self, key: str, wait: bool) -> Iterator[bool]:
        """Claim the point ``key`` for as long as the block runs: yields whether this process holds the claim. With
        ``wait`` it waits for another process's claim to end (it finished the point, or died)."""
        lock = FileLock(self._lock_folder() / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.lock")
        try:
            lock.acquire(blocking=wait)
        except Timeout:
            yield False
            return
        try:
            yield True
        finally:
            lock.release()
