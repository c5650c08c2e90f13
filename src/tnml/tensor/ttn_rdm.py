"""Reduced density matrices of a tree tensor network, and the mutual information built on them.

The tree counterpart of :mod:`tnml.tensor.rdm`. All functions work on the normalised state
``|psi> / ||psi||`` of a :class:`~tnml.tensor.ttn.TTN` (its ``log_scale`` and norm are
ignored). When the root has an output leg of dimension ``L > 1`` (a classifier's label), that
leg is traced out: the state described is the mixture ``sum_l |W_l><W_l| / sum_l <W_l|W_l>``
over labels, exactly as ``traced_dims`` does for the label of an MPS classifier.

Method
------
The tree is canonicalised once (:func:`~tnml.tensor.ttn.ttn_canonicalize`), so a subtree
without open leaves contracts to the identity on its parent bond. Two passes then give every
quantity without a single full recontraction:

- Top-down "outside" densities ``E[n]`` (shape ``(D, D)``, ket index first, unit trace): the
  density matrix of the bond above node or leaf ``n`` with every leaf outside ``n``'s
  subtree (and the root's output leg) traced. ``E[root] = I_L`` and, for a node with tensor
  ``T (Da, Db, Dp)``, ``E[left][a, a'] = sum T[a, b, p] E[node][p, q] conj(T[a', b, q])``
  (the right subtree is the identity), likewise for the right child. ``O(D^4)`` per node.
  The outside density of a leaf is its one-site density matrix.
- Bottom-up "one open leaf" maps ``M[n]`` (shape ``(n_leaves_below, d, d, D, D)``,
  ``[i, s, s', ket bond, bra bond]``): the doubled subtree of ``n`` with leaf ``i`` open and
  every other leaf below ``n`` traced. A node pushes the maps of both children through its
  tensor (the other child traced to the identity), ``O(n_below d^2 D^4)`` per node.

The two open legs of a pair of leaves ``(i, j)`` meet at their lowest common ancestor ``m``;
there ``rho_ij = sum M[left][i] M[right][j] T E[m] conj(T)``, which is two matrix products
for all pairs with that ancestor at once. All pairs together cost
``O(N log N d^2 D^4 + N^2 d^4 D^2)``, in ``N - 1`` batched steps.

Conventions (as :mod:`tnml.tensor.rdm`)
---------------------------------------
- A one-site density matrix ``rho_i`` has shape ``(d, d)``, ``rho_i[s, s'] = sum_rest
  psi[.., s, ..] conj(psi[.., s', ..])``; a two-site one has shape ``(d, d, d, d)`` indexed
  ``[s_i, s_j, s_i', s_j']``.
- Leaves of different physical dimensions are zero-padded to the largest kept dimension.
- ``traced_dims``: leaf ``i``'s physical index ``p`` (size ``d_i``) read as ``p = s * a_i +
  t`` with ``t`` (size ``a_i = traced_dims[i]``) traced out and ``s`` kept.
- Entropies use the natural log and go through :func:`tnml.tensor.rdm.density_matrix_entropy`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import Tensor

from tnml.exceptions import InvalidInputError
from tnml.tensor.entropy import (
    ENTROPY_KINDS,
    density_matrix_entropy,
    mutual_information_from_entropies,
)
from tnml.tensor.ttn import TTN, NodeRef, ttn_canonicalize

__all__ = [
    "ttn_mutual_information",
    "ttn_one_site_rdms",
    "ttn_pair_entropies",
    "ttn_two_site_rdms",
]


def _check_kind(kind: object) -> str:
    if kind not in ENTROPY_KINDS:
        raise InvalidInputError(f"kind must be one of {ENTROPY_KINDS}, got {kind!r}")
    return kind  # type: ignore[return-value]


def _check_traced(traced_dims: object, phys: tuple[int, ...]) -> list[int]:
    n = len(phys)
    if traced_dims is None:
        return [1] * n
    if isinstance(traced_dims, (str, bytes)) or not isinstance(traced_dims, Sequence):
        raise InvalidInputError(
            f"traced_dims must be None or a sequence of {n} ints, got {traced_dims!r}"
        )
    traced = list(traced_dims)
    if len(traced) != n or any(
        isinstance(a, bool) or not isinstance(a, int) or a < 1 for a in traced
    ):
        raise InvalidInputError(
            f"traced_dims must be a sequence of n_leaves={n} ints >= 1, got {traced_dims!r}"
        )
    for i, (a, d) in enumerate(zip(traced, phys, strict=True)):
        if d % a:
            raise InvalidInputError(
                f"traced_dims[{i}] = {a} does not divide the physical dimension {d} of leaf {i}"
            )
    return traced


class _Prepared:
    """A canonical copy of the tree, its outside densities and the leaves' open maps."""

    def __init__(self, ttn: TTN, traced_dims: Sequence[int] | None) -> None:
        if not isinstance(ttn, TTN):
            raise InvalidInputError(f"ttn must be a tnml.tensor.TTN, got {type(ttn).__name__}")
        phys = ttn.phys_dims
        traced = _check_traced(traced_dims, phys)
        canon = ttn_canonicalize(ttn)
        root = canon.tensors[-1][0]
        if not bool(torch.linalg.vector_norm(root) > 0):
            raise InvalidInputError("ttn must not be the zero state to have density matrices")
        self.layout = canon.layout
        self.tensors = canon.tensors
        self.n = canon.n_leaves
        self.phys = phys
        self.traced = traced
        self.kept = [d // a for d, a in zip(phys, traced, strict=True)]
        self.dim = max(self.kept)
        self.outside = self._outside(root)

    def tensor(self, node: tuple[int, int]) -> Tensor:
        return self.tensors[node[0]][node[1]]

    def _outside(self, root: Tensor) -> dict[NodeRef, Tensor]:
        """Top-down outside densities of every node and leaf (unit trace, ket index first)."""
        layout = self.layout
        out: dict[NodeRef, Tensor] = {
            layout.root: torch.eye(root.shape[2], dtype=root.dtype, device=root.device)
        }
        for node in reversed(layout.nodes):
            t = self.tensor(node)
            half = torch.tensordot(t, out[node], dims=([2], [0]))  # (Da, Db, Dp')
            tc = t.conj()
            left, right = layout.children(node)
            out[left] = torch.tensordot(half, tc, dims=([1, 2], [1, 2]))  # (Da, Da')
            out[right] = torch.tensordot(half, tc, dims=([0, 2], [0, 2]))  # (Db, Db')
        return out

    def _pad(self, t: Tensor, k: int, axes: tuple[int, ...]) -> Tensor:
        """Zero-pad the given axes of size ``k`` to ``self.dim``."""
        if k == self.dim:
            return t
        pad: list[int] = []
        for ax in reversed(range(t.ndim)):
            pad += [0, self.dim - k] if ax in axes else [0, 0]
        return torch.nn.functional.pad(t, pad)

    def one_site(self) -> Tensor:
        """``rho_i`` for every leaf, shape ``(N, d, d)`` (padded)."""
        rows = []
        for i in range(self.n):
            k, a = self.kept[i], self.traced[i]
            e = self.outside[i].reshape(k, a, k, a).diagonal(dim1=1, dim2=3).sum(-1)
            rows.append(self._pad(e, k, (0, 1)))
        return torch.stack(rows)

    def _leaf_map(self, i: int, like: Tensor) -> Tensor:
        """The open map of leaf ``i`` itself, shape ``(1, d, d, d_i, d_i)``."""
        k, a, p = self.kept[i], self.traced[i], self.phys[i]
        # split[s, t, p] = 1 where p = s * a + t
        split = torch.eye(p, dtype=like.dtype, device=like.device).reshape(k, a, p)
        m = torch.einsum("stp,uto->supo", split, split)
        return self._pad(m, k, (0, 1)).unsqueeze(0)

    @staticmethod
    def _push(maps: Tensor, t: Tensor) -> Tensor:
        """Open maps (M, d, d, Da, Da') through ``t (Da, Db, Dp)``, the other child (b)
        traced: ``sum_{a, a', b} maps[., a, a'] t[a, b, p] conj(t[a', b, q])``."""
        n_open, d = maps.shape[0], maps.shape[1]
        da, db, dp = t.shape
        # [., a', a] @ t[a, (b p)] -> [., a', b, p]
        y = maps.reshape(-1, da, da).transpose(1, 2).reshape(-1, da) @ t.reshape(da, db * dp)
        # [., p, (a' b)] @ conj(t)[(a' b), q] -> [., p, q]
        y = y.reshape(-1, da * db, dp).transpose(1, 2) @ t.conj().reshape(da * db, dp)
        return y.reshape(n_open, d, d, dp, dp)

    def blocks(self) -> Iterator[tuple[tuple[int, ...], tuple[int, ...], Tensor]]:
        """Yield, for every node ``m``, ``(left leaves, right leaves, rho)`` with ``rho`` of
        shape ``(n_left, n_right, d, d, d, d)``: the two-site density matrices of all pairs
        (i below the left child, j below the right child), indexed
        ``[i, j, s_i, s_j, s_i', s_j']``."""
        layout = self.layout
        d = self.dim
        maps: dict[NodeRef, Tensor] = {}
        like = self.tensors[0][0]
        for node in layout.nodes:
            t = self.tensor(node)
            da, db, _ = t.shape
            left, right = layout.children(node)
            m_left = maps.pop(left) if not isinstance(left, int) else self._leaf_map(left, like)
            m_right = maps.pop(right) if not isinstance(right, int) else self._leaf_map(right, like)
            # the pairs whose lowest common ancestor is this node
            half = torch.tensordot(t, self.outside[node], dims=([2], [0]))  # (Da, Db, Dp')
            env = torch.tensordot(half, t.conj(), dims=([2], [2]))  # (Da, Db, Da', Db')
            env = env.permute(0, 2, 1, 3).reshape(da * da, db * db)
            n_left, n_right = m_left.shape[0], m_right.shape[0]
            x = m_left.reshape(n_left * d * d, da * da) @ env  # (i s s', b b')
            rho = x @ m_right.reshape(n_right * d * d, db * db).transpose(0, 1)
            rho = rho.reshape(n_left, d, d, n_right, d, d).permute(0, 3, 1, 4, 2, 5)
            yield layout.leaves_below(left), layout.leaves_below(right), rho
            if node != layout.root:
                maps[node] = torch.cat(
                    [self._push(m_left, t), self._push(m_right, t.permute(1, 0, 2))], dim=0
                )


# --------------------------------------------------------------------------------------------
# public functions
# --------------------------------------------------------------------------------------------


def ttn_one_site_rdms(ttn: TTN, *, traced_dims: Sequence[int] | None = None) -> Tensor:
    """One-site reduced density matrices of the normalised state of a tree.

    Parameters
    ----------
    ttn : TTN
        The state, ``N`` leaves, not zero. A root output leg of dimension ``L > 1`` is traced
        out (the mixture over labels).
    traced_dims : sequence of N ints, optional
        Size of the auxiliary part of each leaf's physical index that is traced out (see the
        module docstring); default: nothing traced.

    Returns
    -------
    Tensor, shape (N, d, d)
        ``rho_i[s, s']``, Hermitian, positive semi-definite, unit trace; ``d`` is the largest
        kept physical dimension (smaller leaves zero-padded). Dtype of the tensors. Cost
        ``O(N D^4)`` (one canonicalisation and one top-down pass).
    """
    return _Prepared(ttn, traced_dims).one_site()


def ttn_two_site_rdms(ttn: TTN, *, traced_dims: Sequence[int] | None = None) -> Tensor:
    """Two-site reduced density matrices of every pair of leaves, reusing environments.

    Parameters
    ----------
    ttn : TTN
        The state, ``N`` leaves, not zero; a root output leg is traced out.
    traced_dims : sequence of N ints, optional
        See :func:`ttn_one_site_rdms`.

    Returns
    -------
    Tensor, shape (N, N, d, d, d, d)
        ``rho[i, j]`` indexed ``[s_i, s_j, s_i', s_j']`` (leaf ``i`` the major index of
        ``rho[i, j].reshape(d * d, d * d)``), so ``rho[j, i] = rho[i, j].permute(1, 0, 3, 2)``;
        the diagonal ``rho[i, i]`` is zero. Same convention as
        :func:`tnml.tensor.rdm.mps_two_site_rdms`. Memory ``N^2 d^4``; for large trees prefer
        :func:`ttn_pair_entropies`. Cost ``O(N log N d^2 D^4 + N^2 d^4 D^2)``.
    """
    prep = _Prepared(ttn, traced_dims)
    d = prep.dim
    like = prep.tensors[0][0]
    out = like.new_zeros((prep.n, prep.n, d, d, d, d))
    for left, right, rho in prep.blocks():
        li = torch.tensor(left, device=out.device)[:, None]
        rj = torch.tensor(right, device=out.device)[None, :]
        out[li, rj] = rho
        out[rj.T, li.T] = rho.permute(1, 0, 3, 2, 5, 4)
    return out


def ttn_pair_entropies(
    ttn: TTN, kind: str = "vn", *, traced_dims: Sequence[int] | None = None
) -> Tensor:
    """Entropy of every pair of leaves, ``S_ij = S(rho_ij)``, without storing the ``rho_ij``.

    Parameters
    ----------
    ttn : TTN
        The state, ``N`` leaves, not zero; a root output leg is traced out.
    kind : {"vn", "renyi2"}, default="vn"
        Von Neumann or Renyi-2 entropy, natural log.
    traced_dims : sequence of N ints, optional
        See :func:`ttn_one_site_rdms`.

    Returns
    -------
    Tensor, shape (N, N)
        Symmetric, real; the diagonal holds the one-site entropies ``S_i``.
    """
    kind = _check_kind(kind)
    prep = _Prepared(ttn, traced_dims)
    d = prep.dim
    out = density_matrix_entropy(prep.one_site(), kind).diag()
    for left, right, rho in prep.blocks():
        s = density_matrix_entropy(rho.reshape(len(left), len(right), d * d, d * d), kind)
        li = torch.tensor(left, device=out.device)[:, None]
        rj = torch.tensor(right, device=out.device)[None, :]
        out[li, rj] = s
        out[rj.T, li.T] = s.T
    return out


def ttn_mutual_information(
    ttn: TTN, kind: str = "vn", *, traced_dims: Sequence[int] | None = None
) -> Tensor:
    """Mutual information ``I(i:j) = S_i + S_j - S_ij`` between every pair of leaves.

    Parameters
    ----------
    ttn : TTN
        The state, ``N`` leaves, not zero; a root output leg (a classifier's label) is traced
        out.
    kind : {"vn", "renyi2"}, default="vn"
        Entropy used. With ``"vn"`` the result is ``>= 0`` (up to rounding) and at most
        ``2 log d``; the Renyi-2 version can be negative for mixed states.
    traced_dims : sequence of N ints, optional
        See :func:`ttn_one_site_rdms`.

    Returns
    -------
    Tensor, shape (N, N)
        Symmetric, real; the diagonal is 0 by convention. Every pair's density matrix comes
        from the environments shared by all pairs (see the module docstring): cost
        ``O(N log N d^2 D^4 + N^2 d^4 D^2)`` plus ``N^2 / 2`` eigen-decompositions of
        ``d^2 x d^2`` matrices, not ``N^2`` contractions of the tree.
    """
    return mutual_information_from_entropies(ttn_pair_entropies(ttn, kind, traced_dims=traced_dims))
