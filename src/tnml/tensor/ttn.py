"""Tree tensor networks: the :class:`TTN` container and its algebra; layouts live in
:mod:`tnml.tensor.tree_layout`, product-state contraction in :mod:`tnml.tensor.tree_contract`.

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
  on stacked node groups, for models whose parameters are stacked); :class:`TTN` has them
  as methods (``tree.norm()`` is ``ttn_norm(tree)``). Operations return a new :class:`TTN` (sharing
  unchanged tensors, which are never modified in place). Every QR/SVD goes through
  :func:`tnml.tensor.decomp.split_tensor`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from tnml.exceptions import InvalidInputError
from tnml.tensor._util import _as_log_scale, _safe_norm
from tnml.tensor.decomp import check_truncation_options, split_tensor
from tnml.tensor.entropy import check_entropy_kind, schmidt_entropy
from tnml.tensor.tree_contract import (
    _check_layout,
    _check_phi,
    _check_shapes,
    _contract_phi,
    _log_norm_groups,
    _validate_tensors,
    contract_tree_product_states,
    group_node_tensors,
    tree_log_amplitudes,
    tree_log_norm,
    ungroup_node_tensors,
)
from tnml.tensor.tree_layout import (
    NodeGroup,
    NodeRef,
    TreeLayout,
    _as_int,
    tree_layout_1d,
    tree_layout_2d,
)

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

    # ---- the algebra of this module as methods (``tree.norm()`` is ``ttn_norm(tree)``) ------

    random = staticmethod(random_ttn)
    from_dense = staticmethod(ttn_from_dense)
    to_dense = ttn_to_dense

    def copy(self) -> TTN:
        """A new TTN with the same tensors, ``log_scale`` and ``is_canonical``."""
        return _result(
            self, [list(r) for r in self.tensors], self.log_scale, self.is_canonical, False
        )

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

    canonicalize = ttn_canonicalize
    log_norm = ttn_log_norm
    norm = ttn_norm
    normalize = ttn_normalize
    truncate = ttn_truncate
    schmidt_values = ttn_schmidt_values
    entanglement_entropy = ttn_entanglement_entropy
    contract_product_states = contract_ttn_product_states
    log_amplitudes = ttn_log_amplitudes

    # ---- in place: the method's name plus ``_``, returning ``self`` ------------------------

    def canonicalize_(self) -> TTN:
        """In-place :meth:`canonicalize`; returns ``self``."""
        return ttn_canonicalize(self, inplace=True)

    def normalize_(self) -> TTN:
        """In-place :meth:`normalize`; returns ``self``."""
        return ttn_normalize(self, inplace=True)

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

    def __repr__(self) -> str:
        grid = "" if self.layout.grid is None else f", grid={self.layout.grid}"
        canon = ", canonical" if self.is_canonical else ""
        return (
            f"TTN(n_leaves={self.n_leaves}, depth={self.layout.depth}{grid}, "
            f"max_bond_dim={self.max_bond_dim}, out_dim={self.out_dim}, "
            f"dtype={self.dtype}{canon})"
        )
