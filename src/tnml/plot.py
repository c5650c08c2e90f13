"""Matplotlib figures: entropy profiles, mutual information, importance maps, image grids, curves.

Every function builds a :class:`matplotlib.figure.Figure` directly (the Agg renderer, no
``pyplot``), so nothing global changes, no window opens and figures are freed like any
other object. Each returns the figure and, when ``path`` is given, writes it as a PNG
atomically (a temporary file in the same folder, then ``os.replace``), so an interrupted
write never leaves half an image behind. matplotlib is imported only when a function is
called; without it the functions raise :class:`ImportError` saying how to install it.
"""

from __future__ import annotations

import math
import numbers
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tnml._files import atomic_write
from tnml.exceptions import InvalidInputError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from tnml.explain.entropy import EntropyProfile

__all__ = [
    "plot_entropy_profile",
    "plot_importance_map",
    "plot_mutual_information",
    "plot_network_graph",
    "plot_structure_path",
    "plot_training_curves",
    "save_image_grid",
]

PathLike = str | os.PathLike[str]


def _require_matplotlib() -> None:
    """Import matplotlib (lazily), or raise an ImportError that says how to install it."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as err:
        raise ImportError(
            "tnml.plot needs matplotlib: install it with `pip install matplotlib` "
            "(or `pip install tnml[plot]`)"
        ) from err


def _figure(**kwargs: Any) -> Figure:
    """A new figure drawn by the Agg renderer, not registered with pyplot."""
    _require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def _write(fig: Figure, path: PathLike | None, **savefig_kwargs: Any) -> None:
    """Write ``fig`` as a PNG at ``path`` atomically (nothing when ``path`` is None)."""
    if path is None:
        return
    if not isinstance(path, (str, os.PathLike)):
        raise InvalidInputError(f"path must be a str or path-like, got {type(path).__name__}")
    atomic_write(Path(path), lambda tmp: fig.savefig(tmp, format="png", **savefig_kwargs))


def _as_array(name: str, value: Any, ndim: tuple[int, ...]) -> np.ndarray:
    """``value`` as a finite float64 array with one of the given numbers of axes."""
    if hasattr(value, "detach"):  # torch tensor
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise InvalidInputError(f"{name} must be an array of numbers: {err}") from None
    if arr.ndim not in ndim:
        raise InvalidInputError(
            f"{name} must have {' or '.join(map(str, ndim))} axes, got shape {arr.shape}"
        )
    if arr.size == 0:
        raise InvalidInputError(f"{name} must not be empty, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise InvalidInputError(f"{name} must be finite (it holds NaN or inf)")
    return arr


def plot_entropy_profile(
    profile: EntropyProfile, path: PathLike | None = None, *, title: str | None = None
) -> Figure:
    """Entanglement entropy along the chain: von Neumann, Renyi-2 and the ``log D`` bound.

    Parameters
    ----------
    profile : EntropyProfile
        From :func:`tnml.explain.entanglement_entropy`.
    path : str or path-like, optional
        Where to write the PNG.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    for attr in ("bonds", "von_neumann", "renyi2", "bond_dims"):
        if not hasattr(profile, attr):
            raise InvalidInputError(
                f"profile must be an EntropyProfile (from tnml.explain.entanglement_entropy), "
                f"got {type(profile).__name__}"
            )
    bonds = np.asarray(profile.bonds)
    order = np.argsort(bonds, kind="stable")
    x = bonds[order]
    fig = _figure(figsize=(7.0, 3.5), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(x, np.asarray(profile.von_neumann)[order], marker=".", label="von Neumann")
    ax.plot(x, np.asarray(profile.renyi2)[order], marker=".", label="Renyi-2")
    bound = np.log(np.asarray(profile.bond_dims, dtype=np.float64))[order]
    ax.step(x, bound, where="mid", color="0.6", linestyle="--", label="log(bond dim)")
    tree = getattr(profile, "edges", None) is not None
    ax.set_xlabel(
        "tree edge (leaf legs 0 .. N-1, then node bonds bottom-up)"
        if tree
        else "bond (between sites b and b + 1)"
    )
    ax.set_ylabel("entropy (nats)")
    ax.set_ylim(bottom=0)
    ax.legend(loc="best", fontsize="small")
    default = (
        "Entanglement entropy across the tree" if tree else "Entanglement entropy along the chain"
    )
    ax.set_title(title or default)
    _write(fig, path, dpi=120)
    return fig


def plot_mutual_information(
    mi: Any,
    path: PathLike | None = None,
    *,
    title: str | None = None,
    cmap: str = "viridis",
) -> Figure:
    """The mutual-information matrix ``I(i:j)`` as an image with a colour bar.

    Parameters
    ----------
    mi : array-like, shape (N, N)
        From :func:`tnml.explain.mutual_information`.
    path : str or path-like, optional
        Where to write the PNG.
    title : str, optional
    cmap : str, default="viridis"

    Returns
    -------
    matplotlib.figure.Figure
    """
    arr = _as_array("mi", mi, (2,))
    if arr.shape[0] != arr.shape[1]:
        raise InvalidInputError(f"mi must be a square (N, N) matrix, got shape {arr.shape}")
    fig = _figure(figsize=(5.5, 4.5), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(arr, cmap=cmap, interpolation="nearest", vmin=min(0.0, arr.min()))
    fig.colorbar(image, ax=ax, label="I(i:j) (nats)")
    ax.set_xlabel("site j")
    ax.set_ylabel("site i")
    ax.set_title(title or "Mutual information between sites")
    _write(fig, path, dpi=120)
    return fig


def plot_importance_map(
    importance: Any,
    image_shape: tuple[int, int],
    path: PathLike | None = None,
    *,
    image: Any = None,
    title: str | None = None,
) -> Figure:
    """Each pixel's importance as a heat map on the image grid.

    Signed importances use a diverging colour map centred on 0 (red raises the class's
    probability, blue lowers it); non-negative ones (e.g. mean absolute importance) a
    sequential one.

    Parameters
    ----------
    importance : array-like, shape (n_features,)
        One value per pixel in row-major order, e.g. a row of
        :func:`tnml.explain.feature_importance` or its ``reduce="mean_abs"`` output.
    image_shape : (int, int)
        ``(height, width)`` with ``height * width = n_features``.
    path : str or path-like, optional
        Where to write the PNG.
    image : array-like of shape (n_features,) or image_shape, optional
        The input image, drawn in grey next to the map.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    values = _as_array("importance", importance, (1, 2)).reshape(-1)
    shape = _image_shape(image_shape, values.size)
    grid = values.reshape(shape)
    panels = 1 if image is None else 2
    fig = _figure(figsize=(3.6 * panels + 0.8, 3.6), layout="constrained")
    axes = [fig.add_subplot(1, panels, i + 1) for i in range(panels)]
    if image is not None:
        pixels = _as_array("image", image, (1, 2)).reshape(-1)
        if pixels.size != values.size:
            raise InvalidInputError(
                f"image must have {values.size} pixels like importance, got {pixels.size}"
            )
        axes[0].imshow(pixels.reshape(shape), cmap="gray", interpolation="nearest")
        axes[0].set_title("input")
        axes[0].set_axis_off()
    ax = axes[-1]
    if values.min() < 0:
        limit = float(np.abs(values).max()) or 1.0
        heat = ax.imshow(grid, cmap="RdBu_r", vmin=-limit, vmax=limit, interpolation="nearest")
    else:
        heat = ax.imshow(grid, cmap="magma", vmin=0, interpolation="nearest")
    fig.colorbar(heat, ax=ax, label="importance")
    ax.set_axis_off()
    ax.set_title(title or "Feature importance")
    _write(fig, path, dpi=120)
    return fig


def _image_shape(image_shape: Any, n_pixels: int) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in image_shape)
    except (TypeError, ValueError):
        raise InvalidInputError(
            f"image_shape must be (height, width), got {image_shape!r}"
        ) from None
    if height < 1 or width < 1 or height * width != n_pixels:
        raise InvalidInputError(
            f"image_shape {(height, width)} must hold the {n_pixels} values exactly"
        )
    return height, width


def save_image_grid(
    images: Any,
    path: PathLike | None,
    n_cols: int = 8,
    *,
    scale: int = 4,
    pad: int = 1,
    cmap: str = "gray",
) -> Figure:
    """Tile images into one grid and write it as a PNG, pixel for pixel.

    Each image pixel becomes a ``scale x scale`` block (no interpolation, no axes), images
    are separated by ``pad`` pixels of mid grey, and empty cells of the last row are left grey.

    Parameters
    ----------
    images : array-like, shape (n, h, w) or (n, h, w, 3)
        Grey-scale (or RGB) images with values in [0, 1] (0 black, 1 white); values within
        ``1e-6`` outside are clipped as rounding noise. A torch tensor is accepted.
    path : str or path-like, or None
        Where to write the PNG (None: only return the figure).
    n_cols : int, default=8
        Images per row (fewer if there are fewer images).
    scale : int, default=4
        Screen pixels per image pixel.
    pad : int, default=1
        Separator width in image pixels.
    cmap : str, default="gray"
        Colour map of grey-scale images.

    Returns
    -------
    matplotlib.figure.Figure
        Of exactly ``scale * (rows * (h + pad) + pad)`` by
        ``scale * (cols * (w + pad) + pad)`` pixels.

    Raises
    ------
    InvalidInputError
        Wrong shape, no images, NaN or values outside [0, 1], or invalid ``n_cols`` /
        ``scale`` / ``pad``.
    """
    arr = _as_array("images", images, (3, 4))
    if arr.ndim == 4 and arr.shape[-1] != 3:
        raise InvalidInputError(
            f"images must have shape (n, h, w) or (n, h, w, 3), got {arr.shape}"
        )
    lo, hi = float(arr.min()), float(arr.max())
    if lo < -1e-6 or hi > 1 + 1e-6:
        raise InvalidInputError(f"images must lie in [0, 1], found values in [{lo:.4g}, {hi:.4g}]")
    arr = np.clip(arr, 0.0, 1.0)
    for name, value, low in (("n_cols", n_cols, 1), ("scale", scale, 1), ("pad", pad, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise InvalidInputError(f"{name} must be an integer >= {low}, got {value!r}")
    n, h, w = arr.shape[:3]
    cols = min(int(n_cols), n)
    rows = math.ceil(n / cols)
    channels = arr.shape[3:]
    height, width = rows * (h + pad) + pad, cols * (w + pad) + pad
    if arr.ndim == 3 and cmap == "gray":
        arr = np.repeat(arr[..., None], 3, axis=-1)  # exact grey levels, no 256-entry LUT
        channels = (3,)
    elif arr.ndim == 3:
        _require_matplotlib()
        from matplotlib import colormaps

        arr = colormaps[cmap](arr)[..., :3]
        channels = (3,)
    canvas = np.full((height, width, *channels), 0.5)
    for i in range(n):
        r, c = divmod(i, cols)
        top, left = pad + r * (h + pad), pad + c * (w + pad)
        canvas[top : top + h, left : left + w] = arr[i]
    canvas = np.rint(canvas * 255).astype(np.uint8)  # rounded, not truncated, to 8 bits
    canvas = np.repeat(np.repeat(canvas, scale, axis=0), scale, axis=1)
    dpi = 100
    fig = _figure(figsize=(canvas.shape[1] / dpi, canvas.shape[0] / dpi), dpi=dpi)
    fig.figimage(canvas, xo=0, yo=0, origin="upper", resize=False)
    _write(fig, path, dpi=dpi)
    return fig


def plot_noise_curve(
    levels: Any,
    accuracies: Any,
    path: PathLike | None = None,
    *,
    noiseless: float | None = None,
    label: str = "depolarizing",
    curve_labels: Any = None,
    title: str | None = None,
) -> Figure:
    """Accuracy of a circuit against the noise strength per gate (log x axis).

    Parameters
    ----------
    levels : array-like, shape (k,)
        Noise strengths, > 0.
    accuracies : array-like, shape (k,) or (m, k)
        One curve, or ``m`` curves (e.g. one per schedule or digit pair).
    path : str or path-like, optional
        Where to write the PNG.
    noiseless : float, optional
        Drawn as a horizontal reference line.
    label : str, default="depolarizing"
        The noise channel, for the axis label.
    curve_labels : sequence of str, optional
        Legend entry of each curve.

    Returns
    -------
    matplotlib.figure.Figure
    """
    x = _as_array("levels", levels, (1,))
    if np.any(x <= 0):
        raise InvalidInputError("levels must be > 0 (the axis is logarithmic)")
    y = _as_array("accuracies", accuracies, (1, 2))
    curves = y[None] if y.ndim == 1 else y
    if curves.shape[1] != x.shape[0]:
        raise InvalidInputError(
            f"accuracies must have {x.shape[0]} columns (one per level), got shape {y.shape}"
        )
    fig = _figure(figsize=(6.0, 3.8), layout="constrained")
    ax = fig.add_subplot()
    if curve_labels is not None and len(curve_labels) != curves.shape[0]:
        raise InvalidInputError(
            f"curve_labels must name the {curves.shape[0]} curves, got {len(curve_labels)}"
        )
    for i, curve in enumerate(curves):
        name = None if curves.shape[0] == 1 else f"curve {i}"
        if curve_labels is not None:
            name = str(curve_labels[i])
        ax.plot(x, curve, marker="o", label=name)
    if noiseless is not None:
        ax.axhline(noiseless, color="0.6", linestyle="--", label="noiseless")
    ax.set_xscale("log")
    ax.set_xlabel(f"{label} error per gate")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.02)
    if noiseless is not None or curves.shape[0] > 1 or curve_labels is not None:
        ax.legend(loc="lower left", fontsize="small")
    ax.set_title(title or f"Circuit accuracy under {label} noise")
    _write(fig, path, dpi=120)
    return fig


def plot_network_graph(
    network: Any, path: PathLike | None = None, *, title: str | None = None
) -> Figure:
    """A tensor network's graph: nodes on a circle, edges labelled by their ranks.

    Parameters
    ----------
    network : tnml.tensor.network.TensorNetwork
        Rank-1 edges are not drawn. Nodes with open modes are labelled ``mode:dim``; nodes
        without (internal nodes) are drawn as squares.
    path : str or path-like, optional
        Where to write the PNG.

    Returns
    -------
    matplotlib.figure.Figure
    """
    if not hasattr(network, "edges") or not hasattr(network, "modes"):
        raise InvalidInputError(f"network must be a TensorNetwork, got {type(network).__name__}")
    n = len(network.modes)
    angles = 2 * np.pi * np.arange(n) / n + np.pi / 2
    xy = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    fig = _figure(figsize=(5.0, 5.0), layout="constrained")
    ax = fig.add_subplot()
    edges = network.edges
    top = max(edges.values(), default=2)
    for (i, j), rank in edges.items():
        width = 1.0 + 3.0 * math.log(rank) / math.log(max(top, 2))
        ax.plot(*zip(xy[i], xy[j], strict=True), color="0.4", linewidth=width, zorder=1)
        mid = (xy[i] + xy[j]) / 2
        ax.text(
            *mid,
            str(rank),
            ha="center",
            va="center",
            fontsize=9,
            bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none"},
            zorder=3,
        )
    for node, modes in enumerate(network.modes):
        marker = "o" if modes else "s"
        ax.scatter(
            *xy[node], s=700, marker=marker, color="#4c72b0" if modes else "#dd8452", zorder=2
        )
        label = "\n".join(f"{m}:{network.shape[m]}" for m in modes) or f"n{node}"
        ax.text(*xy[node], label, ha="center", va="center", color="white", fontsize=8, zorder=4)
    ax.set_xlim(-1.35, 1.35)
    ax.set_ylim(-1.35, 1.35)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title or f"{network.n_params} parameters")
    _write(fig, path, dpi=120)
    return fig


def plot_structure_path(
    steps: Any,
    path: PathLike | None = None,
    *,
    baselines: dict[str, Any] | None = None,
    title: str | None = None,
) -> Figure:
    """Relative error against parameters along a structure search, with optional baselines.

    Parameters
    ----------
    steps : sequence of StructureStep, or a LearnedNetwork (its ``path``)
    path : str or path-like, optional
        Where to write the PNG.
    baselines : dict of name -> sequence of (n_params, rse), optional
        Other decompositions to draw beside the search (e.g. CP, Tucker, TT, TR).

    Returns
    -------
    matplotlib.figure.Figure
    """
    steps = getattr(steps, "path", steps)
    try:
        # an exact fit (rse 0) is drawn at the float64 floor of the log axis
        points = np.array([(s.n_params, max(s.rse, 1e-16)) for s in steps], dtype=float)
    except (TypeError, AttributeError):
        raise InvalidInputError("steps must be a LearnedNetwork or its path of steps") from None
    if points.size == 0:
        raise InvalidInputError("steps must hold at least one step")
    fig = _figure(figsize=(6.0, 3.8), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(points[:, 0], points[:, 1], marker=".", label="greedy structure search")
    for name, curve in (baselines or {}).items():
        curve = np.asarray(curve, dtype=float).reshape(-1, 2)
        ax.plot(curve[:, 0], curve[:, 1], marker="o", markersize=3, label=name)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel("relative error")
    ax.legend(fontsize="small")
    ax.set_title(title or "Error against parameters")
    _write(fig, path, dpi=120)
    return fig


def plot_training_curves(
    histories: Any,
    path: PathLike | None = None,
    *,
    unit: str = "epoch",
    title: str | None = None,
) -> Figure:
    """Training and validation error (1 - accuracy, log axis) per epoch or sweep.

    Parameters
    ----------
    histories : list of dict, or dict of name -> list of dict
        One run's history (an estimator's ``history_``, entries with ``train_accuracy``
        and ``val_accuracy``) or several, named for the legend. Validation is drawn solid,
        training dashed in the same colour; missing or NaN values are skipped.
    path : str or path-like, optional
        Where to write the PNG.
    unit : str, default="epoch"
        What one history entry is, for the axis label (``"sweep"`` for sweeps).

    Returns
    -------
    matplotlib.figure.Figure
    """
    runs = histories if isinstance(histories, dict) else {"": histories}
    fig = _figure(figsize=(6.0, 3.8), layout="constrained")
    ax = fig.add_subplot()
    drawn = 0
    for i, (name, history) in enumerate(runs.items()):
        if isinstance(history, (str, bytes)) or not hasattr(history, "__iter__"):
            raise InvalidInputError(
                f"histories must be lists of per-epoch dicts, got {type(history).__name__}"
            )
        colour = f"C{i % 10}"
        for key, style, part in (
            ("val_accuracy", "-", "validation"),
            ("train_accuracy", "--", "training"),
        ):
            points = [
                (j + 1, 1.0 - float(entry[key]))
                for j, entry in enumerate(history)
                if isinstance(entry, dict)
                and isinstance(entry.get(key), numbers.Real)
                and math.isfinite(entry[key])
            ]
            if not points:
                continue
            xs, ys = zip(*points, strict=True)
            label = f"{name} {part}".strip()
            ax.plot(xs, [max(y, 1e-5) for y in ys], style, color=colour, marker="o", label=label)
            drawn += 1
    if drawn == 0:
        raise InvalidInputError("histories hold no train_accuracy or val_accuracy values")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_yscale("log")
    ax.set_xlabel(unit)
    ax.set_ylabel("error (1 - accuracy; 0 drawn at 1e-5)")
    ax.legend(fontsize="small")
    ax.set_title(title or f"Error per {unit}")
    _write(fig, path, dpi=120)
    return fig
