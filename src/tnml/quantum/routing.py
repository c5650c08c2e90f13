"""Place a circuit on a device's qubits and insert SWAPs where a gate's qubits are not coupled.

:func:`route` maps the circuit's qubits onto physical qubits of a
:class:`~tnml.quantum.targets.DeviceTarget` and returns the same computation with every
two-qubit gate on a coupled pair. Circuits that tensor networks give are mostly chains (an
MPS's staircase, a register on a line); a chain is placed on a path of the device and needs
no SWAP. Other interaction graphs are placed greedily (each qubit next to the qubits it
talks to) and every uncoupled gate moves one of its qubits along a shortest path by SWAPs.
Measurements and resets move with their qubits, so mid-circuit measurement and qubit reuse
are kept. A SWAP next to a gate on the same pair is fused with it (a rotation followed by a
SWAP costs 3 CX, not 2 + 3).

The routed circuit is *compact*: its qubits are the physical qubits it uses, in increasing
order; ``metadata["physical_qubits"]`` says which, ``metadata["target"]`` names the device
and ``metadata["coupling"]`` lists the coupled pairs among them (in compact indices).
"""

from __future__ import annotations

import itertools
from collections import defaultdict

import torch

from tnml.exceptions import InvalidInputError
from tnml.quantum.circuit import Circuit, Gate, Measure, Operation, Reset, check_index
from tnml.quantum.targets import DeviceTarget

__all__ = ["SWAP", "fuse_two_qubit_runs", "interaction_pairs", "placement", "route"]

SWAP = torch.tensor([[1.0, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]], dtype=torch.float64)
_PERMUTE = torch.tensor([0, 2, 1, 3])


def _qubits(op: Operation) -> tuple[int, ...]:
    return op.qubits if isinstance(op, Gate) else (op.qubit,)


def interaction_pairs(circuit: Circuit) -> set[tuple[int, int]]:
    """The unordered qubit pairs that two-qubit gates act on.

    Raises
    ------
    InvalidInputError
        If a gate acts on more than two qubits (decompose it first).
    """
    pairs = set()
    for op in circuit.ops:
        if isinstance(op, Gate) and len(op.qubits) > 2:
            raise InvalidInputError(
                f"routing needs gates of at most two qubits; gate {op.name!r} acts on "
                f"{len(op.qubits)} (compile with gates='native', or tnml.quantum.decompose)"
            )
        if isinstance(op, Gate) and len(op.qubits) == 2:
            a, b = op.qubits
            pairs.add((min(a, b), max(a, b)))
    return pairs


def _chain_order(n: int, pairs: set[tuple[int, int]], used: list[int]) -> list[int] | None:
    """The used qubits in chain order if the interaction graph is a path (or a sub-path)."""
    neighbours: dict[int, set[int]] = defaultdict(set)
    for a, b in pairs:
        neighbours[a].add(b)
        neighbours[b].add(a)
    if any(len(v) > 2 for v in neighbours.values()):
        return None
    order: list[int] = []
    seen: set[int] = set()
    # Walk each path component from one end; isolated qubits are components of one.
    for q in used:
        if q in seen or len(neighbours[q]) == 2:
            continue
        current, previous = q, None
        while current is not None:
            order.append(current)
            seen.add(current)
            nxt = [r for r in neighbours[current] if r != previous and r not in seen]
            previous, current = current, (nxt[0] if nxt else None)
    return order if len(order) == len(used) else None  # leftovers lie on a cycle


def placement(circuit: Circuit, target: DeviceTarget) -> dict[int, int]:
    """Circuit qubit -> physical qubit: a chain on a device path, otherwise greedy.

    Returns
    -------
    dict
        One physical qubit per circuit qubit that any operation touches.
    """
    pairs = interaction_pairs(circuit)
    used = sorted({q for op in circuit.ops for q in _qubits(op)})
    if len(used) > target.num_qubits:
        raise InvalidInputError(
            f"the circuit uses {len(used)} qubits; target {target.name} has {target.num_qubits}"
        )
    chain = _chain_order(circuit.num_qubits, pairs, used)
    if chain is not None:
        path = target.find_path(len(chain))
        if path is not None:
            return dict(zip(chain, path, strict=True))
    return _greedy_placement(used, pairs, target)


def _greedy_placement(
    used: list[int], pairs: set[tuple[int, int]], target: DeviceTarget
) -> dict[int, int]:
    weight: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for a, b in pairs:
        weight[a][b] += 1
        weight[b][a] += 1
    order = sorted(used, key=lambda q: (-len(weight[q]), q))
    mapping: dict[int, int] = {}
    taken: set[int] = set()
    distance_cache: dict[int, list[int]] = {}

    def dist(p: int) -> list[int]:
        if p not in distance_cache:
            distance_cache[p] = target.distances(p)
        return distance_cache[p]

    central = target.central_qubits()
    queue = list(order)
    while queue:
        # Next: the unplaced qubit with most links to placed ones (BFS-like growth).
        queue.sort(key=lambda q: (-sum(1 for r in weight[q] if r in mapping), order.index(q)))
        q = queue.pop(0)
        placed = [r for r in weight[q] if r in mapping]
        free = [p for p in central if p not in taken]
        if placed:
            best = min(free, key=lambda p: (sum(dist(mapping[r])[p] for r in placed), p))
        else:
            best = free[0]
        mapping[q] = best
        taken.add(best)
    return mapping


def route(
    circuit: Circuit, target: DeviceTarget, *, initial_layout: dict[int, int] | None = None
) -> Circuit:
    """The circuit on ``target``: placed, with SWAPs so every two-qubit gate is coupled.

    Parameters
    ----------
    circuit : Circuit
        Gates of at most two qubits.
    target : DeviceTarget
    initial_layout : dict, optional
        Circuit qubit -> physical qubit; default ``placement``.

    Returns
    -------
    Circuit
        Compact (see the module docstring), same registers, features and labels.
    """
    if initial_layout is None:
        mapping = placement(circuit, target)
    else:
        try:
            mapping = dict(initial_layout)
        except (TypeError, ValueError) as err:
            raise InvalidInputError(
                f"initial_layout must map circuit qubits to physical qubits: {err}"
            ) from err
        mapping = {
            check_index("an initial_layout key", q): check_index("an initial_layout value", p)
            for q, p in mapping.items()
        }
        beyond = sorted(p for p in mapping.values() if p >= target.num_qubits)
        if beyond:
            raise InvalidInputError(
                f"initial_layout places qubits on {beyond}; target {target.name} has qubits "
                f"0 .. {target.num_qubits - 1}"
            )
    used = {q for op in circuit.ops for q in _qubits(op)}
    missing = used - set(mapping)
    if missing:
        raise InvalidInputError(f"initial_layout places no physical qubit for {sorted(missing)}")
    if len(set(mapping.values())) != len(mapping):
        raise InvalidInputError("initial_layout maps two circuit qubits to one physical qubit")
    where = dict(mapping)  # circuit qubit -> physical qubit, changes with SWAPs
    occupant = {p: q for q, p in where.items()}
    ops: list[Operation] = []
    n_swaps = 0
    for op in circuit.ops:
        if isinstance(op, Gate) and len(op.qubits) == 2:
            a, b = op.qubits
            if not target.is_coupled(where[a], where[b]):
                path = target.shortest_path(where[a], where[b])
                for p, r in itertools.pairwise(path[:-1]):
                    ops.append(Gate((p, r), SWAP, name="swap"))
                    n_swaps += 1
                    qp, qr = occupant.get(p), occupant.get(r)
                    occupant[p], occupant[r] = qr, qp
                    if qp is not None:
                        where[qp] = r
                    if qr is not None:
                        where[qr] = p
            ops.append(_moved(op, where))
        else:
            ops.append(_moved(op, where))
    physical = sorted({q for op in ops for q in _qubits(op)})
    compact = {p: i for i, p in enumerate(physical)}
    ops = [_relabel(op, compact) for op in ops]
    coupling = [(compact[a], compact[b]) for a, b in target.edges if a in compact and b in compact]
    metadata = {
        "target": target.name,
        "physical_qubits": physical,
        "device_qubits": target.num_qubits,
        "coupling": coupling,
        "swaps": n_swaps,
    }
    return circuit.replaced(
        ops=fuse_two_qubit_runs(ops), num_qubits=max(1, len(physical)), metadata=metadata
    )


def _moved(op: Operation, where: dict[int, int]) -> Operation:
    return _relabel(op, where)


def _relabel(op: Operation, mapping: dict[int, int]) -> Operation:
    if isinstance(op, Gate):
        qubits = tuple(mapping[q] for q in op.qubits)
        if op.feature is not None:
            return Gate(qubits, feature=op.feature, name=op.name, scale=op.scale)
        return Gate(qubits, matrix=op.matrix, name=op.name, angle=op.angle)
    if isinstance(op, Measure):
        return Measure(mapping[op.qubit], op.register, op.bit)
    return Reset(mapping[op.qubit])


def fuse_two_qubit_runs(ops: list[Operation]) -> list[Operation]:
    """Merge consecutive non-data gates on the same qubit pair into one gate.

    Two two-qubit gates on the same pair with no operation on either qubit in between are
    one two-qubit unitary (their product), which synthesises into at most 3 CX; a one-qubit
    gate between them is absorbed too. Order and meaning are unchanged.

    Parameters
    ----------
    ops : list of Operation

    Returns
    -------
    list of Operation
    """
    out: list[Operation | None] = []
    last: dict[int, int] = {}  # qubit -> index in out of its latest operation
    for op in ops:
        if isinstance(op, Gate) and op.matrix is not None and not op.is_data:
            qubits = op.qubits
            previous = {last.get(q) for q in qubits}
            if len(qubits) == 2 and len(previous) == 1 and None not in previous:
                i = previous.pop()
                prior = out[i]
                if (
                    isinstance(prior, Gate)
                    and prior.matrix is not None
                    and not prior.is_data
                    and len(prior.qubits) == 2
                    and set(prior.qubits) == set(qubits)
                ):
                    product = _matmul(_in_order(op, prior.qubits), prior.matrix)
                    out[i] = Gate(prior.qubits, matrix=product, name="fused")
                    continue
            if len(qubits) == 1 and last.get(qubits[0]) is not None:
                i = last[qubits[0]]
                prior = out[i]
                if isinstance(prior, Gate) and prior.matrix is not None and not prior.is_data:
                    if len(prior.qubits) == 2 and _is_last_on_both(last, prior, i):
                        position = prior.qubits.index(qubits[0])
                        eye = torch.eye(2, dtype=op.matrix.dtype)
                        pieces = [eye, eye]
                        pieces[position] = op.matrix
                        product = _matmul(torch.kron(pieces[0], pieces[1]), prior.matrix)
                        out[i] = Gate(prior.qubits, matrix=product, name=prior.name)
                        continue
        out.append(op)
        for q in _qubits(op):
            last[q] = len(out) - 1
    return [op for op in out if op is not None]


def _matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    dtype = torch.promote_types(a.dtype, b.dtype)
    return a.to(dtype) @ b.to(dtype)


def _is_last_on_both(last: dict[int, int], gate: Gate, index: int) -> bool:
    return all(last.get(q) == index for q in gate.qubits)


def _in_order(gate: Gate, qubits: tuple[int, ...]) -> torch.Tensor:
    """``gate``'s matrix written big-endian in ``qubits`` (same pair, maybe swapped)."""
    matrix = gate.matrix
    if gate.qubits == qubits:
        return matrix
    return matrix[_PERMUTE][:, _PERMUTE]
