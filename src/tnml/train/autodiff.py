"""Mini-batch autodiff training of a classifier module (cross-entropy on its logits).

:func:`train_classifier` is the one training loop the estimators and the command-line tool
call. It validates every epoch, stops early, follows a learning-rate schedule, shows progress,
and on Ctrl-C finishes the current step, writes a checkpoint and re-raises
``KeyboardInterrupt``; ``resume=True`` continues from that checkpoint exactly where it stopped
(same batches, same optimizer state), so an interrupted and resumed run equals an
uninterrupted one.

Data parallel: when ``torch.distributed`` is initialised with more than one process (e.g.
under ``torchrun``), every process draws the same global batches and trains on its own
contiguous slice of each one through ``DistributedDataParallel``; the loss is scaled so the
averaged gradient equals that of the whole global batch, so ``k`` processes with global batch
``b`` follow the same trajectory as one process with batch ``b`` (to rounding). Validation is
sharded and summed; only rank 0 writes checkpoints and shows progress.
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel

from tnml._validation import check_int
from tnml.exceptions import InvalidInputError, TrainingError
from tnml.train.checkpoint import check_resume_length, load_checkpoint, save_checkpoint
from tnml.train.distributed import all_reduce_sum, distributed_context
from tnml.train.interrupt import DeferredInterrupt
from tnml.train.progress import TrainingProgress

OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "adam": torch.optim.Adam,
    "adamw": torch.optim.AdamW,
    "sgd": lambda params, lr, weight_decay: torch.optim.SGD(
        params, lr=lr, momentum=0.9, weight_decay=weight_decay
    ),
}
LR_SCHEDULES = ("constant", "cosine", "plateau")
# "cross_entropy": the module maps (B, F) inputs to (B, L) logits, scored against labels y.
# "nll": the module maps (B, F) inputs to (B,) log-likelihoods (a density model; y is None).
OBJECTIVES = ("cross_entropy", "nll")
#: The accepted values of ``select_by``: what picks the epoch whose weights are kept.
SELECTIONS: tuple[str, ...] = ("loss", "accuracy")

Callback = Callable[[dict[str, Any], dict[str, float]], bool | None]


@dataclass
class TrainResult:
    """What :func:`train_classifier` did.

    Attributes
    ----------
    history : list of dict
        One entry per finished epoch: ``epoch``, ``train_loss``, ``train_accuracy``,
        ``val_loss`` and ``val_accuracy`` (NaN without validation data), ``lr``, ``seconds``.
    best_epoch : int or None
        Epoch (1-based) whose weights the module holds at the end when validation data were
        given (lowest validation loss); None otherwise (the module holds the last weights).
    stopped_early : bool
        True if the patience ran out or a callback asked to stop.
    """

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int | None = None
    stopped_early: bool = False


def _batch_loss(objective: str, output: Tensor, target: Tensor | None) -> tuple[Tensor, int]:
    """Summed loss of one batch and its number of correct predictions (0 for "nll")."""
    if objective == "nll":
        return -output.sum(), 0
    loss = F.cross_entropy(output, target, reduction="sum")
    return loss, int((output.argmax(dim=1) == target).sum())


def evaluate_classifier(
    module: nn.Module,
    X: Tensor,
    y: Tensor | None,
    batch_size: int = 1024,
    objective: str = "cross_entropy",
) -> tuple[float, float]:
    """Mean loss and accuracy of ``module`` on ``(X (n, F), y (n,))``, batched.

    The loss is the cross-entropy, or with ``objective="nll"`` the mean negative
    log-likelihood (``y`` None, accuracy NaN). When running distributed, each process
    evaluates its share and the sums are all-reduced, so every process returns the metrics
    of the whole of ``X``.
    """
    rank, world = distributed_context()
    X_local = X.tensor_split(world)[rank]
    y_local = y.tensor_split(world)[rank] if y is not None else None
    was_training = module.training
    module.eval()
    loss_sum, correct = 0.0, 0
    with torch.no_grad():
        for start in range(0, X_local.shape[0], batch_size):
            output = module(X_local[start : start + batch_size])
            target = y_local[start : start + batch_size] if y_local is not None else None
            loss, right = _batch_loss(objective, output, target)
            loss_sum += loss.item()
            correct += right
    module.train(was_training)
    totals = all_reduce_sum([loss_sum, correct, X_local.shape[0]], X.device)
    accuracy = totals[1] / max(totals[2], 1) if objective != "nll" else math.nan
    return totals[0] / max(totals[2], 1), accuracy


def train_classifier(
    module: nn.Module,
    X: Tensor,
    y: Tensor | None,
    *,
    X_val: Tensor | None = None,
    y_val: Tensor | None = None,
    epochs: int = 20,
    batch_size: int = 32,
    lr: float = 5e-3,
    optimizer: str = "adam",
    weight_decay: float = 0.0,
    lr_schedule: str = "cosine",
    patience: int | None = None,
    select_by: str = "loss",
    max_grad_norm: float | None = None,
    seed: int = 0,
    callback: Callback | None = None,
    progress: bool = False,
    checkpoint_path: str | os.PathLike[str] | None = None,
    resume: bool = False,
    objective: str = "cross_entropy",
    augment: Callable[[Tensor, torch.Generator], Tensor] | None = None,
    temperature_lr: float | None = None,
) -> TrainResult:
    """Train ``module`` (inputs -> logits) by mini-batch gradient descent on cross-entropy.

    Parameters
    ----------
    module : nn.Module
        Maps a float tensor of shape (B, F) to logits of shape (B, L); trained in place.
    X, y : Tensor, shapes (n, F) and (n,) (int64 class indices in [0, L))
        Training data, on the module's device.
    X_val, y_val : Tensor, optional
        Validation data, evaluated after every epoch; enables ``patience`` and the restoring
        of the best epoch's weights.
    epochs, batch_size, lr, weight_decay : training length, batch size, step size, L2 penalty.
    optimizer : {"adam", "adamw", "sgd"}
    lr_schedule : {"constant", "cosine", "plateau"}
        ``"cosine"`` anneals to zero over ``epochs`` (per step); ``"plateau"`` halves the rate
        when the validation (else training) loss has not improved for 2 epochs.
    patience : int, optional
        Stop when the validation score (``select_by``) has not improved for this many epochs.
    select_by : {"loss", "accuracy"}, default="loss"
        Which epoch's weights are kept with validation data: the lowest validation loss, or
        the highest validation accuracy (ties: the lower loss). Accuracy suits models that
        grow over-confident (their loss rises while their accuracy still climbs).
    max_grad_norm : float, optional
        Clip the global gradient norm to this value.
    seed : int
        Seeds the order of the batches.
    callback : callable, optional
        ``callback(state, metrics)`` after every epoch, with ``state`` holding ``epoch``,
        ``module`` and ``optimizer`` and ``metrics`` the epoch's history entry; returning True
        stops training.
    progress : bool
        Show a progress bar (loss, accuracy, time left) on stderr.
    checkpoint_path : path, optional
        Written atomically after every epoch and on Ctrl-C.
    resume : bool
        Continue from ``checkpoint_path``.
    objective : {"cross_entropy", "nll"}
        ``"cross_entropy"``: the module returns (B, L) logits scored against ``y``.
        ``"nll"``: the module returns (B,) log-likelihoods of its inputs (a density model such
        as a Born machine), ``y`` is None and the loss is their negated mean; accuracies
        are NaN.
    augment : callable, optional
        ``augment(X_batch, generator) -> X_batch``: distorts each training mini-batch (shape
        (B, F) in, same shape out) before the step, e.g.
        :class:`tnml.train.augment.RandomAffine`; draws its randomness from ``generator``
        (seeded from ``seed``, saved in checkpoints). Validation data are not augmented.
    temperature_lr : float, optional
        Step size of the readout's scalar ``log_temperature`` (when the module has one);
        None: ``lr``. Adam moves every parameter by about its step size per step, so at the
        small steps large bond dimensions need (1e-4) the temperature climbs from 1 to its
        useful range (10-30) over tens of epochs while the loss stays soft.

    Returns
    -------
    TrainResult
    """
    if objective not in OBJECTIVES:
        raise InvalidInputError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    if select_by not in SELECTIONS or (select_by == "accuracy" and objective == "nll"):
        raise InvalidInputError(
            f"select_by must be one of {SELECTIONS} ('loss' for a density model), got {select_by!r}"
        )
    if objective == "nll":
        if y is not None or y_val is not None:
            raise InvalidInputError('objective="nll" trains a density model: pass y=None')
        y = torch.zeros(X.shape[0], dtype=torch.long, device=X.device)
        if X_val is not None:
            y_val = torch.zeros(X_val.shape[0], dtype=torch.long, device=X_val.device)
    _check_training_args(X, y, X_val, y_val, epochs, batch_size, lr, optimizer, lr_schedule)
    if resume and checkpoint_path is None:
        raise InvalidInputError("resume=True needs checkpoint_path")
    n_samples = X.shape[0]
    steps_per_epoch = math.ceil(n_samples / batch_size)
    rank, world = distributed_context()
    model = DistributedDataParallel(module) if world > 1 else module
    opt = OPTIMIZERS[optimizer](
        _parameter_groups(module, temperature_lr), lr=lr, weight_decay=weight_decay
    )
    scheduler = _make_scheduler(opt, lr_schedule, epochs * steps_per_epoch)
    generator = torch.Generator().manual_seed(int(seed))
    augment_generator = torch.Generator().manual_seed(int(seed) + 1)
    if augment is not None and hasattr(augment, "check_features"):
        augment.check_features(X.shape[1])
    has_val = X_val is not None and X_val.shape[0] > 0

    state: dict[str, Any] = {
        "epoch": 0,
        "step_in_epoch": 0,
        "epoch_generator_state": generator.get_state(),
        "sums": [0.0, 0, 0],  # loss sum, correct, seen in the current epoch
        "history": [],
        "best_val_loss": math.inf,
        "best_score": None,
        "best_epoch": None,
        "best_module_state": None,
        "bad_epochs": 0,
        "stopped_early": False,
    }
    if resume:
        saved = load_checkpoint(checkpoint_path)
        module.load_state_dict(saved["module"])
        opt.load_state_dict(saved["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(saved["scheduler"])
        state.update(saved["loop"])
        check_resume_length(state["epoch"], epochs, checkpoint_path, "epochs")
        if "augment_generator_state" in saved:
            augment_generator.set_state(saved["augment_generator_state"])

    def snapshot() -> dict[str, Any]:
        return {
            "kind": "tnml-checkpoint",
            "module": module.state_dict(),
            "optimizer": opt.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "loop": state,
            "augment_generator_state": augment_generator.get_state(),
        }

    module.train()
    total_steps = epochs * steps_per_epoch
    done_steps = state["epoch"] * steps_per_epoch + state["step_in_epoch"]
    writes = checkpoint_path is not None and rank == 0
    with (
        DeferredInterrupt() as interrupt,
        TrainingProgress(total_steps, enabled=progress and rank == 0, completed=done_steps) as bar,
    ):
        while state["epoch"] < epochs and not state["stopped_early"]:
            epoch = state["epoch"]
            generator.set_state(state["epoch_generator_state"])
            order = torch.randperm(n_samples, generator=generator).to(X.device)
            started = time.perf_counter()
            for step in range(state["step_in_epoch"], steps_per_epoch):
                batch = order[step * batch_size : (step + 1) * batch_size]
                local = batch.tensor_split(world)[rank]
                inputs = X[local]
                if augment is not None:
                    inputs = augment(inputs, augment_generator)
                output = model(inputs)
                loss_sum, correct = _batch_loss(objective, output, y[local])
                # DDP averages gradients over processes: scale so the average is the mean
                # over the whole global batch.
                loss = loss_sum * (world / batch.numel())
                opt.zero_grad(set_to_none=True)
                loss.backward()
                loss_total, correct_total, flag = all_reduce_sum(
                    [
                        loss_sum.item(),
                        correct,
                        float(interrupt.requested),
                    ],
                    X.device,
                )
                if not math.isfinite(loss_total):
                    raise TrainingError(
                        f"loss became {loss_total / batch.numel()} at epoch {epoch + 1}, step "
                        f"{step + 1}; lower the learning rate (lr) or the initialisation noise"
                    )
                if max_grad_norm is not None:
                    nn.utils.clip_grad_norm_(module.parameters(), max_grad_norm)
                opt.step()
                if scheduler is not None and lr_schedule == "cosine":
                    scheduler.step()
                sums = state["sums"]
                sums[0] += loss_total
                sums[1] += int(correct_total)
                sums[2] += batch.numel()
                state["step_in_epoch"] = step + 1
                bar.update(
                    f"epoch {epoch + 1}/{epochs}",
                    f"loss {sums[0] / sums[2]:.4f} acc {sums[1] / sums[2]:.4f}",
                )
                if flag:
                    if writes:
                        save_checkpoint(checkpoint_path, snapshot())
                    raise KeyboardInterrupt
            loss_sum, correct, seen = state["sums"]
            entry = {
                "epoch": float(epoch + 1),
                "train_loss": loss_sum / seen,
                "train_accuracy": correct / seen if objective != "nll" else math.nan,
                "val_loss": math.nan,
                "val_accuracy": math.nan,
                "lr": opt.param_groups[0]["lr"],
                "seconds": time.perf_counter() - started,
            }
            if has_val:
                entry["val_loss"], entry["val_accuracy"] = evaluate_classifier(
                    module, X_val, y_val if objective != "nll" else None, objective=objective
                )
                _track_best(state, entry, module, patience, select_by)
            if scheduler is not None and lr_schedule == "plateau":
                scheduler.step(entry["val_loss"] if has_val else entry["train_loss"])
            state["history"].append(entry)
            bar.log(_format_entry(entry, epochs))
            if callback is not None and callback(
                {"epoch": epoch + 1, "module": module, "optimizer": opt}, entry
            ):
                state["stopped_early"] = True
            state["epoch"] = epoch + 1
            state["step_in_epoch"] = 0
            state["sums"] = [0.0, 0, 0]
            state["epoch_generator_state"] = generator.get_state()
            if writes:
                save_checkpoint(checkpoint_path, snapshot())

    if has_val and state["best_module_state"] is not None:
        module.load_state_dict(state["best_module_state"])
    return TrainResult(
        history=state["history"],
        best_epoch=state["best_epoch"],
        stopped_early=state["stopped_early"],
    )


def _parameter_groups(module: nn.Module, temperature_lr: float | None) -> Any:
    """All parameters in one group, or the readout's log temperature in its own."""
    temperature = getattr(module, "log_temperature", None)
    if temperature_lr is None or not isinstance(temperature, nn.Parameter):
        return module.parameters()
    if not (temperature_lr > 0 and math.isfinite(temperature_lr)):
        raise InvalidInputError(f"temperature_lr must be a number > 0, got {temperature_lr!r}")
    rest = [p for p in module.parameters() if p is not temperature]
    return [{"params": rest}, {"params": [temperature], "lr": temperature_lr}]


def selection_score(entry: dict[str, float], select_by: str) -> tuple[float, float]:
    """How good an epoch's validation was, smaller is better: the loss, or the accuracy
    (higher first) with the loss breaking ties."""
    if select_by == "accuracy":
        return (-entry["val_accuracy"], entry["val_loss"])
    return (entry["val_loss"], 0.0)


def _track_best(
    state: dict[str, Any],
    entry: dict[str, float],
    module: nn.Module,
    patience: int | None,
    select_by: str,
) -> None:
    score = selection_score(entry, select_by)
    best = state.get("best_score")
    if best is None and math.isfinite(state["best_val_loss"]):  # a checkpoint from before
        best = (state["best_val_loss"], 0.0)
    if best is None or score < tuple(best):
        state["best_score"] = list(score)
        state["best_val_loss"] = entry["val_loss"]
        state["best_epoch"] = int(entry["epoch"])
        state["best_module_state"] = copy.deepcopy(module.state_dict())
        state["bad_epochs"] = 0
    else:
        state["bad_epochs"] += 1
        if patience is not None and state["bad_epochs"] >= patience:
            state["stopped_early"] = True


def _format_entry(entry: dict[str, float], epochs: int) -> str:
    text = (
        f"epoch {int(entry['epoch'])}/{epochs}  loss {entry['train_loss']:.4f}  "
        f"acc {entry['train_accuracy']:.4f}"
    )
    if not math.isnan(entry["val_loss"]):
        text += f"  val_loss {entry['val_loss']:.4f}  val_acc {entry['val_accuracy']:.4f}"
    return text + f"  lr {entry['lr']:.2e}  {entry['seconds']:.1f}s"


def _make_scheduler(
    opt: torch.optim.Optimizer, lr_schedule: str, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau | None:
    if lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(total_steps, 1))
    if lr_schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=2)
    return None


def _check_training_args(
    X: Tensor,
    y: Tensor,
    X_val: Tensor | None,
    y_val: Tensor | None,
    epochs: int,
    batch_size: int,
    lr: float,
    optimizer: str,
    lr_schedule: str,
) -> None:
    if X.dim() != 2 or y.dim() != 1 or X.shape[0] != y.shape[0]:
        raise InvalidInputError(
            f"X must have shape (n, F) and y shape (n,), got {tuple(X.shape)} and {tuple(y.shape)}"
        )
    if X.shape[0] == 0:
        raise InvalidInputError("X holds no samples")
    if (X_val is None) != (y_val is None):
        raise InvalidInputError("give both X_val and y_val, or neither")
    check_int("epochs", epochs, 1)
    check_int("batch_size", batch_size, 1)
    if not (lr > 0 and math.isfinite(lr)):
        raise InvalidInputError(f"lr must be a finite number > 0, got {lr!r}")
    if optimizer not in OPTIMIZERS:
        raise InvalidInputError(f"optimizer must be one of {sorted(OPTIMIZERS)}, got {optimizer!r}")
    if lr_schedule not in LR_SCHEDULES:
        raise InvalidInputError(f"lr_schedule must be one of {LR_SCHEDULES}, got {lr_schedule!r}")
