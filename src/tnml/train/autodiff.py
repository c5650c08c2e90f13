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
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.nn.parallel import DistributedDataParallel

from tnml._validation import check_int
from tnml.exceptions import InvalidInputError, TrainingError
from tnml.train.augment import Augment
from tnml.train.distributed import all_reduce_sum, distributed_context
from tnml.train.loop import (
    SELECTIONS,
    FitResult,
    LoopOptions,
    UpdateRule,
    check_loop_options,
    fit_loop,
    majority_share,
    no_progress_advice,
    selection_score,
)

if TYPE_CHECKING:  # typing.Unpack is Python 3.11+; annotations are strings here
    from typing_extensions import Unpack


def _fused_where_possible(
    optimizer: type[torch.optim.Optimizer],
) -> Callable[..., torch.optim.Optimizer]:
    """Adam or AdamW as one fused kernel per step where the parameters' device allows it.

    The unfused step makes about ten passes over the parameters: 7.8 ms a step for the
    1.6 M parameters of a 196-site chain at D = 64 on a 2-core CPU (0.5 ms fused), a third of
    that training step.
    """

    def build(params: Any, lr: float, weight_decay: float) -> torch.optim.Optimizer:
        params = list(params)
        try:
            return optimizer(params, lr=lr, weight_decay=weight_decay, fused=True)
        except (RuntimeError, ValueError, TypeError):  # a device or dtype without the kernel
            return optimizer(params, lr=lr, weight_decay=weight_decay)

    return build


OPTIMIZERS: dict[str, Callable[..., torch.optim.Optimizer]] = {
    "adam": _fused_where_possible(torch.optim.Adam),
    "adamw": _fused_where_possible(torch.optim.AdamW),
    "sgd": lambda params, lr, weight_decay: torch.optim.SGD(
        params, lr=lr, momentum=0.9, weight_decay=weight_decay
    ),
}
LR_SCHEDULES = ("constant", "cosine", "plateau")
WARMUP_FRACTION = 0.05
"""Share of the steps over which ``"cosine"`` raises the rate from 0: Adam's first steps move
every entry by the full rate whatever its gradient, which on 196 near-identity cores scrambles
the chain (10,000 MNIST images, two epochs, D = 10: 95.3-95.8% validation accuracy with the
warm-up, 94.9-95.3% without)."""
UNDERTRAINED_ACCURACY = 0.9
"""Below this training accuracy a training loss that still fell by a tenth over the last epoch
is worth a warning at the end (above it, only one that fell by a third): 784-pixel MNIST, bond
4, one epoch on 2,000 images ends at 42% training accuracy, its loss 2.43 over the epoch's
first tenth of steps and 1.62 over its last, on the edge of the one-third rule, which passed
it in silence. Measured on the mean losses of the last two epochs when there are two (a tenth
of an epoch on small data is a few noisy batches), else on the tenths of an epoch of at least
``10 * UNDERTRAINED_MIN_STEPS`` steps; never when the last epoch's validation score
(``select_by``: the loss, or the accuracy) is worse than the best (more epochs would not
help)."""
UNDERTRAINED_MIN_STEPS = 10
# "cross_entropy": the module maps (B, F) inputs to (B, L) logits, scored against labels y.
# "nll": the module maps (B, F) inputs to (B,) log-likelihoods (a density model; y is None).
OBJECTIVES = ("cross_entropy", "nll")


#: Round-1 name of :class:`tnml.train.loop.FitResult`, which every trainer returns.
TrainResult = FitResult


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
    objective: str = "cross_entropy",
    augment: Augment | None = None,
    temperature_lr: float | None = None,
    **loop: Unpack[LoopOptions],
) -> FitResult:
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
        ``"cosine"`` rises linearly over the first ``WARMUP_FRACTION`` of the steps, then
        anneals to zero over the rest (per step); ``"plateau"`` halves the rate
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
    **loop
        The loop's options (:class:`~tnml.train.LoopOptions`): ``callback(state, metrics)``
        after every epoch, ``state`` holding ``epoch``, ``module`` and ``optimizer`` and
        ``metrics`` the epoch's history entry (True stops); ``progress`` (loss, accuracy, time
        left); ``checkpoint_path``, written after every epoch and on Ctrl-C; ``resume``.
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
    FitResult
        ``model`` is ``module`` (trained in place, holding the best epoch's weights when
        there were validation data).
    """
    if objective not in OBJECTIVES:
        raise InvalidInputError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    if objective == "nll":
        if y is not None or y_val is not None:
            raise InvalidInputError('objective="nll" trains a density model: pass y=None')
        y = torch.zeros(X.shape[0], dtype=torch.long, device=X.device)
        if X_val is not None:
            y_val = torch.zeros(X_val.shape[0], dtype=torch.long, device=X_val.device)
    check_loop_options("train_classifier", loop)
    rule = AutodiffRule(
        module,
        X,
        y,
        X_val=X_val,
        y_val=y_val,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        optimizer=optimizer,
        weight_decay=weight_decay,
        lr_schedule=lr_schedule,
        max_grad_norm=max_grad_norm,
        seed=seed,
        objective=objective,
        augment=augment,
        temperature_lr=temperature_lr,
        select_by=select_by,
    )
    return fit_loop(
        rule,
        epochs=epochs,
        select_by=select_by,
        patience=patience,
        **loop,
    )


class AutodiffRule(UpdateRule):
    """Mini-batch gradient steps on ``module`` (see :func:`train_classifier`); one step is one
    global batch, drawn in a seeded order that a resumed run draws again."""

    name = "autodiff"
    log_extras: ClassVar[dict[str, str]] = {"lr": "lr"}

    def __init__(
        self,
        module: nn.Module,
        X: Tensor,
        y: Tensor,
        *,
        X_val: Tensor | None,
        y_val: Tensor | None,
        epochs: int,
        batch_size: int,
        lr: float,
        optimizer: str,
        weight_decay: float,
        lr_schedule: str,
        max_grad_norm: float | None,
        seed: int,
        objective: str,
        augment: Augment | None,
        temperature_lr: float | None,
        select_by: str = "loss",
    ) -> None:
        if X.dim() != 2 or y.dim() != 1 or X.shape[0] != y.shape[0]:
            raise InvalidInputError(
                f"X must have shape (n, F) and y shape (n,), got {tuple(X.shape)} and "
                f"{tuple(y.shape)}"
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
            raise InvalidInputError(
                f"optimizer must be one of {sorted(OPTIMIZERS)}, got {optimizer!r}"
            )
        if lr_schedule not in LR_SCHEDULES:
            raise InvalidInputError(
                f"lr_schedule must be one of {LR_SCHEDULES}, got {lr_schedule!r}"
            )
        self.module, self.X, self.y, self.X_val, self.y_val = module, X, y, X_val, y_val
        self.batch_size, self.objective, self.augment = batch_size, objective, augment
        self.max_grad_norm, self.lr_schedule = max_grad_norm, lr_schedule
        _check_select_by(select_by, objective)
        self.select_by = select_by
        self.loss_name = "NLL" if objective == "nll" else "loss"
        self.device = X.device
        self.steps_per_epoch = math.ceil(X.shape[0] / batch_size)
        self.rank, self.world = distributed_context()
        self.model = DistributedDataParallel(module) if self.world > 1 else module
        self.opt = OPTIMIZERS[optimizer](
            _parameter_groups(module, temperature_lr), lr=lr, weight_decay=weight_decay
        )
        total_steps = epochs * self.steps_per_epoch
        self.scheduler = _make_scheduler(self.opt, lr_schedule, total_steps)
        # progress is judged once the learning rate has warmed up: a 40-epoch run warms up
        # over 2 epochs, and its first epoch at a fraction of the rate learns little
        warmup = _warmup_steps(total_steps) if lr_schedule == "cosine" else 0
        self.progress_epoch = max(math.ceil(warmup / self.steps_per_epoch), 1)
        self.progress_judged = False
        self.generator = torch.Generator().manual_seed(int(seed))
        self.augment_generator = torch.Generator().manual_seed(int(seed) + 1)
        if augment is not None and hasattr(augment, "check_features"):
            augment.check_features(X.shape[1])
        self.epoch_generator_state = self.generator.get_state()
        self.sums = [0.0, 0, 0]  # loss sum, correct, seen in the current epoch
        self.batch_losses: list[float] = []  # mean loss of each step of the current epoch
        self.has_val = X_val is not None and X_val.shape[0] > 0
        self.base_lr = lr
        # what always predicting the most common class scores (all processes' labels)
        self.majority_share = (
            majority_share(y, getattr(module, "n_classes", None)) if objective != "nll" else 0.0
        )

    def steps_in_epoch(self, epoch: int) -> int:
        return self.steps_per_epoch

    def begin_epoch(self, epoch: int, first_step: int) -> int:
        if first_step == 0:
            self.batch_losses = []
        self.generator.set_state(self.epoch_generator_state)
        self.order = torch.randperm(self.X.shape[0], generator=self.generator).to(self.device)
        self.module.train()
        return self.steps_per_epoch

    def step(self, epoch: int, index: int) -> tuple[str, None]:
        batch = self.order[index * self.batch_size : (index + 1) * self.batch_size]
        local = batch.tensor_split(self.world)[self.rank]
        inputs = self.X[local]
        if self.augment is not None:
            inputs = self.augment(inputs, self.augment_generator)
        output = self.model(inputs)
        loss_sum, correct = _batch_loss(self.objective, output, self.y[local])
        # DDP averages gradients over processes: scale so the average is the mean over the
        # whole global batch.
        loss = loss_sum * (self.world / batch.numel())
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        loss_total, correct_total = all_reduce_sum([loss_sum.item(), correct], self.device)
        if not math.isfinite(loss_total):
            raise TrainingError(
                f"loss became {loss_total / batch.numel()} at epoch {epoch + 1}, step "
                f"{index + 1}; lower the learning rate (lr) or the initialisation noise"
            )
        if self.max_grad_norm is not None:
            nn.utils.clip_grad_norm_(self.module.parameters(), self.max_grad_norm)
        self.opt.step()
        if self.scheduler is not None and self.lr_schedule == "cosine":
            self.scheduler.step()
        self.batch_losses.append(loss_total / batch.numel())
        sums = self.sums
        sums[0] += loss_total
        sums[1] += int(correct_total)
        sums[2] += batch.numel()
        if self.objective == "nll":
            return f"NLL {sums[0] / sums[2]:.4f}", None
        return f"loss {sums[0] / sums[2]:.4f} acc {sums[1] / sums[2]:.4f}", None

    def end_epoch(self, epoch: int) -> dict[str, Any]:
        loss_sum, correct, seen = self.sums
        entry = {
            "train_loss": loss_sum / seen,
            "train_accuracy": correct / seen if self.objective != "nll" else math.nan,
            "val_loss": math.nan,
            "val_accuracy": math.nan,
            "lr": self.opt.param_groups[0]["lr"],
        }
        if self.has_val:
            y_val = self.y_val if self.objective != "nll" else None
            entry["val_loss"], entry["val_accuracy"] = evaluate_classifier(
                self.module, self.X_val, y_val, objective=self.objective
            )
        if self.scheduler is not None and self.lr_schedule == "plateau":
            self.scheduler.step(entry["val_loss"] if self.has_val else entry["train_loss"])
        self.sums = [0.0, 0, 0]
        self.epoch_generator_state = self.generator.get_state()
        return entry

    def state_dict(self) -> dict[str, Any]:
        return {
            "module": self.module.state_dict(),
            "optimizer": self.opt.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "epoch_generator_state": self.epoch_generator_state,
            "augment_generator_state": self.augment_generator.get_state(),
            "sums": list(self.sums),
            "batch_losses": list(self.batch_losses),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.module.load_state_dict(state["module"])
        self.opt.load_state_dict(state["optimizer"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.epoch_generator_state = state["epoch_generator_state"]
        self.augment_generator.set_state(state["augment_generator_state"])
        self.sums = list(state["sums"])
        self.batch_losses = list(state.get("batch_losses", []))

    def weights(self) -> dict[str, Tensor]:
        return copy.deepcopy(self.module.state_dict())

    def load_weights(self, weights: dict[str, Tensor]) -> None:
        self.module.load_state_dict(weights)

    def callback_info(self) -> dict[str, Any]:
        return {"module": self.module, "optimizer": self.opt}

    def advice(self, history: list[dict[str, Any]], finished: bool) -> str | None:
        """Next to no progress by the end of the first epoch after the learning-rate warm-up
        (training accuracy less than a tenth of the way from the majority class's share to 1),
        or, at the end, a training loss that fell by more than a third over the last epoch
        (mean of its last tenth of steps against its first tenth), or by more than a tenth
        while the training accuracy is still below ``UNDERTRAINED_ACCURACY`` (see there);
        nothing at the end when the validation score that picks the kept epoch (``select_by``)
        is past its best."""
        judge_progress = len(history) == self.progress_epoch and not self.progress_judged
        self.progress_judged = self.progress_judged or judge_progress
        if judge_progress and self.objective != "nll":
            epochs = (
                "the first epoch"
                if self.progress_epoch == 1
                else f"the first {self.progress_epoch} epochs (the learning-rate warm-up)"
            )
            message = no_progress_advice(
                history[-1]["train_accuracy"],
                self.majority_share,
                epochs,
                f"try another learning rate (lr {self.base_lr:g}) and check the inputs and labels",
            )
            if message is not None:
                return message
        if not finished or not history or _validation_past_its_best(history, self.select_by):
            return None
        tenth = len(self.batch_losses) // 10
        accuracy = history[-1].get("train_accuracy", math.nan)
        poor = accuracy < UNDERTRAINED_ACCURACY  # False for NaN (no accuracy: the NLL)
        fit = f", training accuracy {accuracy:.3g}" if poor else ""
        head = sum(self.batch_losses[:tenth]) / tenth if tenth >= 2 else math.nan
        tail = sum(self.batch_losses[-tenth:]) / tenth if tenth >= 2 else math.nan
        tenths = f"{head:.3g} at the start of the last epoch, {tail:.3g} at its end{fit}"
        if head > 0 and tail < 2 / 3 * head:  # a loss below 0 (a density) has no such ratio
            seen = tenths
        elif poor and len(history) >= 2:  # epoch means: a tenth can be a few noisy batches
            before, last = history[-2]["train_loss"], history[-1]["train_loss"]
            if not last < 0.9 * before:
                return None
            seen = (
                f"mean {before:.3g} over the epoch before the last, {last:.3g} over the last{fit}"
            )
        elif poor and tenth >= UNDERTRAINED_MIN_STEPS and tail < 0.9 * head:
            seen = tenths
        else:
            return None
        return (
            f"the training loss was still falling when training stopped ({seen}): more "
            "epochs, or more steps per epoch (a smaller batch), would likely improve the model"
        )

    def result(self) -> nn.Module:
        return self.module


def _check_select_by(select_by: str, objective: str) -> None:
    if select_by not in SELECTIONS or (select_by == "accuracy" and objective == "nll"):
        raise InvalidInputError(
            f"select_by must be one of {SELECTIONS} ('loss' for a density model), got {select_by!r}"
        )


def _validation_past_its_best(history: list[dict[str, Any]], select_by: str = "loss") -> bool:
    """Whether the last epoch's validation score (:func:`~tnml.train.loop.selection_score`
    by ``select_by``, what picks the epoch kept and stops early) is worse than the best so far
    (a validation loss of None or NaN: no validation; an infinite one after a finite one is
    past its best under either selection): then more epochs would not help, however the
    training loss fell."""

    def validated(entry: dict[str, Any]) -> bool:
        loss = entry.get("val_loss")
        return loss is not None and not math.isnan(loss)

    if not history or not validated(history[-1]):
        return False
    seen = [h for h in history if validated(h)]
    if math.isinf(seen[-1]["val_loss"]):  # it blew up, whatever its accuracy says
        return min(h["val_loss"] for h in seen) < math.inf
    scores = [selection_score(h, select_by) for h in seen]
    return scores[-1] > min(scores)


def _parameter_groups(module: nn.Module, temperature_lr: float | None) -> Any:
    """All parameters in one group, or the readout's log temperature in its own."""
    temperature = getattr(module, "log_temperature", None)
    if temperature_lr is None or not isinstance(temperature, nn.Parameter):
        return module.parameters()
    if not (temperature_lr > 0 and math.isfinite(temperature_lr)):
        raise InvalidInputError(f"temperature_lr must be a number > 0, got {temperature_lr!r}")
    rest = [p for p in module.parameters() if p is not temperature]
    return [{"params": rest}, {"params": [temperature], "lr": temperature_lr}]


def _warmup_steps(total_steps: int) -> int:
    """Steps over which the ``"cosine"`` schedule raises the rate linearly from 0."""
    return max(round(WARMUP_FRACTION * total_steps), 1)


def _make_scheduler(
    opt: torch.optim.Optimizer, lr_schedule: str, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler | torch.optim.lr_scheduler.ReduceLROnPlateau | None:
    if lr_schedule == "cosine":
        warmup = _warmup_steps(total_steps)
        decay = max(total_steps - warmup, 1)

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            return 0.5 * (1.0 + math.cos(math.pi * min(step - warmup, decay) / decay))

        return torch.optim.lr_scheduler.LambdaLR(opt, factor)
    if lr_schedule == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=2)
    return None
