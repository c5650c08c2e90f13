"""Image data sets: MNIST from its IDX files, and scikit-learn's embedded 8x8 digits.

Loaders return NumPy arrays -- images as float32 in ``[0, 1]`` with shape ``(n, H, W)`` and
labels as int64 with shape ``(n,)`` -- that feed scikit-learn directly and torch through
``torch.from_numpy``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from tnml.data.idx import read_idx
from tnml.exceptions import DataFileError, InvalidInputError

__all__ = ["MNIST_ENV_VAR", "find_mnist_dir", "load_digits", "load_mnist"]

MNIST_ENV_VAR = "TNML_MNIST_DIR"
"""Environment variable that :func:`find_mnist_dir` checks first."""

_MNIST_PREFIX = {"train": "train", "test": "t10k"}


def _mnist_names(prefix: str, kind: str, ndim: int) -> list[str]:
    """Accepted file names, in order of preference, e.g. ``t10k-labels-idx1-ubyte.gz``."""
    stems = [f"{prefix}-{kind}-idx{ndim}-ubyte", f"{prefix}-{kind}.idx{ndim}-ubyte"]
    return [stem + suffix for stem in stems for suffix in (".gz", "")]


def _find_file(directory: Path, prefix: str, kind: str, ndim: int) -> Path:
    names = _mnist_names(prefix, kind, ndim)
    for name in names:
        if (directory / name).is_file():
            return directory / name
    raise DataFileError(
        f"MNIST {kind} file not found in {directory}: expected {names[0]} "
        f"(or {', '.join(names[1:])})"
    )


def load_mnist(
    directory: str | os.PathLike[str], split: str = "train"
) -> tuple[np.ndarray, np.ndarray]:
    """Load the MNIST train or test split from the standard IDX files in ``directory``.

    The files may be plain or gzip-compressed and use the standard names
    (``train-images-idx3-ubyte.gz``, ``t10k-labels-idx1-ubyte`` ...) or the dotted variant
    (``train-images.idx3-ubyte``).

    Parameters
    ----------
    directory : str or path-like
        Folder holding the four MNIST files (see :func:`find_mnist_dir`).
    split : {"train", "test"}, default="train"
        Which split to load.

    Returns
    -------
    images : np.ndarray of float32, shape (n, 28, 28)
        Pixel intensities scaled to ``[0, 1]``.
    labels : np.ndarray of int64, shape (n,)
        Digit labels 0-9.

    Raises
    ------
    InvalidInputError
        If ``split`` is not "train" or "test".
    DataFileError
        If the directory or a file is missing or corrupt, or the image and label counts differ.

    Examples
    --------
    >>> images, labels = load_mnist(find_mnist_dir(), "test")  # doctest: +SKIP
    >>> images.shape, labels.shape  # doctest: +SKIP
    ((10000, 28, 28), (10000,))
    """
    if split not in _MNIST_PREFIX:
        raise InvalidInputError(f"split must be 'train' or 'test', got {split!r}")
    directory = Path(directory)
    prefix = _MNIST_PREFIX[split]
    if not directory.is_dir():
        expected = ", ".join(
            f"{prefix}-{kind}-idx{ndim}-ubyte[.gz]" for kind, ndim in (("images", 3), ("labels", 1))
        )
        raise DataFileError(
            f"MNIST directory not found: {directory} (expected it to hold {expected}; "
            f"set {MNIST_ENV_VAR} or pass the folder that holds them)"
        )
    image_path = _find_file(directory, prefix, "images", 3)
    label_path = _find_file(directory, prefix, "labels", 1)
    images, labels = read_idx(image_path), read_idx(label_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataFileError(
            f"{image_path} is not an MNIST image file: expected uint8 of shape (n, H, W), "
            f"got {images.dtype} of shape {images.shape}"
        )
    if labels.ndim != 1:
        raise DataFileError(
            f"{label_path} is not an MNIST label file: expected shape (n,), got {labels.shape}"
        )
    if len(images) != len(labels):
        raise DataFileError(
            f"MNIST {split} split in {directory} is inconsistent: {image_path.name} holds "
            f"{len(images)} images but {label_path.name} holds {len(labels)} labels"
        )
    return images.astype(np.float32) / np.float32(255), labels.astype(np.int64)


def find_mnist_dir(
    candidates: list[str | os.PathLike[str]] | None = None,
) -> Path | None:
    """Return the first existing directory among ``candidates``, or ``None``.

    Parameters
    ----------
    candidates : list of str or path-like, optional
        Folders to try in order. By default: ``$TNML_MNIST_DIR`` (if set),
        ``../shared/data/mnist`` relative to the working directory, then
        ``/work/shared/data/mnist``.

    Returns
    -------
    Path or None
        The first candidate that is a directory, or ``None`` (so tests and benchmarks can
        skip when MNIST is absent).
    """
    if candidates is None:
        candidates = []
        if os.environ.get(MNIST_ENV_VAR):
            candidates.append(os.environ[MNIST_ENV_VAR])
        candidates += [Path.cwd() / ".." / "shared" / "data" / "mnist", "/work/shared/data/mnist"]
    for candidate in candidates:
        path = Path(candidate)
        if path.is_dir():
            return path.resolve()
    return None


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """Load scikit-learn's 1,797 handwritten 8x8 digits (no download needed).

    Returns
    -------
    images : np.ndarray of float32, shape (1797, 8, 8)
        Pixel intensities (0-16 in the source) scaled to ``[0, 1]``.
    labels : np.ndarray of int64, shape (1797,)
        Digit labels 0-9.

    Examples
    --------
    >>> images, labels = load_digits()
    >>> images.shape, images.dtype, float(images.max())
    ((1797, 8, 8), dtype('float32'), 1.0)
    """
    from sklearn.datasets import load_digits as _sk_load_digits

    digits = _sk_load_digits()
    images = digits.images.astype(np.float32) / np.float32(16)
    return images, digits.target.astype(np.int64)
