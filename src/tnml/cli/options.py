"""Typer callbacks shared by the ``tnml`` commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from tnml.data import MNIST_ENV_VAR

__all__ = [
    "DataDirOpt",
    "DatasetArg",
    "DownsampleOpt",
    "FileArg",
    "ModelDatasetArg",
    "TargetOpt",
    "fraction",
    "hide_flag_types",
    "output_file",
    "positive",
]


def output_file(path: Path | None) -> Path | None:
    """Typer callback for ``--out FILE``: refuse a folder before any work is done (a
    training run would otherwise end by failing to write)."""
    if path is not None and path.is_dir():
        raise typer.BadParameter(f"{path} is a folder; give a file name, e.g. {path / 'out'}")
    return path


def output_folder(path: Path | None) -> Path | None:
    """Typer callback for ``--out DIR``: refuse a path that is a file before any work is
    done (a long run would otherwise end by failing to write its folder)."""
    if path is not None and path.exists() and not path.is_dir():
        raise typer.BadParameter(f"{path} is a file; give a folder")
    return path


def hide_flag_types() -> None:
    """Show no type beside on/off flags in ``--help``: they take no value, yet recent Typer
    versions print ``<bool>`` there. Idempotent; a Typer without the hook is left alone."""
    from typer.core import TyperOption

    original = getattr(TyperOption, "display_type_rich", None)
    if original is None or getattr(original, "flags_hidden", False):
        return

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        return None if self.is_flag else original(self, ctx)

    display_type_rich.flags_hidden = True  # type: ignore[attr-defined]
    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


# -- option checks (Typer usage errors, exit 2) ---------------------------------------------
def positive(value: float | None) -> float | None:
    if value is not None and not 0 < value < float("inf"):
        raise typer.BadParameter(f"must be a finite number > 0, got {value}")
    return value


def fraction(value: float | None) -> float | None:
    if value is not None and not 0 <= value < 1:
        raise typer.BadParameter(f"must lie in [0, 1), got {value}")
    return value


# -- shared option types --------------------------------------------------------------------
DatasetArg = Annotated[
    str, typer.Argument(help="digits (sklearn's 8x8 digits, embedded), mnist or csv.")
]
ModelDatasetArg = Annotated[
    str | None,
    typer.Argument(
        help="digits, mnist or csv (default: the data the model was trained on).",
        show_default=False,
    ),
]
FileArg = Annotated[
    Path | None, typer.Argument(help="The CSV file (dataset csv).", show_default=False)
]
DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        envvar=MNIST_ENV_VAR,
        help="Folder holding the four MNIST IDX files (dataset mnist).",
        show_default=False,
    ),
]
TargetOpt = Annotated[
    str | None,
    typer.Option("--target", help="Name of the label column (dataset csv).", show_default=False),
]
DownsampleOpt = Annotated[
    int | None,
    typer.Option(
        "--downsample",
        min=1,
        help="Images only: side length after block averaging (e.g. 14, 7, 4 for MNIST; 4 or 2 "
        "for digits).",
        show_default=False,
    ),
]
