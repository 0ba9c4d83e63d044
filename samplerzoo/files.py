"""Files samplerzoo writes: checked before any work starts, and replaced atomically so a crash never leaves half
a file (write a temporary file beside the target, fsync it, then ``os.replace``); and the JSON objects it reads."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from .errors import SamplerzooError

ACCEPTED = "accepted: a file whose folder exists or can be made and is writable, and which is not itself a folder"


def check_writable(path: Path, what: str) -> Path:
    """``path``, once it is sure to be writable: not a folder, no file where a folder of it should be, its folder
    made if missing, and a file can be created there (or the existing one opened for appending, which changes
    nothing). Otherwise a one-line SamplerzooError naming ``what`` (e.g. ``--out``)."""
    path = Path(path)
    if path.is_dir():
        raise SamplerzooError(f"{what} {path} is a folder; {ACCEPTED}")
    blocker = next((a for a in path.parents if a.exists() and not a.is_dir()), None)
    if blocker is not None:
        raise SamplerzooError(f"{what} {path}: {blocker} is a file, not a folder; {ACCEPTED}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            with path.open("ab"):
                pass
        else:
            with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".probe"):
                pass
    except OSError as exc:
        raise SamplerzooError(f"{what} {path} cannot be written ({exc.strerror or exc}); {ACCEPTED}") from None
    return path


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` all at once: readers see the old file or the new one, never a part."""
    path = Path(path)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@functools.cache
def _sha256(path: str, size: int, mtime: float) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_hash(path: Path) -> str:
    """The SHA-256 of a file (hashed once a process for each size and modification time)."""
    stat = path.stat()
    return _sha256(str(path), stat.st_size, stat.st_mtime)


def read_json_object(path: Path, label: str, error: type[SamplerzooError], expected: str = "a JSON object"
                     ) -> dict[str, Any]:
    """The JSON object in ``path``, or a one-line ``error`` that starts with ``label``: missing file, not JSON, or
    not ``expected``."""
    if not path.is_file():
        raise error(f"{label}: file not found")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{label}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise error(f"{label}: expected {expected}")
    return data
