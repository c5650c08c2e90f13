"""``MPSClassifier``: the scikit-learn estimator around :class:`MPSClassifierModule`."""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any, ClassVar

from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval, StrOptions

from tnml.models.base import TNClassifierBase
from tnml.models.mps_module import READOUTS, MPSClassifierModule
from tnml.tensor.contract import CONTRACTION_PATHS


class MPSClassifier(TNClassifierBase):
    """Matrix-product-state classifier (Stoudenmire & Schwab 2016) with a scikit-learn face.

    Every feature becomes one site of an MPS; ``f_l(x) = <W_l | Phi(x)>`` is computed by
    contracting the MPS, whose middle core carries the label index ``l``, with the product
    state of the embedded features. Trained by mini-batch Adam on cross-entropy.

    Parameters
    ----------
    bond_dim : int, default=10
        Bond dimension ``D`` of the MPS.
    feature_map : {"trig", "linear"}, default="trig"
        Local embedding: ``[cos(pi x/2), sin(pi x/2)]`` (and its ``feature_dim``-level form) or
        ``[1 - x, x]``.
    feature_dim : int, default=2
        Local dimension ``d`` of the feature map.
    readout : {"normalized", "born", "linear"}, default="normalized"
        ``"normalized"``: ``softmax(t f / ||f||)`` with a learned temperature ``t`` (scale-free,
        stable for any number of sites, trains best). ``"born"``:
        ``p(l|x) = f_l^2 / sum_k f_k^2``, what a circuit measures on its label qubits (also
        scale-free). ``"linear"``: ``softmax(f)`` on the raw amplitudes (can overflow float32
        on long chains).
    output_site : int or None, default=None
        Site carrying the label index; None puts it in the middle.
    epochs : int, default=20
        Passes over the training data.
    batch_size : int, default=16
    lr : float, default=2e-3
        Adam's step size. Long chains need smaller steps (1e-3 for 196 MNIST pixels).
    weight_decay : float, default=0.0
    optimizer : {"adam", "adamw", "sgd"}, default="adam"
    lr_schedule : {"cosine", "constant", "plateau"}, default="cosine"
    validation_fraction : float, default=0.1
        Fraction of the training data held out (stratified) to validate each epoch; the
        weights of the epoch with the lowest validation loss are kept. 0 disables validation.
        Skipped when it would leave fewer samples than classes on either side.
    n_iter_no_change : int or None, default=None
        Early stopping: stop when the validation loss has not improved for this many epochs.
    scaling : {"auto", "minmax", "none"}, default="auto"
        How features are mapped into [0, 1]: ``"minmax"`` learns each feature's range on the
        training data (clipping unseen extremes at predict time); ``"none"`` requires inputs in
        [0, 1]; ``"auto"`` leaves data already in [0, 1] (e.g. images) as they are and
        min-max scales anything else.
    init_std : float, default=1e-2
        Noise added to the identity in every core at initialisation.
    contraction : {"auto", "sequential", "pairwise"}, default="auto"
    random_state : int, RandomState instance or None, default=None
        Seeds the initialisation, the validation split and the batch order.
    device : str, default="cpu"
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ... or ``"auto"``.
    dtype : {"float32", "float64"}, default="float32"
    verbose : int, default=0
        Show a progress bar when > 0.
    warm_start : bool, default=False
        Continue training the fitted module on the next ``fit``.

    Attributes
    ----------
    module_ : MPSClassifierModule
        The fitted PyTorch module: (batch, n_features) floats in [0, 1] -> (batch, n_classes)
        logits; usable in any PyTorch training loop.
    classes_ : ndarray of shape (n_classes,)
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Only when ``X`` had string column names.
    data_min_, data_max_ : ndarray of shape (n_features_in_,) or None
        The learned min-max scaling (None when the data were used as they are).
    history_ : list of dict
        Per-epoch training/validation loss and accuracy, learning rate and seconds.
    n_iter_ : int
        Epochs run.
    best_epoch_ : int or None
        Epoch whose weights were kept (with validation).

    See Also
    --------
    MPSClassifierModule : the PyTorch module.

    Notes
    -----
    Passes ``sklearn.utils.estimator_checks.check_estimator`` with no check skipped. Training
    cost per sample is ``O(N d D^2)`` (sequential contraction) or ``O(N D^3)`` (pairwise,
    fewer Python steps; chosen for small ``D``).

    References
    ----------
    E. M. Stoudenmire and D. J. Schwab, "Supervised learning with tensor networks",
    NeurIPS 2016.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = MPSClassifier(bond_dim=6, epochs=2, random_state=0).fit(X[:300] / 16, y[:300])
    >>> clf.predict_proba(X[:2] / 16).shape
    (2, 10)
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **TNClassifierBase._parameter_constraints,
        "bond_dim": [Interval(Integral, 1, None, closed="left")],
        "feature_map": [StrOptions({"trig", "linear"})],
        "feature_dim": [Interval(Integral, 2, None, closed="left")],
        "readout": [StrOptions(set(READOUTS))],
        "output_site": [Interval(Integral, 0, None, closed="left"), None],
        "init_std": [Interval(Real, 0, None, closed="left")],
        "contraction": [StrOptions(set(CONTRACTION_PATHS))],
    }

    def __init__(
        self,
        bond_dim: int = 10,
        *,
        feature_map: str = "trig",
        feature_dim: int = 2,
        readout: str = "normalized",
        output_site: int | None = None,
        epochs: int = 20,
        batch_size: int = 16,
        lr: float = 2e-3,
        weight_decay: float = 0.0,
        optimizer: str = "adam",
        lr_schedule: str = "cosine",
        validation_fraction: float = 0.1,
        n_iter_no_change: int | None = None,
        scaling: str = "auto",
        init_std: float = 1e-2,
        contraction: str = "auto",
        random_state: Any = None,
        device: str = "cpu",
        dtype: str = "float32",
        verbose: int = 0,
        warm_start: bool = False,
    ) -> None:
        self.bond_dim = bond_dim
        self.feature_map = feature_map
        self.feature_dim = feature_dim
        self.readout = readout
        self.output_site = output_site
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.optimizer = optimizer
        self.lr_schedule = lr_schedule
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.scaling = scaling
        self.init_std = init_std
        self.contraction = contraction
        self.random_state = random_state
        self.device = device
        self.dtype = dtype
        self.verbose = verbose
        self.warm_start = warm_start

    def _build_module(self, n_features: int, n_classes: int) -> MPSClassifierModule:
        return MPSClassifierModule(
            n_features,
            n_classes,
            self.bond_dim,
            feature_map=self.feature_map,
            feature_dim=self.feature_dim,
            output_site=self.output_site,
            readout=self.readout,
            contraction=self.contraction,
            init_std=self.init_std,
        )

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any, **train_kwargs: Any) -> MPSClassifier:
        """Fit the MPS to ``X`` (n_samples, n_features) and labels ``y`` (n_samples,).

        ``train_kwargs`` go to :func:`tnml.train.train_classifier` (``checkpoint_path``,
        ``resume``, ``callback``, ``max_grad_norm``).
        """
        return self._fit(X, y, **train_kwargs)
