"""Two-site sweep ("DMRG-style") training of an MPS classifier, after Stoudenmire & Schwab (2016).

The classifier is ``f_l(x) = <W_l | Phi(x)>`` with ``W`` an open-boundary MPS whose core at
``label_site`` carries the label index ``l``. Training moves the label along the chain one bond
at a time:

1. merge the label core with its neighbour into a bond tensor ``B`` of shape
   ``(Dl, d, L, d, Dr)`` (left bond, left physical index, **label**, right physical index,
   right bond: the label always sits between the two physical indices, whichever of the two
   cores carried it);
2. take ``steps_per_bond`` plain gradient steps on ``B`` with every training sample projected
   through its cached left and right environments;
3. split ``B`` by a truncated SVD, at most ``max_bond`` singular values above ``cutoff``, in
   the metric of the training samples' environments
   (:func:`tnml.tensor.decomp.split_tensor_in_metric`; ``truncation="norm"``: the plain SVD
   of :func:`tnml.tensor.decomp.split_tensor`), so the bond dimension grows where the data
   need it; the factor behind the move becomes an isometry and the other one takes the label;
4. extend the environment on the side just passed by one site.

Conventions
-----------
- Cores are ``(Dl, d, Dr)``; the label core is ``(Dl, d * L, Dr)`` (read as
  ``(Dl, d, L, Dr)`` through :attr:`tnml.train.LabelledMPS.label_core`); the end bonds have
  dimension 1 and internal bonds may all differ. :class:`LabelledMPS` is a
  :class:`~tnml.tensor.MPS` and represents ``W = exp(log_scale) * contraction(cores)``.
- Canonical form: during sweeping cores left of the label are left isometries
  (``sum_{a,s} A[a,s,b] A[a,s,b'] = delta``) and cores right of it right isometries, so the
  label core is the orthogonality centre (``model.center == model.label_site``).
- Environments (one :class:`~tnml.tensor.EnvironmentCache`): for sample ``i`` the
  left environment of site ``j`` is the contraction of sites ``0 .. j-1`` with ``phi(x_i)``, a
  vector over the left bond of ``j``; the right environment of ``j`` contracts sites
  ``j+1 .. N-1``. Each is stored renormalised to unit norm with its log-norm accumulated per
  sample, so nothing under- or overflows over hundreds of sites:
  ``env_true[i] = exp(log[i]) * env[i]``.
  With the label on site ``c`` the left environments of sites ``0 .. c`` and the right
  environments of ``c .. N-1`` are valid; a move to the right adds the left environment of
  ``c + 1`` from that of ``c`` (one site, never from scratch) and drops the right one of ``c``;
  a move to the left mirrors this.
- Losses: ``"mse"`` is the paper's ``1/2 sum_l (f_l - delta_{l,y})^2`` averaged over samples, on
  the true amplitudes ``f = exp(log_scale + log_left + log_right) * contraction``;
  ``"cross_entropy"`` is the softmax cross-entropy on the readout logits of
  :class:`~tnml.nn.MPSClassifierModule` (``"normalized"`` with a fixed temperature,
  ``"born"``, or ``"linear"``); the per-sample scale cancels for the first two.
- Data parallel: under ``torch.distributed`` with several processes each process passes its own
  shard of the samples (see ``shard_for_rank``) and holds environments for those only;
  gradients and loss sums are all-reduced, rank 0 does the SVD and broadcasts the factors, so
  every process holds a bit-identical model. Only rank 0 writes checkpoints and shows progress.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor

from tnml._validation import check_int
from tnml.exceptions import InvalidInputError
from tnml.tensor.decomp import check_truncation_options
from tnml.train.bond_sweeper import (
    _DEFAULT_LR,
    _GIB,
    SWEEP_LOSSES,
    SWEEP_LR_SCHEDULES,
    SWEEP_SOLVERS,
    SWEEP_TRUNCATIONS,
    BondSweeper,
    check_solver,
    check_truncation,
)
from tnml.train.distributed import all_reduce_sum, shard_for_rank
from tnml.train.labelled_mps import LabelledMPS, move_label
from tnml.train.loop import (
    SELECTIONS,
    FitResult,
    LoopOptions,
    UpdateRule,
    check_loop_options,
    fit_loop,
    majority_share,
    no_progress_advice,
)

if TYPE_CHECKING:  # typing.Unpack is Python 3.11+; annotations are strings here
    from typing_extensions import Unpack

__all__ = [
    "SWEEP_LOSSES",
    "SWEEP_SOLVERS",
    "SWEEP_TRUNCATIONS",
    "BondSweeper",
    "ClassifierSweepRule",
    "LabelledMPS",
    "move_label",
    "shard_for_rank",
    "train_sweep",
]


# --------------------------------------------------------------------------------------------
# the training loop
# --------------------------------------------------------------------------------------------


def _sweep_moves(n_sites: int, start: int) -> list[str]:
    """The moves of one sweep: from ``start`` to the right end, then to the left end."""
    return ["right"] * (n_sites - 1 - start) + ["left"] * (n_sites - 1)


def train_sweep(
    model: LabelledMPS,
    phi: Tensor,
    y: Tensor,
    *,
    n_sweeps: int = 2,
    max_bond: int = 32,
    cutoff: float = 1e-10,
    cutoff_mode: str = "rel",
    loss: str = "mse",
    readout: str | None = None,
    temperature: float | None = None,
    learn_temperature: bool | None = None,
    lr: float | None = None,
    steps_per_bond: int = 1,
    batch_size: int | None = None,
    seed: int = 0,
    lr_schedule: str = "constant",
    normalize: bool | None = None,
    max_grad_norm: float | None = None,
    solver: str = "gradient",
    l2: float | None = None,
    truncation: str | None = None,
    phi_val: Tensor | None = None,
    y_val: Tensor | None = None,
    select_by: str = "loss",
    patience: int | None = None,
    env_dtype: torch.dtype = torch.float32,
    memory_budget: int = 4 * _GIB,
    chunk_size: int | None = None,
    fit_scale: bool = True,
    **loop: Unpack[LoopOptions],
) -> FitResult:
    """Train an MPS classifier by two-site sweeps with adaptive bond dimension.

    Each sweep moves the label from where it is to the right end and back to site 0, one bond
    update per step (``BondSweeper.update_bond``): ``steps_per_bond`` gradient steps on
    the merged bond tensor ``(Dl, d, L, d, Dr)``, then a truncated SVD that keeps at most
    ``max_bond`` singular values above ``cutoff``. Starting from a small bond (e.g. a module
    with ``bond_dim=2``) the bonds grow where the data need it.

    Parameters
    ----------
    model : LabelledMPS
        Starting model (not modified), e.g. ``LabelledMPS.from_module(module)``.
    phi : Tensor, shape (n, N, d)
        Embedded training inputs (``tnml.features.embed``); under ``torch.distributed`` this
        process's own shard (``shard_for_rank``).
    y : Tensor, shape (n,), int64
        Class indices in ``[0, L)`` (the same shard).
    n_sweeps : int, default=2
        Number of sweeps.
    max_bond : int, default=32
        Largest bond dimension the splits keep.
    cutoff : float, default=1e-10
        Singular values below ``cutoff`` (relative to the largest, see ``cutoff_mode``) are
        dropped.
    cutoff_mode : {"rel", "abs", "sum2"}, default="rel"
    loss : {"mse", "quadratic", "cross_entropy"}, default="mse"
        ``"mse"``: ``1/2 sum_l (f_l - delta_{l,y})^2`` averaged over samples, on the true
        amplitudes ``f`` (the starting model is first scaled by the factor that minimises it,
        as is the ``"linear"`` readout's cross-entropy, ``BondSweeper.fit_scale``; a fresh
        chain's raw amplitudes can be orders of magnitude off); ``"quadratic"``: the same on
        the amplitudes of each input projected into unit-norm environments at the bond, as
        Stoudenmire & Schwab's code evaluates its cost (ITensor ``fixedL``);
        ``"cross_entropy"``: softmax cross-entropy on the readout logits.
    readout : {"normalized", "born", "linear"}, optional
        Default ``model.readout``.
    temperature : float, optional
        Temperature of the ``"normalized"`` readout; default ``exp(model.log_temperature)``.
        Stored in the returned model.
    learn_temperature : bool, optional
        After every sweep, set the temperature to the value that minimises the
        cross-entropy on the validation data, or on the training data without them
        (``BondSweeper.fit_temperature``). Default: True for the cross-entropy loss with
        the ``"normalized"`` readout when ``temperature`` is not given (with a fixed
        temperature of 1 the logits cannot leave [-1, 1]). Fitted on training data that the
        model separates, the temperature grows without bound and the next sweep's steps,
        which scale with it, undo the model (digits, 6 sweeps: training accuracy 100%, then
        53%).
    lr : float, optional
        Gradient step on the mean loss; default 1.0 for ``"mse"`` and 2.0 for
        ``"cross_entropy"``, times ``sqrt(batch_size / n)`` with mini-batches (``n`` over all
        processes). With the ``"normalized"`` or ``"born"`` readout the bond tensor is
        normalised and the cross-entropy's step is taken on the loss divided by the readout's
        temperature; on the raw amplitudes (``"mse"``, or the ``"linear"`` readout) the step
        is taken on the gradient divided by a bound on the curvature, the mean of
        ``exp(2 log_scale_i)`` over the batch's samples, so it is stable below 2.
    steps_per_bond : int, default=1
        Gradient steps (full batch) or passes over the samples (``batch_size``) per bond.
    batch_size : int, optional
        Mini-batch size of the bond updates (``BondSweeper.update_bond``); None: full
        batch. On MNIST, one full-batch step per bond leaves the bond tensors far from their
        optimum; a pass of mini-batch steps costs the same and moves them much further.
    lr_schedule : {"constant", "cosine"}, default="constant"
        ``"cosine"`` anneals the step from ``lr`` to 0 over the run's bond updates,
        ``lr (1 + cos(pi m / M)) / 2`` at update ``m`` of ``M``.
    seed : int, default=0
        Seeds the mini-batch shuffles (each bond update gets its own seed from it and its
        position in the run, so a resumed run shuffles as an uninterrupted one).
    normalize : bool, optional
        Normalise the bond tensor after every step; default True when the loss ignores the
        scale of ``W`` (cross-entropy with the ``"normalized"`` or ``"born"`` readout) or
        with ``loss="quadratic"`` and gradient steps; False with ``solver="cg"``.
    max_grad_norm : float, optional
        Clip the norm of the bond gradient (of the mean loss, on the raw amplitudes after its
        division by the curvature bound above) to this value before each step; helps the
        ``"born"`` readout, whose gradient grows like ``1 / f_l`` for small ``f_l``.
    solver : {"gradient", "cg"}, default="gradient"
        ``"cg"``: each bond takes ``steps_per_bond`` conjugate-gradient passes with exact line
        search on the (quadratic) loss plus ``l2 / 2 ||B||^2`` -- the paper's code uses 2
        passes; needs ``loss="mse"`` or ``"quadratic"`` and full batches; ``lr`` is not used.
        The paper's code also rescales the bond tensor to norm 1 after each pass; here that
        is ``normalize=True``, off by default (10,000 MNIST images, 2 sweeps to bond 10,
        validation accuracy 79.8% with it, 86.8% without).
    l2 : float, optional
        ``"cg"``: weight of the ``1/2 ||B||^2`` penalty on each bond tensor, on the mean loss;
        default 1e-3 (the same runs: 88.5% against 86.8% with 0). ``B`` is the tensor as
        stored: with ``"mse"`` the model's scale ``exp(log_scale)`` stays apart from it
        (``W``'s norm grows like the inverse of the amplitudes' scale, exponentially in the
        chain, so a penalty on ``W`` itself would mean something else on every chain).
    truncation : {"data", "norm"}, optional
        How each split truncates to ``max_bond``: ``"data"`` keeps what the training samples
        see (the bond tensor's truncated SVD in the metric of their environments,
        ``BondSweeper.bond_grams``); ``"norm"`` keeps what carries most of its norm (the
        plain SVD), which for a classifier on real inputs can throw away what matters (see
        :data:`~tnml.train.bond_sweeper.SWEEP_TRUNCATIONS`). With ``"data"`` the ``cutoff``
        applies to singular values in that metric. Default: ``"data"``, except ``"norm"``
        for the ``"born"`` readout (on small toy problems it did worse in the data's metric).
    phi_val, y_val : Tensor, optional
        Validation data (this process's shard), evaluated after every sweep; the model of
        the sweep with the lowest validation loss is the one returned (as the autodiff
        trainer keeps its best epoch): each label move across a bond truncated to
        ``max_bond`` loses a little, so a later sweep can be worse.
    select_by : {"loss", "accuracy"}, default="loss"
        What "best" means with validation data (see
        :func:`tnml.train.autodiff.train_classifier`).
    patience : int, optional
        With validation data: stop after this many sweeps without a new best (the best
        sweep's model is returned either way).
    env_dtype : torch.dtype, default=torch.float32
        Dtype of the stored environments (``torch.float64`` for more precision).
    memory_budget : int, default=4 GiB
        Bytes the environments (``n * (N + 1) * max(max_bond, D) * itemsize``) and the
        per-chunk intermediates may use; more raises :class:`InvalidInputError`.
    chunk_size : int, optional
        Samples projected at once (default: from the budget, at most 4096).
    fit_scale : bool, default=True
        For the losses on the raw amplitudes (``"mse"``, or the ``"linear"`` readout): scale
        the starting model to the loss's minimum over its scale before the first bond update
        (``BondSweeper.fit_scale``), not when ``lr=0`` only moves the label. Turn it off to
        continue training a fitted model: on training data the model separates, the
        cross-entropy's minimum lies at an infinite scale.
    **loop
        The loop's options (:class:`~tnml.train.LoopOptions`): ``callback(state, metrics)``
        after every bond update, ``state`` holding ``sweep``, ``move``, ``model`` and
        ``sweeper`` and ``metrics`` the history entry (True stops, a checkpoint written
        first); ``progress`` (sweep, bond, largest bond dimension, loss, accuracy, last
        validation accuracy); ``checkpoint_path``, written after every sweep, when a callback
        stops and between two bond updates on Ctrl-C; ``resume`` (the model there replaces
        ``model``; an interrupted and resumed run equals an uninterrupted one).

    Returns
    -------
    FitResult
        ``model``: the trained :class:`LabelledMPS` (canonical, label where the last sweep
        left it: site 0; with validation data, the model at the end of the best sweep);
        ``history``: one entry a sweep (:data:`tnml.train.loop.HISTORY_KEYS` and
        ``max_bond_dim``; the training metrics are exact for the model at the end of the
        sweep); ``steps``: one entry a bond update (``epoch``, ``bond``, ``direction``,
        ``bond_dim``, ``max_bond_dim``, ``loss``, ``accuracy``, ``discarded_weight``,
        ``truncation_error``, ``lr``, ``seconds``; see ``BondSweeper.update_bond``).

    Raises
    ------
    InvalidInputError
        Bad arguments, shapes or labels, or the environments need more than ``memory_budget``.
    TrainingError
        The loss became NaN or infinite.

    Examples
    --------
    >>> import torch
    >>> from tnml.features import embed
    >>> from tnml.nn import MPSClassifierModule
    >>> x = torch.rand(100, 8)
    >>> y = (x[:, 0] > 0.5).long()
    >>> start = LabelledMPS.from_module(MPSClassifierModule(8, 2, bond_dim=2))
    >>> result = train_sweep(start, embed(x), y, n_sweeps=1, max_bond=4)
    >>> result.model.label_site, result.model.max_bond_dim <= 4
    (0, True)
    """
    check_int("n_sweeps", n_sweeps, 1)
    check_truncation_options(max_bond, cutoff, cutoff_mode)
    if max_bond is None:
        raise InvalidInputError("max_bond must be a positive int")
    if loss not in SWEEP_LOSSES:
        raise InvalidInputError(f"loss must be one of {sorted(SWEEP_LOSSES)}, got {loss!r}")
    check_int("steps_per_bond", steps_per_bond, 1)
    if batch_size is not None:
        check_int("batch_size", batch_size, 1)
    if lr is None:
        # mini-batches: the gradient's noise grows as the batch shrinks, the step with its
        # square root (MNIST, 10,000 images, batch 100: 0.5 reached 91%, 0.2 94%)
        n_total = int(all_reduce_sum([float(phi.shape[0])], phi.device)[0])
        share = 1.0 if batch_size is None else min(1.0, batch_size / max(n_total, 1))
        lr = _DEFAULT_LR[loss] * math.sqrt(share)
    if not (lr >= 0 and math.isfinite(lr)):
        raise InvalidInputError(f"lr must be a finite number >= 0, got {lr!r}")
    if lr_schedule not in SWEEP_LR_SCHEDULES:
        raise InvalidInputError(
            f"lr_schedule must be one of {SWEEP_LR_SCHEDULES} for sweeps, got {lr_schedule!r}"
        )
    if (phi_val is None) != (y_val is None):
        raise InvalidInputError("give both phi_val and y_val, or neither")
    if select_by not in SELECTIONS:
        raise InvalidInputError(f"select_by must be one of {SELECTIONS}, got {select_by!r}")
    check_loop_options("train_sweep", loop)
    if l2 is None:
        l2 = 1e-3 if solver == "cg" else 0.0
    check_solver(solver, l2, loss, batch_size)
    if truncation is None:
        # on 8-site toy problems the born readout did worse in the data's metric (training /
        # validation accuracy 0.93 / 0.83 against 0.99 / 0.89 in norm)
        truncation = "norm" if (readout or getattr(model, "readout", None)) == "born" else "data"
    check_truncation(truncation)
    if not isinstance(model, LabelledMPS):
        raise InvalidInputError(f"model must be a LabelledMPS, got {type(model).__name__}")

    rule = ClassifierSweepRule(
        model,
        phi,
        y,
        n_sweeps=n_sweeps,
        loss=loss,
        readout=readout,
        temperature=temperature,
        learn_temperature=learn_temperature,
        lr=lr,
        lr_schedule=lr_schedule,
        seed=seed,
        phi_val=phi_val,
        y_val=y_val,
        env_dtype=env_dtype,
        memory_budget=memory_budget,
        chunk_size=chunk_size,
        fit_scale=fit_scale,
        update_options={
            "steps_per_bond": steps_per_bond,
            "max_bond": max_bond,
            "cutoff": cutoff,
            "cutoff_mode": cutoff_mode,
            "normalize": normalize,
            "max_grad_norm": max_grad_norm,
            "batch_size": batch_size,
            "solver": solver,
            "l2": l2,
            "truncation": truncation,
        },
    )
    return fit_loop(
        rule,
        epochs=n_sweeps,
        select_by=select_by,
        patience=patience,
        step_callback=loop.pop("callback", None),
        **loop,
    )


class ClassifierSweepRule(UpdateRule):
    """Two-site sweeps of a :class:`LabelledMPS` (see :func:`train_sweep`): a step is one bond
    update, an epoch one sweep (from where the label is to the right end and back to 0)."""

    name = "sweep"
    unit = "sweep"
    log_extras: ClassVar[dict[str, str]] = {"max_bond_dim": "D"}

    def __init__(
        self,
        model: LabelledMPS,
        phi: Tensor,
        y: Tensor,
        *,
        n_sweeps: int,
        loss: str,
        readout: str | None,
        temperature: float | None,
        learn_temperature: bool | None,
        lr: float,
        lr_schedule: str,
        seed: int,
        phi_val: Tensor | None,
        y_val: Tensor | None,
        env_dtype: torch.dtype,
        memory_budget: int,
        chunk_size: int | None,
        fit_scale: bool,
        update_options: dict[str, Any],
    ) -> None:
        self.model, self.phi, self.y, self.phi_val, self.y_val = model, phi, y, phi_val, y_val
        self.sweeper_options = {
            "loss": loss,
            "readout": readout,
            "temperature": temperature,
            "max_bond": update_options["max_bond"],
            "env_dtype": env_dtype,
            "memory_budget": memory_budget,
            "chunk_size": chunk_size,
        }
        self.loss, self.temperature, self.learn_temperature = loss, temperature, learn_temperature
        self.lr, self.lr_schedule, self.seed = lr, lr_schedule, int(seed)
        self.update_options = dict(update_options)
        self.device = phi.device
        self.sweeper: BondSweeper | None = None
        self.final: LabelledMPS | None = None
        n_sites = model.n_sites
        self.sweep_start_site = model.label_site
        self.moves_done = 0
        # the first sweep starts wherever the label is; later sweeps cover every bond twice
        self.total_moves = len(_sweep_moves(n_sites, self.sweep_start_site)) + (
            n_sweeps - 1
        ) * 2 * (n_sites - 1)
        self.last_val_accuracy = math.nan
        self.majority_share = majority_share(y, model.n_classes)
        self.start_scaled = not fit_scale  # the starting model's scale is settled

    @property
    def _trains(self) -> bool:
        """Whether the bond updates change the model (``lr=0`` with gradient steps only
        moves the label)."""
        return self.lr > 0 or self.update_options["solver"] == "cg"

    def _ready_sweeper(self) -> BondSweeper:
        if self.sweeper is None:
            # lr = 0 only moves the label: the scale is fitted once, before training starts
            self.sweeper = BondSweeper(
                self.model,
                self.phi,
                self.y,
                fit_start_scale=self._trains and not self.start_scaled,
                **self.sweeper_options,
            )
            self.start_scaled = True
            if self.update_options["normalize"] is None:
                self.update_options["normalize"] = (
                    not self.sweeper.scale_matters and self.update_options["solver"] != "cg"
                )
            if self.learn_temperature is None:
                self.learn_temperature = (
                    self.temperature is None
                    and self.sweeper.readout == "normalized"
                    and self.loss == "cross_entropy"
                )
        return self.sweeper

    def steps_in_epoch(self, epoch: int) -> int:
        return len(_sweep_moves(self.model.n_sites, self.sweep_start_site))

    def begin_epoch(self, epoch: int, first_step: int) -> int:
        sweeper = self._ready_sweeper()
        if first_step == 0:
            self.sweep_start_site = sweeper.model.label_site
        self.moves = _sweep_moves(sweeper.model.n_sites, self.sweep_start_site)
        return len(self.moves)

    def step(self, epoch: int, index: int) -> tuple[str, dict[str, Any]]:
        sweeper = self._ready_sweeper()
        tick = time.perf_counter()
        options = {**self.update_options, "lr": self._lr_now()}
        batch_seed = self.seed * 1_000_003 + self.moves_done
        record = sweeper.update_bond(self.moves[index], batch_seed=batch_seed, **options)
        record["lr"] = options["lr"]
        record["seconds"] = time.perf_counter() - tick
        self.moves_done += 1
        arrow = "->" if record["direction"] == "right" else "<-"
        val = (
            "" if math.isnan(self.last_val_accuracy) else f"  val_acc {self.last_val_accuracy:.4f}"
        )
        text = (
            f"bond {record['bond']}{arrow}{record['bond'] + 1}  D {record['max_bond_dim']}  "
            f"loss {record['loss']:.4f}  acc {record['accuracy']:.4f}{val}"
        )
        return text, record

    def end_epoch(self, epoch: int) -> dict[str, Any]:
        sweeper = self._ready_sweeper()
        if self.learn_temperature:
            sweeper.fit_temperature(self.phi_val, self.y_val)
        train_loss, train_accuracy = sweeper.training_metrics()
        val_loss = val_accuracy = math.nan
        if self.phi_val is not None and self.y_val is not None:
            val_loss, val_accuracy = sweeper.evaluate(self.phi_val, self.y_val)
            self.last_val_accuracy = val_accuracy
        return {
            "train_loss": train_loss,
            "train_accuracy": train_accuracy,
            "val_loss": val_loss,
            "val_accuracy": val_accuracy,
            "lr": self._lr_now(),
            "max_bond_dim": sweeper.model.max_bond_dim,
        }

    def _lr_now(self) -> float:
        """The step of the next bond update (``"cosine"``: annealed over the run's updates)."""
        if self.lr_schedule != "cosine":
            return self.lr
        fraction = min(self.moves_done / self.total_moves, 1.0)
        return self.lr * 0.5 * (1 + math.cos(math.pi * fraction))

    def state_dict(self) -> dict[str, Any]:
        model = self.sweeper.model if self.sweeper is not None else self.model
        return {
            "model": model.state_dict(),
            "sweep_start_site": self.sweep_start_site,
            "moves_done": self.moves_done,
            "total_moves": self.total_moves,
            "last_val_accuracy": self.last_val_accuracy,
            "start_scaled": self.start_scaled,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model = LabelledMPS.from_state_dict(state["model"], device=self.model.device)
        self.sweeper = None
        self.sweep_start_site = state["sweep_start_site"]
        self.moves_done = state["moves_done"]
        self.total_moves = state["total_moves"]
        self.last_val_accuracy = state["last_val_accuracy"]
        self.start_scaled = state.get("start_scaled", True)

    def weights(self) -> dict[str, Any]:
        return self._ready_sweeper().model.state_dict()

    def load_weights(self, weights: dict[str, Any]) -> None:
        self.final = LabelledMPS.from_state_dict(weights, device=self._ready_sweeper().model.device)

    def advice(self, history: list[dict[str, Any]], finished: bool) -> str | None:
        """Next to no progress in the first sweep (training accuracy less than a tenth of the
        way from the majority class's share to 1), unless the sweeps only move the label."""
        if len(history) != 1 or not self._trains:
            return None
        return no_progress_advice(
            history[0]["train_accuracy"],
            self.majority_share,
            "the first sweep",
            f"try another step (lr {self.lr:g}) or loss ({self.loss!r}), and check the inputs "
            "and labels",
        )

    def callback_info(self) -> dict[str, Any]:
        sweeper = self._ready_sweeper()
        return {"model": sweeper.model, "sweeper": sweeper}

    def result(self) -> LabelledMPS:
        if self.final is not None:
            return self.final
        return self._ready_sweeper().model.copy()
