"""Per-sample environments of an MPS with product states, extended one site at a time.

For samples ``x_1 .. x_n`` the left environment of site ``k`` is the contraction of sites
``0 .. k-1`` with each sample's local vectors, one row per sample; the right environment
contracts the sites after ``k``. Sweep trainers keep them for every bond and extend them by
one site as the centre moves: these are the two functions that do it, for every trainer.
Rows are usually stored divided by their norm (:func:`normalized_rows`), the log-norms kept
where the true scale matters, so nothing under- or overflows over hundreds of sites.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["extend_left", "extend_right", "normalized_rows"]

# Samples per product: beyond this, bigger matrix products no longer run faster on a CPU and
# only cost memory.
DEFAULT_CHUNK = 4096


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
