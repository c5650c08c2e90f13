"""``tnml train`` as a function: a model from a dataset to a saved file, resumable.

:func:`train_model` builds the estimator that ``model`` names from the options given, checks
that a resumed run is the run its checkpoint came from, fits, measures the held-out part and
saves the model with its preprocessing record. The command line only parses and calls it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tnml import io as tnml_io
from tnml._files import atomic_write
from tnml.estimators import (
    CircuitClassifier,
    MPSBornMachine,
    MPSClassifier,
    TTNBornMachine,
    TTNClassifier,
)
from tnml.exceptions import InvalidInputError
from tnml.train import RandomAffine
from tnml.workflows.data import (
    ModelSpec,
    TrainingData,
    discretize,
    image_shape,
    is_born_machine,
)

__all__ = [
    "MODEL_CLASSES",
    "TrainingInterrupted",
    "TrainingOptions",
    "check_checkpoint_path",
    "check_or_record_run",
    "first_samples",
    "flatten_record",
    "make_estimator",
    "run_identity",
    "run_record_path",
    "train_model",
]

MODEL_CLASSES: dict[str, type] = {
    "mps": MPSClassifier,
    "ttn": TTNClassifier,
    "mps-born": MPSBornMachine,
    "ttn-born": TTNBornMachine,
    "circuit": CircuitClassifier,
}


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training, with the checkpoint the trainer wrote."""

    def __init__(self, checkpoint: Path) -> None:
        super().__init__(str(checkpoint))
        self.checkpoint = checkpoint


@dataclass(frozen=True)
class TrainingOptions:
    """What ``tnml train`` does besides the dataset: which model, with which options, where.

    Attributes
    ----------
    model : {"mps", "ttn", "mps-born", "ttn-born", "circuit"}
    params : dict
        Estimator options the user gave, by the estimators' parameter names (their defaults
        apply to the rest; see :func:`make_estimator`); ``random_state`` and ``verbose`` too.
    out : Path
        Where the model is saved.
    checkpoint : Path or None
        The checkpoint file (default ``<out>.ckpt``).
    resume : bool
    unitary : bool
        Keep the model in quantum-circuit form (mps, ttn, mps-born).
    memory_gib : float or None
        Sweeps: memory the cached environments may use.
    augment_shift, augment_rotation : float
        Random moves / rotations of training images (autodiff classifiers).
    distributed : bool
        Under ``torchrun``: data parallel; rank 0 reports and saves.
    """

    model: str = "mps"
    params: dict[str, Any] = field(default_factory=dict)
    out: Path | str = Path("model.tnml")
    checkpoint: Path | str | None = None
    resume: bool = False
    unitary: bool = False
    memory_gib: float | None = None
    augment_shift: float = 0.0
    augment_rotation: float = 0.0
    distributed: bool = False

    def __post_init__(self) -> None:  # paths may be given as strings
        object.__setattr__(self, "out", Path(self.out))
        if self.checkpoint is not None:
            object.__setattr__(self, "checkpoint", Path(self.checkpoint))
        if self.model not in MODEL_CLASSES:
            raise InvalidInputError(
                f"model must be one of {', '.join(MODEL_CLASSES)}, got {self.model!r}"
            )


# Options of the classifiers that a Born machine does not take.
_CLASSIFIER_ONLY = {
    "feature_map": "--feature-map",
    "feature_dim": "--feature-dim",
    "readout": "--readout",
    "loss": "--loss",
    "validation_fraction": "--val-fraction",
    "n_iter_no_change": "--patience",
    "select_by": "--select-by",
}


# Options of the MPS models that the tree models do not take (the sweep trainer).
_MPS_ONLY = {
    "trainer": "--trainer",
    "max_bond": "--max-bond",
    "cutoff": "--cutoff",
    "loss": "--loss",
    "steps_per_bond": "--steps-per-bond",
}

# Options that only the sweeps read, for the models that train by sweeps or by autodiff.
_SWEEP_ONLY = {
    "max_bond": "--max-bond",
    "cutoff": "--cutoff",
    "steps_per_bond": "--steps-per-bond",
    "solver": "--solver",
    "grad_floor": "--grad-floor",
    "lr_decay": "--lr-decay",
    "truncation": "--truncation",
    "steps_per_node": "--steps-per-node",
}

# Options of the MPS classifier's sweeps only.
_MPS_CLASSIFIER_ONLY = {"solver": "--solver"}


# Options of the Born machines' sweeps that the classifiers do not take.
_BORN_ONLY = {
    "grad_floor": "--grad-floor",
    "lr_decay": "--lr-decay",
}

# Options of the tree Born machine's one-site sweeps only.
_TREE_BORN_ONLY = {"steps_per_node": "--steps-per-node"}

# Options of the MPS Born machine's two-site sweeps only.
_MPS_BORN_ONLY = {"truncation": "--truncation"}


# Options of the tensor-network models that a circuit classifier does not take.
_NETWORK_ONLY = {
    "bond_dim": "--bond-dim",
    "feature_map": "--feature-map",
    "feature_dim": "--feature-dim",
    "readout": "--readout",
    "trainer": "--trainer",
    "max_bond": "--max-bond",
    "cutoff": "--cutoff",
    "loss": "--loss",
}

# Options of the circuit classifier only.
_CIRCUIT_ONLY = {
    "n_qubits": "--n-qubits",
    "blocks_per_feature": "--blocks-per-feature",
    "angle_scale": "--angle-scale",
}


def _reject(model: str, params: dict[str, Any], options: dict[str, str], kind: str) -> None:
    for name, flag in options.items():
        if name in params:
            raise InvalidInputError(f"{flag} applies to {kind}, not --model {model}")


def _check_trainer_options(model: str, params: dict[str, Any]) -> None:
    """Refuse options that the chosen trainer of ``--model mps``, ``mps-born`` or
    ``ttn-born`` would ignore: the sweeps' options under autodiff (a flag turned off, as
    ``--no-grad-floor``, asks for what autodiff does anyway), and the Born machines' autodiff
    mini-batch under their sweeps (the classifier's sweeps take mini-batches too)."""
    default = inspect.signature(MODEL_CLASSES[model]).parameters.get("trainer")
    trainer = params.get("trainer", None if default is None else default.default)
    if trainer == "autodiff":
        for name, flag in _SWEEP_ONLY.items():
            if name in params and params[name] is not False:
                raise InvalidInputError(
                    f"{flag} applies to --trainer sweep; --model {model} trains by autodiff "
                    f"here (add --trainer sweep, or drop {flag})"
                )
    elif model in ("mps-born", "ttn-born") and "batch_size" in params:
        raise InvalidInputError(
            f"--batch-size is the autodiff mini-batch; --model {model} trains by sweeps here "
            "(add --trainer autodiff, or drop --batch-size)"
        )


def make_estimator(
    model: str, params: dict[str, Any], image_shape: tuple[int, int] | None = None
) -> Any:
    """The estimator named by ``model`` (``tnml train --model``), built with the options the
    user gave (named as the estimators name them); an option the model does not take is an
    :class:`InvalidInputError` naming its flag.

    Tree models on images get the 2D layout (square patches) of ``image_shape``.
    """
    if model != "ttn-born":
        _reject(model, params, _TREE_BORN_ONLY, "--model ttn-born")
    if model != "mps-born":
        _reject(model, params, _MPS_BORN_ONLY, "--model mps-born")
    if model != "mps":
        _reject(model, params, _MPS_CLASSIFIER_ONLY, "--model mps")
    if model == "circuit":
        _reject(model, params, _BORN_ONLY, "Born machines")
        _reject(model, params, _MPS_ONLY, "the MPS models")
        _reject(model, params, _NETWORK_ONLY, "the tensor-network models")
        return MODEL_CLASSES["circuit"](**params)
    _reject(model, params, _CIRCUIT_ONLY, "--model circuit")
    if model in ("mps", "ttn"):
        _reject(model, params, _BORN_ONLY, "Born machines")
    if model == "mps":
        _check_trainer_options(model, params)
        return MODEL_CLASSES["mps"](**params)
    if model == "ttn":
        _reject(model, params, _MPS_ONLY, "the MPS models")
        if image_shape is not None:
            params["layout"] = tuple(image_shape)
        return MODEL_CLASSES["ttn"](**params)
    _reject(model, params, _CLASSIFIER_ONLY, "classifiers")
    if model == "mps-born":
        _reject(model, params, {"loss": "--loss"}, "classifiers")
        _check_trainer_options(model, params)
        return MODEL_CLASSES["mps-born"](**params)
    if model == "ttn-born":  # the tree Born machine sweeps too, with fixed bonds, node by node
        _reject(
            model, params, {k: v for k, v in _MPS_ONLY.items() if k != "trainer"}, "the MPS models"
        )
        _check_trainer_options(model, params)
        if image_shape is not None:
            params["layout"] = tuple(image_shape)
        return MODEL_CLASSES["ttn-born"](**params)
    raise AssertionError(f"unknown model {model!r}")  # pragma: no cover - Typer checks it


def first_samples(data: TrainingData, n_train: int) -> TrainingData:
    """``data`` with only its first ``n_train`` training samples (recorded in the split)."""
    if n_train > len(data.y_train):
        raise InvalidInputError(
            f"--n-train {n_train} asks for more than the {len(data.y_train)} training samples"
        )
    split = {**(data.metadata.get("split") or {}), "n_train": n_train}
    metadata = {**data.metadata, "split": split}
    return dataclasses.replace(
        data, X_train=data.X_train[:n_train], y_train=data.y_train[:n_train], metadata=metadata
    )


# Options a resumed run may change; anything else would mix two runs in one model.
RESUMABLE_PARAMS = frozenset({"epochs", "verbose", "device"})


def run_record_path(checkpoint: Path) -> Path:
    return checkpoint.with_name(checkpoint.name + ".run.json")


def run_identity(model: str, estimator: Any, data: Any, fit_options: dict) -> dict[str, Any]:
    """What a checkpoint was made from: model, data (with a digest of the training split),
    and every option that cannot change on resume."""
    digest = hashlib.sha256()
    for array in (data.X_train, data.y_train):
        if array is not None:
            digest.update(np.ascontiguousarray(array).tobytes())
    params = {
        k: v for k, v in estimator.get_params(deep=False).items() if k not in RESUMABLE_PARAMS
    }
    return json.loads(
        json.dumps(
            {
                "model": model,
                # the file's digest stays out: training_data_sha256 covers what was read, and
                # records written before the digest existed must still resume
                "data": {k: v for k, v in data.metadata.items() if k != "source_sha256"},
                "n_train": len(data.X_train),
                "training_data_sha256": digest.hexdigest(),
                "params": params,
                "fit_options": {k: repr(v) for k, v in fit_options.items()},
            },
            default=repr,
        )
    )


def check_checkpoint_path(checkpoint: Path, out: Path, resume: bool) -> None:
    """Refuse a checkpoint path that a run would destroy something at: a fresh run deletes
    the old checkpoint and a finished run its own, so ``--checkpoint`` must not be ``--out``
    or a folder, and a fresh run overwrites only a file that a tnml run wrote (its record,
    ``<checkpoint>.run.json``, beside it)."""
    if checkpoint.resolve() == out.resolve():
        raise InvalidInputError(
            f"--checkpoint {checkpoint} is the --out file: the checkpoint is deleted once the "
            "model is saved; give another path (default: <out>.ckpt)"
        )
    if checkpoint.is_dir():
        raise InvalidInputError(f"--checkpoint {checkpoint} is a folder; give a file name")
    record = run_record_path(checkpoint)
    if not resume and checkpoint.exists() and not record.is_file():
        raise InvalidInputError(
            f"--checkpoint {checkpoint} exists and no tnml run wrote it (no {record.name} "
            "beside it); a fresh run would delete it: give another path or remove the file"
        )


def check_or_record_run(checkpoint: Path, identity: dict[str, Any], resume: bool) -> None:
    """A fresh run records its identity beside the checkpoint; ``--resume`` refuses, in one
    line naming each difference, a command that differs from the recorded one."""
    record = run_record_path(checkpoint)
    if not resume:
        # the old run's checkpoint goes with its record: were this run to die before its
        # first checkpoint, a --resume would otherwise continue the old run under this record
        checkpoint.unlink(missing_ok=True)
        atomic_write(record, lambda tmp: Path(tmp).write_text(json.dumps(identity)))
        return
    if not checkpoint.is_file():
        return  # the trainer reports the missing checkpoint
    try:
        saved = json.loads(record.read_text())
    except (OSError, json.JSONDecodeError):
        raise InvalidInputError(
            f"--resume: {record} (what {checkpoint.name} was made from) is missing or "
            "unreadable; rerun without --resume"
        ) from None
    before = {key.lstrip("."): value for key, value in flatten_record("", saved)}
    now = {key.lstrip("."): value for key, value in flatten_record("", identity)}
    differences = [
        f"{key}: {before.get(key, '(unset)')!r} -> {now.get(key, '(unset)')!r}"
        for key in sorted(before.keys() | now.keys())
        if before.get(key) != now.get(key)
    ]
    if differences:
        more = f"; and {len(differences) - 4} more" if len(differences) > 4 else ""
        raise InvalidInputError(
            f"--resume would mix two runs: {checkpoint.name} was made with other settings "
            f"({'; '.join(differences[:4])}{more}); rerun the original command (only --epochs "
            "may change) or drop --resume"
        )


def flatten_record(prefix: str, value: Any) -> list[tuple[str, Any]]:
    """Nested dicts as ``(dotted.key, value)`` pairs."""
    if isinstance(value, dict) and value:
        return [
            item for key, sub in value.items() for item in flatten_record(f"{prefix}.{key}", sub)
        ]
    return [(prefix, value)]


def train_model(
    data: TrainingData,
    options: TrainingOptions,
    *,
    rank: int = 0,
    report: Callable[[str], None] = print,
) -> dict[str, Any] | None:
    """Fit the model ``options`` names on ``data``, measure its test part, save it.

    Returns
    -------
    dict or None
        The metadata saved with the model (test accuracy or NLLs, timing, the data record);
        None on ranks other than 0 of a distributed run.

    Raises
    ------
    InvalidInputError
        Options that do not go together, or a ``resume`` of another run.
    TrainingInterrupted
        On Ctrl-C, with the checkpoint the trainer wrote.
    """
    model, out, resume = options.model, options.out, options.resume
    checkpoint = options.checkpoint or out.with_name(out.name + ".ckpt")
    check_checkpoint_path(checkpoint, out, resume)
    params = dict(options.params)
    if options.unitary:
        if model not in ("mps", "ttn", "mps-born"):
            raise InvalidInputError(
                f"--unitary applies to --model mps, ttn or mps-born, not {model}"
            )
        params["unitary"] = True
    spec = ModelSpec(data.X_train.shape[1], data.metadata)
    shape = image_shape(spec) if spec.kind == "image" else None
    fit_options: dict[str, Any] = {}
    if options.memory_gib is not None:
        if model not in ("mps",) or params.get("trainer") != "sweep":
            raise InvalidInputError(
                "--memory sizes the sweeps' environments: it needs --trainer sweep"
            )
        fit_options["memory_budget"] = int(options.memory_gib * 2**30)
    if options.augment_shift or options.augment_rotation:
        if shape is None:
            raise InvalidInputError(
                "--augment-shift and --augment-rotation distort images; the data are not images"
            )
        if model not in ("mps", "ttn", "circuit"):
            raise InvalidInputError(
                f"--augment-shift and --augment-rotation train classifiers, not --model {model}"
            )
        fit_options["augment"] = RandomAffine(
            shape, max_shift=options.augment_shift, max_rotation=options.augment_rotation
        )
    estimator = make_estimator(model, params, shape)
    if rank == 0:
        check_or_record_run(checkpoint, run_identity(model, estimator, data, fit_options), resume)
    if is_born_machine(estimator):
        if options.distributed:
            raise InvalidInputError("--distributed trains classifiers; not Born machines yet")
        return _train_born(estimator, data, model, out, checkpoint, resume, report)
    started = time.perf_counter()
    try:
        estimator.fit(
            data.X_train,
            data.y_train,
            checkpoint_path=checkpoint,
            resume=resume,
            **fit_options,
        )
    except KeyboardInterrupt:
        raise TrainingInterrupted(checkpoint) from None
    seconds = time.perf_counter() - started
    if rank != 0:  # every process holds the same model; one reports and saves it
        return None
    n_test = len(data.y_test)
    accuracy = float(estimator.score(data.X_test, data.y_test)) if n_test else None
    metadata = {
        **data.metadata,
        "model": model,
        "test_accuracy": accuracy,
        "n_test": n_test,
        "train_seconds": round(seconds, 3),
    }
    tnml_io.save(estimator, out, metadata=metadata)
    checkpoint.unlink(missing_ok=True)
    run_record_path(checkpoint).unlink(missing_ok=True)
    if accuracy is None:
        report("test accuracy: no test split (--test-fraction 0)")
    else:
        report(f"test accuracy {accuracy:.4f} ({n_test} samples, {data.test_name})")
    epochs_run = getattr(estimator, "n_iter_", None)
    ran = f" ({epochs_run} epoch{'s' * (epochs_run != 1)})" if epochs_run is not None else ""
    report(f"training time {seconds:.1f} s{ran}")
    report(f"saved model to {out}")
    return metadata


def _train_born(
    estimator: Any,
    data: TrainingData,
    model: str,
    out: Path,
    checkpoint: Path,
    resume: bool,
    report: Callable[[str], None],
) -> dict[str, Any]:
    """``tnml train --model *-born``: fit on the discretised training data, report NLLs."""
    X_train = discretize(data.X_train, data.metadata)
    X_test = discretize(data.X_test, data.metadata)
    started = time.perf_counter()
    try:
        estimator.fit(X_train, checkpoint_path=checkpoint, resume=resume)
    except KeyboardInterrupt:
        raise TrainingInterrupted(checkpoint) from None
    seconds = time.perf_counter() - started
    train_nll = estimator.nll(X_train)
    test_nll = estimator.nll(X_test) if len(X_test) else None
    metadata = {
        **data.metadata,
        "model": model,
        "discretize": {"binary_threshold": 0.5}
        if (data.metadata.get("preprocessing") or {}).get("kind") == "image"
        else None,
        "train_nll": train_nll,
        "test_nll": test_nll,
        "n_test": len(X_test),
        "train_seconds": round(seconds, 3),
    }
    tnml_io.save(estimator, out, metadata=metadata)
    checkpoint.unlink(missing_ok=True)
    run_record_path(checkpoint).unlink(missing_ok=True)
    report(f"train NLL {train_nll:.3f} nats per sample ({len(X_train)} samples)")
    if test_nll is not None:
        report(f"test NLL {test_nll:.3f} nats per sample ({len(X_test)} samples, {data.test_name})")
    report(f"training time {seconds:.1f} s ({estimator.n_iter_} sweeps/epochs)")
    report(f"saved model to {out}")
    return metadata
