"""``MPSAnomalyDetector``: a Born machine fitted on normal data, scored by log-likelihood.

After Aizpurua, Palmer and Orus (2023, MPS for explainable anomaly detection): the detector
learns a Born machine ``psi`` from the normal data and calls a sample anomalous when its
log-likelihood is low. It has scikit-learn's outlier-detector face (``fit``,
``score_samples``, ``decision_function``, ``predict`` with a ``contamination`` threshold), so
it drops into the same pipelines as ``IsolationForest`` or ``OneClassSVM``.

Each sample becomes a product state ``Phi(x) = (x)_j phi_j(x_j)`` and its score is the Born
log-probability ``log |<Phi(x)|psi>|^2 / <psi|psi>``, the probability that measuring the
model state finds the sample's product state (at most 0). Columns may mix kinds:

- numeric, ``encoding="trig"``: scaled to [0, 1] by the training range and
  embedded as ``[cos(pi x / 2), sin(pi x / 2)]``; at 0 and 1 these are the basis states, so
  on binary data the score is exactly the discrete Born machine's log-likelihood, and grey
  values interpolate between them;
- numeric, ``encoding="bins"`` (default): cut into ``n_bins`` levels (quantile or uniform edges from
  the training data), one-hot;
- categorical: one-hot over the training categories. A category never seen in training has
  probability zero; its sample gets the finite floor score ``UNSEEN_SCORE``.

The MPS is trained by two-site sweeps (:func:`tnml.train.born_sweep.train_born_sweep`).
"""

from __future__ import annotations

import math
import os
from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
import torch
from sklearn.base import BaseEstimator, OutlierMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, check_random_state

from tnml.data import scale_unit
from tnml.estimators.base import (
    DTYPES,
    FIT_TIME_CONSTRAINTS,
    checked_data,
    record_fit,
    resolve_device,
    with_fit_time_params,
)
from tnml.exceptions import InvalidInputError
from tnml.features import embed
from tnml.nn.born import MPSBornModule
from tnml.tensor.born import mps_log_density
from tnml.tensor.mps import MPS
from tnml.train.born_sweep import train_born_sweep
from tnml.train.loop import Callback

ENCODINGS = ("trig", "bins")
BINNINGS = ("quantile", "uniform")
# Score of a sample with a category (or a level) the training data never showed.
UNSEEN_SCORE = -1e10
SWEEP_DEFAULT_LR = 1e-2


def _category_key(value: object) -> str:
    """One value's key: a number (not a bool) by its value, so ``2``, ``2.0``, ``np.int8(2)``
    and the string ``"2.0"`` are one category; a string that is not how a number prints
    (``"02139"``, ``" 1"``, ``"1e0"``) and anything else by ``str(value)``."""
    if isinstance(value, (bool, np.bool_)):
        return str(value)
    if isinstance(value, (Integral, np.integer)):
        return str(int(value))  # exact at any size
    if isinstance(value, (Real, np.floating)):
        number = float(value)
        if math.isfinite(number) and number.is_integer() and abs(number) < 2.0**53:
            return str(int(number))
        return str(value)  # numpy prints a float32 0.1 as "0.1", as its own float64 does
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        # only the way Python or NumPy print a number: "3", "3.0", "2.5", "1e+17"
        if value == str(number) or (number.is_integer() and value == str(int(number))):
            return _category_key(number)
        return value
    return str(value)


_category_key_array = np.frompyfunc(_category_key, 1, 1)


def category_keys(values: np.ndarray) -> np.ndarray:
    """String keys (n,) of categorical ``values`` (n,), each from its value alone
    (:func:`_category_key`), so a key never depends on the rest of a batch."""
    values = np.asarray(values)
    if values.dtype.kind in "iub":
        return values.astype(str)  # exact integers; booleans as "True" / "False"
    if values.dtype.kind == "f":
        keys = values.astype(str).astype(object)
        whole = np.isfinite(values) & (values == np.round(values)) & (np.abs(values) < 2.0**53)
        keys[whole] = values[whole].astype(np.int64).astype(str)
        return keys.astype(str)
    if values.size == 0:
        return values.astype(str)
    return _category_key_array(values.astype(object)).astype(str)


def quantile_edges(values: np.ndarray, n_bins: int) -> np.ndarray:
    """Inner edges of at most ``n_bins`` bins at the quantiles of ``values`` (n,), each moved to
    the midpoint between two neighbouring distinct values: a quantile between two values to
    the midpoint between them; one on a value held by many samples just above that value,
    or, when that edge is taken or the value is the largest, just below it. A column with
    at most ``n_bins`` distinct values gets one bin per value. (An edge on a tied value put
    it into the bin below: a skewed binary column, both quantiles at 1, had 0 and 1 share a
    bin and the other bin empty.)"""
    distinct = np.unique(values)
    if len(distinct) <= n_bins:
        return (distinct[:-1] + distinct[1:]) / 2
    cuts = np.quantile(values, np.arange(1, n_bins) / n_bins)
    # edge k lies between distinct[k - 1] and distinct[k], 1 <= k < len(distinct)
    above = np.searchsorted(distinct, cuts, side="right")
    on_value = distinct[np.maximum(above - 1, 0)] == cuts
    taken: set[int] = set()
    for k, tied in zip(above.tolist(), on_value.tolist(), strict=True):
        for edge in (k, k - 1) if tied else (k,):
            if 1 <= edge < len(distinct) and edge not in taken:
                taken.add(edge)
                break
    chosen = np.array(sorted(taken), dtype=np.int64)
    return (distinct[chosen - 1] + distinct[chosen]) / 2


def _is_dataframe(X: Any) -> bool:
    return hasattr(X, "columns") and hasattr(X, "dtypes") and hasattr(X, "iloc")


class MPSAnomalyDetector(OutlierMixin, BaseEstimator):
    """Anomaly detection with an MPS Born machine trained on normal data only.

    Parameters
    ----------
    bond_dim : int, default=16
        Largest bond dimension of the Born machine.
    encoding : {"bins", "trig"}, default="bins"
        How numeric columns become site vectors (see the module docstring). "bins" suits
        general tabular data; "trig" suits values concentrated near the ends of their range,
        such as image pixels (on one-class MNIST it beats binning by 0.02-0.04 AUROC).
    feature_dim : int, default=2
        ``encoding="trig"``: local dimension ``d`` of the map (``d > 2``: its ``d``-level
        generalisation, finer resolution of each value).
    n_bins : int, default=3
        ``encoding="bins"``: levels per numeric column.
    binning : {"quantile", "uniform"}, default="quantile"
        ``encoding="bins"``: bin edges at training quantiles (each moved midway between the
        two distinct training values around it; a column with at most ``n_bins`` distinct
        values gets a bin per value), or equal widths over each column's training range; a
        value equal to an edge falls in the lower bin. Values beyond the training range fall
        in the end bins (and ``encoding="trig"`` clips them): how far outside the range a
        value lies does not lower its score.
    categorical_features : None, "auto", or array-like of int or bool, default="auto"
        Which columns are categorical. "auto": non-numeric columns of a DataFrame or an
        object array (numeric arrays: none).
    contamination : float in (0, 0.5], default=0.1
        Expected share of outliers in the training data; sets the threshold ``offset_`` of
        :meth:`predict` at that quantile of the training scores.
    epochs : int, default=10
        Sweeps (each left to right and back).
    lr : float or None, default=None
        Sweep step size (None: 1e-2).
    steps_per_bond : int, default=5
        Gradient steps per bond tensor before it is split.
    cutoff : float, default=1e-7
        Relative singular-value cutoff of the splits.
    random_state : int, RandomState or None
    device : str, default="cpu"
        Where to train and score ("cpu", "cuda", "cuda:1", or "auto").
    dtype : {"float64", "float32"}, default="float64"
    verbose : int, default=0
    warm_start : bool, default=False
        Continue from the fitted state on the next ``fit``, with the column encoders of the
        first fit (the new data must have the same columns), instead of starting afresh.
    checkpoint_path : str or path-like, optional
        Write a checkpoint here after every epoch; ``fit(..., resume=True)`` continues from it.
    callback : callable, optional
        ``callback(state, metrics)`` after every epoch (``metrics`` its ``history_`` entry);
        returning True stops training.

    Attributes
    ----------
    module_ : MPSBornModule
        The fitted Born machine's cores.
    scales_ : list of (float, float) or None
        Per numeric column with ``encoding="trig"``: training (min, max); else None.
    bin_edges_ : list of ndarray or None
        Per numeric column with ``encoding="bins"``: the inner bin edges; else None.
    categories_ : list of ndarray or None
        Per categorical column: the training categories as string keys (equal numbers share
        a key whatever their type: ``2``, ``2.0`` and ``"2"`` are one category); else None.
    offset_ : float
        ``decision_function = score_samples - offset_``; negative means outlier.
    history_ : list of dict
        Per sweep: training NLL.
    n_features_in_ : int

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> normal = rng.normal(size=(300, 6))
    >>> detector = MPSAnomalyDetector(bond_dim=4, epochs=2, random_state=0).fit(normal)
    >>> detector.predict(normal[:5]).shape
    (5,)
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "checkpoint_path": FIT_TIME_CONSTRAINTS["checkpoint_path"],
        "callback": FIT_TIME_CONSTRAINTS["callback"],
        "bond_dim": [Interval(Integral, 1, None, closed="left")],
        "encoding": [StrOptions(set(ENCODINGS))],
        "feature_dim": [Interval(Integral, 2, None, closed="left")],
        "n_bins": [Interval(Integral, 2, None, closed="left")],
        "binning": [StrOptions(set(BINNINGS))],
        "categorical_features": [None, StrOptions({"auto"}), "array-like"],
        "contamination": [Interval(Real, 0, 0.5, closed="right")],
        "epochs": [Interval(Integral, 1, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither"), None],
        "steps_per_bond": [Interval(Integral, 1, None, closed="left")],
        "cutoff": [Interval(Real, 0, None, closed="left")],
        "random_state": ["random_state"],
        "device": [str],
        "dtype": [StrOptions(set(DTYPES))],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
    }
    _module_class = MPSBornModule

    def __init__(
        self,
        bond_dim: int = 16,
        *,
        encoding: str = "bins",
        feature_dim: int = 2,
        n_bins: int = 3,
        binning: str = "quantile",
        categorical_features: Any = "auto",
        contamination: float = 0.1,
        epochs: int = 10,
        lr: float | None = None,
        steps_per_bond: int = 5,
        cutoff: float = 1e-7,
        random_state: Any = None,
        device: str = "cpu",
        dtype: str = "float64",
        verbose: int = 0,
        warm_start: bool = False,
        checkpoint_path: str | os.PathLike[str] | None = None,
        callback: Callback | None = None,
    ) -> None:
        self.bond_dim = bond_dim
        self.encoding = encoding
        self.feature_dim = feature_dim
        self.n_bins = n_bins
        self.binning = binning
        self.categorical_features = categorical_features
        self.contamination = contamination
        self.epochs = epochs
        self.lr = lr
        self.steps_per_bond = steps_per_bond
        self.cutoff = cutoff
        self.random_state = random_state
        self.device = device
        self.dtype = dtype
        self.verbose = verbose
        self.warm_start = warm_start
        self.checkpoint_path = checkpoint_path
        self.callback = callback

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.categorical = True
        tags.input_tags.string = True
        return tags

    # -- columns ----------------------------------------------------------------------------
    def _columns(self, X: Any) -> list[np.ndarray]:
        """X (already checked 2-D by ``checked_data``) as a list of 1-D columns (object
        columns kept as object)."""
        if _is_dataframe(X):
            return [np.asarray(X.iloc[:, j]) for j in range(X.shape[1])]
        array = np.asarray(X)
        return [array[:, j] for j in range(array.shape[1])]

    def _categorical_mask(self, columns: list[np.ndarray]) -> np.ndarray:
        n = len(columns)
        spec = self.categorical_features
        if spec is None:
            return np.zeros(n, dtype=bool)
        if isinstance(spec, str):  # "auto"
            return np.array([c.dtype.kind not in "biuf" for c in columns], dtype=bool)
        spec = np.asarray(spec)
        if spec.dtype == bool:
            if spec.shape != (n,):
                raise InvalidInputError(
                    f"categorical_features as a mask must have {n} entries, got {spec.shape}"
                )
            return spec
        mask = np.zeros(n, dtype=bool)
        for j in spec.tolist():
            if not isinstance(j, int) or not -n <= j < n:
                raise InvalidInputError(
                    f"categorical_features must hold column indices in [0, {n}), got {j!r}"
                )
            mask[j] = True
        return mask

    @staticmethod
    def _numeric(column: np.ndarray, j: int) -> np.ndarray:
        try:
            numeric = column.astype(np.float64)
        except (TypeError, ValueError):
            raise InvalidInputError(
                f"X column {j} holds non-numeric values; list it in categorical_features"
            ) from None
        if not np.all(np.isfinite(numeric)):
            raise InvalidInputError(f"X column {j} holds NaN or infinity")
        return numeric

    def _fit_encoders(self, columns: list[np.ndarray]) -> None:
        categorical = self._categorical_mask(columns)
        self.categories_, self.bin_edges_, self.scales_ = [], [], []
        for j, column in enumerate(columns):
            category = edges = scale = None
            if categorical[j]:
                category = np.unique(category_keys(column))
            else:
                numeric = self._numeric(column, j)
                if self.encoding == "trig":
                    _, low, high = scale_unit(numeric[:, None])
                    scale = (float(low[0]), float(high[0]))
                elif self.binning == "quantile":
                    edges = quantile_edges(numeric, self.n_bins)
                else:
                    low, high = numeric.min(), numeric.max()
                    edges = np.unique(low + (high - low) * np.arange(1, self.n_bins) / self.n_bins)
            self.categories_.append(category)
            self.bin_edges_.append(edges)
            self.scales_.append(scale)

    def _site_vectors(self, columns: list[np.ndarray]) -> tuple[list[torch.Tensor], np.ndarray]:
        """Columns -> per-site vectors (n, d_j) and a mask of samples with unseen categories."""
        n = columns[0].shape[0]
        dtype = DTYPES[self.dtype]
        vectors: list[torch.Tensor] = []
        unseen = np.zeros(n, dtype=bool)
        for j, column in enumerate(columns):
            if self.categories_[j] is not None:
                # keys of the stored categories too: a model saved before they were keyed by
                # value holds "2.0" for a float column; their order is the one-hot's
                cats = category_keys(self.categories_[j])
                order = np.argsort(cats, kind="stable")
                values = category_keys(column)
                sorted_at = np.minimum(np.searchsorted(cats[order], values), len(cats) - 1)
                position = order[sorted_at]
                found = cats[position] == values
                unseen |= ~found
                width = max(len(cats), 2)
                onehot = np.zeros((n, width))
                onehot[np.flatnonzero(found), position[found]] = 1.0
                vectors.append(torch.as_tensor(onehot, dtype=dtype))
            elif self.scales_[j] is not None:
                low, high = self.scales_[j]
                unit = scale_unit(
                    self._numeric(column, j)[:, None], np.array([low]), np.array([high])
                )[0][:, 0]
                vectors.append(
                    embed(torch.as_tensor(unit, dtype=dtype)[:, None], "trig", self.feature_dim)[
                        :, 0
                    ]
                )
            else:
                edges = self.bin_edges_[j]
                codes = np.searchsorted(edges, self._numeric(column, j), side="left")
                onehot = np.zeros((n, max(len(edges) + 1, 2)))
                onehot[np.arange(n), codes] = 1.0
                vectors.append(torch.as_tensor(onehot, dtype=dtype))
        if len(vectors) == 1:  # a chain needs 2 sites: a constant second one
            vectors.append(torch.tensor([[1.0, 0.0]], dtype=dtype).expand(n, 2))
        return vectors, unseen

    # -- fitting ----------------------------------------------------------------------------
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any = None, **train_kwargs: Any) -> MPSAnomalyDetector:
        """Fit the Born machine to ``X`` (n_samples, n_features) of normal data.

        ``y`` is ignored; ``train_kwargs`` go to
        :func:`tnml.train.born_sweep.train_born_sweep` (``checkpoint_path``, ``resume``,
        ``callback``).
        """
        train_kwargs = with_fit_time_params(self, train_kwargs)
        # scikit-learn's checks (shape, sparse, complex, sample count, feature names); the
        # columns are then read from X itself so a DataFrame keeps each column's dtype
        warm = self.warm_start and hasattr(self, "module_")
        checked_data(
            self, X, dtype=None, ensure_all_finite=False, ensure_min_samples=2, reset=not warm
        )
        columns = self._columns(X)
        if not warm:
            self._fit_encoders(columns)
        device, dtype = resolve_device(self.device), DTYPES[self.dtype]
        vectors, _ = self._site_vectors(columns)
        vectors = [v.to(device) for v in vectors]
        dims = [v.shape[1] for v in vectors]
        seed = int(check_random_state(self.random_state).randint(0, 2**31 - 1))
        if warm:
            start = self.module_.to_mps()
            start = MPS([core.to(device=device, dtype=dtype) for core in start.cores])
        else:
            start = MPS.random(
                len(dims),
                dims,
                min(2, self.bond_dim),
                generator=torch.Generator().manual_seed(seed),
                dtype=dtype,
                device=device,
            )
        result = train_born_sweep(
            start,
            vectors,
            n_sweeps=self.epochs,
            max_bond=self.bond_dim,
            cutoff=self.cutoff,
            lr=SWEEP_DEFAULT_LR if self.lr is None else self.lr,
            n_steps=self.steps_per_bond,
            progress=bool(self.verbose),
            **train_kwargs,
        )
        self.module_ = MPSBornModule.from_mps(result.model)
        record_fit(self, result)
        scores = self._score_vectors(vectors, np.zeros(len(columns[0]), dtype=bool))
        self.offset_ = float(np.quantile(scores, self.contamination))
        return self

    # -- saving (tnml.io) -------------------------------------------------------------------
    def _extra_state(self) -> dict[str, Any]:
        """JSON-serialisable fitted state besides the module: encoders and threshold."""
        return {
            "offset": self.offset_,
            "scales": [None if s is None else list(s) for s in self.scales_],
            "bin_edges": [None if e is None else e.tolist() for e in self.bin_edges_],
            "categories": [None if c is None else c.tolist() for c in self.categories_],
        }

    def _restore_extra_state(self, state: dict[str, Any]) -> None:
        self.offset_ = float(state["offset"])
        self.scales_ = [None if s is None else tuple(s) for s in state["scales"]]
        self.bin_edges_ = [None if e is None else np.asarray(e) for e in state["bin_edges"]]
        self.categories_ = [None if c is None else np.asarray(c) for c in state["categories"]]

    # -- scoring ----------------------------------------------------------------------------
    def to_mps(self) -> MPS:
        """The fitted state as a normalised, right-canonical :class:`~tnml.tensor.MPS`."""
        check_is_fitted(self)
        return self.module_.to_mps()

    def _score_vectors(
        self, vectors: list[torch.Tensor], unseen: np.ndarray, batch_size: int = 4096
    ) -> np.ndarray:
        state = self.module_.to_mps()
        scores = np.empty(vectors[0].shape[0])
        with torch.no_grad():
            for start in range(0, len(scores), batch_size):
                chunk = [
                    v[start : start + batch_size].to(device=state.device, dtype=state.dtype)
                    for v in vectors
                ]
                scores[start : start + batch_size] = mps_log_density(state, chunk).cpu().numpy()
        scores[unseen | ~np.isfinite(scores)] = UNSEEN_SCORE
        return scores

    def score_samples(self, X: Any) -> np.ndarray:
        """Log-likelihood of each sample under the normal-data model, shape (n_samples,).

        ``log |<Phi(x)|psi>|^2`` for the normalised model state (at most 0; higher is more
        normal, scikit-learn's convention); ``UNSEEN_SCORE`` for a sample with a
        category never seen in training.
        """
        check_is_fitted(self)
        checked_data(self, X, dtype=None, ensure_all_finite=False, reset=False)
        vectors, unseen = self._site_vectors(self._columns(X))
        return self._score_vectors(vectors, unseen)

    def decision_function(self, X: Any) -> np.ndarray:
        """``score_samples(X) - offset_``, shape (n_samples,): negative for outliers."""
        return self.score_samples(X) - self.offset_

    def predict(self, X: Any) -> np.ndarray:
        """+1 for inliers, -1 for outliers, shape (n_samples,)."""
        return np.where(self.decision_function(X) < 0, -1, 1)
