"""The two compression methods, ``"mpo"`` (tensor train, :class:`~tnml.nn.TTLinear`) and
``"svd"`` (:class:`~tnml.nn.lowrank.LowRankLinear`), as tables of candidate sizes and the fit
of one size.

A candidate is one setting of a layer's size knob (the SVD rank, the TT bond cap) with its
parameter count, its multiply-adds per input and its relative output error

    e = tr(E C E^T) / tr(W C W^T),    E = W - W_approx,

where ``C`` is the Gram matrix of the layer's inputs on calibration data (the identity without
data, so ``e`` is then the relative squared Frobenius error of the weight).

With ``C``, each method fits in the metric it defines (whitening, as in SVD-LLM), in closed
form: ``"svd"`` truncates the SVD of ``W L`` with ``C = L L^T``, which minimises ``e`` exactly
among rank-``r`` matrices; ``"mpo"`` (two cores) truncates the TT-SVD of ``W (L_1 x L_2)``
where ``C_1 x C_2`` is the Kronecker product nearest ``C`` (Van Loan and Pitsianis), whose
square root keeps the tensor-train form (or the plain TT-SVD, where that fits ``C`` better).
``C`` is seldom near a Kronecker product, so :func:`fit_two_cores` then refines the two cores
in ``C`` itself by alternating least squares (``build(..., refine=True)``, what
:func:`tnml.compress` uses); the tables count the unrefined fit. More cores fit the weight
alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from tnml.exceptions import InvalidInputError
from tnml.nn.lowrank import LowRankLinear
from tnml.nn.tt import TTLinear, factorize, plan_flops
from tnml.tensor.decomp import gram_root

__all__ = [
    "METHODS",
    "Candidate",
    "build",
    "candidates",
    "fit_two_cores",
    "refinable",
    "refine_two_cores",
    "relative_error",
    "two_core_size",
]

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


def _kronecker_roots(gram: Tensor, n1: int, n2: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``(L1, L1^{-1}, L2, L2^{-1})`` for the Kronecker product ``C1 x C2`` nearest ``gram``
    in Frobenius norm (the top singular pair of ``gram`` rearranged to ``(n1^2, n2^2)``)."""
    rearranged = gram.reshape(n1, n2, n1, n2).permute(0, 2, 1, 3).reshape(n1 * n1, n2 * n2)
    u, s, vh = torch.linalg.svd(rearranged, full_matrices=False)
    c1, c2 = u[:, 0].reshape(n1, n1), vh[0].reshape(n2, n2)
    if float(torch.trace(c1)) < 0:  # the pair's common sign: both PSD
        c1, c2 = -c1, -c2
    l1, l1_inv = gram_root(c1 * s[0].sqrt())
    l2, l2_inv = gram_root(c2 * s[0].sqrt())
    return l1, l1_inv, l2, l2_inv


def _two_core_svd(
    weight: Tensor, in_modes: list[int], out_modes: list[int], gram: Tensor | None
) -> tuple[Tensor, Tensor, Tensor, tuple[Tensor, Tensor] | None]:
    """The SVD ``u, s, vh`` of ``W`` (whitened by the Kronecker roots when ``gram`` is given)
    rearranged to ``(m_1 n_1) x (m_2 n_2)``, and the inverse roots to undo the whitening."""
    (m1, m2), (n1, n2) = out_modes, in_modes
    w = weight.reshape(m1, m2, n1, n2)
    inverse = None
    if gram is not None:
        l1, l1_inv, l2, l2_inv = _kronecker_roots(gram, n1, n2)
        w = torch.einsum("xyab,ac,bd->xycd", w, l1, l2)
        inverse = (l1_inv, l2_inv)
    paired = w.permute(0, 2, 1, 3).reshape(m1 * n1, m2 * n2)
    u, s, vh = torch.linalg.svd(paired, full_matrices=False)
    return u, s, vh, inverse


def _two_core_cores(
    u: Tensor,
    s: Tensor,
    vh: Tensor,
    keep: int,
    in_modes: list[int],
    out_modes: list[int],
    inverse: tuple[Tensor, Tensor] | None,
) -> tuple[Tensor, Tensor]:
    """The two cores ``(1, m1, n1, keep)`` and ``(keep, m2, n2, 1)`` of the truncation."""
    (m1, m2), (n1, n2) = out_modes, in_modes
    root = s[:keep].sqrt()
    first = (u[:, :keep] * root).reshape(1, m1, n1, keep)
    second = (root[:, None] * vh[:keep]).reshape(keep, m2, n2, 1)
    if inverse is not None:
        first = torch.einsum("xmcr,ca->xmar", first, inverse[0])
        second = torch.einsum("rmdy,db->rmby", second, inverse[1])
    return first, second


def build(
    linear: nn.Linear,
    method: str,
    size: int,
    n_cores: int = 2,
    gram: Tensor | None = None,
    *,
    refine: bool = False,
    check_gram: Tensor | None = None,
) -> nn.Module:
    """The compressed replacement of ``linear`` at ``size`` (rank or bond cap), fitted in the
    metric of ``gram`` when given (see the module's notes).

    ``refine``: two ``"mpo"`` cores with ``gram`` are refined in ``gram`` itself by
    :func:`fit_two_cores` (kept where they also fit ``check_gram``'s inputs better, when
    given); else the better of the Kronecker-whitened and the plain TT-SVD, as
    :func:`candidates` counts them."""
    weight = linear.weight.detach().double()
    dtype = linear.weight.dtype
    if method == "svd":
        if gram is None:
            return LowRankLinear.from_linear(linear, rank=size)
        l_root, l_inv = gram_root(gram.double())
        u, s, vh = torch.linalg.svd(weight @ l_root, full_matrices=False)
        keep = min(size, len(s))
        layer = LowRankLinear(
            linear.in_features,
            linear.out_features,
            keep,
            bias=linear.bias is not None,
            device=linear.weight.device,
            dtype=dtype,
        )
        root = s[:keep].sqrt()
        with torch.no_grad():
            layer.first.copy_((root[:, None] * vh[:keep] @ l_inv).to(dtype))
            layer.second.copy_((u[:, :keep] * root).to(dtype))
            if linear.bias is not None:
                layer.bias.copy_(linear.bias)
        return layer
    in_modes, out_modes = _tt_modes(linear, n_cores)
    if n_cores != 2 or gram is None:
        return TTLinear.from_linear(linear, max_bond=size, in_modes=in_modes, out_modes=out_modes)
    best, _ = fit_two_cores(
        weight, in_modes, out_modes, size, gram, refine=refine, check_gram=check_gram
    )
    layer = TTLinear(
        linear.in_features,
        linear.out_features,
        in_modes=in_modes,
        out_modes=out_modes,
        ranks=[best[0].shape[-1]],
        bias=linear.bias is not None,
        device=linear.weight.device,
        dtype=dtype,
    )
    with torch.no_grad():
        for core, value in zip(layer.cores, best, strict=True):
            core.copy_(value.to(dtype))
        if linear.bias is not None:
            layer.bias.copy_(linear.bias)
    return layer


def refine_two_cores(
    weight: Tensor,
    first: Tensor,
    second: Tensor,
    gram: Tensor,
    *,
    sweeps: int = 8,
    tol: float = 1e-3,
    ridge: float = 1e-3,
) -> tuple[Tensor, Tensor]:
    """Two TT cores fitted to ``weight`` in the input metric ``gram`` by alternating least
    squares, from ``(first, second)``.

    Parameters
    ----------
    weight : Tensor, shape (m1 m2, n1 n2)
    first, second : Tensor, shapes (1, m1, n1, r) and (r, m2, n2, 1)
        The start (e.g. the TT-SVD); ``r`` is kept.
    gram : Tensor, shape (n1 n2, n1 n2)
        ``C``, symmetric positive semi-definite.
    sweeps : int
        Largest number of (first, second) update pairs.
    tol : float
        Stop when a sweep lowers the error by less than this fraction.
    ridge : float
        The fit is in ``C + ridge * mean(diag C) * I``: directions the calibration inputs
        barely visit still cost something, so the cores cannot grow without bound along them
        (with ``ridge=0`` and a rank-deficient ``C`` they do, and the layer fails on new
        inputs).

    Returns
    -------
    (first, second) : the refined cores, float64, with ``e = tr(E C' E^T) / tr(W C' W^T)``
    in that metric ``C'`` no larger than the start's.

    Notes
    -----
    With one core fixed the error is quadratic in the other, and its normal equations share
    one matrix across the free core's output index: updating ``A = first`` solves one system
    of size ``n1 r``, ``B = second`` one of size ``r n2``. The Kronecker whitening of
    :func:`build` is exact only when ``C`` is a Kronecker product; this fits in ``C`` itself,
    as the SVD layer's whitening does.
    """
    _, m1, n1, r = first.shape
    _, m2, n2, _ = second.shape
    c = gram.double()
    c = (c + c.T) / 2
    eye = torch.eye(c.shape[0], dtype=c.dtype, device=c.device)
    c = c + ridge * float(c.diagonal().mean()) * eye
    c4 = c.reshape(n1, n2, n1, n2)
    shape = (m1 * m2, n1 * n2)
    target = (weight.double().reshape(shape) @ c).reshape(m1, m2, n1, n2)
    a = first.double().reshape(m1, n1, r)
    b = second.double().reshape(r, m2, n2)

    def error(a: Tensor, b: Tensor) -> float:
        return relative_error(weight, torch.einsum("xar,ryb->xyab", a, b).reshape(shape), c)

    def solve(h: Tensor, rhs: Tensor) -> Tensor:
        floor = 1e-12 * float(h.diagonal().sum()) / h.shape[0] + 1e-300
        h = h + floor * torch.eye(h.shape[0], dtype=h.dtype, device=h.device)
        factor, info = torch.linalg.cholesky_ex(h)  # h is PSD: half an LU's work
        if int(info) == 0:
            return torch.cholesky_solve(rhs, factor)
        return torch.linalg.lstsq(h, rhs).solution

    best = (error(a, b), a, b)
    for _ in range(sweeps):
        k = torch.einsum("ryb,syd->rbsd", b, b)
        h = torch.einsum("abcd,rbsd->arcs", c4, k).reshape(n1 * r, n1 * r)
        rhs = torch.einsum("xyab,ryb->arx", target, b).reshape(n1 * r, m1)
        a = solve(h, rhs).reshape(n1, r, m1).permute(2, 0, 1)
        k = torch.einsum("xar,xcs->arcs", a, a)
        h = torch.einsum("abcd,arcs->rbsd", c4, k).reshape(r * n2, r * n2)
        rhs = torch.einsum("xyab,xar->rby", target, a).reshape(r * n2, m2)
        b = solve(h, rhs).reshape(r, n2, m2).permute(0, 2, 1)
        err = error(a, b)
        improved = err < best[0] * (1 - tol)
        if err < best[0]:
            best = (err, a, b)
        if not improved:
            break
    _, a, b = best
    # the gauge: equal norms on the two sides
    scale = (b.norm() / a.norm().clamp_min(1e-300)).sqrt()
    return (a * scale).reshape(1, m1, n1, r), (b / scale).reshape(r, m2, n2, 1)


#: the largest normal-equations system (``n r``) that ``fit_two_cores`` refines by ALS
ALS_MAX_SYSTEM = 4096


def refinable(in_modes: list[int], rank: int) -> bool:
    """Whether :func:`fit_two_cores` refines two cores of these input modes and rank."""
    return max(in_modes) * rank <= ALS_MAX_SYSTEM


def fit_two_cores(
    weight: Tensor,
    in_modes: list[int],
    out_modes: list[int],
    size: int,
    gram: Tensor,
    *,
    refine: bool = True,
    check_gram: Tensor | None = None,
) -> tuple[tuple[Tensor, Tensor], float]:
    """The two cores ``(1, m1, n1, r)``, ``(r, m2, n2, 1)`` of rank ``r <= size`` fitted to
    ``weight`` (float64, ``(m1 m2, n1 n2)``) in the input metric ``gram``, and their relative
    error ``e``.

    The better of the Kronecker-whitened and the plain TT-SVD (measured in ``gram``); with
    ``refine``, :func:`refine_two_cores` then fits in ``gram`` itself (with its small ridge)
    where its systems have at most ``ALS_MAX_SYSTEM`` unknowns (``r`` times the longest input
    mode: balanced modes qualify at moderate ranks, skewed ones would need systems of ``r``
    times a long mode); :func:`refinable` says which. With ``check_gram`` (the Gram matrix
    of other inputs, e.g. validation batches) the refinement is kept only where it lowers the
    error there too: fitted to few calibration inputs, it can fit them at the others' cost.
    """
    gram = gram.double()

    def error(cores: tuple[Tensor, Tensor], metric: Tensor) -> float:
        return relative_error(weight, _two_core_weight(*cores, weight.shape), metric)

    best, best_error = None, math.inf
    for metric in (gram, None):  # the Kronecker whitening is a stand-in for C: keep the better
        u, s, vh, inverse = _two_core_svd(weight, in_modes, out_modes, metric)
        cores = _two_core_cores(u, s, vh, min(size, len(s)), in_modes, out_modes, inverse)
        err = error(cores, gram)
        if err < best_error:
            best, best_error = cores, err
    if refine and best_error > 0 and refinable(in_modes, best[0].shape[-1]):
        refined = refine_two_cores(weight, *best, gram)
        if check_gram is None or error(refined, check_gram) < error(best, check_gram):
            best, best_error = refined, error(refined, gram)
    return best, best_error


def _two_core_weight(first: Tensor, second: Tensor, shape: torch.Size) -> Tensor:
    """The dense ``(out, in)`` matrix of two cores ``(1, m1, n1, r)`` and ``(r, m2, n2, 1)``."""
    return torch.einsum("xmar,rnby->mnab", first, second).reshape(shape)


def relative_error(weight: Tensor, approx: Tensor, gram: Tensor | None) -> float:
    """``e = tr(E C E^T) / tr(W C W^T)`` with ``E = weight - approx`` (both ``(out, in)``) and
    ``C = gram`` (the identity when None)."""
    diff = (weight - approx).double()
    w = weight.double()
    if gram is None:
        return float(diff.pow(2).sum() / w.pow(2).sum().clamp_min(1e-300))
    num = ((diff @ gram) * diff).sum()
    den = ((w @ gram) * w).sum().clamp_min(1e-300)
    return float(num / den)


def _bias_params(linear: nn.Linear) -> int:
    return 0 if linear.bias is None else linear.out_features


def two_core_size(linear: nn.Linear, params: int) -> Candidate | None:
    """The largest two-core TT of ``linear`` (balanced modes) with at most ``params``
    parameters, bias included, or None where even rank 1 has more; its ``error`` is NaN, as
    it is known only once fitted."""
    (n1, n2), (m1, m2) = _tt_modes(linear, 2)
    per_rank = m1 * n1 + m2 * n2
    rank = min((params - _bias_params(linear)) // per_rank, m1 * n1, m2 * n2)
    if rank < 1:
        return None
    shapes = ((1, m1, n1, rank), (rank, m2, n2, 1))
    flops = plan_flops(shapes, FLOP_BATCH)
    return Candidate(
        rank, rank * per_rank + _bias_params(linear), math.ceil(flops / FLOP_BATCH), math.nan
    )


def candidates(
    linear: nn.Linear,
    method: str,
    gram: Tensor | None = None,
    n_cores: int = 2,
) -> list[Candidate]:
    """Every useful size of ``linear`` under ``method``: those with fewer parameters than the
    dense layer, smallest first, each with the error of :func:`build` at that size.

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
    bias = _bias_params(linear)
    dense = out_f * in_f + bias
    if method == "svd":
        # E = sum_{i>r} s_i u_i v_i^T of W L, U orthonormal: ||E||^2 = sum_{i>r} s_i^2
        whitened = weight if gram is None else weight @ gram_root(gram.double())[0]
        s = torch.linalg.svdvals(whitened)
        tail = (s**2).flip(0).cumsum(0).flip(0)  # tail[r] = sum_{i>=r} s_i^2
        total = max(float(tail[0]), 1e-300) if len(s) else 1.0
        result = []
        for r in range(1, len(s) + 1):
            params = r * (in_f + out_f) + bias
            if params >= dense:
                break
            err = float(tail[r]) / total if r < len(s) else 0.0
            result.append(Candidate(r, params, r * (in_f + out_f), err))
        return result
    if method != "mpo":
        raise InvalidInputError(f"method must be one of {METHODS}, got {method!r}")
    in_modes, out_modes = _tt_modes(linear, n_cores)
    probe = TTLinear(in_f, out_f, 1, in_modes=in_modes, out_modes=out_modes, bias=False)
    cap = max(probe._ranks(in_f * out_f))
    sizes = sorted({round(b) for b in np.geomspace(1, cap, 64)})
    if n_cores == 2:
        return _two_core_candidates(weight, in_modes, out_modes, sizes, gram, bias, dense)
    result = []
    for b in sizes:
        ranks = probe._ranks(b)
        pairs = enumerate(zip(out_modes, in_modes, strict=True))
        params = sum(ranks[j] * m * n * ranks[j + 1] for j, (m, n) in pairs)
        if params + bias >= dense:
            break
        layer = build(linear, "mpo", b, n_cores)
        err = relative_error(weight, layer.weight().detach(), gram)
        flops = math.ceil(layer.flops(FLOP_BATCH) / FLOP_BATCH)
        result.append(Candidate(b, layer.parameter_count(), flops, err))
    return result


def _two_core_candidates(
    weight: Tensor,
    in_modes: list[int],
    out_modes: list[int],
    sizes: list[int],
    gram: Tensor | None,
    bias: int,
    dense: int,
) -> list[Candidate]:
    """Two cores: TT-SVD is one SVD of ``W`` rearranged to ``(m_1 n_1) x (m_2 n_2)``, so every
    bond's truncation comes from that one decomposition."""
    (m1, m2), (n1, n2) = out_modes, in_modes
    fits = [_two_core_svd(weight, in_modes, out_modes, None)]
    if gram is not None:  # as build: the better of the whitened and the plain fit per size
        gram = gram.double()
        fits.append(_two_core_svd(weight, in_modes, out_modes, gram))
    result = []
    for b in sizes:
        keep = min(b, min(len(f[1]) for f in fits))
        params = keep * (m1 * n1 + m2 * n2) + bias
        if params >= dense:
            break
        err = min(
            relative_error(
                weight,
                _two_core_weight(
                    *_two_core_cores(u, s, vh, keep, in_modes, out_modes, inv), weight.shape
                ),
                gram,
            )
            for u, s, vh, inv in fits
        )
        shapes = ((1, m1, n1, keep), (keep, m2, n2, 1))
        flops = plan_flops(shapes, FLOP_BATCH)
        result.append(Candidate(keep, params, math.ceil(flops / FLOP_BATCH), err))
    return result
