"""Exact classical evaluation of the quantum-channel networks that unitary models are.

A unitary model is a circuit: every input feature is a qubit prepared in
``cos(pi x/2)|0> + sin(pi x/2)|1>``, every tensor is an orthogonal gate on a few qubits, and
after each gate some qubits are discarded (traced out: measured and ignored, or reset for
reuse). The label is read from the qubits left at the end. Classically this is a doubled
(density-matrix) network; the functions here contract it batched over samples, so what a
model computes is exactly what its circuit measures.

Conventions: qubits inside a gate are ordered with the first one the most significant bit of
the matrix index; densities are real (every gate and input state is real).

MPS channel (Huggins et al. 2019, the qubit-efficient MPS): ``V`` bond qubits start in
``|0...0>``; step ``i`` adds the qubit of feature ``i`` as the last qubit, applies
``U_i`` on the ``V + 1`` qubits and discards the first one; the remaining ``V`` are the bond.

Tree channel: each node applies ``U`` to the qubits of its two children (left child first),
keeps the first ``min(V, w_left + w_right)`` qubits and discards the rest. Leaves are the
feature qubits.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from tnml.exceptions import InvalidInputError
from tnml.tensor.ttn import TreeLayout


def _renormalise(rho: Tensor) -> Tensor:
    """Divide densities (..., n, n) by their trace; channels preserve it up to rounding only."""
    trace = torch.diagonal(rho, dim1=-2, dim2=-1).sum(-1)
    return rho / trace[..., None, None]


def mps_channel_density(unitaries: Tensor, phi: Tensor) -> Tensor:
    """Density of the ``V`` bond qubits after the MPS channel has read every feature.

    Parameters
    ----------
    unitaries : Tensor, shape (N, 2D, 2D)
        Orthogonal gate of each step on (bond qubits, feature qubit), ``D = 2^V``.
    phi : Tensor, shape (B, N, 2)
        Qubit states of the features (unit vectors).

    Returns
    -------
    Tensor, shape (B, D, D)
        Unit-trace density of the bond qubits.
    """
    if unitaries.ndim != 3 or unitaries.shape[1] != unitaries.shape[2]:
        raise InvalidInputError(
            f"unitaries must have shape (N, 2D, 2D), got {tuple(unitaries.shape)}"
        )
    n_sites, two_d, _ = unitaries.shape
    bond = two_d // 2
    if phi.ndim != 3 or phi.shape[1] != n_sites or phi.shape[2] != 2:
        raise InvalidInputError(f"phi must have shape (B, {n_sites}, 2), got {tuple(phi.shape)}")
    batch = phi.shape[0]
    rho = torch.zeros(batch, bond, bond, dtype=phi.dtype, device=phi.device)
    rho[:, 0, 0] = 1.0
    # U[(o, j), (i, s)]: o the discarded qubit, j the new bond, i the old bond, s the feature.
    gates = unitaries.to(phi.dtype).reshape(n_sites, 2 * bond, bond, 2)
    for site in range(n_sites):
        # Kraus operators K_o = U[o, :, :, s] phi_s of the step, one pair per sample.
        kraus = torch.einsum("pis,bs->bpi", gates[site], phi[:, site])  # (B, 2D, D)
        half = (kraus @ rho).reshape(batch, 2, bond, bond)
        rho = (half @ kraus.reshape(batch, 2, bond, bond).transpose(-1, -2)).sum(1)
        rho = _renormalise(rho)
    return rho


def tree_widths(layout: TreeLayout, n_bond_qubits: int) -> list[list[int]]:
    """Number of qubits carried by every entry of every level of the tree channel.

    Returns
    -------
    list of list of int
        ``widths[l][e]``: qubits of entry ``e`` of level ``l`` (level 0: the leaves, one qubit
        each; the last level holds the root alone).
    """
    widths = [[1] * layout.n_leaves]
    for pairs, carried in zip(layout.pairs, layout.carried, strict=True):
        below = widths[-1]
        level = [min(n_bond_qubits, below[i] + below[j]) for i, j in pairs]
        level += [below[c] for c in carried]
        widths.append(level)
    return widths


def tree_gate_sizes(layout: TreeLayout, n_bond_qubits: int) -> list[list[tuple[int, int, int]]]:
    """``(w_left, w_right, w_kept)`` of every node: its gate acts on ``w_left + w_right`` qubits."""
    widths = tree_widths(layout, n_bond_qubits)
    return [
        [(widths[l][i], widths[l][j], widths[l + 1][k]) for k, (i, j) in enumerate(pairs)]
        for l, pairs in enumerate(layout.pairs)
    ]


def tree_channel_density(
    layout: TreeLayout, unitaries: Sequence[Sequence[Tensor]], n_bond_qubits: int, phi: Tensor
) -> Tensor:
    """Density of the root's qubits after the tree channel has read every feature.

    Parameters
    ----------
    layout : TreeLayout
    unitaries : sequence (one per layer) of sequences (one per node) of Tensor
        Node ``(l, k)``'s orthogonal gate, shape ``(2^(wl + wr), 2^(wl + wr))`` with
        ``(wl, wr, wk) = tree_gate_sizes(layout, V)[l][k]``.
    n_bond_qubits : int
        ``V``: a node keeps at most ``V`` qubits.
    phi : Tensor, shape (B, N, 2)
        Qubit states of the features (leaf ``i`` reads feature ``i``).

    Returns
    -------
    Tensor, shape (B, 2^w, 2^w)
        Unit-trace density of the root's ``w`` qubits.
    """
    if phi.ndim != 3 or phi.shape[1] != layout.n_leaves or phi.shape[2] != 2:
        raise InvalidInputError(
            f"phi must have shape (B, {layout.n_leaves}, 2), got {tuple(phi.shape)}"
        )
    sizes = tree_gate_sizes(layout, n_bond_qubits)
    # Leaves are pure: rho = phi phi^T.
    level = list(torch.einsum("bns,bnt->nbst", phi, phi).unbind(0))
    for l, pairs in enumerate(layout.pairs):
        groups: dict[tuple[int, int, int], list[int]] = {}
        for k, size in enumerate(sizes[l]):
            groups.setdefault(size, []).append(k)
        nodes: list[Tensor | None] = [None] * len(pairs)
        for (wl, wr, wk), members in groups.items():
            gates = torch.stack([unitaries[l][k] for k in members]).to(phi.dtype)
            gates = gates.reshape(len(members), 2**wk, 2 ** (wl + wr - wk), 2**wl, 2**wr)
            left = torch.stack([level[pairs[k][0]] for k in members], dim=1)
            right = torch.stack([level[pairs[k][1]] for k in members], dim=1)
            half = torch.einsum("gkeac,bgaA->bgkeAc", gates, left)
            half = torch.einsum("bgkeAc,bgcC->bgkeAC", half, right)
            rho = _renormalise(torch.einsum("bgkeAC,gKeAC->bgkK", half, gates))
            for slot, k in enumerate(members):
                nodes[k] = rho[:, slot]
        level = nodes + [level[c] for c in layout.carried[l]]
    return level[0]


def label_distribution(rho: Tensor, n_label_qubits: int, n_labels: int) -> Tensor:
    """Probability of each label read on the first ``n_label_qubits`` qubits of ``rho``.

    The label ``l`` is the integer whose binary digits are those qubits (first qubit most
    significant). When ``n_labels < 2^n_label_qubits`` the distribution is renormalised over
    the valid labels (post-selection on a valid outcome).

    Parameters
    ----------
    rho : Tensor, shape (B, n, n)
    n_label_qubits : int
    n_labels : int

    Returns
    -------
    Tensor, shape (B, n_labels)
    """
    diag = torch.diagonal(rho, dim1=-2, dim2=-1)
    probs = diag.reshape(rho.shape[0], 2**n_label_qubits, -1).sum(-1)[:, :n_labels]
    probs = probs.clamp_min(0.0)
    return probs / probs.sum(-1, keepdim=True).clamp_min(torch.finfo(probs.dtype).tiny)
