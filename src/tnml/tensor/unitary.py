"""Real orthogonal (unitary) matrices: parametrisation, completion of isometries, Pauli rotations.

The quantum form of a tensor network is built from real orthogonal gates. They are
parametrised as ``U = base @ expm(A - A^T)``: ``base`` is a fixed orthogonal matrix (the
identity for a fresh model, the completion of a trained tensor for a converted one) and ``A``
is free, so every gradient step stays exactly on the orthogonal group (no retraction needed)
and ``A = 0`` reproduces ``base``.

For hardware-style training the same neighbourhood is reached by Pauli rotations
``exp(-i theta P / 2)`` with real generators (Pauli strings holding an odd number of ``Y``):
each is a gate a device can run, and the parameter-shift rule is exact for it.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from numbers import Integral

import torch
from torch import Tensor

from tnml.exceptions import InvalidInputError
from tnml.tensor.decomp import split

_PAULI = {
    "I": ((1.0, 0.0), (0.0, 1.0)),
    "X": ((0.0, 1.0), (1.0, 0.0)),
    "Z": ((1.0, 0.0), (0.0, -1.0)),
    # -i * Y, which is real: exp(-i theta Y / 2) = expm(theta/2 * (-iY)).
    "Y": ((0.0, -1.0), (1.0, 0.0)),
}


def orthogonal(base: Tensor, generator: Tensor) -> Tensor:
    """``base @ expm(A - A^T)``: an orthogonal matrix for any real ``A``.

    Parameters
    ----------
    base : Tensor, shape (..., n, n)
        Orthogonal matrices.
    generator : Tensor, shape (..., n, n)
        Free real matrices ``A``; only their antisymmetric part matters.

    Returns
    -------
    Tensor, shape (..., n, n)
    """
    return base @ torch.linalg.matrix_exp(generator - generator.transpose(-1, -2))


def complete_rows(rows: Tensor) -> Tensor:
    """An orthogonal matrix whose first ``m`` rows are the orthonormal ``rows`` given.

    Parameters
    ----------
    rows : Tensor, shape (m, n), m <= n
        Orthonormal rows (``rows @ rows.T = I``).

    Returns
    -------
    Tensor, shape (n, n)
        Orthogonal, ``U[:m] = rows``, with determinant +1 when ``m < n`` (so it has a real
        logarithm and lies on the same connected component as the identity).

    Raises
    ------
    InvalidInputError
        ``rows`` not 2-D, more rows than columns, or rows not orthonormal (tolerance 1e-6
        in float64, 1e-4 otherwise).
    """
    if rows.ndim != 2 or rows.shape[0] > rows.shape[1]:
        raise InvalidInputError(f"rows must have shape (m, n) with m <= n, got {tuple(rows.shape)}")
    m, n = rows.shape
    tol = 1e-6 if rows.dtype == torch.float64 else 1e-4
    gram = rows @ rows.T
    if not torch.allclose(gram, torch.eye(m, dtype=rows.dtype, device=rows.device), atol=tol):
        raise InvalidInputError("rows must be orthonormal (rows @ rows.T = I)")
    if m == n:
        return rows.clone()
    # The complete QR of rows^T has Q = [rows^T * signs, complement]; replace its first m
    # columns by rows^T itself (they span the same space) and keep the complement.
    q = torch.linalg.qr(rows.T, mode="complete").Q
    u = torch.cat([rows, q[:, m:].T], dim=0)
    if torch.linalg.det(u) < 0:
        u[-1] = -u[-1]
    return u


def complete_rows_at(rows: Tensor, positions: Sequence[int], size: int) -> Tensor:
    """An orthogonal ``size x size`` matrix whose row ``positions[i]`` is ``rows[i]``.

    Parameters
    ----------
    rows : Tensor, shape (m, size)
        Orthonormal rows.
    positions : sequence of m distinct ints in ``[0, size)``

    Returns
    -------
    Tensor, shape (size, size)
        The other rows complete the given ones (see :func:`complete_rows`).
    """
    positions = [int(p) for p in positions]
    if len(positions) != rows.shape[0] or len(set(positions)) != len(positions):
        raise InvalidInputError(
            f"positions must be {rows.shape[0]} distinct row indices, got {positions}"
        )
    if any(not 0 <= p < size for p in positions) or rows.shape[-1] != size:
        raise InvalidInputError(f"positions and rows must fit a {size} x {size} matrix")
    full = complete_rows(rows)
    taken = set(positions)
    order = positions + [j for j in range(size) if j not in taken]
    out = torch.empty_like(full)
    out[order] = full
    return out


def nearest_orthonormal_rows(a: Tensor) -> Tensor:
    """The matrix with orthonormal rows closest to ``a`` in Frobenius norm (polar factor).

    Parameters
    ----------
    a : Tensor, shape (m, n), m <= n

    Returns
    -------
    Tensor, shape (m, n), rows orthonormal.
    """
    if a.ndim != 2 or a.shape[0] > a.shape[1]:
        raise InvalidInputError(f"a must have shape (m, n) with m <= n, got {tuple(a.shape)}")
    # a = P W with W the row isometry ("polar_left": left = P, right = W).
    return split(a, "polar_left", absorb="left").right


def real_pauli_generators(n_qubits: int, *, dtype: torch.dtype = torch.float64) -> Tensor:
    """The real antisymmetric generators ``-i P`` of every Pauli string ``P`` with an odd
    number of ``Y`` on ``n_qubits`` qubits; they span the Lie algebra so(2^n).

    ``expm(theta / 2 * G_j) = exp(-i theta P_j / 2)`` is a real Pauli rotation.

    Parameters
    ----------
    n_qubits : int, >= 1

    Returns
    -------
    Tensor, shape (2^n (2^n - 1) / 2, 2^n, 2^n)
        Ordered by Pauli string (I < X < Y < Z, first qubit most significant).
    """
    if isinstance(n_qubits, bool) or not isinstance(n_qubits, int) or n_qubits < 1:
        raise InvalidInputError(f"n_qubits must be an integer >= 1, got {n_qubits!r}")
    generators = []
    for string in itertools.product("IXYZ", repeat=n_qubits):
        if string.count("Y") % 2 == 0:
            continue
        matrix = torch.ones(1, 1, dtype=dtype)
        for letter in string:
            matrix = torch.kron(matrix, torch.tensor(_PAULI[letter], dtype=dtype))
        generators.append(matrix)
    dim = 2**n_qubits
    assert len(generators) == dim * (dim - 1) // 2
    return torch.stack(generators)


def pauli_rotations(angles: Tensor, generators: Tensor) -> Tensor:
    """``prod_j exp(-i angles_j P_j / 2)`` in order ``j = 0, 1, ...`` (the first acts first).

    Parameters
    ----------
    angles : Tensor, shape (..., m)
    generators : Tensor, shape (m, n, n)
        From :func:`real_pauli_generators`; each squares to ``-I``, so every factor is
        ``cos(t/2) I + sin(t/2) G`` exactly.

    Returns
    -------
    Tensor, shape (..., n, n)
        Orthogonal.
    """
    n = generators.shape[-1]
    eye = torch.eye(n, dtype=generators.dtype, device=generators.device)
    half = angles.to(generators.dtype)[..., None, None] / 2
    factors = torch.cos(half) * eye + torch.sin(half) * generators  # (..., m, n, n)
    out = eye.expand(*angles.shape[:-1], n, n)
    for j in range(generators.shape[0]):
        out = factors[..., j, :, :] @ out
    return out


def n_qubits_of(dim: int, name: str) -> int:
    """``log2(dim)`` for a power of two ``dim >= 2``; else raise naming ``name``."""
    if isinstance(dim, bool) or not isinstance(dim, Integral) or dim < 2 or int(dim) & (dim - 1):
        raise InvalidInputError(
            f"{name} must be a power of two >= 2 for a quantum circuit (one qubit per factor "
            f"of 2), got {dim!r}"
        )
    return int(dim).bit_length() - 1
