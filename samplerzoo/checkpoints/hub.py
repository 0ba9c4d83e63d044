"""Hugging Face hub ids (``org/name``): the local hub cache first (offline), then a download by diffusers."""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import CheckpointError, first_line
from .families.pipeline import quiet

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")


def is_hub_id(spec: str) -> bool:
    return bool(HUB_ID.match(spec)) and ".." not in spec


def resolve(repo_id: str) -> Path:
    """The local snapshot directory of a hub pipeline: from the hub cache without network access when cached
    (``HF_HOME`` / ``HF_HUB_CACHE``), else downloaded by diffusers; one clear line when neither works."""
    from huggingface_hub import constants, snapshot_download

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception:  # not cached (LocalEntryNotFoundError and its relatives)
        pass
    if constants.HF_HUB_OFFLINE:
        reason = "HF_HUB_OFFLINE is set"
    else:
        from diffusers import DiffusionPipeline
        from diffusers.utils import logging

        try:
            with quiet(logging, bars=True):  # download progress stays visible; diffusers' retry warnings do not
                return Path(DiffusionPipeline.download(repo_id))
        except Exception as exc:  # unreachable, gated or unknown repository
            reason = first_line(exc)
    raise CheckpointError(f"{repo_id}: not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and not "
                          f"downloadable ({reason})")
