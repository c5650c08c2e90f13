"""Saving a compressed model as safetensors plus a JSON list of its replaced layers, and
loading it back onto its architecture."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from torch import nn

from tnml._files import atomic_write
from tnml.compression.api import layer_spec
from tnml.compression.select import replace_module
from tnml.exceptions import InvalidInputError
from tnml.nn.lowrank import LowRankLinear
from tnml.nn.tt import TTLinear

__all__ = ["LAYERS_FILE", "WEIGHTS_FILE", "load_compressed", "rebuild", "save_compressed"]

WEIGHTS_FILE = "model.safetensors"
LAYERS_FILE = "compression.json"


def save_compressed(
    model: nn.Module,
    directory: str | os.PathLike[str],
    *,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``model``'s weights (``model.safetensors``) and the shapes of its compressed
    layers (``compression.json``, with ``extra`` merged in) into ``directory``; each file is
    written whole or not at all."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    specs = [
        layer_spec(n, m)
        for n, m in model.named_modules()
        if isinstance(m, (TTLinear, LowRankLinear))
    ]
    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    atomic_write(directory / WEIGHTS_FILE, lambda tmp: save_file(state, tmp))
    text = json.dumps({"format": "tnml-compressed/1", "layers": specs, **(extra or {})}, indent=1)
    atomic_write(directory / LAYERS_FILE, lambda tmp: Path(tmp).write_text(text))
    return directory


def rebuild(model: nn.Module, specs: list[dict[str, Any]]) -> nn.Module:
    """Put empty compressed layers of the recorded shapes into ``model`` (in place)."""
    for spec in specs:
        try:
            model.get_submodule(spec["name"])
        except AttributeError as err:
            raise InvalidInputError(
                f"the saved layer {spec['name']!r} is not in the model to load into"
            ) from err
        if spec["kind"] == "tt":
            new = TTLinear(
                spec["in_features"],
                spec["out_features"],
                in_modes=spec["in_modes"],
                out_modes=spec["out_modes"],
                ranks=spec["ranks"],
                bias=spec["bias"],
            )
        elif spec["kind"] == "lowrank":
            new = LowRankLinear(
                spec["in_features"], spec["out_features"], spec["rank"], bias=spec["bias"]
            )
        else:
            raise InvalidInputError(f"unknown compressed layer kind {spec['kind']!r}")
        replace_module(model, spec["name"], new)
    return model


def read_layers(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """The contents of ``compression.json`` in ``directory``."""
    path = Path(directory) / LAYERS_FILE
    if not path.is_file():
        raise InvalidInputError(f"{directory} holds no {LAYERS_FILE}: not a compressed model")
    return json.loads(path.read_text())


def load_compressed(directory: str | os.PathLike[str], model: nn.Module) -> nn.Module:
    """Load a model written by :func:`save_compressed` into ``model`` (its original
    architecture, any weights; changed in place and returned)."""
    from safetensors.torch import load_file

    info = read_layers(directory)
    rebuild(model, info["layers"])
    state = load_file(str(Path(directory) / WEIGHTS_FILE))
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    still_meta = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if missing or unexpected or still_meta:
        raise InvalidInputError(
            f"{directory}: the weights do not fit the model (missing {list(missing)[:3]}, "
            f"unexpected {list(unexpected)[:3]}, without values {still_meta[:3]})"
        )
    return model
