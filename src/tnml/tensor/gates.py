"""Parametrised two-qubit blocks: the native gates of hardware circuits.

A device runs one- and two-qubit gates; every two-qubit unitary costs at most three CX
after synthesis (the KAK decomposition), and a *real* one of determinant +1, an element of
``SO(4)``, costs at most two: in the magic basis it is a product of two one-qubit gates
(Vatan & Williams 2004), and the basis change costs one CX on each side. tnml's models are
real, so ``"so4"`` (6 angles, 2 CX) is the default block; ``"u4"`` (15 angles, 3 CX) is the
general complex block.

Both are exponentials of a generator built from the angles, so a block at angles 0 is the
identity and gradients with respect to the angles are smooth everywhere.

Matrices are big-endian in the block's qubits ``(a, b)``: row index ``2 * a' + b'``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from tnml.exceptions import InvalidInputError

__all__ = [
    "BLOCKS",
    "Block",
    "block_matrices",
    "check_block",
    "nearest_special_orthogonal",
    "so4_generators",
    "u4_generators",
]


@dataclass(frozen=True)
class Block:
    """A two-qubit block kind.

    Attributes
    ----------
    name : str
        ``"so4"`` or ``"u4"``.
    n_params : int
        Angles per block.
    cx_count : int
        CX gates that synthesise any block of this kind (the most a KAK decomposition needs).
    is_complex : bool
        Whether the matrices are complex.
    """

    name: str
    n_params: int
    cx_count: int
    is_complex: bool


BLOCKS: dict[str, Block] = {
    "so4": Block("so4", 6, 2, False),
    "u4": Block("u4", 15, 3, True),
}


def check_block(block: object) -> Block:
    """The :class:`Block` named ``block``; raise naming the argument otherwise."""
    if isinstance(block, Block):
        return block
    if block not in BLOCKS:
        raise InvalidInputError(f"block must be one of {sorted(BLOCKS)}, got {block!r}")
    return BLOCKS[str(block)]


def so4_generators(dtype: torch.dtype = torch.float64) -> Tensor:
    """The 6 antisymmetric unit generators ``E_ij - E_ji`` (``i < j``) of so(4).

    Returns
    -------
    Tensor
        Shape ``(6, 4, 4)``.
    """
    out = torch.zeros(6, 4, 4, dtype=dtype)
    k = 0
    for i in range(4):
        for j in range(i + 1, 4):
            out[k, i, j], out[k, j, i] = 1.0, -1.0
            k += 1
    return out


def u4_generators(dtype: torch.dtype = torch.complex128) -> Tensor:
    """15 anti-Hermitian traceless generators of su(4): ``i`` times the Pauli strings
    other than the identity.

    Returns
    -------
    Tensor
        Shape ``(15, 4, 4)``, complex.
    """
    paulis = [
        torch.eye(2, dtype=dtype),
        torch.tensor([[0, 1], [1, 0]], dtype=dtype),
        torch.tensor([[0, -1j], [1j, 0]], dtype=dtype),
        torch.tensor([[1, 0], [0, -1]], dtype=dtype),
    ]
    out = [1j * torch.kron(p, q) for p in paulis for q in paulis][1:]
    return torch.stack(out)


_GENERATORS: dict[tuple[str, torch.dtype, torch.device], Tensor] = {}


def _generators(block: Block, dtype: torch.dtype, device: torch.device) -> Tensor:
    key = (block.name, dtype, device)
    if key not in _GENERATORS:
        if block.is_complex:
            gens = u4_generators(dtype if dtype.is_complex else _COMPLEX[dtype])
        else:
            gens = so4_generators(dtype)
        _GENERATORS[key] = gens.to(device)
    return _GENERATORS[key]


_COMPLEX = {torch.float32: torch.complex64, torch.float64: torch.complex128}


def block_matrices(params: Tensor, block: str | Block = "so4") -> Tensor:
    """``expm(sum_j params_j G_j)`` for each row of angles.

    Parameters
    ----------
    params : Tensor
        Shape ``(..., n_params)``, real (float32 or float64).
    block : {"so4", "u4"} or Block, default="so4"

    Returns
    -------
    Tensor
        Shape ``(..., 4, 4)``: real orthogonal with determinant +1 (``"so4"``) or complex
        unitary with determinant 1 (``"u4"``); the identity at ``params = 0``.

    Examples
    --------
    >>> u = block_matrices(torch.zeros(3, 6, dtype=torch.float64))
    >>> bool(torch.allclose(u, torch.eye(4, dtype=torch.float64).expand(3, 4, 4)))
    True
    """
    kind = check_block(block)
    if params.shape[-1:] != (kind.n_params,):
        raise InvalidInputError(
            f"params for {kind.name} blocks must have last dim {kind.n_params}, "
            f"got shape {tuple(params.shape)}"
        )
    if params.is_complex():
        raise InvalidInputError("block angles must be real")
    gens = _generators(kind, params.dtype, params.device)
    coeffs = params.to(gens.dtype) if kind.is_complex else params
    algebra = torch.einsum("...j,jab->...ab", coeffs, gens)
    return torch.linalg.matrix_exp(algebra)


def nearest_special_orthogonal(m: Tensor) -> Tensor:
    """The rotation (orthogonal, determinant +1) nearest to each real square ``m``.

    Solves ``max_R tr(R^T m)`` over ``SO(n)``: the polar factor ``U V^T`` of the SVD
    ``m = U S V^T``, with the sign of the last singular direction flipped when
    ``det(U V^T) = -1`` (Kabsch). This is the optimal update of a gate whose environment is
    ``m`` in a sweep that keeps blocks in ``SO(4)``.

    Parameters
    ----------
    m : Tensor
        Shape ``(..., n, n)``, real.

    Returns
    -------
    Tensor
        Shape ``(..., n, n)``.
    """
    u, _, vh = torch.linalg.svd(m)
    det = torch.linalg.det(u @ vh)
    flip = torch.ones(m.shape[:-1], dtype=m.dtype, device=m.device)
    flip[..., -1] = torch.where(det < 0, -1.0, 1.0).to(m.dtype)
    return (u * flip[..., None, :]) @ vh
