"""``tnml structure``: an image, a video or a ``.npy`` tensor reshaped into a higher-order tensor
and represented by a learned tensor network (:func:`tnml.structure.learn`).

Reshaping: every axis of length ``n`` is factored into modes of at most ``max_mode`` (first-fit
decreasing over its prime factors, e.g. 600 -> 10 x 10 x 6); a colour channel axis stays one
mode. The factors of each axis are kept in order (C order), so ``array.reshape(modes)`` is the
higher-order tensor and ``tensor.reshape(array.shape)`` undoes it. The plan is written in the
report.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tnml import io
from tnml._files import atomic_write
from tnml.exceptions import InvalidInputError
from tnml.nn.tt import prime_factors
from tnml.plot import plot_network_graph, plot_structure_path
from tnml.structure import learn

__all__ = ["ReshapePlan", "load_array", "plan_reshape", "psnr", "run_structure"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


@dataclass(frozen=True)
class ReshapePlan:
    """How an array becomes a higher-order tensor: ``array.reshape(modes)``."""

    original_shape: tuple[int, ...]
    axis_factors: tuple[tuple[int, ...], ...]

    @property
    def modes(self) -> tuple[int, ...]:
        return tuple(f for factors in self.axis_factors for f in factors)

    def to_dict(self) -> dict[str, Any]:
        return {
            "original_shape": list(self.original_shape),
            "axis_factors": [list(f) for f in self.axis_factors],
            "modes": list(self.modes),
            "order": "C",
        }


def factor_axis(n: int, max_mode: int) -> tuple[int, ...]:
    """``n`` as a product of factors of at most ``max_mode`` (a prime above it stays whole),
    largest first, as few as first-fit decreasing packing of the prime factors gives."""
    bins: list[int] = []
    for prime in sorted(prime_factors(n), reverse=True):
        for k, value in enumerate(bins):
            if value * prime <= max_mode:
                bins[k] = value * prime
                break
        else:
            bins.append(prime)
    return tuple(sorted(bins, reverse=True)) or (1,)


def plan_reshape(
    shape: tuple[int, ...], *, max_mode: int = 10, modes: tuple[int, ...] | None = None
) -> ReshapePlan:
    """The reshaping of an array of ``shape`` (see the module docstring).

    ``modes``, when given, is used as is (one axis, its product must be the array's size).
    """
    if modes is not None:
        if math.prod(modes) != math.prod(shape) or any(m < 1 for m in modes):
            raise InvalidInputError(
                f"modes must be positive and multiply to the array's {math.prod(shape)} "
                f"entries (shape {shape}), got {list(modes)}"
            )
        return ReshapePlan(tuple(shape), (tuple(modes),))
    if max_mode < 2:
        raise InvalidInputError(f"max_mode must be >= 2, got {max_mode}")
    factors = tuple(
        (n,) if n <= 4 and k == len(shape) - 1 and len(shape) >= 3 else factor_axis(n, max_mode)
        for k, n in enumerate(shape)
    )
    return ReshapePlan(tuple(shape), tuple(tuple(f for f in fs if f > 1) or (1,) for fs in factors))


def load_array(path: Path) -> tuple[np.ndarray, str]:
    """``(array, kind)`` from an image (``kind="image"``), an animated GIF (``"video"``) or a
    ``.npy`` file (``"array"``); images as floats in [0, 1]."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInputError(f"FILE {path} not found")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise InvalidInputError(f"FILE {path} is not a readable .npy array: {err}") from err
        if not np.issubdtype(array.dtype, np.number) or np.iscomplexobj(array):
            raise InvalidInputError(
                f"FILE {path} must hold a real numeric array, got {array.dtype}"
            )
        if array.size == 0:
            raise InvalidInputError(f"FILE {path} holds an empty array, shape {array.shape}")
        return array.astype(np.float64), "array"
    if suffix in IMAGE_SUFFIXES:
        from PIL import Image, ImageSequence, UnidentifiedImageError

        try:
            with Image.open(path) as image:
                frames = [_pixels(frame) for frame in ImageSequence.Iterator(image)]
        except (OSError, UnidentifiedImageError) as err:
            raise InvalidInputError(f"FILE {path} is not a readable image: {err}") from err
        if len({f.shape for f in frames}) > 1:
            raise InvalidInputError(f"FILE {path} has frames of different sizes")
        if len(frames) == 1:
            return frames[0], "image"
        return np.stack(frames), "video"
    raise InvalidInputError(
        f"FILE must be an image ({', '.join(IMAGE_SUFFIXES)}), an animated GIF or a .npy "
        f"array, got {path.name}"
    )


def _pixels(frame: Any) -> np.ndarray:
    """One frame as floats in [0, 1]: grey stays one channel, alpha is kept as a channel,
    16-bit images keep their depth."""
    mode = frame.mode
    if mode in ("1", "L"):
        return np.asarray(frame.convert("L"), dtype=np.float64) / 255.0
    if mode.startswith("I;16"):
        return np.asarray(frame, dtype=np.float64) / 65535.0
    if mode in ("I", "F"):
        values = np.asarray(frame, dtype=np.float64)
        top = float(np.abs(values).max()) or 1.0
        return values / (65535.0 if mode == "I" and top <= 65535 else top)
    if mode in ("LA", "RGBA") or "transparency" in frame.info:
        target = "LA" if mode in ("LA", "PA") else "RGBA"
        return np.asarray(frame.convert(target), dtype=np.float64) / 255.0
    return np.asarray(frame.convert("RGB"), dtype=np.float64) / 255.0


def psnr(reference: np.ndarray, estimate: np.ndarray, peak: float) -> float | None:
    """Peak signal-to-noise ratio in dB, ``20 log10(peak) - 10 log10(mse)``; None when exact."""
    mse = float(np.mean((reference - estimate) ** 2))
    return None if mse == 0 else 20 * math.log10(peak) - 10 * math.log10(mse)


def run_structure(
    file: Path,
    out: Path,
    *,
    rse: float | None = None,
    max_params: int | None = None,
    missing: float = 0.0,
    max_mode: int = 10,
    modes: tuple[int, ...] | None = None,
    seed: int = 0,
    max_steps: int = 500,
    progress: bool = True,
) -> dict[str, Any]:
    """Learn a network for FILE and write ``network.tnml``, ``report.json``, ``graph.png``,
    ``path.png`` (and ``reconstruction.png`` for an image) into ``out``; return the report.

    ``missing`` hides that fraction of entries at random (seeded); the network is fitted to
    the rest and the report gives the error on the hidden ones (completion).
    """
    if rse is None and max_params is None:
        raise InvalidInputError("give --rse or --params (when to stop)")
    if not 0 <= missing < 1:
        raise InvalidInputError(f"missing must be in [0, 1), got {missing}")
    array, kind = load_array(file)
    plan = plan_reshape(array.shape, max_mode=max_mode, modes=modes)
    tensor = array.reshape(plan.modes)
    mask = None
    if missing > 0:
        rng = np.random.default_rng(seed)
        mask = rng.random(tensor.shape) >= missing
        if mask.all():
            raise InvalidInputError(
                f"missing={missing} hides no entry of this {tensor.size}-entry tensor"
            )
    start = time.perf_counter()
    net = learn(
        tensor,
        rse=rse,
        max_params=max_params,
        mask=mask,
        random_state=seed,
        max_steps=max_steps,
        progress=progress,
    )
    seconds = time.perf_counter() - start
    dense = net.to_dense().numpy().reshape(array.shape)
    peak = 1.0 if kind in ("image", "video") else float(np.abs(array).max())
    report: dict[str, Any] = {
        "file": str(file),
        "kind": kind,
        "reshape": plan.to_dict(),
        "entries": int(array.size),
        "n_params": net.n_params,
        "compression": array.size / net.n_params,
        "rse": net.rse,
        "psnr_db": psnr(array, dense, peak),
        "edges": [[i, j, r] for (i, j), r in net.edges.items()],
        "modes_per_node": [list(m) for m in net.modes],
        "steps": len(net.path),
        "fits": net.n_fits,
        "seconds": seconds,
    }
    if mask is not None:
        hidden = ~mask.reshape(array.shape)
        report["missing"] = missing
        report["hidden_rse"] = float(
            np.linalg.norm((dense - array)[hidden]) / np.linalg.norm(array[hidden])
        )
        report["hidden_psnr_db"] = psnr(array[hidden], dense[hidden], peak)
    out.mkdir(parents=True, exist_ok=True)
    io.save(net, out / "network.tnml", metadata={"reshape": plan.to_dict()})
    plot_network_graph(net, out / "graph.png")
    plot_structure_path(net, out / "path.png")
    if kind == "image":
        _save_image(np.clip(dense, 0, 1), out / "reconstruction.png")
    text = json.dumps(report, indent=1, allow_nan=False)
    atomic_write(out / "report.json", lambda tmp: Path(tmp).write_text(text))
    return report


def _save_image(image: np.ndarray, path: Path) -> None:
    from PIL import Image

    data = (image * 255).round().astype(np.uint8)
    atomic_write(path, lambda tmp: Image.fromarray(data).save(tmp, format="PNG"))
