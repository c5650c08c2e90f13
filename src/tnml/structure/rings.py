"""Ring (and chain) structures whose ranks the target's unfoldings allow.

In a ring whose nodes carry the modes ``order[0], ..., order[n-1]`` (edge ``k`` joins the
nodes of ``order[k]`` and ``order[k+1]``, the last closing the ring), the modes of an arc
``order[a+1 .. b]`` meet the rest through edges ``a`` and ``b`` only, so the unfolding of
the target by those modes has rank at most ``r_a * r_b``. The (numerical) ranks of all the
target's unfoldings bound every ring's ranks from below. :func:`ring_structures` enumerates,
for each cyclic order of the modes, the irreducible rank vectors that meet these bounds,
cheapest first, and keeps those whose generic unfolding ranks (computed from random cores)
are exactly the target's. A ring with an edge of rank one is a chain, so chains in every
mode order are among them. These are necessary conditions, not sufficient: a structure
still has to be fitted.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch
from torch import Tensor

from tnml.tensor.decomp import truncation_rank
from tnml.tensor.network import TensorNetwork

__all__ = ["ring_structures", "unfolding_ranks"]

_MAX_LEVEL = 100_000  # rank vectors looked at under one budget, at most


def unfolding_ranks(target: Tensor, rse: float) -> dict[frozenset[int], int]:
    """Numerical rank of the target's unfolding by every set of modes.

    The rank kept is the smallest whose discarded squared singular values are at most
    ``rse^2 / n`` of the target's squared norm (``n`` its order).

    Parameters
    ----------
    target : Tensor, any shape of order ``n``
    rse : float

    Returns
    -------
    dict frozenset -> int
        Keys: every proper non-empty subset of ``range(n)`` (a set and its complement share
        their rank).
    """
    n = target.ndim
    ranks: dict[frozenset[int], int] = {}
    for size in range(1, n // 2 + 1):
        for subset in itertools.combinations(range(n), size):
            rest = [k for k in range(n) if k not in subset]
            rows = math.prod(target.shape[k] for k in subset)
            matrix = target.permute(*subset, *rest).reshape(rows, -1)
            values = torch.linalg.svdvals(matrix)
            rank = truncation_rank(values, cutoff=rse**2 / n, cutoff_mode="sum2")
            ranks[frozenset(subset)] = rank
            ranks[frozenset(rest)] = rank
    return ranks


def _cycle_ranks(
    shape: tuple[int, ...], order: tuple[int, ...], bounds: dict[frozenset[int], int], budget: int
) -> tuple[np.ndarray, np.ndarray]:
    """Every rank vector of the ring in ``order`` with ``r_a * r_b >=`` the rank of each arc's
    unfolding, no edge reducible (``r_k <= d * r_j`` for the two edges ``j, k`` at a node of
    dimension ``d``: otherwise the core factors through a smaller edge, and a cheaper ring is
    the same set) and fewer than ``budget`` parameters.

    Returns
    -------
    (params, ranks) : ndarray of shape ``(m,)``, ndarray of shape ``(m, n)``
        ``ranks[i, k]``: edge ``k`` (between the nodes of ``order[k]`` and ``order[k+1]``).
    """
    n = len(order)
    dims = np.array([shape[m] for m in order], dtype=np.int64)
    top = max(bounds[frozenset(order[a + 1 : b + 1])] for a in range(n) for b in range(a + 1, n))
    # the cheapest each later node can cost: its two edges' product is at least its mode's rank
    floor = np.array([dims[k] * bounds[frozenset([order[k]])] for k in range(n)])
    rest = np.append(np.cumsum(floor[::-1])[::-1][1:], 0) + floor[0]  # nodes k+1.. and 0
    ranks = np.arange(1, top + 1, dtype=np.int64).reshape(-1, 1)
    cost = np.zeros(len(ranks), dtype=np.int64)
    for k in range(1, n):  # extend every partial vector by each feasible rank of edge k
        left = ranks[:, k - 1]
        low = -(-left // dims[k])
        for a in range(k):
            need = bounds[frozenset(order[a + 1 : k + 1])]
            low = np.maximum(low, -(-need // ranks[:, a]))
        high = np.minimum(top, dims[k] * left)
        high = np.minimum(high, (budget - 1 - cost - rest[k]) // (dims[k] * left))
        counts = np.maximum(high - low + 1, 0)
        rows = np.repeat(np.arange(len(ranks)), counts)
        step = np.arange(len(rows)) - np.repeat(np.cumsum(counts) - counts, counts)
        right = low[rows] + step
        cost = cost[rows] + dims[k] * left[rows] * right
        ranks = np.concatenate([ranks[rows], right.reshape(-1, 1)], axis=1)
    first, last = ranks[:, 0], ranks[:, -1]
    cost = cost + dims[0] * last * first
    keep = (cost < budget) & (first <= dims[0] * last) & (last <= dims[0] * first)
    return cost[keep], ranks[keep]


def _cut_table(n: int) -> tuple[np.ndarray, list[frozenset[int]]]:
    """Every split of ``n`` nodes in two, as a ``(2^n, n)`` 0/1 array, and the sets of modes
    whose unfolding ranks are compared (a set and its complement once)."""
    sides = (np.arange(2**n).reshape(-1, 1) >> np.arange(n)) & 1
    subsets = [
        frozenset(c)
        for size in range(1, n // 2 + 1)
        for c in itertools.combinations(range(n), size)
    ]
    return sides, subsets


def _leg_cuts(
    shape: tuple[int, ...], order: tuple[int, ...], sides: np.ndarray, subsets: list[frozenset[int]]
) -> np.ndarray:
    """``(len(subsets), 2^n)``: the log of the product of the dimensions of the open legs that
    each split of the ring's nodes (in ``order``) cuts when it separates each set of modes
    from the rest (a leg is cut when its node lies on the other side than its mode)."""
    log_dim = np.log(np.array([shape[m] for m in order], dtype=float))
    rows = []
    for subset in subsets:
        inside = np.array([m in subset for m in order])
        rows.append(np.where(inside, 1 - sides, sides) @ log_dim)
    return np.stack(rows)


def _cuts_allow(
    ranks: np.ndarray, legs: np.ndarray, sides: np.ndarray, targets: np.ndarray
) -> np.ndarray:
    """Which rings (rows of ``ranks``, leg cuts ``legs`` of shape ``(m, sets, 2^n)`` from
    :func:`_leg_cuts`) have, for every set of modes, a cheapest cut (the product of the
    capacities, edge ranks and open legs, of a split separating the set's legs from the
    others') between the target's unfolding rank (``targets``) and a slack above it
    (``max(2, rank // 8)``).
    The rank of a network's unfolding is at most its cheapest cut, so a ring below is ruled
    out; the bound is not always reached, but misses it by little, so a ring far above has
    too large ranks (and a cheaper ring would do). A filter before the exact check."""
    crossing = (sides != np.roll(sides, -1, axis=1)).astype(float)  # edge k: nodes k, k + 1
    edge_cost = np.log(ranks.astype(float)) @ crossing.T  # (m, 2^n)
    cut = np.exp((edge_cost[:, None, :] + legs).min(axis=2))  # (m, sets)
    slack = np.maximum(2, targets // 8)
    return ((cut >= targets - 1e-6) & (cut <= targets + slack)).all(axis=1)


def _generic_ranks_match(
    shape: tuple[int, ...],
    order: tuple[int, ...],
    ranks: tuple[int, ...],
    bounds: dict[frozenset[int], int],
    subsets: list[frozenset[int]],
    rng: np.random.Generator,
) -> bool:
    """Whether a ring with random cores (the generic point of the structure) has exactly the
    target's unfolding ranks. The cut bounds of :func:`_cuts_allow` are not always reached
    (a ring's unfolding can have lower rank than its cheapest cut), so the ranks are
    computed. Rings whose ranks only bound the target's from above would fit it with fewer
    parameters; those that cannot reach it are ruled out."""
    n = len(order)
    dense = rng.standard_normal((ranks[-1], shape[order[0]], ranks[0]))
    for k in range(1, n):
        core = rng.standard_normal((ranks[k - 1], shape[order[k]], ranks[k]))
        dense = np.tensordot(dense, core, axes=([-1], [0]))
    dense = np.trace(dense, axis1=0, axis2=-1)  # axes: the modes in ``order``
    dense = dense.transpose(np.argsort(order))
    for subset in subsets:
        rows = sorted(subset)
        rest = [k for k in range(n) if k not in subset]
        matrix = dense.transpose(rows + rest).reshape(math.prod(shape[k] for k in rows), -1)
        values = np.linalg.svd(matrix, compute_uv=False)
        if int((values > 1e-10 * values[0]).sum()) != bounds[subset]:
            return False
    return True


def ring_structures(
    target: Tensor, rse: float, budget: int, limit: int = 20
) -> list[TensorNetwork]:
    """The cheapest rings (chains among them) whose generic unfolding ranks are those of
    ``target``, over every cyclic order of the modes (up to reversal), under ``budget``
    parameters; cheapest first.

    The rank vectors are enumerated under a budget that grows by an eighth of ``budget`` at
    a time until ``limit`` rings are found (their number grows steeply with the budget); a
    level with more than ``_MAX_LEVEL`` vectors ends the enumeration (the target's ranks
    then pin little down, and telling the rings apart costs more than it is likely to earn).
    Each vector passes :func:`_cuts_allow` and then :func:`_generic_ranks_match`.

    Parameters
    ----------
    target : Tensor, order ``n``
    rse : float
        The error the unfolding ranks are cut at (:func:`unfolding_ranks`).
    budget : int
        Only structures with fewer parameters.
    limit : int
        At most this many structures.

    Returns
    -------
    list of TensorNetwork
        Random cores (standard normal, the network's default); node ``k`` carries one mode.
    """
    n = target.ndim
    shape = tuple(target.shape)
    bounds = unfolding_ranks(target, rse)
    rng = np.random.default_rng(0)
    orders = [
        (0, *rest)
        for rest in itertools.permutations(range(1, n))
        if n <= 2 or rest[0] < rest[-1]  # else the same ring read backwards
    ]
    sides, subsets = _cut_table(n)
    targets = np.array([bounds[s] for s in subsets])
    legs = np.stack([_leg_cuts(shape, order, sides, subsets) for order in orders])
    found: list[tuple[tuple[int, ...], tuple[int, ...]]] = []
    step = max(1, budget // 8)
    low, high = 0, step
    while len(found) < limit and low < budget:
        high = min(budget, high)
        costs, ranks, which = [], [], []
        for index, order in enumerate(orders):
            c, r = _cycle_ranks(shape, order, bounds, high)
            new = c >= low  # the cheaper ones were looked at on earlier levels
            costs.append(c[new])
            ranks.append(r[new])
            which.append(np.full(int(new.sum()), index))
        cost, rank, index = (np.concatenate(part) for part in (costs, ranks, which))
        if len(cost) > _MAX_LEVEL:
            break  # ranks this loose leave too many rings to be worth telling apart
        ordered = np.argsort(cost, kind="stable")
        for start in range(0, len(ordered), 2048):  # cheapest first, until enough are found
            pick = ordered[start : start + 2048]
            pick = pick[_cuts_allow(rank[pick], legs[index[pick]], sides, targets)]
            for i in pick:
                if len(found) == limit:
                    break
                order, ranks_i = orders[int(index[i])], tuple(int(r) for r in rank[i])
                if _generic_ranks_match(shape, order, ranks_i, bounds, subsets, rng):
                    found.append((order, ranks_i))
            if len(found) == limit:
                break
        low, high = high, high + step
    nets = []
    for order, ranks in found:
        edges = {(min(k, (k + 1) % n), max(k, (k + 1) % n)): r for k, r in enumerate(ranks)}
        nets.append(TensorNetwork(shape, [(m,) for m in order], edges, dtype=target.dtype))
    return nets
