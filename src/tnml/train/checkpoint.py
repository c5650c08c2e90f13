"""Atomic writes and training checkpoints.

A file is first written next to its destination under a temporary name, flushed to disk and
then renamed over the destination, so a crash mid-save never replaces a good file with half a
file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from tnml.exceptions import DataFileError, InvalidInputError


def atomic_write(path: str | os.PathLike[str], write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)`` and rename the result to ``path`` once it is complete.

    The temporary file lives in the destination folder (a rename across file systems would
    not be atomic) and is removed if ``write`` raises.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        # mkstemp makes the file private (0600); give it the mode open() would have.
        os.chmod(tmp, 0o666 & ~_current_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> Path:
    """Write a training checkpoint (a dict of tensors and plain values) atomically."""
    return atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint`."""
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"checkpoint {path} not found; nothing to resume")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch raises many types for a damaged file
        raise DataFileError(f"checkpoint {path} cannot be read: {err}") from err
    if not isinstance(state, dict) or state.get("kind") != "tnml-checkpoint":
        raise DataFileError(f"{path} is not a tnml training checkpoint")
    return state


def check_resume_length(done: int, planned: int, path: object, unit: str = "epochs") -> None:
    """Refuse to resume a run that has already gone past ``planned`` passes: it would save a
    model that says ``planned`` but was trained for ``done``."""
    if done > planned:
        raise InvalidInputError(
            f"checkpoint {path} has already run {done} {unit}, more than the {planned} asked "
            f"for; resume with at least {done} {unit}"
        )
