"""A benchmark's prompts: a file of one prompt a line (sample with seed s takes prompt s mod P, as labels do), with
optional negative prompts, identified in results rows by a hash of their text."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import SamplerzooError


@dataclass(frozen=True)
class PromptSet:
    """The prompts of a sweep and where they came from."""

    prompts: tuple[str, ...]
    negative_prompts: tuple[str, ...] | None = None
    source: str = ""

    @property
    def identity(self) -> str:
        """``sha256:<16 hex>`` of the prompts and negative prompts: the same text gives the same results key,
        whatever the file is called."""
        text = json.dumps({"prompts": self.prompts, "negative_prompts": self.negative_prompts}, sort_keys=True)
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:16]


def read_prompts(path: Path, negative_prompts: tuple[str, ...] | None = None) -> PromptSet:
    """The non-blank lines of a UTF-8 text file, each one prompt (surrounding whitespace stripped)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise SamplerzooError(f"--prompts {path}: cannot be read ({reason}); accepted: a UTF-8 text file, one prompt "
                              "a line") from None
    prompts = tuple(line.strip() for line in text.splitlines() if line.strip())
    if not prompts:
        raise SamplerzooError(f"--prompts {path}: no prompts in the file; accepted: one prompt a line")
    return PromptSet(prompts, negative_prompts or None, str(path))
