"""``TTNClassifier``: the scikit-learn estimator around :class:`TTNClassifierModule`."""

from __future__ import annotations

import os
from numbers import Integral, Real
from typing import Any, ClassVar

from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval, StrOptions

from tnml.estimators.base import TNClassifierBase, check_unitary_options
from tnml.nn.ttn import READOUTS, TTNClassifierModule, resolve_layout
from tnml.nn.unitary import UnitaryTTNClassifierModule
from tnml.train.augment import Augment
from tnml.train.loop import Callback

LAYOUTS = ("auto", "1d", "image")


class TTNClassifier(TNClassifierBase):
    """Tree-tensor-network classifier with a scikit-learn face.

    Every feature becomes one leaf of a binary tree tensor network; each node merges its two
    children into a bond of dimension at most ``bond_dim`` and the root carries the label
    index ``l``. ``f_l(x) = <W_l | Phi(x)>`` is contracted bottom-up, layer by layer, with the
    product state of the embedded features (``log2(N)`` batched steps). On images the tree
    can follow the geometry: 1x2, 2x2, 2x4, 4x4 ... patches (``layout="image"``). Trained by
    mini-batch Adam on cross-entropy.

    Parameters
    ----------
    bond_dim : int, default=20
        Largest bond dimension ``D`` of the tree (the bond above a node is
        ``min(D, D_left * D_right)``). On digits (``layout="image"``) 20 gave 99.6% test
        accuracy against 98.5% for 10, at 1.3 times the fit time; 32 gained nothing (99.3%).
    feature_map : {"trig", "linear"}, default="trig"
        Local embedding: ``[cos(pi x/2), sin(pi x/2)]`` (and its ``feature_dim``-level form) or
        ``[1 - x, x]``.
    feature_dim : int, default=2
        Local dimension ``d`` of the feature map.
    readout : {"normalized", "born", "linear"}, default="normalized"
        ``"normalized"``: ``softmax(t f / ||f||)`` with a learned temperature ``t``.
        ``"born"``: ``p(l|x) = f_l^2 / sum_k f_k^2``, what a circuit measures on its label
        qubits. ``"linear"``: ``softmax(f)`` on the raw amplitudes.
    layout : {"auto", "1d", "image"} or (int, int), default="auto"
        How features are paired. ``"auto"`` and ``"1d"``: neighbours in column order (0-1,
        2-3, ..., then pairs of pairs). ``"image"``: the features are the pixels of a square
        image (row-major) and the tree merges neighbouring patches, alternately horizontally
        and vertically; ``(height, width)`` does the same for a rectangular image. On digits
        ``"image"`` reached 99.6% test accuracy against 97.9% for ``"1d"``.
    epochs : int, default=20
        Passes over the training data.
    batch_size : int, default=16
        Mini-batch size.
    lr : float or None, default=None
        Adam's step size (default ``2e-3 * min(1, 196 / n_features)``: 5e-4 for 784 MNIST
        pixels, where 2e-3 left the tree at chance; 0.02 with ``unitary=True``). Trees of
        hundreds of leaves train unreliably on small data: on 10,000 MNIST images at all 784
        pixels, two epochs at bond 20 gave 15-92% validation accuracy over four subsets and
        two random states (97.4% test accuracy on all 60,000 in three epochs), and twice the
        step collapsed runs to chance (``benchmarks/RESULTS.md``); downsampled images (196
        leaves) or more data and epochs are safer.
    max_grad_norm : float or None, default=0.1
        Clip the global gradient norm to this value at every step (None: no clipping). The
        Born loss has spikes where the amplitude of the true label crosses zero (gradient
        ``-2 / f_y``); on digits clipping raised the test accuracy from 87% to 98% with
        ``readout="born"`` and from 99.3% to 99.6% with ``"normalized"``. Passing
        ``max_grad_norm`` to :meth:`fit` overrides it.
    weight_decay : float, default=0.0
    optimizer : {"adam", "adamw", "sgd"}, default="adam"
    lr_schedule : {"cosine", "constant", "plateau"}, default="cosine"
    validation_fraction : float, default=0.1
        Fraction of the training data held out (stratified) to validate each epoch; the
        weights of the best epoch (``select_by``) are kept. 0 disables validation.
        Skipped when it would leave fewer samples than classes on either side.
    n_iter_no_change : int or None, default=None
        Early stopping: stop when the validation score (``select_by``) has not improved for
        this many epochs.
    select_by : {"loss", "accuracy"}, default="loss"
        Which epoch's weights are kept with validation data: the lowest validation loss or
        the highest validation accuracy (ties: the lower loss). Accuracy suits models that
        grow over-confident, whose validation loss rises while their accuracy still climbs.
    scaling : {"auto", "minmax", "none"}, default="auto"
        How features are mapped into [0, 1]: ``"minmax"`` learns each feature's range on the
        training data (clipping unseen extremes at predict time); ``"none"`` requires inputs in
        [0, 1]; ``"auto"`` leaves data already in [0, 1] as they are and min-max scales
        anything else.
    init_std : float, default=1e-2
        Noise added to the initial "copy" tensors (see
        :meth:`TTNClassifierModule.reset_parameters`).
    random_state : int, RandomState instance or None, default=None
        Seeds the initialisation, the validation split and the batch order.
    device : str, default="cpu"
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ... or ``"auto"``.
    dtype : {"float32", "float64"}, default="float32"
    verbose : int, default=0
        Show a progress bar when > 0.
    warm_start : bool, default=False
        Continue training the fitted module on the next ``fit``, with the first fit's
        features (count, names and order), classes and input scaling.
    checkpoint_path : str or path-like, optional
        Write a checkpoint here after every epoch; ``fit(..., resume=True)`` continues from it.
    callback : callable, optional
        ``callback(state, metrics)`` after every epoch (``metrics`` its ``history_`` entry);
        returning True stops training.
    augment : callable, optional
        ``augment(X_batch, generator) -> X_batch`` distorting every autodiff mini-batch, e.g.
        :class:`tnml.train.RandomAffine`.
    unitary : bool, default=False
        Train the quantum-circuit form instead (Huggins et al. 2019,
        :class:`~tnml.nn.unitary.UnitaryTTNClassifierModule`): every node is an
        orthogonal gate on its children's qubits that keeps ``log2(bond_dim)`` of them
        (``bond_dim`` a power of two; 2 gives the paper's two-qubit gates), discarded qubits
        are traced out and ``predict_proba`` is what the root's label qubits measure. Needs
        the qubit map (``feature_map="trig"``, ``feature_dim=2``); ``readout`` does not apply;
        ``init_std`` is the spread of the gates' generators. The default ``lr`` becomes 0.02.
        :func:`tnml.quantum.compile` turns the fitted model into a circuit.

    Attributes
    ----------
    module_ : TTNClassifierModule
        The fitted PyTorch module: (batch, n_features) floats in [0, 1] -> (batch, n_classes)
        logits; ``module_.to_ttn()`` gives the weights as a :class:`~tnml.tensor.ttn.TTN`.
    classes_ : ndarray of shape (n_classes,)
    n_features_in_ : int
    feature_names_in_ : ndarray of shape ``(n_features_in_,)``
        Only when ``X`` had string column names.
    data_min_, data_max_ : ndarray of shape ``(n_features_in_,)`` or None
        The learned min-max scaling (None when the data were used as they are).
    history_ : list of dict
        Per-epoch training/validation loss and accuracy, learning rate and seconds.
    n_iter_ : int
        Epochs run.
    best_epoch_ : int or None
        Epoch whose weights were kept (with validation).

    See Also
    --------
    TTNClassifierModule : the PyTorch module.
    MPSClassifier : the same model on a chain.

    Notes
    -----
    Passes ``sklearn.utils.estimator_checks.check_estimator`` with no check skipped. Training
    cost per sample is ``O(N D^3)`` flops in ``log2(N)`` sequential steps. The network is
    exactly the tree classifier that :mod:`tnml.quantum` maps onto a circuit when its nodes
    are isometries.

    References
    ----------
    E. M. Stoudenmire, "Learning relevant features of data with multi-scale tensor networks",
    Quantum Sci. Technol. 3, 034003 (2018). W. Huggins, P. Patil, B. Mitchell, K. B. Whaley and
    E. M. Stoudenmire, "Towards quantum machine learning with tensor networks", Quantum Sci.
    Technol. 4, 024001 (2019).

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = TTNClassifier(bond_dim=8, layout="image", epochs=2, random_state=0)
    >>> clf = clf.fit(X[:300] / 16, y[:300])
    >>> clf.predict_proba(X[:2] / 16).shape
    (2, 10)
    >>> clf.module_.tree.depth
    6
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **TNClassifierBase._parameter_constraints,
        "bond_dim": [Interval(Integral, 1, None, closed="left")],
        "feature_map": [StrOptions({"trig", "linear"})],
        "feature_dim": [Interval(Integral, 2, None, closed="left")],
        "readout": [StrOptions(set(READOUTS))],
        "layout": [StrOptions(set(LAYOUTS)), tuple, list],
        "init_std": [Interval(Real, 0, None, closed="left")],
        "max_grad_norm": [Interval(Real, 0, None, closed="neither"), None],
        "unitary": ["boolean"],
    }
    _module_class = TTNClassifierModule
    _unitary_module_class = UnitaryTTNClassifierModule

    def __init__(
        self,
        bond_dim: int = 20,
        *,
        feature_map: str = "trig",
        feature_dim: int = 2,
        readout: str = "normalized",
        layout: str | tuple[int, int] = "auto",
        epochs: int = 20,
        batch_size: int = 16,
        lr: float | None = None,
        max_grad_norm: float | None = 0.1,
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
        unitary: bool = False,
    ) -> None:
        self.bond_dim = bond_dim
        self.feature_map = feature_map
        self.feature_dim = feature_dim
        self.readout = readout
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
        self.unitary = unitary

    def _layout_spec(self, n_features: int) -> str | list[int]:
        if self.layout in ("auto", "1d"):
            return "1d"
        return resolve_layout(self.layout, n_features)

    def _build_module(
        self, n_features: int, n_classes: int
    ) -> TTNClassifierModule | UnitaryTTNClassifierModule:
        if self.unitary:
            return UnitaryTTNClassifierModule(
                n_features,
                n_classes,
                self.bond_dim,
                layout=self._layout_spec(n_features),
                init_std=self.init_std,
            )
        return TTNClassifierModule(
            n_features,
            n_classes,
            self.bond_dim,
            feature_map=self.feature_map,
            feature_dim=self.feature_dim,
            layout=self._layout_spec(n_features),
            readout=self.readout,
            init_std=self.init_std,
        )

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any, **train_kwargs: Any) -> TTNClassifier:
        """Fit the tree to ``X`` (n_samples, n_features) and labels ``y`` (n_samples,).

        ``train_kwargs`` go to :func:`tnml.train.train_classifier` (``checkpoint_path``,
        ``resume``, ``callback``, ``max_grad_norm``).
        """
        if self.unitary:
            check_unitary_options(self)
        train_kwargs.setdefault("max_grad_norm", self.max_grad_norm)
        return self._fit(X, y, **train_kwargs)
