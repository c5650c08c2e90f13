"""Training: one loop (:func:`fit_loop`) with update rules plugged into it -- mini-batch
autodiff, two-site sweeps of an MPS classifier, Born-machine sweeps of an MPS or a tree --
plus checkpoints, progress, data parallel and image augmentation. Every trainer returns a
:class:`FitResult`.
"""

from tnml.train.augment import Augment, RandomAffine, affine_images
from tnml.train.autodiff import (
    LR_SCHEDULES,
    OPTIMIZERS,
    TrainResult,
    evaluate_classifier,
    train_classifier,
)
from tnml.train.born_sweep import train_born_sweep
from tnml.train.checkpoint import atomic_write, load_checkpoint, save_checkpoint
from tnml.train.distributed import all_reduce_sum, distributed_context, init_distributed
from tnml.train.loop import HISTORY_KEYS, FitResult, LoopOptions, UpdateRule, fit_loop
from tnml.train.memory import retain_freed_memory
from tnml.train.sweep import SWEEP_SOLVERS, SWEEP_TRUNCATIONS, LabelledMPS, move_label, train_sweep
from tnml.train.ttn_born_sweep import train_ttn_born_sweep

__all__ = [
    "HISTORY_KEYS",
    "LR_SCHEDULES",
    "OPTIMIZERS",
    "SWEEP_SOLVERS",
    "SWEEP_TRUNCATIONS",
    "Augment",
    "FitResult",
    "LabelledMPS",
    "LoopOptions",
    "RandomAffine",
    "TrainResult",
    "UpdateRule",
    "affine_images",
    "all_reduce_sum",
    "atomic_write",
    "distributed_context",
    "evaluate_classifier",
    "fit_loop",
    "init_distributed",
    "load_checkpoint",
    "move_label",
    "retain_freed_memory",
    "save_checkpoint",
    "train_born_sweep",
    "train_classifier",
    "train_sweep",
    "train_ttn_born_sweep",
]
