"""Matrix product states as shallow circuits of two-qubit blocks (state synthesis).

A qubit MPS of bond 2 is exactly one *staircase layer*: gates on ``(0, 1), (1, 2), ...,
(n-2, n-1)`` in that order, each completing a core of the right-canonical form to an
orthogonal matrix (Ran 2020). A larger bond is approached layer by layer:

1. ``analytic`` (Ran 2020): truncate the state to bond 2, take that layer ``L_1``, apply
   ``L_1^dagger`` to the state (it is then closer to ``|0...0>``), and repeat on what is left;
   the circuit is ``L_1 L_2 ... L_k |0>``.
2. ``iterative`` (Rudolph, Chen, Miller, Acharya & Perdomo-Ortiz 2023, their best protocol):
   after each new analytic layer, optimise every gate of every layer together to maximise
   the fidelity ``|<psi|C|0>|^2``, then take the next analytic layer from the state the
   optimised circuit leaves.
3. ``optimized``: all ``k`` analytic layers first, then one optimisation of everything.

Gates stay in ``SO(4)`` (real, determinant +1: 2 CX each) for the ``"so4"`` block, or
``SU(4)`` (3 CX) for ``"u4"``. The fidelity and its gradient come from the exact sequential
contraction of :mod:`tnml.tensor.circuit_mps` (``k`` staircase layers keep at most ``k + 1``
qubits live), so a 64-qubit state with 8 layers costs milliseconds per evaluation; the
optimiser is L-BFGS on the Lie-algebra coordinates of each block around its current value.
Deeper circuits are optimised gate by gate between bond-capped states
(:func:`sweep_layers`, :mod:`tnml.tensor.staircase`).

*Windows* (``window=W``, :func:`tnml.quantum.window_pairs`) replace the staircase by brick layers in
windows of ``W`` neighbouring qubits, one window after another: the state is prepared qubit by
qubit through a register of ``W - 1`` qubits, the contraction keeps at most ``W + 1`` qubits
live at any depth, so every gate of a deep circuit stays optimised on the exact fidelity
(:func:`optimize_gates`). At equal CX they match staircases on few gates and lead past a few
hundred; the price is depth, since each window waits for the one before.

Sites whose one-site state is nearly pure (pixels a digit never reaches) can be prepared by
a one-qubit rotation and left out of the layers (``product_sites``), which shortens
every layer; the fidelity reported includes their cost.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from math import nan

import torch
from torch import Tensor

from tnml._validation import check_int
from tnml.exceptions import InvalidInputError
from tnml.tensor.circuit_mps import circuit_amplitudes, circuit_state
from tnml.tensor.gates import Block, block_matrices, check_block, nearest_special_orthogonal
from tnml.tensor.mps import MPS, mps_norm, mps_normalize, mps_right_canonicalize, mps_truncate
from tnml.tensor.rdm import mps_one_site_rdms
from tnml.tensor.staircase import apply_layer, sweep_layer
from tnml.tensor.unitary import complete_rows_at

__all__ = [
    "EXACT_LAYERS",
    "OPTIMIZERS",
    "PROTOCOLS",
    "StateCircuit",
    "analytic_layer",
    "min_window_layers",
    "optimize_gates",
    "optimize_layers",
    "product_sites",
    "staircase_pairs",
    "sweep_layers",
    "synthesize_state",
    "window_pairs",
]

PROTOCOLS = ("iterative", "analytic", "optimized")


def staircase_pairs(n_sites: int, n_layers: int) -> list[tuple[int, int]]:
    """Qubit pairs of ``n_layers`` staircase layers in time order.

    Returns
    -------
    list of (int, int)
        ``n_layers * (n_sites - 1)`` pairs: ``(0, 1), (1, 2), ..., (n-2, n-1)`` repeated.
    """
    return [(i, i + 1) for _ in range(n_layers) for i in range(n_sites - 1)]


def window_pairs(n_sites: int, window: int, n_layers: int) -> list[tuple[int, int]]:
    """Qubit pairs of a windowed circuit of brick layers, in time order.

    Window ``t`` (``t = 0, ..., n_sites - window``) acts on qubits ``t, ..., t + window - 1``
    after window ``t - 1``. Its brick layer ``j`` holds the pairs ``(t + a, t + a + 1)`` for
    ``a = j % 2, j % 2 + 2, ... < window - 1``; even windows apply their layers in the order
    ``0, 1, ..., n_layers - 1``, odd windows in reverse, so a window never ends on the pairs
    the next one starts with (two gates in a row on one pair would be one gate), and a
    circuit with one layer more is the same circuit with a layer added at the end of each
    even window and at the start of each odd one. Qubit ``t`` gets no gate after window
    ``t``: the circuit prepares an MPS of bond ``2**(window - 1)`` qubit by qubit, and its
    contraction keeps at most ``window + 1`` qubits live.

    Returns
    -------
    list of (int, int)
        ``(n_sites - window + 1) * sum_j len(range(j % 2, window - 1, 2))`` pairs.
    """
    check_int("n_sites", n_sites, 2)
    check_int("window", window, 2)
    check_int("n_layers", n_layers, 1)
    if window > n_sites:
        raise InvalidInputError(f"window must be at most n_sites={n_sites}, got {window}")
    return [
        (t + a, t + a + 1)
        for t in range(n_sites - window + 1)
        for layer in _window_order(t, n_layers)
        for a in _layer_offsets(window, layer)
    ]


def _layer_offsets(window: int, layer: int) -> range:
    """Where brick layer ``layer`` of a window of ``window`` qubits puts its gates: pairs
    ``(t + a, t + a + 1)`` for ``a`` in the range returned (``t`` the window's first qubit)."""
    return range(layer % 2, window - 1, 2)


def min_window_layers(window: int) -> int:
    """The fewest brick layers a window of ``window`` qubits takes: 2 for an odd window (one
    layer of it leaves the last qubit without a gate), else 1."""
    return 2 if window % 2 and window > 2 else 1


def _window_order(t: int, n_layers: int) -> range:
    """The order in which window ``t`` applies its layers (see ``window_pairs``)."""
    return range(n_layers) if t % 2 == 0 else range(n_layers - 1, -1, -1)


def _window_gates(layers: list[Tensor], n_windows: int) -> Tensor:
    """Gates ``(G, 4, 4)`` in the time order of ``window_pairs`` from per-layer tensors
    ``(n_windows * per_layer, 4, 4)`` (window-major inside each layer)."""
    per = [layer.shape[0] // n_windows for layer in layers]
    return torch.cat(
        [
            layers[j][t * per[j] : (t + 1) * per[j]]
            for t in range(n_windows)
            for j in _window_order(t, len(layers))
        ]
    )


def _window_layers(gates: Tensor, n_windows: int, per: list[int]) -> list[Tensor]:
    """The inverse of :func:`_window_gates`: ``per[j]`` gates of layer ``j`` per window."""
    parts: list[list[Tensor]] = [[] for _ in per]
    start = 0
    for t in range(n_windows):
        for j in _window_order(t, len(per)):
            parts[j].append(gates[start : start + per[j]])
            start += per[j]
    return [torch.cat(part).clone() for part in parts]


def _check_state(mps: object) -> MPS:
    if not isinstance(mps, MPS):
        raise InvalidInputError(f"mps must be a tnml.tensor.MPS, got {type(mps).__name__}")
    if mps.n_sites < 2 or any(d != 2 for d in mps.phys_dims):
        raise InvalidInputError(
            "state synthesis needs an MPS of at least 2 qubits (physical dimension 2 at every "
            f"site), got {mps.n_sites} site(s) with dims {sorted(set(mps.phys_dims))}"
        )
    if mps.dtype.is_complex:
        return mps_normalize(MPS([c.detach().to(torch.complex128) for c in mps.cores]))
    return mps_normalize(MPS([c.detach().to(torch.float64) for c in mps.cores]))


def analytic_layer(mps: MPS) -> Tensor:
    """The staircase layer that prepares the bond-2 truncation of ``mps`` from ``|0...0>``.

    The state is normalised, truncated to bond 2 by SVD and brought to right-canonical
    form ``B_0 ... B_{n-1}``. Gate ``i`` acts on qubits ``(i, i+1)`` and maps ``|l>|0>`` to
    ``sum_{s,r} B_i[l, s, r] |s>|r>``; the remaining columns complete it to a rotation
    (determinant +1). The last core, a one-qubit gate, is folded into gate ``n-2``.

    Parameters
    ----------
    mps : MPS
        ``n >= 2`` qubits; real or complex.

    Returns
    -------
    Tensor
        ``(n - 1, 4, 4)`` gates for :func:`staircase_pairs` ``(n, 1)``: real orthogonal with
        determinant +1 for a real state, unitary for a complex one. For a state of bond at
        most 2 the layer prepares it exactly.
    """
    mps = _check_state(mps)
    truncated, _ = mps_truncate(mps, max_bond=2)
    canonical = mps_right_canonicalize(truncated)
    cores = [c.clone() for c in canonical.cores]
    cores[0] = cores[0] / torch.linalg.vector_norm(cores[0])
    n = len(cores)
    dtype = cores[0].dtype
    gates = []
    for core in cores[:-1]:
        left, _, right = core.shape
        padded = torch.zeros(left, 2, 2, dtype=dtype)
        padded[:, :, :right] = core
        rows = padded.reshape(left, 4)
        gate = _complete(rows, [2 * l for l in range(left)], 4).transpose(0, 1).contiguous()
        if not gate.is_complex() and float(torch.linalg.det(gate)) < 0:
            gate[:, 3] = -gate[:, 3]  # a free column (fresh qubit in |1>): now in SO(4), 2 CX
        gates.append(gate)
    last = cores[-1][:, :, 0]  # (left, 2): |l> -> sum_s last[l, s] |s>
    one_qubit = _complete(last, list(range(last.shape[0])), 2).transpose(0, 1).contiguous()
    gates[n - 2] = torch.kron(torch.eye(2, dtype=dtype), one_qubit) @ gates[n - 2]
    return torch.stack(gates)


def _complete(rows: Tensor, positions: list[int], size: int) -> Tensor:
    """A unitary whose rows at ``positions`` are ``rows`` (orthonormal), det +1 if real."""
    if not rows.is_complex():
        return complete_rows_at(rows, positions, size)
    # Complex rows: complete the realified problem is not needed; QR of the conjugate.
    m = rows.shape[0]
    q = torch.linalg.qr(rows.conj().transpose(0, 1), mode="complete").Q  # (size, size)
    full = torch.cat([rows, q[:, m:].conj().transpose(0, 1)], dim=0)
    taken = set(positions)
    order = positions + [j for j in range(size) if j not in taken]
    out = torch.empty_like(full)
    out[order] = full
    return out


@dataclass
class StateCircuit:
    """A circuit of two-qubit blocks that approximates an MPS, and how it got there.

    Two layouts: *staircase* layers (``window = 0``; each layer has a gate on every pair of
    neighbouring active sites) or *windows* (``window >= 3``;
    :func:`tnml.quantum.window_pairs`: each window of ``window`` active sites gets
    ``n_layers`` brick layers, window after window).

    Sites whose one-site state is (nearly) pure -- an image border that is almost always
    off -- may be *product sites*: a one-qubit rotation prepares their dominant state and no
    two-qubit gate touches them; the staircase runs over the other, *active* sites only.

    Attributes
    ----------
    n_sites : int
        Qubits (features) in all.
    layers : list of Tensor
        Staircase: gates ``(n_active - 1, 4, 4)`` per layer in time order (``layers[0]``
        acts on ``|0...0>`` first; gate ``i`` of a layer acts on active sites ``i, i+1``).
        Windows: brick layer ``l`` of every window, ``(n_windows * per_layer, 4, 4)``,
        window by window (:attr:`gates` puts them in time order).
    block : Block
        The block kind (cost per gate).
    fidelity : float
        ``|<psi|C|0>|^2`` with the normalised target (product sites included).
    history : list of dict
        Per number of layers: ``layers``, ``fidelity_analytic`` (after adding the analytic
        layer), ``fidelity`` (after optimising), ``iterations``, ``seconds``.
    stages : list of list of Tensor
        The layers as they were when the circuit had 1, 2, ... layers (the last is
        ``layers``); :meth:`stage` rebuilds each as a :class:`StateCircuit`.
    active : list of int
        The sites the staircase runs over, increasing (all sites when none is a product site).
    product : dict of int to Tensor
        Product site -> its one-qubit state ``(2,)`` (the rotation's first column).
    window : int
        0 for staircase layers, else the window width (qubits per window).
    """

    n_sites: int
    layers: list[Tensor]
    block: Block
    fidelity: float
    history: list[dict[str, float]] = field(default_factory=list)
    stages: list[list[Tensor]] = field(default_factory=list)
    active: list[int] = field(default_factory=list)
    product: dict[int, Tensor] = field(default_factory=dict)
    window: int = 0

    def __post_init__(self) -> None:
        if not self.active:
            self.active = [j for j in range(self.n_sites) if j not in self.product]

    def stage(self, n_layers: int) -> StateCircuit:
        """The circuit as it was with ``n_layers`` layers (``1 <= n_layers <= len(stages)``)."""
        if not 1 <= n_layers <= len(self.stages):
            raise InvalidInputError(
                f"n_layers must lie in [1, {len(self.stages)}], got {n_layers!r}"
            )
        rows = self.history[:n_layers]
        return StateCircuit(
            self.n_sites,
            self.stages[n_layers - 1],
            self.block,
            rows[-1]["fidelity"],
            rows,
            self.stages[:n_layers],
            list(self.active),
            dict(self.product),
            self.window,
        )

    @property
    def n_layers(self) -> int:
        """Number of staircase layers, or of brick layers per window."""
        return len(self.layers)

    @property
    def local_pairs(self) -> list[tuple[int, int]]:
        """Pairs of every two-qubit gate in time order, as indices into ``active``."""
        n_active = len(self.active)
        if self.window:
            return window_pairs(n_active, self.window, self.n_layers)
        return staircase_pairs(n_active, self.n_layers)

    @property
    def pairs(self) -> list[tuple[int, int]]:
        """Qubit pairs of every two-qubit gate in time order (site indices)."""
        act = self.active
        return [(act[a], act[b]) for a, b in self.local_pairs]

    @property
    def gates(self) -> Tensor:
        """All two-qubit gates ``(G, 4, 4)`` in the time order of :attr:`pairs`."""
        if not self.layers:
            return torch.zeros(0, 4, 4)
        if self.window:
            return _window_gates(self.layers, len(self.active) - self.window + 1)
        return torch.cat(self.layers)

    def product_rotation(self, site: int) -> Tensor:
        """The one-qubit gate ``(2, 2)`` that prepares product site ``site`` from ``|0>``."""
        m = self.product[site]
        other = torch.stack([-m[1].conj(), m[0].conj()])
        return torch.stack([m, other], dim=1)

    @property
    def two_qubit_gates(self) -> int:
        """CX count with every block synthesised at its kind's cost (before routing)."""
        return self.block.cx_count * sum(layer.shape[0] for layer in self.layers)

    def log_prob(self, x: Tensor) -> Tensor:
        """``log |<x|C|0>|^2`` of basis states ``x`` (``(B, n_sites)`` of 0/1), ``(B,)``."""
        x = torch.as_tensor(x, dtype=torch.long)
        onehot = torch.nn.functional.one_hot(x, 2).to(self.gates.dtype)
        _, log_abs = circuit_amplitudes(onehot[:, self.active], self.local_pairs, self.gates)
        out = 2 * log_abs
        for site, m in self.product.items():
            out = out + 2 * torch.log(m.abs().to(out.dtype)[x[:, site]])
        return out

    def state(self, max_bond: int | None = None) -> MPS:
        """The prepared state ``C|0>`` as an MPS.

        Exact by default (bond at most ``2**n_layers`` for staircases, ``2**(window - 1)``
        for windows); with ``max_bond`` staircase layers are applied to ``|0...0>`` one by
        one with that bond cap instead (for deep circuits; the truncation error is what the
        caller accepts).
        """
        n_active = len(self.active)
        if max_bond is not None:
            check_int("max_bond", max_bond, 2)
        if max_bond is None or self.window:
            reduced = circuit_state(self.local_pairs, self.gates, n_active)
        else:
            reduced = _zero_state(n_active, self.gates.dtype)
            for layer in self.layers:
                reduced, _ = apply_layer(reduced, layer, max_bond=max_bond)
            reduced = mps_normalize(reduced)
        cores, k, bond = [], 0, 1
        for site in range(self.n_sites):
            if site in self.product:
                m = self.product[site].to(reduced.dtype)
                eye = torch.eye(bond, dtype=reduced.dtype)
                cores.append(torch.einsum("lr,s->lsr", eye, m))
            else:
                core = reduced.cores[k]
                if k == 0:
                    core = core * torch.exp(reduced.log_scale).to(core.dtype)
                cores.append(core)
                bond = core.shape[-1]
                k += 1
        return MPS(cores)


def product_sites(mps: MPS, threshold: float) -> tuple[dict[int, Tensor], MPS, float]:
    """Sites whose one-site state is pure to within ``threshold``, and what is left.

    A site is a product site when the smaller eigenvalue of its one-site reduced density
    matrix is below ``threshold``; its state is the dominant eigenvector ``m_j``. The rest
    of the target, ``<m_S|psi>``, is an MPS on the other sites (at least two are kept).

    Parameters
    ----------
    mps : MPS
        Normalised qubit MPS.
    threshold : float
        0 keeps every site.

    Returns
    -------
    product : dict of int to Tensor
        Site -> ``m_j`` ``(2,)``.
    reduced : MPS
        ``<m_S|psi>`` on the remaining sites, normalised.
    weight : float
        ``|| <m_S|psi> ||^2``: the fidelity of the best state with these product sites is
        ``weight`` times that of the reduced part.
    """
    if not threshold > 0:
        return {}, mps, 1.0
    rdms = mps_one_site_rdms(mps)
    values, vectors = torch.linalg.eigh(rdms)
    order = torch.argsort(values[:, 0])
    chosen = {int(j) for j in order[: mps.n_sites - 2] if float(values[j, 0]) < threshold}
    product = {j: vectors[j][:, 1] for j in sorted(chosen)}
    cores: list[Tensor] = []
    carry: Tensor | None = None
    for j, core in enumerate(mps.cores):
        if j in product:
            m = torch.einsum("lsr,s->lr", core, product[j].conj().to(core.dtype))
            carry = m if carry is None else carry @ m
            continue
        cores.append(core if carry is None else torch.einsum("ab,bsr->asr", carry, core))
        carry = None
    if carry is not None:
        cores[-1] = torch.einsum("lsr,rb->lsb", cores[-1], carry)
    reduced = MPS(cores, mps.log_scale)
    weight = float(mps_norm(reduced)) ** 2
    return product, mps_normalize(reduced), weight


def _fidelity(target: MPS, pairs: list, gates: Tensor) -> Tensor:
    _, log_abs = circuit_amplitudes(target, pairs, gates)
    return torch.exp(2 * log_abs[0])


def optimize_gates(
    target: MPS,
    pairs: list[tuple[int, int]],
    gates: Tensor,
    *,
    block: str | Block = "so4",
    max_iter: int = 200,
    tol: float = 1e-10,
) -> tuple[Tensor, dict[str, float]]:
    """Maximise ``|<target|C|0>|^2`` over every gate of the circuit ``C`` at once.

    Each gate is ``G = G_0 @ expm(sum_j a_j E_j)`` with ``G_0`` its current value and ``a``
    its Lie-algebra coordinates (6 for ``so4``, 15 for ``u4``), optimised by L-BFGS with a
    strong-Wolfe line search on ``-log F``; gates stay exactly in their group. The fidelity
    is contracted exactly (:func:`tnml.tensor.circuit_mps.circuit_amplitudes`), so the cost
    grows as ``2**live`` with the most qubits a circuit keeps live.

    Parameters
    ----------
    target : MPS
        The state (normalised here).
    pairs : list of (int, int)
        Qubits of each gate, in time order.
    gates : Tensor
        Starting gates ``(G, 4, 4)``.
    block : {"so4", "u4"}, default="so4"
    max_iter : int, default=200
        L-BFGS iterations (each one or a few fidelity evaluations).
    tol : float, default=1e-10
        Stop when ``1 - F`` changes less than this between iterations.

    Returns
    -------
    gates : Tensor
        The optimised gates ``(G, 4, 4)`` (the starting ones if nothing improved).
    info : dict
        ``fidelity_start``, ``fidelity``, ``iterations``, ``evaluations``.
    """
    kind = check_block(block)
    check_int("max_iter", max_iter, 0)
    target = _check_state(target)
    base = gates.detach()
    if not kind.is_complex and base.is_complex():
        raise InvalidInputError("so4 blocks need real gates; pass block='u4'")
    base = base.to(torch.complex128 if kind.is_complex else torch.float64)
    start = float(_fidelity(target, pairs, base))
    info = {"fidelity_start": start, "iterations": 0, "evaluations": 0, "fidelity": start}
    if max_iter == 0 or base.shape[0] == 0:
        return base.clone(), info
    coords = torch.zeros(base.shape[0], kind.n_params, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS(
        [coords],
        lr=1.0,
        max_iter=max_iter,
        tolerance_grad=1e-12,
        tolerance_change=tol,
        history_size=50,
        line_search_fn="strong_wolfe",
    )

    def closure() -> Tensor:
        optimizer.zero_grad()
        _, log_abs = circuit_amplitudes(target, pairs, base @ block_matrices(coords, kind))
        loss = -2 * log_abs[0]
        loss.backward()
        info["evaluations"] += 1
        return loss

    optimizer.step(closure)
    state = optimizer.state[optimizer._params[0]]
    info["iterations"] = int(state.get("n_iter", 0))
    with torch.no_grad():
        out = base @ block_matrices(coords, kind)
    info["fidelity"] = float(_fidelity(target, pairs, out))
    if info["fidelity"] < start:  # L-BFGS never should; keep the better circuit if it did
        out, info["fidelity"] = base.clone(), start
    return out, info


def optimize_layers(
    target: MPS,
    layers: list[Tensor],
    *,
    block: str | Block = "so4",
    max_iter: int = 200,
    tol: float = 1e-10,
) -> tuple[list[Tensor], dict[str, float]]:
    """Maximise ``|<target|C|0>|^2`` over every gate of the staircase layers at once
    (:func:`optimize_gates` on :func:`staircase_pairs`).

    Parameters
    ----------
    target : MPS
        The state (normalised here).
    layers : list of Tensor
        Starting gates, ``(n - 1, 4, 4)`` per layer in time order.
    block : {"so4", "u4"}, default="so4"
    max_iter : int, default=200
    tol : float, default=1e-10

    Returns
    -------
    layers : list of Tensor
        The optimised gates.
    info : dict
        ``fidelity`` before and after, ``iterations``, ``evaluations``.
    """
    target = _check_state(target)
    if not layers:
        return [], optimize_gates(target, [], torch.zeros(0, 4, 4), block=block)[1]
    pairs = staircase_pairs(target.n_sites, len(layers))
    gates, info = optimize_gates(
        target, pairs, torch.cat(layers), block=block, max_iter=max_iter, tol=tol
    )
    return list(gates.split(target.n_sites - 1)), info


OPTIMIZERS = ("auto", "lbfgs", "sweep")
EXACT_LAYERS = 10
"""Deepest circuit whose fidelity :func:`synthesize_state` contracts exactly (``2**11`` wide)."""


def _zero_state(n: int, dtype: torch.dtype) -> MPS:
    zero = torch.zeros(1, 2, 1, dtype=dtype)
    zero[0, 0, 0] = 1
    return MPS([zero] * n)


def sweep_layers(
    target: MPS,
    layers: list[Tensor],
    *,
    n_sweeps: int = 10,
    max_bond: int = 64,
    tol: float = 1e-8,
) -> tuple[list[Tensor], dict[str, float]]:
    """Optimise staircase layers one gate at a time by polar updates of their environments.

    Each sweep prepares the states below every layer (``L_{m-1} ... L_0 |0>``), then walks
    down from the last layer: the layer is swept between the target pulled back through the
    layers above it and the state below it (:func:`tnml.tensor.staircase.sweep_layer`),
    and the target is pulled back through it. States are truncated to ``max_bond``, so a
    deep circuit costs ``O(layers * n * max_bond^3)`` per sweep instead of the exact
    contraction's ``2**layers``; the fidelity reported is exact when the bonds never reach
    the cap.

    Parameters
    ----------
    target : MPS
        Real target state (normalised here).
    layers : list of Tensor
        Real gates ``(n - 1, 4, 4)`` per layer in time order.
    n_sweeps : int, default=10
    max_bond : int, default=64
    tol : float, default=1e-8
        Stop when a sweep raises the fidelity by less than this.

    Returns
    -------
    layers : list of Tensor
    info : dict
        ``fidelity`` (as the last sweep measured it), ``sweeps``.
    """
    target = _check_state(target)
    check_int("n_sweeps", n_sweeps, 1)
    check_int("max_bond", max_bond, 2)
    layers = [layer.detach().clone().to(torch.float64) for layer in layers]
    n, k = target.n_sites, len(layers)
    previous = -1.0
    info: dict[str, float] = {"sweeps": 0, "fidelity": 0.0}

    def polar(env: Tensor, gate: Tensor) -> Tensor:
        return nearest_special_orthogonal(env)

    for sweep in range(n_sweeps):
        kets = [_zero_state(n, torch.float64)]
        for m in range(k - 1):
            kets.append(apply_layer(kets[-1], layers[m], max_bond=max_bond)[0])
        bra = target
        overlap = torch.zeros((), dtype=torch.float64)
        for m in range(k - 1, -1, -1):
            layers[m], overlap = sweep_layer(bra, layers[m], kets[m], polar)
            if m > 0:
                bra = apply_layer(bra, layers[m], inverse=True, max_bond=max_bond)[0]
        fidelity = float(overlap) ** 2
        info.update(sweeps=sweep + 1, fidelity=fidelity)
        if fidelity - previous < tol:
            break
        previous = fidelity
    return layers, info


def synthesize_state(
    mps: MPS,
    n_layers: int,
    *,
    protocol: str = "iterative",
    block: str | Block = "so4",
    max_iter: int = 200,
    residual_bond: int | None = None,
    target_fidelity: float | None = None,
    product_threshold: float = 0.0,
    optimizer: str = "auto",
    sweeps: int = 20,
    max_bond: int = 64,
    window: int | None = None,
    callback: Callable[[dict[str, float]], None] | None = None,
) -> StateCircuit:
    """A circuit of ``n_layers`` staircase layers of two-qubit blocks approximating ``mps``,
    or, with ``window``, of ``n_layers`` brick layers in each window of
    :func:`tnml.quantum.window_pairs`.

    Parameters
    ----------
    mps : MPS
        Target state on ``n >= 2`` qubits (normalised here).
    n_layers : int
        Staircase layers, ``>= 1``; each has ``n - 1`` blocks. With ``window``: brick layers
        per window, ``>= 2`` for an odd window (one layer of an odd window leaves the last
        qubit without a gate; the first stage of such a circuit is only a starting point).
    protocol : {"iterative", "analytic", "optimized"}, default="iterative"
        See the module docstring.
    block : {"so4", "u4"}, default="so4"
        ``"so4"`` needs a real state.
    max_iter : int, default=200
        L-BFGS iterations per optimisation.
    residual_bond : int, optional
        Bond cap of the disentangled state the next analytic layer is read from; default
        twice the target's largest bond (at least 16).
    target_fidelity : float, optional
        Stop adding layers once the fidelity reaches it (``n_layers`` is then a maximum).
    product_threshold : float, default=0.0
        Sites whose one-site state has its smaller eigenvalue below this are prepared by a
        one-qubit rotation and left out of the staircase (``product_sites``), so each
        layer costs fewer CX; their cost in fidelity is included.
    window : int, optional
        Windows of this many qubits (``>= 3``; 2 would be one staircase layer) instead of
        staircase layers: the circuit prepares the state qubit by qubit with a register of
        ``window - 1`` qubits (bond ``2**(window - 1)``), and each window gets ``n_layers``
        brick layers. Layers are added one at a time (the new layer of every window a small
        turn off the identity, the same in every run) and all gates are optimised together
        by L-BFGS on the exact fidelity after each; the contraction keeps at most
        ``window + 1`` qubits live, so deep circuits stay exact where staircases past
        ``EXACT_LAYERS`` layers need bond-capped sweeps. Only ``protocol="iterative"``
        with ``optimizer="auto"`` or ``"lbfgs"``.
    callback : callable, optional
        Called with each history row as it is made.

    Returns
    -------
    StateCircuit
    """
    if window is not None:
        check_int("window", window, 3)
        if protocol != "iterative" or optimizer == "sweep":
            raise InvalidInputError(
                "window= grows brick layers one at a time, optimised by L-BFGS: it needs "
                f"protocol='iterative' and optimizer 'auto' or 'lbfgs' (got {protocol!r}, "
                f"{optimizer!r})"
            )
    if protocol not in PROTOCOLS:
        raise InvalidInputError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    if optimizer not in OPTIMIZERS:
        raise InvalidInputError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    kind = check_block(block)
    if optimizer == "sweep" and kind.is_complex:
        raise InvalidInputError("optimizer='sweep' handles real states: use block='so4'")
    deep = window is None and n_layers > EXACT_LAYERS
    if optimizer == "auto" and deep and kind.is_complex:
        raise InvalidInputError(
            f"more than {EXACT_LAYERS} layers of complex blocks: the deep optimiser handles "
            "real states (block='so4')"
        )
    check_int("n_layers", n_layers, 1)
    whole = _check_state(mps)
    if whole.dtype.is_complex and not kind.is_complex:
        raise InvalidInputError("a complex state needs block='u4'")
    if isinstance(product_threshold, bool) or not 0 <= product_threshold < 0.5:
        raise InvalidInputError(
            f"product_threshold must lie in [0, 0.5), got {product_threshold!r}"
        )
    product, target, weight = product_sites(whole, product_threshold)
    active = [j for j in range(whole.n_sites) if j not in product]
    if window is not None:
        layers, history, stages, width = _grow_windows(
            target, n_layers, window, kind, max_iter, weight, target_fidelity, callback
        )
        return StateCircuit(
            whole.n_sites,
            layers,
            kind,
            history[-1]["fidelity"],
            history,
            stages,
            active,
            product,
            width,
        )
    n = target.n_sites
    cap = residual_bond or max(16, 2 * target.max_bond_dim)
    check_int("residual_bond", cap, 2)
    dtype = torch.complex128 if kind.is_complex else torch.float64
    layers: list[Tensor] = []
    residual = target
    history: list[dict[str, float]] = []
    stages: list[list[Tensor]] = []
    for k in range(1, n_layers + 1):
        started = time.perf_counter()
        new = analytic_layer(residual).to(dtype)
        layers.insert(0, new)
        pairs = staircase_pairs(n, k)
        exact = k <= EXACT_LAYERS
        analytic = weight * float(_fidelity(target, pairs, torch.cat(layers))) if exact else nan
        row = {"layers": k, "fidelity_analytic": analytic, "fidelity": analytic, "exact": exact}
        optimise_now = protocol == "iterative" or (protocol == "optimized" and k == n_layers)
        use_lbfgs = optimizer == "lbfgs" or (optimizer == "auto" and exact)
        if optimise_now and use_lbfgs:
            layers, info = optimize_layers(target, layers, block=kind, max_iter=max_iter)
            row.update(fidelity=weight * info["fidelity"], iterations=info["iterations"])
        elif optimise_now:
            layers, info = sweep_layers(target, layers, n_sweeps=sweeps, max_bond=max_bond)
            measured = float(_fidelity(target, pairs, torch.cat(layers))) if exact else nan
            row.update(
                fidelity=weight * (measured if exact else info["fidelity"]),
                iterations=info["sweeps"],
            )
        row["seconds"] = time.perf_counter() - started
        if _record_stage(row, layers, history, stages, callback, target_fidelity):
            break
        if k < n_layers:
            # C = layers[-1] ... layers[0]: C^dagger undoes the last layer in time first.
            if optimise_now:
                residual = _undo(target, list(reversed(layers)), cap)
            else:
                residual = _undo(residual, [new], cap)
    return StateCircuit(
        whole.n_sites, layers, kind, history[-1]["fidelity"], history, stages, active, product
    )


def _undo(state: MPS, layers: list[Tensor], cap: int) -> MPS:
    """Apply the inverse of each staircase layer to ``state``, in the order given."""
    out = state
    for gates in layers:
        out, _ = apply_layer(out, gates, inverse=True, max_bond=cap)
    return mps_normalize(out)


def _grow_windows(
    target: MPS,
    n_layers: int,
    window: int,
    kind: Block,
    max_iter: int,
    weight: float,
    target_fidelity: float | None,
    callback: Callable[[dict[str, float]], None] | None,
) -> tuple[list[Tensor], list[dict[str, float]], list[list[Tensor]], int]:
    """Brick layers added to every window one at a time, all gates re-optimised after each.

    Returns the layers, the history rows, the stages and the window width used (at most the
    number of sites).
    """
    n = target.n_sites
    width = min(window, n)
    least = min_window_layers(width)
    if n_layers < least:
        raise InvalidInputError(
            f"n_layers must be >= 2 for windows of {width} qubits: one brick layer of an odd "
            "window leaves the last qubit without a gate"
        )
    n_windows = n - width + 1
    dtype = torch.complex128 if kind.is_complex else torch.float64
    # A fixed seed: the small turn off the identity that starts each new layer is the same
    # in every run.
    generator = torch.Generator().manual_seed(0)
    layers: list[Tensor] = []
    history: list[dict[str, float]] = []
    stages: list[list[Tensor]] = []
    for k in range(1, n_layers + 1):
        started = time.perf_counter()
        per = [len(_layer_offsets(width, layer)) for layer in range(k)]
        angles = 1e-2 * torch.randn(n_windows * per[-1], kind.n_params, generator=generator)
        layers.append(block_matrices(angles.to(torch.float64), kind).to(dtype))
        pairs = window_pairs(n, width, k)
        gates, info = optimize_gates(
            target, pairs, _window_gates(layers, n_windows), block=kind, max_iter=max_iter
        )
        layers = _window_layers(gates, n_windows, per)
        row = {
            "layers": k,
            "fidelity_analytic": nan,
            "fidelity": weight * info["fidelity"],
            "exact": True,
            "iterations": info["iterations"],
            "seconds": time.perf_counter() - started,
        }
        reached = _record_stage(row, layers, history, stages, callback, target_fidelity)
        if reached and k >= least:  # an odd window's first layer is only a start
            break
    return layers, history, stages, width


def _record_stage(
    row: dict[str, float],
    layers: list[Tensor],
    history: list[dict[str, float]],
    stages: list[list[Tensor]],
    callback: Callable[[dict[str, float]], None] | None,
    target_fidelity: float | None,
) -> bool:
    """Keep a finished stage (its row and a copy of its layers), report it, and say whether
    it reached ``target_fidelity`` (no more layers are then added)."""
    history.append(row)
    stages.append([layer.clone() for layer in layers])
    if callback is not None:
        callback(dict(row))
    return target_fidelity is not None and row["fidelity"] >= target_fidelity
