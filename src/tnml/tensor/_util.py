"""Small private helpers shared by the tensor containers (MPS, TTN)."""

from __future__ import annotations

import math
from collections.abc import Callable
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


def _doc_from(fn: Callable[..., object]) -> Callable[[_F], _F]:
    """Give a thin wrapper method the docstring of the module function it calls."""

    def decorate(method: _F) -> _F:
        method.__doc__ = fn.__doc__
        return method

    return decorate
