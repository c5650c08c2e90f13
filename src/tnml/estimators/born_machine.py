"""Born machines with a scikit-learn face: ``p(x) = |psi(x)|^2 / Z`` over discrete inputs.

:class:`MPSBornMachine` (Han et al. 2018) is trained by two-site sweeps with SVD bond
adaptation (:func:`tnml.train.born_sweep.train_born_sweep`) or by mini-batch autodiff on the
negative log-likelihood (:func:`tnml.train.train_classifier` with ``objective="nll"``). Both
give exact log-likelihoods, exact marginals and exact independent samples, optionally
conditioned on observed features (inpainting). :class:`TTNBornMachine` is the same on a
tree tensor network (2D patches for images), trained by autodiff.

Inputs are integer arrays: column ``j`` takes values ``0 .. n_levels_[j] - 1`` (binary pixels,
categories, quantised levels).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.base import BaseEstimator, DensityMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, check_random_state
from torch import nn

from tnml.estimators.base import (
    DTYPES,
    FIT_TIME_CONSTRAINTS,
    check_trainer_options,
    checked_data,
    record_fit,
    resolve_device,
    with_fit_time_params,
)
from tnml.exceptions import InvalidInputError
from tnml.nn.born import MPSBornModule, TTNBornModule
from tnml.nn.unitary import UnitaryMPSBornModule
from tnml.tensor.born import mps_log_prob, mps_marginal_log_prob, mps_sample
from tnml.tensor.mps import MPS
from tnml.tensor.ttn import TTN
from tnml.tensor.ttn_born import ttn_log_prob, ttn_marginal_log_prob, ttn_sample
from tnml.tensor.unitary import n_qubits_of
from tnml.train.autodiff import LR_SCHEDULES, OPTIMIZERS, train_classifier
from tnml.train.bond_sweeper import SWEEP_TRUNCATIONS
from tnml.train.born_sweep import train_born_sweep
from tnml.train.loop import Callback
from tnml.train.ttn_born_sweep import train_ttn_born_sweep

BORN_TRAINERS = ("sweep", "autodiff")
SWEEP_DEFAULT_LR = 1e-2
TTN_SWEEP_DEFAULT_LR = 5e-3
AUTODIFF_DEFAULT_LR = 1e-2
# The largest dense tensor to_dense() builds (entries).
MAX_DENSE_ENTRIES = 2**24
# The most values one sample() call returns (2 GiB of int64): more is drawn in batches.
MAX_SAMPLE_ENTRIES = 2**28


def check_discrete(X: np.ndarray, name: str = "X") -> np.ndarray:
    """Integer-valued, non-negative, finite ``X`` as int64; clear error otherwise."""
    if X.dtype.kind == "O":  # numbers in an object array (e.g. from a DataFrame) are fine;
        try:  # a value that is neither a number nor a string is a TypeError, as in sklearn
            X = X.astype(np.float64)
        except ValueError:  # strings: the message below names the first value
            pass
    if X.dtype.kind not in "biuf":
        raise InvalidInputError(
            f"{name} must hold integer values (categories or levels 0, 1, ...), got dtype "
            f"{X.dtype} ({X.flat[0]!r} ...)"
            if X.size
            else f"{name} must hold integer values, got dtype {X.dtype}"
        )
    if X.size and not np.all(np.isfinite(X)):
        raise InvalidInputError(f"{name} must not contain NaN or infinity")
    as_int = np.rint(X).astype(np.int64) if X.dtype.kind == "f" else X.astype(np.int64)
    if X.dtype.kind == "f" and X.size and not np.array_equal(as_int, X):
        raise InvalidInputError(
            f"{name} must hold integer values (categories or levels 0, 1, ...), found "
            f"{X[as_int != X].flat[0].item()!r}; discretise continuous data first"
        )
    if X.size and as_int.min() < 0:
        raise InvalidInputError(
            f"{name} must hold non-negative integers (levels 0, 1, ...); Negative values in "
            f"data: {as_int.min()}"
        )
    return as_int


def _check_levels(X: np.ndarray, levels: np.ndarray, name: str) -> None:
    """Refuse a value of ``X`` (n_samples, n_features) at or above its column's number of
    ``levels`` (n_features,): the model gives it no probability."""
    levels = np.asarray(levels)
    if X.ndim != 2 or X.shape[1] != levels.shape[0]:
        raise InvalidInputError(
            f"{name} must have {levels.shape[0]} features (the model's), got shape {X.shape}"
        )
    too_big = X.max(axis=0) >= levels if X.size else np.zeros(0, dtype=bool)
    if too_big.any():
        j = int(np.flatnonzero(too_big)[0])
        raise InvalidInputError(
            f"{name}[:, {j}] holds the value {X[:, j].max()} but the model's levels there are "
            f"0 .. {levels[j] - 1} (n_levels, or the first fit's levels with warm_start)"
        )


def _evidence_columns(evidence: object) -> dict[int, torch.Tensor]:
    """``{feature: int or n ints}`` as int64 tensors; values that are not whole numbers
    (0.9, "1") are refused here rather than rounded. Ranges are checked by the algebra."""
    if not isinstance(evidence, Mapping):
        raise InvalidInputError(
            f"evidence must be a dict {{feature: value}}, got {type(evidence).__name__}"
        )
    columns = {}
    for key, value in evidence.items():
        if isinstance(key, (bool, np.bool_)) or not isinstance(key, Integral):
            raise InvalidInputError(f"evidence keys must be feature indices (int), got {key!r}")
        values = check_discrete(np.atleast_1d(np.asarray(value)), f"evidence[{int(key)}]")
        columns[int(key)] = torch.as_tensor(values.reshape(-1))
    return columns


# The Born machines' autodiff options that their sweeps do not read.
_AUTODIFF_MINI_BATCH = ("batch_size", "optimizer", "lr_schedule", "weight_decay")


@dataclass
class BornRun:
    """What one ``fit`` hands a Born machine's trainer: the encoded data (and validation
    data), the seeded generator and seed, where and in what dtype to train, and the keywords
    for the trainer."""

    data: torch.Tensor
    val: torch.Tensor | None
    generator: torch.Generator
    seed: int
    device: torch.device
    dtype: torch.dtype
    train_kwargs: dict[str, Any]


class BornMachineBase(DensityMixin, BaseEstimator):
    """Shared face of the Born machines; subclasses say how to train and which algebra to use.

    Subclasses provide ``_train(run)`` (a :class:`BornRun`)
    (sets ``module_`` and ``history_``), ``_state()`` (the normalised network), and the
    functions ``_log_prob_fn``, ``_marginal_fn``, ``_sample_fn`` of their tensor algebra.
    """

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True
        tags.input_tags.categorical = True  # integer levels 0, 1, ... (what the checks feed)
        return tags

    # -- fitting ----------------------------------------------------------------------------
    def _fit(self, X: Any, train_kwargs: dict[str, Any]) -> BornMachineBase:
        train_kwargs = with_fit_time_params(self, train_kwargs)
        other = "autodiff" if self.trainer == "sweep" else "sweep"
        check_trainer_options(self, self._OTHER_TRAINERS_ONLY[other], f"trainer={other!r}")
        warm = self.warm_start and hasattr(self, "module_")
        # a warm fit keeps the first fit's features and levels, checked before any state
        # changes so a refused fit leaves the model usable
        X = checked_data(self, X, dtype=None, ensure_min_features=2, reset=not warm)
        X = check_discrete(np.asarray(X))
        if warm:
            levels = self.n_levels_
        elif self.n_levels is None:
            levels = np.maximum(self._levels_for(X), 2)
        else:
            levels = np.broadcast_to(np.asarray(self.n_levels), (X.shape[1],))
            if levels.dtype.kind not in "iu" or levels.min() < 2:
                raise InvalidInputError(
                    "n_levels must be an int >= 2 or one int >= 2 per feature, got "
                    f"{self.n_levels!r}"
                )
        _check_levels(X, levels, "X")
        self.n_levels_ = np.asarray(levels).astype(np.int64)
        device = resolve_device(self.device)
        dtype = DTYPES[self.dtype]
        seed = int(check_random_state(self.random_state).randint(0, 2**31 - 1))
        generator = torch.Generator().manual_seed(seed)
        data = torch.as_tensor(X, device=device)
        X_val = train_kwargs.pop("X_val", None)
        val = None
        if X_val is not None:
            X_val = self._check_input(X_val, "X_val")
            _check_levels(X_val, self.n_levels_, "X_val")
            val = torch.as_tensor(X_val, device=device)
        self._train(BornRun(data, val, generator, seed, device, dtype, train_kwargs))
        return self

    def _levels_for(self, X: np.ndarray) -> np.ndarray:
        return X.max(axis=0) + 1

    def _sweep_kwargs(self, run: BornRun, default_lr: float) -> dict[str, Any]:
        """The keywords both sweep trainers take from the estimator (and ``fit``)."""
        return {
            "X_val": run.val,
            "n_sweeps": self.epochs,
            "lr": default_lr if self.lr is None else self.lr,
            "grad_floor": self.grad_floor,
            "lr_decay": self.lr_decay,
            "progress": bool(self.verbose),
            **run.train_kwargs,
        }

    def _train_autodiff(self, run: BornRun) -> None:
        """Adam (or the chosen optimizer) on the mean NLL of ``module_``; sets ``history_``."""
        result = train_classifier(
            self.module_,
            run.data,
            None,
            X_val=run.val,
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=AUTODIFF_DEFAULT_LR if self.lr is None else self.lr,
            optimizer=self.optimizer,
            weight_decay=self.weight_decay,
            lr_schedule=self.lr_schedule,
            seed=run.seed,
            progress=bool(self.verbose),
            objective="nll",
            **run.train_kwargs,
        )
        record_fit(self, result)

    # -- validation -------------------------------------------------------------------------
    def _check_input(self, X: Any, name: str = "X") -> np.ndarray:
        check_is_fitted(self)
        X = checked_data(self, X, dtype=None, reset=False)
        return check_discrete(np.asarray(X), name)

    # -- likelihoods ------------------------------------------------------------------------
    def log_prob(self, X: Any, batch_size: int = 4096) -> np.ndarray:
        """Natural log of ``p(x)`` for each row of ``X``, shape (n_samples,).

        A value outside ``0 .. n_levels_[j] - 1`` was never seen in training and has
        probability zero: its row gets ``-inf``.
        """
        X = self._check_input(X)
        unseen = (X >= self.n_levels_).any(axis=1)
        X = np.minimum(X, self.n_levels_ - 1)
        state = self._state()
        out = np.empty(X.shape[0])
        with torch.no_grad():
            for start in range(0, X.shape[0], batch_size):
                chunk = torch.as_tensor(X[start : start + batch_size], device=state.device)
                out[start : start + batch_size] = self._log_prob_fn(state, chunk).double().cpu()
        out[unseen] = -np.inf
        return out

    def score_samples(self, X: Any) -> np.ndarray:
        """Log-likelihood of each sample, shape (n_samples,) (same as :meth:`log_prob`)."""
        return self.log_prob(X)

    def score(self, X: Any, y: Any = None) -> float:
        """Mean log-likelihood of the rows of ``X`` (nats; higher is better)."""
        return float(np.mean(self.log_prob(X)))

    def nll(self, X: Any) -> float:
        """Mean negative log-likelihood of the rows of ``X`` in nats (lower is better)."""
        return -self.score(X)

    def marginal_log_prob(self, features: Any, values: Any) -> np.ndarray:
        """Log of the marginal probability of ``values`` at ``features``.

        Parameters
        ----------
        features : sequence of int
            Distinct feature indices ``S``.
        values : array of shape (n, len(S))
            Observed values of those features, row by row.

        Returns
        -------
        ndarray of shape (n,)
        """
        check_is_fitted(self)
        features = [int(f) for f in np.atleast_1d(features)]
        values = check_discrete(np.atleast_2d(np.asarray(values)), "values")
        state = self._state()
        tensor = torch.as_tensor(values, device=state.device)
        return self._marginal_fn(state, features, tensor).double().cpu().numpy()

    # -- sampling ---------------------------------------------------------------------------
    def sample(
        self,
        n_samples: int = 1,
        *,
        evidence: dict[int, Any] | None = None,
        random_state: Any = None,
    ) -> np.ndarray:
        """Exact independent samples, shape (n_samples, n_features), int64.

        Parameters
        ----------
        n_samples : int
        evidence : dict {feature: value}, optional
            Observed features, each an int or an array of ``n_samples`` values (one per
            sample, e.g. the visible pixels of images to inpaint); the rest are drawn from the
            exact conditional distribution given them.
        random_state : int, RandomState or None
        """
        check_is_fitted(self)
        if isinstance(n_samples, Integral) and n_samples * self.n_features_in_ > MAX_SAMPLE_ENTRIES:
            raise InvalidInputError(
                f"n_samples={n_samples} would hold {n_samples * self.n_features_in_} values "
                f"(more than {MAX_SAMPLE_ENTRIES}); draw them in batches"
            )
        state = self._state()
        seed = int(check_random_state(random_state).randint(0, 2**31 - 1))
        generator = torch.Generator(device=state.device).manual_seed(seed)
        torch_evidence = None if evidence is None else _evidence_columns(evidence)
        return (
            self._sample_fn(state, n_samples, evidence=torch_evidence, generator=generator)
            .cpu()
            .numpy()
        )

    # -- exports ----------------------------------------------------------------------------
    def to_dense(self) -> np.ndarray:
        """The normalised amplitude tensor ``psi`` of shape ``tuple(n_levels_)`` (small models).

        ``psi ** 2`` is the probability table; its entries sum to one.
        """
        check_is_fitted(self)
        size = math.prod(self.n_levels_.tolist())
        if size > MAX_DENSE_ENTRIES:
            raise InvalidInputError(
                f"to_dense() would build {size} entries (more than {MAX_DENSE_ENTRIES}); it is "
                "meant for small models"
            )
        psi = self._state().to_dense().double()
        return (psi / torch.linalg.vector_norm(psi)).cpu().numpy()


class MPSBornMachine(BornMachineBase):
    """Generative matrix-product-state model with exact likelihoods and exact sampling.

    ``p(x) = psi(x)^2 / sum_x' psi(x')^2`` with ``psi`` an MPS over the ``N`` features, each
    feature a site of dimension ``n_levels_[j]``.

    Parameters
    ----------
    bond_dim : int, default=16
        Bond dimension: ``"autodiff"`` gives every bond this dimension (capped at the exact
        rank near the ends); ``"sweep"`` starts the bonds at 2 (as Han et al.) and grows them
        up to ``max_bond``, which defaults to ``bond_dim``.
    max_bond : int or None, default=None
        Sweeps: the largest bond the splits keep (the same word as
        :class:`~tnml.MPSClassifier`'s); None means ``bond_dim``.
    trainer : {"sweep", "autodiff"}, default="sweep"
        Two-site sweeps with SVD truncation (Han et al. 2018), or Adam on the mean NLL.
    cutoff : float, default=1e-7
        Sweeps: singular values below ``cutoff`` times the largest are dropped.
    n_levels : int, array-like of int, or None, default=None
        Values per feature (one for all, or one per feature); None: ``max + 1`` of each
        column of the training data (at least 2).
    epochs : int, default=10
        Sweeps (each left to right and back) or autodiff epochs.
    lr : float or None, default=None
        Step size; None: 1e-2 for both trainers.
    steps_per_bond : int, default=5
        Sweeps: gradient steps on each bond tensor before it is split.
    grad_floor : bool, default=False
        Sweeps: scale a bond gradient whose norm is below ``numel ** 0.25`` up to that norm
        (the rule of Han et al.'s public code), so steps keep a minimum size where the NLL
        surface is flat. On binarised MNIST (D = 100) it reaches in 10 sweeps what plain
        steps do not in 85; use it with ``lr=5e-3``, ``steps_per_bond=1``, ``lr_decay=0.2``
        and ``cutoff=0`` (benchmarks/RESULTS.md).
    lr_decay : float or None, default=None
        Sweeps: multiply the step size by this after a sweep that raised the training NLL.
    truncation : {"norm", "data"}, default="norm"
        Sweeps: how each split truncates, in the bond tensor's norm (Han et al.) or in the
        metric of the training samples' environments, which keeps what the data see (see
        :func:`tnml.train.train_born_sweep`; on binarised MNIST it fits better, RESULTS.md).
    batch_size : int, default=64
        Autodiff mini-batch size.
    optimizer, lr_schedule, weight_decay : str, str, float
        Autodiff options, as in :func:`tnml.train.train_classifier`.
    init_std : float, default=1e-2
        Autodiff: noise on the identity-like start (the uniform distribution).
    random_state : int, RandomState or None
        Seeds the initial state and the batch order.
    device : str, default="cpu"
    dtype : {"float64", "float32"}, default="float64"
    verbose : int, default=0
        Show a progress bar while training.
    warm_start : bool, default=False
        Continue from the fitted state on the next ``fit`` (the first fit's features and
        levels: values beyond them are refused) instead of starting afresh.
    checkpoint_path : str or path-like, optional
        Write a checkpoint here after every epoch; ``fit(..., resume=True)`` continues from it.
    callback : callable, optional
        ``callback(state, metrics)`` after every epoch (``metrics`` its ``history_`` entry);
        returning True stops training.
    unitary : bool, default=False
        Keep the state in circuit form (binary features only; ``bond_dim`` a power of two):
        every core is an isometry, the first rows of an orthogonal gate
        (:class:`~tnml.nn.unitary.UnitaryMPSBornModule`), so the state is
        normalised at every step and :func:`tnml.quantum.compile` makes it a
        state-preparation circuit on ``log2(bond_dim) + 1`` qubits. ``trainer="autodiff"``
        trains the gates' generators directly (isometries throughout);
        ``trainer="sweep"`` keeps all cores but the centre isometric while it sweeps and
        stores the exact canonical form at the end.

    Attributes
    ----------
    module_ : MPSBornModule
        The fitted cores.
    n_levels_ : ndarray of shape ``(n_features_in_,)``
        Values per feature.
    n_features_in_ : int
    history_ : list of dict
        Per sweep / epoch: training NLL (nats), and more.
    best_epoch_ : int or None
        With ``X_val`` given to ``fit``: the sweep / epoch with the lowest validation NLL,
        whose state the model keeps; None without.
    n_iter_ : int

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).integers(0, 2, size=(200, 8))
    >>> model = MPSBornMachine(bond_dim=4, epochs=2, random_state=0).fit(X)
    >>> model.log_prob(X[:3]).shape
    (3,)
    >>> model.sample(5, random_state=0).shape
    (5, 8)
    """

    # parameters only the other trainer uses: fit refuses any value but their defaults
    _OTHER_TRAINERS_ONLY: ClassVar[dict[str, tuple[str, ...]]] = {
        "autodiff": _AUTODIFF_MINI_BATCH,
        "sweep": ("cutoff", "steps_per_bond", "grad_floor", "lr_decay"),
    }

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "checkpoint_path": FIT_TIME_CONSTRAINTS["checkpoint_path"],
        "callback": FIT_TIME_CONSTRAINTS["callback"],
        "bond_dim": [Interval(Integral, 1, None, closed="left")],
        "max_bond": [Interval(Integral, 1, None, closed="left"), None],
        "trainer": [StrOptions(set(BORN_TRAINERS))],
        "cutoff": [Interval(Real, 0, None, closed="left")],
        "n_levels": [Interval(Integral, 2, None, closed="left"), "array-like", None],
        "epochs": [Interval(Integral, 1, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither"), None],
        "steps_per_bond": [Interval(Integral, 1, None, closed="left")],
        "grad_floor": ["boolean"],
        "lr_decay": [Interval(Real, 0, 1, closed="neither"), None],
        "truncation": [StrOptions(set(SWEEP_TRUNCATIONS))],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "optimizer": [StrOptions(set(OPTIMIZERS))],
        "lr_schedule": [StrOptions(set(LR_SCHEDULES))],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "init_std": [Interval(Real, 0, None, closed="left")],
        "random_state": ["random_state"],
        "device": [str],
        "dtype": [StrOptions(set(DTYPES))],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "unitary": ["boolean"],
    }

    _module_class = MPSBornModule

    @classmethod
    def _module_class_for(cls, params: dict[str, Any]) -> type[nn.Module]:
        """The module class a model with these parameters holds (for :mod:`tnml.io`)."""
        return UnitaryMPSBornModule if params.get("unitary") else MPSBornModule

    def __init__(
        self,
        bond_dim: int = 16,
        *,
        max_bond: int | None = None,
        trainer: str = "sweep",
        cutoff: float = 1e-7,
        n_levels: int | Any | None = None,
        epochs: int = 10,
        lr: float | None = None,
        steps_per_bond: int = 5,
        grad_floor: bool = False,
        lr_decay: float | None = None,
        truncation: str = "norm",
        batch_size: int = 64,
        optimizer: str = "adam",
        lr_schedule: str = "cosine",
        weight_decay: float = 0.0,
        init_std: float = 1e-2,
        random_state: Any = None,
        device: str = "cpu",
        dtype: str = "float64",
        verbose: int = 0,
        warm_start: bool = False,
        checkpoint_path: str | os.PathLike[str] | None = None,
        callback: Callback | None = None,
        unitary: bool = False,
    ) -> None:
        self.bond_dim = bond_dim
        self.max_bond = max_bond
        self.trainer = trainer
        self.cutoff = cutoff
        self.n_levels = n_levels
        self.epochs = epochs
        self.lr = lr
        self.steps_per_bond = steps_per_bond
        self.grad_floor = grad_floor
        self.lr_decay = lr_decay
        self.truncation = truncation
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.lr_schedule = lr_schedule
        self.weight_decay = weight_decay
        self.init_std = init_std
        self.random_state = random_state
        self.device = device
        self.dtype = dtype
        self.verbose = verbose
        self.warm_start = warm_start
        self.checkpoint_path = checkpoint_path
        self.callback = callback
        self.unitary = unitary

    _log_prob_fn = staticmethod(mps_log_prob)
    _marginal_fn = staticmethod(mps_marginal_log_prob)
    _sample_fn = staticmethod(mps_sample)

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any = None, **train_kwargs: Any) -> MPSBornMachine:
        """Fit to ``X`` of shape (n_samples, n_features), integer values ``0 .. d - 1``.

        ``y`` is ignored. ``train_kwargs`` go to the trainer (``X_val``: an array like ``X``
        whose NLL is tracked; ``checkpoint_path``, ``resume``, ``callback``).
        """
        return self._fit(X, train_kwargs)

    def _state(self) -> MPS:
        return self.module_.to_mps()

    def to_mps(self) -> MPS:
        """The fitted state as a normalised, right-canonical :class:`~tnml.tensor.MPS`."""
        check_is_fitted(self)
        return self._state()

    def _train(self, run: BornRun) -> None:
        if "truncation" in run.train_kwargs:
            raise InvalidInputError(
                "truncation is a parameter of the estimator: MPSBornMachine(truncation=...)"
            )
        if self.truncation != "norm" and self.trainer != "sweep":
            raise InvalidInputError(
                f"truncation chooses how the sweeps split bond tensors; trainer="
                f"{self.trainer!r} does not split (use trainer='sweep')"
            )
        phys = self.n_levels_.tolist()
        previous = getattr(self, "module_", None) if self.warm_start else None
        if previous is not None and list(previous.phys_dims) != phys:
            raise InvalidInputError(
                "warm_start=True but X has other features or levels than the first fit"
            )
        if self.max_bond is not None and self.trainer != "sweep":
            raise InvalidInputError(
                f"max_bond caps the sweeps' bonds; trainer={self.trainer!r} gives every bond "
                "bond_dim (leave max_bond=None)"
            )
        if self.unitary and self.max_bond not in (None, self.bond_dim):
            raise InvalidInputError(
                "unitary=True keeps every bond at bond_dim (its qubits); leave max_bond=None"
            )
        if self.unitary:
            n_qubits_of(self.bond_dim, "bond_dim")
            if any(d != 2 for d in phys):
                raise InvalidInputError(
                    "unitary=True emits one qubit per feature: every feature needs 2 levels "
                    f"(n_levels=2), got levels {sorted(set(phys))}"
                )
        if self.trainer == "sweep":
            if previous is not None:
                start = previous.to_mps()
                start = MPS([c.to(device=run.device, dtype=run.dtype) for c in start.cores])
            else:
                start = MPS.random(
                    len(phys),
                    phys,
                    min(2, self.bond_dim if self.max_bond is None else self.max_bond),
                    generator=run.generator,
                    dtype=run.dtype,
                    device=run.device,
                )
            result = train_born_sweep(
                start,
                run.data,
                max_bond=self.bond_dim if self.max_bond is None else self.max_bond,
                cutoff=self.cutoff,
                n_steps=self.steps_per_bond,
                truncation=self.truncation,
                **self._sweep_kwargs(run, SWEEP_DEFAULT_LR),
            )
            if self.unitary:
                self.module_ = UnitaryMPSBornModule.from_mps(
                    result.model, self.bond_dim, device=run.device
                )
            else:
                self.module_ = MPSBornModule.from_mps(result.model, init_std=self.init_std)
            record_fit(self, result)
        else:
            if (
                self.unitary
                and previous is not None
                and not isinstance(previous, UnitaryMPSBornModule)
            ):
                previous = self.module_ = UnitaryMPSBornModule.from_mps(
                    previous.to_mps(), self.bond_dim, device=run.device
                )
            if previous is None and self.unitary:
                self.module_ = UnitaryMPSBornModule(
                    len(phys),
                    self.bond_dim,
                    init_std=self.init_std,
                    device=run.device,
                    dtype=run.dtype,
                )
                self.module_.reset_parameters(generator=run.generator)
            elif previous is None:
                self.module_ = MPSBornModule(
                    phys, self.bond_dim, init_std=self.init_std, device=run.device, dtype=run.dtype
                )
                self.module_.reset_parameters(generator=run.generator)
            self._train_autodiff(run)


class TTNBornMachine(BornMachineBase):
    """Generative tree-tensor-network model with exact likelihoods and exact sampling.

    ``p(x) = psi(x)^2 / sum_x' psi(x')^2`` with ``psi`` a binary tree tensor network over the
    ``N`` features (leaves); for images the tree merges square patches (2D layout), so
    neighbouring pixels meet low in the tree. Trained by mini-batch autodiff on the NLL or by
    one-site sweeps over the tree (:func:`tnml.train.ttn_born_sweep.train_ttn_born_sweep`);
    log-likelihoods, marginals and samples (optionally conditioned) are exact
    (:mod:`tnml.tensor.ttn_born`).

    Parameters
    ----------
    bond_dim : int, default=16
        Largest bond dimension; the bond above a node is ``min(bond_dim, D_left * D_right)``,
        and at most the dimension of the leaves outside its subtree (the rank it can carry).
    layout : "auto", "1d", "image" or (height, width), default="auto"
        Pairing of the features: ``"auto"`` takes ``"image"`` (a square image) when the
        number of features is a perfect square of at least 4, else ``"1d"``.
    n_levels : int or None, default=None
        Values per feature (one ``d`` for all leaves); None: the largest ``max + 1`` of the
        training columns.
    trainer : {"autodiff", "sweep"}, default="autodiff"
        Adam on the mean NLL, or one-site sweeps: the canonical centre walks the tree depth
        first and each node tensor takes gradient steps on the exact NLL (``epochs`` counts
        sweeps).
    epochs, lr, batch_size, optimizer, lr_schedule, weight_decay :
        Autodiff training, as in :func:`tnml.train.train_classifier` (``lr`` None: 1e-2).
        Sweeps use ``epochs`` and ``lr`` (None: 5e-3).
    steps_per_node : int, default=1
        Sweeps: gradient steps each time the centre arrives at a node.
    grad_floor : bool, default=True
        Sweeps: scale gradients whose norm is below ``numel ** 0.25`` up to that norm (see
        :class:`MPSBornMachine`).
    lr_decay : float or None, default=None
        Sweeps: multiply the step size by this after a sweep that raised the training NLL.
    max_grad_norm : float or None, default=None
        Clip the global gradient norm.
    init_std : float, default=1e-2
        Noise on the "folded copy" start.
    random_state, device, dtype, verbose, warm_start, checkpoint_path, callback :
        As in :class:`MPSBornMachine`.

    Attributes
    ----------
    module_ : TTNBornModule
    n_levels_ : ndarray of shape ``(n_features_in_,)``
    history_ : list of dict
    best_epoch_ : int or None
        As in :class:`MPSBornMachine`.
    n_iter_ : int

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).integers(0, 2, size=(200, 16))
    >>> model = TTNBornMachine(bond_dim=4, epochs=2, random_state=0).fit(X)
    >>> model.sample(3, random_state=0).shape
    (3, 16)
    """

    # grad_floor is absent: its default is True, and False asks autodiff for nothing new
    _OTHER_TRAINERS_ONLY: ClassVar[dict[str, tuple[str, ...]]] = {
        "autodiff": (*_AUTODIFF_MINI_BATCH, "max_grad_norm"),
        "sweep": ("steps_per_node", "lr_decay"),
    }

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "checkpoint_path": FIT_TIME_CONSTRAINTS["checkpoint_path"],
        "callback": FIT_TIME_CONSTRAINTS["callback"],
        "bond_dim": [Interval(Integral, 1, None, closed="left")],
        "layout": [StrOptions({"auto", "1d", "image"}), "array-like"],
        "n_levels": [Interval(Integral, 2, None, closed="left"), None],
        "trainer": [StrOptions(set(BORN_TRAINERS))],
        "epochs": [Interval(Integral, 1, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither"), None],
        "steps_per_node": [Interval(Integral, 1, None, closed="left")],
        "grad_floor": ["boolean"],
        "lr_decay": [Interval(Real, 0, 1, closed="neither"), None],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "optimizer": [StrOptions(set(OPTIMIZERS))],
        "lr_schedule": [StrOptions(set(LR_SCHEDULES))],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "max_grad_norm": [Interval(Real, 0, None, closed="neither"), None],
        "init_std": [Interval(Real, 0, None, closed="left")],
        "random_state": ["random_state"],
        "device": [str],
        "dtype": [StrOptions(set(DTYPES))],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
    }
    _module_class = TTNBornModule
    _log_prob_fn = staticmethod(ttn_log_prob)
    _marginal_fn = staticmethod(ttn_marginal_log_prob)
    _sample_fn = staticmethod(ttn_sample)

    def __init__(
        self,
        bond_dim: int = 16,
        *,
        layout: Any = "auto",
        n_levels: int | None = None,
        trainer: str = "autodiff",
        epochs: int = 10,
        lr: float | None = None,
        steps_per_node: int = 1,
        grad_floor: bool = True,
        lr_decay: float | None = None,
        batch_size: int = 64,
        optimizer: str = "adam",
        lr_schedule: str = "cosine",
        weight_decay: float = 0.0,
        max_grad_norm: float | None = None,
        init_std: float = 1e-2,
        random_state: Any = None,
        device: str = "cpu",
        dtype: str = "float64",
        verbose: int = 0,
        warm_start: bool = False,
        checkpoint_path: str | os.PathLike[str] | None = None,
        callback: Callback | None = None,
    ) -> None:
        self.bond_dim = bond_dim
        self.layout = layout
        self.n_levels = n_levels
        self.trainer = trainer
        self.epochs = epochs
        self.lr = lr
        self.steps_per_node = steps_per_node
        self.grad_floor = grad_floor
        self.lr_decay = lr_decay
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.lr_schedule = lr_schedule
        self.weight_decay = weight_decay
        self.max_grad_norm = max_grad_norm
        self.init_std = init_std
        self.random_state = random_state
        self.device = device
        self.dtype = dtype
        self.verbose = verbose
        self.warm_start = warm_start
        self.checkpoint_path = checkpoint_path
        self.callback = callback

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any = None, **train_kwargs: Any) -> TTNBornMachine:
        """Fit to ``X`` of shape (n_samples, n_features), integer values ``0 .. d - 1``.

        ``y`` is ignored; ``train_kwargs`` go to :func:`tnml.train.train_classifier`
        (``X_val``: an array like ``X`` whose NLL is tracked; ``checkpoint_path``,
        ``resume``, ``callback``).
        """
        return self._fit(X, train_kwargs)

    def _levels_for(self, X: np.ndarray) -> np.ndarray:
        # one physical dimension for every leaf
        return np.full(X.shape[1], X.max() + 1)

    def _layout_spec(self, n_features: int) -> Any:
        if self.layout != "auto":
            return self.layout
        side = math.isqrt(n_features)
        return "image" if side * side == n_features and side >= 2 else "1d"

    def _state(self) -> TTN:
        return self.module_.to_ttn()

    def to_ttn(self) -> TTN:
        """The fitted state as a normalised, canonical :class:`~tnml.tensor.ttn.TTN`."""
        check_is_fitted(self)
        return self._state()

    def _train(self, run: BornRun) -> None:
        if "truncation" in run.train_kwargs:
            raise InvalidInputError(
                "truncation chooses how MPSBornMachine's two-site sweeps split bond tensors; "
                "the tree's sweeps update one node at a time and do not split"
            )
        n_features = run.data.shape[1]
        phys_dim = int(self.n_levels_.max())
        previous = getattr(self, "module_", None) if self.warm_start else None
        if previous is not None and (
            previous.n_features != n_features or previous.phys_dim != phys_dim
        ):
            raise InvalidInputError(
                "warm_start=True but X has other features or levels than the first fit"
            )
        if previous is None:
            self.module_ = TTNBornModule(
                n_features,
                phys_dim,
                self.bond_dim,
                layout=self._layout_spec(n_features),
                init_std=self.init_std,
                device=run.device,
                dtype=run.dtype,
            )
            self.module_.reset_parameters(generator=run.generator)
        if self.trainer == "sweep":
            result = train_ttn_born_sweep(
                self.module_.to_ttn(),
                run.data,
                n_steps=self.steps_per_node,
                **self._sweep_kwargs(run, TTN_SWEEP_DEFAULT_LR),
            )
            self.module_.load_ttn(result.model)
            record_fit(self, result)
            return
        run.train_kwargs.setdefault("max_grad_norm", self.max_grad_norm)
        self._train_autodiff(run)
