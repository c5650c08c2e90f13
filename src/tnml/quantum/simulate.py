"""Exact, batched simulation of :class:`~tnml.quantum.circuit.Circuit` in torch.

Circuits compiled from tensor networks are wide (a tree over 8x8 pixels has 64 qubits) but
entangle only a few qubits at a time, so the state is never one ``2**num_qubits`` object.
It is a product of independent *factors*. Each factor holds an ordered list of live qubits,
an ordered list of recorded classical bits, and a tensor of shape ``(B, 2**c, 2**m, 2**m)``:
for each of the ``B`` inputs and each of the ``2**c`` values of its classical bits, the
(unnormalised) density matrix of its ``m`` qubits, i.e. the classical-quantum state
``sum_a |a><a| (x) rho_a``. Indices are big-endian over the lists.

* A qubit that is untouched (or just reset) is ``|0>`` and in no factor; its first gate
  gives it a 1-qubit factor. A gate on qubits of several factors merges them (Kronecker
  product) and is applied by contracting its ``k`` qubit axes, never by padding it with
  identities.
* After its last operation a qubit is traced out of its factor; a factor left with neither
  qubits nor bits has trace one and is dropped.
* ``Measure`` into the register being computed copies the qubit's computational-basis value
  into a new classical bit of its factor (a CNOT onto a fresh bit, then dephasing), so the
  joint distribution of bits measured at different times (e.g. a generative circuit that
  measures, resets and reuses a qubit) is exact. ``Measure`` into any other register is a
  non-selective measurement: the qubit is dephased.

:func:`sample` instead follows ``n_shots`` trajectories: each measurement draws an outcome
per trajectory and projects, so it needs no classical bits in the factors and scales to
registers of any size.

The exact functions are differentiable with respect to gate matrices that require grad
(inputs ``X`` are data and are not differentiated).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from numpy.typing import ArrayLike
from torch import Tensor

from tnml._validation import check_int
from tnml.exceptions import InvalidInputError
from tnml.quantum.circuit import Circuit, Gate, Measure, Reset, check_features
from tnml.quantum.noise import NoiseModel, amplitude_damping_kraus, dephasing_kraus

__all__ = [
    "MAX_EXACT_BITS",
    "MAX_FACTOR_BYTES",
    "apply_readout",
    "register_probabilities",
    "sample",
    "simulate",
    "valid_label_probabilities",
]

MAX_EXACT_BITS = 16
"""Largest register whose full distribution :func:`register_probabilities` computes."""
MAX_FACTOR_BYTES = 2**30
"""Largest density-matrix factor exact simulation builds (its updates need a few times
that); more is refused, not attempted."""

_COMPLEX = {torch.float32: torch.complex64, torch.float64: torch.complex128}
_DTYPES = (torch.float32, torch.float64, torch.complex64, torch.complex128)
# Row chunks of the multinomial draws hold at most this many samples at once.
_DRAWS_PER_CHUNK = 1 << 22


@dataclass
class _Factor:
    """Qubits ``qubits`` and recorded bits ``bits``; ``rho`` is ``(B, 2**c, 2**m, 2**m)``."""

    qubits: list[int]
    bits: list[int]
    rho: Tensor


def _front(f: _Factor, qubits: tuple[int, ...]) -> None:
    """Reorder ``f`` so that ``qubits`` are its leading qubits, in that order."""
    m = len(f.qubits)
    order = [f.qubits.index(q) for q in qubits]
    order += [i for i in range(m) if i not in order]
    if order == list(range(m)):
        return
    b, c, d, _ = f.rho.shape
    axes = [0, 1] + [2 + i for i in order] + [2 + m + i for i in order]
    f.rho = f.rho.reshape(b, c, *([2] * (2 * m))).permute(axes).reshape(b, c, d, d)
    f.qubits = [f.qubits[i] for i in order]


def _locate(
    f: _Factor, qubits: tuple[int, ...], u: Tensor | None = None
) -> tuple[int, Tensor | None]:
    """Where ``qubits`` sit in ``f``: the number ``pre`` of qubits before them, and ``u``
    with its qubit axes put in the factor's order.

    When the qubits are not next to each other in ``f``, ``f`` is reordered to put them
    first (a copy of the whole state); gates of native circuits act on neighbours of a
    line, whose qubits stay next to each other, so that copy is rare.
    """
    k = len(qubits)
    positions = [f.qubits.index(q) for q in qubits]
    start = min(positions)
    if sorted(positions) != list(range(start, start + k)):
        _front(f, qubits)
        return 0, u
    if u is not None and positions != sorted(positions):
        order = sorted(range(k), key=positions.__getitem__)  # gate axes in factor order
        lead = u.shape[:-2]
        axes = [*range(len(lead))]
        rows = [len(lead) + i for i in order]
        cols = [len(lead) + k + i for i in order]
        u = u.reshape(*lead, *([2] * (2 * k))).permute(*axes, *rows, *cols)
        u = u.reshape(*lead, 2**k, 2**k)
    return start, u


def _left(rho: Tensor, u: Tensor, outer: int) -> Tensor:
    """``(I_outer (x) U (x) I) rho`` for each matrix of ``rho`` ``(B, C, d, d)``; ``u`` is
    ``(K, K)`` or ``(B, K, K)``: one batched GEMM over ``(K, rest)`` slabs. (A broadcast
    ``matmul`` of a 2-d matrix with the 4-d state, or ``einsum``, ran up to 2x slower.)"""
    b, c, d, _ = rho.shape
    k = u.shape[-1]
    slabs = rho.reshape(b * c * outer, k, (d // (outer * k)) * d)
    if u.ndim == 2:
        left = u.expand(slabs.shape[0], k, k)
    else:
        left = u[:, None].expand(b, c * outer, k, k).reshape(-1, k, k)
    return torch.bmm(left, slabs).reshape(b, c, d, d)


def _sandwich(rho: Tensor, u: Tensor, pre: int = 0) -> Tensor:
    """``U rho U^dagger`` with ``U`` on the qubits after the first ``pre`` of the factor
    (``u`` is ``(K, K)`` or ``(B, K, K)``; any matrix, e.g. a Kraus operator).

    Every ``rho`` block is Hermitian, so ``U rho U^dagger = U (U rho)^dagger``: two left
    products and one transposing copy, never a product on the column index (which has the
    gate's axes in the middle).
    """
    half = _left(rho, u, 2**pre).transpose(-1, -2)
    if half.is_complex():
        half = half.conj()
    return _left(half, u, 2**pre)


def _apply(f: _Factor, qubits: tuple[int, ...], u: Tensor, depolarizing: float = 0.0) -> None:
    """``rho -> U rho U^dagger``, then depolarising with probability ``depolarizing``:
    ``(1 - p) U rho U^dagger + p (I / 2^k) x Tr_k rho`` on the gate's ``k`` qubits.

    ``1 - p`` rides on the gate's matrix; the trace is read from the output's ``2^k``
    diagonal blocks and the identity term added to them only: a ``1 / 2^k`` share of a
    pass over the state, not three passes.
    """
    pre, u = _locate(f, qubits, u)
    k = len(qubits)
    if not depolarizing:
        f.rho = _sandwich(f.rho, u, pre)
        return
    if depolarizing == 1:
        f.rho = _sandwich(f.rho, u, pre)
        reduced = sum(_diagonal_blocks(f.rho, pre, k))
        f.rho = torch.zeros_like(f.rho)
    else:
        f.rho = _sandwich(f.rho, u * math.sqrt(1 - depolarizing), pre)
        # the trace of the gate's output, not of its input: equal for a unitary, but the
        # gradient by the matrix's entries must see the channel as written
        reduced = sum(_diagonal_blocks(f.rho, pre, k)) / (1 - depolarizing)
    for block in _diagonal_blocks(f.rho, pre, k):
        block.add_(reduced, alpha=depolarizing / 2**k)


def _diagonal_blocks(rho: Tensor, pre: int, k: int) -> list[Tensor]:
    """Views ``rho[..., i, :, ..., i, :]`` ``(B, C, O, I, O, I)`` for each value ``i`` of the
    ``k`` qubits after the first ``pre`` (``O = 2^pre`` values before, ``I`` after)."""
    b, c, d, _ = rho.shape
    outer, inner = 2**pre, d >> (pre + k)
    rho8 = rho.reshape(b, c, outer, 2**k, inner, outer, 2**k, inner)
    return [rho8[:, :, :, i, :, :, i, :] for i in range(2**k)]


def _apply_kraus(f: _Factor, qubit: int, kraus: list[Tensor]) -> None:
    pre, _ = _locate(f, (qubit,))
    f.rho = sum(_sandwich(f.rho, k, pre) for k in kraus)


def _split_leading(f: _Factor, k: int) -> Tensor:
    """View ``rho`` as ``(B, C, K, R, K, R)`` with the ``k`` leading qubits' axes ``K``."""
    b, c, d, _ = f.rho.shape
    return f.rho.reshape(b, c, 2**k, d >> k, 2**k, d >> k)


def _trace_out(f: _Factor, qubit: int) -> None:
    _front(f, (qubit,))
    f.rho = _split_leading(f, 1).diagonal(0, 2, 4).sum(-1)
    f.qubits.pop(0)


def _dephase(f: _Factor, qubit: int) -> None:
    _front(f, (qubit,))
    mask = torch.eye(2, dtype=f.rho.real.dtype)[:, None, :, None]
    f.rho = (_split_leading(f, 1) * mask).reshape(f.rho.shape)


def _record(f: _Factor, qubit: int, bit: int, keep: bool) -> None:
    """Copy ``qubit``'s value into a new classical bit ``bit`` (least significant in ``C``)."""
    _front(f, (qubit,))
    rho6 = _split_leading(f, 1)
    blocks = [rho6[:, :, i, :, i, :] for i in (0, 1)]
    b, c, d, _ = f.rho.shape
    if keep:
        _check_factor_size(b, len(f.bits) + 1, len(f.qubits), f.rho.dtype)
        new = rho6.new_zeros(b, c, 2, *rho6.shape[2:])
        for i in (0, 1):
            new[:, :, i, i, :, i, :] = blocks[i]
        f.rho = new.reshape(b, 2 * c, d, d)
    else:
        f.rho = torch.stack(blocks, dim=2).reshape(b, 2 * c, d // 2, d // 2)
        f.qubits.pop(0)
    f.bits.append(bit)


def _project(f: _Factor, qubit: int, generator: torch.Generator) -> Tensor:
    """Measure ``qubit`` in every trajectory (``C == 1``), remove it from ``f``; return outcomes."""
    _front(f, (qubit,))
    rho6 = _split_leading(f, 1)
    blocks = [rho6[:, 0, i, :, i, :] for i in (0, 1)]
    weight = [blk.diagonal(0, -2, -1).sum(-1).real.to(torch.float64) for blk in blocks]
    total = (weight[0] + weight[1]).clamp_min(1e-300)
    draw = torch.rand(total.shape, generator=generator, dtype=torch.float64)
    one = draw * total < weight[1]
    kept = torch.where(one[:, None, None], blocks[1], blocks[0])
    norm = torch.where(one, weight[1], weight[0]).clamp_min(1e-300).to(kept.real.dtype)
    f.rho = (kept / norm[:, None, None]).unsqueeze(1)
    f.qubits.pop(0)
    return one.long()


def _factor_bytes(batch: int, bits: int, qubits: int, dtype: torch.dtype) -> int:
    """Bytes of a factor's density matrices: ``batch * 2**bits * 4**qubits`` entries."""
    return batch * 2**bits * 4**qubits * torch.empty((), dtype=dtype).element_size()


def _check_factor_size(batch: int, bits: int, qubits: int, dtype: torch.dtype) -> None:
    """Refuse a factor whose density matrices would outgrow :data:`MAX_FACTOR_BYTES`."""
    needed = _factor_bytes(batch, bits, qubits, dtype)
    if needed > MAX_FACTOR_BYTES:
        raise InvalidInputError(
            f"exact simulation would hold {qubits} entangled qubits and {bits} recorded bits "
            f"for {batch} inputs at once ({needed / 2**30:.1f} GiB, more than "
            f"{MAX_FACTOR_BYTES / 2**30:.0f} GiB): simulate fewer inputs at a time, draw "
            "shots with tnml.quantum.sample, or compile with schedule='efficient'"
        )


def _kron(a: _Factor, b: _Factor) -> _Factor:
    bsz, ca, da, _ = a.rho.shape
    _, cb, db, _ = b.rho.shape
    qubits, bits = len(a.qubits) + len(b.qubits), len(a.bits) + len(b.bits)
    _check_factor_size(bsz, bits, qubits, a.rho.dtype)
    rho = torch.einsum("xcij,xekl->xceikjl", a.rho, b.rho)
    return _Factor(
        a.qubits + b.qubits, a.bits + b.bits, rho.reshape(bsz, ca * cb, da * db, da * db)
    )


class _State:
    """The factors of a batch of ``batch`` states."""

    def __init__(self, batch: int, dtype: torch.dtype) -> None:
        self.batch = batch
        self.dtype = dtype
        self.owner: dict[int, _Factor] = {}
        self.factors: list[_Factor] = []

    def fresh(self, qubit: int, value: Tensor | None = None) -> _Factor:
        """Give ``qubit`` its own factor in state ``|0>``, or ``|value_b>`` in row ``b``."""
        rho = torch.zeros(self.batch, 1, 2, 2, dtype=self.dtype)
        if value is None:
            rho[..., 0, 0] = 1
        else:
            rho[torch.arange(self.batch), 0, value, value] = 1
        f = _Factor([qubit], [], rho)
        self.factors.append(f)
        self.owner[qubit] = f
        return f

    def gather(self, qubits: tuple[int, ...]) -> _Factor:
        """Return the one factor holding ``qubits``, merging factors and adding fresh qubits."""
        found: list[_Factor] = []
        for q in qubits:
            f = self.owner.get(q) or self.fresh(q)
            if not any(f is g for g in found):
                found.append(f)
        merged = found[0]
        for f in found[1:]:
            merged = _kron(merged, f)
        if len(found) > 1:
            self.factors = [g for g in self.factors if not any(g is f for f in found)]
            self.factors.append(merged)
            for q in merged.qubits:
                self.owner[q] = merged
        return merged

    def discard(self, qubit: int) -> None:
        """Trace ``qubit`` out; it is ``|0>`` again afterwards."""
        f = self.owner.pop(qubit, None)
        if f is None:
            return
        _trace_out(f, qubit)
        if not f.qubits and not f.bits:
            self.factors = [g for g in self.factors if g is not f]


def _qubits(op: Gate | Measure | Reset) -> tuple[int, ...]:
    return op.qubits if isinstance(op, Gate) else (op.qubit,)


def _last_use(circuit: Circuit) -> dict[int, int]:
    return {q: t for t, op in enumerate(circuit.ops) for q in _qubits(op)}


def _ry_batch(angles: Tensor, dtype: torch.dtype) -> Tensor:
    c, s = torch.cos(angles / 2), torch.sin(angles / 2)
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2).to(dtype)


def _gate_matrix(op: Gate, rows: Tensor, dtype: torch.dtype) -> Tensor:
    """The gate's unitary, ``(K, K)``, or ``(B, 2, 2)`` for a data gate."""
    if op.feature is not None:
        return _ry_batch(op.scale * math.pi * rows[:, op.feature], dtype)
    return op.matrix.to(dtype)  # converted per use: a cache of every gate of a
    # 200,000-gate native circuit held gigabytes


def _apply_gate(
    state: _State, qubits: tuple[int, ...], u: Tensor, noise: NoiseModel | None
) -> None:
    """Apply ``u`` on ``qubits``, then the noise that follows a gate on them."""
    f = state.gather(qubits)
    if noise is None:
        _apply(f, qubits, u)
        return
    p = noise.depolarizing_1q if len(qubits) == 1 else noise.depolarizing_2q
    _apply(f, qubits, u, p)
    for strength, make in (
        (noise.amplitude_damping, amplitude_damping_kraus),
        (noise.dephasing, dephasing_kraus),
    ):
        if strength:
            kraus = make(strength, state.dtype)
            for q in qubits:
                _apply_kraus(f, q, kraus)


def _folds_one_qubit_gates(noise: NoiseModel | None) -> bool:
    """Whether one-qubit gates may be folded into the next wider gate on their qubit: only
    when nothing happens after a one-qubit gate (no noise on it, no per-qubit channel)."""
    return noise is None or not (
        noise.depolarizing_1q or noise.amplitude_damping or noise.dephasing
    )


def _fold(u: Tensor, qubits: tuple[int, ...], pending: dict[int, Tensor]) -> Tensor:
    """``u (x)_i P_i``: the gate ``u`` on ``qubits`` after the one-qubit gates ``P_i``
    pending on them (removed from ``pending``); batched when any of them is."""
    k = len(qubits)
    for i, q in enumerate(qubits):
        first = pending.pop(q, None)
        if first is None:
            continue
        lead = torch.broadcast_shapes(u.shape[:-2], first.shape[:-2])
        cols = u.expand(*lead, 2**k, 2**k).reshape(*lead, 2**k, 2**i, 2, 2 ** (k - i - 1))
        cols = torch.einsum("...rats,...tq->...raqs", cols, first.expand(*lead, 2, 2))
        u = cols.reshape(*lead, 2**k, 2**k)
    return u


def _measure_exact(state: _State, op: Measure, target: str, keep: bool) -> None:
    if op.register != target:
        if keep and op.qubit in state.owner:
            _dephase(state.owner[op.qubit], op.qubit)
        return
    f = state.gather((op.qubit,))
    _record(f, op.qubit, op.bit, keep)
    if not keep:
        state.owner.pop(op.qubit)


def _measure_trajectory(state: _State, op: Measure, keep: bool, generator) -> Tensor:
    f = state.gather((op.qubit,))
    state.owner.pop(op.qubit)
    outcome = _project(f, op.qubit, generator)
    if not f.qubits:
        state.factors = [g for g in state.factors if g is not f]
    if keep:
        # Each trajectory's qubit is now |outcome>, a product with the rest.
        state.fresh(op.qubit, outcome)
    return outcome


def _run(
    circuit: Circuit,
    rows: Tensor,
    dtype: torch.dtype,
    noise: NoiseModel | None,
    target: str,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Run on each row of ``rows`` (``(B, F)``).

    Exact mode (``generator is None``) returns the joint distribution ``(B, 2**size)`` of
    the ``target`` register before readout error; trajectory mode returns one sampled
    register ``(B, size)`` per row, readout error included.
    """
    if generator is None and _pure_eligible(circuit, noise):
        return _run_pure(circuit, rows, dtype, target)
    state = _State(rows.shape[0], dtype)
    last = _last_use(circuit)
    size = circuit.registers[target]
    shots = torch.zeros(rows.shape[0], size, dtype=torch.long)
    # One-qubit gates wait here and ride on the next wider gate of their qubit: a native
    # circuit has about two of them per CX, each a full pass over the state otherwise.
    pending: dict[int, Tensor] = {}
    fold = _folds_one_qubit_gates(noise)
    for t, op in enumerate(circuit.ops):
        if isinstance(op, Gate):
            u = _gate_matrix(op, rows, dtype)
            if fold and len(op.qubits) == 1:
                q = op.qubits[0]
                pending[q] = u if q not in pending else u @ pending[q]
            else:
                _apply_gate(state, op.qubits, _fold(u, op.qubits, pending), noise)
        else:
            waiting = pending.pop(op.qubit, None)
            if waiting is not None and isinstance(op, Measure):  # a reset forgets them
                _apply_gate(state, (op.qubit,), waiting, noise)
            if isinstance(op, Reset):
                state.discard(op.qubit)
            elif generator is None:
                _measure_exact(state, op, target, keep=last[op.qubit] != t)
            else:
                outcome = _measure_trajectory(state, op, last[op.qubit] != t, generator)
                if op.register == target:
                    shots[:, op.bit] = _readout_flip(outcome, noise, generator)
        for q in _qubits(op):
            if last[q] == t:
                # a one-qubit gate still pending here changes nothing the trace keeps
                pending.pop(q, None)
                state.discard(q)
    if generator is not None:
        return shots
    return _joint_distribution(state, size, _real_dtype(dtype))


# Exact simulation makes several passes over its density matrices per gate, each bound by
# memory traffic: rows simulated together are capped so that the largest factor stays within
# a typical last-level cache (10 digits, 8 qubits, complex128: 4x faster per image at 8 rows
# than at 40 on the development machine).
_CACHE_BYTES = 2**23


def _largest_factor(circuit: Circuit, target: str) -> tuple[int, int]:
    """``(qubits, bits)`` of the largest factor (most entries ``2**bits * 4**qubits`` per
    input) exact simulation of ``circuit`` builds: the merges and discards of
    :class:`_State`, replayed on counts."""
    last = _last_use(circuit)
    owner: dict[int, int] = {}  # live qubit -> factor id
    members: dict[int, list[int]] = {}  # factor id -> its live qubits
    bits: dict[int, int] = {}  # factor id -> its recorded bits
    largest = (0, 0)
    for t, op in enumerate(circuit.ops):
        touched = _qubits(op)
        recording = isinstance(op, Measure) and op.register == target
        if isinstance(op, Gate) or recording:
            ids = {owner[q] for q in touched if q in owner}
            members[t] = [q for i in ids for q in members.pop(i)]
            members[t] += [q for q in touched if q not in owner]
            bits[t] = sum(bits.pop(i) for i in ids) + recording
            for q in members[t]:
                owner[q] = t
            size = (len(members[t]), bits[t])
            if recording and last[op.qubit] == t:  # the bit replaces the qubit
                size = (len(members[t]), bits[t] - 1)
            largest = max(largest, size, key=lambda qb: 2 * qb[0] + qb[1])
        for q in touched:
            if (last[q] == t or isinstance(op, Reset)) and q in owner:
                i = owner.pop(q)
                members[i].remove(q)
                if not members[i] and not bits[i]:
                    del members[i], bits[i]
    return largest


def _rows_in_cache(qubits: int, bits: int, dtype: torch.dtype) -> int:
    """Inputs whose factors of ``qubits`` qubits and ``bits`` bits fit :data:`_CACHE_BYTES`
    together (at least one)."""
    return max(1, _CACHE_BYTES // _factor_bytes(1, bits, qubits, dtype))


# Circuits this small, noiseless and without resets or mid-circuit measurements, run as
# state vectors: 2**n amplitudes per input instead of a 4**m density matrix per factor.
_PURE_MAX_QUBITS = 14


def _pure_eligible(circuit: Circuit, noise: NoiseModel | None) -> bool:
    if noise is not None and noise.has_gate_noise():
        return False
    used = {q for op in circuit.ops for q in _qubits(op)}
    if len(used) > _PURE_MAX_QUBITS:
        return False
    last = _last_use(circuit)
    return all(
        isinstance(op, Gate) or (isinstance(op, Measure) and last[op.qubit] == t)
        for t, op in enumerate(circuit.ops)
    )


def _run_pure(circuit: Circuit, rows: Tensor, dtype: torch.dtype, target: str) -> Tensor:
    """Exact register distribution ``(B, 2**size)`` by state-vector simulation."""
    used = sorted({q for op in circuit.ops for q in _qubits(op)})
    axis = {q: 1 + i for i, q in enumerate(used)}
    batch, n = rows.shape[0], len(used)
    psi = torch.zeros(batch, 2**n, dtype=dtype)
    psi[:, 0] = 1
    psi = psi.reshape(batch, *([2] * n))
    measured: dict[int, int] = {}  # register bit -> axis
    for op in circuit.ops:
        if isinstance(op, Measure):
            if op.register == target:
                measured[op.bit] = axis[op.qubit]
            continue
        if op.feature is not None:
            u = _ry_batch(op.scale * math.pi * rows[:, op.feature], dtype)  # (B, 2, 2)
        else:
            u = op.matrix.to(dtype)
        k = len(op.qubits)
        axes = tuple(axis[q] for q in op.qubits)
        x = psi.movedim(axes, tuple(range(-k, 0)))
        shape = x.shape
        if u.ndim == 3:
            x = torch.einsum("bij,bmj->bmi", u, x.reshape(batch, -1, 2**k))
        else:
            x = x.reshape(-1, 2**k) @ u.transpose(0, 1)
        psi = x.reshape(shape).movedim(tuple(range(-k, 0)), axes)
    weight = psi.abs() ** 2 if psi.is_complex() else psi**2
    size = circuit.registers[target]
    bits = sorted(measured)
    keep = [measured[b] for b in bits]
    drop = [a for a in range(1, n + 1) if a not in keep]
    marginal = weight.sum(dim=drop) if drop else weight  # axes in increasing order
    # Put the most significant register bit first, then flatten; absent bits stay 0.
    order = sorted(range(len(bits)), key=lambda i: -bits[i])
    axes_sorted = sorted(keep)
    perm = [0] + [1 + axes_sorted.index(keep[i]) for i in order]
    joint = marginal.permute(perm).reshape(batch, -1).to(_real_dtype(dtype))
    out = torch.zeros(batch, 2**size, dtype=joint.dtype)
    values = torch.zeros(2 ** len(bits), dtype=torch.long)
    for j, i in enumerate(order):
        digit = (torch.arange(2 ** len(bits)) >> (len(bits) - 1 - j)) & 1
        values += digit << bits[i]
    out[:, values] = joint
    return out


def _readout_flip(outcome: Tensor, noise: NoiseModel | None, generator) -> Tensor:
    if noise is None or not noise.has_readout_error():
        return outcome
    p01, p10 = noise.readout_probabilities
    flip_prob = torch.where(outcome == 1, p10, p01)
    flip = torch.rand(outcome.shape, generator=generator, dtype=torch.float64) < flip_prob
    return torch.where(flip, 1 - outcome, outcome)


def _joint_distribution(state: _State, size: int, real_dtype: torch.dtype) -> Tensor:
    """Distribution ``(B, 2**size)`` of the recorded bits; unrecorded bits are 0."""
    joint = torch.ones(state.batch, 1, dtype=real_dtype)
    order: list[int] = []
    for f in state.factors:
        if not f.bits:
            continue
        marginal = f.rho.diagonal(0, 2, 3).sum(-1).real.to(real_dtype)
        joint = (joint[:, :, None] * marginal[:, None, :]).reshape(state.batch, -1)
        order += f.bits
    zero = torch.tensor([1.0, 0.0], dtype=real_dtype)
    for bit in range(size):
        if bit not in order:
            joint = (joint[:, :, None] * zero).reshape(state.batch, -1)
            order.append(bit)
    joint = joint.reshape(state.batch, *([2] * size))
    # Axis j holds bit order[j]; the flat value index wants bit size-1 first.
    axes = [0] + [1 + order.index(bit) for bit in reversed(range(size))]
    return joint.permute(axes).reshape(state.batch, 2**size).clamp_min(0)


def apply_readout(
    probs: Tensor, measured: list[int], size: int, noise: NoiseModel | None
) -> Tensor:
    """Flip each measured bit of register distributions with the readout-error probabilities.

    Parameters
    ----------
    probs : Tensor
        ``(n, 2**size)`` distributions of the register value.
    measured : list of int
        The register bits that a measurement writes (unwritten bits stay 0).
    size : int
        Number of bits of the register.
    noise : NoiseModel or None
        Source of ``(p01, p10)``; ``None`` returns ``probs``.

    Returns
    -------
    Tensor
        ``(n, 2**size)``.
    """
    if noise is None or not noise.has_readout_error() or not measured:
        return probs
    m = noise.confusion_matrix(probs.dtype)
    x = probs.reshape(-1, *([2] * size))
    for bit in measured:
        axis = size - bit  # axis 1 is the most significant bit
        x = torch.movedim(torch.movedim(x, axis, -1) @ m.T, -1, axis)
    return x.reshape(probs.shape)


def _choose_register(circuit: Circuit, register: str | None) -> str:
    regs = circuit.registers
    if register is None:
        if circuit.label_register in regs:
            return circuit.label_register
        if len(regs) == 1:
            return next(iter(regs))
        raise InvalidInputError(
            f"the circuit has no register {circuit.label_register!r}; pass register= "
            f"(one of {list(regs)})"
        )
    if register not in regs:
        raise InvalidInputError(f"register must be one of {list(regs)}, got {register!r}")
    return register


def feature_rows(circuit: Circuit, X: ArrayLike | Tensor | None) -> Tensor:
    """The rows ``(n, n_features)`` a circuit runs on: ``X`` checked, or the one empty row
    of a circuit that reads no features when ``X`` is None."""
    if X is None:
        if circuit.n_features:
            raise InvalidInputError(
                f"X is required: the circuit reads {circuit.n_features} features"
            )
        return torch.zeros(1, 0, dtype=torch.float64)
    return check_features(X, circuit.n_features)


def _state_dtype(circuit: Circuit, dtype: torch.dtype) -> torch.dtype:
    if dtype not in _DTYPES:
        raise InvalidInputError(
            f"dtype must be torch.float32, float64, complex64 or complex128, got {dtype}"
        )
    complex_gates = any(
        isinstance(op, Gate) and op.matrix is not None and op.matrix.is_complex()
        for op in circuit.ops
    )
    return _COMPLEX[dtype] if complex_gates and not dtype.is_complex else dtype


def _real_dtype(dtype: torch.dtype) -> torch.dtype:
    return {torch.complex64: torch.float32, torch.complex128: torch.float64}.get(dtype, dtype)


def _check_noise(noise: object) -> NoiseModel | None:
    if noise is not None and not isinstance(noise, NoiseModel):
        raise InvalidInputError(f"noise must be a NoiseModel or None, got {type(noise).__name__}")
    return noise


def _measured_bits(circuit: Circuit, register: str) -> list[int]:
    return sorted(
        op.bit for op in circuit.ops if isinstance(op, Measure) and op.register == register
    )


def register_probabilities(
    circuit: Circuit,
    X: ArrayLike | Tensor | None = None,
    *,
    register: str | None = None,
    noise: NoiseModel | None = None,
    dtype: torch.dtype = torch.float64,
    batch_size: int = 4096,
) -> Tensor:
    """Exact distribution of a classical register's value for each input.

    Parameters
    ----------
    circuit : Circuit
        The circuit, bound or not.
    X : array-like or Tensor, optional
        Inputs ``(n, n_features)`` or one input ``(n_features,)``, values in ``[0, 1]``;
        ``None`` (one run) for a circuit without data gates.
    register : str, optional
        Register to read; default the label register, or the only register.
    noise : NoiseModel, optional
        Gate noise and readout error.
    dtype : torch.dtype, default=torch.float64
        Precision; complex gates switch a real dtype to its complex counterpart.
    batch_size : int, default=4096
        Inputs simulated at once.

    Returns
    -------
    Tensor
        ``P(register = v)`` of shape ``(n, 2**size)``, real, not renormalised.

    Raises
    ------
    InvalidInputError
        For bad inputs, or a register of more than ``MAX_EXACT_BITS`` bits (use
        :func:`sample` for those).
    """
    register = _choose_register(circuit, register)
    size = circuit.registers[register]
    if size > MAX_EXACT_BITS:
        raise InvalidInputError(
            f"register {register!r} has {size} bits; its exact distribution is limited to "
            f"{MAX_EXACT_BITS} bits; draw shots with tnml.quantum.sample instead"
        )
    noise = _check_noise(noise)
    batch_size = check_int("batch_size", batch_size, 1)
    state_dtype = _state_dtype(circuit, dtype)
    rows = feature_rows(circuit, X)
    real_dtype = _real_dtype(state_dtype)
    if not _pure_eligible(circuit, noise) and rows.shape[0]:
        qubits, bits = _largest_factor(circuit, register)
        # refused as before, for the inputs asked for at once, before anything is built
        _check_factor_size(min(batch_size, rows.shape[0]), bits, qubits, state_dtype)
        batch_size = min(batch_size, _rows_in_cache(qubits, bits, state_dtype))
    parts = [
        _run(circuit, chunk, state_dtype, noise, register).to(real_dtype)
        for chunk in rows.split(batch_size)
        if chunk.shape[0]
    ]
    probs = torch.cat(parts) if parts else torch.zeros(0, 2**size, dtype=real_dtype)
    return apply_readout(probs, _measured_bits(circuit, register), size, noise)


def valid_label_probabilities(probs: Tensor, n_labels: int) -> Tensor:
    """Renormalise register distributions (or counts) over the values ``0 .. n_labels - 1``.

    Rows whose valid values have (numerically) zero total become uniform.

    Parameters
    ----------
    probs : Tensor
        ``(n, 2**size)`` probabilities or counts.
    n_labels : int
        Number of valid labels.

    Returns
    -------
    Tensor
        ``(n, n_labels)``, rows summing to one.
    """
    valid = probs[:, :n_labels]
    total = valid.sum(1, keepdim=True)
    empty = total <= 16 * torch.finfo(valid.dtype).eps
    uniform = torch.full_like(valid, 1.0 / n_labels)
    return torch.where(empty, uniform, valid / torch.where(empty, 1.0, total))


def _generator(seed: int | None) -> torch.Generator:
    g = torch.Generator()
    if seed is None:
        g.seed()
    else:
        g.manual_seed(check_int("seed", seed, 0))
    return g


def _draw_counts(probs: Tensor, shots: int, generator: torch.Generator) -> Tensor:
    """Counts ``(n, V)`` of ``shots`` draws from each row of ``probs``."""
    counts = torch.zeros(probs.shape, dtype=torch.float64)
    rows_per_chunk = max(1, _DRAWS_PER_CHUNK // shots)
    for start in range(0, probs.shape[0], rows_per_chunk):
        p = probs[start : start + rows_per_chunk].detach().to(torch.float64)
        idx = torch.multinomial(p, shots, replacement=True, generator=generator)
        counts[start : start + rows_per_chunk].scatter_add_(
            1, idx, torch.ones_like(idx, dtype=counts.dtype)
        )
    return counts


def simulate(
    circuit: Circuit,
    X: ArrayLike | Tensor | None = None,
    *,
    noise: NoiseModel | None = None,
    shots: int | None = None,
    seed: int | None = None,
    dtype: torch.dtype = torch.float64,
    batch_size: int = 4096,
    valid_only: bool = True,
) -> Tensor:
    """Label probabilities of a classifier circuit for each input, exact or from shots.

    The label is the value ``l`` of the label register. When ``n_labels < 2**size`` the
    distribution is renormalised over ``l < n_labels`` (post-selection on valid labels); a
    row whose valid labels all have probability (numerically) zero is uniform. With
    ``shots``, each input draws ``shots`` register values from the exact (noisy, readout
    included) distribution and returns the frequencies of the valid labels among the
    valid-label shots (uniform if there are none).

    .. rubric:: Shape

    - X: ``(n, n_features)`` or ``(n_features,)`` (then ``n = 1``)
    - Output: ``(n, n_labels)`` with ``n_labels = circuit.n_labels or 2**size``
      (``(n, 2**size)`` with ``valid_only=False``)

    Parameters
    ----------
    circuit : Circuit
        A circuit with a label register.
    X : array-like or Tensor, optional
        Inputs ``(n, n_features)`` or one input ``(n_features,)``, values in ``[0, 1]``;
        may be ``None`` when the circuit reads no features (one run).
    noise : NoiseModel, optional
        Gate noise and readout error.
    shots : int, optional
        Number of measurement shots per input; ``None`` for exact probabilities.
    seed : int, optional
        Seed of the shot sampler.
    dtype : torch.dtype, default=torch.float64
        Precision; complex gates switch a real dtype to its complex counterpart.
    batch_size : int, default=4096
        Inputs simulated at once.
    valid_only : bool, default=True
        False returns the distribution (or shot frequencies) of every register value,
        ``(n, 2**size)``, without renormalising over the valid labels (what the
        parameter-shift rule differentiates exactly).

    Returns
    -------
    Tensor
        Label probabilities, real.

    Examples
    --------
    >>> from tnml.quantum.circuit import Circuit, Gate, Measure
    >>> c = Circuit(1, [Gate((0,), feature=0), Measure(0, "label", 0)], {"label": 1},
    ...             n_features=1)
    >>> simulate(c, [[0.5]])
    tensor([[0.5000, 0.5000]], dtype=torch.float64)
    """
    if circuit.label_register not in circuit.registers:
        raise InvalidInputError(
            f"simulate needs the label register {circuit.label_register!r}; the circuit has "
            f"{list(circuit.registers)} (use register_probabilities or sample)"
        )
    probs = register_probabilities(
        circuit,
        X,
        register=circuit.label_register,
        noise=noise,
        dtype=dtype,
        batch_size=batch_size,
    )
    n_labels = circuit.n_labels or probs.shape[1]
    if shots is not None:
        shots = check_int("shots", shots, 1)
        probs = _draw_counts(probs, shots, _generator(seed))
        if not valid_only:
            return probs / shots
    if not valid_only:
        return probs
    return valid_label_probabilities(probs, n_labels)


def sample(
    circuit: Circuit,
    n_shots: int,
    X: ArrayLike | Tensor | None = None,
    *,
    register: str | None = None,
    noise: NoiseModel | None = None,
    seed: int | None = None,
    dtype: torch.dtype = torch.float64,
    batch_size: int = 4096,
) -> Tensor:
    """Sample a register's bits by following ``n_shots`` independent trajectories.

    Every measurement draws an outcome per trajectory from that trajectory's state and
    projects onto it; readout error flips the recorded bit. The bits are exact in
    distribution, and memory does not grow with the number of measured bits, so this works
    for generative circuits that measure, reset and reuse qubits many times.

    Parameters
    ----------
    circuit : Circuit
        The circuit.
    n_shots : int
        Number of shots.
    X : array-like or Tensor, optional
        ``None`` for a circuit without features; one input ``(n_features,)`` or
        ``(1, n_features)`` used by every shot; or ``(n_shots, n_features)``, one per shot.
    register : str, optional
        Register to sample; default the label register, or the only register.
    noise : NoiseModel, optional
        Gate noise and readout error.
    seed : int, optional
        Seed of the sampler.
    dtype : torch.dtype, default=torch.float64
        Precision; complex gates switch a real dtype to its complex counterpart.
    batch_size : int, default=4096
        Trajectories simulated at once.

    Returns
    -------
    Tensor
        Bits ``(n_shots, size)`` as int64; column ``b`` is bit ``b`` of the register (its
        value is ``sum_b bits[:, b] * 2**b``).
    """
    n_shots = check_int("n_shots", n_shots, 1)
    register = _choose_register(circuit, register)
    noise = _check_noise(noise)
    batch_size = check_int("batch_size", batch_size, 1)
    state_dtype = _state_dtype(circuit, dtype)
    rows = feature_rows(circuit, X)
    if rows.shape[0] == 1:
        rows = rows.expand(n_shots, -1)
    elif rows.shape[0] != n_shots:
        raise InvalidInputError(
            f"X must hold one input or n_shots={n_shots} inputs, got {rows.shape[0]}"
        )
    generator = _generator(seed)
    parts = [
        _run(circuit, chunk, state_dtype, noise, register, generator)
        for chunk in rows.split(batch_size)
    ]
    return torch.cat(parts)
