"""Small private helpers shared by the tensor containers (MPS, TTN)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TypeVar

import torch
from torch import Tensor

from tnml.exceptions import InvalidInputError

_F = TypeVar("_F", bound=Callable[..., object])


def _as_log_scale(log_scale: float | Tensor, ref: Tensor) -> Tensor:
    """``log_scale`` as a 0-dim tensor in the real dtype of ``ref``, on its device."""
    real = ref.dtype.to_real()
    if isinstance(log_scale, Tensor):
        if log_scale.numel() != 1 or log_scale.is_complex():
            raise InvalidInputError(
                f"log_scale must be a real scalar, got a tensor of shape "
                f"{tuple(log_scale.shape)} and dtype {log_scale.dtype}"
            )
        return log_scale.reshape(()).to(dtype=real, device=ref.device)
    if isinstance(log_scale, bool) or not isinstance(log_scale, (int, float)):
        raise InvalidInputError(f"log_scale must be a real number, got {log_scale!r}")
    if math.isnan(log_scale):
        raise InvalidInputError("log_scale must not be NaN")
    return torch.tensor(float(log_scale), dtype=real, device=ref.device)


def _tiny(dtype: torch.dtype) -> float:
    return torch.finfo(dtype.to_real()).tiny


def _safe_norm(t: Tensor) -> Tensor:
    """Frobenius norm of ``t``, replaced by 1 where it is 0 (so dividing is harmless)."""
    n = torch.linalg.vector_norm(t)
    return torch.where(n > 0, n, torch.ones_like(n))


def validate_mps_cores(cores: Sequence[Tensor]) -> list[Tensor]:
    """Check MPS core shapes ``(D_left, d, D_right)``, bonds, dtype and device; return the cores
    as a new list."""
    if isinstance(cores, Tensor) or not isinstance(cores, Sequence):
        raise InvalidInputError(
            f"cores must be a non-empty sequence of 3-dim tensors, got {type(cores).__name__}"
        )
    cores = list(cores)
    if not cores:
        raise InvalidInputError("cores must be a non-empty sequence of 3-dim tensors, got []")
    ref = cores[0]
    for i, c in enumerate(cores):
        if not isinstance(c, Tensor):
            raise InvalidInputError(f"cores[{i}] must be a torch.Tensor, got {type(c).__name__}")
        if c.ndim != 3:
            raise InvalidInputError(
                f"cores[{i}] must be 3-dim (D_left, d, D_right), got shape {tuple(c.shape)}"
            )
        if not (c.is_floating_point() or c.is_complex()):
            raise InvalidInputError(f"cores[{i}] must have a float or complex dtype, got {c.dtype}")
        if c.dtype != ref.dtype:
            raise InvalidInputError(
                f"cores[{i}] has dtype {c.dtype} but cores[0] has {ref.dtype}; "
                "all cores must share one dtype"
            )
        if c.device != ref.device:
            raise InvalidInputError(
                f"cores[{i}] is on {c.device} but cores[0] is on {ref.device}; "
                "all cores must share one device"
            )
        if min(c.shape) < 1:
            raise InvalidInputError(f"cores[{i}] has a zero-size dimension: {tuple(c.shape)}")
    if cores[0].shape[0] != 1:
        raise InvalidInputError(f"cores[0] must have D_left = 1, got shape {tuple(ref.shape)}")
    if cores[-1].shape[2] != 1:
        raise InvalidInputError(
            f"cores[{len(cores) - 1}] must have D_right = 1, got shape {tuple(cores[-1].shape)}"
        )
    for i in range(len(cores) - 1):
        if cores[i].shape[2] != cores[i + 1].shape[0]:
            raise InvalidInputError(
                f"cores[{i}] has D_right = {cores[i].shape[2]} but cores[{i + 1}] has "
                f"D_left = {cores[i + 1].shape[0]}; neighbouring bond dims must match"
            )
    return cores


def check_int_range(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"{name} must be an int, got {value!r}")
    if not low <= value <= high:
        raise InvalidInputError(f"{name} must be in [{low}, {high}], got {value}")
    return value
