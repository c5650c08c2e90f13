"""``tnml structure``: learn a tensor network's graph and ranks for an image, a video or a
``.npy`` tensor. Thin over :mod:`tnml.workflows.structure`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tnml.cli.options import output_folder
from tnml.workflows.structure import run_structure

__all__ = ["structure_command"]


def _modes(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise typer.BadParameter(f"--modes must be comma-separated ints, got {text!r}") from None


def structure_command(
    file: Annotated[
        Path,
        typer.Argument(metavar="FILE", help="An image, an animated GIF (a video) or a .npy array."),
    ],
    rse: Annotated[
        float | None, typer.Option(help="Stop at this relative error, in (0, 1).")
    ] = None,
    params: Annotated[
        int | None, typer.Option(help="Stop before the network exceeds this many parameters.")
    ] = None,
    out: Annotated[
        Path,
        typer.Option(help="Folder for the network, report and figures.", callback=output_folder),
    ] = Path("structure"),
    missing: Annotated[
        float,
        typer.Option(help="Hide this fraction of entries at random and complete them."),
    ] = 0.0,
    max_mode: Annotated[
        int, typer.Option(help="Largest mode when factoring each axis into modes.")
    ] = 10,
    modes: Annotated[
        str | None, typer.Option(help="Explicit reshaping, e.g. 6,10,10,6,10,10,3.")
    ] = None,
    seed: Annotated[
        int, typer.Option(min=0, help="Random seed (initial cores, hidden entries).")
    ] = 0,
    max_steps: Annotated[int, typer.Option(min=1, help="Most rank increments.")] = 500,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Learn a tensor network for FILE until --rse or --params; write it to --out."""
    report = run_structure(
        file,
        out,
        rse=rse,
        max_params=params,
        missing=missing,
        max_mode=max_mode,
        modes=_modes(modes),
        seed=seed,
        max_steps=max_steps,
        progress=not quiet,
    )
    line = (
        f"{report['n_params']} parameters ({report['compression']:.1f}x fewer than "
        f"{report['entries']} entries), rse {report['rse']:.4g}, modes {report['reshape']['modes']}"
    )
    if "hidden_rse" in report:
        line += f", hidden entries: rse {report['hidden_rse']:.4g}"
        if report["hidden_psnr_db"] is not None:
            line += f" psnr {report['hidden_psnr_db']:.2f} dB"
    typer.echo(line)
    typer.echo(f"saved {out}")
