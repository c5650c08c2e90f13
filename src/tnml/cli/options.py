"""Typer callbacks shared by the ``tnml`` commands."""

from __future__ import annotations

from pathlib import Path

import typer

__all__ = ["output_file"]


def output_file(path: Path | None) -> Path | None:
    """Typer callback for ``--out FILE``: refuse a folder before any work is done (a
    training run would otherwise end by failing to write)."""
    if path is not None and path.is_dir():
        raise typer.BadParameter(f"{path} is a folder; give a file name, e.g. {path / 'out'}")
    return path
