"""Datasets by name (digits, mnist, csv), turned into arrays a model can take, as ``tnml`` does.

Pure functions over :mod:`tnml.data`. Training data come back with a *preprocessing record*
(image size and downsampling, or the tabular feature names and target) that is saved with the
model, so that ``tnml evaluate`` and ``tnml predict`` apply exactly the same preprocessing.

Every check on the user's data happens here, before a model sees it: a wrong image size, a
missing column or a NaN gives a :class:`~tnml.exceptions.TnmlError` whose message names the
file, the column or the size the model expects -- never a tensor shape.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tnml import data as tnml_data
from tnml.data.preprocess import check_scalable
from tnml.estimators.born_machine import check_discrete
from tnml.exceptions import DataFileError, InvalidInputError
from tnml.preprocessing import ImageDownsampler, binarize

__all__ = [
    "BINARY_THRESHOLD",
    "DATASETS",
    "DEFAULT_SEED",
    "DEFAULT_TEST_FRACTION",
    "SPLITS",
    "EvaluationData",
    "ModelSpec",
    "TrainingData",
    "array_to_features",
    "check_dataset_args",
    "check_source_unchanged",
    "columns_by_name",
    "discretize",
    "file_sha256",
    "image_record",
    "image_shape",
    "is_born_machine",
    "load_evaluation_data",
    "load_prediction_input",
    "load_training_data",
    "prepare_images",
    "read_feature_csv",
    "split_indices",
    "split_part",
    "table_to_features",
]

DATASETS = ("digits", "mnist", "csv")
"""Dataset names the commands accept."""
SPLITS = ("test", "train", "all")
"""Parts of a dataset ``tnml evaluate`` can score."""
DEFAULT_TEST_FRACTION = 0.25
DEFAULT_SEED = 0
SEED_MAX = 2**32 - 1  # what NumPy and scikit-learn accept as a seed
BINARY_THRESHOLD = 0.5
"""Images become Born-machine levels 0/1 above this intensity."""


_IDX_NAME = re.compile(r"idx\d+-ubyte(\.gz)?$")

PathLike = str | os.PathLike[str]


# -- what a model expects -------------------------------------------------------------------
@dataclass(frozen=True)
class ModelSpec:
    """What a fitted model expects as input, read from its saved metadata.

    Attributes
    ----------
    n_features : int
        Number of input features (columns after preprocessing).
    metadata : dict
        The metadata ``tnml train`` saved with the model (empty for a model saved by the
        library without one): ``dataset``, ``source``, ``preprocessing``, ``split``, ...
    feature_names : list of str or None
        Names of the tabular feature columns, when the model has them.
    """

    n_features: int
    metadata: dict[str, Any] = field(default_factory=dict)
    feature_names: list[str] | None = None

    @classmethod
    def from_model(cls, model: Any) -> ModelSpec:
        """Read the spec of a fitted estimator loaded with :func:`tnml.io.load`."""
        metadata = dict(getattr(model, "metadata_", None) or {})
        prep = metadata.get("preprocessing") or {}
        names = prep.get("feature_names")
        if names is None and getattr(model, "feature_names_in_", None) is not None:
            names = [str(name) for name in model.feature_names_in_]
        return cls(int(model.n_features_in_), metadata, names)

    @property
    def preprocessing(self) -> dict[str, Any] | None:
        """The preprocessing record, or None for a model saved without one."""
        return self.metadata.get("preprocessing") or None

    @property
    def kind(self) -> str | None:
        """``"image"``, ``"tabular"`` or None (unknown)."""
        prep = self.preprocessing
        return None if prep is None else prep.get("kind")

    @property
    def target(self) -> str | None:
        """Name of the target column of a tabular model, if recorded."""
        prep = self.preprocessing or {}
        return prep.get("target")


def image_record(image_shape: Sequence[int], downsample: int | None) -> dict[str, Any]:
    """The preprocessing record of an image data set: original ``[H, W]`` and the downsampling."""
    height, width = (int(s) for s in image_shape)
    return {
        "kind": "image",
        "image_shape": [height, width],
        "downsample": None if downsample is None else int(downsample),
    }


def _final_shape(prep: dict[str, Any]) -> tuple[int, int]:
    height, width = prep["image_shape"]
    size = prep.get("downsample")
    return (int(height), int(width)) if size is None else (int(size), int(size))


def _describe_images(prep: dict[str, Any]) -> str:
    height, width = prep["image_shape"]
    h, w = _final_shape(prep)
    text = f"{height}x{width} images"
    if (h, w) != (height, width):
        text += f" downsampled to {h}x{w}"
    return f"{text} ({h * w} features)"


# -- argument checks ------------------------------------------------------------------------
def check_dataset_args(
    dataset: str,
    file: PathLike | None,
    *,
    data_dir: PathLike | None,
    target: str | None,
    command: str = "train",
    label_option: str = "--target",
) -> None:
    """Check that the dataset name and the arguments it needs go together.

    ``label_option`` is how the command spells the CSV label-column option (``tnml
    noise-study`` has ``--target`` for the device, so its label column is
    ``--label-column``); error messages name it.

    Raises
    ------
    InvalidInputError
        For an unknown dataset, ``mnist`` without a data directory, ``csv`` without a file or
        a target column, or a FILE given to a dataset that takes none.
    """
    if dataset not in DATASETS:
        hint = ""
        if str(dataset).lower().endswith(".csv") or Path(dataset).is_file():
            hint = f" (for a CSV file: tnml {command} csv {dataset} {label_option} COL)"
        raise InvalidInputError(
            f"unknown dataset {dataset!r}: choose one of {', '.join(DATASETS)}{hint}"
        )
    if dataset == "digits" and file is not None:
        raise InvalidInputError(f"dataset digits takes no FILE argument (got {file})")
    if dataset in ("digits", "mnist") and target is not None:
        raise InvalidInputError(
            f"{label_option} names a CSV file's label column; dataset {dataset} has its own "
            f"labels (got {label_option} {target})"
        )
    if dataset == "mnist":
        if file is not None:
            raise InvalidInputError(
                f"dataset mnist takes no FILE argument (got {file}); pass the folder that "
                "holds the MNIST files with --data-dir"
            )
        if data_dir is None:
            raise InvalidInputError(
                "dataset mnist needs --data-dir DIR, the folder holding the four MNIST IDX "
                f"files (or set {tnml_data.MNIST_ENV_VAR})"
            )
    if dataset == "csv":
        if file is None:
            raise InvalidInputError(
                f"dataset csv needs a FILE argument: tnml {command} csv FILE {label_option} COL"
            )
        if target is None:
            raise InvalidInputError(
                f"dataset csv needs {label_option} COL, the name of the label column in {file}"
            )


# -- splits ---------------------------------------------------------------------------------
def split_indices(y: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded train/test split of ``range(len(y))``, stratified by ``y`` where possible.

    Returns
    -------
    train_idx, test_idx : np.ndarray of int
        ``test_idx`` has ``ceil(test_fraction * len(y))`` entries. The same ``y``,
        ``test_fraction`` and ``seed`` always give the same split, which is how ``evaluate``
        finds the test set a model was trained without.
    """
    n = len(y)
    if not 0 <= test_fraction < 1:
        raise InvalidInputError(f"--test-fraction must lie in [0, 1), got {test_fraction}")
    n_test = math.ceil(test_fraction * n)
    if n_test >= n:
        raise InvalidInputError(
            f"--test-fraction {test_fraction} leaves no training samples out of {n}"
        )
    _, counts = np.unique(y, return_counts=True)
    stratify = bool(counts.min() >= 2 and len(counts) <= min(n_test, n - n_test))
    train_idx, test_idx, _, _ = tnml_data.train_val_split(
        np.arange(n), y, test_fraction, stratify=stratify, random_state=seed
    )
    return train_idx, test_idx


# -- images ---------------------------------------------------------------------------------
def prepare_images(
    images: np.ndarray,
    spec: ModelSpec,
    *,
    source: str,
    downsample: int | None = None,
) -> np.ndarray:
    """Apply a model's image preprocessing and flatten: ``(n, h, w)`` -> ``(n, n_features)``.

    ``uint8`` pixels are scaled to [0, 1]. Images of the model's original size are downsampled
    as in training; images already of the downsampled size are taken as they are.

    Parameters
    ----------
    images : np.ndarray, shape (n, h, w)
    spec : ModelSpec
    source : str
        How to name the data in messages (a file name, "digits", ...).
    downsample : int, optional
        The ``--downsample`` the user gave; it must agree with the model's.

    Raises
    ------
    InvalidInputError
        On NaN/inf pixels, a model trained on tabular data, or an image size (or
        ``downsample``) other than the model's; the message says what the model expects.
    """
    images = np.asarray(images)
    if images.dtype == np.uint8:
        images = images.astype(np.float32) / np.float32(255)
    n, height, width = images.shape
    if n == 0:
        raise InvalidInputError(f"{source} holds no images")
    if not (np.issubdtype(images.dtype, np.number) or images.dtype == np.bool_):
        raise InvalidInputError(f"{source} holds {images.dtype} values; expected numbers")
    if images.dtype.kind != "f":
        images = images.astype(np.float64)
    finite = np.isfinite(images)
    if not finite.all():
        i, r, c = (int(k) for k in np.argwhere(~finite)[0])
        kind = "NaN" if np.isnan(images[i, r, c]) else "inf"
        raise InvalidInputError(
            f"{source} contains {kind} in image {i} at pixel (row {r}, column {c}); clean the "
            "data first"
        )
    prep = spec.preprocessing
    if prep is not None and prep.get("kind") != "image":
        raise InvalidInputError(
            f"the model was trained on tabular data ({spec.n_features} feature columns); "
            f"{source} holds {height}x{width} images"
        )
    if prep is None:  # a model saved without a record: only the feature count is known
        if downsample is not None:
            X = ImageDownsampler(downsample).fit(images).transform(images)
        else:
            X = tnml_data.flatten_images(images)
        if X.shape[1] != spec.n_features:
            got = f"{height}x{width} images"
            if downsample is not None:
                got += f" downsampled to {downsample}x{downsample}"
            raise InvalidInputError(
                f"the model expects {spec.n_features} features; {source} gives {got} "
                f"({X.shape[1]} features; --downsample shrinks images)"
            )
        return X
    low, high = float(images.min()), float(images.max())
    if low < 0 or high > 1:
        raise InvalidInputError(
            f"{source} holds pixel values in [{low:.4g}, {high:.4g}]; the model expects "
            "intensities in [0, 1] (uint8 images are scaled by 1/255 automatically; scale "
            "other data first, e.g. sklearn's digits by 1/16)"
        )
    original = tuple(prep["image_shape"])
    final = _final_shape(prep)
    if downsample is not None and (downsample, downsample) != final:
        raise InvalidInputError(
            f"the model expects {_describe_images(prep)}; --downsample {downsample} gives "
            f"{downsample}x{downsample} images ({downsample * downsample} features)"
        )
    if (height, width) == original:
        if final != original:
            images = ImageDownsampler(final).fit(images).transform(images)
            return images
    elif (height, width) != final:
        raise InvalidInputError(
            f"the model expects {_describe_images(prep)}; {source} holds {height}x{width} images"
        )
    return tnml_data.flatten_images(images)


def _load_numpy(path: Path) -> np.ndarray:
    """The array of a ``.npy`` file, or of an ``.npz`` archive (key ``X`` or its only array)."""
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataFileError(f"cannot read NumPy file {path}: {exc}") from None
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        return loaded
    with loaded:
        keys = list(loaded.files)
        if "X" in keys:
            key = "X"
        elif len(keys) == 1:
            key = keys[0]
        else:
            raise InvalidInputError(
                f"{path.name} holds arrays {', '.join(keys) or 'none'}; expected one named X "
                "(or a single array)"
            )
        try:
            return loaded[key]
        except (OSError, ValueError, zipfile.BadZipFile) as exc:
            raise DataFileError(f"cannot read {key!r} from {path}: {exc}") from None


def array_to_features(
    array: np.ndarray, spec: ModelSpec, *, source: str, downsample: int | None = None
) -> np.ndarray:
    """Turn a loaded array (rows or images) into the model's ``(n, n_features)`` input.

    ``(n, H, W)`` arrays are images (see :func:`prepare_images`); ``(n, F)`` arrays are rows,
    which for an image model may also be flattened images of the original size.
    """
    array = np.asarray(array)
    if array.dtype.kind not in "biuf":
        raise InvalidInputError(f"{source} holds {array.dtype} values; expected numbers")
    if array.ndim == 3:
        return prepare_images(array, spec, source=source, downsample=downsample)
    if array.ndim != 2:
        hint = " (an IDX label file? pass the images file)" if array.ndim == 1 else ""
        raise InvalidInputError(
            f"{source} holds an array of shape {array.shape}; expected rows (n_samples, "
            f"n_features) or images (n_images, height, width){hint}"
        )
    if spec.kind == "image" and array.dtype == np.uint8:
        array = array.astype(np.float32) / np.float32(255)
    return table_to_features(
        array, None, spec, source=source, downsample=downsample, name_check=False
    )


# -- tables ---------------------------------------------------------------------------------
def read_feature_csv(path: PathLike, *, drop: str | None = None) -> tuple[list[str], np.ndarray]:
    """Read a CSV file with a header row whose columns are all numeric features.

    Parameters
    ----------
    path : path-like
    drop : str, optional
        A column to ignore when present (the model's target column).

    Returns
    -------
    names : list of str
        The header names of the kept columns.
    X : np.ndarray of float64, shape (n_rows, len(names))

    Raises
    ------
    DataFileError
        If the file is missing, unreadable or empty.
    InvalidInputError
        If it has no data rows, a row has the wrong number of fields, or a cell is empty,
        NaN, infinite or not a number (the message names the column and the row).
    """
    X, _, names = tnml_data.load_csv(path, target=None, drop=drop)
    return names, X


def table_to_features(
    X: np.ndarray,
    names: list[str] | None,
    spec: ModelSpec,
    *,
    source: str,
    downsample: int | None = None,
    name_check: bool = True,
) -> np.ndarray:
    """Match the columns of a table to the model's input.

    A tabular model with feature names gets its columns by name (in its order; a missing or
    unknown column is an error). An image model takes flattened images: either the original
    ``H*W`` pixels (preprocessed as in training) or the already downsampled ones.

    Raises
    ------
    InvalidInputError
        If the columns do not fit the model; the message lists what it expects.
    """
    X = tnml_data.check_array_2d(X, name=source)
    n, n_cols = X.shape
    if n == 0:
        raise InvalidInputError(f"{source} holds no samples")
    if spec.kind == "image":
        prep = spec.preprocessing or {}
        height, width = prep["image_shape"]
        if n_cols == height * width and _final_shape(prep) != (height, width):
            return prepare_images(
                X.reshape(n, height, width), spec, source=source, downsample=downsample
            )
        if n_cols == spec.n_features:
            return prepare_images(
                X.reshape(n, *_final_shape(prep)), spec, source=source, downsample=downsample
            )
        columns = f"{height * width} pixel columns"
        if height * width != spec.n_features:
            columns += f" (or {spec.n_features} downsampled ones)"
        raise InvalidInputError(
            f"the model expects {_describe_images(prep)}, {columns}; {source} has {n_cols} columns"
        )
    if downsample is not None:
        raise InvalidInputError("--downsample applies to models trained on images, not tables")
    expected = spec.feature_names
    if expected is None or not name_check or names is None:
        if n_cols != spec.n_features:
            raise InvalidInputError(
                f"the model expects {spec.n_features} feature columns; {source} has {n_cols}"
            )
        return X
    return columns_by_name(X, names, expected, source)


def columns_by_name(
    X: np.ndarray, names: list[str], expected: list[str], source: str
) -> np.ndarray:
    """The columns of ``X`` (n, F), headed ``names``, in the order ``expected``; a duplicate,
    missing or unknown column is an error naming every one."""
    if len(set(names)) != len(names):
        twice = sorted({name for name in names if names.count(name) > 1})
        raise InvalidInputError(f"{source} has duplicate column names: {', '.join(twice)}")
    missing = [name for name in expected if name not in names]
    unknown = [name for name in names if name not in expected]
    if missing or unknown:
        problems = [f"missing {missing}"] * bool(missing) + [f"unknown {unknown}"] * bool(unknown)
        raise InvalidInputError(
            f"{source} does not hold the model's feature columns ({', '.join(expected)}): "
            + "; ".join(problems)
        )
    return X[:, [names.index(name) for name in expected]]


# -- training data --------------------------------------------------------------------------
@dataclass(frozen=True)
class TrainingData:
    """A data set ready for training, with its held-out test part and what was done to it.

    Attributes
    ----------
    X_train, y_train : np.ndarray, shapes (n, F) and (n,)
    X_test, y_test : np.ndarray, shapes (m, F) and (m,); ``m`` may be 0
    test_name : str
        Where the test samples come from, for messages.
    metadata : dict
        ``dataset``, ``source``, ``preprocessing`` and ``split``, JSON-serialisable, to be
        saved with the model.
    """

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    test_name: str
    metadata: dict[str, Any]


def load_training_data(
    dataset: str,
    file: PathLike | None = None,
    *,
    data_dir: PathLike | None = None,
    target: str | None = None,
    downsample: int | None = None,
    test_fraction: float = DEFAULT_TEST_FRACTION,
    seed: int = DEFAULT_SEED,
) -> TrainingData:
    """Load ``digits``, ``mnist`` or ``csv`` for ``tnml train``, preprocessed and split.

    ``digits`` and ``csv`` hold out a seeded, stratified ``test_fraction``; ``mnist`` trains on
    the official train split and tests on the official test split.

    Raises
    ------
    InvalidInputError, DataFileError
        For bad arguments (see :func:`check_dataset_args`), missing or unreadable files, NaN
        in the data, an absent target column, or a ``downsample`` that does not divide the
        images.
    """
    check_dataset_args(dataset, file, data_dir=data_dir, target=target, command="train")
    if dataset == "csv" and downsample is not None:
        raise InvalidInputError("--downsample applies to image datasets (digits, mnist), not csv")
    if dataset == "mnist" and test_fraction != DEFAULT_TEST_FRACTION:
        raise InvalidInputError(
            f"--test-fraction applies to digits and csv; mnist tests on its official test "
            f"split (got --test-fraction {test_fraction})"
        )
    split = {"test_fraction": float(test_fraction), "seed": int(seed)}
    if dataset == "mnist":
        assert data_dir is not None
        train_images, y_train = tnml_data.load_mnist(data_dir, "train")
        test_images, y_test = tnml_data.load_mnist(data_dir, "test")
        spec = _image_spec(train_images.shape[1:], downsample, "MNIST")
        return TrainingData(
            prepare_images(train_images, spec, source="MNIST train split"),
            y_train,
            prepare_images(test_images, spec, source="MNIST test split"),
            y_test,
            "MNIST test split",
            {
                "dataset": "mnist",
                "source": str(Path(data_dir).resolve()),
                "preprocessing": spec.preprocessing,
                "split": {"test": "official"},
            },
        )
    if dataset == "digits":
        images, y = tnml_data.load_digits()
        spec = _image_spec(images.shape[1:], downsample, "digits")
        X = prepare_images(images, spec, source="digits")
        metadata = {"dataset": "digits", "source": None, "preprocessing": spec.preprocessing}
    else:
        assert file is not None and target is not None
        X, y, names = tnml_data.load_csv(file, target)
        X = tnml_data.check_array_2d(X, name=Path(file).name)
        if y.dtype.kind == "f":
            raise InvalidInputError(
                f"target column {target!r} of {Path(file).name} holds non-integer numbers "
                f"(e.g. {y[y != np.round(y)][0]}); a classifier needs class labels"
            )
        # a column the estimators could not scale to [0, 1], named as the file names it
        check_scalable(X.min(axis=0), X.max(axis=0), names)
        preprocessing = {"kind": "tabular", "feature_names": names, "target": target}
        metadata = {
            "dataset": "csv",
            "source": str(Path(file).resolve()),
            "source_sha256": file_sha256(file),
            "preprocessing": preprocessing,
        }
    train_idx, test_idx = split_indices(y, test_fraction, seed)
    metadata["split"] = split
    test_name = f"held-out {test_fraction:.0%} of {metadata['dataset']}, seed {seed}"
    return TrainingData(X[train_idx], y[train_idx], X[test_idx], y[test_idx], test_name, metadata)


def _image_spec(shape: Sequence[int], downsample: int | None, dataset: str) -> ModelSpec:
    prep = image_record(shape, downsample)
    height, width = prep["image_shape"]
    if downsample is not None and (downsample < 1 or height % downsample or width % downsample):
        sizes = [k for k in range(1, min(height, width) + 1) if height % k == 0 == width % k]
        raise InvalidInputError(
            f"--downsample {downsample} does not evenly divide the {height}x{width} {dataset} "
            f"images; choose one of {', '.join(map(str, sizes))}"
        )
    h, w = _final_shape(prep)
    return ModelSpec(h * w, {"preprocessing": prep})


# -- evaluation data ------------------------------------------------------------------------
@dataclass(frozen=True)
class EvaluationData:
    """Labelled samples to score a model on.

    Attributes
    ----------
    X : np.ndarray, shape (n, n_features)
    y : np.ndarray, shape (n,)
    description : str
        Which data set and split, for the report.
    """

    X: np.ndarray
    y: np.ndarray
    description: str


def load_evaluation_data(
    spec: ModelSpec,
    dataset: str | None = None,
    file: PathLike | None = None,
    *,
    data_dir: PathLike | None = None,
    target: str | None = None,
    split: str | None = None,
    downsample: int | None = None,
    command: str = "evaluate",
    label_option: str = "--target",
) -> EvaluationData:
    """Load a labelled data set and apply the model's preprocessing, for ``tnml evaluate``.

    Parameters
    ----------
    spec : ModelSpec
        The model's expectations and training metadata.
    dataset : {"digits", "mnist", "csv"}, optional
        Default: the data set the model was trained on (with its file or folder).
    file, data_dir, target :
        As for ``tnml train``; ``target`` defaults to the model's target column.
    split : {"test", "train", "all"}, optional
        ``test`` and ``train`` redo the seeded split the training used (digits, and csv when
        the file is the training file) or pick MNIST's official split. Default: ``test``,
        except for a csv file other than the training one (``all``).
    downsample : int, optional
        Must agree with the model's downsampling.
    command, label_option : str
        The command and its name for ``target``, for error messages.

    Raises
    ------
    InvalidInputError, DataFileError
    """
    meta = spec.metadata
    if dataset is None:
        dataset = meta.get("dataset")
        if dataset is None:
            raise InvalidInputError(
                "give a DATASET (digits, mnist or csv): the model file does not record the "
                "data it was trained on"
            )
    same_dataset = dataset == meta.get("dataset") and meta.get("source") is not None
    if dataset == "csv" and file is None and same_dataset:
        file = meta["source"]
    if dataset == "mnist" and data_dir is None and same_dataset:
        data_dir = meta["source"]
    if dataset == "csv" and target is None:
        target = spec.target
    check_dataset_args(
        dataset,
        file,
        data_dir=data_dir,
        target=target,
        command=command,
        label_option=label_option,
    )
    if split is not None and split not in SPLITS:
        raise InvalidInputError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")

    if dataset == "mnist":
        assert data_dir is not None
        split = split or "test"
        parts = ["train", "test"] if split == "all" else [split]
        Xs, ys = [], []
        for part in parts:
            images, labels = tnml_data.load_mnist(data_dir, part)
            Xs.append(
                prepare_images(
                    images, spec, source=f"MNIST {part} split in {data_dir}", downsample=downsample
                )
            )
            ys.append(labels)
        return EvaluationData(
            np.concatenate(Xs), np.concatenate(ys), f"MNIST {split} split{'s' * (split == 'all')}"
        )
    if dataset == "digits":
        images, y = tnml_data.load_digits()
        X = prepare_images(images, spec, source="digits", downsample=downsample)
        split = split or "test"
        name = "digits"
    else:
        assert file is not None and target is not None
        X_raw, y, names = tnml_data.load_csv(file, target)
        X = table_to_features(X_raw, names, spec, source=Path(file).name, downsample=downsample)
        trained_on_file = (
            meta.get("dataset") == "csv"
            and meta.get("source") is not None
            and Path(meta["source"]) == Path(file).resolve()
        )
        split = split or ("test" if trained_on_file else "all")
        name = Path(file).name
        if trained_on_file and split != "all":
            check_source_unchanged(meta, file, command)
    return split_part(X, y, meta, split, name)


def file_sha256(path: PathLike) -> str:
    """The SHA-256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def source_changed(meta: dict[str, Any], file: PathLike) -> bool:
    """Whether ``file`` differs from the training file the model recorded (its digest
    ``source_sha256``); False for models saved before the digest was recorded."""
    recorded = meta.get("source_sha256")
    return recorded is not None and file_sha256(file) != recorded


def check_source_unchanged(meta: dict[str, Any], file: PathLike, command: str) -> None:
    """Refuse to redo the training's seeded split of ``file`` when the file changed since:
    the split of other rows would hand fitted rows to the "test" part."""
    if source_changed(meta, file):
        name = Path(file).name
        remedy = (
            "score it with --split all"
            if command == "evaluate"
            else f"give a copy of {name} as the FILE argument (any file but the training one "
            "is scored whole)"
        )
        raise InvalidInputError(
            f"{name} changed since the model was trained on it, so its seeded train/test "
            f"split would not be the training's (fitted rows could be scored as test rows); "
            f"{remedy}, or retrain"
        )


def split_part(
    X: np.ndarray, y: np.ndarray, meta: dict[str, Any], split: str, name: str
) -> EvaluationData:
    """The ``split`` (``"test"``, ``"train"`` or ``"all"``) of samples ``X`` (n, F) with
    labels ``y`` (n,), redoing the seeded split that the training recorded in ``meta``;
    ``name`` names the data in the description and in errors."""
    if split == "all":
        return EvaluationData(X, y, f"{name}, all {len(y)} samples")
    settings = meta.get("split") or {}
    fraction = float(settings.get("test_fraction", DEFAULT_TEST_FRACTION))
    seed = int(settings.get("seed", DEFAULT_SEED))
    train_idx, test_idx = split_indices(y, fraction, seed)
    chosen = test_idx if split == "test" else train_idx
    if len(chosen) == 0:
        raise InvalidInputError(
            f"the {split} split of {name} is empty (the model was trained with --test-fraction "
            f"{fraction}); use --split all"
        )
    return EvaluationData(
        X[chosen], y[chosen], f"{name}, {split} split (test fraction {fraction}, seed {seed})"
    )


# -- prediction input -----------------------------------------------------------------------
def load_prediction_input(
    path: PathLike, spec: ModelSpec, *, downsample: int | None = None
) -> np.ndarray:
    """Read the input of ``tnml predict`` and apply the model's preprocessing.

    Parameters
    ----------
    path : path-like
        A CSV file with a header row (columns matched to the model's feature names; the
        model's target column is dropped when present), a ``.npy`` / ``.npz`` array (rows or
        images), or an IDX image file (``*-idx3-ubyte[.gz]``).
    spec : ModelSpec
    downsample : int, optional
        Must agree with the model's downsampling.

    Returns
    -------
    np.ndarray, shape (n, n_features)

    Raises
    ------
    DataFileError, InvalidInputError
    """
    path = Path(path)
    if not path.exists():
        raise DataFileError(f"input file not found: {path}")
    name = path.name.lower()
    if name.endswith(".csv"):
        names, X = read_feature_csv(path, drop=spec.target)
        return table_to_features(X, names, spec, source=path.name, downsample=downsample)
    if name.endswith((".npy", ".npz")):
        array = _load_numpy(path)
    elif _IDX_NAME.search(name):
        array = tnml_data.read_idx(path)
    else:
        raise InvalidInputError(
            f"cannot tell the format of {path.name}: expected a .csv file with a header row, "
            "a .npy/.npz array, or an IDX image file (*-idx3-ubyte[.gz])"
        )
    return array_to_features(array, spec, source=path.name, downsample=downsample)


# -- Born machines ---------------------------------------------------------------------------
def is_born_machine(model: Any) -> bool:
    """True for the generative estimators (they have ``sample`` and ``log_prob``)."""
    return hasattr(model, "sample") and hasattr(model, "log_prob")


def discretize(X: np.ndarray, spec: ModelSpec | dict[str, Any]) -> np.ndarray:
    """Training-data features -> the discrete values a Born machine models.

    Images (features in [0, 1]) are binarised at 0.5; tabular columns must hold integers.
    ``spec`` is the model's :class:`ModelSpec` or the metadata of a training run.
    """
    metadata = spec.metadata if isinstance(spec, ModelSpec) else spec
    prep = metadata.get("preprocessing") or {}
    if prep.get("kind") == "image":
        return binarize(X, BINARY_THRESHOLD)
    return check_discrete(np.asarray(X, dtype=np.float64), "the data")


def image_shape(spec: ModelSpec) -> tuple[int, int]:
    """(height, width) of the images a model was trained on; error for other models."""
    prep = spec.preprocessing or {}
    if prep.get("kind") != "image":
        raise InvalidInputError(
            "this model was not trained on images (no image shape in its metadata); "
            "write samples to a .csv file instead"
        )
    height, width = prep["image_shape"]
    size = prep.get("downsample")
    return (int(height), int(width)) if size is None else (int(size), int(size))
