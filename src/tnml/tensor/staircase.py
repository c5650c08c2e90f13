"""Staircase layers of two-qubit gates between two MPS: application and environment sweeps.

A *staircase layer* on ``n`` qubits is ``n - 1`` two-qubit gates on ``(0, 1), (1, 2), ...,
(n-2, n-1)``, applied in that order (Ran 2020). Between a bra MPS ``<chi|`` and a ket MPS
``|phi>`` the overlap ``O = <chi| L |phi>`` is a ladder that contracts left to right with a
boundary of shape ``(D_bra, D_ket, 2)``: the bra bond, the ket bond and the wire of the
qubit the next gate will act on. Every gate's environment ``E_i = dO/dG_i`` follows from a
left and a right boundary in ``O(n D^3)`` for the whole layer, so a deep circuit is
optimised layer by layer between a truncated "upper" state ``L_{m+1}^dagger ... |psi>`` and a
truncated "lower" state ``L_{m-1} ... |0>`` (the scheme of Evenbly & Vidal, used for circuits
by Lin et al. 2021 and Rudolph et al. 2023), without ever holding the circuit's full width.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from tnml.exceptions import InvalidInputError
from tnml.tensor._util import _tiny
from tnml.tensor.circuit_mps import apply_gates
from tnml.tensor.mps import MPS

__all__ = ["apply_layer", "layer_environments", "sweep_layer"]


def _check_layer(mps: MPS, gates: Tensor) -> None:
    n = mps.n_sites
    if gates.shape != (n - 1, 4, 4):
        raise InvalidInputError(
            f"a staircase layer on {n} qubits has {n - 1} gates of shape (4, 4); got "
            f"{tuple(gates.shape)}"
        )


def apply_layer(
    mps: MPS, gates: Tensor, *, inverse: bool = False, max_bond: int | None = None
) -> tuple[MPS, Tensor]:
    """``L |mps>`` (or ``L^dagger |mps>``) for the staircase layer ``L`` of ``gates``.

    Parameters
    ----------
    mps : MPS
        ``n`` qubits.
    gates : Tensor
        ``(n - 1, 4, 4)``, gate ``i`` on ``(i, i + 1)``.
    inverse : bool, default=False
        Apply ``L^dagger``: the adjoint gates in reverse order.
    max_bond : int, optional
        Bond cap of the SVD splits (:func:`tnml.tensor.circuit_mps.apply_gates`).

    Returns
    -------
    mps : MPS
    discarded_weight : Tensor, shape ()
    """
    _check_layer(mps, gates)
    pairs = [(i, i + 1) for i in range(mps.n_sites - 1)]
    if inverse:
        pairs, gates = pairs[::-1], torch.flip(gates, dims=[0]).conj().transpose(-1, -2)
    return apply_gates(mps, pairs, gates, max_bond=max_bond)


def _advance(left: Tensor, gate: Tensor, bra: Tensor, ket: Tensor) -> Tensor:
    """Boundary before gate ``i+1`` from the one before gate ``i``.

    ``left`` ``(A, B, 2)``: bra bond left of site i, ket bond right of site i, qubit i's wire;
    ``ket`` is core ``i+1`` ``(B, 2, B')``; ``bra`` is core ``i`` ``(A, 2, A')`` (conjugated
    here). Returns ``(A', B', 2)``: the wire of qubit ``i+1``.
    """
    t = torch.einsum("abs,btc->astc", left, ket)  # (A, 2, 2, B')
    a, _, _, c = t.shape
    t = (gate @ t.permute(1, 2, 0, 3).reshape(4, a * c)).reshape(2, 2, a, c)  # (s', t', A, B')
    return torch.einsum("uvac,aud->dcv", t, bra.conj())


def _close(left: Tensor, bra: Tensor) -> Tensor:
    """The overlap from the boundary after the last gate and the bra's last core."""
    return torch.einsum("abs,asd->", left, bra.conj())


def layer_environments(bra: MPS, gates: Tensor, ket: MPS) -> tuple[Tensor, Tensor]:
    """``O = <bra| L |ket>`` and every gate's environment ``E_i = dO/dG_i``.

    Parameters
    ----------
    bra, ket : MPS
        ``n`` qubits each.
    gates : Tensor
        ``(n - 1, 4, 4)``.

    Returns
    -------
    overlap : Tensor, shape ()
    environments : Tensor, shape (n - 1, 4, 4)
        ``O = sum_jk G_i[j, k] E_i[j, k]`` for every ``i``.
    """
    _check_layer(ket, gates)
    if gates.is_complex() or bra.dtype.is_complex or ket.dtype.is_complex:
        raise InvalidInputError("layer_environments handles real states and gates only")
    dtype = gates.dtype
    trial = gates.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        bras = [c.to(dtype) for c in bra.cores]
        overlap = _overlap(bras, trial, [c.to(dtype) for c in ket.cores]) * _scale(bra, ket)
        (environments,) = torch.autograd.grad(overlap, trial)
    return overlap.detach(), environments


def _scale(bra: MPS, ket: MPS) -> Tensor:
    return torch.exp(bra.log_scale + ket.log_scale)


def sweep_layer(
    bra: MPS, gates: Tensor, ket: MPS, update: Callable[[Tensor, Tensor], Tensor]
) -> tuple[Tensor, Tensor]:
    """Replace each gate of a staircase layer in turn by ``update(E_i, G_i)``, left to right.

    Right boundaries are built once from the old gates; the left boundary is carried along
    with the updated ones, so each gate sees the environment of the gates already changed
    and a polar update never lowers ``|<bra|L|ket>|``. ``E_i`` is signed so that a larger
    ``sum(G * E)`` means a larger ``|O|`` (real states and gates).

    Parameters
    ----------
    bra, ket : MPS
        Real, ``n`` qubits each.
    gates : Tensor
        ``(n - 1, 4, 4)``, real.
    update : callable
        ``update(environment, gate) -> new gate``, both ``(4, 4)``.

    Returns
    -------
    gates : Tensor
        ``(n - 1, 4, 4)``.
    overlap : Tensor, shape ()
        ``<bra|L|ket>`` with the new gates.
    """
    _check_layer(ket, gates)
    if gates.is_complex() or bra.dtype.is_complex or ket.dtype.is_complex:
        raise InvalidInputError("sweep_layer handles real states and gates only")
    n = ket.n_sites
    dtype = gates.dtype
    bras = [c.to(dtype) for c in bra.cores]
    kets = [c.to(dtype) for c in ket.cores]
    gates = gates.detach().clone()
    # rights[i]: the boundary after gate i-1 contracted with everything to its right.
    rights: list[Tensor | None] = [None] * n
    rights[n - 1] = bras[n - 1].conj().permute(0, 2, 1)  # (A, 1, 2) as (a, b, s)
    for i in range(n - 2, -1, -1):
        r = rights[i + 1]
        # R_i[a, b, s] = sum ket_{i+1}[b,t,c] G[(s't'),(st)] bra_i*[a,s',d] R_{i+1}[d,c,t']
        x = torch.einsum("aud,dcv->aucv", bras[i].conj(), r)  # (A, 2, B', 2)
        a, _, c, _ = x.shape
        x = x.permute(1, 3, 0, 2).reshape(4, a * c)  # ((s't'), (a c))
        x = (gates[i].transpose(0, 1) @ x).reshape(2, 2, a, c)  # ((s t), a, c)
        r_new = torch.einsum("stac,btc->abs", x, kets[i + 1])
        scale = torch.linalg.vector_norm(r_new).clamp_min(_tiny(dtype))
        rights[i] = r_new / scale
    left = kets[0].permute(0, 2, 1)
    for i in range(n - 1):
        t = torch.einsum("abs,btc->astc", left, kets[i + 1])  # (A, 2, 2, B')
        env = torch.einsum("astc,aud,dcv->uvst", t, bras[i].conj(), rights[i + 1])
        env = env.reshape(4, 4)
        value = float((gates[i] * env).sum())
        sign = 1.0 if value >= 0 else -1.0
        gates[i] = update(sign * env, gates[i]).to(dtype)
        left = _advance(left, gates[i], bras[i], kets[i + 1])
        left = left / torch.linalg.vector_norm(left).clamp_min(_tiny(dtype))
    overlap = _overlap(bras, gates, kets) * _scale(bra, ket).to(dtype)
    return gates, overlap


def _overlap(bras: list[Tensor], gates: Tensor, kets: list[Tensor]) -> Tensor:
    left = kets[0].permute(0, 2, 1)
    for i in range(len(kets) - 1):
        left = _advance(left, gates[i], bras[i], kets[i + 1])
    return _close(left, bras[-1])
