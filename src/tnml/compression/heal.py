"""Healing a compressed model by distillation against the original (its outputs and the
outputs of the replaced layers), with validation-driven early stop and best-state restore."""

from __future__ import annotations

import copy
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from tnml.exceptions import InvalidInputError

__all__ = ["HealResult", "call_model", "default_output", "distill", "distill_loss"]


def call_model(model: nn.Module, batch: Any) -> Any:
    """``model(**batch)`` for a mapping, ``model(*batch)`` for a tuple or list, else
    ``model(batch)``."""
    if isinstance(batch, dict) or hasattr(batch, "keys"):
        return model(**batch)
    if isinstance(batch, (tuple, list)):
        return model(*batch)
    return model(batch)


def default_output(output: Any, batch: Any) -> Tensor:
    """The tensor a model's output is judged by: itself, its ``last_hidden_state`` or
    ``logits`` (Hugging Face), or the first tensor of a tuple or mapping."""
    if isinstance(output, Tensor):
        return output
    for key in ("last_hidden_state", "logits"):
        value = getattr(output, key, None)
        if isinstance(value, Tensor):
            return value
    values = output.values() if isinstance(output, dict) else output
    if isinstance(values, Sequence) or isinstance(output, dict):
        for value in values:
            if isinstance(value, Tensor):
                return value
    raise InvalidInputError(
        f"output_fn: cannot find a tensor in the model's output of type {type(output).__name__}; "
        "pass output_fn=lambda output, batch: <tensor>"
    )


def distill_loss(student: Tensor, teacher: Tensor) -> Tensor:
    """``MSE / mean(teacher^2) + (1 - cos)`` over the last axis: scale-free, so outputs of
    any size weigh alike."""
    student, teacher = student.float(), teacher.float()
    mse = (student - teacher).pow(2).mean() / teacher.pow(2).mean().clamp_min(1e-12)
    cos = nn.functional.cosine_similarity(
        student.reshape(-1, student.shape[-1]), teacher.reshape(-1, teacher.shape[-1]), dim=-1
    )
    return mse + (1 - cos).mean()


def _float32(batch: Any) -> Any:
    """``batch`` with its floating tensors in float32 (the others as they are)."""
    if isinstance(batch, Tensor):
        return batch.float() if batch.is_floating_point() else batch
    if isinstance(batch, dict) or hasattr(batch, "keys"):
        return {k: _float32(v) for k, v in batch.items()}
    if isinstance(batch, (tuple, list)):
        return type(batch)(_float32(v) for v in batch)
    return batch


class _Capture:
    """Forward hooks keeping the outputs of named submodules during one call."""

    def __init__(self, model: nn.Module, names: Sequence[str]) -> None:
        self.outputs: dict[str, Tensor] = {}
        self.handles = [model.get_submodule(n).register_forward_hook(self._hook(n)) for n in names]

    def _hook(self, name: str) -> Callable:
        def hook(module: nn.Module, args: Any, output: Tensor) -> None:
            self.outputs[name] = output

        return hook

    def close(self) -> None:
        for h in self.handles:
            h.remove()


@dataclass
class HealResult:
    """What healing did: ``history`` rows are ``(step, train_loss, val_loss)``."""

    steps: int = 0
    best_step: int = 0
    best_val_loss: float = math.inf
    seconds: float = 0.0
    stopped: str = ""
    history: list[tuple[int, float, float]] = field(default_factory=list)


def distill(
    student: nn.Module,
    teacher: nn.Module,
    train_batches: Sequence[Any],
    val_batches: Sequence[Any],
    *,
    steps: int = 300,
    lr: float = 1e-4,
    hidden: Sequence[str] = (),
    hidden_weight: float = 1.0,
    output_fn: Callable[[Any, Any], Tensor] = default_output,
    eval_every: int = 25,
    patience: int = 4,
    max_seconds: float | None = None,
    progress: bool = False,
) -> HealResult:
    """Train ``student`` (in place) to reproduce ``teacher`` on ``train_batches``.

    The loss is :func:`distill_loss` of the outputs plus ``hidden_weight`` times its mean over
    the submodules named in ``hidden`` (the replaced layers, present in both models). Every
    ``eval_every`` steps the same loss on ``val_batches`` is measured; training stops after
    ``patience`` evaluations without improvement, after ``steps`` steps or ``max_seconds``,
    and the student ends in its best validated state.

    Returns
    -------
    HealResult
    """
    if not train_batches or not val_batches:
        raise InvalidInputError("heal_data: needs at least two batches (train and validation)")
    teacher.eval()
    student.train(False)  # dropout off: healing matches a deterministic teacher
    dtype = next(student.parameters()).dtype
    upcast = dtype in (torch.float16, torch.bfloat16)
    if upcast:
        student.float()  # Adam on half-precision weights does not learn: heal in float32
    params = [p for p in student.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    captures: tuple[_Capture, _Capture] | None = None

    def loss_on(batch: Any) -> Tensor:
        with torch.no_grad():
            target = output_fn(call_model(teacher, batch), batch)
            target_hidden = dict(captures[1].outputs) if captures else {}
        student_batch = _float32(batch) if upcast else batch
        loss = distill_loss(output_fn(call_model(student, student_batch), batch), target)
        if captures and hidden_weight:
            parts = [distill_loss(captures[0].outputs[n], target_hidden[n]) for n in hidden]
            loss = loss + hidden_weight * torch.stack(parts).mean()
        return loss

    def validate() -> float:
        with torch.no_grad():
            return float(sum(float(loss_on(b)) for b in val_batches) / len(val_batches))

    result = HealResult()
    start = time.perf_counter()
    best_state = copy.deepcopy(student.state_dict())
    try:
        if hidden:
            captures = (_Capture(student, hidden), _Capture(teacher, hidden))
        best = validate()
        result.best_val_loss, bad = best, 0
        result.history.append((0, math.nan, best))
        running: list[float] = []
        for step in range(1, steps + 1):
            loss = loss_on(train_batches[(step - 1) % len(train_batches)])
            if not torch.isfinite(loss):
                result.stopped = f"non-finite loss at step {step}; the best state is kept"
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            running.append(float(loss.detach()))
            result.steps = step
            timed_out = max_seconds is not None and time.perf_counter() - start > max_seconds
            if step % eval_every == 0 or step == steps or timed_out:
                val = validate()
                train = sum(running) / len(running)
                running = []
                result.history.append((step, train, val))
                if progress:
                    print(
                        f"heal step {step}/{steps}: train {train:.4f}  val {val:.4f}  "
                        f"{time.perf_counter() - start:.0f}s",
                        file=sys.stderr,
                        flush=True,
                    )
                if val < result.best_val_loss:
                    result.best_val_loss, result.best_step, bad = val, step, 0
                    best_state = copy.deepcopy(student.state_dict())
                else:
                    bad += 1
                    if bad >= patience:
                        result.stopped = f"no validation gain in {patience} evaluations"
                        break
            if timed_out:
                result.stopped = f"time limit of {max_seconds:g} s"
                break
        else:
            result.stopped = f"{steps} steps"
    finally:
        student.load_state_dict(best_state)
        student.to(dtype)
        if captures:
            for c in captures:
                c.close()
        result.seconds = time.perf_counter() - start
    return result
