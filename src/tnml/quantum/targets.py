"""Device targets: which qubit pairs a device can couple with a two-qubit gate.

A :class:`DeviceTarget` is an undirected coupling graph. :func:`resolve_target` turns what a
user passes to :func:`tnml.quantum.compile` into one: a name (``"line"``, ``"heavy-hex"``,
``"all-to-all"``), a Qiskit ``Target``, ``BackendV2`` or ``CouplingMap``, or a list of qubit
pairs. ``"heavy-hex"`` is the lattice of IBM's Eagle processors (127 qubits: rows of 14-15
qubits joined by bridge qubits, every qubit of degree at most 3), grown by rows when a
circuit needs more.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from numbers import Integral
from typing import Any

from tnml.exceptions import InvalidInputError
from tnml.quantum.circuit import check_index

__all__ = ["TARGET_NAMES", "DeviceTarget", "heavy_hex_target", "resolve_target"]

TARGET_NAMES = ("line", "heavy-hex", "all-to-all")

# The Eagle lattice: 7 rows; bridges join the rows at alternating columns.
_EAGLE_ROWS = 7
_ROW_LENGTH = 15


@dataclass(frozen=True)
class DeviceTarget:
    """An undirected coupling graph on ``num_qubits`` physical qubits.

    Attributes
    ----------
    name : str
    num_qubits : int
    edges : tuple of (int, int)
        Coupled pairs ``(a, b)`` with ``a < b``, sorted.
    """

    name: str
    num_qubits: int
    edges: tuple[tuple[int, int], ...]
    _adjacency: dict[int, tuple[int, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if isinstance(self.num_qubits, bool) or not isinstance(self.num_qubits, Integral):
            raise InvalidInputError(f"num_qubits must be an integer, got {self.num_qubits!r}")
        if self.num_qubits < 1:
            raise InvalidInputError(f"num_qubits must be >= 1, got {self.num_qubits}")
        pairs = [
            (check_index("a target qubit", a), check_index("a target qubit", b))
            for a, b in self.edges
        ]
        edges = sorted({(min(a, b), max(a, b)) for a, b in pairs})
        for a, b in edges:
            if a == b or not (0 <= a < self.num_qubits and 0 <= b < self.num_qubits):
                raise InvalidInputError(
                    f"target edge ({a}, {b}) must join two distinct qubits in "
                    f"[0, {self.num_qubits})"
                )
        object.__setattr__(self, "edges", tuple(edges))
        adjacency: dict[int, list[int]] = {q: [] for q in range(self.num_qubits)}
        for a, b in edges:
            adjacency[a].append(b)
            adjacency[b].append(a)
        self._adjacency.update({q: tuple(sorted(v)) for q, v in adjacency.items()})

    def neighbours(self, qubit: int) -> tuple[int, ...]:
        """Qubits coupled to ``qubit``."""
        return self._adjacency[qubit]

    def is_coupled(self, a: int, b: int) -> bool:
        """Whether a two-qubit gate may act on ``(a, b)``."""
        return b in self._adjacency.get(a, ())

    def distances(self, source: int) -> list[int]:
        """Hop distance from ``source`` to every qubit (``num_qubits + 1`` if unreachable)."""
        far = self.num_qubits + 1
        dist = [far] * self.num_qubits
        dist[source] = 0
        queue = deque([source])
        while queue:
            q = queue.popleft()
            for r in self._adjacency[q]:
                if dist[r] == far:
                    dist[r] = dist[q] + 1
                    queue.append(r)
        return dist

    def shortest_path(self, a: int, b: int) -> list[int]:
        """Qubits of a shortest path from ``a`` to ``b``, both included."""
        previous = {a: a}
        queue = deque([a])
        while queue and b not in previous:
            q = queue.popleft()
            for r in self._adjacency[q]:
                if r not in previous:
                    previous[r] = q
                    queue.append(r)
        if b not in previous:
            raise InvalidInputError(f"qubits {a} and {b} are not connected in target {self.name}")
        path = [b]
        while path[-1] != a:
            path.append(previous[path[-1]])
        return path[::-1]

    def find_path(self, length: int) -> list[int] | None:
        """A simple path of ``length`` qubits (neighbours coupled), or None if none is found.

        Depth-first search from every qubit of lowest degree first, preferring the neighbour
        with the fewest free neighbours (Warnsdorff's rule), with a bounded number of steps.
        """
        if length <= 1:
            return [0] if length == 1 and self.num_qubits else None
        starts = sorted(range(self.num_qubits), key=lambda q: (len(self._adjacency[q]), q))
        budget = [200_000]
        for start in starts:
            path = self._extend([start], {start}, length, budget)
            if path is not None:
                return path
            if budget[0] <= 0:
                break
        return None

    def _extend(
        self, path: list[int], used: set[int], length: int, budget: list[int]
    ) -> list[int] | None:
        if len(path) == length:
            return list(path)
        budget[0] -= 1
        if budget[0] <= 0:
            return None
        free = [r for r in self._adjacency[path[-1]] if r not in used]
        free.sort(key=lambda r: (sum(1 for s in self._adjacency[r] if s not in used), r))
        for r in free:
            path.append(r)
            used.add(r)
            found = self._extend(path, used, length, budget)
            if found is not None:
                return found
            path.pop()
            used.discard(r)
        return None

    def central_qubits(self) -> list[int]:
        """Qubits ordered by their total distance to all others (most central first)."""
        totals = [(sum(self.distances(q)), q) for q in range(self.num_qubits)]
        return [q for _, q in heapq.nsmallest(self.num_qubits, totals)]


def line_target(num_qubits: int) -> DeviceTarget:
    """``num_qubits`` qubits in a line."""
    return DeviceTarget("line", num_qubits, tuple((q, q + 1) for q in range(num_qubits - 1)))


def all_to_all_target(num_qubits: int) -> DeviceTarget:
    """Every pair coupled (trapped ions, or no constraint)."""
    pairs = tuple((a, b) for a in range(num_qubits) for b in range(a + 1, num_qubits))
    return DeviceTarget("all-to-all", num_qubits, pairs)


def heavy_hex_target(min_qubits: int = 127) -> DeviceTarget:
    """The heavy-hex lattice of IBM's Eagle processor (127 qubits), with more rows if needed.

    Rows of 15 qubits (the first missing its last column, the last its first) are joined by
    4 bridge qubits each, at columns 0, 4, 8, 12 below even rows and 2, 6, 10, 14 below odd
    ones. Qubits are numbered row by row, each row's bridges after it, as IBM numbers them.
    """
    if isinstance(min_qubits, bool) or not isinstance(min_qubits, Integral):
        raise InvalidInputError(f"min_qubits must be an integer, got {min_qubits!r}")
    rows = _EAGLE_ROWS
    while _heavy_hex_size(rows) < min_qubits:
        rows += 1
    edges: list[tuple[int, int]] = []
    index: dict[tuple[int, int], int] = {}
    count = 0
    for r in range(rows):
        columns = range(_ROW_LENGTH)
        if r == 0:
            columns = range(_ROW_LENGTH - 1)
        elif r == rows - 1:
            columns = range(1, _ROW_LENGTH)
        for c in columns:
            index[r, c] = count
            if (r, c - 1) in index:
                edges.append((index[r, c - 1], count))
            count += 1
        if r < rows - 1:
            bridge_columns = (0, 4, 8, 12) if r % 2 == 0 else (2, 6, 10, 14)
            for c in bridge_columns:
                index["bridge", r, c] = count  # type: ignore[index]
                edges.append((index[r, c], count))
                count += 1
        if r > 0:
            bridge_columns = (0, 4, 8, 12) if (r - 1) % 2 == 0 else (2, 6, 10, 14)
            for c in bridge_columns:
                edges.append((index["bridge", r - 1, c], index[r, c]))  # type: ignore[index]
    return DeviceTarget("heavy-hex", count, tuple(edges))


def _heavy_hex_size(rows: int) -> int:
    return rows * _ROW_LENGTH - 2 + 4 * (rows - 1)


def _from_pairs(name: str, pairs: Iterable[Any]) -> DeviceTarget:
    try:
        edges = [(a, b) for a, b in pairs]
    except (TypeError, ValueError) as err:
        raise InvalidInputError(f"target pairs must be (a, b) qubit indices: {err}") from err
    edges = [(check_index("a target qubit", a), check_index("a target qubit", b)) for a, b in edges]
    if not edges:
        raise InvalidInputError("target has no coupled pair")
    n = 1 + max(max(a, b) for a, b in edges)
    return DeviceTarget(name, n, tuple(edges))


def resolve_target(target: Any, num_qubits: int) -> DeviceTarget | None:
    """A :class:`DeviceTarget` for ``target``, large enough for ``num_qubits`` qubits.

    Parameters
    ----------
    target : None, str, DeviceTarget, Qiskit Target / BackendV2 / CouplingMap, or pairs
        ``None`` means no device (every pair coupled, no routing). Names: ``"line"``
        (``num_qubits`` in a line), ``"heavy-hex"`` (IBM Eagle, grown if needed),
        ``"all-to-all"``.
    num_qubits : int
        Qubits the circuit uses.

    Returns
    -------
    DeviceTarget or None

    Raises
    ------
    InvalidInputError
        An unknown name or object, or a device with fewer than ``num_qubits`` qubits.
    """
    if target is None:
        return None
    if isinstance(target, str):
        if target == "line":
            resolved = line_target(num_qubits)
        elif target == "heavy-hex":
            resolved = heavy_hex_target(max(num_qubits, 127))
        elif target == "all-to-all":
            resolved = all_to_all_target(num_qubits)
        else:
            raise InvalidInputError(
                f"target must be one of {', '.join(TARGET_NAMES)}, a Qiskit Target or backend, "
                f"or a list of coupled qubit pairs; got {target!r}"
            )
    elif isinstance(target, DeviceTarget):
        resolved = target
    elif hasattr(target, "target") and hasattr(target.target, "build_coupling_map"):
        resolved = _from_qiskit_target(getattr(target, "name", "backend"), target.target)
    elif hasattr(target, "build_coupling_map"):
        resolved = _from_qiskit_target("target", target)
    elif hasattr(target, "get_edges"):
        resolved = _from_pairs("coupling-map", target.get_edges())
    elif isinstance(target, (list, tuple)):
        resolved = _from_pairs("custom", target)
    else:
        raise InvalidInputError(
            f"target must be one of {', '.join(TARGET_NAMES)}, a Qiskit Target or backend, or "
            f"a list of coupled qubit pairs; got {type(target).__name__}"
        )
    if resolved.num_qubits < num_qubits:
        raise InvalidInputError(
            f"target {resolved.name} has {resolved.num_qubits} qubits; the circuit needs "
            f"{num_qubits}"
        )
    return resolved


def _from_qiskit_target(name: str, qiskit_target: Any) -> DeviceTarget:
    coupling = qiskit_target.build_coupling_map()
    if coupling is None:  # a target whose two-qubit gates act on every pair
        return all_to_all_target(int(qiskit_target.num_qubits))
    resolved = _from_pairs(str(name), coupling.get_edges())
    if resolved.num_qubits < qiskit_target.num_qubits:
        resolved = DeviceTarget(resolved.name, int(qiskit_target.num_qubits), resolved.edges)
    return resolved
