"""Trainers: mini-batch autodiff, checkpoints, progress."""

from tnml.train.autodiff import (
    LR_SCHEDULES,
    OPTIMIZERS,
    TrainResult,
    distributed_context,
    evaluate_classifier,
    train_classifier,
)
from tnml.train.checkpoint import atomic_write, load_checkpoint, save_checkpoint

__all__ = [
    "LR_SCHEDULES",
    "OPTIMIZERS",
    "TrainResult",
    "atomic_write",
    "distributed_context",
    "evaluate_classifier",
    "load_checkpoint",
    "save_checkpoint",
    "train_classifier",
]
