"""Binary tree layouts over ``N`` leaves (see :mod:`tnml.tensor.ttn` for the conventions):
:class:`TreeLayout`, the 1D (balanced pairing) and 2D (square patches) layouts, node references.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

from torch import Tensor

from tnml.exceptions import InvalidInputError

__all__ = ["NodeGroup", "NodeRef", "TreeLayout", "tree_layout_1d", "tree_layout_2d"]

#: A tensor node (layer, k) or a leaf (int).
NodeRef = int | tuple[int, int]
#: Node tensors of one layer that share a shape, stacked: (node indices k, tensor (K, Da, Db, Dp)).
NodeGroup = tuple[tuple[int, ...], Tensor]


# --------------------------------------------------------------------------------------------
# layouts
# --------------------------------------------------------------------------------------------


def _as_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"{name} must be an int, got {value!r}")
    return value


@dataclass(frozen=True)
class TreeLayout:
    """The shape of a binary tree over ``n_leaves`` leaves, layer by layer.

    Parameters
    ----------
    n_leaves : int
        Number of leaves (sites) ``N >= 2``.
    pairs : sequence of sequences of (int, int)
        ``pairs[l][k] = (i, j)``: layer ``l`` makes node ``(l, k)`` from entries ``i`` (left)
        and ``j`` (right) of level ``l`` (level 0 = leaves ``0 .. N-1``; level ``l + 1`` = the
        nodes of layer ``l`` then its carried entries).
    carried : sequence of sequences of int
        ``carried[l]``: entries of level ``l`` moved up unchanged by layer ``l``. Together
        with ``pairs[l]`` they must use every entry of level ``l`` exactly once, and the last
        layer must leave a single node (the root).
    grid : (int, int) or None, default=None
        ``(height, width)`` for image layouts (leaf index ``row * width + col``);
        informational.

    Attributes
    ----------
    depth : int
        Number of layers.
    layer_sizes : tuple of int
        Number of nodes (tensors) made by each layer.
    root : (int, int)
        ``(depth - 1, 0)``.

    Raises
    ------
    InvalidInputError
        Malformed pairs or carried entries (the message names the layer and entry).

    Examples
    --------
    >>> layout = tree_layout_1d(5)
    >>> layout.pairs
    (((0, 1), (2, 3)), ((0, 1),), ((0, 1),))
    >>> layout.carried
    ((4,), (2,), ())
    >>> layout.leaves_below((1, 0))
    (0, 1, 2, 3)
    """

    n_leaves: int
    pairs: tuple[tuple[tuple[int, int], ...], ...]
    carried: tuple[tuple[int, ...], ...]
    grid: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        n = _as_int("n_leaves", self.n_leaves)
        if n < 2:
            raise InvalidInputError(f"n_leaves must be >= 2 (a tree needs two leaves), got {n}")
        if isinstance(self.pairs, (str, bytes)) or not isinstance(self.pairs, Sequence):
            raise InvalidInputError("pairs must be a sequence (one entry per layer)")
        if isinstance(self.carried, (str, bytes)) or not isinstance(self.carried, Sequence):
            raise InvalidInputError("carried must be a sequence (one entry per layer)")
        if len(self.pairs) != len(self.carried):
            raise InvalidInputError(
                f"pairs and carried must have one entry per layer, got {len(self.pairs)} and "
                f"{len(self.carried)}"
            )
        pairs: list[tuple[tuple[int, int], ...]] = []
        carried: list[tuple[int, ...]] = []
        count = n
        for layer, (lp, lc) in enumerate(zip(self.pairs, self.carried, strict=True)):
            try:
                layer_pairs = tuple((int(i), int(j)) for i, j in lp)
                layer_carried = tuple(int(i) for i in lc)
            except (TypeError, ValueError):
                raise InvalidInputError(
                    f"pairs[{layer}] must hold (int, int) pairs and carried[{layer}] ints"
                ) from None
            if not layer_pairs:
                raise InvalidInputError(f"pairs[{layer}] must make at least one node")
            used = [i for p in layer_pairs for i in p] + list(layer_carried)
            if sorted(used) != list(range(count)):
                raise InvalidInputError(
                    f"pairs[{layer}] and carried[{layer}] must use each of the {count} entries "
                    f"of level {layer} exactly once, got {sorted(used)}"
                )
            pairs.append(layer_pairs)
            carried.append(layer_carried)
            count = len(layer_pairs) + len(layer_carried)
        if count != 1:
            raise InvalidInputError(
                f"the layers must end in a single root node, but the last level has {count} entries"
            )
        grid = self.grid
        if grid is not None:
            if (
                not isinstance(grid, Sequence)
                or len(grid) != 2
                or any(isinstance(g, bool) or not isinstance(g, int) for g in grid)
                or grid[0] * grid[1] != n
            ):
                raise InvalidInputError(
                    f"grid must be None or (height, width) with height * width = n_leaves={n}, "
                    f"got {grid!r}"
                )
            grid = (int(grid[0]), int(grid[1]))
        object.__setattr__(self, "n_leaves", n)
        object.__setattr__(self, "pairs", tuple(pairs))
        object.__setattr__(self, "carried", tuple(carried))
        object.__setattr__(self, "grid", grid)

    # ---- structure -------------------------------------------------------------------------

    @property
    def depth(self) -> int:
        """Number of layers."""
        return len(self.pairs)

    @property
    def layer_sizes(self) -> tuple[int, ...]:
        """Number of tensor nodes made by each layer."""
        return tuple(len(p) for p in self.pairs)

    @property
    def n_nodes(self) -> int:
        """Total number of tensor nodes (``N - 1`` for a binary tree)."""
        return sum(self.layer_sizes)

    @property
    def root(self) -> tuple[int, int]:
        """The root node ``(depth - 1, 0)``."""
        return (self.depth - 1, 0)

    @property
    def nodes(self) -> tuple[tuple[int, int], ...]:
        """All tensor nodes ``(layer, k)``, bottom-up (layer by layer)."""
        return tuple((layer, k) for layer, size in enumerate(self.layer_sizes) for k in range(size))

    @functools.cached_property
    def levels(self) -> tuple[tuple[NodeRef, ...], ...]:
        """``levels[l]``: the node references listed at level ``l`` (``depth + 1`` levels)."""
        out: list[tuple[NodeRef, ...]] = [tuple(range(self.n_leaves))]
        for layer, (lp, lc) in enumerate(zip(self.pairs, self.carried, strict=True)):
            prev = out[-1]
            out.append(tuple((layer, k) for k in range(len(lp))) + tuple(prev[i] for i in lc))
        return tuple(out)

    @functools.cached_property
    def _parents(self) -> dict[NodeRef, tuple[tuple[int, int], int]]:
        parents: dict[NodeRef, tuple[tuple[int, int], int]] = {}
        for layer, lp in enumerate(self.pairs):
            level = self.levels[layer]
            for k, (i, j) in enumerate(lp):
                parents[level[i]] = ((layer, k), 0)
                parents[level[j]] = ((layer, k), 1)
        return parents

    def check_node(self, node: object, *, allow_leaf: bool = False, name: str = "node") -> NodeRef:
        """Return ``node`` as a valid reference (int leaf or ``(layer, k)``), else raise."""
        if allow_leaf and isinstance(node, int) and not isinstance(node, bool):
            if not 0 <= node < self.n_leaves:
                raise InvalidInputError(
                    f"{name} must be a leaf in [0, {self.n_leaves}) or a node (layer, k), "
                    f"got {node}"
                )
            return node
        if (
            isinstance(node, Sequence)
            and not isinstance(node, str)
            and len(node) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in node)
        ):
            layer, k = int(node[0]), int(node[1])
            if 0 <= layer < self.depth and 0 <= k < len(self.pairs[layer]):
                return (layer, k)
        what = "a leaf index or a node (layer, k)" if allow_leaf else "a node (layer, k)"
        raise InvalidInputError(
            f"{name} must be {what} of this layout (layer sizes {self.layer_sizes}), got {node!r}"
        )

    def children(self, node: tuple[int, int]) -> tuple[NodeRef, NodeRef]:
        """The (left, right) children of a tensor node: ints for leaves, tuples for nodes."""
        layer, k = self.check_node(node)  # type: ignore[misc]
        i, j = self.pairs[layer][k]
        level = self.levels[layer]
        return level[i], level[j]

    def parent(self, ref: NodeRef) -> tuple[tuple[int, int], int] | None:
        """``((layer, k), side)`` of the node above ``ref`` (side 0: left child), or None
        for the root."""
        ref = self.check_node(ref, allow_leaf=True, name="ref")
        return self._parents.get(ref)

    @functools.cached_property
    def _leaves(self) -> dict[NodeRef, tuple[int, ...]]:
        below: dict[NodeRef, tuple[int, ...]] = {i: (i,) for i in range(self.n_leaves)}
        for node in self.nodes:
            a, b = self.children(node)
            below[node] = below[a] + below[b]
        return below

    def leaves_below(self, ref: NodeRef) -> tuple[int, ...]:
        """Leaves in the subtree of ``ref``, in contraction order (left subtree first)."""
        return self._leaves[self.check_node(ref, allow_leaf=True, name="ref")]

    @property
    def leaf_order(self) -> tuple[int, ...]:
        """All leaves in contraction order (``leaves_below(root)``)."""
        return self.leaves_below(self.root)

    def path_from_root(self, ref: NodeRef) -> list[tuple[tuple[int, int], int]]:
        """``[(node, side), ...]`` from the root down to the parent of ``ref``: at each step,
        ``side`` says which child of ``node`` leads towards ``ref``."""
        ref = self.check_node(ref, allow_leaf=True, name="ref")
        path = []
        up = self._parents.get(ref)
        while up is not None:
            path.append(up)
            up = self._parents.get(up[0])
        return path[::-1]


def tree_layout_1d(n: int) -> TreeLayout:
    """Binary tree over a chain: layer 0 pairs leaves 0-1, 2-3, ...; each layer pairs the
    nodes of the previous one the same way; an odd one out (the last) is carried up.

    Parameters
    ----------
    n : int
        Number of leaves, ``>= 2``.

    Returns
    -------
    TreeLayout
        Depth ``ceil(log2 n)``; contraction order equals leaf order.
    """
    n = _as_int("n", n)
    if n < 2:
        raise InvalidInputError(f"n must be >= 2 (a tree needs two leaves), got {n}")
    pairs, carried = [], []
    count = n
    while count > 1:
        pairs.append(tuple((2 * i, 2 * i + 1) for i in range(count // 2)))
        carried.append((count - 1,) if count % 2 else ())
        count = (count + 1) // 2
    return TreeLayout(n, tuple(pairs), tuple(carried))


def tree_layout_2d(height: int, width: int) -> TreeLayout:
    """Binary tree over an image (leaf ``row * width + col``): merge neighbouring patches
    horizontally, then vertically, alternately, so nodes cover 1x2, 2x2, 2x4, 4x4, ...
    patches. With an odd number of patch columns (rows) the last column (row) is carried up;
    once a single column (row) is left only vertical (horizontal) merges remain.

    Parameters
    ----------
    height, width : int
        Image size, ``>= 1`` each with ``height * width >= 2``.

    Returns
    -------
    TreeLayout
        With ``grid = (height, width)``. Level node lists are ordered row-major over the patch
        grid (new nodes first, then carried patches).
    """
    height = _as_int("height", height)
    width = _as_int("width", width)
    if height < 1 or width < 1 or height * width < 2:
        raise InvalidInputError(
            f"height and width must be >= 1 with height * width >= 2, got ({height}, {width})"
        )
    grid = [[r * width + c for c in range(width)] for r in range(height)]
    horizontal = True
    pairs, carried = [], []
    while len(grid) * len(grid[0]) > 1:
        rows, cols = len(grid), len(grid[0])
        if cols == 1:
            horizontal = False
        elif rows == 1:
            horizontal = True
        cells: list[list[tuple[str, object]]] = []
        if horizontal:
            for r in range(rows):
                row = [("pair", (grid[r][2 * j], grid[r][2 * j + 1])) for j in range(cols // 2)]
                if cols % 2:
                    row.append(("carry", grid[r][-1]))
                cells.append(row)
        else:
            for i in range(rows // 2):
                cells.append([("pair", (grid[2 * i][c], grid[2 * i + 1][c])) for c in range(cols)])
            if rows % 2:
                cells.append([("carry", grid[-1][c]) for c in range(cols)])
        layer_pairs = [v for row in cells for kind, v in row if kind == "pair"]
        layer_carried = [v for row in cells for kind, v in row if kind == "carry"]
        n_pairs = len(layer_pairs)
        counters = {"pair": 0, "carry": n_pairs}
        new_grid = []
        for row in cells:
            new_row = []
            for kind, _ in row:
                new_row.append(counters[kind])
                counters[kind] += 1
            new_grid.append(new_row)
        pairs.append(tuple(layer_pairs))  # type: ignore[arg-type]
        carried.append(tuple(layer_carried))  # type: ignore[arg-type]
        grid = new_grid
        horizontal = not horizontal
    return TreeLayout(height * width, tuple(pairs), tuple(carried), grid=(height, width))  # type: ignore[arg-type]
