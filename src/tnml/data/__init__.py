"""Data sets and preprocessing: NumPy arrays in, NumPy arrays out.

Images come back as float32 in ``[0, 1]`` with shape ``(n, H, W)``, labels as int64, so they
feed scikit-learn directly and torch through ``torch.from_numpy``. Nothing here knows about
models.
"""

from __future__ import annotations

from tnml.data.datasets import MNIST_ENV_VAR, find_mnist_dir, load_digits, load_mnist
from tnml.data.idx import read_idx, read_idx_header, write_idx
from tnml.data.preprocess import downsample, flatten_images, pad_to, scale_unit, train_val_split
from tnml.data.tabular import check_array_2d, load_csv, load_npz

__all__ = [
    "MNIST_ENV_VAR",
    "check_array_2d",
    "downsample",
    "find_mnist_dir",
    "flatten_images",
    "load_csv",
    "load_digits",
    "load_mnist",
    "load_npz",
    "pad_to",
    "read_idx",
    "read_idx_header",
    "scale_unit",
    "train_val_split",
    "write_idx",
]
