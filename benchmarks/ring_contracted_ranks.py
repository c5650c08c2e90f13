"""Do the ranks of contracted unfoldings tell TnALE's rings apart where unfolding ranks do not?

For each seed of ``structure_vs_tensorly.py synthetic`` (TnALE's order-6 ring, modes of 3):
the ring candidates ``learn`` fits (``ring_structures`` at rse 1e-6 under the true ring's
parameters plus one, at most ``--limit``), and for the target and each candidate (random
cores: its generic point) a signature: for every mode ``k``, the tensor contracted with a
random vector on mode ``k``, and the ranks of all its unfoldings. A candidate whose signature
differs from the target's cannot hold it. Prints the true ring's position before and after
this test and how many candidates survive it.

    python benchmarks/ring_contracted_ranks.py --seeds 128 138 --limit 300
"""

from __future__ import annotations

import argparse
import itertools
import time

import numpy as np
import torch

from ring_candidate_positions import candidates_and_key, edges_by_mode
from tnml.tensor.network import TensorNetwork


def splits(modes: list[int]) -> list[tuple[int, ...]]:
    """Each split of ``modes`` in two, once (the smaller side, or the side with the first)."""
    out = []
    for size in range(1, len(modes) // 2 + 1):
        for side in itertools.combinations(modes, size):
            if 2 * size < len(modes) or modes[0] in side:
                out.append(side)
    return out


def signature(dense: np.ndarray, vectors: list[np.ndarray]) -> tuple[int, ...]:
    """Ranks of every unfolding of ``dense`` contracted with ``vectors[k]`` on mode ``k``."""
    ranks = []
    for k in range(dense.ndim):
        contracted = np.tensordot(dense, vectors[k], axes=([k], [0]))
        modes = list(range(contracted.ndim))
        for side in splits(modes):
            rest = [m for m in modes if m not in side]
            rows = int(np.prod([contracted.shape[m] for m in side]))
            matrix = contracted.transpose(list(side) + rest).reshape(rows, -1)
            values = np.linalg.svd(matrix, compute_uv=False)
            ranks.append(int((values > 1e-8 * values[0]).sum()))
    return tuple(ranks)


def generic_dense(net: TensorNetwork, rng: np.random.Generator) -> np.ndarray:
    with torch.no_grad():
        for core in net.cores:
            core.copy_(torch.as_tensor(rng.standard_normal(tuple(core.shape))))
    return net.to_dense().numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", required=True)
    parser.add_argument("--limit", type=int, default=300)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for seed in args.seeds:
        start = time.perf_counter()
        _, _, target, candidates, wanted = candidates_and_key(seed, args.limit)
        rng = np.random.default_rng(seed)
        reference = signature(target.numpy(), [rng.standard_normal(3) for _ in range(6)])
        position, kept, kept_position = None, 0, None
        for i, net in enumerate(candidates):
            vectors = [rng.standard_normal(3) for _ in range(6)]
            same = signature(generic_dense(net, rng), vectors) == reference
            kept += same
            if edges_by_mode(net) == wanted:
                position = i + 1
                kept_position = kept if same else None
        if position is None:
            verdict = "not among the candidates"
        elif kept_position is None:
            verdict = "rejected"
        else:
            verdict = f"at {kept_position}"
        print(
            f"seed {seed}: {len(candidates)} candidates, true ring at {position}; "
            f"{kept} pass the contracted-rank test, the true ring {verdict} "
            f"({time.perf_counter() - start:.1f} s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
