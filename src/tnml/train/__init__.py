"""Trainers: mini-batch autodiff, checkpoints, progress."""

from tnml.train.autodiff import (
    LR_SCHEDULES,
    OPTIMIZERS,
    TrainResult,
    evaluate_classifier,
    train_classifier,
)
from tnml.train.checkpoint import atomic_write, load_checkpoint, save_checkpoint
from tnml.train.distributed import all_reduce_sum, distributed_context, init_distributed

__all__ = [
    "LR_SCHEDULES",
    "OPTIMIZERS",
    "TrainResult",
    "all_reduce_sum",
    "atomic_write",
    "distributed_context",
    "evaluate_classifier",
    "init_distributed",
    "load_checkpoint",
    "save_checkpoint",
    "train_classifier",
]
