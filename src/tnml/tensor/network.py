"""General tensor networks: any graph of cores, each carrying some of the open modes.

Conventions
-----------
- A :class:`TensorNetwork` represents a tensor of shape ``shape`` (its *open modes*
  ``0 .. n_modes-1``). Node ``i`` carries the open modes ``modes[i]`` (possibly none: an
  internal node, such as a Tucker core or a tree's inner node) and one leg per edge touching
  it. ``ranks`` maps each edge ``(i, j)``, ``i < j``, to its rank; a rank-1 edge contributes
  nothing to the tensor but keeps its place, so a structure search can grow it.
- Core ``i`` has its open legs first, in the order of ``modes[i]``, then one leg per edge
  touching ``i``, in the sorted order of the edges (:meth:`TensorNetwork.node_edges`).
- Contraction goes through ``opt_einsum`` with the path found once per structure and kept
  (:func:`contraction_expression`), so repeated contractions of one structure (a fit, a
  search) pay for the path search once.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import opt_einsum
import torch
from torch import Tensor

from tnml.exceptions import InvalidInputError

__all__ = [
    "TensorNetwork",
    "contraction_expression",
    "network_equation",
]

Edge = tuple[int, int]


def _edge(i: int, j: int) -> Edge:
    return (i, j) if i < j else (j, i)


@dataclass(frozen=True)
class Structure:
    """The hashable shape of a network: open dims, modes per node, ranks per edge."""

    shape: tuple[int, ...]
    modes: tuple[tuple[int, ...], ...]
    ranks: tuple[tuple[Edge, int], ...]

    @property
    def n_nodes(self) -> int:
        return len(self.modes)

    def node_edges(self, node: int) -> tuple[Edge, ...]:
        return tuple(edge for edge, _ in self.ranks if node in edge)

    def core_shape(self, node: int) -> tuple[int, ...]:
        ranks = dict(self.ranks)
        return tuple(self.shape[m] for m in self.modes[node]) + tuple(
            ranks[e] for e in self.node_edges(node)
        )

    def einsum_symbols(self) -> tuple[Iterator[str], list[str], dict[Edge, str]]:
        """Einsum symbols for a contraction of this structure: an iterator of fresh symbols,
        one symbol per open mode and one per edge (both drawn from the iterator first)."""
        symbols = iter(opt_einsum.get_symbol(k) for k in itertools.count())
        mode_sym = [next(symbols) for _ in self.shape]
        edge_sym = {edge: next(symbols) for edge, _ in self.ranks}
        return symbols, mode_sym, edge_sym

    def node_legs(
        self, node: int, mode_sym: Sequence[str] | Mapping[int, str], edge_sym: Mapping[Edge, str]
    ) -> str:
        """The einsum term of ``node``'s core: its open modes, then its edges (its core's
        axis order, :meth:`core_shape`)."""
        legs = "".join(mode_sym[m] for m in self.modes[node])
        return legs + "".join(edge_sym[e] for e in self.node_edges(node))


def network_equation(
    structure: Structure,
    *,
    skip: int | None = None,
    with_target: bool = False,
    output_node: int | None = None,
    double: bool = False,
) -> tuple[str, list[tuple[int, ...]]]:
    """The einsum equation (and operand shapes) of one contraction of a network.

    Parameters
    ----------
    structure : Structure
    skip : int or None
        Leave this node's core out (an environment).
    with_target : bool
        Add the target tensor (all open modes) as the first operand.
    output_node : int or None
        The output is this node's legs (open modes, then edges); None: all open modes.
    double : bool
        Two copies of the network (without ``skip``) joined on the open modes; the output is
        the skipped node's edge legs of the first copy, then those of the second (its Gram
        matrix). Needs ``skip``.

    Returns
    -------
    (str, list of tuple of int)
        The equation and the shapes of its operands, in order.
    """
    symbols, mode_sym, edge_sym = structure.einsum_symbols()
    edge_sym2 = {edge: next(symbols) for edge, _ in structure.ranks} if double else {}
    terms: list[str] = []
    shapes: list[tuple[int, ...]] = []
    if with_target:
        terms.append("".join(mode_sym))
        shapes.append(structure.shape)
    nodes = [i for i in range(structure.n_nodes) if i != skip]
    for copy in (edge_sym, edge_sym2) if double else (edge_sym,):
        for i in nodes:
            terms.append(structure.node_legs(i, mode_sym, copy))
            shapes.append(structure.core_shape(i))
    if double:
        assert skip is not None
        out = "".join(edge_sym[e] for e in structure.node_edges(skip))
        out += "".join(edge_sym2[e] for e in structure.node_edges(skip))
    elif output_node is not None:
        out = structure.node_legs(output_node, mode_sym, edge_sym)
    else:
        out = "".join(mode_sym)
    return ",".join(terms) + "->" + out, shapes


@lru_cache(maxsize=4096)
def contraction_expression(
    structure: Structure,
    skip: int | None = None,
    with_target: bool = False,
    output_node: int | None = None,
    double: bool = False,
) -> opt_einsum.contract.ContractExpression:
    """The ``opt_einsum`` expression of :func:`network_equation`, path found once and kept.

    The path is ``opt_einsum``'s ``"auto-hq"`` choice; it is stored as ``expression.path``.
    """
    equation, shapes = network_equation(
        structure, skip=skip, with_target=with_target, output_node=output_node, double=double
    )
    path, _ = opt_einsum.contract_path(equation, *shapes, shapes=True, optimize="auto-hq")
    expression = opt_einsum.contract_expression(equation, *shapes, optimize=path)
    expression.path = path
    return expression


class TensorNetwork:
    """A tensor given by a graph of cores (see the module docstring for the conventions).

    Parameters
    ----------
    shape : sequence of int
        The dimensions of the open modes ``0 .. n_modes-1``.
    modes : sequence of sequences of int
        ``modes[i]``: the open modes node ``i`` carries; every mode exactly once overall.
    ranks : mapping (int, int) -> int
        Edge ranks (>= 1); pairs are node indices, in either order.
    cores : sequence of Tensor, optional
        ``cores[i]`` of shape ``core_shape(i)``; default: standard normal entries scaled so the
        dense tensor has entries of order one (``generator``, ``dtype``).

    Attributes
    ----------
    shape : tuple of int
    modes : tuple of tuple of int
    ranks : dict (int, int) -> int
        Edge ranks with ``i < j``, sorted.
    cores : list of Tensor

    Examples
    --------
    >>> net = TensorNetwork.ring((3, 4, 5), 2, generator=torch.Generator().manual_seed(0))
    >>> net.n_params, net.to_dense().shape
    (48, torch.Size([3, 4, 5]))
    """

    def __init__(
        self,
        shape: Sequence[int],
        modes: Sequence[Sequence[int]],
        ranks: Mapping[tuple[int, int], int],
        cores: Sequence[Tensor] | None = None,
        *,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        self.structure = _make_structure(shape, modes, ranks)
        if cores is None:
            cores = _random_cores(self.structure, generator, dtype)
        self.cores = _check_cores(self.structure, cores)

    # ---- constructors ----------------------------------------------------------------------

    @classmethod
    def fully_connected(
        cls,
        shape: Sequence[int],
        rank: int = 1,
        *,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> TensorNetwork:
        """One node per mode and an edge of rank ``rank`` between every pair (1: CP rank one)."""
        n = len(shape)
        ranks = {(i, j): rank for i in range(n) for j in range(i + 1, n)}
        return cls(shape, [(i,) for i in range(n)], ranks, generator=generator, dtype=dtype)

    @classmethod
    def chain(
        cls,
        shape: Sequence[int],
        ranks: int | Sequence[int],
        *,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> TensorNetwork:
        """A tensor train (open chain); ``ranks`` one per bond or one for all."""
        n = len(shape)
        bond = _per_edge("ranks", ranks, n - 1)
        edges = {(i, i + 1): bond[i] for i in range(n - 1)}
        return cls(shape, [(i,) for i in range(n)], edges, generator=generator, dtype=dtype)

    @classmethod
    def ring(
        cls,
        shape: Sequence[int],
        ranks: int | Sequence[int],
        *,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> TensorNetwork:
        """A tensor ring; ``ranks[i]`` joins node ``i`` and ``i + 1`` (the last closes the ring)."""
        n = len(shape)
        bond = _per_edge("ranks", ranks, n)
        edges = {_edge(i, (i + 1) % n): bond[i] for i in range(n)}
        return cls(shape, [(i,) for i in range(n)], edges, generator=generator, dtype=dtype)

    @classmethod
    def tucker(
        cls,
        shape: Sequence[int],
        ranks: int | Sequence[int],
        *,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> TensorNetwork:
        """A Tucker decomposition: factor nodes ``0 .. n-1``, the core is node ``n`` (no mode)."""
        n = len(shape)
        bond = _per_edge("ranks", ranks, n)
        edges = {(i, n): bond[i] for i in range(n)}
        return cls(shape, [(i,) for i in range(n)] + [()], edges, generator=generator, dtype=dtype)

    @classmethod
    def from_mps(cls, mps: object) -> TensorNetwork:
        """The chain of a :class:`tnml.tensor.MPS` (its ``exp(log_scale)`` put in core 0), or
        of a list of MPS cores ``(D_i, d_i, D_{i+1})`` with boundary bonds 1.

        Each core is permuted to this class's leg order (open leg first).
        """
        cores = list(getattr(mps, "cores", mps))  # type: ignore[call-overload]
        if hasattr(mps, "log_scale"):
            cores[0] = cores[0] * mps.log_scale.exp().to(cores[0].dtype)  # type: ignore[attr-defined]
        n = len(cores)
        if n < 2:
            raise InvalidInputError("an MPS with one site is a vector, not a network")
        shape = [int(c.shape[1]) for c in cores]
        ranks = {(i, i + 1): int(cores[i].shape[2]) for i in range(n - 1)}
        mine: list[Tensor] = []
        for i, core in enumerate(cores):
            legs = core.permute(1, 0, 2)  # (d, left, right)
            if i == 0:
                legs = legs[:, 0, :]
            if i == n - 1:
                legs = legs[..., 0]
            mine.append(legs)
        return cls(shape, [(i,) for i in range(n)], ranks, mine)

    @classmethod
    def from_ttn(cls, ttn: object) -> TensorNetwork:
        """The tree of a :class:`tnml.tensor.TTN` with root output dimension 1 (a state); its
        ``exp(log_scale)`` goes into the root.

        Leaves are the open modes; each node tensor ``(D_left, D_right, D_parent)`` becomes a
        node with the leaf children as open legs. Node numbers follow the layers, bottom up.
        """
        layout = ttn.layout  # type: ignore[attr-defined]
        tensors = [list(layer) for layer in ttn.tensors]  # type: ignore[attr-defined]
        scale = ttn.log_scale.exp()  # type: ignore[attr-defined]
        tensors[-1][0] = tensors[-1][0] * scale.to(tensors[-1][0].dtype)
        pairs = layout.pairs  # type: ignore[attr-defined]
        carried = layout.carried  # type: ignore[attr-defined]
        n_leaves = int(layout.n_leaves)  # type: ignore[attr-defined]
        # each entry of a level is ("leaf", mode) or ("node", node index)
        level: list[tuple[str, int]] = [("leaf", m) for m in range(n_leaves)]
        shape = [0] * n_leaves
        modes: list[tuple[int, ...]] = []
        ranks: dict[Edge, int] = {}
        children: list[list[tuple[str, int]]] = []
        flat: list[Tensor] = []
        for layer, (layer_pairs, layer_carried) in enumerate(zip(pairs, carried, strict=True)):
            nxt: list[tuple[str, int]] = []
            for k, (a, b) in enumerate(layer_pairs):
                t = tensors[layer][k]
                node = len(modes)
                kids = [level[a], level[b]]
                node_modes: list[int] = []
                for side, (kind, idx) in enumerate(kids):
                    if kind == "leaf":
                        shape[idx] = int(t.shape[side])
                        node_modes.append(idx)
                    else:
                        ranks[(idx, node)] = int(t.shape[side])
                modes.append(tuple(node_modes))
                children.append(kids)
                flat.append(t)
                nxt.append(("node", node))
            nxt += [level[c] for c in layer_carried]
            level = nxt
        root = len(modes) - 1
        if int(flat[root].shape[2]) != 1:
            raise InvalidInputError(
                f"the root's output dimension must be 1 (a state), got {int(flat[root].shape[2])}"
            )
        structure = _make_structure(shape, modes, ranks)
        cores: list[Tensor] = []
        for node, (t, kids) in enumerate(zip(flat, children, strict=True)):
            # the tensor's legs: left child, right child, parent; wanted: open legs, then edges
            leg_of: dict[object, int] = {}
            for side, (kind, idx) in enumerate(kids):
                leg_of[("leaf", idx) if kind == "leaf" else _edge(idx, node)] = side
            parent = [e for e in structure.node_edges(node) if e[0] == node]
            if parent:
                leg_of[parent[0]] = 2
            order = [leg_of[("leaf", m)] for m in modes[node]]
            order += [leg_of[e] for e in structure.node_edges(node)]
            if node == root:
                t = t[..., 0]
            cores.append(t.permute(*order))
        return cls(shape, modes, dict(structure.ranks), cores)

    # ---- properties ------------------------------------------------------------------------

    @property
    def shape(self) -> tuple[int, ...]:
        return self.structure.shape

    @property
    def modes(self) -> tuple[tuple[int, ...], ...]:
        return self.structure.modes

    @property
    def ranks(self) -> dict[Edge, int]:
        return dict(self.structure.ranks)

    @property
    def edges(self) -> dict[Edge, int]:
        """The edges of rank > 1 (a rank-1 edge joins nothing): ``{(i, j): rank}``."""
        return {e: r for e, r in self.structure.ranks if r > 1}

    @property
    def n_nodes(self) -> int:
        return self.structure.n_nodes

    @property
    def n_params(self) -> int:
        """Entries of all cores, rank-1 legs included (they cost nothing extra)."""
        return sum(math.prod(self.structure.core_shape(i)) for i in range(self.n_nodes))

    @property
    def dtype(self) -> torch.dtype:
        return self.cores[0].dtype

    def node_edges(self, node: int) -> tuple[Edge, ...]:
        """The edges touching ``node``, in the order of its core's edge legs."""
        return self.structure.node_edges(node)

    def core_shape(self, node: int) -> tuple[int, ...]:
        return self.structure.core_shape(node)

    def __repr__(self) -> str:
        edges = ", ".join(f"{i}-{j}:{r}" for (i, j), r in self.edges.items())
        return (
            f"TensorNetwork(shape={self.shape}, modes={self.modes}, edges={{{edges}}}, "
            f"n_params={self.n_params})"
        )

    # ---- contraction -----------------------------------------------------------------------

    def to_dense(self) -> Tensor:
        """The full tensor, shape ``shape``."""
        return contraction_expression(self.structure)(*self.cores, backend="torch")

    def contraction_path(self) -> list[tuple[int, ...]]:
        """The pairwise contraction order ``to_dense`` uses (``opt_einsum`` path)."""
        return list(contraction_expression(self.structure).path)

    def copy(self) -> TensorNetwork:
        return TensorNetwork(self.shape, self.modes, self.ranks, [c.clone() for c in self.cores])

    def to(self, dtype: torch.dtype) -> TensorNetwork:
        return TensorNetwork(self.shape, self.modes, self.ranks, [c.to(dtype) for c in self.cores])

    # ---- structural edits ------------------------------------------------------------------

    def with_rank(
        self,
        edge: tuple[int, int],
        rank: int,
        *,
        noise: float = 1e-2,
        generator: torch.Generator | None = None,
    ) -> TensorNetwork:
        """A copy with edge ``edge`` at ``rank``; the tensor it represents is kept or nearly so.

        Growing pads both cores' new slices with normal noise of relative scale ``noise``
        (so the tensor moves by ``O(noise**2)``); shrinking keeps the leading slices after an
        SVD of the two cores joined over the edge (exact where the rest is an isometry).
        """
        e = _edge(*edge)
        ranks = self.ranks
        if e not in ranks:
            raise InvalidInputError(f"edge must be one of {sorted(ranks)}, got {edge}")
        old = ranks[e]
        ranks[e] = int(rank)
        structure = _make_structure(self.shape, self.modes, ranks)
        if rank == old:
            return self.copy()
        if rank > old:
            cores = list(self.cores)
            for node in e:
                axis = len(self.modes[node]) + self.node_edges(node).index(e)
                core = cores[node]
                pad_shape = list(core.shape)
                pad_shape[axis] = rank - old
                # relative to the core's entries; absolute when the core is zero
                scale = noise * (float(core.norm()) / math.sqrt(max(core.numel(), 1)) or 1.0)
                pad = torch.randn(pad_shape, generator=generator, dtype=core.dtype) * scale
                cores[node] = torch.cat([core, pad.to(core.device)], dim=axis)
            return TensorNetwork(self.shape, self.modes, ranks, cores)
        return TensorNetwork(self.shape, self.modes, ranks, _shrink(self, structure, e, rank))

    def without_unit_edges(self) -> TensorNetwork:
        """The same tensor with every rank-1 edge removed (its legs squeezed)."""
        keep = {e: r for e, r in self.ranks.items() if r > 1}
        cores = []
        for node, core in enumerate(self.cores):
            n_open = len(self.modes[node])
            drop = [n_open + k for k, e in enumerate(self.node_edges(node)) if self.ranks[e] == 1]
            cores.append(core.reshape([s for a, s in enumerate(core.shape) if a not in drop]))
        return TensorNetwork(self.shape, self.modes, keep, cores)

    def split_node(
        self,
        node: int,
        moved_modes: Sequence[int],
        moved_edges: Sequence[tuple[int, int]],
        rank: int,
    ) -> TensorNetwork:
        """A copy where ``node``'s legs ``moved_modes`` and ``moved_edges`` go to a new node.

        The core is cut by a truncated SVD between the kept and the moved legs at ``rank``
        (exact when its rank across that cut is at most ``rank``). The new node is the last; it
        is joined to ``node`` at ``rank`` and by rank-1 edges to every other node, so a search
        can grow them.
        """
        moved_modes = [int(m) for m in moved_modes]
        moved_edges = [_edge(*e) for e in moved_edges]
        own = self.node_edges(node)
        if not set(moved_modes) <= set(self.modes[node]) or not set(moved_edges) <= set(own):
            raise InvalidInputError(f"the moved legs must belong to node {node}")
        new = self.n_nodes
        legs = [("m", m) for m in self.modes[node]] + [("e", e) for e in own]
        moved = {("m", m) for m in moved_modes} | {("e", e) for e in moved_edges}
        kept_axes = [k for k, leg in enumerate(legs) if leg not in moved]
        moved_axes = [k for k, leg in enumerate(legs) if leg in moved]
        core = self.cores[node].permute(*kept_axes, *moved_axes)
        kept_shape = core.shape[: len(kept_axes)]
        moved_shape = core.shape[len(kept_axes) :]
        u, s, vh = torch.linalg.svd(core.reshape(math.prod(kept_shape), -1), full_matrices=False)
        k = min(rank, s.numel())
        root = s[:k].sqrt()
        left = (u[:, :k] * root).reshape(*kept_shape, k)
        right = (vh[:k].T * root).reshape(*moved_shape, k)
        # the new structure: moved edges re-attached to the new node
        ranks: dict[Edge, int] = {}
        for e, r in self.ranks.items():
            if e in moved_edges:
                other = e[0] if e[1] == node else e[1]
                ranks[_edge(other, new)] = r
            else:
                ranks[e] = r
        ranks[(node, new)] = k
        for other in range(self.n_nodes):
            if other != node:
                ranks.setdefault(_edge(other, new), 1)
        modes = [tuple(m for m in ms if m not in moved_modes) for ms in self.modes]
        modes.append(tuple(moved_modes))
        structure = _make_structure(self.shape, modes, ranks)
        kept_legs = [legs[a] for a in kept_axes] + [("e", (node, new))]
        moved_legs = [
            ("e", _edge(e[0] if e[1] == node else e[1], new)) if kind == "e" else (kind, e)
            for kind, e in (legs[a] for a in moved_axes)
        ] + [("e", (node, new))]
        relabel = {e: _edge(e[0] if e[1] == node else e[1], new) for e in moved_edges}
        cores = []
        for j, core in enumerate(self.cores):
            if j == node:
                cores.append(_order_legs(structure, node, left, kept_legs))
                continue
            labels = [("m", m) for m in self.modes[j]]
            labels += [("e", relabel.get(e, e)) for e in self.node_edges(j)]
            cores.append(_order_legs(structure, j, core, labels))
        cores.append(_order_legs(structure, new, right, moved_legs))
        return TensorNetwork(self.shape, modes, ranks, cores)

    # ---- serialisation ---------------------------------------------------------------------

    def spec(self) -> dict[str, object]:
        """JSON-safe structure: ``{"shape", "modes", "edges": [[i, j, rank], ...]}``."""
        return {
            "shape": list(self.shape),
            "modes": [list(m) for m in self.modes],
            "edges": [[i, j, r] for (i, j), r in self.ranks.items()],
        }

    @classmethod
    def from_spec(cls, spec: Mapping[str, object], cores: Sequence[Tensor]) -> TensorNetwork:
        edges = {(int(i), int(j)): int(r) for i, j, r in spec["edges"]}  # type: ignore[union-attr]
        return cls(spec["shape"], spec["modes"], edges, cores)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# validation and helpers
# --------------------------------------------------------------------------------------------


def _per_edge(name: str, value: int | Sequence[int], count: int) -> list[int]:
    if isinstance(value, (int, np.integer)):
        return [int(value)] * count
    values = [int(v) for v in value]
    if len(values) != count:
        raise InvalidInputError(f"{name} must have {count} entries, got {len(values)}")
    return values


def _make_structure(
    shape: Iterable[int], modes: Iterable[Iterable[int]], ranks: Mapping[tuple[int, int], int]
) -> Structure:
    try:
        dims = tuple(int(s) for s in shape)
        node_modes = tuple(tuple(int(m) for m in node) for node in modes)
    except (TypeError, ValueError):
        raise InvalidInputError("shape must be ints and modes a list of int lists") from None
    if not dims or any(s < 1 for s in dims):
        raise InvalidInputError(f"shape must be a non-empty list of positive ints, got {dims}")
    used = sorted(m for node in node_modes for m in node)
    if used != list(range(len(dims))):
        raise InvalidInputError(
            f"modes must place each of the {len(dims)} open modes on exactly one node, "
            f"got {[list(m) for m in node_modes]}"
        )
    n = len(node_modes)
    edges: dict[Edge, int] = {}
    for pair, rank in ranks.items():
        i, j = (int(p) for p in pair)
        if not (0 <= i < n and 0 <= j < n) or i == j:
            raise InvalidInputError(f"edge ({i}, {j}) must join two different nodes of 0..{n - 1}")
        if _edge(i, j) in edges:
            raise InvalidInputError(f"edge ({i}, {j}) is given twice")
        if int(rank) < 1:
            raise InvalidInputError(f"the rank of edge ({i}, {j}) must be >= 1, got {rank}")
        edges[_edge(i, j)] = int(rank)
    return Structure(dims, node_modes, tuple(sorted(edges.items())))


def _random_cores(
    structure: Structure, generator: torch.Generator | None, dtype: torch.dtype
) -> list[Tensor]:
    cores = []
    for node in range(structure.n_nodes):
        shape = structure.core_shape(node)
        # each dense entry sums prod(ranks) products of unit-variance entries: scale them down
        bonds = math.prod(shape[len(structure.modes[node]) :])
        cores.append(torch.randn(shape, generator=generator, dtype=dtype) / math.sqrt(bonds))
    return cores


def _check_cores(structure: Structure, cores: Sequence[Tensor]) -> list[Tensor]:
    cores = list(cores)
    if len(cores) != structure.n_nodes:
        raise InvalidInputError(f"cores must have {structure.n_nodes} entries, got {len(cores)}")
    for node, core in enumerate(cores):
        if not isinstance(core, Tensor):
            raise InvalidInputError(f"cores[{node}] must be a torch.Tensor, got {type(core)}")
        if tuple(core.shape) != structure.core_shape(node):
            raise InvalidInputError(
                f"cores[{node}] must have shape {structure.core_shape(node)}, "
                f"got {tuple(core.shape)}"
            )
        if core.dtype != cores[0].dtype:
            raise InvalidInputError("cores must share one dtype")
    return cores


def _order_legs(
    structure: Structure, node: int, core: Tensor, legs: list[tuple[str, object]]
) -> Tensor:
    """``core`` (legs labelled ``legs``) permuted to the node's leg order, unit legs added."""
    wanted = [("m", m) for m in structure.modes[node]] + [
        ("e", e) for e in structure.node_edges(node)
    ]
    present = [leg for leg in wanted if leg in legs]
    core = core.permute(*[legs.index(leg) for leg in present])
    return core.reshape(structure.core_shape(node))


def _shrink(net: TensorNetwork, structure: Structure, edge: Edge, rank: int) -> list[Tensor]:
    """Cores with ``edge`` cut to ``rank`` by an SVD of its two cores joined over it."""
    i, j = edge
    cores = list(net.cores)
    mats = []
    for node in (i, j):
        axis = len(net.modes[node]) + net.node_edges(node).index(edge)
        core = cores[node].movedim(axis, -1)
        mats.append((core.shape[:-1], core.reshape(-1, core.shape[-1]), axis))
    (shape_i, a, axis_i), (shape_j, b, axis_j) = mats
    # a @ b.T = (q_a r_a)(q_b r_b).T: SVD of the small middle r_a r_b.T
    q_a, r_a = torch.linalg.qr(a)
    q_b, r_b = torch.linalg.qr(b)
    u, s, vh = torch.linalg.svd(r_a @ r_b.T, full_matrices=False)
    root = s[:rank].sqrt()
    new_a = (q_a @ u[:, :rank]) * root
    new_b = (q_b @ vh[:rank].T) * root
    if new_a.shape[1] < rank:  # the joined cores have lower rank than asked: pad with zeros
        new_a = torch.nn.functional.pad(new_a, (0, rank - new_a.shape[1]))
        new_b = torch.nn.functional.pad(new_b, (0, rank - new_b.shape[1]))
    cores[i] = new_a.reshape(*shape_i, rank).movedim(-1, axis_i)
    cores[j] = new_b.reshape(*shape_j, rank).movedim(-1, axis_j)
    return cores
