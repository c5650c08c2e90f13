"""Training checkpoints, written atomically.

Checkpoints go through :func:`tnml._files.atomic_write`, so a crash mid-save never replaces a
good checkpoint with half a file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from tnml._files import atomic_write
from tnml.exceptions import DataFileError, InvalidInputError


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
