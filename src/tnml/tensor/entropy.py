"""Entropies (natural log) of probability vectors, Schmidt spectra and density matrices.

The one place the von Neumann and Renyi-2 formulas live; MPS and tree entanglement, reduced
density matrices and mutual information all call these.
"""

from __future__ import annotations

import torch
from torch import Tensor

from tnml.exceptions import InvalidInputError

__all__ = [
    "ENTROPY_KINDS",
    "check_entropy_kind",
    "density_matrix_entropy",
    "mutual_information_from_entropies",
    "probability_entropy",
    "schmidt_entropy",
]

#: The accepted values of ``kind``: von Neumann and Renyi-2 entropy (natural log).
ENTROPY_KINDS: tuple[str, ...] = ("vn", "renyi2")


def check_entropy_kind(kind: object) -> str:
    """``kind`` if it is one of :data:`ENTROPY_KINDS`, else :class:`InvalidInputError`."""
    if kind not in ENTROPY_KINDS:
        raise InvalidInputError(f"kind must be one of {ENTROPY_KINDS}, got {kind!r}")
    return kind  # type: ignore[return-value]


def probability_entropy(p: Tensor, kind: str = "vn") -> Tensor:
    """Entropy (natural log) of the distributions along the last axis of ``p``.

    Each row is divided by its sum first (rows summing to 0 give entropy 0); negative entries
    (rounding noise of an eigen-decomposition) are clamped to 0.

    Parameters
    ----------
    p : Tensor, shape (..., k)
        Real, non-negative weights.
    kind : {"vn", "renyi2"}, default="vn"
        ``"vn"``: ``-sum p log p``; ``"renyi2"``: ``-log sum p^2``.

    Returns
    -------
    Tensor, shape (...)
        Real, between 0 and ``log k``.
    """
    kind = check_entropy_kind(kind)
    if not isinstance(p, Tensor):
        raise InvalidInputError(f"p must be a torch.Tensor, got {type(p).__name__}")
    if p.is_complex() or not p.is_floating_point() or p.ndim < 1:
        raise InvalidInputError(
            f"p must be a real floating tensor with at least one axis, got dtype {p.dtype} "
            f"and shape {tuple(p.shape)}"
        )
    p = p.clamp_min(0)
    total = p.sum(dim=-1, keepdim=True)
    p = p / total.clamp_min(torch.finfo(p.dtype).tiny)
    if kind == "vn":
        return -torch.special.xlogy(p, p).sum(dim=-1)
    purity = p.square().sum(dim=-1)
    return torch.where(purity > 0, -purity.clamp_min(torch.finfo(p.dtype).tiny).log(), 0.0)


def density_matrix_entropy(rho: Tensor, kind: str = "vn") -> Tensor:
    """Entropy (natural log) of density matrices, from their eigenvalues.

    Parameters
    ----------
    rho : Tensor, shape (..., m, m)
        Hermitian positive semi-definite matrices (float or complex); they are symmetrised
        (``(rho + rho^H) / 2``) and normalised to unit trace.
    kind : {"vn", "renyi2"}, default="vn"
        See :func:`probability_entropy`.

    Returns
    -------
    Tensor, shape (...)
        Real.
    """
    if not isinstance(rho, Tensor):
        raise InvalidInputError(f"rho must be a torch.Tensor, got {type(rho).__name__}")
    if rho.ndim < 2 or rho.shape[-1] != rho.shape[-2]:
        raise InvalidInputError(f"rho must have shape (..., m, m), got {tuple(rho.shape)}")
    herm = 0.5 * (rho + rho.transpose(-2, -1).conj())
    return probability_entropy(torch.linalg.eigvalsh(herm), kind)


def schmidt_entropy(s: Tensor, kind: str = "vn") -> Tensor:
    """Entanglement entropy (natural log) from Schmidt values ``s`` (weights ``s^2``).

    Parameters
    ----------
    s : Tensor, shape (..., k)
        Real Schmidt (singular) values; normalised so that ``sum s^2 = 1`` first.
    kind : {"vn", "renyi2"}, default="vn"
        See :func:`probability_entropy`.

    Returns
    -------
    Tensor, shape (...)
        Real.
    """
    if not isinstance(s, Tensor):
        raise InvalidInputError(f"s must be a torch.Tensor, got {type(s).__name__}")
    return probability_entropy(s.square(), kind)


def mutual_information_from_entropies(pair: Tensor) -> Tensor:
    """``I(i:j) = S_i + S_j - S_ij`` from a matrix of entropies.

    Parameters
    ----------
    pair : Tensor, shape (N, N)
        ``pair[i, j] = S_ij`` off the diagonal and ``pair[i, i] = S_i``.

    Returns
    -------
    Tensor, shape (N, N)
        Symmetric; the diagonal is 0 by convention.
    """
    single = pair.diagonal()
    mi = single[:, None] + single[None, :] - pair
    return mi.fill_diagonal_(0.0)
