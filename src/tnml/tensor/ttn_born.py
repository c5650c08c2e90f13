"""Born-rule probabilities of a tree tensor network over discrete inputs.

The tree counterpart of :mod:`tnml.tensor.born`: ``p(x) = |psi(x)|^2 / <psi|psi>`` with
``psi`` a :class:`~tnml.tensor.ttn.TTN` whose root has output dimension 1. Exact
log-probabilities, marginals of any subset of leaves, and exact independent samples,
optionally conditioned on observed leaves.

Both marginals and sampling use the canonical form (every non-root tensor an isometry
towards the root): a subtree with no observed leaf then contracts to the identity on its
parent bond, so only the paths above observed leaves cost anything. Sampling walks the tree
depth first, left subtree before right, carrying per sample the density matrix of the bond
above the current node given the leaves sampled so far and the evidence still to come.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from tnml.exceptions import InvalidInputError
from tnml.tensor.born import Evidence, check_basis_inputs, check_evidence, normalise_by_trace
from tnml.tensor.ttn import (
    TTN,
    NodeRef,
    ttn_canonicalize,
    ttn_log_amplitudes,
    ttn_log_norm,
)

__all__ = [
    "ttn_log_prob",
    "ttn_marginal_log_prob",
    "ttn_sample",
]


def _check_ttn(ttn: object) -> TTN:
    if not isinstance(ttn, TTN):
        raise InvalidInputError(f"ttn must be a tnml.tensor.TTN, got {type(ttn).__name__}")
    root = ttn.tensors[-1][0]
    if root.shape[2] != 1:
        raise InvalidInputError(
            f"a Born machine's tree has root output dimension 1, got {root.shape[2]}"
        )
    if root.is_complex():
        raise InvalidInputError("Born-machine functions take a real TTN, got a complex one")
    return ttn


def _leaf_dims(ttn: TTN) -> list[int]:
    dims = [0] * ttn.layout.n_leaves
    for node in ttn.layout.nodes:
        tensor = ttn.tensors[node[0]][node[1]]
        for side, child in enumerate(ttn.layout.children(node)):
            if isinstance(child, int):
                dims[child] = tensor.shape[side]
    return dims


def ttn_log_prob(ttn: TTN, indices: Tensor) -> Tensor:
    """Born log-probabilities ``log(psi(x)^2 / <psi|psi>)`` of basis inputs.

    Parameters
    ----------
    ttn : TTN
        Real tree with root output dimension 1 (any scale).
    indices : Tensor, shape (B, N), integers with ``0 <= x_i < d_i``

    Returns
    -------
    Tensor, shape (B,)
        Natural logs, ``-inf`` where ``psi(x) = 0``; differentiable in the tensors.
    """
    ttn = _check_ttn(ttn)
    indices = check_basis_inputs(indices, _leaf_dims(ttn))
    mantissa, log_abs = ttn_log_amplitudes(ttn, indices)
    sign = mantissa[:, 0]
    log_abs = torch.where(sign == 0, torch.full_like(log_abs, -torch.inf), log_abs)
    return 2.0 * (log_abs - ttn_log_norm(ttn))


def _environments(
    ttn: TTN, observed: dict[int, Tensor], dtype: torch.dtype
) -> tuple[dict[NodeRef, Tensor | None], Tensor]:
    """Bottom-up doubled environments of a canonical tree with observed leaves fixed.

    ``env[ref]`` has shape (b, D, D) (b = 1 or the batch), trace-normalised, or is None for
    a subtree without observed leaves (the identity, by the isometries). Returns the
    environments and the accumulated log of the normalisations (b,), so that
    ``p(observed) = exp(acc) * trace(env[root])``.
    """
    layout = ttn.layout
    env: dict[NodeRef, Tensor | None] = {}
    acc = torch.zeros(1, dtype=dtype)
    for leaf in range(layout.n_leaves):
        env[leaf] = None
    dims = _leaf_dims(ttn)
    for leaf, column in observed.items():
        basis = torch.nn.functional.one_hot(column, dims[leaf]).to(dtype)  # (b, d)
        env[leaf] = basis.unsqueeze(2) * basis.unsqueeze(1)
    for node in layout.nodes:
        left, right = layout.children(node)
        e_left, e_right = env[left], env[right]
        if e_left is None and e_right is None:
            env[node] = None
            continue
        t = ttn.tensors[node[0]][node[1]].to(dtype)  # (Da, Db, Dp)
        da, db, _ = t.shape
        e_left = torch.eye(da, dtype=dtype).unsqueeze(0) if e_left is None else e_left
        e_right = torch.eye(db, dtype=dtype).unsqueeze(0) if e_right is None else e_right
        half = torch.einsum("xac,abp->xcbp", e_left, t)
        half = torch.einsum("xbd,xcbp->xcdp", e_right, half)
        e = torch.einsum("xcdp,cdq->xpq", half, t)
        env[node], log_trace = normalise_by_trace(e)
        acc = acc + log_trace
    return env, acc


def ttn_marginal_log_prob(ttn: TTN, leaves: Sequence[int], values: Tensor) -> Tensor:
    """Log of the marginal probability ``p(x_S = v)`` of a subset ``S`` of leaves.

    Parameters
    ----------
    ttn : TTN
        Real tree with root output dimension 1, not the zero state.
    leaves : sequence of int
        Distinct leaf indices ``S``.
    values : Tensor, shape (B, len(S)), integers

    Returns
    -------
    Tensor, shape (B,)
        Natural logs (``-inf`` where zero).
    """
    ttn = _check_ttn(ttn)
    leaves = [int(s) for s in leaves]
    if not leaves or len(set(leaves)) != len(leaves):
        raise InvalidInputError(f"leaves must be distinct leaf indices, got {leaves}")
    if not isinstance(values, Tensor) or values.ndim != 2 or values.shape[1] != len(leaves):
        shape = tuple(values.shape) if isinstance(values, Tensor) else type(values).__name__
        raise InvalidInputError(f"values must have shape (B, {len(leaves)}), got {shape}")
    batch = values.shape[0]
    evidence = {leaf: values[:, j] for j, leaf in enumerate(leaves)}
    observed = check_evidence(evidence, _leaf_dims(ttn), batch)
    with torch.no_grad():
        canon = ttn_canonicalize(ttn)
        dtype = canon.tensors[-1][0].dtype
        env, acc = _environments(canon, observed, dtype)
        root = env[ttn.layout.root]
        trace = root.diagonal(dim1=1, dim2=2).sum(-1)  # 1 after normalisation, or 0
        out = acc + trace.clamp_min(torch.finfo(dtype).tiny).log()
    return out.expand(batch).clone()


def ttn_sample(
    ttn: TTN,
    n_samples: int,
    *,
    evidence: Evidence | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Exact, independent samples from ``p(x) = psi(x)^2 / <psi|psi>``, optionally conditioned.

    Parameters
    ----------
    ttn : TTN
        Real tree with root output dimension 1, not the zero state.
    n_samples : int
    evidence : mapping {leaf: value}, optional
        Observed leaves: an int shared by all samples or a length-``n`` integer tensor.
    generator : torch.Generator, optional

    Returns
    -------
    Tensor, shape (n, N), int64
    """
    ttn = _check_ttn(ttn)
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
        raise InvalidInputError(f"n_samples must be an int >= 1, got {n_samples!r}")
    observed = check_evidence(evidence, _leaf_dims(ttn), n_samples)
    layout = ttn.layout
    n = n_samples
    out = torch.empty((n, layout.n_leaves), dtype=torch.long)
    with torch.no_grad():
        canon = ttn_canonicalize(ttn)
        dtype = canon.tensors[-1][0].dtype
        tiny = torch.finfo(dtype).tiny
        env, _ = _environments(canon, observed, dtype)
        dims = _leaf_dims(canon)

        def trace_normalised(rho: Tensor) -> Tensor:
            rho, log_trace = normalise_by_trace(rho)
            if bool(torch.isinf(log_trace).any()):
                rows = torch.nonzero(torch.isinf(log_trace))[:10, 0].tolist()
                raise InvalidInputError(
                    f"the evidence of samples {rows} has probability zero under this model; "
                    "nothing can be sampled conditioned on it"
                )
            return rho

        def visit(ref: NodeRef, rho: Tensor) -> Tensor:
            """Sample the leaves below ``ref`` given the density ``rho`` (n, D, D) of its
            parent bond; return the subtree contracted with them, (n, D), unit rows."""
            if isinstance(ref, int):
                if ref in observed:
                    choice = observed[ref].expand(n)
                else:
                    weights = rho.diagonal(dim1=1, dim2=2).clamp_min(0)
                    choice = torch.multinomial(weights, 1, generator=generator).squeeze(1)
                out[:, ref] = choice
                return torch.nn.functional.one_hot(choice, dims[ref]).to(dtype)
            t = canon.tensors[ref[0]][ref[1]]
            left, right = layout.children(ref)
            e_right = env[right]
            # density of the left child: the right subtree traced (its evidence kept)
            half = torch.einsum("abp,xpq->xabq", t, rho)
            if e_right is None:
                rho_left = torch.einsum("xabq,cbq->xac", half, t)
            else:
                rho_left = torch.einsum("xabq,xbd,cdq->xac", half, e_right.expand(n, -1, -1), t)
            u = visit(left, trace_normalised(rho_left))
            w = torch.einsum("xa,abp->xbp", u, t)  # the left leaves fixed
            rho_right = trace_normalised(w @ rho @ w.transpose(1, 2))
            v = visit(right, rho_right)
            up = torch.einsum("xbp,xb->xp", w, v)
            norm = torch.linalg.vector_norm(up, dim=1, keepdim=True).clamp_min(tiny)
            return up / norm

        visit(layout.root, torch.ones((n, 1, 1), dtype=dtype))
    return out
