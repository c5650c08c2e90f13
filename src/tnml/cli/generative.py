"""``tnml sample`` and ``tnml inpaint``: what a trained Born machine generates.

Born machines model discrete data. Images are binarised at :data:`BINARY_THRESHOLD` for
training, sampling and inpainting; tabular (csv) columns must already hold integer levels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import typer

from tnml import io as tnml_io
from tnml._files import atomic_write
from tnml.cli.options import output_file
from tnml.exceptions import InvalidInputError
from tnml.workflows.data import (
    BINARY_THRESHOLD,
    SEED_MAX,
    ModelSpec,
    discretize,
    image_shape,
    is_born_machine,
    load_evaluation_data,
)

__all__ = [
    "BINARY_THRESHOLD",
    "MASKS",
    "discretize",
    "hidden_pixels",
    "image_shape",
    "inpaint",
    "is_born_machine",
    "sample",
]

MASKS = ("top-half", "bottom-half", "left-half", "right-half", "center")


def hidden_pixels(mask: str, height: int, width: int) -> np.ndarray:
    """Boolean (height * width,) array: True where ``mask`` hides the pixel."""
    if mask not in MASKS:
        raise InvalidInputError(f"mask must be one of {', '.join(MASKS)}, got {mask!r}")
    hidden = np.zeros((height, width), dtype=bool)
    if mask == "top-half":
        hidden[: height // 2] = True
    elif mask == "bottom-half":
        hidden[height // 2 :] = True
    elif mask == "left-half":
        hidden[:, : width // 2] = True
    elif mask == "right-half":
        hidden[:, width // 2 :] = True
    else:
        hidden[height // 4 : height - height // 4, width // 4 : width - width // 4] = True
    return hidden.reshape(-1)


def _load_born(model_path: Path) -> tuple[Any, ModelSpec]:
    model = tnml_io.load(model_path)
    if not is_born_machine(model):
        raise InvalidInputError(
            f"{model_path} holds a {type(model).__name__}, not a Born machine; train one with "
            "tnml train --model mps-born (or ttn-born)"
        )
    return model, ModelSpec.from_model(model)


def sample(
    model_path: Annotated[Path, typer.Argument(metavar="MODEL", help="A Born-machine model.")],
    n: Annotated[int, typer.Option("--n", min=1, help="Number of samples.")] = 64,
    out: Annotated[
        Path,
        typer.Option(
            help="PNG (image grid, image models) or CSV (one sample per row).",
            callback=output_file,
        ),
    ] = Path("samples.png"),
    n_cols: Annotated[int, typer.Option(min=1, help="Images per row of the grid.")] = 8,
    seed: Annotated[int, typer.Option(help="Seed of the draws.", min=0, max=SEED_MAX)] = 0,
) -> None:
    """Draw exact independent samples from a Born machine; save an image grid or a CSV."""
    from tnml.plot import save_image_grid

    model, spec = _load_born(model_path)
    suffix = out.suffix.lower()
    if suffix not in (".png", ".csv"):
        raise InvalidInputError(f"--out must end in .png or .csv, got {out.name!r}")
    shape = image_shape(spec) if suffix == ".png" else None
    samples = model.sample(n, random_state=seed)
    if suffix == ".png":
        save_image_grid(samples.reshape(n, *shape).astype(float), out, n_cols=n_cols)
    else:  # with the model's column names, so the file reads back into tnml evaluate
        names = spec.feature_names or [f"x{j}" for j in range(samples.shape[1])]
        header = ",".join(names)
        atomic_write(
            out,
            lambda tmp: np.savetxt(
                tmp, samples, fmt="%d", delimiter=",", header=header, comments=""
            ),
        )
    typer.echo(f"wrote {n} samples to {out}")


def inpaint(
    model_path: Annotated[Path, typer.Argument(metavar="MODEL", help="A Born-machine model.")],
    mask: Annotated[
        Literal["top-half", "bottom-half", "left-half", "right-half", "center"],
        typer.Option(help="Which pixels are hidden and filled in."),
    ] = "top-half",
    n: Annotated[int, typer.Option("--n", min=1, help="Number of test images.")] = 8,
    out: Annotated[
        Path, typer.Option(help="Where to write the PNG grid.", callback=output_file)
    ] = Path("inpaint.png"),
    data_dir: Annotated[
        Path | None,
        typer.Option(help="MNIST folder (default: the one the model was trained on)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the draws.", min=0, max=SEED_MAX)] = 0,
) -> None:
    """Hide part of held-out test images and fill it in from the exact conditional.

    The grid has three rows per block of images: the binarised originals, the visible part
    (hidden pixels grey) and the completion sampled given the visible pixels.
    """
    from tnml.plot import save_image_grid

    if out.suffix.lower() != ".png":
        raise InvalidInputError(f"--out must end in .png (a PNG grid), got {out.name!r}")
    model, spec = _load_born(model_path)
    height, width = image_shape(spec)
    data = load_evaluation_data(spec, data_dir=data_dir, split="test")
    hidden = hidden_pixels(mask, height, width)
    visible = np.flatnonzero(~hidden)
    # an overfitted model can give some test images' visible part probability zero; there
    # is no conditional distribution to sample then, so such images are skipped (and counted)
    candidates = discretize(data.X[: 4 * n], spec)
    possible = np.isfinite(model.marginal_log_prob(visible, candidates[:, visible]))
    chosen = np.flatnonzero(possible)[:n]
    images = candidates[chosen]
    skipped = int(chosen[-1] + 1 - len(chosen)) if len(chosen) else len(candidates)
    n = images.shape[0]
    if n == 0:
        raise InvalidInputError(
            "the visible part of every test image tried has probability zero under this model"
        )
    evidence = {int(j): images[:, j] for j in visible}
    completed = model.sample(n, evidence=evidence, random_state=seed)
    shown = images.astype(float)
    shown[:, hidden] = 0.5
    rows = []
    n_cols = min(n, 8)
    for start in range(0, n, n_cols):
        for block in (images.astype(float), shown, completed.astype(float)):
            part = block[start : start + n_cols]
            pad = np.zeros((n_cols - part.shape[0], part.shape[1]))
            rows.append(np.concatenate([part, pad]))
    grid = np.concatenate(rows).reshape(-1, height, width)
    save_image_grid(grid, out, n_cols=n_cols)
    agreement = float((completed[:, hidden] == images[:, hidden]).mean())
    typer.echo(
        f"inpainted {n} test images ({mask}, {int(hidden.sum())} hidden pixels each); "
        f"hidden pixels equal to the original: {agreement:.1%}"
        + (f"; skipped {skipped} whose visible part has probability zero" if skipped else "")
    )
    typer.echo(f"wrote {out} (rows: original, visible, completed)")
