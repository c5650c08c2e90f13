"""The one training loop of tnml, and the interface its update rules plug into.

Every trainer -- mini-batch autodiff (:mod:`tnml.train.autodiff`), two-site sweeps of an MPS
classifier (:mod:`tnml.train.sweep`), Born-machine sweeps of an MPS
(:mod:`tnml.train.born_sweep`) or a tree (:mod:`tnml.train.ttn_born_sweep`) -- is an
:class:`UpdateRule`: it knows how to take one step (a mini-batch, a bond, a tree node) and
what an epoch measured. :func:`fit_loop` does the rest, once:

- epochs of steps (a sweep is an epoch), with a progress bar and one log line an epoch;
- Ctrl-C: the current step finishes, a checkpoint is written, ``KeyboardInterrupt`` is
  re-raised; ``resume=True`` continues at the next step, so an interrupted and resumed run
  equals an uninterrupted one (the rule saves its own state, the loop its counters);
- checkpoints after every epoch, atomically, by rank 0 only under ``torch.distributed``;
- callbacks after every epoch (and, where a rule wants them, after every step);
- model selection on validation data (lowest loss, or highest accuracy) and early stopping;
- a :class:`~tnml.exceptions.TrainingWarning` with the rule's :meth:`~UpdateRule.advice`
  (asked after every epoch and at the end: no progress, or stopped while still learning);
- one result type, :class:`FitResult`, whose ``history`` has the same keys for every rule.
"""

from __future__ import annotations

import math
import os
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypedDict

import torch
import torch.distributed as dist
from torch import Tensor

from tnml._validation import check_int
from tnml.exceptions import InvalidInputError, TrainingWarning
from tnml.train.checkpoint import check_resume_length, load_checkpoint, save_checkpoint
from tnml.train.distributed import all_reduce_sum, distributed_context
from tnml.train.interrupt import DeferredInterrupt
from tnml.train.memory import retain_freed_memory
from tnml.train.progress import TrainingProgress

__all__ = [
    "HISTORY_KEYS",
    "SELECTIONS",
    "Callback",
    "FitResult",
    "LoopOptions",
    "UpdateRule",
    "check_loop_options",
    "fit_loop",
    "selection_score",
]

#: The keys of every ``FitResult.history`` entry (a rule may add more, e.g. ``max_bond_dim``).
#: Born machines report their negative log-likelihood as the loss; their accuracies are NaN.
HISTORY_KEYS = (
    "epoch",
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_accuracy",
    "lr",
    "seconds",
)
#: The accepted values of ``select_by``: what picks the epoch whose weights are kept.
SELECTIONS: tuple[str, ...] = ("loss", "accuracy")

Callback = Callable[[dict[str, Any], dict[str, Any]], bool | None]


@dataclass
class FitResult:
    """What a training run did; the same for every trainer.

    Attributes
    ----------
    history : list of dict
        One entry an epoch (or sweep): the keys of :data:`HISTORY_KEYS` (NaN where a value
        does not apply) and any the rule adds.
    steps : list of dict
        One entry a step, for rules that record them (the MPS classifier's sweeps: every bond
        update); empty otherwise.
    best_epoch : int or None
        With validation data, the epoch (1-based) whose weights the model holds; None without.
    stopped_early : bool
        True if the patience ran out or a callback asked to stop.
    model : object
        The trained model (the module itself for autodiff, which trains in place).
    """

    history: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int | None = None
    stopped_early: bool = False
    model: Any = None


class UpdateRule(ABC):
    """One trainer's steps, plugged into :func:`fit_loop`.

    A rule holds the model being trained and everything a resumed run needs to continue
    exactly (optimizer moments, random generators, environments it can rebuild...).
    """

    #: Names the trainer in checkpoints; a checkpoint of another rule is refused on resume.
    name: ClassVar[str]
    #: What an epoch is called in messages ("epoch" or "sweep").
    unit: ClassVar[str] = "epoch"
    #: What the loss is called in the log ("loss", or "NLL" for density models).
    loss_name: ClassVar[str] = "loss"
    #: History keys shown in the epoch log line besides the standard ones: key -> label.
    log_extras: ClassVar[dict[str, str]] = {}

    device: torch.device = torch.device("cpu")

    def steps_in_epoch(self, epoch: int) -> int:
        """Steps of epoch ``epoch`` (0-based): exact for the current one, and for later ones
        what the progress bar should expect."""
        raise NotImplementedError

    def begin_epoch(self, epoch: int, first_step: int) -> int:
        """Prepare epoch ``epoch`` from step ``first_step`` (> 0 when resuming mid-epoch);
        returns the number of steps in the epoch."""
        return self.steps_in_epoch(epoch)

    @abstractmethod
    def step(self, epoch: int, index: int) -> tuple[str, dict[str, Any] | None]:
        """Take step ``index`` of epoch ``epoch``; return the progress text and a record for
        ``FitResult.steps`` (None to record nothing)."""

    @abstractmethod
    def end_epoch(self, epoch: int) -> dict[str, Any]:
        """Metrics of the finished epoch: ``train_loss``, ``train_accuracy``, ``val_loss``,
        ``val_accuracy`` (NaN where they do not apply), ``lr``, and any extras."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs (tensors and plain values)."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state_dict` of an interrupted run."""

    @abstractmethod
    def weights(self) -> Any:
        """A copy of the trained weights (kept for the best epoch)."""

    @abstractmethod
    def load_weights(self, weights: Any) -> None:
        """Put back weights from :meth:`weights`."""

    def settings(self) -> dict[str, Any]:
        """The options (plain values) a resumed run must share with the run that wrote the
        checkpoint; :func:`fit_loop` records them and refuses to resume under others."""
        return {}

    def callback_info(self) -> dict[str, Any]:
        """What callbacks see besides the epoch number (e.g. the module and its optimizer)."""
        return {}

    def advice(self, history: list[dict[str, Any]], finished: bool) -> str | None:
        """Why training is not doing what it should, or None: asked after every epoch but the
        last (``finished=False``) and when training ends (``finished=True``); :func:`fit_loop`
        shows it as a :class:`~tnml.exceptions.TrainingWarning`, so a rule says each thing
        once."""
        return None

    def result(self) -> Any:
        """The trained model, for ``FitResult.model``."""
        return None


def majority_share(y: Tensor, n_classes: int | None = None) -> float:
    """What always predicting the most common class scores, over all processes' labels ``y``
    (int64 class indices in ``[0, n_classes)``, this process's shard; None: up to the largest
    label of any process)."""
    if n_classes is None:
        largest = torch.tensor([int(y.max()) if y.numel() else -1], device=y.device)
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(largest, op=dist.ReduceOp.MAX)
        n_classes = int(largest) + 1
    counts = torch.bincount(y.cpu(), minlength=n_classes).tolist()
    counts = all_reduce_sum([float(c) for c in counts], y.device)
    return max(counts) / sum(counts) if sum(counts) else 0.0


def no_progress_advice(accuracy: float, majority: float, span: str, hint: str) -> str | None:
    """The warning for a training accuracy after ``span`` (e.g. "the first epoch") less than a
    tenth of the way from ``majority`` (:func:`majority_share`) to 1, or None."""
    if accuracy >= majority + 0.1 * (1.0 - majority):
        return None
    return (
        f"next to no progress in {span}: training accuracy {accuracy:.3f}, where always "
        f"predicting the most common class gives {majority:.3f}; {hint}"
    )


def selection_score(entry: dict[str, float], select_by: str) -> tuple[float, float]:
    """How good an epoch's validation was, smaller is better: the loss, or the accuracy
    (higher first) with the loss breaking ties."""
    if select_by == "accuracy":
        return (-entry["val_accuracy"], entry["val_loss"])
    return (entry["val_loss"], 0.0)


class LoopOptions(TypedDict, total=False):
    """The options every trainer passes to :func:`fit_loop` unchanged (``**loop``).

    ``callback`` runs after every epoch (``callback(state, metrics)``, True stops; each
    trainer says what ``state`` holds), ``progress`` shows a progress bar and an epoch log on
    stderr, ``checkpoint_path`` is written atomically after every epoch, when a callback stops
    and on Ctrl-C, and ``resume`` continues from it.
    """

    callback: Callback | None
    progress: bool
    checkpoint_path: str | os.PathLike[str] | None
    resume: bool


def check_loop_options(trainer: str, loop: Mapping[str, Any]) -> None:
    """Raise ``TypeError`` for a keyword that is not a loop option (as Python would for the
    trainer's own signature) and :class:`InvalidInputError` for ``resume`` without
    ``checkpoint_path``, before the trainer does any work."""
    unknown = sorted(set(loop) - set(LoopOptions.__annotations__))
    if unknown:
        raise TypeError(f"{trainer}() got unexpected keyword arguments {unknown}")
    if loop.get("resume") and loop.get("checkpoint_path") is None:
        raise InvalidInputError("resume=True needs checkpoint_path")


def fit_loop(
    rule: UpdateRule,
    *,
    epochs: int,
    select_by: str = "loss",
    patience: int | None = None,
    callback: Callback | None = None,
    step_callback: Callback | None = None,
    progress: bool = False,
    checkpoint_path: str | os.PathLike[str] | None = None,
    resume: bool = False,
) -> FitResult:
    """Run ``rule`` for ``epochs`` epochs; see the module docstring for what the loop does.

    Parameters
    ----------
    rule : UpdateRule
    epochs : int
        Epochs (or sweeps) in the whole run, counting those of a resumed checkpoint.
    select_by : {"loss", "accuracy"}, default="loss"
        With validation metrics: keep the epoch of the lowest validation loss, or of the
        highest validation accuracy (ties: the lower loss).
    patience : int, optional
        Stop when the validation score has not improved for this many epochs.
    callback : callable, optional
        ``callback(info, entry)`` after every epoch: ``info`` holds ``epoch`` and the rule's
        :meth:`~UpdateRule.callback_info`, ``entry`` the epoch's history entry; True stops.
    step_callback : callable, optional
        ``callback(info, record)`` after every step that the rule records (``info``: ``epoch``,
        ``step`` and the rule's :meth:`~UpdateRule.callback_info`); True stops at once (a
        checkpoint is written first; the unfinished epoch is not in the history).
    progress : bool, default=False
        Show a progress bar and an epoch log on stderr.
    checkpoint_path : path, optional
        Written atomically after every epoch, when a callback stops, and on Ctrl-C.
    resume : bool, default=False
        Continue from ``checkpoint_path``.

    Returns
    -------
    FitResult
    """
    check_int("epochs", epochs, 1)
    if select_by not in SELECTIONS:
        raise InvalidInputError(f"select_by must be one of {SELECTIONS}, got {select_by!r}")
    if patience is not None:
        check_int("patience", patience, 1)
    if resume and checkpoint_path is None:
        raise InvalidInputError("resume=True needs checkpoint_path")
    retain_freed_memory()  # every step frees and re-allocates the same buffers
    rank, world = distributed_context()
    state: dict[str, Any] = {
        "epoch": 0,  # epochs finished
        "step": 0,  # steps finished in the current epoch
        "steps_done": 0,
        "history": [],
        "steps": [],
        "best": None,
        "bad_epochs": 0,
        "stopped_early": False,
    }
    if resume:
        assert checkpoint_path is not None
        saved = _load_everywhere(checkpoint_path, rank, world)
        if saved.get("trainer") != rule.name or "rule" not in saved:
            raise InvalidInputError(
                f"{checkpoint_path} is not a checkpoint of this trainer ({rule.name}); it was "
                f"written by {saved.get('trainer', 'an older tnml')!s}"
            )
        recorded, current = saved.get("settings"), rule.settings()
        if recorded is not None and recorded != current:  # absent: an older checkpoint
            changed = sorted(k for k in {*recorded, *current} if recorded.get(k) != current.get(k))
            raise InvalidInputError(
                f"{checkpoint_path} was written by a run with other options ("
                + ", ".join(f"{k}={recorded.get(k)!r}, now {current.get(k)!r}" for k in changed)
                + "); resume with the same options or start a new run"
            )
        try:
            rule.load_state_dict(saved["rule"])
        except (RuntimeError, KeyError, ValueError) as err:  # other shapes, another model
            reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise InvalidInputError(
                f"{checkpoint_path} does not fit this model ({reason}); resume with the model "
                "settings it was written with (bond_dim, classes, features), or start a new run"
            ) from err
        state.update(saved["loop"])
        check_resume_length(state["epoch"], epochs, checkpoint_path, f"{rule.unit}s")
        # a callback's stop ends that run, not the resumed one; a spent patience stays spent
        state["stopped_early"] = state.get("patience_ran_out", False)

    def save() -> None:
        if checkpoint_path is not None and rank == 0:
            save_checkpoint(
                checkpoint_path,
                {
                    "kind": "tnml-checkpoint",
                    "trainer": rule.name,
                    "settings": rule.settings(),
                    "loop": state,
                    "rule": rule.state_dict(),
                },
            )

    remaining = rule.steps_in_epoch(state["epoch"]) - state["step"]
    remaining += sum(rule.steps_in_epoch(e) for e in range(state["epoch"] + 1, epochs))
    total = state["steps_done"] + max(remaining, 0)
    with (
        DeferredInterrupt() as interrupt,
        TrainingProgress(
            total, enabled=progress and rank == 0, completed=state["steps_done"]
        ) as bar,
    ):
        while state["epoch"] < epochs and not state["stopped_early"]:
            epoch = state["epoch"]
            n_steps = rule.begin_epoch(epoch, state["step"])
            started = time.perf_counter()
            for index in range(state["step"], n_steps):
                text, record = rule.step(epoch, index)
                state["step"] = index + 1
                state["steps_done"] += 1
                stop = False
                if record is not None:
                    record = {"epoch": epoch + 1, **record}
                    state["steps"].append(record)
                    if step_callback is not None:
                        info = {"epoch": epoch + 1, "step": index + 1, **rule.callback_info()}
                        stop = bool(step_callback(info, record))
                bar.update(f"{rule.unit} {epoch + 1}/{epochs}", text)
                requested, stop_votes = all_reduce_sum(
                    [float(interrupt.requested), float(stop)], rule.device
                )
                if requested:
                    save()
                    raise KeyboardInterrupt
                if stop_votes:
                    state["stopped_early"] = True
                    break
            if state["stopped_early"]:
                save()
                break
            entry = {"epoch": epoch + 1, **rule.end_epoch(epoch)}
            entry["seconds"] = time.perf_counter() - started
            _select(state, entry, rule, select_by, patience)
            state["history"].append(entry)
            bar.log(_format_epoch(entry, epochs, rule))
            if callback is not None and callback(
                {"epoch": epoch + 1, **rule.callback_info()}, entry
            ):
                state["stopped_early"] = True
            state["epoch"] = epoch + 1
            state["step"] = 0
            save()
            if state["epoch"] < epochs:
                _warn(rule.advice(state["history"], finished=False), rank)
    if state["history"]:
        _warn(rule.advice(state["history"], finished=True), rank)
    best = state["best"]
    if best is not None:
        rule.load_weights(best["weights"])
    return FitResult(
        history=state["history"],
        steps=state["steps"],
        best_epoch=None if best is None else int(best["epoch"]),
        stopped_early=state["stopped_early"],
        model=rule.result(),
    )


def _warn(message: str | None, rank: int) -> None:
    if message is not None and rank == 0:
        warnings.warn(message, TrainingWarning, stacklevel=3)


def _load_everywhere(path: str | os.PathLike[str], rank: int, world: int) -> dict[str, Any]:
    """The checkpoint, read by rank 0 and sent to the other processes."""
    saved = [load_checkpoint(path) if rank == 0 else None]
    if world > 1:
        dist.broadcast_object_list(saved, src=0)
    assert saved[0] is not None
    return saved[0]


def _select(
    state: dict[str, Any],
    entry: dict[str, Any],
    rule: UpdateRule,
    select_by: str,
    patience: int | None,
) -> None:
    """Keep the weights of the best validated epoch; count epochs without improvement."""
    if math.isnan(entry["val_loss"]):
        return
    score = selection_score(entry, select_by)
    best = state["best"]
    if best is None or score < tuple(best["score"]):
        state["best"] = {"epoch": entry["epoch"], "score": list(score), "weights": rule.weights()}
        state["bad_epochs"] = 0
        return
    state["bad_epochs"] += 1
    if patience is not None and state["bad_epochs"] >= patience:
        state["stopped_early"] = state["patience_ran_out"] = True


def _format_epoch(entry: dict[str, Any], epochs: int, rule: UpdateRule) -> str:
    loss = rule.loss_name
    text = f"{rule.unit} {entry['epoch']}/{epochs}  {loss} {entry['train_loss']:.4f}"
    if not math.isnan(entry["train_accuracy"]):
        text += f"  acc {entry['train_accuracy']:.4f}"
    if not math.isnan(entry["val_loss"]):
        text += f"  val_{loss} {entry['val_loss']:.4f}"
    if not math.isnan(entry["val_accuracy"]):
        text += f"  val_acc {entry['val_accuracy']:.4f}"
    for key, label in rule.log_extras.items():
        value = entry[key]
        text += f"  {label} {value:.2e}" if key == "lr" else f"  {label} {value:g}"
    return text + f"  {entry['seconds']:.1f}s"
