"""Trainers: mini-batch autodiff and two-site sweeps, checkpoints, progress, data parallel."""

from tnml.train.augment import RandomAffine, affine_images
from tnml.train.autodiff import (
    LR_SCHEDULES,
    OPTIMIZERS,
    TrainResult,
    evaluate_classifier,
    train_classifier,
)
from tnml.train.checkpoint import atomic_write, load_checkpoint, save_checkpoint
from tnml.train.distributed import all_reduce_sum, distributed_context, init_distributed
from tnml.train.sweep import LabelledMPS, SweepResult, move_label, train_sweep

__all__ = [
    "LR_SCHEDULES",
    "OPTIMIZERS",
    "LabelledMPS",
    "RandomAffine",
    "SweepResult",
    "TrainResult",
    "affine_images",
    "all_reduce_sum",
    "atomic_write",
    "distributed_context",
    "evaluate_classifier",
    "init_distributed",
    "load_checkpoint",
    "move_label",
    "save_checkpoint",
    "train_classifier",
    "train_sweep",
]
