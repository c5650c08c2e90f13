"""``MPSClassifier``: the scikit-learn estimator around :class:`MPSClassifierModule`."""

from __future__ import annotations

import copy
import os
from numbers import Integral, Real
from typing import Any, ClassVar

import torch
from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from tnml._validation import check_int
from tnml.estimators.base import (
    ClassifierRun,
    TNClassifierBase,
    check_trainer_options,
    check_unitary_options,
    default_sweep_batch_size,
    record_fit,
)
from tnml.exceptions import InvalidInputError
from tnml.features import embed
from tnml.nn.mps import READOUTS, MPSClassifierModule
from tnml.nn.unitary import UnitaryMPSClassifierModule
from tnml.tensor.contract import CONTRACTION_PATHS
from tnml.tensor.mps import MPS, mps_truncate
from tnml.train.augment import Augment
from tnml.train.distributed import distributed_context, shard_for_rank
from tnml.train.loop import Callback
from tnml.train.sweep import SWEEP_LR_SCHEDULES, SWEEP_SOLVERS, LabelledMPS, train_sweep

TRAINERS = ("autodiff", "sweep")
LOSSES = ("cross_entropy", "mse", "quadratic")
# Parameters one trainer (or the unitary model) ignores: fit refuses any value but their
# defaults (check_trainer_options).
_SWEEP_ONLY = ("max_bond", "cutoff", "solver", "steps_per_bond")
_STEPS = ("solver", "steps_per_bond")
_AUTODIFF_ONLY = ("weight_decay", "optimizer")
_NETWORK_ONLY = ("readout", "output_site", "contraction")


class MPSClassifier(TNClassifierBase):
    """Matrix-product-state classifier (Stoudenmire & Schwab 2016) with a scikit-learn face.

    Every feature becomes one site of an MPS; ``f_l(x) = <W_l | Phi(x)>`` is computed by
    contracting the MPS, whose middle core carries the label index ``l``, with the product
    state of the embedded features. Trained by mini-batch Adam on cross-entropy
    (``trainer="autodiff"``) or by DMRG-style two-site sweeps that adapt the bond dimension
    (``trainer="sweep"``).

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
    trainer : {"autodiff", "sweep"}, default="autodiff"
        ``"autodiff"``: mini-batch Adam on all cores at once (:func:`tnml.train.train_classifier`).
        ``"sweep"``: two-site sweeps (:func:`tnml.train.sweep.train_sweep`): the label moves
        along the chain, each merged bond tensor takes a pass of mini-batch gradient steps over
        the training samples (see ``batch_size``) and is split by SVD, keeping at most
        ``max_bond`` singular values above ``cutoff``, so the bonds grow from ``bond_dim``
        where the data need it.
    max_bond : int or None, default=None
        Largest bond the sweeps may grow to; None means ``bond_dim``. Sweeps only, as are
        ``cutoff``, ``solver`` and ``steps_per_bond``: ``fit`` refuses another value of
        these under autodiff (but for ``max_bond`` and ``cutoff`` in a warm autodiff fit
        that refines a model the sweeps grew), and of ``weight_decay`` or ``optimizer``
        under the sweeps.
    cutoff : float, default=1e-10
        Relative singular-value cutoff of the sweeps' splits.
    loss : {"cross_entropy", "mse", "quadratic"}, default="cross_entropy"
        ``"mse"`` (squared error on the amplitudes) needs ``trainer="sweep"`` and
        ``readout="linear"``; ``"quadratic"`` (the same on each input projected into
        unit-norm environments, as the paper's code computes it) needs ``trainer="sweep"``;
        with either, ``solver="cg"`` and ``steps_per_bond=2`` optimise each bond by
        conjugate gradient as the paper's code does (:func:`tnml.train.sweep.train_sweep`).
        These losses fit the amplitudes to one-hot vectors, not probabilities:
        ``predict_proba`` (a softmax of amplitudes near 0 and 1) is then far from calibrated,
        near uniform; ``predict`` and ``decision_function`` are what such a model gives.
    steps_per_bond : int, default=1
        Sweeps: passes of mini-batch gradient steps (full-batch steps when ``batch_size``
        covers the data; conjugate-gradient passes with ``solver="cg"``) each time a sweep
        reaches a bond.
    solver : {"gradient", "cg"}, default="gradient"
        Sweeps: how a bond is optimised; ``"cg"`` needs the ``"mse"`` or ``"quadratic"``
        loss and full batches (:data:`tnml.train.SWEEP_SOLVERS`).
    epochs : int, default=20
        Passes over the training data (sweeps, with ``trainer="sweep"``).
    batch_size : int or None, default=None
        Mini-batch size: autodiff's (None: 16, doubled up to 64 while an epoch would take
        more than 1,000 steps); the sweeps' bond updates take one step per
        mini-batch of this many samples, a pass over the data per bond (None: ``n // 40``
        samples, at least 16 and at most 100; full batches with ``solver="cg"``).
    lr : float or None, default=None
        Step size: Adam's (default ``2e-3 * min(1, 196 / n_features) * min(1, 10 /
        bond_dim)``: every entry of every core moves at once, so longer chains and larger
        bonds need smaller steps, e.g. 5e-4 for 784 MNIST pixels at bond 10 or for 196 at
        bond 40; 0.02 with ``unitary=True``) or the sweeps' gradient step (default 2.0 for
        cross-entropy, on the loss divided by the temperature, 1.0 for mse; times
        ``sqrt(batch_size / n)`` with mini-batches).
    weight_decay : float, default=0.0
        Autodiff only.
    optimizer : {"adam", "adamw", "sgd"}, default="adam"
        Autodiff only.
    lr_schedule : {"cosine", "constant", "plateau"} or None, default=None
        Autodiff: per step (None: ``"cosine"``). Sweeps: ``"cosine"`` anneals the bond step
        over all bond updates (None: ``"constant"``; ``"plateau"`` does not apply).
    validation_fraction : float, default=0.1
        Fraction of the training data held out (stratified) to validate each epoch; the
        weights of the best epoch (``select_by``) are kept. 0 disables validation.
        Skipped when it would leave fewer samples than classes on either side.
    n_iter_no_change : int or None, default=None
        Early stopping: stop when the validation score (``select_by``) has not improved for
        this many epochs (sweeps, with the sweeps).
    select_by : {"loss", "accuracy"}, default="loss"
        Which epoch's weights are kept with validation data: the lowest validation loss or
        the highest validation accuracy (ties: the lower loss). Accuracy suits models that
        grow over-confident, whose validation loss rises while their accuracy still climbs.
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
        Continue training the fitted module on the next ``fit``, with the first fit's
        features (count, names and order), classes and input scaling.
    checkpoint_path : str or path-like, optional
        Write a checkpoint here after every epoch; ``fit(..., resume=True)`` continues from it.
    callback : callable, optional
        ``callback(state, metrics)`` after every epoch (``metrics`` its ``history_`` entry);
        with ``trainer="sweep"`` after every bond update (``metrics`` the bond's record, with
        its ``epoch``); returning True stops training.
    augment : callable, optional
        ``augment(X_batch, generator) -> X_batch`` distorting every autodiff mini-batch, e.g.
        :class:`tnml.train.RandomAffine`.
    unitary : bool, default=False
        Train the quantum-circuit form instead (Huggins et al. 2019,
        :class:`~tnml.nn.unitary.UnitaryMPSClassifierModule`): every core is an
        orthogonal gate on ``log2(bond_dim) + 1`` qubits (``bond_dim`` a power of two),
        discarded qubits are traced out and ``predict_proba`` is what the label qubits measure.
        Needs ``trainer="autodiff"`` and the qubit map (``feature_map="trig"``,
        ``feature_dim=2``); ``readout``, ``output_site`` and ``contraction`` do not apply
        (``fit`` refuses other values than their defaults); ``init_std`` is the spread of the
        gates' generators. The default ``lr`` becomes 0.02. :func:`tnml.quantum.compile`
        turns the fitted model into a circuit.

    Attributes
    ----------
    module_ : MPSClassifierModule
        The fitted PyTorch module: (batch, n_features) floats in [0, 1] -> (batch, n_classes)
        logits; usable in any PyTorch training loop.
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
        "trainer": [StrOptions(set(TRAINERS))],
        "max_bond": [Interval(Integral, 1, None, closed="left"), None],
        "cutoff": [Interval(Real, 0, None, closed="left")],
        "loss": [StrOptions(set(LOSSES))],
        "steps_per_bond": [Interval(Integral, 1, None, closed="left")],
        "solver": [StrOptions(set(SWEEP_SOLVERS))],
        "unitary": ["boolean"],
    }
    _module_class = MPSClassifierModule
    _unitary_module_class = UnitaryMPSClassifierModule

    def __init__(
        self,
        bond_dim: int = 10,
        *,
        feature_map: str = "trig",
        feature_dim: int = 2,
        readout: str = "normalized",
        output_site: int | None = None,
        trainer: str = "autodiff",
        max_bond: int | None = None,
        cutoff: float = 1e-10,
        loss: str = "cross_entropy",
        steps_per_bond: int = 1,
        solver: str = "gradient",
        epochs: int = 20,
        batch_size: int | None = None,
        lr: float | None = None,
        weight_decay: float = 0.0,
        optimizer: str = "adam",
        lr_schedule: str | None = None,
        validation_fraction: float = 0.1,
        n_iter_no_change: int | None = None,
        select_by: str = "loss",
        scaling: str = "auto",
        init_std: float = 1e-2,
        contraction: str = "auto",
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
        self.output_site = output_site
        self.trainer = trainer
        self.max_bond = max_bond
        self.cutoff = cutoff
        self.loss = loss
        self.steps_per_bond = steps_per_bond
        self.solver = solver
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.optimizer = optimizer
        self.lr_schedule = lr_schedule
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.select_by = select_by
        self.scaling = scaling
        self.init_std = init_std
        self.contraction = contraction
        self.random_state = random_state
        self.device = device
        self.dtype = dtype
        self.verbose = verbose
        self.warm_start = warm_start
        self.checkpoint_path = checkpoint_path
        self.callback = callback
        self.augment = augment
        self.unitary = unitary

    def _default_lr_bond(self) -> int:
        # the module's bond, not the parameter: a warm start continues sweeps that grew the
        # bonds past ``bond_dim`` (up to ``max_bond``), or bonds compressed below it
        return getattr(getattr(self, "module_", None), "bond_dim", self.bond_dim)

    def _build_module(
        self, n_features: int, n_classes: int
    ) -> MPSClassifierModule | UnitaryMPSClassifierModule:
        if self.unitary:
            return UnitaryMPSClassifierModule(
                n_features, n_classes, self.bond_dim, init_std=self.init_std
            )
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

        ``train_kwargs`` go to the trainer, :func:`tnml.train.train_classifier` or
        :func:`tnml.train.sweep.train_sweep` (``checkpoint_path``, ``resume``, ``callback``,
        ``max_grad_norm``).
        """
        if self.loss == "mse" and (self.trainer != "sweep" or self.readout != "linear"):
            raise InvalidInputError(
                "loss='mse' needs trainer='sweep' and readout='linear' (squared error on the "
                f"raw amplitudes); got trainer={self.trainer!r}, readout={self.readout!r}"
            )
        if self.loss == "quadratic" and self.trainer != "sweep":
            raise InvalidInputError(
                f"loss='quadratic' needs trainer='sweep', got trainer={self.trainer!r}"
            )
        if self.unitary:
            check_unitary_options(self)
        if self.trainer == "sweep" and self.lr_schedule not in (None, *SWEEP_LR_SCHEDULES):
            raise InvalidInputError(
                f"trainer='sweep' takes lr_schedule in {SWEEP_LR_SCHEDULES}, got "
                f"{self.lr_schedule!r}"
            )
        if self.trainer == "autodiff":
            # autodiff refining a model the sweeps grew (warm_start) may keep their bond limits
            continuing = self.warm_start and hasattr(self, "module_")
            sweep_only = [k for k in _SWEEP_ONLY if not continuing or k in _STEPS]
            if self.max_bond == self.bond_dim:  # what None means
                sweep_only.remove("max_bond")
            check_trainer_options(self, sweep_only, "trainer='sweep'")
        else:
            check_trainer_options(self, _AUTODIFF_ONLY, "trainer='autodiff'")
        if self.unitary:
            check_trainer_options(self, _NETWORK_ONLY, "unitary=False")
        if self.trainer == "sweep" and train_kwargs.get("augment", self.augment) is not None:
            raise InvalidInputError(
                "augment needs trainer='autodiff': the sweeps cache every training sample's "
                "environments, so the samples cannot change from one pass to the next"
            )
        if self.max_bond is not None and self.max_bond < self.bond_dim:
            raise InvalidInputError(
                f"max_bond ({self.max_bond}) must be >= bond_dim ({self.bond_dim})"
            )
        return self._fit(X, y, **train_kwargs)

    def _train_module(self, run: ClassifierRun) -> None:
        if self.trainer == "autodiff":
            super()._train_module(run)
            return
        # Each process sweeps over its own shard of the samples (all of them when alone).
        shard = shard_for_rank(run.X.shape[0])
        phi = embed(run.X[shard], self.feature_map, self.feature_dim)
        phi_val = y_val_shard = None
        if run.X_val is not None:
            val_shard = shard_for_rank(run.X_val.shape[0])
            phi_val = embed(run.X_val[val_shard], self.feature_map, self.feature_dim)
            y_val_shard = run.y_val[val_shard]
        result = train_sweep(
            LabelledMPS.from_module(self.module_),
            phi,
            run.y[shard],
            n_sweeps=self.epochs,
            max_bond=self.max_bond or self.bond_dim,
            cutoff=self.cutoff,
            loss=self.loss,
            lr=self.lr,
            phi_val=phi_val,
            y_val=y_val_shard,
            select_by=self.select_by,
            patience=self.n_iter_no_change,
            progress=bool(self.verbose) and distributed_context()[0] == 0,
            # a warm start's scale is the fitted model's (the cross-entropy of raw amplitudes
            # that separate the training set is lowest at an infinite scale)
            fit_scale=not run.warm,
            # float64 models keep float64 envs
            **{
                "env_dtype": run.X.dtype,
                "seed": run.seed,
                "batch_size": self._sweep_batch_size(
                    run.X.shape[0], run.train_kwargs.get("solver", self.solver)
                ),
                "lr_schedule": self.lr_schedule or "constant",
                "steps_per_bond": self.steps_per_bond,
                "solver": self.solver,
                **run.train_kwargs,
            },
        )
        self.module_ = result.model.to_module(contraction=self.contraction, init_std=self.init_std)
        record_fit(self, result)

    def _sweep_batch_size(self, n_samples: int, solver: str) -> int | None:
        """The sweeps' mini-batch: the one given, else ``default_sweep_batch_size`` for
        gradient steps and full batches for the conjugate-gradient solver."""
        if self.batch_size is not None or solver == "cg":
            return self.batch_size
        return default_sweep_batch_size(n_samples)


def check_compressible(model: Any) -> None:
    """Raise :class:`InvalidInputError` unless ``model`` is an :class:`MPSClassifier`, the one
    estimator :func:`compress_bonds` truncates."""
    if not isinstance(model, MPSClassifier):
        raise InvalidInputError(
            f"compress_bonds truncates an MPSClassifier's bonds; got a {type(model).__name__} "
            "(tree models, Born machines and circuits are not MPS classifiers)"
        )


def compress_bonds(
    model: MPSClassifier, max_bond: int, *, cutoff: float = 0.0
) -> tuple[MPSClassifier, float]:
    """A copy of a fitted MPS classifier with every bond truncated to ``max_bond``.

    The label index stays where it is, merged into its site's physical index
    (:meth:`MPSClassifierModule.to_mps`); the MPS is canonicalised and truncated by an SVD
    sweep (:func:`tnml.tensor.mps_truncate`), each cut optimal for the canonical form at that
    moment, in float64.

    Parameters
    ----------
    model : MPSClassifier
        Fitted.
    max_bond : int
        Largest bond dimension to keep.
    cutoff : float, default=0.0
        Also drop Schmidt values below ``cutoff`` times the largest.

    Returns
    -------
    compressed : MPSClassifier
        Same parameters and fitted attributes, with ``module_`` of bond dimension
        ``<= max_bond``.
    discarded_weight : float
        ``||W - W'||^2 / ||W||^2``, the relative squared distance between the weight tensors
        (the fidelity lost).
    """
    check_compressible(model)
    check_is_fitted(model)
    check_int("max_bond", max_bond, 1)
    if getattr(model, "unitary", False):
        raise InvalidInputError(
            "compress_bonds needs a plain MPS classifier; a unitary model's bond is its "
            "number of qubits"
        )
    module = model.module_
    mps = module.to_mps()
    truncated, discarded = mps_truncate(
        MPS([core.double() for core in mps.cores]), max_bond, cutoff
    )
    config = {k: v for k, v in module.config().items() if k not in _FROM_MPS_FIXED}
    param = next(module.parameters())
    new = MPSClassifierModule.from_mps(
        truncated, module.n_classes, module.output_site, **config
    ).to(param.device, param.dtype)
    if module.log_temperature is not None:
        with torch.no_grad():
            new.log_temperature.copy_(module.log_temperature)
    compressed = copy.copy(model)
    compressed.module_ = new
    compressed.bond_dim = new.bond_dim  # a clone or a fresh fit builds what it holds
    return compressed, float(discarded)


# from_mps derives these from the MPS itself.
_FROM_MPS_FIXED = ("n_features", "n_classes", "bond_dim", "feature_dim", "output_site")
