"""Contraction of tree networks with product states, level by level over stacked node groups.

The planner groups the nodes of a layer whose tensors share a shape, so one batched product
contracts each group; norms and amplitudes are kept in log space. Used by :class:`TTN` and by
the tree modules, whose parameters are stacked node groups.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from tnml.exceptions import InvalidInputError
from tnml.tensor._util import _as_log_scale, _tiny
from tnml.tensor.tree_layout import NodeGroup, NodeRef, TreeLayout

__all__ = [
    "contract_tree_product_states",
    "group_node_tensors",
    "tree_log_amplitudes",
    "tree_log_norm",
    "ungroup_node_tensors",
]

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
