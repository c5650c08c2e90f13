"""Where the true ring of a TnALE target sits among the ring candidates ``learn`` enumerates.

For each seed of ``structure_vs_tensorly.py synthetic`` (TnALE's order-6 ring, modes of 3):
the true ring with its reducible ranks cut (``r_k <= 3 * r_j`` for the two edges at a node),
its parameters, and its 1-based position in ``tnml.structure.rings.ring_structures`` (the
rings with the target's generic unfolding ranks, cheapest first) up to ``--limit`` candidates.

    python benchmarks/ring_candidate_positions.py --seeds 4 7 10 15 18 21 24 28 33 45
"""

from __future__ import annotations

import argparse
import time

import torch

from structure_vs_tensorly import synthetic_targets
from tnml.structure.rings import ring_structures
from tnml.tensor.network import TensorNetwork


def reduced(ranks: list[int], dim: int = 3) -> list[int]:
    """Ring ranks with every reducible edge cut: ``r_k <= dim * r_j`` for each neighbour."""
    r = list(ranks)
    for _ in range(len(r)):
        for k in range(len(r)):
            r[k] = min(r[k], dim * r[k - 1], dim * r[(k + 1) % len(r)])
    return r


def true_ring(seed: int) -> tuple[TensorNetwork, list[int], list[int], torch.Tensor]:
    """TnALE's ring of ``seed`` (``structure_vs_tensorly.synthetic_targets``), its ranks
    around the ring (edge ``k`` between modes ``k`` and ``k + 1``), those ranks with every
    reducible edge cut, and its dense tensor scaled to norm 1."""
    truth = synthetic_targets(seed)["TnALE TR order 6"]
    ranks = [truth.edges[(k, k + 1) if k < 5 else (0, 5)] for k in range(6)]
    return truth, ranks, reduced(ranks), truth.to_dense() / truth.to_dense().norm()


def candidates_and_key(
    seed: int, limit: int
) -> tuple[list[int], list[int], torch.Tensor, list[TensorNetwork], frozenset]:
    """TnALE's ring of ``seed``: its ranks, the ranks cut, the target, the ring candidates
    ``learn`` would fit (``ring_structures`` at rse 1e-6 under the cut ring's parameters plus
    one, at most ``limit``) and the true ring's ``edges_by_mode`` key."""
    _, ranks, cut, target = true_ring(seed)
    n_params = sum(cut[k - 1] * 3 * cut[k] for k in range(6))
    candidates = ring_structures(target, 1e-6, n_params + 1, limit=limit)
    wanted = frozenset((frozenset((k, (k + 1) % 6)), cut[k]) for k in range(6))
    return ranks, cut, target, candidates, wanted


def edges_by_mode(net) -> frozenset:
    return frozenset(
        (frozenset((net.modes[i][0], net.modes[j][0])), rank) for (i, j), rank in net.edges.items()
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", required=True)
    parser.add_argument("--limit", type=int, default=3000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for seed in args.seeds:
        start = time.perf_counter()
        ranks, cut, _, candidates, wanted = candidates_and_key(seed, args.limit)
        n_params = sum(cut[k - 1] * 3 * cut[k] for k in range(6))
        position = next(
            (i + 1 for i, net in enumerate(candidates) if edges_by_mode(net) == wanted), None
        )
        where = "not among them" if position is None else f"position {position}"
        print(
            f"seed {seed:3d}: ranks {ranks} cut to {cut} ({n_params} parameters); "
            f"{len(candidates)} candidates at most that size; true ring {where} "
            f"({time.perf_counter() - start:.1f} s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
