"""Ring (and chain) structures whose ranks the target's unfoldings allow.

In a ring whose nodes carry the modes ``order[0], ..., order[n-1]`` (edge ``k`` joins the
nodes of ``order[k]`` and ``order[k+1]``, the last closing the ring), the modes of an arc
``order[a+1 .. b]`` meet the rest through edges ``a`` and ``b`` only, so the unfolding of
the target by those modes has rank at most ``r_a * r_b``. The (numerical) ranks of all the
target's unfoldings bound every ring's ranks from below; :func:`ring_structures` gives, for
each cyclic order of the modes, the ranks of fewest parameters that meet all these bounds.
A ring with an edge of rank one is a chain, so chains in every mode order are among them.
These are necessary conditions, not sufficient: a structure still has to be fitted.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch
from torch import Tensor

from tnml.tensor.network import TensorNetwork

__all__ = ["ring_structures", "unfolding_ranks"]


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
    total = float((target * target).sum())
    ranks: dict[frozenset[int], int] = {}
    for size in range(1, n // 2 + 1):
        for subset in itertools.combinations(range(n), size):
            rest = [k for k in range(n) if k not in subset]
            rows = math.prod(target.shape[k] for k in subset)
            matrix = target.permute(*subset, *rest).reshape(rows, -1)
            values = torch.linalg.svdvals(matrix) ** 2
            tails = values.flip(0).cumsum(0).flip(0)  # tails[k]: what ranks k.. hold
            within = tails <= rse**2 / n * total
            rank = int(within.nonzero()[0]) if bool(within.any()) else len(values)
            rank = max(rank, 1)
            ranks[frozenset(subset)] = rank
            ranks[frozenset(rest)] = rank
    return ranks


def _cycle_ranks(
    shape: tuple[int, ...], order: tuple[int, ...], bounds: dict[frozenset[int], int], budget: int
) -> tuple[np.ndarray, np.ndarray]:
    """Every rank vector of the ring in ``order`` with ``r_a * r_b >=`` the rank of each arc's
    unfolding and fewer than ``budget`` parameters.

    Returns
    -------
    (params, ranks) : ndarray of shape ``(m,)``, ndarray of shape ``(m, n)``
        ``ranks[i, k]``: edge ``k`` (between the nodes of ``order[k]`` and ``order[k+1]``).
    """
    n = len(order)
    dims = np.array([shape[m] for m in order])
    top = max(bounds[frozenset(order[a + 1 : b + 1])] for a in range(n) for b in range(a + 1, n))
    ranks = np.arange(1, top + 1).reshape(-1, 1)
    cost = np.zeros(len(ranks), dtype=np.int64)
    choices = np.arange(1, top + 1)
    for k in range(1, n):  # extend every partial vector by edge k, keep the feasible ones
        ranks = np.concatenate(
            [np.repeat(ranks, top, axis=0), np.tile(choices, len(ranks)).reshape(-1, 1)], axis=1
        )
        cost = np.repeat(cost, top) + dims[k] * ranks[:, k - 1] * ranks[:, k]
        keep = cost < budget
        for a in range(k):
            keep &= ranks[:, a] * ranks[:, k] >= bounds[frozenset(order[a + 1 : k + 1])]
        ranks, cost = ranks[keep], cost[keep]
    cost = cost + dims[0] * ranks[:, -1] * ranks[:, 0]
    keep = cost < budget
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


def _ranks_match(
    shape: tuple[int, ...],
    order: tuple[int, ...],
    ranks: tuple[int, ...],
    bounds: dict[frozenset[int], int],
    cuts: tuple[np.ndarray, list[frozenset[int]]],
) -> bool:
    """Whether the ring's generic unfolding ranks equal the target's: the rank of a random
    network's unfolding by a set of modes is the smallest product of the capacities (edge
    ranks, and the dimensions of open legs cut) of a cut that separates those modes' legs
    from the others'. Rings whose ranks only bound the target's from above would fit it
    with fewer parameters; those that cannot reach it are ruled out."""
    sides, subsets = cuts
    log_rank = np.log(np.array(ranks, dtype=float))
    crossing = sides != np.roll(sides, -1, axis=1)  # edge k: nodes k and k + 1
    edge_cost = crossing @ log_rank  # (2^n,)
    log_dim = np.log(np.array([shape[m] for m in order], dtype=float))
    for subset in subsets:
        inside = np.array([m in subset for m in order])
        # a leg is cut when its node lies on the other side than its mode set
        cut_legs = np.where(inside, 1 - sides, sides) @ log_dim
        generic = round(float(np.exp(np.min(edge_cost + cut_legs))))
        if not 0 <= generic - bounds[subset] <= max(1, bounds[subset] // 20):
            return False
    return True


def ring_structures(
    target: Tensor, rse: float, budget: int, limit: int = 20
) -> list[TensorNetwork]:
    """The cheapest rings (chains among them) the unfoldings of ``target`` allow, over every
    cyclic order of the modes (up to reversal), under ``budget`` parameters; cheapest first.

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
    found: list[tuple[int, tuple[int, ...], tuple[int, ...]]] = []
    for rest in itertools.permutations(range(1, n)):
        if n > 2 and rest[0] > rest[-1]:
            continue  # the same ring read backwards
        order = (0, *rest)
        costs, ranks = _cycle_ranks(shape, order, bounds, budget)
        best = np.argsort(costs, kind="stable")[: 50 * limit]
        found += [(int(costs[i]), order, tuple(int(r) for r in ranks[i])) for i in best]
    found.sort(key=lambda item: item[0])
    cuts = _cut_table(n)
    nets = []
    for _, order, ranks in found:
        if len(nets) == limit:
            break
        if not _ranks_match(shape, order, ranks, bounds, cuts):
            continue
        edges = {(min(k, (k + 1) % n), max(k, (k + 1) % n)): r for k, r in enumerate(ranks)}
        nets.append(TensorNetwork(shape, [(m,) for m in order], edges, dtype=target.dtype))
    return nets
