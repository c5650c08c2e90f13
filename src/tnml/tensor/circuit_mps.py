"""Circuits of two-qubit gates on a chain of qubits, contracted as tensor networks.

A circuit here is a list of two-qubit gates in time order, ``gates[g]`` acting on the qubit
pair ``pairs[g] = (a, b)`` (matrix big-endian in ``(a, b)``), applied to ``|0...0>`` on
``n_sites`` qubits. Such a circuit is never held as a ``2**n`` vector. Qubit ``t`` is
*finished* after its last gate; the gates that must run before that are its causal past.
Contracting qubit by qubit, ``0, 1, ..., n - 1``, each time applying the causal past of the
next qubit and then closing it, only the qubits already touched and not yet finished are
ever *live*. For ``L`` staircase layers (Ran 2020) at most ``L + 1`` qubits are live, so a
64-qubit, 8-layer circuit costs a few hundred small tensor contractions.

* :func:`sequential_schedule` -- the order of the gates, qubit by qubit.
* :func:`circuit_amplitudes` -- ``<bra|C|0>`` for an MPS bra or a batch of product states
  (phase and log-magnitude, renormalised at every qubit so long chains never underflow);
  differentiable with respect to the gates.
* :func:`circuit_state` -- ``C|0>`` as an exact :class:`~tnml.tensor.mps.MPS` (bond
  ``2**(live - 1)``).
* :func:`apply_gates` -- gates of neighbouring qubits applied to an MPS with SVD
  truncation (TEBD), for operations whose bond must be capped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from tnml.exceptions import InvalidInputError
from tnml.tensor._util import _tiny
from tnml.tensor.decomp import check_truncation_options, split_tensor
from tnml.tensor.mps import MPS, mps_canonicalize

__all__ = [
    "apply_gates",
    "check_pairs",
    "circuit_amplitudes",
    "circuit_state",
    "sequential_schedule",
    "sweep_gates",
]


def check_pairs(pairs: object, n_sites: int) -> list[tuple[int, int]]:
    """``pairs`` as a list of pairs of distinct qubit indices in ``[0, n_sites)``.

    Raises
    ------
    InvalidInputError
        Naming the first bad entry.
    """
    try:
        out = [(int(a), int(b)) for a, b in pairs]  # type: ignore[union-attr]
    except (TypeError, ValueError) as err:
        raise InvalidInputError(f"pairs must be a sequence of (a, b) qubit pairs: {err}") from err
    for g, (a, b) in enumerate(out):
        if a == b or not (0 <= a < n_sites and 0 <= b < n_sites):
            raise InvalidInputError(
                f"pairs[{g}] = ({a}, {b}) must be two distinct qubits in [0, {n_sites})"
            )
    return out


def _check_gates(gates: Tensor | Sequence[Tensor], n_gates: int) -> Tensor:
    if not isinstance(gates, Tensor):
        gates = torch.stack(list(gates)) if len(gates) else torch.zeros(0, 4, 4)
    if gates.shape != (n_gates, 4, 4):
        raise InvalidInputError(
            f"gates must have shape ({n_gates}, 4, 4) (one per pair), got {tuple(gates.shape)}"
        )
    return gates


def sequential_schedule(pairs: Sequence[tuple[int, int]], n_sites: int) -> list[list[int]]:
    """For each qubit ``t`` in order, the gates to apply before qubit ``t`` is finished.

    Each gate appears once, after every earlier gate on its qubits (time order is kept
    wherever it matters).

    Parameters
    ----------
    pairs : sequence of (int, int)
        The qubits of each gate, in time order.
    n_sites : int
        Number of qubits.

    Returns
    -------
    list of list of int
        ``n_sites`` lists of gate indices.
    """
    pairs = check_pairs(pairs, n_sites)
    previous: list[tuple[int, int]] = []
    last = [-1] * n_sites
    for g, (a, b) in enumerate(pairs):
        previous.append((last[a], last[b]))
        last[a] = last[b] = g
    done = [False] * len(pairs)
    steps: list[list[int]] = []
    for t in range(n_sites):
        step: list[int] = []
        stack = [last[t]]
        while stack:
            g = stack[-1]
            if g < 0 or done[g]:
                stack.pop()
                continue
            pending = [p for p in previous[g] if p >= 0 and not done[p]]
            if pending:
                stack.extend(pending)
                continue
            done[g] = True
            step.append(g)
            stack.pop()
        steps.append(step)
    return steps


class _Boundary:
    """Live qubits' tensor ``(B, D, 2, ..., 2)``: batch, open bond, one axis per live qubit."""

    def __init__(self, tensor: Tensor) -> None:
        self.t = tensor
        self.live: list[int] = []

    def open(self, qubit: int) -> None:
        zero = self.t.new_zeros(2)
        zero[0] = 1
        self.t = torch.tensordot(self.t, zero, dims=0)
        self.live.append(qubit)

    def apply(self, gate: Tensor, a: int, b: int) -> None:
        for q in (a, b):
            if q not in self.live:
                self.open(q)
        axes = (2 + self.live.index(a), 2 + self.live.index(b))
        dtype = torch.promote_types(self.t.dtype, gate.dtype)
        x = self.t.to(dtype).movedim(axes, (-2, -1))
        shape = x.shape
        x = (x.reshape(-1, 4) @ gate.to(dtype).transpose(0, 1)).reshape(shape)
        self.t = x.movedim((-2, -1), axes)

    def take(self, qubit: int) -> Tensor:
        """The tensor with ``qubit``'s axis third, ``(B, D, 2, R)``; the qubit leaves."""
        if qubit not in self.live:
            self.open(qubit)
        axis = 2 + self.live.index(qubit)
        self.live.remove(qubit)
        x = self.t.movedim(axis, 2)
        return x.reshape(x.shape[0], x.shape[1], 2, -1)

    def put(self, t: Tensor) -> None:
        """Replace the tensor by ``(B, D, R)`` reshaped over the live qubits."""
        self.t = t.reshape(t.shape[0], t.shape[1], *([2] * len(self.live)))


def _product_sites(bra: object) -> int:
    if not isinstance(bra, Tensor) or bra.ndim != 3 or bra.shape[2] != 2:
        shape = tuple(bra.shape) if isinstance(bra, Tensor) else type(bra).__name__
        raise InvalidInputError(
            f"bra must be an MPS or product states of shape (B, n_sites, 2), got {shape}"
        )
    return bra.shape[1]


def _bra_cores(bra: MPS | Tensor, n_sites: int) -> tuple[list[Tensor], Tensor]:
    """Conjugated bra cores ``(B or 1, Dl, 2, Dr)`` and the bra's log-scale, ``(B or 1,)``."""
    if isinstance(bra, MPS):
        if bra.n_sites != n_sites or any(d != 2 for d in bra.phys_dims):
            raise InvalidInputError(
                f"bra must be an MPS of {n_sites} qubits (physical dim 2), got "
                f"{bra.n_sites} sites with dims {sorted(set(bra.phys_dims))}"
            )
        cores = [c.conj().unsqueeze(0) for c in bra.cores]
        return cores, bra.log_scale.reshape(1)
    if not isinstance(bra, Tensor) or bra.ndim != 3 or bra.shape[1:] != (n_sites, 2):
        shape = tuple(bra.shape) if isinstance(bra, Tensor) else type(bra).__name__
        raise InvalidInputError(
            f"bra must be an MPS or product states of shape (B, {n_sites}, 2), got {shape}"
        )
    cores = [bra[:, t, None, :, None].conj() for t in range(n_sites)]
    return cores, torch.zeros(bra.shape[0], dtype=bra.dtype.to_real(), device=bra.device)


def _advance(
    state: _Boundary, t: int, step: list[tuple[Tensor, tuple[int, int]]], core: Tensor
) -> Tensor:
    """Apply one step's gates, close qubit ``t`` against the bra ``core`` and renormalise.

    ``core`` is ``(B or 1, Dl, 2, Dr)`` (already conjugated); returns the log of the norm
    divided out of each row, ``(B,)``.
    """
    for gate, (a, b) in step:
        state.apply(gate, a, b)
    x = state.take(t)  # (B, Dl, 2, R)
    core = core.to(x.dtype)
    y = torch.einsum("bksr,bksd->bdr", x, core.expand(x.shape[0], -1, -1, -1))
    tiny = _tiny(y.dtype)
    # The divisor is a constant to autograd: every boundary stays linear in every gate, and
    # the gradient of log|value| is still exactly that of log|<bra|C|0>|.
    norm = torch.linalg.vector_norm(y.detach().reshape(y.shape[0], -1), dim=1).clamp_min(tiny)
    state.put(y / norm.to(y.dtype)[:, None, None])
    return norm.log()


def circuit_amplitudes(
    bra: MPS | Tensor,
    pairs: Sequence[tuple[int, int]],
    gates: Tensor | Sequence[Tensor],
) -> tuple[Tensor, Tensor]:
    """``<bra| C |0...0>`` for the circuit ``C`` of ``gates`` on ``pairs``.

    Parameters
    ----------
    bra : MPS or Tensor
        An MPS of ``n`` qubits, or product states ``(B, n, 2)`` (row ``b``, qubit ``t`` holds
        the single-qubit state, e.g. a one-hot basis state). It is conjugated.
    pairs : sequence of (int, int)
        Qubits of each gate, in time order.
    gates : Tensor or sequence of Tensor
        ``(G, 4, 4)`` unitaries, big-endian in each pair; real or complex. Gradients flow to
        them.

    Returns
    -------
    phase : Tensor, shape (B,)
        Sign (real) or unit-modulus phase of each amplitude (``B = 1`` for an MPS bra).
    log_abs : Tensor, shape (B,)
        ``log |<bra|C|0>|`` (``-inf`` for an exactly zero amplitude).

    Examples
    --------
    >>> cx = torch.tensor([[1.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]])
    >>> h = torch.tensor([[1.0, 1], [1, -1]]) / 2**0.5
    >>> bell = cx @ torch.kron(h, torch.eye(2))
    >>> basis = torch.eye(2)[torch.tensor([[0, 0], [1, 1], [0, 1]])]  # |00>, |11>, |01>
    >>> phase, log_abs = circuit_amplitudes(basis, [(0, 1)], bell[None])
    >>> (phase * log_abs.exp()).round(decimals=4)
    tensor([0.7071, 0.7071, 0.0000])
    """
    n_sites = bra.n_sites if isinstance(bra, MPS) else _product_sites(bra)
    cores, bra_scale = _bra_cores(bra, n_sites)
    pairs = check_pairs(pairs, n_sites)
    gates = _check_gates(gates, len(pairs))
    batch = cores[0].shape[0]
    dtype = torch.promote_types(cores[0].dtype, gates.dtype)
    tiny = _tiny(dtype)
    state = _Boundary(torch.ones(batch, 1, dtype=dtype, device=cores[0].device))
    log_acc = torch.zeros(batch, dtype=dtype.to_real(), device=cores[0].device)
    for t, step in enumerate(sequential_schedule(pairs, n_sites)):
        log_acc = log_acc + _advance(state, t, [(gates[g], pairs[g]) for g in step], cores[t])
    value = state.t.reshape(batch)
    magnitude = value.abs()
    phase = value / magnitude.clamp_min(tiny).to(dtype)
    return phase, log_acc + magnitude.log() + bra_scale.to(log_acc.dtype)


def sweep_gates(
    bra: MPS,
    pairs: Sequence[tuple[int, int]],
    gates: Tensor,
    update: Callable[[Tensor, Tensor], Tensor],
) -> tuple[Tensor, Tensor]:
    """One sweep that replaces every gate, in turn, by ``update(environment, gate)``.

    The overlap ``O = <bra|C|0>`` is linear in each gate: ``O = sum_ij G_ij E_ij`` with the
    environment ``E = dO/dG`` (the rest of the network contracted). Gates are visited in
    the order of :func:`sequential_schedule`; each sees the environment made by the gates
    already updated, so an update that maximises ``sum_ij G_ij E_ij`` for its gate (the
    polar factor of ``E``: the Evenbly-Vidal step) never lowers ``|O|``. Cost: one forward
    and one backward contraction, plus a local contraction per gate.

    Parameters
    ----------
    bra : MPS
        The target state (conjugated); real.
    pairs : sequence of (int, int)
        Qubits of each gate in time order.
    gates : Tensor
        ``(G, 4, 4)``, real.
    update : callable
        ``update(environment, gate) -> new gate``; both ``(4, 4)``. The environment is
        signed so that a larger ``sum_ij G_ij E_ij`` means a larger ``|O|``.

    Returns
    -------
    gates : Tensor
        ``(G, 4, 4)``, the updated gates.
    log_abs : Tensor, shape ()
        ``log |<bra|C|0>|`` after the sweep.
    """
    if not isinstance(bra, MPS):
        raise InvalidInputError(f"bra must be an MPS, got {type(bra).__name__}")
    n_sites = bra.n_sites
    pairs = check_pairs(pairs, n_sites)
    gates = _check_gates(gates, len(pairs)).detach().clone()
    if gates.is_complex() or bra.dtype.is_complex:
        raise InvalidInputError("sweep_gates handles real states and gates only")
    cores, _ = _bra_cores(bra, n_sites)
    schedule = sequential_schedule(pairs, n_sites)
    dtype = torch.promote_types(cores[0].dtype, gates.dtype)
    # Forward pass keeping every boundary in one graph, then dO/d(boundary) for all of them:
    # rights[t] contracted with the boundary after step t gives O (up to the divisors).
    state = _Boundary(torch.ones(1, 1, dtype=dtype, device=gates.device, requires_grad=True))
    outputs = []
    with torch.enable_grad():
        for t, step in enumerate(schedule):
            _advance(state, t, [(gates[g], pairs[g]) for g in step], cores[t])
            outputs.append(state.t)
        rights = list(torch.autograd.grad(state.t.reshape(()), outputs[:-1]))
    rights.append(torch.ones_like(outputs[-1]))
    # Sweep: rebuild the left boundary step by step with the updated gates.
    left = _Boundary(torch.ones(1, 1, dtype=dtype, device=gates.device))
    log_acc = torch.zeros((), dtype=dtype, device=gates.device)
    for t, step in enumerate(schedule):
        right = rights[t].detach()
        for g in step:
            trial = gates[g].clone().requires_grad_(True)
            local = _Boundary(left.t.detach())
            local.live = list(left.live)
            with torch.enable_grad():
                items = [(trial if h == g else gates[h], pairs[h]) for h in step]
                _advance(local, t, items, cores[t])
                overlap = (local.t * right).sum()
                (env,) = torch.autograd.grad(overlap, trial)
            sign = 1.0 if float(overlap.detach()) >= 0 else -1.0
            gates[g] = update(sign * env, gates[g]).to(gates.dtype)
        log_acc = log_acc + _advance(left, t, [(gates[g], pairs[g]) for g in step], cores[t])[0]
    value = left.t.reshape(())
    return gates, log_acc + value.abs().log() + bra.log_scale.to(dtype)


def circuit_state(
    pairs: Sequence[tuple[int, int]], gates: Tensor | Sequence[Tensor], n_sites: int
) -> MPS:
    """``C|0...0>`` as an exact MPS.

    The bond after qubit ``t`` is the set of qubits live at that point, so bond dimensions
    are ``2**(live)``: at most ``2**L`` for ``L`` staircase layers. Every core is a right
    isometry (the gates are unitary), so the state is normalised with ``center = 0``.

    Parameters
    ----------
    pairs, gates
        As in :func:`circuit_amplitudes`.
    n_sites : int
        Number of qubits.

    Returns
    -------
    MPS
        ``n_sites`` cores ``(D_t, 2, D_{t+1})``, ``center = 0``.
    """
    if isinstance(n_sites, bool) or not isinstance(n_sites, int) or n_sites < 1:
        raise InvalidInputError(f"n_sites must be an integer >= 1, got {n_sites!r}")
    pairs = check_pairs(pairs, n_sites)
    gates = _check_gates(gates, len(pairs))
    state = _Boundary(torch.ones(1, 1, dtype=gates.dtype, device=gates.device))
    cores = []
    for t, step in enumerate(sequential_schedule(pairs, n_sites)):
        for g in step:
            state.apply(gates[g], *pairs[g])
        x = state.take(t)[0]  # (Dl, 2, R)
        cores.append(x)
        rest = x.shape[-1]
        state.put(torch.eye(rest, dtype=x.dtype, device=x.device)[None])
    mps = MPS(cores)
    mps.center = 0
    return mps


def apply_gates(
    mps: MPS,
    pairs: Sequence[tuple[int, int]],
    gates: Tensor | Sequence[Tensor],
    *,
    max_bond: int | None = None,
    cutoff: float = 0.0,
) -> tuple[MPS, Tensor]:
    """Apply two-qubit gates on neighbouring sites to an MPS, truncating by SVD (TEBD).

    Each gate is merged into the two-site tensor at the orthogonality centre and split
    again keeping at most ``max_bond`` singular values above ``cutoff`` (relative), so
    every truncation is optimal for the current state.

    Parameters
    ----------
    mps : MPS
        ``n`` qubits (physical dimension 2).
    pairs : sequence of (int, int)
        Qubits of each gate in time order; each pair must be ``(i, i+1)`` or ``(i+1, i)``.
    gates : Tensor or sequence of Tensor
        ``(G, 4, 4)``, big-endian in each pair.
    max_bond : int, optional
        Largest bond kept; no cap when None.
    cutoff : float, default=0.0
        Relative cutoff on the singular values.

    Returns
    -------
    mps : MPS
        The new state (same norm as ``mps`` up to the discarded weight), with a known centre.
    discarded_weight : Tensor, shape ()
        Sum over splits of the squared discarded singular values of the normalised state.
    """
    check_truncation_options(max_bond, cutoff, "rel")
    n = mps.n_sites
    pairs = check_pairs(pairs, n)
    gates = _check_gates(gates, len(pairs))
    if any(d != 2 for d in mps.phys_dims):
        raise InvalidInputError("apply_gates needs an MPS of qubits (physical dim 2)")
    dtype = torch.promote_types(mps.dtype, gates.dtype)
    out = MPS([c.to(dtype) for c in mps.cores], mps.log_scale)
    out.center = mps.center
    total = torch.zeros((), dtype=dtype.to_real(), device=mps.device)
    swap = torch.tensor([0, 2, 1, 3])
    for g, (a, b) in enumerate(pairs):
        if abs(a - b) != 1:
            raise InvalidInputError(f"apply_gates needs neighbouring qubits, pairs[{g}] = {a, b}")
        gate = gates[g].to(dtype)
        if a > b:  # the same gate with its qubits listed left to right
            gate, a = gate[swap][:, swap], b
        out = mps_canonicalize(out, a, inplace=True)
        left, right = out.cores[a], out.cores[a + 1]
        theta = torch.einsum("lsm,mtr->lstr", left, right)
        theta = torch.einsum("uv,lvr->lur", gate, theta.reshape(left.shape[0], 4, -1))
        theta = theta.reshape(left.shape[0], 2, 2, right.shape[-1])
        res = split_tensor(theta, 2, method="svd", max_bond=max_bond, cutoff=cutoff, absorb="right")
        total = total + res.discarded_weight
        out.cores[a], out.cores[a + 1] = res.left, res.right
        norm = torch.linalg.vector_norm(res.right)
        out.cores[a + 1] = res.right / norm.clamp_min(_tiny(dtype))
        out.log_scale = out.log_scale + norm.clamp_min(_tiny(dtype)).log()
        out.center = a + 1
    return out, total
