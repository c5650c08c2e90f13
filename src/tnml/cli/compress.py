"""``tnml compress``: a Hugging Face model directory or a saved torch module with its Linear
layers replaced by tensor-train (MPO) or low-rank (SVD) layers, healed, written as
safetensors. Thin over :mod:`tnml.workflows.compress`."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from tnml._files import atomic_write
from tnml.cli.options import output_folder
from tnml.workflows.compress import compress_saved_model

__all__ = ["compress_command"]


class Method(str, Enum):
    mpo = "mpo"
    svd = "svd"


def compress_command(
    model_path: Annotated[
        Path,
        typer.Argument(
            metavar="MODEL",
            help="A Hugging Face model directory (config.json + weights) or a file written "
            "by torch.save(module).",
        ),
    ],
    ratio: Annotated[
        float,
        typer.Option(help="Parameters of the chosen Linear layers before / after (> 1)."),
    ] = 4.0,
    method: Annotated[
        Method, typer.Option(help="mpo: tensor-train layers; svd: low-rank, the baseline.")
    ] = Method.mpo,
    out: Annotated[
        Path,
        typer.Option(help="Folder for model.safetensors and the report.", callback=output_folder),
    ] = Path("compressed"),
    heal_data: Annotated[
        Path | None,
        typer.Option(
            help="Healing data: a text file (one sentence per line, for a model with a "
            "tokenizer) or a .pt / .npy tensor of inputs. Without it: no healing."
        ),
    ] = None,
    layers: Annotated[
        list[str] | None,
        typer.Option(help="fnmatch pattern of Linear layer names (repeatable); default all."),
    ] = None,
    heal_steps: Annotated[int, typer.Option(min=0, help="Healing steps at most.")] = 300,
    max_seconds: Annotated[
        float | None, typer.Option(min=1, help="Healing time limit in seconds.")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=2, help="Healing batch size.")] = 16,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress lines.")] = False,
) -> None:
    """Compress MODEL's Linear layers RATIO times, heal by distillation, write --out."""
    report = compress_saved_model(
        model_path,
        out,
        heal_data=heal_data,
        batch_size=batch_size,
        ratio=ratio,
        method=method.value,
        layers=layers or None,
        heal_steps=heal_steps,
        max_seconds=max_seconds,
        progress=not quiet,
    )
    text = json.dumps(report.to_dict(), indent=1, default=str)
    atomic_write(out / "report.json", lambda tmp: Path(tmp).write_text(text))
    if not quiet:
        typer.echo(str(report))
    typer.echo(f"saved {out}")
