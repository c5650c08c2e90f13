"""Shared scikit-learn face of the tensor-network classifiers.

Subclasses say how to build their ``torch.nn.Module`` (:meth:`_build_module`); this base does
the rest: validation, input scaling, label encoding, training through
:func:`tnml.train.train_classifier`, prediction, and the fitted state that :mod:`tnml.io`
saves.
"""

from __future__ import annotations

import inspect
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.model_selection import train_test_split
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, check_random_state, validate_data
from torch import nn

from tnml.data import scale_unit
from tnml.exceptions import InvalidInputError
from tnml.train.autodiff import LR_SCHEDULES, OPTIMIZERS, SELECTIONS, train_classifier
from tnml.train.loop import FitResult

SCALINGS = ("auto", "minmax", "none")
AUTODIFF_DEFAULT_LR = 2e-3
LR_REFERENCE_SITES = 196
LR_REFERENCE_BOND = 10
"""Adam moves every entry of every core at once, so the change of the model's log-amplitudes
in one step grows with the number of cores and with their size: the default step of an MPS is
``AUTODIFF_DEFAULT_LR`` up to this many sites and this bond, and shrinks as ``1 / n_sites``
and as ``1 / bond_dim`` beyond (``default_adam_lr``; the D table's hand-picked steps
were ``0.01 / D`` already). Measured on validation data (MNIST training images,
``benchmarks/defaults_probe_10k.py``: 10,000 images, two epochs, two subsets, scored on images
50,000-59,999; benchmarks/RESULTS.md): 784 sites (28x28), bond 10: 87.7% at 2e-3, 94.3% at
1e-3, 95.2% at 7.5e-4, **95.4% at 5e-4** (the rule's), 93.9% at 2.5e-4; bond 20: 93.6% at 1e-3,
96.2% at 5e-4, **96.3% at 2.5e-4**; 196 sites (14x14), bond 20: 95.9% at 2e-3, **96.4% at
1e-3**, 95.8% at 5e-4; bond 40: 73.0% at 2e-3 (one run diverged), **96.8% at 5e-4**, 96.4% at
2.5e-4; bond 10: 2e-3 best (1.5e-3 and 3e-3 lower, four subsets); digits' 64 sites, bond 10
(12 splits of the quickstart's training part): 98.1% at 2e-3, 97.6% at 4e-3, 97.1% at 6e-3, so
short chains and small bonds keep 2e-3."""
AUTODIFF_DEFAULT_BATCH_SIZE = 16
MAX_DEFAULT_BATCH_SIZE = 64
STEPS_PER_EPOCH = 1000
"""The default mini-batch (``batch_size=None``) starts at 16 and doubles, up to 64, while an
epoch would take more than this many steps: small data sets need the steps, large ones the
throughput (MNIST 14x14, 50,000 images, D = 10, three epochs, validation accuracy and training
seconds per epoch: batch 16 93.8 / 97.1 / 97.8% at 28 s, batch 64 96.4 / 97.6 / 97.9% at 8 s;
10,000 images, two epochs: batch 16 95.3-95.7%, batch 32 94.8-95.1%)."""


def default_adam_lr(n_sites: int, bond_dim: int | None = None) -> float:
    """Adam's default step for a network of ``n_sites`` feature sites (chain sites, tree
    leaves) and bond ``bond_dim`` (see LR_REFERENCE_SITES): ``2e-3 * min(1, 196 / n_sites) *
    min(1, 10 / bond_dim)``; ``bond_dim=None`` leaves out the bond's factor (trees, where it
    was not measured)."""
    sites = min(1.0, LR_REFERENCE_SITES / max(n_sites, 1))
    bond = 1.0 if bond_dim is None else min(1.0, LR_REFERENCE_BOND / max(bond_dim, 1))
    return AUTODIFF_DEFAULT_LR * sites * bond


def default_batch_size(n_samples: int) -> int:
    """The autodiff mini-batch for ``n_samples`` training samples (see STEPS_PER_EPOCH)."""
    batch = AUTODIFF_DEFAULT_BATCH_SIZE
    while batch < MAX_DEFAULT_BATCH_SIZE and n_samples > STEPS_PER_EPOCH * batch:
        batch *= 2
    return batch


SWEEP_STEPS_PER_PASS = 40
SWEEP_MIN_BATCH_SIZE = 16
SWEEP_MAX_BATCH_SIZE = 100
"""The sweeps' default mini-batch (``trainer="sweep"``, ``batch_size=None``, gradient steps):
``n // 40`` samples, at least 16 and at most 100 (and at most ``n``): a bond's pass takes 40
steps from 640 to 4,000 samples, fewer below (n / 16), more above (n / 100), where batches of
100 cost least per sample. One full-batch step per bond, the default before, left the bonds
far from their optimum: digits (the quickstart's training part,
12 stratified 75/25 splits, 3 sweeps to bond 16, validation accuracy) full batch 96.27%,
batch 16 96.81%, 32 96.93%, 64 96.88%, 100 96.56%; MNIST 14x14, 10,000 images, bond 10, 3
sweeps: batch 100 92.4% in 41 s, batch 16 91.7% in 168 s; 54,000 images, bond 20: batch 100
2.15% test error, full batch 3.12%."""


def default_sweep_batch_size(n_samples: int) -> int:
    """The sweeps' mini-batch for ``n_samples`` training samples (see SWEEP_STEPS_PER_PASS)."""
    batch = min(max(n_samples // SWEEP_STEPS_PER_PASS, SWEEP_MIN_BATCH_SIZE), SWEEP_MAX_BATCH_SIZE)
    return min(batch, max(n_samples, 1))


# Adam on the generators of orthogonal gates: on digits pairs (8x8, tree and MPS circuits,
# 20 epochs) 0.02 reached 95-100% test accuracy where 2e-3 was still far from converged.
UNITARY_DEFAULT_LR = 2e-2
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def checked_data(estimator: Any, X: Any, y: Any = "no_validation", **kwargs: Any) -> Any:
    r"""scikit-learn's ``validate_data``, its ``ValueError``\ s raised as
    :class:`~tnml.exceptions.InvalidInputError` (still a ``ValueError``) so the command line
    reports them in one line."""
    try:
        return validate_data(estimator, X, y, **kwargs)
    except InvalidInputError:
        raise
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from None


#: Training options an estimator takes as parameters (so ``set_params`` and a grid search
#: reach them) and ``fit`` as keywords (which win): where checkpoints go, what runs after
#: every epoch, how autodiff mini-batches are distorted.
FIT_TIME_PARAMS = ("checkpoint_path", "callback", "augment")

FIT_TIME_CONSTRAINTS: dict[str, list[Any]] = {
    "checkpoint_path": [str, os.PathLike, None],
    "callback": [callable, None],
    "augment": [callable, None],
}


def with_fit_time_params(estimator: Any, train_kwargs: dict[str, Any]) -> dict[str, Any]:
    """``train_kwargs`` completed with the estimator's fit-time parameters that are set and
    that ``fit`` was not given."""
    given = {
        name: getattr(estimator, name)
        for name in FIT_TIME_PARAMS
        if getattr(estimator, name, None) is not None
    }
    return {**given, **train_kwargs}


def record_fit(estimator: Any, result: FitResult) -> None:
    """Copy a trainer's result onto ``estimator``: ``history_``, ``n_iter_``, ``best_epoch_``."""
    estimator.history_ = result.history
    estimator.n_iter_ = len(result.history)
    estimator.best_epoch_ = result.best_epoch


def resolve_device(device: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; other strings as torch reads them."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise InvalidInputError(f"device={device!r} was asked for but CUDA is not available")
    return resolved


def check_unitary_options(model: Any) -> None:
    """Reject parameters a unitary (circuit) model cannot honour, naming them."""
    if getattr(model, "trainer", "autodiff") != "autodiff":
        raise InvalidInputError(
            f"unitary=True trains by autodiff on the gates' generators; got "
            f"trainer={model.trainer!r}"
        )
    if model.feature_map != "trig" or model.feature_dim != 2:
        raise InvalidInputError(
            "unitary=True loads every feature into one qubit, cos(pi x/2)|0> + sin(pi x/2)|1>: "
            f"it needs feature_map='trig' and feature_dim=2, got {model.feature_map!r} and "
            f"{model.feature_dim}"
        )


def _same_option(value: Any, default: Any) -> bool:
    """Whether a parameter value asks for its default: equal, or a float within rounding of
    it (``0.1**10`` is the cutoff ``1e-10``)."""
    if isinstance(value, Real) and isinstance(default, Real) and not isinstance(value, bool):
        return math.isclose(float(value), float(default), rel_tol=1e-9, abs_tol=0.0)
    return bool(value is default or value == default)


def check_trainer_options(model: Any, names: Iterable[str], used_by: str) -> None:
    """Refuse parameters of ``model`` that its trainer ignores: each of ``names`` set to
    anything but its default in the estimator's signature; ``used_by`` says what does use
    them (e.g. ``"trainer='sweep'"``). A parameter at its default asks for nothing."""
    signature = inspect.signature(type(model)).parameters
    changed = [
        f"{name}={getattr(model, name)!r}"
        for name in names
        if not _same_option(getattr(model, name), signature[name].default)
    ]
    if changed:
        raise InvalidInputError(
            f"{', '.join(changed)} {'apply' if len(changed) > 1 else 'applies'} to {used_by} "
            f"only and would be ignored here; leave {'them' if len(changed) > 1 else 'it'} "
            "at the default"
        )


@dataclass
class ClassifierRun:
    """What one ``fit`` hands a classifier's trainer: training inputs in [0, 1] ``(n, F)``
    and class indices ``(n,)``, the validation split (or None), the seed and the keywords
    for the trainer."""

    X: torch.Tensor
    y: torch.Tensor
    X_val: torch.Tensor | None
    y_val: torch.Tensor | None
    seed: int
    train_kwargs: dict[str, Any]
    warm: bool = False  # continues a fitted module (warm_start)


class TNClassifierBase(ClassifierMixin, BaseEstimator):
    """Base class of the tensor-network classifiers; not meant to be used directly."""

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **FIT_TIME_CONSTRAINTS,
        "epochs": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left"), None],
        "lr": [Interval(Real, 0, None, closed="neither"), None],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "optimizer": [StrOptions(set(OPTIMIZERS))],
        "lr_schedule": [StrOptions(set(LR_SCHEDULES)), None],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"), None],
        "select_by": [StrOptions(set(SELECTIONS))],
        "scaling": [StrOptions(set(SCALINGS))],
        "random_state": ["random_state"],
        "device": [str],
        "dtype": [StrOptions(set(DTYPES))],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
    }

    # -- to be provided by subclasses -------------------------------------------------------
    _module_class: type[nn.Module]
    _unitary_module_class: type[nn.Module] | None = None

    @classmethod
    def _module_class_for(cls, params: dict[str, Any]) -> type[nn.Module]:
        """The module class a model with these parameters holds (for :mod:`tnml.io`)."""
        if params.get("unitary") and cls._unitary_module_class is not None:
            return cls._unitary_module_class
        return cls._module_class

    def _default_lr(self, n_features: int) -> float:
        """Adam's step when ``lr=None``, for ``n_features`` input features
        (``default_adam_lr`` with ``_default_lr_bond``; 0.02 for circuit forms)."""
        if getattr(self, "unitary", False):
            return UNITARY_DEFAULT_LR
        return default_adam_lr(n_features, self._default_lr_bond())

    def _default_lr_bond(self) -> int | None:
        """The bond the default step shrinks with; None: the step does not (trees)."""
        return None

    def _build_module(self, n_features: int, n_classes: int) -> nn.Module:
        raise NotImplementedError

    def _train_module(self, run: ClassifierRun) -> None:
        """Train ``self.module_`` by mini-batch autodiff; set ``history_``, ``n_iter_``, ..."""
        result = train_classifier(
            self.module_,
            run.X,
            run.y,
            X_val=run.X_val,
            y_val=run.y_val,
            epochs=self.epochs,
            batch_size=default_batch_size(run.X.shape[0])
            if self.batch_size is None
            else self.batch_size,
            lr=self._default_lr(run.X.shape[1]) if self.lr is None else self.lr,
            optimizer=self.optimizer,
            weight_decay=self.weight_decay,
            lr_schedule="cosine" if self.lr_schedule is None else self.lr_schedule,
            patience=self.n_iter_no_change,
            select_by=self.select_by,
            seed=run.seed,
            progress=bool(self.verbose),
            **run.train_kwargs,
        )
        record_fit(self, result)

    # -- fitting ----------------------------------------------------------------------------
    def _fit(self, X: Any, y: Any, **train_kwargs: Any) -> TNClassifierBase:
        train_kwargs = with_fit_time_params(self, train_kwargs)
        if self.n_iter_no_change is not None and self.validation_fraction == 0:
            raise InvalidInputError(
                "n_iter_no_change stops on the validation score; validation_fraction=0 holds "
                "out no validation data (set validation_fraction > 0, or n_iter_no_change=None)"
            )
        reuse = self.warm_start and hasattr(self, "module_")
        # a warm fit continues the first fit's model: its features (names and order) and its
        # scaling, checked before any state changes so a refused fit leaves the model usable
        X, y = checked_data(
            self, X, y, dtype=[np.float64, np.float32], y_numeric=False, reset=not reuse
        )
        check_classification_targets(y)
        classes, y_encoded = np.unique(y, return_inverse=True)
        if classes.shape[0] < 2:
            raise InvalidInputError(
                f"{type(self).__name__} needs samples of at least 2 classes in y; "
                f"got 1 class ({classes.tolist()[0]!r})"
            )
        if reuse and not np.array_equal(classes, self.classes_):
            raise InvalidInputError(
                "warm_start=True but y holds other classes than the first fit: "
                f"{classes.tolist()} vs {self.classes_.tolist()}"
            )
        if reuse and not isinstance(self.module_, self._module_class_for(self.get_params())):
            raise InvalidInputError(
                f"warm_start=True continues the fitted {type(self.module_).__name__}, but "
                f"unitary={getattr(self, 'unitary', False)} asks for another kind of model: "
                "refit with warm_start=False (or convert with tnml.quantum.to_unitary)"
            )
        self.classes_ = classes
        if not reuse:
            self._fit_scaling(X)
        device = resolve_device(self.device)
        dtype = DTYPES[self.dtype]
        seed = int(check_random_state(self.random_state).randint(0, 2**31 - 1))

        X_unit = self._to_unit(X)
        X_train, y_train, X_val, y_val = self._validation_split(X_unit, y_encoded, seed)
        if not reuse:
            self.module_ = self._build_module(X.shape[1], classes.shape[0]).to(device, dtype)
            generator = torch.Generator().manual_seed(seed)
            self.module_.reset_parameters(generator=generator)
        self.module_ = self.module_.to(device, dtype)

        def as_tensor(a: np.ndarray | None, target: bool = False) -> torch.Tensor | None:
            if a is None:
                return None
            if target:
                return torch.as_tensor(a, dtype=torch.long, device=device)
            return torch.as_tensor(np.ascontiguousarray(a), dtype=dtype, device=device)

        self._train_module(
            ClassifierRun(
                as_tensor(X_train),
                as_tensor(y_train, target=True),
                as_tensor(X_val),
                as_tensor(y_val, target=True),
                seed,
                train_kwargs,
                warm=reuse,
            )
        )
        return self

    def _validation_split(
        self, X: np.ndarray, y: np.ndarray, seed: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
        """Hold out ``validation_fraction`` of the samples, stratified, when there are enough."""
        n_val = math.floor(self.validation_fraction * X.shape[0])
        n_classes = self.classes_.shape[0]
        if n_val < n_classes or X.shape[0] - n_val < n_classes:
            return X, y, None, None
        counts = np.bincount(y, minlength=n_classes)
        stratify = y if counts.min() >= 2 else None
        X_train, X_val, y_train, y_val = train_test_split(
            X, y, test_size=n_val, stratify=stratify, random_state=seed
        )
        return X_train, y_train, X_val, y_val

    # -- input scaling ----------------------------------------------------------------------
    def _fit_scaling(self, X: np.ndarray) -> None:
        inside = X.size == 0 or (X.min() >= 0.0 and X.max() <= 1.0)
        self.data_min_ = None
        self.data_max_ = None
        if self.scaling == "none" or (self.scaling == "auto" and inside):
            return
        names = getattr(self, "feature_names_in_", None)
        _, low, high = scale_unit(X.astype(np.float64), feature_names=names)
        self.data_min_, self.data_max_ = low, high

    def _to_unit(self, X: np.ndarray) -> np.ndarray:
        """Map features into [0, 1] with the fitted scaling (clipping unseen extremes)."""
        if self.data_min_ is None:
            if X.size and (X.min() < 0.0 or X.max() > 1.0):
                raise InvalidInputError(
                    f"X must lie in [0, 1] for this model (scaling={self.scaling!r}); found "
                    f"values in [{X.min():.4g}, {X.max():.4g}]"
                )
            return X
        return scale_unit(X.astype(np.float64), self.data_min_, self.data_max_)[0]

    # -- prediction -------------------------------------------------------------------------
    def _logits(self, X: Any, batch_size: int = 2048) -> np.ndarray:
        check_is_fitted(self)
        X = checked_data(self, X, dtype=[np.float64, np.float32], reset=False)
        X = self._to_unit(X)
        param = next(self.module_.parameters())
        outputs = []
        self.module_.eval()
        with torch.no_grad():
            for start in range(0, X.shape[0], batch_size):
                chunk = torch.as_tensor(
                    np.ascontiguousarray(X[start : start + batch_size]),
                    dtype=param.dtype,
                    device=param.device,
                )
                outputs.append(self.module_(chunk).double().cpu())
        return torch.cat(outputs).numpy()

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities, shape (n_samples, n_classes), rows summing to one.

        With ``readout="born"`` these are the Born-rule probabilities ``f_l^2 / sum_k f_k^2``.
        """
        logits = self._logits(X)
        logits -= logits.max(axis=1, keepdims=True)
        proba = np.exp(logits)
        return proba / proba.sum(axis=1, keepdims=True)

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """Natural log of :meth:`predict_proba`, shape (n_samples, n_classes)."""
        logits = self._logits(X)
        return logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)

    def predict(self, X: Any) -> np.ndarray:
        """Most probable class of each sample, shape (n_samples,)."""
        logits = self._logits(X)
        return self.classes_[np.argmax(logits, axis=1)]
