"""The two compression methods, ``"mpo"`` (tensor train, :class:`~tnml.nn.TTLinear`) and
``"svd"`` (:class:`~tnml.nn.lowrank.LowRankLinear`), as tables of candidate sizes.

A candidate is one setting of a layer's size knob (the SVD rank, the TT bond cap) with its
parameter count, its multiply-adds per input and its relative output error

    e = tr(E C E^T) / tr(W C W^T),    E = W - W_approx,

where ``C`` is the Gram matrix of the layer's inputs on calibration data (the identity without
data, so ``e`` is then the relative squared Frobenius error of the weight).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from tnml.exceptions import InvalidInputError
from tnml.nn.lowrank import LowRankLinear
from tnml.nn.tt import TTLinear, factorize

__all__ = ["METHODS", "Candidate", "build", "candidates"]

METHODS = ("mpo", "svd")
#: the batch at which TT layers' multiply-adds are counted (they depend on it)
FLOP_BATCH = 64


@dataclass(frozen=True)
class Candidate:
    """One size of one layer: ``size`` is the SVD rank or the TT bond cap."""

    size: int
    params: int
    flops: int  # multiply-adds per input
    error: float


def _tt_modes(linear: nn.Linear, n_cores: int) -> tuple[list[int], list[int]]:
    return factorize(linear.in_features, n_cores), factorize(linear.out_features, n_cores)


def build(linear: nn.Linear, method: str, size: int, n_cores: int = 2) -> nn.Module:
    """The compressed replacement of ``linear`` at ``size`` (rank or bond cap)."""
    if method == "svd":
        return LowRankLinear.from_linear(linear, rank=size)
    in_modes, out_modes = _tt_modes(linear, n_cores)
    return TTLinear.from_linear(linear, max_bond=size, in_modes=in_modes, out_modes=out_modes)


def _relative_error(weight: Tensor, approx: Tensor, gram: Tensor | None) -> float:
    diff = (weight - approx).double()
    w = weight.double()
    if gram is None:
        return float(diff.pow(2).sum() / w.pow(2).sum().clamp_min(1e-300))
    num = ((diff @ gram) * diff).sum()
    den = ((w @ gram) * w).sum().clamp_min(1e-300)
    return float(num / den)


def _bias_params(linear: nn.Linear) -> int:
    return 0 if linear.bias is None else linear.out_features


def candidates(
    linear: nn.Linear, method: str, gram: Tensor | None = None, n_cores: int = 2
) -> list[Candidate]:
    """Every useful size of ``linear`` under ``method``: those with fewer parameters than the
    dense layer, smallest first.

    Parameters
    ----------
    linear : nn.Linear
    method : {"mpo", "svd"}
    gram : Tensor of shape (in_features, in_features), optional
        Input Gram matrix ``X^T X`` on calibration data (float64).
    n_cores : int
        TT cores for ``"mpo"``.

    Returns
    -------
    list of Candidate, by increasing ``params``.
    """
    weight = linear.weight.detach().double()
    out_f, in_f = weight.shape
    dense = out_f * in_f + _bias_params(linear)
    bias = _bias_params(linear)
    if method == "svd":
        _, s, vh = torch.linalg.svd(weight, full_matrices=False)
        # E = sum_{i>r} s_i u_i v_i^T and U orthonormal: tr(E C E^T) = sum_{i>r} s_i^2 v_i^T C v_i
        q = torch.ones_like(s) if gram is None else ((vh @ gram) * vh).sum(dim=1)
        contrib = (s**2 * q).flip(0).cumsum(0).flip(0)  # contrib[r] = sum_{i>=r}
        total = float(contrib[0]) if len(s) else 1.0
        result = []
        for r in range(1, len(s) + 1):
            params = r * (in_f + out_f) + bias
            if params >= dense:
                break
            err = float(contrib[r]) / max(total, 1e-300) if r < len(s) else 0.0
            result.append(Candidate(r, params, r * (in_f + out_f), err))
        return result
    if method != "mpo":
        raise InvalidInputError(f"method must be one of {METHODS}, got {method!r}")
    in_modes, out_modes = _tt_modes(linear, n_cores)
    probe = TTLinear(in_f, out_f, 1, in_modes=in_modes, out_modes=out_modes, bias=False)
    cap = max(probe._ranks(in_f * out_f))
    sizes = sorted({round(b) for b in np.geomspace(1, cap, 64)})
    result = []
    for b in sizes:
        ranks = probe._ranks(b)
        pairs = enumerate(zip(out_modes, in_modes, strict=True))
        params = sum(ranks[j] * m * n * ranks[j + 1] for j, (m, n) in pairs)
        if params + bias >= dense:
            break
        layer = build(linear, "mpo", b, n_cores)
        err = _relative_error(weight, layer.weight().detach(), gram)
        flops = math.ceil(layer.flops(FLOP_BATCH) / FLOP_BATCH)
        result.append(Candidate(b, layer.parameter_count(), flops, err))
    return result
