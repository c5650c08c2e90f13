"""Reduced density matrices of an MPS, and the entropies built on them.

All functions work on the normalised state ``|psi> / ||psi||`` of a :class:`~tnml.tensor.MPS`
(its ``log_scale`` and overall norm are ignored). The state is brought once to left-canonical
form (:func:`~tnml.tensor.mps.mps_canonicalize` with centre ``N - 1``), so the environment left
of any site is the identity; the right environments ``R_j`` (the reduced density matrix of
sites ``> j`` on the bond right of site ``j``) come from one right-to-left sweep.

Conventions
-----------
- A one-site density matrix ``rho_i`` has shape ``(d, d)`` with
  ``rho_i[s, s'] = sum_{rest} psi[.., s, ..] conj(psi[.., s', ..])``.
- A two-site density matrix of sites ``i`` and ``j`` has shape ``(d, d, d, d)`` indexed
  ``[s_i, s_j, s_i', s_j']``, so ``rho.reshape(d * d, d * d)`` is the usual matrix.
- Per-site physical dimensions may differ: every result is zero-padded to the largest kept
  dimension ``d`` (a padded density matrix has the same spectrum and entropy as the unpadded
  one, and its padded diagonal entries, the probabilities of states that do not exist, are 0).
- ``traced_dims``: optionally, part of each site's physical index is an auxiliary index that is
  traced out, which turns ``|psi><psi|`` into a mixed state of the remaining ("kept") indices.
  Site ``i``'s physical index ``p`` (size ``d_i``) is then read as ``p = s * a_i + t`` with
  ``t`` (size ``a_i = traced_dims[i]``) traced and ``s`` (size ``d_i / a_i``) kept. This is the
  layout of :meth:`tnml.models.MPSClassifierModule.to_mps`, whose output site carries the
  combined index ``s * L + l``: ``traced_dims = [1, .., L, .., 1]`` traces the label out.
- Entropies use the natural log. ``kind="vn"`` is von Neumann ``-sum p log p``;
  ``kind="renyi2"`` is ``-log sum p^2``. :func:`probability_entropy` is the one place the
  formulas live; density matrices and Schmidt values go through it.

Costs, with ``N`` sites, bond dimension ``D`` and local dimension ``d``: one-site density
matrices ``O(N d D^3)``; all two-site density matrices ``O(N^2 d^3 D^3)``, by carrying the
open doubled environments of every left site ``i`` (a batch of ``(D, D, d, d)`` tensors)
rightwards through the transfer matrices together and closing them at each ``j``, in ``O(N)``
batched steps (never ``N^2`` separate contractions).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import Tensor

from tnml.exceptions import InvalidInputError
from tnml.tensor.entropy import (
    check_entropy_kind,
    density_matrix_entropy,
    mutual_information_from_entropies,
)
from tnml.tensor.mps import MPS, mps_canonicalize

__all__ = [
    "mps_mutual_information",
    "mps_one_site_rdms",
    "mps_pair_entropies",
    "mps_two_site_rdms",
]

# --------------------------------------------------------------------------------------------
# environments
# --------------------------------------------------------------------------------------------


class _Prepared:
    """The left-canonical, normalised cores of an MPS and its right environments.

    ``cores[i]`` has shape ``(D_i, d_i, D_{i+1})`` (merged physical index); ``open[i]`` is the
    same core viewed as ``(D_i, k_i, a_i, D_{i+1})`` (kept, traced); ``right[i]`` is the
    ``(D_{i+1}, D_{i+1})`` environment of the sites right of ``i`` (ket index first).
    """

    def __init__(self, mps: MPS, traced_dims: Sequence[int] | None) -> None:
        if not isinstance(mps, MPS):
            raise InvalidInputError(f"mps must be an MPS, got {type(mps).__name__}")
        n = mps.n_sites
        phys = mps.phys_dims
        if traced_dims is None:
            traced = [1] * n
        else:
            if isinstance(traced_dims, (str, bytes)) or not isinstance(traced_dims, Sequence):
                raise InvalidInputError(
                    f"traced_dims must be None or a sequence of {n} ints, got {traced_dims!r}"
                )
            traced = list(traced_dims)
            if len(traced) != n or any(
                isinstance(a, bool) or not isinstance(a, int) or a < 1 for a in traced
            ):
                raise InvalidInputError(
                    f"traced_dims must be a sequence of n_sites={n} ints >= 1, got {traced_dims!r}"
                )
            bad = [i for i in range(n) if phys[i] % traced[i]]
            if bad:
                i = bad[0]
                raise InvalidInputError(
                    f"traced_dims[{i}] = {traced[i]} does not divide the physical dimension "
                    f"{phys[i]} of site {i}"
                )
        canon = mps_canonicalize(mps, n - 1)
        if not bool(torch.linalg.vector_norm(canon.cores[-1]) > 0):
            raise InvalidInputError("mps must not be the zero state to have density matrices")
        self.n = n
        self.cores = canon.cores
        self.kept = [phys[i] // traced[i] for i in range(n)]
        self.dim = max(self.kept)
        self.open = [
            c.reshape(c.shape[0], self.kept[i], traced[i], c.shape[2])
            for i, c in enumerate(self.cores)
        ]
        right = [self.cores[-1].new_ones((1, 1))] * n
        for j in range(n - 1, 0, -1):
            a = self.cores[j]
            t = torch.tensordot(a, right[j], dims=([2], [0]))  # (Dl, d, Dr')
            right[j - 1] = torch.tensordot(t, a.conj(), dims=([1, 2], [1, 2]))  # (Dl, Dl')
        self.right = right

    def _pad(self, t: Tensor, k: int, axes: tuple[int, ...]) -> Tensor:
        """Zero-pad the given axes of size ``k`` to ``self.dim``."""
        if k == self.dim:
            return t
        shape = list(t.shape)
        for ax in axes:
            shape[ax] = self.dim
        out = t.new_zeros(shape)
        index = [slice(None)] * t.ndim
        for ax in axes:
            index[ax] = slice(0, k)
        out[tuple(index)] = t
        return out

    def one_site(self, j: int) -> Tensor:
        """``rho_j``, shape ``(d, d)`` (padded)."""
        b = self.open[j]
        t = torch.tensordot(b, self.right[j], dims=([3], [0]))  # (Dl, k, a, Dr')
        rho = torch.tensordot(t, b.conj(), dims=([0, 2, 3], [0, 2, 3]))  # (k, k')
        return self._pad(rho, self.kept[j], (0, 1))

    def columns(self) -> Iterator[tuple[int, Tensor]]:
        """Yield ``(j, rho[:j, j])`` for ``j = 1 .. N-1``; shape ``(j, d, d, d, d)``.

        ``rho[i, j]`` is indexed ``[s_i, s_j, s_i', s_j']``. The open environments of every
        ``i < j`` are carried together as one batch ``env`` of shape ``(i, d, d, D, D)``
        (``[i, s_i, s_i', ket bond, bra bond]``).
        """
        d = self.dim
        env: Tensor | None = None
        for j in range(self.n):
            b, k = self.open[j], self.kept[j]
            dl = b.shape[0]
            if env is not None:
                # close every open environment at site j: C[l, u, l', u']
                t = torch.tensordot(b, self.right[j], dims=([3], [0]))  # (Dl, k, a, Dr')
                close = torch.tensordot(t, b.conj(), dims=([2, 3], [2, 3]))  # (Dl, k, Dl', k')
                close = self._pad(close, k, (1, 3)).permute(0, 2, 1, 3).reshape(dl * dl, d * d)
                n_open = env.shape[0]
                col = (env.reshape(n_open * d * d, dl * dl) @ close).reshape(n_open, d, d, d, d)
                yield j, col.permute(0, 1, 3, 2, 4)  # (i, s, u, s', u')
                # transfer every open environment through site j
                a = self.cores[j]
                dr, p = a.shape[2], a.shape[1]
                # sum_l env[., l, l'] a[l, x, r] -> [., l', x, r] -> [., r, l', x]
                tmp = env.reshape(-1, dl, dl).transpose(1, 2) @ a.reshape(dl, p * dr)
                tmp = tmp.reshape(-1, dl, p, dr).permute(0, 3, 1, 2)
                # sum_{l', x} tmp[., r, l', x] conj(a[l', x, r']) -> [., r, r']
                env = tmp.reshape(-1, dr, dl * p) @ a.conj().reshape(dl * p, dr)
                env = env.reshape(n_open, d, d, dr, dr)
            # open a new environment at site j (the left environment is the identity)
            new = torch.tensordot(b, b.conj(), dims=([0, 2], [0, 2]))  # (k, Dr, k', Dr')
            new = self._pad(new.permute(0, 2, 1, 3), k, (0, 1)).unsqueeze(0)
            env = new if env is None else torch.cat([env, new], dim=0)


# --------------------------------------------------------------------------------------------
# public functions
# --------------------------------------------------------------------------------------------


def mps_one_site_rdms(mps: MPS, *, traced_dims: Sequence[int] | None = None) -> Tensor:
    """One-site reduced density matrices of the normalised state.

    Parameters
    ----------
    mps : MPS
        The state, N sites, not zero.
    traced_dims : sequence of N ints, optional
        Size of the auxiliary part of each site's physical index that is traced out (see the
        module docstring); default: nothing traced.

    Returns
    -------
    Tensor, shape (N, d, d)
        ``rho_i[s, s']``, Hermitian, positive semi-definite, unit trace; ``d`` is the largest
        kept physical dimension (smaller sites are zero-padded). Dtype of the cores. Cost
        ``O(N d D^3)``.
    """
    prep = _Prepared(mps, traced_dims)
    return torch.stack([prep.one_site(j) for j in range(prep.n)])


def mps_two_site_rdms(mps: MPS, *, traced_dims: Sequence[int] | None = None) -> Tensor:
    """Two-site reduced density matrices of every pair of sites, reusing environments.

    Parameters
    ----------
    mps : MPS
        The state, N sites, not zero.
    traced_dims : sequence of N ints, optional
        See :func:`mps_one_site_rdms`.

    Returns
    -------
    Tensor, shape (N, N, d, d, d, d)
        ``rho[i, j]`` indexed ``[s_i, s_j, s_i', s_j']`` (``rho[i, j].reshape(d*d, d*d)`` is
        the density matrix of the pair, site ``i`` the major index), so
        ``rho[j, i] = rho[i, j].permute(1, 0, 3, 2)``. The diagonal ``rho[i, i]`` is zero (not
        a two-site quantity). Memory ``N^2 d^4``: for long chains prefer
        :func:`mps_pair_entropies`, which keeps only entropies. Cost ``O(N^2 d^3 D^3)`` in
        ``O(N)`` batched steps.
    """
    prep = _Prepared(mps, traced_dims)
    d = prep.dim
    out = prep.cores[0].new_zeros((prep.n, prep.n, d, d, d, d))
    for j, col in prep.columns():
        out[:j, j] = col
        out[j, :j] = col.permute(0, 2, 1, 4, 3)
    return out


def mps_pair_entropies(
    mps: MPS, kind: str = "vn", *, traced_dims: Sequence[int] | None = None
) -> Tensor:
    """Entropy of every pair of sites, ``S_ij = S(rho_ij)``, without storing the ``rho_ij``.

    Parameters
    ----------
    mps : MPS
        The state, N sites, not zero.
    kind : {"vn", "renyi2"}, default="vn"
        Von Neumann or Renyi-2 entropy, natural log.
    traced_dims : sequence of N ints, optional
        See :func:`mps_one_site_rdms`.

    Returns
    -------
    Tensor, shape (N, N)
        Symmetric, real; the diagonal holds the one-site entropies ``S_i`` (the entropy of the
        set ``{i, i} = {i}``).
    """
    kind = check_entropy_kind(kind)
    prep = _Prepared(mps, traced_dims)
    d = prep.dim
    one = torch.stack([prep.one_site(j) for j in range(prep.n)])
    single = density_matrix_entropy(one, kind)
    out = single.diag()
    for j, col in prep.columns():
        s = density_matrix_entropy(col.reshape(j, d * d, d * d), kind)
        out[:j, j] = s
        out[j, :j] = s
    return out


def mps_mutual_information(
    mps: MPS, kind: str = "vn", *, traced_dims: Sequence[int] | None = None
) -> Tensor:
    """Mutual information ``I(i:j) = S_i + S_j - S_ij`` between every pair of sites.

    Parameters
    ----------
    mps : MPS
        The state, N sites, not zero.
    kind : {"vn", "renyi2"}, default="vn"
        Entropy used. With ``"vn"`` the result is ``>= 0`` (subadditivity, up to rounding)
        and at most ``2 log d``; the Renyi-2 version can be negative for mixed states.
    traced_dims : sequence of N ints, optional
        See :func:`mps_one_site_rdms`.

    Returns
    -------
    Tensor, shape (N, N)
        Symmetric, real; the diagonal is 0 by convention (the usual choice in the
        literature; ``I(i:i)`` would be ``S_i``). Cost ``O(N^2 d^3 D^3)``.
    """
    return mutual_information_from_entropies(mps_pair_entropies(mps, kind, traced_dims=traced_dims))
