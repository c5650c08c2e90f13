"""Preprocessing: image resizing (block averaging, padding), flattening, [0, 1] scaling, splits.

All functions take and return NumPy arrays and never modify their input.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral, Real

import numpy as np
from sklearn.model_selection import train_test_split

from tnml.data.tabular import check_array_2d
from tnml.exceptions import InvalidInputError

__all__ = [
    "check_scalable",
    "downsample",
    "flatten_images",
    "pad_to",
    "scale_unit",
    "train_val_split",
]


def _check_images(images: object, name: str = "images") -> np.ndarray:
    arr = np.asarray(images)
    if arr.ndim != 3:
        raise InvalidInputError(
            f"{name} must be 3D of shape (n_images, height, width), got shape {arr.shape}; "
            "reshape flat images first, e.g. X.reshape(-1, 28, 28)"
        )
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise InvalidInputError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    return arr


def _check_size(size: object, name: str = "size") -> tuple[int, int]:
    if isinstance(size, Integral) and not isinstance(size, bool):
        h = w = int(size)
    elif (
        isinstance(size, Sequence)
        and len(size) == 2
        and all(isinstance(s, Integral) and not isinstance(s, bool) for s in size)
    ):
        h, w = int(size[0]), int(size[1])
    else:
        raise InvalidInputError(
            f"{name} must be a positive int or a pair (height, width), got {size!r}"
        )
    if h < 1 or w < 1:
        raise InvalidInputError(f"{name} must be positive, got {size!r}")
    return h, w


def _divisors(n: int) -> str:
    return ", ".join(str(k) for k in range(1, n + 1) if n % k == 0)


def downsample(images: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Shrink images by averaging non-overlapping blocks of pixels.

    For example 28x28 -> 14x14 averages 2x2 blocks (the usual MNIST reduction to 196 sites).

    Parameters
    ----------
    images : np.ndarray, shape (n, H, W)
        The images.
    size : int or (int, int)
        Output height and width ``(h, w)`` (an int means square). ``h`` must divide ``H``
        and ``w`` must divide ``W``.

    Returns
    -------
    np.ndarray, shape (n, h, w)
        Block means; floating input keeps its dtype, integer input gives float64.

    Raises
    ------
    InvalidInputError
        If ``images`` is not 3D or ``size`` does not divide the image size (the message
        lists the allowed sizes).

    Examples
    --------
    >>> import numpy as np
    >>> downsample(np.ones((2, 28, 28), dtype=np.float32), 14).shape
    (2, 14, 14)
    """
    arr = _check_images(images)
    h, w = _check_size(size)
    n, H, W = arr.shape
    if H % h or W % w:
        if H == W:
            allowed = f"divisors of {H}: {_divisors(H)}"
        else:
            allowed = f"heights dividing {H} ({_divisors(H)}), widths dividing {W} ({_divisors(W)})"
        raise InvalidInputError(
            f"size={size!r} does not evenly divide the {H}x{W} images; allowed: {allowed}"
        )
    dtype = arr.dtype if np.issubdtype(arr.dtype, np.floating) else np.float64
    blocks = arr.reshape(n, h, H // h, w, W // w)
    return blocks.mean(axis=(2, 4), dtype=dtype)


def pad_to(images: np.ndarray, size: int | tuple[int, int]) -> np.ndarray:
    """Pad images with zeros on all sides, centred, up to ``size``.

    Useful to reach a power-of-two grid, e.g. MNIST 28x28 -> 32x32 for a tree over 16x16
    blocks. When the padding is odd, the extra row/column goes at the bottom/right.

    Parameters
    ----------
    images : np.ndarray, shape (n, H, W)
        The images.
    size : int or (int, int)
        Output height and width ``(h, w)`` with ``h >= H`` and ``w >= W``.

    Returns
    -------
    np.ndarray, shape (n, h, w)
        Padded copy, same dtype as ``images``.

    Raises
    ------
    InvalidInputError
        If ``images`` is not 3D or ``size`` is smaller than the images.
    """
    arr = _check_images(images)
    h, w = _check_size(size)
    _, H, W = arr.shape
    if h < H or w < W:
        raise InvalidInputError(
            f"size={size!r} is smaller than the {H}x{W} images; pad_to only grows images "
            "(use downsample to shrink them)"
        )
    top, left = (h - H) // 2, (w - W) // 2
    return np.pad(arr, ((0, 0), (top, h - H - top), (left, w - W - left)))


def flatten_images(images: np.ndarray) -> np.ndarray:
    """Flatten each image to a row vector in row-major (C) order.

    .. rubric:: Shape

    - Input: ``(n, H, W)`` (or any ``(n, ...)``)
    - Output: ``(n, H * W)``
    """
    arr = np.asarray(images)
    if arr.ndim < 2:
        raise InvalidInputError(
            f"images must have shape (n_images, height, width), got shape {arr.shape}"
        )
    return arr.reshape(len(arr), -1)


def check_scalable(
    low: np.ndarray, high: np.ndarray, feature_names: Sequence[str] | None = None
) -> None:
    """Refuse a feature whose range ``high - low`` (shapes (n_features,)) overflows float64,
    naming it; such a column cannot be min-max scaled to [0, 1]."""
    with np.errstate(over="ignore"):
        too_wide = ~np.isfinite(np.asarray(high, dtype=np.float64) - low)
    if too_wide.any():
        j = int(np.argmax(too_wide))
        name = feature_names[j] if feature_names is not None else j
        raise InvalidInputError(
            f"feature {name} spans [{low[j]:.4g}, {high[j]:.4g}], a range that overflows "
            "float64 when scaled to [0, 1]; rescale or clip that column"
        )


def scale_unit(
    X: np.ndarray,
    data_min: np.ndarray | None = None,
    data_max: np.ndarray | None = None,
    *,
    feature_names: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Min-max scale every feature to ``[0, 1]``, the range the feature maps need.

    Fit on training data by leaving ``data_min`` and ``data_max`` out; apply the same scaling
    to new data by passing the values returned for the training data. Constant features map
    to 0, and values outside the fitted range are clipped to ``[0, 1]``.

    Parameters
    ----------
    X : np.ndarray, shape (n_samples, n_features)
        Finite feature values.
    data_min, data_max : np.ndarray of shape (n_features,), optional
        Per-feature range to scale with; both or neither.
    feature_names : sequence of str, optional
        Names used in messages instead of column numbers.

    Returns
    -------
    X_scaled : np.ndarray, shape (n_samples, n_features)
        Scaled copy in ``[0, 1]`` (float32 input stays float32, else float64).
    data_min, data_max : np.ndarray, shape (n_features,)
        The range used.

    Examples
    --------
    >>> import numpy as np
    >>> Xs, lo, hi = scale_unit(np.array([[0.0, 5.0], [2.0, 5.0]]))
    >>> Xs.tolist()
    [[0.0, 0.0], [1.0, 0.0]]
    """
    X = check_array_2d(X)
    if (data_min is None) != (data_max is None):
        raise InvalidInputError("data_min and data_max must be given together (or both None)")
    if data_min is None:
        if len(X) == 0:
            raise InvalidInputError("X has no rows; cannot fit a min-max scaling")
        lo, hi = X.min(axis=0), X.max(axis=0)
        check_scalable(lo, hi, feature_names)
    else:
        lo = np.asarray(data_min, dtype=X.dtype)
        hi = np.asarray(data_max, dtype=X.dtype)
        for name, v in (("data_min", lo), ("data_max", hi)):
            if v.shape != (X.shape[1],):
                raise InvalidInputError(
                    f"{name} must have shape ({X.shape[1]},) to match X, got {v.shape}"
                )
        if (hi < lo).any():
            j = int(np.argmax(hi < lo))
            raise InvalidInputError(f"data_max < data_min for feature {j}: {hi[j]} < {lo[j]}")
    span = hi - lo
    safe = np.where(span > 0, span, 1).astype(X.dtype)
    scaled = np.where(span > 0, (X - lo) / safe, 0).astype(X.dtype)
    return np.clip(scaled, 0, 1), lo.copy(), hi.copy()


def train_val_split(
    X: np.ndarray,
    y: np.ndarray | None,
    val_fraction: float = 0.1,
    *,
    stratify: bool = True,
    random_state: int | np.random.RandomState | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Split data into a training part and a held-out validation part.

    Parameters
    ----------
    X : array-like, shape (n_samples, ...)
        Features (any trailing shape, e.g. images).
    y : array-like of shape (n_samples,), or None
        Labels; ``None`` for unlabelled data (then ``stratify`` is ignored and the returned
        labels are ``None``).
    val_fraction : float, default=0.1
        Fraction of samples held out, in ``[0, 1)``. ``0`` disables validation: ``X`` and ``y``
        come back as they are (unshuffled, not copied) with empty validation arrays.
    stratify : bool, default=True
        Keep the class proportions of ``y`` in both parts.
    random_state : int, np.random.RandomState or None, default=None
        Seed of the shuffle; the same seed gives the same split.

    Returns
    -------
    X_train, X_val, y_train, y_val : np.ndarray
        ``X_val`` has ``ceil(val_fraction * n_samples)`` rows.

    Raises
    ------
    InvalidInputError
        If ``val_fraction`` is outside ``[0, 1)``, ``X`` and ``y`` differ in length, or a
        stratified split is impossible (a class with fewer than 2 samples, or fewer validation
        samples than classes).
    """
    X = np.asarray(X)
    y = None if y is None else np.asarray(y)
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, Real):
        raise InvalidInputError(f"val_fraction must be a number in [0, 1), got {val_fraction!r}")
    if not 0 <= val_fraction < 1:
        raise InvalidInputError(f"val_fraction must lie in [0, 1), got {val_fraction!r}")
    if X.ndim == 0:
        raise InvalidInputError("X must have shape (n_samples, ...), got a scalar")
    n = len(X)
    if y is not None and len(y) != n:
        raise InvalidInputError(f"X and y differ in length: {n} != {len(y)}")
    if val_fraction == 0:
        return X, X[:0], y, None if y is None else y[:0]
    n_val = int(np.ceil(val_fraction * n))
    if n_val >= n:
        raise InvalidInputError(
            f"val_fraction={val_fraction} leaves no training samples out of {n}; use a smaller "
            "val_fraction"
        )
    use_strata = stratify and y is not None
    if use_strata:
        classes, counts = np.unique(y, return_counts=True)
        if counts.min() < 2:
            rare = classes[int(np.argmin(counts))]
            raise InvalidInputError(
                f"y has only 1 sample of class {rare!r}; a stratified split needs at least 2 per "
                "class (pass stratify=False)"
            )
        if n_val < len(classes) or n - n_val < len(classes):
            raise InvalidInputError(
                f"val_fraction={val_fraction} gives {n_val} validation and {n - n_val} training "
                f"samples, fewer than the {len(classes)} classes a stratified split needs in "
                "each (change val_fraction or pass stratify=False)"
            )
    arrays = [X] if y is None else [X, y]
    parts = train_test_split(
        *arrays,
        test_size=n_val,
        random_state=random_state,
        stratify=y if use_strata else None,
    )
    if y is None:
        return parts[0], parts[1], None, None
    return parts[0], parts[1], parts[2], parts[3]
