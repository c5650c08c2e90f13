"""Sizes for many layers under one budget, from each layer's table of candidates."""

from __future__ import annotations

import heapq
from collections.abc import Sequence

from tnml.compression.methods import Candidate
from tnml.exceptions import InvalidInputError

__all__ = ["allocate"]


def _lower_hull(points: Sequence[Candidate], cost: str) -> list[Candidate]:
    """The candidates on the lower convex hull of (cost, error), by increasing cost: the only
    ones a greedy exchange of error for cost ever picks."""
    hull: list[Candidate] = []
    for c in sorted(points, key=lambda c: (getattr(c, cost), c.error)):
        if hull and c.error >= hull[-1].error:
            continue  # costs more, no better
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            ca, cb, cc = getattr(a, cost), getattr(b, cost), getattr(c, cost)
            # b above the segment a-c: drop it
            if (b.error - a.error) * (cc - ca) >= (c.error - a.error) * (cb - ca):
                hull.pop()
            else:
                break
        hull.append(c)
    return hull


def allocate(
    tables: Sequence[Sequence[Candidate]],
    budget: float,
    *,
    cost: str = "params",
    uniform_budgets: Sequence[float] | None = None,
) -> list[Candidate]:
    """One candidate per layer, with total ``cost`` at most ``budget``.

    Parameters
    ----------
    tables : sequence of sequences of Candidate
        Per layer, its candidates (see :func:`tnml.compression.methods.candidates`).
    budget : float
        Largest total of ``cost`` over the layers.
    cost : {"params", "flops"}
    uniform_budgets : sequence of float, optional
        Instead of one global budget, one per layer (each layer alone takes its largest
        candidate within its own): the allocation without a sensitivity profile.

    Returns
    -------
    list of Candidate, one per table.

    Notes
    -----
    The global allocation is greedy on the lower convex hulls of (cost, error): start every
    layer at its cheapest candidate, then repeatedly take the upgrade with the largest fall of
    error per unit of cost that still fits. The summed error is the objective, so each layer's
    error counts relative to its own output.
    """
    if any(not t for t in tables):
        raise InvalidInputError(
            "ratio: a layer has no compressed size with fewer parameters than it has; "
            "compress fewer layers or use another method"
        )
    if uniform_budgets is not None:
        chosen = []
        for table, own in zip(tables, uniform_budgets, strict=True):
            fits = [c for c in table if getattr(c, cost) <= own]
            if not fits:
                raise InvalidInputError(
                    f"ratio: the budget of {own:.0f} {cost} leaves a layer below its smallest "
                    f"size ({getattr(table[0], cost)} {cost}); ask for a smaller ratio"
                )
            chosen.append(min(fits, key=lambda c: c.error))
        return chosen
    hulls = [_lower_hull(t, cost) for t in tables]
    position = [0] * len(hulls)
    spent = sum(getattr(h[0], cost) for h in hulls)
    if spent > budget:
        raise InvalidInputError(
            f"ratio: the budget of {budget:.0f} {cost} is below the {spent} that the smallest "
            "size of every layer takes; ask for a smaller ratio or compress fewer layers"
        )

    def gain(i: int) -> tuple[float, int] | None:
        j = position[i]
        if j + 1 >= len(hulls[i]):
            return None
        a, b = hulls[i][j], hulls[i][j + 1]
        return ((a.error - b.error) / max(getattr(b, cost) - getattr(a, cost), 1), i)

    heap = [(-g, i) for i in range(len(hulls)) if (gi := gain(i)) for g, _ in [gi]]
    heapq.heapify(heap)
    while heap:
        _, i = heapq.heappop(heap)
        j = position[i]
        step = getattr(hulls[i][j + 1], cost) - getattr(hulls[i][j], cost)
        if spent + step > budget:
            continue  # this layer's next step does not fit; others may
        spent += step
        position[i] = j + 1
        if (gi := gain(i)) is not None:
            heapq.heappush(heap, (-gi[0], i))
    chosen = [h[p] for h, p in zip(hulls, position, strict=True)]
    # what the hull steps left: any candidate (on the hull or not) that fits and helps
    while True:
        moves = [
            (
                (chosen[i].error - c.error) / max(getattr(c, cost) - getattr(chosen[i], cost), 1),
                i,
                c,
            )
            for i, table in enumerate(tables)
            for c in table
            if c.error < chosen[i].error
            and spent - getattr(chosen[i], cost) + getattr(c, cost) <= budget
        ]
        if not moves:
            return chosen
        _, i, c = max(moves, key=lambda move: move[0])
        spent += getattr(c, cost) - getattr(chosen[i], cost)
        chosen[i] = c
