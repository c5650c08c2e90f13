"""Tree tensor networks: binary tree layouts, the :class:`TTN` container and its algebra.

Conventions
-----------
- Layout. A :class:`TreeLayout` describes a binary tree over ``N`` leaves (sites) by layers.
  Level 0 is the list of leaves ``0 .. N-1``. Layer ``l`` pairs entries of level ``l``:
  ``pairs[l][k] = (i, j)`` makes a new node from entries ``i`` (left child) and ``j`` (right
  child) of level ``l``; the entries listed in ``carried[l]`` (an odd one out) move up
  unchanged. Level ``l + 1`` lists the new nodes ``k = 0 .. K_l - 1`` first, then the carried
  entries in the order of ``carried[l]``. The last layer makes a single node, the root.
- Node references. An int ``i`` is leaf ``i``; a tuple ``(layer, k)`` is the node made by
  ``pairs[layer][k]``. Every node has one tensor; leaves have none.
- A node tensor has shape ``(D_left_child, D_right_child, D_parent)``. A child that is a leaf
  contributes its physical dimension ``d``. The root's ``D_parent`` is the "output" dimension:
  1 for a state, the number of labels for a classifier.
- A :class:`TTN` represents ``exp(log_scale) * contraction(tensors)``; ``log_scale`` is a real
  0-dim tensor. Functions that could overflow (norms, product-state contraction) renormalise
  every intermediate and accumulate logs, so float32 stays finite for thousands of leaves.
- Canonical form. ``ttn.is_canonical = True`` asserts that every non-root tensor is an
  isometry towards the root (``sum_{a,b} conj(T[a,b,p]) T[a,b,q] = delta_{pq}``) and that the
  root has unit Frobenius norm (or is zero), so the 2-norm of the state is ``exp(log_scale)``.
  Functions that establish it set the flag; functions that break it clear it. If you replace
  tensors by hand, set ``is_canonical = False``.
- The algebra is module-level functions (``ttn_*`` and the ``*_tree_*`` functions that work
  on stacked node groups, for models whose parameters are stacked); :class:`TTN` methods are
  thin wrappers with the same docstrings. Operations return a new :class:`TTN` (sharing
  unchanged tensors, which are never modified in place). Every QR/SVD goes through
  :func:`tnml.tensor.decomp.split_tensor`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from tnml.exceptions import InvalidInputError
from tnml.tensor._util import _as_log_scale, _doc_from, _safe_norm, _tiny
from tnml.tensor.decomp import check_truncation_options, split_tensor
from tnml.tensor.entropy import check_entropy_kind, schmidt_entropy

__all__ = [
    "TTN",
    "NodeGroup",
    "TreeLayout",
    "contract_tree_product_states",
    "contract_ttn_product_states",
    "group_node_tensors",
    "move_centre_down",
    "move_centre_up",
    "random_ttn",
    "tree_layout_1d",
    "tree_layout_2d",
    "tree_log_amplitudes",
    "tree_log_norm",
    "ttn_canonicalize",
    "ttn_entanglement_entropy",
    "ttn_from_dense",
    "ttn_log_amplitudes",
    "ttn_log_norm",
    "ttn_norm",
    "ttn_normalize",
    "ttn_schmidt_values",
    "ttn_to_dense",
    "ttn_truncate",
    "ungroup_node_tensors",
]

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


# --------------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------------


def _check_layout(layout: object) -> TreeLayout:
    if not isinstance(layout, TreeLayout):
        raise InvalidInputError(f"layout must be a TreeLayout, got {type(layout).__name__}")
    return layout


def _check_shapes(
    layout: TreeLayout, shapes: Sequence[Sequence[tuple[int, ...]]], what: str
) -> tuple[tuple[int, ...], int]:
    """Check node shapes against the layout; return (leaf dims, root output dim)."""
    leaf_dims: dict[int, int] = {}
    node_dims: dict[NodeRef, int] = {}
    for layer, (layer_shapes, lp) in enumerate(zip(shapes, layout.pairs, strict=True)):
        level = layout.levels[layer]
        for k, (shape, (i, j)) in enumerate(zip(layer_shapes, lp, strict=True)):
            for side, child in enumerate((level[i], level[j])):
                dim = int(shape[side])
                if isinstance(child, int):
                    known = leaf_dims.setdefault(child, dim)
                    label = f"leaf {child}"
                else:
                    known = node_dims[child]
                    label = f"node {child}"
                if known != dim:
                    raise InvalidInputError(
                        f"{what} of node ({layer}, {k}) has shape {tuple(shape)}, but its "
                        f"{'left' if side == 0 else 'right'} child {label} has dimension {known}"
                    )
            node_dims[(layer, k)] = int(shape[2])
    dims = tuple(leaf_dims[i] for i in range(layout.n_leaves))
    return dims, node_dims[layout.root]


def _validate_tensors(layout: TreeLayout, tensors: object) -> list[list[Tensor]]:
    """Check node tensor shapes, dtypes and devices against the layout; return lists."""
    if isinstance(tensors, Tensor) or not isinstance(tensors, Sequence):
        raise InvalidInputError(
            f"tensors must be a sequence (one per layer) of sequences of 3-dim tensors, got "
            f"{type(tensors).__name__}"
        )
    if len(tensors) != layout.depth:
        raise InvalidInputError(
            f"tensors must have one entry per layer ({layout.depth}), got {len(tensors)}"
        )
    out: list[list[Tensor]] = []
    ref: Tensor | None = None
    for layer, (layer_tensors, size) in enumerate(zip(tensors, layout.layer_sizes, strict=True)):
        if isinstance(layer_tensors, Tensor) or not isinstance(layer_tensors, Sequence):
            raise InvalidInputError(f"tensors[{layer}] must be a sequence of {size} tensors")
        if len(layer_tensors) != size:
            raise InvalidInputError(
                f"tensors[{layer}] must hold {size} tensors (one per node), got "
                f"{len(layer_tensors)}"
            )
        row = []
        for k, t in enumerate(layer_tensors):
            name = f"tensors[{layer}][{k}]"
            if not isinstance(t, Tensor):
                raise InvalidInputError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
            if t.ndim != 3:
                raise InvalidInputError(
                    f"{name} must be 3-dim (D_left, D_right, D_parent), got shape {tuple(t.shape)}"
                )
            if not (t.is_floating_point() or t.is_complex()):
                raise InvalidInputError(f"{name} must have a float or complex dtype, got {t.dtype}")
            if min(t.shape) < 1:
                raise InvalidInputError(f"{name} has a zero-size dimension: {tuple(t.shape)}")
            if ref is None:
                ref = t
            elif t.dtype != ref.dtype or t.device != ref.device:
                raise InvalidInputError(
                    f"{name} has dtype {t.dtype} on {t.device} but tensors[0][0] has "
                    f"{ref.dtype} on {ref.device}; all tensors must share one dtype and device"
                )
            row.append(t)
        out.append(row)
    _check_shapes(layout, [[tuple(t.shape) for t in row] for row in out], "tensor")
    return out


def _validate_groups(
    layout: TreeLayout, groups: object
) -> tuple[list[list[NodeGroup]], tuple[int, ...]]:
    """Check stacked node groups against the layout; return them as lists and the leaf dims."""
    if isinstance(groups, Tensor) or not isinstance(groups, Sequence):
        raise InvalidInputError("groups must be a sequence (one per layer) of node groups")
    if len(groups) != layout.depth:
        raise InvalidInputError(
            f"groups must have one entry per layer ({layout.depth}), got {len(groups)}"
        )
    out: list[list[NodeGroup]] = []
    shapes: list[list[tuple[int, ...]]] = []
    ref: Tensor | None = None
    for layer, (layer_groups, size) in enumerate(zip(groups, layout.layer_sizes, strict=True)):
        layer_shapes: list[tuple[int, ...] | None] = [None] * size
        row: list[NodeGroup] = []
        for g, item in enumerate(layer_groups):
            name = f"groups[{layer}][{g}]"
            if not (isinstance(item, Sequence) and len(item) == 2):
                raise InvalidInputError(f"{name} must be a pair (node indices, stacked tensor)")
            idx, t = item
            try:
                idx = tuple(int(k) for k in idx)
            except (TypeError, ValueError):
                raise InvalidInputError(
                    f"{name}: node indices must be a sequence of ints"
                ) from None
            if not isinstance(t, Tensor) or t.ndim != 4 or t.shape[0] != len(idx):
                raise InvalidInputError(
                    f"{name} must stack one (D_left, D_right, D_parent) tensor per node index, "
                    f"shape ({len(idx)}, Da, Db, Dp); got "
                    f"{tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__}"
                )
            if not (t.is_floating_point() or t.is_complex()):
                raise InvalidInputError(f"{name} must have a float or complex dtype, got {t.dtype}")
            if ref is None:
                ref = t
            elif t.dtype != ref.dtype or t.device != ref.device:
                raise InvalidInputError(
                    f"{name} has dtype {t.dtype} on {t.device}, other groups {ref.dtype} on "
                    f"{ref.device}; all must share one dtype and device"
                )
            for k in idx:
                if not 0 <= k < size or layer_shapes[k] is not None:
                    raise InvalidInputError(
                        f"{name}: node index {k} is out of range [0, {size}) or listed twice"
                    )
                layer_shapes[k] = tuple(t.shape[1:])
            row.append((idx, t))
        if any(s is None for s in layer_shapes):
            missing = [k for k, s in enumerate(layer_shapes) if s is None]
            raise InvalidInputError(f"groups[{layer}] leaves nodes {missing} without a tensor")
        out.append(row)
        shapes.append(layer_shapes)  # type: ignore[arg-type]
    leaf_dims, _ = _check_shapes(layout, shapes, "group tensor")
    return out, leaf_dims


def group_node_tensors(tensors: Sequence[Sequence[Tensor]]) -> list[list[NodeGroup]]:
    """Stack the node tensors of each layer that share a shape.

    Parameters
    ----------
    tensors : sequence of sequences of Tensor
        ``tensors[l][k]`` of shape ``(Da, Db, Dp)``.

    Returns
    -------
    list of list of (tuple of int, Tensor)
        Per layer, groups in order of first appearance: ``(node indices, stacked)`` with
        ``stacked`` of shape ``(K_g, Da, Db, Dp)``.
    """
    out = []
    for layer in tensors:
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for k, t in enumerate(layer):
            by_shape.setdefault(tuple(t.shape), []).append(k)
        out.append([(tuple(ks), torch.stack([layer[k] for k in ks])) for ks in by_shape.values()])
    return out


def ungroup_node_tensors(groups: Sequence[Sequence[NodeGroup]]) -> list[list[Tensor]]:
    """Inverse of :func:`group_node_tensors`: per layer, one ``(Da, Db, Dp)`` tensor per node."""
    out = []
    for layer in groups:
        size = sum(len(idx) for idx, _ in layer)
        row: list[Tensor | None] = [None] * size
        for idx, stacked in layer:
            for k, t in zip(idx, stacked.unbind(0), strict=True):
                row[k] = t
        out.append(row)  # type: ignore[arg-type]
    return out


# --------------------------------------------------------------------------------------------
# contraction plans: which stacked child vectors feed which node group, level by level
# --------------------------------------------------------------------------------------------


class _Rows:
    """Row indices into a bucket, with the index tensor cached per device."""

    __slots__ = ("_by_device", "rows", "start")

    def __init__(self, rows: tuple[int, ...]) -> None:
        self.rows = rows
        contiguous = rows == tuple(range(rows[0], rows[0] + len(rows))) if rows else True
        self.start = rows[0] if rows and contiguous else None
        self._by_device: dict[torch.device, Tensor] = {}

    def take(self, bucket: Tensor) -> Tensor:
        """``bucket[rows]`` along dim 0 (a slice view when the rows are a plain range)."""
        if self.start is not None:
            return bucket[self.start : self.start + len(self.rows)]
        index = self._by_device.get(bucket.device)
        if index is None:
            index = torch.tensor(self.rows, dtype=torch.int64, device=bucket.device)
            self._by_device[bucket.device] = index
        return bucket.index_select(0, index)


@dataclass(frozen=True)
class _GroupPlan:
    shape: tuple[int, int, int]
    left: _Rows  # rows of the left children in the bucket of dim shape[0]
    right: _Rows  # rows of the right children in the bucket of dim shape[1]
    left_leaves: _Rows | None  # leaf indices, when every left child is a leaf
    right_leaves: _Rows | None


@dataclass(frozen=True)
class _LayerPlan:
    groups: tuple[_GroupPlan, ...]
    # the next level's buckets: (dim, pieces) with a piece either ("g", group index) or
    # ("c", dim, rows) for entries carried from this level's bucket of that dim
    buckets: tuple[tuple[int, tuple[tuple[object, ...], ...]], ...]


_GroupKey = tuple[tuple[tuple[tuple[int, ...], tuple[int, ...]], ...], ...]


@functools.lru_cache(maxsize=64)
def _make_plan(
    layout: TreeLayout, group_key: _GroupKey, leaf_dims: tuple[int, ...]
) -> tuple[_LayerPlan, ...]:
    """Plan a stacked bottom-up pass: level entries live in buckets ``dim -> (M, ...)``.

    Level 0 has one bucket per leaf dimension, holding the leaves of that dimension in
    index order.
    """
    counts: dict[int, int] = {}
    pos: list[tuple[int, int]] = []
    for d in leaf_dims:
        pos.append((d, counts.get(d, 0)))
        counts[d] = counts.get(d, 0) + 1
    plans = []
    for layer, layer_groups in enumerate(group_key):
        lp = layout.pairs[layer]
        level = layout.levels[layer]
        groups = []
        for idx, shape in layer_groups:
            lleaves = tuple(level[lp[k][0]] for k in idx)
            rleaves = tuple(level[lp[k][1]] for k in idx)
            groups.append(
                _GroupPlan(
                    (shape[0], shape[1], shape[2]),
                    _Rows(tuple(pos[lp[k][0]][1] for k in idx)),
                    _Rows(tuple(pos[lp[k][1]][1] for k in idx)),
                    _Rows(lleaves) if all(isinstance(v, int) for v in lleaves) else None,  # type: ignore[arg-type]
                    _Rows(rleaves) if all(isinstance(v, int) for v in rleaves) else None,  # type: ignore[arg-type]
                )
            )
        # the next level lists the new nodes (k order), then the carried entries
        new_pos: list[tuple[int, int]] = [(0, 0)] * (len(lp) + len(layout.carried[layer]))
        pieces: dict[int, list[tuple[object, ...]]] = {}
        counts = {}
        for g, (idx, shape) in enumerate(layer_groups):
            dim = shape[2]
            pieces.setdefault(dim, []).append(("g", g))
            for j, k in enumerate(idx):
                new_pos[k] = (dim, counts.get(dim, 0) + j)
            counts[dim] = counts.get(dim, 0) + len(idx)
        carry_by_dim: dict[int, list[tuple[int, int]]] = {}
        for t, entry in enumerate(layout.carried[layer]):
            dim, row = pos[entry]
            carry_by_dim.setdefault(dim, []).append((len(lp) + t, row))
        for dim, items in carry_by_dim.items():
            pieces.setdefault(dim, []).append(("c", dim, _Rows(tuple(row for _, row in items))))
            for j, (target, _) in enumerate(items):
                new_pos[target] = (dim, counts.get(dim, 0) + j)
            counts[dim] = counts.get(dim, 0) + len(items)
        plans.append(_LayerPlan(tuple(groups), tuple((d, tuple(p)) for d, p in pieces.items())))
        pos = new_pos
    return tuple(plans)


def _group_key(groups: Sequence[Sequence[NodeGroup]]) -> _GroupKey:
    return tuple(
        tuple((tuple(idx), tuple(int(s) for s in t.shape[1:])) for idx, t in layer)
        for layer in groups
    )


def _next_buckets(
    plan: _LayerPlan, buckets: dict[int, Tensor], outputs: list[Tensor]
) -> dict[int, Tensor]:
    new: dict[int, Tensor] = {}
    for dim, pieces in plan.buckets:
        parts = [
            outputs[p[1]] if p[0] == "g" else p[2].take(buckets[p[1]])  # type: ignore[index,union-attr,attr-defined]
            for p in pieces
        ]
        new[dim] = parts[0] if len(parts) == 1 else torch.cat(parts, dim=0)
    return new


def _run_layers(
    plans: Sequence[_LayerPlan],
    groups: Sequence[Sequence[NodeGroup]],
    buckets: dict[int, Tensor],
    acc: Tensor,
    dtype: torch.dtype,
    start: int = 0,
) -> tuple[dict[int, Tensor], Tensor]:
    """Contract node vectors bottom-up from layer ``start``, renormalising every node.

    Buckets hold the level's vectors as ``dim -> (M, B, dim)``; ``acc`` (B,) collects logs.
    """
    tiny = _tiny(dtype)
    for plan, layer_groups in zip(plans[start:], groups[start:], strict=True):
        outputs = []
        for gp, (_, t) in zip(plan.groups, layer_groups, strict=True):
            da, db, dp = gp.shape
            left = gp.left.take(buckets[da])  # (K, B, Da)
            right = gp.right.take(buckets[db])  # (K, B, Db)
            k, batch = left.shape[0], left.shape[1]
            pair = (left.unsqueeze(-1) * right.unsqueeze(-2)).reshape(k, batch, da * db)
            out = torch.bmm(pair, t.to(dtype).reshape(k, da * db, dp))  # (K, B, Dp)
            nrm = torch.linalg.vector_norm(out, dim=-1).clamp(min=tiny)
            outputs.append(out / nrm.unsqueeze(-1))
            acc = acc + nrm.log().sum(0)
        buckets = _next_buckets(plan, buckets, outputs)
    return buckets, acc


def _check_phi(phi: object, n: int, leaf_dims: tuple[int, ...], device: torch.device) -> Tensor:
    if not isinstance(phi, Tensor):
        raise InvalidInputError(
            f"phi must be a torch.Tensor of shape (B, N, d), got {type(phi).__name__}"
        )
    if len(set(leaf_dims)) != 1:
        raise InvalidInputError(
            f"product-state contraction needs one physical dim for all leaves, got {leaf_dims}"
        )
    d = leaf_dims[0]
    if phi.ndim != 3 or phi.shape[1] != n or phi.shape[2] != d:
        raise InvalidInputError(f"phi must have shape (B, N={n}, d={d}), got {tuple(phi.shape)}")
    if not (phi.is_floating_point() or phi.is_complex()):
        raise InvalidInputError(f"phi must have a float or complex dtype, got {phi.dtype}")
    if phi.device != device:
        raise InvalidInputError(f"phi is on {phi.device} but the tensors are on {device}")
    return phi


def contract_tree_product_states(
    layout: TreeLayout,
    groups: Sequence[Sequence[NodeGroup]],
    phi: Tensor,
    log_scale: float | Tensor = 0.0,
    *,
    check: bool = True,
) -> tuple[Tensor, Tensor]:
    """Contract a tree tensor network, given as stacked node groups, with product states.

    Bottom-up, layer by layer: the child vectors of every node group are gathered from the
    level below, and ``v_node[b, p] = sum_{a, c} v_left[b, a] v_right[b, c] T[a, c, p]`` is
    one batched matrix product per group. Every node vector is divided by its norm (a zero
    norm is clamped to the smallest normal float) and the logs are accumulated, so nothing
    overflows for thousands of leaves. Differentiable; no loop over samples or nodes.

    Parameters
    ----------
    layout : TreeLayout
        The tree, ``N`` leaves.
    groups : sequence of sequences of (tuple of int, Tensor)
        Per layer, ``(node indices, stacked)`` with ``stacked`` of shape
        ``(K_g, Da, Db, Dp)``; together the groups of a layer hold each node once (see
        :func:`group_node_tensors`).
    phi : Tensor, shape (B, N, d)
        Local vectors of each product state (not conjugated), in leaf order; every leaf must
        have physical dimension ``d``.
    log_scale : float or Tensor, default=0.0
        Log of the network's overall scale, added to the result.
    check : bool, default=True
        Validate ``layout``, ``groups`` and ``phi`` (about a tenth of a small training step).
        Pass False in training loops whose groups are known to be consistent (a module's).

    Returns
    -------
    mantissa : Tensor, shape (B, out)
        Unit-norm per sample (or 0 where the amplitudes vanish), in the promoted dtype of the
        tensors and ``phi``; ``out`` is the root's output dimension.
    log_abs_scale : Tensor, shape (B,)
        Real; the amplitudes are ``mantissa * exp(log_abs_scale)[:, None]``.
    """
    if not check:
        leaf_dims = (int(phi.shape[2]),) * int(phi.shape[1])
        return _contract_phi(layout, groups, phi, log_scale, leaf_dims)
    layout = _check_layout(layout)
    groups, leaf_dims = _validate_groups(layout, groups)
    phi = _check_phi(phi, layout.n_leaves, leaf_dims, groups[0][0][1].device)
    return _contract_phi(layout, groups, phi, log_scale, leaf_dims)


def _contract_phi(
    layout: TreeLayout,
    groups: Sequence[Sequence[NodeGroup]],
    phi: Tensor,
    log_scale: float | Tensor,
    leaf_dims: tuple[int, ...],
) -> tuple[Tensor, Tensor]:
    ref = groups[0][0][1]
    dtype = torch.promote_types(ref.dtype, phi.dtype)
    ls = _as_log_scale(log_scale, torch.empty((), dtype=dtype, device=ref.device))
    plans = _make_plan(layout, _group_key(groups), leaf_dims)
    buckets = {leaf_dims[0]: phi.to(dtype).transpose(0, 1)}  # (N, B, d)
    acc = torch.zeros(phi.shape[0], dtype=dtype.to_real(), device=ref.device)
    buckets, acc = _run_layers(plans, groups, buckets, acc, dtype)
    (root,) = buckets.values()
    return root[0], acc + ls


_INT_DTYPES = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)


def tree_log_amplitudes(
    layout: TreeLayout,
    groups: Sequence[Sequence[NodeGroup]],
    indices: Tensor,
    log_scale: float | Tensor = 0.0,
) -> tuple[Tensor, Tensor]:
    """Amplitudes on computational-basis inputs (one discrete value per leaf), in log space.

    Equal to :func:`contract_tree_product_states` with one-hot ``phi``, but the first layer
    gathers the tensor entries ``T[s_left, s_right, :]`` instead of contracting.

    Parameters
    ----------
    layout : TreeLayout
    groups : sequence of sequences of (tuple of int, Tensor)
        Stacked node groups, see :func:`contract_tree_product_states`.
    indices : integer Tensor, shape (B, N)
        Value of each leaf, ``0 <= indices[:, i] < d`` (one physical dim ``d`` for all).
    log_scale : float or Tensor, default=0.0

    Returns
    -------
    mantissa : Tensor, shape (B, out)
        Unit norm per sample (0 where the amplitude vanishes); for ``out = 1`` the sign (or
        phase) of the amplitude.
    log_abs_scale : Tensor, shape (B,)
        Real; amplitudes ``mantissa * exp(log_abs_scale)[:, None]``, so for ``out = 1``,
        ``log |psi(s)| = log_abs_scale`` wherever ``mantissa != 0``.
    """
    layout = _check_layout(layout)
    groups, leaf_dims = _validate_groups(layout, groups)
    ref = groups[0][0][1]
    if not isinstance(indices, Tensor) or indices.dtype not in _INT_DTYPES:
        raise InvalidInputError("indices must be an integer torch.Tensor of shape (B, N)")
    if indices.ndim != 2 or indices.shape[1] != layout.n_leaves:
        raise InvalidInputError(
            f"indices must have shape (B, N={layout.n_leaves}), got {tuple(indices.shape)}"
        )
    if indices.device != ref.device:
        raise InvalidInputError(f"indices are on {indices.device} but the tensors on {ref.device}")
    if len(set(leaf_dims)) != 1:
        raise InvalidInputError(f"indices need one physical dim for all leaves, got {leaf_dims}")
    d = leaf_dims[0]
    indices = indices.long()
    if indices.numel() and bool(((indices < 0) | (indices >= d)).any()):
        raise InvalidInputError(f"indices must lie in [0, {d}) (the physical dimension)")
    dtype = ref.dtype
    tiny = _tiny(dtype)
    plans = _make_plan(layout, _group_key(groups), leaf_dims)
    by_leaf = indices.t()  # (N, B)
    acc = torch.zeros(indices.shape[0], dtype=dtype.to_real(), device=ref.device)
    outputs = []
    for gp, (_, t) in zip(plans[0].groups, groups[0], strict=True):
        assert gp.left_leaves is not None and gp.right_leaves is not None  # layer 0
        rows = torch.arange(t.shape[0], device=ref.device).unsqueeze(1)
        out = t[rows, gp.left_leaves.take(by_leaf), gp.right_leaves.take(by_leaf)]  # (K, B, Dp)
        nrm = torch.linalg.vector_norm(out, dim=-1).clamp(min=tiny)
        outputs.append(out / nrm.unsqueeze(-1))
        acc = acc + nrm.log().sum(0)
    # leaves carried past layer 0 go on as one-hot vectors
    carried = {d: torch.nn.functional.one_hot(by_leaf, d).to(dtype)} if layout.carried[0] else {}
    buckets = _next_buckets(plans[0], carried, outputs)
    buckets, acc = _run_layers(plans, groups, buckets, acc, dtype, start=1)
    (root,) = buckets.values()
    return root[0], acc + _as_log_scale(log_scale, ref)


def tree_log_norm(
    layout: TreeLayout,
    groups: Sequence[Sequence[NodeGroup]],
    log_scale: float | Tensor = 0.0,
) -> Tensor:
    """Natural log of the 2-norm of a tree tensor network, differentiable (autograd).

    A bottom-up doubled contraction: each leaf has the environment ``I_d``; a node gets
    ``E[p, q] = sum conj(T[a, b, p]) E_left[a, a'] E_right[b, b'] T[a', b', q]`` (one batched
    einsum chain per node group), divided by its Frobenius norm with the logs accumulated;
    ``||psi||^2 = exp(acc) * trace(E_root)``. Cost ``O(D^4)`` per node.

    Parameters
    ----------
    layout : TreeLayout
    groups : sequence of sequences of (tuple of int, Tensor)
        Stacked node groups, see :func:`contract_tree_product_states`.
    log_scale : float or Tensor, default=0.0

    Returns
    -------
    Tensor, shape ()
        Real; ``-inf`` for the zero network. Use ``2 * tree_log_norm(...)`` as ``log Z``.
    """
    layout = _check_layout(layout)
    groups, leaf_dims = _validate_groups(layout, groups)
    return _log_norm_groups(layout, groups, log_scale, leaf_dims)


def _log_norm_groups(
    layout: TreeLayout,
    groups: Sequence[Sequence[NodeGroup]],
    log_scale: float | Tensor,
    leaf_dims: tuple[int, ...],
) -> Tensor:
    ref = groups[0][0][1]
    dtype = ref.dtype
    tiny = _tiny(dtype)
    plans = _make_plan(layout, _group_key(groups), leaf_dims)
    buckets: dict[int, Tensor] = {}
    for d in sorted(set(leaf_dims)):
        eye = torch.eye(d, dtype=dtype, device=ref.device)
        buckets[d] = eye.expand(leaf_dims.count(d), d, d)  # (M, d, d)
    acc = torch.zeros((), dtype=dtype.to_real(), device=ref.device)
    for plan, layer_groups in zip(plans, groups, strict=True):
        outputs = []
        for gp, (_, t) in zip(plan.groups, layer_groups, strict=True):
            da, db, _ = gp.shape
            env_l = gp.left.take(buckets[da])  # (K, Da, Da)
            env_r = gp.right.take(buckets[db])  # (K, Db, Db)
            y = torch.einsum("kxa,kabq->kxbq", env_l, t)
            z = torch.einsum("kyb,kxbq->kxyq", env_r, y)
            env = torch.einsum("kxyp,kxyq->kpq", t.conj(), z)  # (K, Dp, Dp)
            nrm = torch.linalg.vector_norm(env, dim=(-2, -1)).clamp(min=tiny)
            outputs.append(env / nrm[:, None, None])
            acc = acc + nrm.log().sum()
        buckets = _next_buckets(plan, buckets, outputs)
    (root,) = buckets.values()
    value = torch.diagonal(root[0]).sum().real.clamp(min=0)
    return _as_log_scale(log_scale, ref) + 0.5 * (acc + value.log())


# --------------------------------------------------------------------------------------------
# construction and dense conversion
# --------------------------------------------------------------------------------------------


def _result(
    ttn: TTN, tensors: list[list[Tensor]], log_scale: Tensor, canonical: bool, inplace: bool
) -> TTN:
    out = ttn if inplace else TTN.__new__(TTN)
    out.layout = ttn.layout
    out.tensors = tensors
    out.log_scale = log_scale
    out.is_canonical = canonical
    return out


def random_ttn(
    layout: TreeLayout,
    phys_dim: int,
    bond_dim: int,
    *,
    out_dim: int = 1,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
    normalize: bool = True,
) -> TTN:
    """A random TTN with i.i.d. Gaussian tensor entries.

    Parameters
    ----------
    layout : TreeLayout
        The tree, ``N`` leaves.
    phys_dim : int
        Physical dimension ``d >= 1`` of every leaf.
    bond_dim : int
        Largest bond dimension ``D >= 1``. The bond above a node gets
        ``min(D, D_left * D_right, d ** (N - n_below) * out_dim)``, the largest useful size.
    out_dim : int, default=1
        Output dimension of the root.
    generator : torch.Generator, optional
        Source of randomness (entries drawn on its device, then moved to ``device``).
    dtype : torch.dtype, default=torch.float64
        Float or complex dtype.
    device : torch.device or str, optional
    normalize : bool, default=True
        If True, set ``log_scale`` so that the state has 2-norm 1.

    Returns
    -------
    TTN
        Tensors of shape ``(Da, Db, Dp)`` with entries of standard deviation
        ``1 / sqrt(Da * Db)``; ``is_canonical`` False.
    """
    layout = _check_layout(layout)
    d = _as_int("phys_dim", phys_dim)
    bond = _as_int("bond_dim", bond_dim)
    out = _as_int("out_dim", out_dim)
    if d < 1 or bond < 1 or out < 1:
        raise InvalidInputError(
            f"phys_dim, bond_dim and out_dim must be >= 1, got {d}, {bond}, {out}"
        )
    if not isinstance(dtype, torch.dtype) or not (dtype.is_floating_point or dtype.is_complex):
        raise InvalidInputError(f"dtype must be a float or complex torch.dtype, got {dtype!r}")
    gen_device = generator.device if generator is not None else device
    dims: dict[NodeRef, int] = dict.fromkeys(range(layout.n_leaves), d)
    tensors: list[list[Tensor]] = []
    for layer, size in enumerate(layout.layer_sizes):
        row = []
        for k in range(size):
            node = (layer, k)
            a, b = layout.children(node)
            da, db = dims[a], dims[b]
            if node == layout.root:
                dp = out
            else:
                rest = layout.n_leaves - len(layout.leaves_below(node))
                dp = min(bond, da * db, d**rest * out)
            dims[node] = dp
            t = torch.randn((da, db, dp), generator=generator, dtype=dtype, device=gen_device)
            row.append((t / math.sqrt(da * db)).to(device))
        tensors.append(row)
    ttn = TTN(layout, tensors)
    if normalize:
        ttn_normalize(ttn, inplace=True)
    return ttn


def ttn_to_dense(ttn: TTN) -> Tensor:
    """Contract the TTN into a dense tensor (including ``exp(log_scale)``).

    Parameters
    ----------
    ttn : TTN
        ``N`` leaves with physical dims ``(d_0, ..., d_{N-1})``, root output dim ``out``.

    Returns
    -------
    Tensor, shape (d_0, ..., d_{N-1}) or (d_0, ..., d_{N-1}, out) when ``out > 1``
        Axes in the original leaf order; same dtype and device as the tensors. Exponential in
        ``N``: only for small trees.
    """
    layout = ttn.layout
    dense: dict[NodeRef, Tensor] = {}
    for node in layout.nodes:
        t = ttn.tensors[node[0]][node[1]]
        a, b = layout.children(node)
        left = dense.pop(a) if not isinstance(a, int) else None
        right = dense.pop(b) if not isinstance(b, int) else None
        # t: (Da, Db, Dp); replace each child bond by the child's dense (phys..., D)
        out = t
        if left is not None:
            out = torch.tensordot(left, out, dims=([left.ndim - 1], [0]))  # (pa..., Db, Dp)
        if right is not None:
            nl = out.ndim - 2
            out = torch.tensordot(out, right, dims=([nl], [right.ndim - 1]))  # (pa..., Dp, pb...)
            out = out.movedim(nl, -1)
        dense[node] = out
    (root,) = dense.values()
    order = layout.leaf_order
    perm = sorted(range(len(order)), key=lambda i: order[i])
    if root.shape[-1] == 1:
        root = root.reshape(root.shape[:-1]).permute(perm)
    else:
        root = root.permute([*perm, len(order)])
    return root * ttn.log_scale.exp().to(root.dtype)


def ttn_from_dense(
    psi: Tensor,
    layout: TreeLayout,
    max_bond: int | None = None,
    cutoff: float = 0.0,
    cutoff_mode: str = "rel",
) -> TTN:
    """Build a TTN from a dense tensor by successive SVDs, bottom-up (hierarchical SVD).

    Each node in turn splits its two children's legs from everything else of the remaining
    tensor; the left singular vectors become the node (an isometry towards the root).

    Parameters
    ----------
    psi : Tensor, shape (d_0, ..., d_{N-1}) or (d_0, ..., d_{N-1}, out)
        Float or complex dense tensor; the optional last axis becomes the root's output leg.
    layout : TreeLayout
        The tree, ``N`` leaves.
    max_bond, cutoff, cutoff_mode
        Truncation of each SVD, see :func:`tnml.tensor.decomp.truncation_rank`.

    Returns
    -------
    TTN
        Canonical (``is_canonical`` True, unit-norm root); without truncation ``to_dense()``
        gives ``psi`` back.
    """
    layout = _check_layout(layout)
    if not isinstance(psi, Tensor):
        raise InvalidInputError(f"psi must be a torch.Tensor, got {type(psi).__name__}")
    n = layout.n_leaves
    if psi.ndim not in (n, n + 1) or psi.numel() == 0:
        raise InvalidInputError(
            f"psi must have N={n} axes (or N + 1 with an output axis last) of nonzero size, "
            f"got shape {tuple(psi.shape)}"
        )
    if not (psi.is_floating_point() or psi.is_complex()):
        raise InvalidInputError(f"psi must have a float or complex dtype, got {psi.dtype}")
    check_truncation_options(max_bond, cutoff, cutoff_mode)
    rest = psi if psi.ndim == n + 1 else psi.unsqueeze(-1)
    nrm = _safe_norm(rest)
    log_scale = nrm.log().to(psi.dtype.to_real())
    rest = rest / nrm
    axes: list[NodeRef] = list(range(n))  # what each axis of ``rest`` (but the last) is
    tensors: list[list[Tensor]] = [[] for _ in range(layout.depth)]
    for layer, k in layout.nodes:
        a, b = layout.children((layer, k))
        ia, ib = axes.index(a), axes.index(b)
        others = [i for i in range(len(axes)) if i not in (ia, ib)]
        t = rest.permute(ia, ib, *others, len(axes))
        if (layer, k) == layout.root:
            tensors[layer].append(t)
            continue
        res = split_tensor(
            t,
            2,
            method="svd",
            max_bond=max_bond,
            cutoff=cutoff,
            cutoff_mode=cutoff_mode,
            absorb="right",
        )
        tensors[layer].append(res.left)
        rest = res.right
        axes = [(layer, k)] + [axes[i] for i in others]
    root = tensors[-1][0]
    rn = _safe_norm(root)
    tensors[-1][0] = root / rn
    out = TTN(layout, tensors, log_scale + rn.log())
    out.is_canonical = True
    return out


# --------------------------------------------------------------------------------------------
# canonical form, norms
# --------------------------------------------------------------------------------------------


def _absorb_leg(t: Tensor, m: Tensor, side: int) -> Tensor:
    """``t`` (Da, Db, Dp) with child leg ``side`` replaced by ``m`` (k, D_side):
    ``t'[.., k, ..] = sum_x m[k, x] t[.., x, ..]``."""
    if side == 0:
        return torch.tensordot(m, t, dims=([1], [0]))
    return torch.einsum("kb,abp->akp", m, t)


def ttn_canonicalize(ttn: TTN, *, inplace: bool = False) -> TTN:
    """Make every non-root tensor an isometry towards the root (QR, bottom-up).

    Each node ``T (Da, Db, Dp)`` is split as ``Q (Da, Db, k) R (k, Dp)`` with
    ``k = min(Da * Db, Dp)`` (so a bond larger than its children's product shrinks); ``R``,
    divided by its norm (whose log goes to ``log_scale``), is absorbed into the parent. The
    root is finally divided by its norm, so the 2-norm of the state is ``exp(log_scale)``.
    The represented tensor is unchanged. Already canonical networks are returned as they are.

    Parameters
    ----------
    ttn : TTN
    inplace : bool, default=False
        Modify ``ttn`` instead of returning a new TTN.

    Returns
    -------
    TTN
        With ``is_canonical`` True (``ttn`` itself when ``inplace``).
    """
    tensors = [list(row) for row in ttn.tensors]
    log_scale = ttn.log_scale
    if not ttn.is_canonical:
        layout = ttn.layout
        for layer, k in layout.nodes:
            if (layer, k) == layout.root:
                break
            res = split_tensor(tensors[layer][k], 2, method="qr")
            n = _safe_norm(res.right)
            tensors[layer][k] = res.left
            (pl, pk), side = layout.parent((layer, k))  # type: ignore[misc]
            tensors[pl][pk] = _absorb_leg(tensors[pl][pk], res.right / n, side)
            log_scale = log_scale + n.log()
        rn = _safe_norm(tensors[-1][0])
        tensors[-1][0] = tensors[-1][0] / rn
        log_scale = log_scale + rn.log()
    return _result(ttn, tensors, log_scale, True, inplace)


def ttn_log_norm(ttn: TTN) -> Tensor:
    """Natural log of the 2-norm of the state (the output leg included), without overflow.

    Canonical networks: ``log_scale + log ||root||``. Otherwise a differentiable bottom-up
    doubled contraction (:func:`tree_log_norm`), cost ``O(D^4)`` per node: usable as the
    partition function ``log Z = 2 log_norm`` of a Born machine under autograd.

    Parameters
    ----------
    ttn : TTN

    Returns
    -------
    Tensor, shape ()
        Real; ``-inf`` for the zero state.
    """
    if ttn.is_canonical:
        return ttn.log_scale + torch.linalg.vector_norm(ttn.tensors[-1][0]).log()
    groups = group_node_tensors(ttn.tensors)
    return _log_norm_groups(ttn.layout, groups, ttn.log_scale, ttn.phys_dims)


def ttn_norm(ttn: TTN) -> Tensor:
    """The 2-norm of the state, ``exp(log_norm())`` (may overflow: prefer ``log_norm``).

    Returns
    -------
    Tensor, shape ()
    """
    return ttn_log_norm(ttn).exp()


def ttn_normalize(ttn: TTN, *, inplace: bool = False) -> TTN:
    """Rescale the state to 2-norm 1 by adjusting ``log_scale`` (tensors are unchanged).

    Raises
    ------
    InvalidInputError
        If the state is zero or its norm is not finite.
    """
    ln = ttn_log_norm(ttn)
    if not bool(torch.isfinite(ln)):
        raise InvalidInputError(f"ttn must have a finite nonzero norm to normalize, log_norm={ln}")
    return _result(
        ttn, [list(r) for r in ttn.tensors], ttn.log_scale - ln, ttn.is_canonical, inplace
    )


# --------------------------------------------------------------------------------------------
# moving the orthogonality centre, truncation, Schmidt values
# --------------------------------------------------------------------------------------------


def move_centre_down(
    tensors: list[list[Tensor]], node: tuple[int, int], side: int, child: tuple[int, int]
) -> None:
    """Move the orthogonality centre from ``node`` into its child tensor node ``child`` (on
    ``side``), in place: QR leaves ``node`` an isometry from its other two legs, and the
    triangular factor goes into ``child``'s parent leg. The bond keeps its size unless it
    exceeds the product of ``node``'s other two legs."""
    t = tensors[node[0]][node[1]].movedim(side, -1)  # (other, Dp, D_child)
    res = split_tensor(t, 2, method="qr")  # Q (other, Dp, k), R (k, D_child)
    tensors[node[0]][node[1]] = res.left.movedim(-1, side)
    c = tensors[child[0]][child[1]]
    tensors[child[0]][child[1]] = torch.tensordot(c, res.right, dims=([2], [1]))


def move_centre_up(
    tensors: list[list[Tensor]], node: tuple[int, int], parent: tuple[int, int], side: int
) -> None:
    """Move the orthogonality centre from ``node`` up into ``parent`` (``node`` is its child on
    ``side``), in place: QR leaves ``node`` an isometry towards the root, and the triangular
    factor goes into ``parent``'s leg ``side``."""
    res = split_tensor(tensors[node[0]][node[1]], 2, method="qr")  # Q (Da, Db, k), R (k, Dp)
    tensors[node[0]][node[1]] = res.left
    tensors[parent[0]][parent[1]] = _absorb_leg(tensors[parent[0]][parent[1]], res.right, side)


def _centre_at(ttn: TTN, ref: NodeRef) -> list[list[Tensor]]:
    """Canonicalise, then move the centre down to ``ref`` (a node) or its parent (a leaf)."""
    canon = ttn_canonicalize(ttn)
    tensors = [list(row) for row in canon.tensors]
    path = ttn.layout.path_from_root(ref)
    for i, (node, side) in enumerate(path):
        below = path[i + 1][0] if i + 1 < len(path) else ref
        if isinstance(below, int):
            break
        move_centre_down(tensors, node, side, below)
    return tensors


def ttn_truncate(
    ttn: TTN,
    max_bond: int | None = None,
    cutoff: float = 0.0,
    cutoff_mode: str = "rel",
    *,
    renorm: bool = False,
    inplace: bool = False,
) -> tuple[TTN, Tensor]:
    """Compress every internal bond by SVD, each cut optimal for the canonical form at the time.

    The network is canonicalised (centre at the root, unit norm), then walked depth-first:
    the centre moves down into a child node by QR, the child's subtree is processed, and on
    the way back up the bond above the child is split by SVD (children legs | parent leg),
    truncated, and the singular values absorbed into the parent, which becomes the centre
    again. Cuts are made post-order (every bond after all bonds below it), so the discarded
    pieces are mutually orthogonal and their weights add up. Cutoffs apply to the Schmidt
    values of the normalised state. The root's output leg is never truncated.

    Parameters
    ----------
    ttn : TTN
    max_bond, cutoff, cutoff_mode
        Truncation rules, see :func:`tnml.tensor.decomp.truncation_rank`.
    renorm : bool, default=False
        If False the result approximates ``ttn`` (its norm drops by the discarded weight); if
        True it is rescaled to the norm of ``ttn``.
    inplace : bool, default=False
        Modify ``ttn`` instead of returning a new TTN.

    Returns
    -------
    ttn : TTN
        Compressed, canonical (unit-norm root).
    discarded_weight : Tensor, shape ()
        Sum of the squared discarded singular values over all bonds relative to the squared
        norm of ``ttn``; without ``renorm`` it equals ``||psi - psi_trunc||^2 / ||psi||^2``.
    """
    check_truncation_options(max_bond, cutoff, cutoff_mode)
    layout = ttn.layout
    canon = ttn_canonicalize(ttn)
    tensors = [list(row) for row in canon.tensors]
    log_scale = canon.log_scale
    total = torch.zeros((), dtype=ttn.dtype.to_real(), device=ttn.device)
    stack: list[list] = [[layout.root, 0]]
    while stack:
        frame = stack[-1]
        node, side = frame
        if side < 2:
            frame[1] += 1
            child = layout.children(node)[side]
            if not isinstance(child, int):
                move_centre_down(tensors, node, side, child)
                stack.append([child, 0])
            continue
        stack.pop()
        if not stack:
            break
        parent, pside = stack[-1][0], stack[-1][1] - 1
        res = split_tensor(
            tensors[node[0]][node[1]],
            2,
            method="svd",
            max_bond=max_bond,
            cutoff=cutoff,
            cutoff_mode=cutoff_mode,
            absorb="right",
        )
        tensors[node[0]][node[1]] = res.left
        tensors[parent[0]][parent[1]] = _absorb_leg(tensors[parent[0]][parent[1]], res.right, pside)
        total = total + res.discarded_weight
    rn = _safe_norm(tensors[-1][0])
    tensors[-1][0] = tensors[-1][0] / rn
    if not renorm:
        log_scale = log_scale + rn.log()
    return _result(ttn, tensors, log_scale, True, inplace), total


def ttn_schmidt_values(ttn: TTN, node: NodeRef) -> Tensor:
    """Schmidt values of the normalised state across the bond above ``node``.

    The bipartition is: the leaves below ``node`` versus the other leaves together with the
    root's output leg (for the root itself: all leaves versus the output leg). The centre is
    moved to ``node`` (QR along the path from the root) and the centre tensor is split by SVD.

    Parameters
    ----------
    ttn : TTN
    node : int or (int, int)
        A leaf index (the bond above a single leaf) or a tensor node ``(layer, k)``.

    Returns
    -------
    Tensor, shape (k,)
        Real, descending, ``sum(s ** 2) = 1`` (all zero for the zero state).
    """
    layout = ttn.layout
    ref = layout.check_node(node, allow_leaf=True)
    tensors = _centre_at(ttn, ref)
    if isinstance(ref, int):
        ((parent, side),) = [layout.parent(ref)]  # type: ignore[misc]
        t = tensors[parent[0]][parent[1]].movedim(side, 0)  # (d, other, Dp)
        s = split_tensor(t, 1, method="svd", absorb=None).singular_values
    else:
        s = split_tensor(tensors[ref[0]][ref[1]], 2, method="svd", absorb=None).singular_values
    assert s is not None
    return s


def ttn_entanglement_entropy(ttn: TTN, node: NodeRef, kind: str = "vn") -> Tensor:
    """Entanglement entropy across the bond above ``node`` (natural log).

    With ``p_i = s_i ** 2`` the squared Schmidt values (:func:`ttn_schmidt_values`):
    "vn" ``-sum p_i log p_i``; "renyi2" ``-log sum p_i ** 2``.

    Parameters
    ----------
    ttn : TTN
        Not the zero state.
    node : int or (int, int)
        A leaf index or a tensor node ``(layer, k)``.
    kind : {"vn", "renyi2"}, default="vn"

    Returns
    -------
    Tensor, shape ()
        Real, between 0 and ``log k``.
    """
    check_entropy_kind(kind)
    s = ttn_schmidt_values(ttn, node)
    if not bool(s.square().sum() > 0):
        raise InvalidInputError("ttn must not be the zero state to have an entanglement entropy")
    return schmidt_entropy(s, kind)


# --------------------------------------------------------------------------------------------
# product-state contraction on a TTN
# --------------------------------------------------------------------------------------------


def contract_ttn_product_states(ttn: TTN, phi: Tensor) -> tuple[Tensor, Tensor]:
    """Amplitudes of a TTN on a batch of product states, in log space.

    Stacks the node tensors of equal shape per layer (:func:`group_node_tensors`) and calls
    :func:`contract_tree_product_states`.

    Parameters
    ----------
    ttn : TTN
        Every leaf with physical dimension ``d``.
    phi : Tensor, shape (B, N, d)
        Local vectors of each product state (not conjugated), in leaf order.

    Returns
    -------
    mantissa : Tensor, shape (B, out)
        Unit norm per sample (0 where the amplitudes vanish).
    log_abs_scale : Tensor, shape (B,)
        Real; amplitudes = ``mantissa * exp(log_abs_scale)[:, None]`` (``log_scale`` included).
    """
    dims = ttn.phys_dims
    phi = _check_phi(phi, ttn.n_leaves, dims, ttn.device)
    return _contract_phi(ttn.layout, group_node_tensors(ttn.tensors), phi, ttn.log_scale, dims)


def ttn_log_amplitudes(ttn: TTN, indices: Tensor) -> tuple[Tensor, Tensor]:
    """Amplitudes on computational-basis inputs; see :func:`tree_log_amplitudes`.

    Parameters
    ----------
    ttn : TTN
    indices : LongTensor, shape (B, N)
        Value of each leaf, in ``[0, d)``.

    Returns
    -------
    mantissa : Tensor, shape (B, out)
        Unit norm per sample (the sign for ``out = 1``; 0 where the amplitude vanishes).
    log_abs_scale : Tensor, shape (B,)
        Real; amplitudes = ``mantissa * exp(log_abs_scale)[:, None]``.
    """
    return tree_log_amplitudes(ttn.layout, group_node_tensors(ttn.tensors), indices, ttn.log_scale)


# --------------------------------------------------------------------------------------------
# the container
# --------------------------------------------------------------------------------------------


class TTN:
    """A tree tensor network ``exp(log_scale) * contraction(tensors)`` over a binary tree.

    Parameters
    ----------
    layout : TreeLayout
        The tree (see :func:`tree_layout_1d`, :func:`tree_layout_2d`).
    tensors : sequence of sequences of Tensor
        ``tensors[l][k]`` is node ``(l, k)``, shape ``(D_left_child, D_right_child,
        D_parent)``; one float or complex dtype and one device. The lists are copied, the
        tensors are not.
    log_scale : float or Tensor, default=0.0
        Real scalar; the state is multiplied by ``exp(log_scale)``.

    Attributes
    ----------
    layout : TreeLayout
    tensors : list of list of Tensor
    log_scale : Tensor, shape ()
    is_canonical : bool
        True when every non-root tensor is known to be an isometry towards the root and the
        root has unit norm (see the module docstring). Set it to False if you replace tensors.

    Raises
    ------
    InvalidInputError
        Wrong number of tensors, a tensor that is not 3-dim, child dimensions that do not
        match, mixed dtypes or devices (the message names the node).

    Examples
    --------
    >>> import torch
    >>> psi = TTN.random(tree_layout_1d(8), 2, 4, generator=torch.Generator().manual_seed(0))
    >>> psi.bond_dims
    ((4, 4, 4, 4), (4, 4), (1,))
    >>> round(float(psi.norm()), 6)
    1.0
    """

    layout: TreeLayout
    tensors: list[list[Tensor]]
    log_scale: Tensor
    is_canonical: bool

    def __init__(
        self,
        layout: TreeLayout,
        tensors: Sequence[Sequence[Tensor]],
        log_scale: float | Tensor = 0.0,
    ) -> None:
        self.layout = _check_layout(layout)
        self.tensors = _validate_tensors(self.layout, tensors)
        self.log_scale = _as_log_scale(log_scale, self.tensors[0][0])
        self.is_canonical = False

    # ---- constructors ----------------------------------------------------------------------

    @classmethod
    @_doc_from(random_ttn)
    def random(
        cls,
        layout: TreeLayout,
        phys_dim: int,
        bond_dim: int,
        *,
        out_dim: int = 1,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
        normalize: bool = True,
    ) -> TTN:
        return random_ttn(
            layout,
            phys_dim,
            bond_dim,
            out_dim=out_dim,
            generator=generator,
            dtype=dtype,
            device=device,
            normalize=normalize,
        )

    @classmethod
    @_doc_from(ttn_from_dense)
    def from_dense(
        cls,
        psi: Tensor,
        layout: TreeLayout,
        max_bond: int | None = None,
        cutoff: float = 0.0,
        cutoff_mode: str = "rel",
    ) -> TTN:
        return ttn_from_dense(psi, layout, max_bond, cutoff, cutoff_mode)

    def copy(self) -> TTN:
        """A new TTN with the same tensors, ``log_scale`` and ``is_canonical``."""
        return _result(
            self, [list(r) for r in self.tensors], self.log_scale, self.is_canonical, False
        )

    @_doc_from(ttn_to_dense)
    def to_dense(self) -> Tensor:
        return ttn_to_dense(self)

    # ---- properties ------------------------------------------------------------------------

    @property
    def n_leaves(self) -> int:
        """Number of leaves N."""
        return self.layout.n_leaves

    @property
    def phys_dims(self) -> tuple[int, ...]:
        """Physical dimension of each leaf, length N."""
        return _check_shapes(
            self.layout, [[tuple(t.shape) for t in row] for row in self.tensors], "tensor"
        )[0]

    @property
    def out_dim(self) -> int:
        """Output dimension of the root (1 for a plain state)."""
        return int(self.tensors[-1][0].shape[2])

    @property
    def bond_dims(self) -> tuple[tuple[int, ...], ...]:
        """Per layer, the dimension of the bond above each node (the root's: ``out_dim``)."""
        return tuple(tuple(int(t.shape[2]) for t in row) for row in self.tensors)

    @property
    def max_bond_dim(self) -> int:
        """Largest internal bond dimension (root output leg excluded)."""
        return max((d for row in self.bond_dims[:-1] for d in row), default=1)

    @property
    def dtype(self) -> torch.dtype:
        """Dtype of the tensors."""
        return self.tensors[0][0].dtype

    @property
    def device(self) -> torch.device:
        """Device of the tensors."""
        return self.tensors[0][0].device

    # ---- algebra ---------------------------------------------------------------------------

    @_doc_from(ttn_canonicalize)
    def canonicalize(self) -> TTN:
        return ttn_canonicalize(self)

    def canonicalize_(self) -> TTN:
        """In-place :meth:`canonicalize`; returns ``self``."""
        return ttn_canonicalize(self, inplace=True)

    @_doc_from(ttn_log_norm)
    def log_norm(self) -> Tensor:
        return ttn_log_norm(self)

    @_doc_from(ttn_norm)
    def norm(self) -> Tensor:
        return ttn_norm(self)

    @_doc_from(ttn_normalize)
    def normalize(self) -> TTN:
        return ttn_normalize(self)

    def normalize_(self) -> TTN:
        """In-place :meth:`normalize`; returns ``self``."""
        return ttn_normalize(self, inplace=True)

    @_doc_from(ttn_truncate)
    def truncate(
        self,
        max_bond: int | None = None,
        cutoff: float = 0.0,
        cutoff_mode: str = "rel",
        *,
        renorm: bool = False,
    ) -> tuple[TTN, Tensor]:
        return ttn_truncate(self, max_bond, cutoff, cutoff_mode, renorm=renorm)

    def truncate_(
        self,
        max_bond: int | None = None,
        cutoff: float = 0.0,
        cutoff_mode: str = "rel",
        *,
        renorm: bool = False,
    ) -> tuple[TTN, Tensor]:
        """In-place :meth:`truncate`; returns ``(self, discarded_weight)``."""
        return ttn_truncate(self, max_bond, cutoff, cutoff_mode, renorm=renorm, inplace=True)

    @_doc_from(ttn_schmidt_values)
    def schmidt_values(self, node: NodeRef) -> Tensor:
        return ttn_schmidt_values(self, node)

    @_doc_from(ttn_entanglement_entropy)
    def entanglement_entropy(self, node: NodeRef, kind: str = "vn") -> Tensor:
        return ttn_entanglement_entropy(self, node, kind)

    @_doc_from(contract_ttn_product_states)
    def contract_product_states(self, phi: Tensor) -> tuple[Tensor, Tensor]:
        return contract_ttn_product_states(self, phi)

    @_doc_from(ttn_log_amplitudes)
    def log_amplitudes(self, indices: Tensor) -> tuple[Tensor, Tensor]:
        return ttn_log_amplitudes(self, indices)

    def __repr__(self) -> str:
        grid = "" if self.layout.grid is None else f", grid={self.layout.grid}"
        canon = ", canonical" if self.is_canonical else ""
        return (
            f"TTN(n_leaves={self.n_leaves}, depth={self.layout.depth}{grid}, "
            f"max_bond_dim={self.max_bond_dim}, out_dim={self.out_dim}, "
            f"dtype={self.dtype}{canon})"
        )
