"""Tabular data: CSV files with a header row, NumPy ``.npz`` / ``.npy`` files, and a 2D check.

Feature matrices come back as float64 arrays of shape ``(n_samples, n_features)``; targets as
int64 when every value is a whole number, float64 when every value is a number, else strings.
"""

from __future__ import annotations

import csv
import math
import os
import zipfile
from pathlib import Path

import numpy as np

from tnml.exceptions import DataFileError, InvalidInputError

__all__ = ["check_array_2d", "load_csv", "load_npz"]

# Cells read as a missing value (case-insensitive, after stripping whitespace).
MISSING_MARKERS = frozenset({"", "nan", "na", "n/a", "null", "none", "?"})


def _first_bad(mask: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argwhere(mask)[0])


def check_array_2d(X: object, name: str = "X") -> np.ndarray:
    """Return ``X`` as a finite floating-point array of shape ``(n_samples, n_features)``.

    float32 input stays float32; everything else becomes float64.

    Raises
    ------
    InvalidInputError
        If ``X`` is not numeric, not 2D, or holds NaN or inf (the message gives the first
        offending row and column).
    """
    try:
        arr = np.asarray(X)
        if arr.dtype != np.float32:
            arr = arr.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{name} must be a numeric array, got {exc}") from None
    if arr.ndim != 2:
        raise InvalidInputError(
            f"{name} must be 2D of shape (n_samples, n_features), got shape {arr.shape}; "
            "flatten images with tnml.data.flatten_images"
        )
    finite = np.isfinite(arr)
    if not finite.all():
        row, col = _first_bad(~finite)
        kind = "NaN" if np.isnan(arr[row, col]) else "inf"
        raise InvalidInputError(
            f"{name} contains {kind} at row {row}, column {col}; clean or impute the data first"
        )
    return arr


def _parse_target(values: list[str]) -> np.ndarray:
    try:
        numbers = np.array([float(v) for v in values], dtype=np.float64)
    except ValueError:
        return np.array(values, dtype=str)
    if not np.isfinite(numbers).all():
        return np.array(values, dtype=str)
    if (np.abs(numbers) >= 2.0**63).any():  # not int64: class names as written, none merged
        return np.array(values, dtype=str)
    if (numbers == np.round(numbers)).all():
        try:
            return np.array([int(v) for v in values], dtype=np.int64)
        except ValueError:  # integral floats written as "1.0"
            return numbers.astype(np.int64)
    return numbers


def load_csv(
    path: str | os.PathLike[str],
    target: str | None,
    *,
    delimiter: str = ",",
    drop: str | None = None,
    text_columns: bool = False,
) -> tuple[np.ndarray, np.ndarray | None, list[str]]:
    """Load a CSV file with a header row into a feature matrix and a target vector.

    Parameters
    ----------
    path : str or path-like
        The CSV file; the first row must name the columns.
    target : str or None
        Name of the target (label) column. Its values may be numbers or strings. None reads
        features only (``y`` is None).
    delimiter : str, default=","
        Field separator.
    drop : str, optional
        A column to ignore when present (e.g. a model's target column in a file to predict).
    text_columns : bool, default=False
        Keep columns of text (categories) as strings: ``X`` is then an object array whose
        numeric columns hold floats (what :class:`~tnml.MPSAnomalyDetector` takes). A numeric
        column with a missing or infinite cell is still an error.

    Returns
    -------
    X : np.ndarray of float64, shape (n_samples, n_features)
        Every column except ``target``, in file order (object dtype with ``text_columns``
        and a text column present).
    y : np.ndarray, shape (n_samples,)
        The target column: int64 if every value is a whole number, float64 if every value is
        a number, otherwise strings.
    feature_names : list of str
        Names of the columns of ``X``.

    Raises
    ------
    DataFileError
        If the file is missing, unreadable or empty.
    InvalidInputError
        If ``target`` is not a column, a row has the wrong number of fields, or a feature
        cell is missing or not a number (the message names the column and row).

    Examples
    --------
    >>> X, y, names = load_csv("iris.csv", target="species")  # doctest: +SKIP
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f, delimiter=delimiter)
            # (line number, fields), blank lines dropped
            rows = [(reader.line_num, row) for row in reader if row]
    except FileNotFoundError:
        raise DataFileError(f"CSV file not found: {path}") from None
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataFileError(f"cannot read CSV file {path}: {exc}") from None
    if not rows:
        raise DataFileError(f"CSV file {path} is empty; expected a header row and data rows")
    header = [name.strip() for name in rows[0][1]]
    _refuse_data_as_header(header, path.name)
    if target is not None and target not in header:
        raise InvalidInputError(
            f"target column {target!r} not found in {path.name}; columns are: {', '.join(header)}"
        )
    if target is not None and header.count(target) > 1:
        raise InvalidInputError(f"target column {target!r} appears more than once in {path.name}")
    data = rows[1:]
    if not data:
        raise InvalidInputError(f"{path.name} has a header but no data rows")
    feature_idx = [j for j, name in enumerate(header) if name not in (target, drop)]
    feature_names = [header[j] for j in feature_idx]
    twice = sorted({n for n in feature_names if feature_names.count(n) > 1})
    if twice:  # a model keeps its columns by name: two of one name cannot be told apart
        raise InvalidInputError(f"{path.name} has duplicate column names: {', '.join(twice)}")
    if not feature_idx:
        raise InvalidInputError(
            f"{path.name} has no feature columns besides the target column {target!r}"
        )
    for i, (line, row) in enumerate(data):
        if len(row) != len(header):
            raise InvalidInputError(
                f"row {i + 1} (line {line}) of {path.name} has {len(row)} fields but the "
                f"header has {len(header)}; check the delimiter (currently {delimiter!r})"
            )
    table = np.char.strip(np.asarray([row for _, row in data], dtype=str))
    X = _parse_features(table[:, feature_idx])
    if X is None and text_columns:
        X = _mixed_columns(table, data, header, feature_idx, path.name)
    if X is None:  # find the first bad cell to name it
        _raise_first_bad_cell(table, data, header, feature_idx, path.name)
    if target is None:
        return X, None, [header[j] for j in feature_idx]
    y_raw = table[:, header.index(target)]
    missing = np.isin(np.char.lower(y_raw), list(MISSING_MARKERS))
    if missing.any():
        i = int(np.argmax(missing))
        raise InvalidInputError(
            f"target column {target!r} is missing a value at row {i + 1} (line "
            f"{data[i][0]}) of {path.name}"
        )
    return X, _parse_target(y_raw.tolist()), [header[j] for j in feature_idx]


def _refuse_data_as_header(header: list[str], name: str) -> None:
    """A first row of numbers is data, not names: reading it as a header would drop a
    sample and shift every prediction by one. Column names ``0..n-1`` or ``1..n`` (what
    pandas writes for unnamed columns) remain a header."""
    try:
        values = [float(cell) for cell in header]
    except ValueError:
        return
    if values in (list(range(len(header))), list(range(1, len(header) + 1))):
        return
    shown = ", ".join(header[:4]) + (", ..." if len(header) > 4 else "")
    raise InvalidInputError(
        f"the first row of {name} holds numbers ({shown}), not column names: tnml reads CSV "
        "files with a header row; add one (e.g. x0,x1,...)"
    )


def _parse_features(cells: np.ndarray) -> np.ndarray | None:
    """``cells`` (n, F) of strings as float64, or None if any is missing or not finite."""
    if np.isin(np.char.lower(cells), list(MISSING_MARKERS)).any():
        return None
    try:
        X = cells.astype(np.float64)
    except ValueError:
        return None
    return X if np.isfinite(X).all() else None


def _mixed_columns(
    table: np.ndarray,
    data: list[tuple[int, list[str]]],
    header: list[str],
    feature_idx: list[int],
    name: str,
) -> np.ndarray:
    """The feature columns of ``table`` as an object array: numeric columns as floats, text
    columns (a cell that is neither a number nor missing) as strings. A missing cell, or an
    infinite one in a numeric column, is an error naming it."""
    columns = []
    for j in feature_idx:
        column = table[:, j]
        parsed = _parse_features(column[:, None])
        if parsed is not None:
            columns.append(parsed[:, 0].astype(object))
            continue
        missing = np.isin(np.char.lower(column), list(MISSING_MARKERS))
        text = False
        for cell in column[~missing]:
            try:
                float(cell)
            except ValueError:
                text = True
                break
        if missing.any() or not text:
            _raise_first_bad_cell(table, data, header, [j], name)
        columns.append(column.astype(object))
    return np.stack(columns, axis=1)


def _raise_first_bad_cell(
    table: np.ndarray,
    data: list[tuple[int, list[str]]],
    header: list[str],
    feature_idx: list[int],
    name: str,
) -> None:
    """Raise InvalidInputError naming the first feature cell that is missing or not a number."""
    for i, (line, _) in enumerate(data):
        where = f"row {i + 1} (line {line}) of {name}"
        for j in feature_idx:
            cell = str(table[i, j])
            if cell.lower() in MISSING_MARKERS:
                raise InvalidInputError(
                    f"X contains missing values: column {header[j]!r} is empty or NaN at "
                    f"{where}; clean or impute the data first"
                )
            try:
                value = float(cell)
            except ValueError:
                raise InvalidInputError(
                    f"column {header[j]!r} holds {cell!r} at {where}, which is not a number; "
                    "feature columns must be numeric (encode categories as integer codes)"
                ) from None
            if not math.isfinite(value):
                raise InvalidInputError(
                    f"X contains inf: column {header[j]!r} at {where}; feature values must be "
                    "finite"
                )
    raise AssertionError("unreachable: a bad cell was detected but not found")  # pragma: no cover


def _load_array(path: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataFileError(f"NumPy file not found: {path}") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataFileError(f"cannot read NumPy file {path}: {exc}") from None


def load_npz(
    path: str | os.PathLike[str], x_key: str = "X", y_key: str | None = "y"
) -> tuple[np.ndarray, np.ndarray | None]:
    """Load a feature matrix and targets from a ``.npz`` archive or a folder of ``.npy`` files.

    Parameters
    ----------
    path : str or path-like
        Either a ``.npz`` archive holding arrays ``x_key`` and ``y_key``, or a directory
        holding ``<x_key>.npy`` and ``<y_key>.npy``.
    x_key : str, default="X"
        Name of the feature array.
    y_key : str or None, default="y"
        Name of the target array; ``None`` for unlabelled data (``y`` is returned as None).

    Returns
    -------
    X : np.ndarray, shape (n_samples, ...)
        The feature array as stored.
    y : np.ndarray of shape (n_samples,), or None

    Raises
    ------
    DataFileError
        If the file or directory is missing or cannot be read.
    InvalidInputError
        If a key is missing (the message lists the keys present) or ``X`` and ``y`` differ
        in length.
    """
    path = Path(path)
    keys = [x_key] if y_key is None else [x_key, y_key]
    arrays: dict[str, np.ndarray] = {}
    if path.is_dir():
        present = sorted(p.stem for p in path.glob("*.npy"))
        for key in keys:
            if key not in present:
                raise InvalidInputError(
                    f"array {key!r} not found in {path}: expected {key}.npy; "
                    f".npy files there are: {', '.join(present) or 'none'}"
                )
            arrays[key] = _load_array(path / f"{key}.npy")
    else:
        archive = _load_array(path)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise DataFileError(
                f"{path} holds a single array, not an .npz archive; pass a .npz file or a "
                f"directory holding {x_key}.npy and {y_key}.npy"
            )
        with archive:
            for key in keys:
                if key not in archive.files:
                    raise InvalidInputError(
                        f"key {key!r} not found in {path.name}; keys are: "
                        f"{', '.join(archive.files) or 'none'}"
                    )
                try:
                    arrays[key] = archive[key]
                except (OSError, ValueError, zipfile.BadZipFile) as exc:
                    raise DataFileError(f"cannot read {key!r} from {path}: {exc}") from None
    X = arrays[x_key]
    y = None if y_key is None else arrays[y_key]
    if y is not None and len(X) != len(y):
        raise InvalidInputError(
            f"{x_key} and {y_key} in {path.name} differ in length: {len(X)} != {len(y)}"
        )
    return X, y
