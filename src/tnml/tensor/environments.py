"""Per-sample environments of an MPS with product states, extended one site at a time.

For samples ``x_1 .. x_n`` the left environment of site ``k`` is the contraction of sites
``0 .. k-1`` with each sample's local vectors, one row per sample; the right environment
contracts the sites after ``k``. Sweep trainers keep them for every bond and extend them by
one site as the centre moves: these are the two functions that do it, for every trainer.
Rows are stored divided by their norm (:func:`normalized_rows`) with the log-norms beside
them, so nothing under- or overflows over hundreds of sites. :class:`EnvironmentCache` keeps
them for every site: the one cache of the classifier's and the Born machine's sweeps.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from tnml.exceptions import InvalidInputError

__all__ = ["EnvironmentCache", "bond_projections", "extend_left", "extend_right", "normalized_rows"]

# Samples per product: beyond this, bigger matrix products no longer run faster on a CPU and
# only cost memory.
DEFAULT_CHUNK = 4096


def bond_projections(
    left: Tensor, phi_left: Tensor, phi_right: Tensor, right: Tensor
) -> tuple[Tensor, Tensor]:
    """Samples projected onto the bond of sites ``(k, k + 1)``: ``X_i = left_i (x) phi_k,i``
    (B, Dl d) and ``Y_i = phi_{k+1},i (x) right_i`` (B, d Dr), for ``left`` (B, Dl), ``phi_*``
    (B, d) and ``right`` (B, Dr); a bond tensor ``W`` (Dl d, d Dr) gives ``X_i^T W Y_i``."""
    x = (left[:, :, None] * phi_left[:, None, :]).flatten(1)
    y = (phi_right[:, :, None] * right[:, None, :]).flatten(1)
    return x, y


def extend_left(env: Tensor, core: Tensor, phi: Tensor, *, chunk: int = DEFAULT_CHUNK) -> Tensor:
    """The left environment one site further: ``out[t] = sum_{a,s} env[t, a] core[a, s, :]
    phi[t, s]``.

    Parameters
    ----------
    env : Tensor, shape (n, Dl)
    core : Tensor, shape (Dl, d, Dr)
        Cast to ``env``'s dtype.
    phi : Tensor, shape (n, d)
        Each sample's local vector at this site.
    chunk : int
        Samples per matrix product (bounds the ``(chunk, Dl * d)`` intermediate).

    Returns
    -------
    Tensor, shape (n, Dr)
        Not normalised.
    """
    dl, d, dr = core.shape
    matrix = core.to(env.dtype).reshape(dl * d, dr)
    out = env.new_empty(env.shape[0], dr)
    for s in range(0, env.shape[0], chunk):
        # the outer product with phi, then one GEMM: for small d the fastest order on a CPU
        rows = (env[s : s + chunk, :, None] * phi[s : s + chunk, None, :]).reshape(-1, dl * d)
        out[s : s + chunk] = rows @ matrix
    return out


def extend_right(env: Tensor, core: Tensor, phi: Tensor, *, chunk: int = DEFAULT_CHUNK) -> Tensor:
    """The right environment one site further left: ``out[t] = sum_{s,b} core[:, s, b]
    phi[t, s] env[t, b]``; shapes ``(n, Dr)``, ``(Dl, d, Dr)``, ``(n, d)`` -> ``(n, Dl)``."""
    dl, d, dr = core.shape
    matrix = core.to(env.dtype).reshape(dl, d * dr)
    out = env.new_empty(env.shape[0], dl)
    for s in range(0, env.shape[0], chunk):
        rows = (phi[s : s + chunk, :, None] * env[s : s + chunk, None, :]).reshape(-1, d * dr)
        out[s : s + chunk] = rows @ matrix.T
    return out


def normalized_rows(v: Tensor) -> tuple[Tensor, Tensor]:
    """Each row of ``v`` (n, D) divided by its 2-norm, and the log of that norm (n,).

    A zero row stays zero (its norm is floored at the dtype's smallest normal number).
    """
    norm = torch.linalg.vector_norm(v, dim=1).clamp_min(torch.finfo(v.dtype).tiny)
    return v / norm[:, None], norm.log()


class EnvironmentCache:
    """The left and right environments of ``n`` product states at every site of an MPS, as
    unit rows with their log-norms.

    ``left(k)`` contracts sites ``< k``, ``right(k)`` sites ``> k``; a two-site update of
    bond ``(k, k + 1)`` reads ``left(k)`` and ``right(k + 1)``. A sweep moving right calls
    :meth:`push_left` with the new left core, one moving left :meth:`push_right`; entries
    that the move makes stale are dropped, so reading one raises instead of returning
    numbers of another model.

    Parameters
    ----------
    phis : sequence of N Tensors, shape (n, d_i)
        Each site's local vectors of the ``n`` samples (a ``(N, n, d)`` tensor works too).
    cores : sequence of N Tensors, shape (D_i, d_i, D_{i+1})
        The MPS; only the cores away from ``center`` are read.
    center : int
        The environments are built from both ends up to this site.
    dtype : torch.dtype, optional
        Dtype of the stored rows; default the dtype of ``phis[0]``.
    chunk : int, default=4096
        Samples per matrix product.
    """

    def __init__(
        self,
        phis: Sequence[Tensor] | Tensor,
        cores: Sequence[Tensor],
        center: int,
        *,
        dtype: torch.dtype | None = None,
        chunk: int = DEFAULT_CHUNK,
    ) -> None:
        n_sites = len(cores)
        if len(phis) != n_sites:
            raise InvalidInputError(
                f"phis must hold {n_sites} sites, one per core, got {len(phis)}"
            )
        if not 0 <= center < n_sites:
            raise InvalidInputError(f"center must lie in [0, {n_sites}), got {center}")
        self.phis = phis
        self.chunk = chunk
        self.n_sites = n_sites
        n = phis[0].shape[0]
        dtype = phis[0].dtype if dtype is None else dtype
        ones = torch.ones(n, 1, dtype=dtype, device=phis[0].device)
        zeros = torch.zeros(n, dtype=dtype, device=phis[0].device)
        self._left: list[tuple[Tensor, Tensor] | None] = [None] * n_sites
        self._right: list[tuple[Tensor, Tensor] | None] = [None] * n_sites
        self._left[0] = (ones, zeros)
        self._right[n_sites - 1] = (ones.clone(), zeros.clone())
        for site in range(center):
            self.push_left(site, cores[site])
        for site in range(n_sites - 1, center, -1):
            self.push_right(site, cores[site])

    def left(self, site: int) -> tuple[Tensor, Tensor]:
        """``(rows (n, D), log_norms (n,))`` of the contraction of sites ``< site``."""
        return self._get(self._left, "left", site)

    def right(self, site: int) -> tuple[Tensor, Tensor]:
        """``(rows (n, D), log_norms (n,))`` of the contraction of sites ``> site``."""
        return self._get(self._right, "right", site)

    def push_left(self, site: int, core: Tensor) -> None:
        """Set ``left(site + 1)`` from ``left(site)`` and ``core`` ``(Dl, d, Dr)`` of
        ``site``; ``right(site)`` becomes stale."""
        env, log = self.left(site)
        rows, log_norm = normalized_rows(extend_left(env, core, self.phis[site], chunk=self.chunk))
        self._left[site + 1] = (rows, log + log_norm)
        self._right[site] = None

    def push_right(self, site: int, core: Tensor) -> None:
        """Set ``right(site - 1)`` from ``right(site)`` and ``core`` of ``site``;
        ``left(site)`` becomes stale."""
        env, log = self.right(site)
        rows, log_norm = normalized_rows(extend_right(env, core, self.phis[site], chunk=self.chunk))
        self._right[site - 1] = (rows, log + log_norm)
        self._left[site] = None

    @staticmethod
    def _get(
        entries: list[tuple[Tensor, Tensor] | None], side: str, site: int
    ) -> tuple[Tensor, Tensor]:
        entry = entries[site] if 0 <= site < len(entries) else None
        if entry is None:
            raise InvalidInputError(
                f"the {side} environment of site {site} is not valid for the model's current centre"
            )
        return entry
