"""``CircuitClassifier``: a classifier that is a hardware-native circuit, scikit-learn face."""

from __future__ import annotations

import os
from numbers import Integral, Real
from typing import Any, ClassVar

from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval, StrOptions

from tnml.estimators.base import UNITARY_DEFAULT_LR, TNClassifierBase
from tnml.exceptions import InvalidInputError
from tnml.nn.circuit import LAYOUTS, CircuitClassifierModule, n_label_qubits
from tnml.tensor.gates import BLOCKS
from tnml.train.augment import Augment
from tnml.train.loop import Callback


class CircuitClassifier(TNClassifierBase):
    """Classifier whose model is a circuit of native one- and two-qubit gates.

    ``n_qubits`` qubits on a line; each feature is re-uploaded as ``RY(angle_scale * pi * x)``
    on one qubit and followed by ``blocks_per_feature`` two-qubit blocks on neighbouring
    qubits (:class:`~tnml.nn.circuit.CircuitClassifierModule`); the label is
    what the first ``ceil(log2 n_classes)`` qubits measure. It is an MPS classifier of bond
    ``2**n_qubits`` whose cores are made of gates, trained exactly (state-vector simulation,
    autodiff, Adam) and compiled by :func:`tnml.quantum.compile` into a circuit of
    ``2 * round(n_features * blocks_per_feature)`` CX (``"so4"`` blocks) that needs no SWAP
    on a line of the device and no reset.

    Parameters
    ----------
    n_qubits : int or None, default=None
        Register size; None means ``max(4, label qubits + 2)``.
    blocks_per_feature : float, default=2
        Two-qubit blocks after each data rotation, on average: the circuit has
        ``round(n_features * blocks_per_feature)`` blocks (``"so4"``: 2 CX each), so
        ``max_two_qubit_gates / (2 * n_features)`` fills a CX budget.
    angle_scale : float, default=0.25
        Factor of the data rotations' angles (see the module).
    block : {"so4", "u4"}, default="so4"
        Real rotations (6 angles, 2 CX) or general unitaries (15 angles, 3 CX).
    layout : {"snake", "staircase", "brickwork"}, default="snake"
        How blocks walk over the line of qubits (forwards and back, forwards, or even edges
        then odd ones).
    epochs : int, default=20
    batch_size : int, default=32
    lr : float or None, default=None
        Adam's step on the block angles (default 0.02).
    max_grad_norm : float or None, default=None
        Clip the global gradient norm.
    weight_decay : float, default=0.0
    optimizer : {"adam", "adamw", "sgd"}, default="adam"
    lr_schedule : {"cosine", "constant", "plateau"}, default="cosine"
    validation_fraction : float, default=0.1
        Held out (stratified) to pick the epoch whose weights are kept.
    n_iter_no_change : int or None, default=None
    select_by : {"loss", "accuracy"}, default="loss"
    scaling : {"auto", "minmax", "none"}, default="auto"
    init_std : float, default=1e-2
        Spread of the initial block angles.
    random_state : int, RandomState instance or None, default=None
    device : str, default="cpu"
    dtype : {"float32", "float64"}, default="float32"
    verbose : int, default=0
    warm_start : bool, default=False
    checkpoint_path : str or path-like, optional
        Write a checkpoint here after every epoch; ``fit(..., resume=True)`` continues from it.
    callback : callable, optional
        ``callback(state, metrics)`` after every epoch (``metrics`` its ``history_`` entry);
        returning True stops training.
    augment : callable, optional
        ``augment(X_batch, generator) -> X_batch`` distorting every autodiff mini-batch, e.g.
        :class:`tnml.train.RandomAffine`.

    Attributes
    ----------
    module_ : CircuitClassifierModule
    classes_, n_features_in_, data_min_, data_max_, history_, n_iter_, best_epoch_
        As for :class:`~tnml.MPSClassifier`.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> X, y = load_digits(return_X_y=True)
    >>> keep = y < 2
    >>> clf = CircuitClassifier(n_qubits=3, epochs=2, random_state=0)
    >>> clf = clf.fit(X[keep] / 16, y[keep])
    >>> clf.module_.n_blocks
    128
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **TNClassifierBase._parameter_constraints,
        "n_qubits": [Interval(Integral, 2, None, closed="left"), None],
        "blocks_per_feature": [Interval(Real, 0, None, closed="neither")],
        "angle_scale": [Interval(Real, 0, None, closed="neither")],
        "block": [StrOptions(set(BLOCKS))],
        "layout": [StrOptions(set(LAYOUTS))],
        "init_std": [Interval(Real, 0, None, closed="left")],
        "max_grad_norm": [Interval(Real, 0, None, closed="neither"), None],
    }
    _module_class = CircuitClassifierModule

    def __init__(
        self,
        n_qubits: int | None = None,
        *,
        blocks_per_feature: float = 2,
        angle_scale: float = 0.25,
        block: str = "so4",
        layout: str = "snake",
        epochs: int = 20,
        batch_size: int = 32,
        lr: float | None = None,
        max_grad_norm: float | None = None,
        weight_decay: float = 0.0,
        optimizer: str = "adam",
        lr_schedule: str = "cosine",
        validation_fraction: float = 0.1,
        n_iter_no_change: int | None = None,
        select_by: str = "loss",
        scaling: str = "auto",
        init_std: float = 1e-2,
        random_state: Any = None,
        device: str = "cpu",
        dtype: str = "float32",
        verbose: int = 0,
        warm_start: bool = False,
        checkpoint_path: str | os.PathLike[str] | None = None,
        callback: Callback | None = None,
        augment: Augment | None = None,
    ) -> None:
        self.n_qubits = n_qubits
        self.blocks_per_feature = blocks_per_feature
        self.angle_scale = angle_scale
        self.block = block
        self.layout = layout
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.max_grad_norm = max_grad_norm
        self.weight_decay = weight_decay
        self.optimizer = optimizer
        self.lr_schedule = lr_schedule
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.select_by = select_by
        self.scaling = scaling
        self.init_std = init_std
        self.random_state = random_state
        self.device = device
        self.dtype = dtype
        self.verbose = verbose
        self.warm_start = warm_start
        self.checkpoint_path = checkpoint_path
        self.callback = callback
        self.augment = augment

    def _default_lr(self, n_features: int) -> float:
        return UNITARY_DEFAULT_LR

    def _build_module(self, n_features: int, n_classes: int) -> CircuitClassifierModule:
        if self.n_qubits is not None and self.n_qubits < n_label_qubits(n_classes):
            raise InvalidInputError(
                f"n_qubits={self.n_qubits} cannot hold the label of {n_classes} classes: use "
                f"n_qubits >= {n_label_qubits(n_classes)}"
            )
        return CircuitClassifierModule(
            n_features,
            n_classes,
            self.n_qubits,
            blocks_per_feature=self.blocks_per_feature,
            angle_scale=self.angle_scale,
            block=self.block,
            layout=self.layout,
            init_std=self.init_std,
        )

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any, **train_kwargs: Any) -> CircuitClassifier:
        """Fit the circuit to ``X`` (n_samples, n_features) and labels ``y`` (n_samples,).

        ``train_kwargs`` go to :func:`tnml.train.train_classifier` (``checkpoint_path``,
        ``resume``, ``callback``, ``max_grad_norm``).
        """
        train_kwargs.setdefault("max_grad_norm", self.max_grad_norm)
        return self._fit(X, y, **train_kwargs)
