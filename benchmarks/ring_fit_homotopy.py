"""Do fits of a TnALE target's true ring succeed more often from a larger or smaller ring?

For each seed of ``structure_vs_tensorly.py synthetic`` (TnALE's order-6 ring, modes of 3),
``--starts`` fits of the true ring (reducible ranks cut) in three ways, each start from
standard normal cores and fitted by ``learn``'s ring fit (``_fit_ring_lm``: LM, 150 steps,
stall test 1e-4, the finer test below 1e-2):

* ``plain``: the ring itself, as ``learn`` fits it (with its negative-curvature step);
* ``above``: a ring with every rank one larger, fitted, then each edge shrunk back by SVD
  (``TensorNetwork.with_rank``) and refitted, one edge after another;
* ``below``: a ring with every rank one smaller (at least 1), fitted, then every edge grown
  back with small noise and the ring refitted once.

Prints the starts that reach rse 1e-6 and the LM steps spent (steps of larger rings cost
more: entries x parameters^2 each).

    python benchmarks/ring_fit_homotopy.py --seeds 140 128 --starts 6
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from ring_candidate_positions import true_ring
from tnml.structure import greedy
from tnml.tensor.network import TensorNetwork

N_MODES = 6
RING_EDGES = [(k, k + 1) if k < N_MODES - 1 else (0, N_MODES - 1) for k in range(N_MODES)]


def random_ring(ranks: list[int], target: torch.Tensor, generator: torch.Generator):
    net = TensorNetwork.ring((3,) * N_MODES, ranks, dtype=target.dtype)
    with torch.no_grad():
        for core in net.cores:
            core.copy_(torch.randn(core.shape, generator=generator, dtype=core.dtype))
    return net


def plain(ranks, target, generator) -> tuple[float, int]:
    net = TensorNetwork.ring((3,) * N_MODES, ranks, dtype=target.dtype)
    return greedy._fit_ring_from_random_cores(net, target, 1e-6, generator)


def above(ranks, target, generator) -> tuple[float, int]:
    net = random_ring([r + 1 for r in ranks], target, generator)
    error, steps = greedy._fit_ring_lm(net, target, 1e-6)
    for edge, rank in zip(RING_EDGES, ranks, strict=True):
        net = net.with_rank(edge, rank)
        error, more = greedy._fit_ring_lm(net, target, 1e-6)
        steps += more
    return error, steps


def below(ranks, target, generator) -> tuple[float, int]:
    net = random_ring([max(1, r - 1) for r in ranks], target, generator)
    error, steps = greedy._fit_ring_lm(net, target, 1e-6)
    for edge, rank in zip(RING_EDGES, ranks, strict=True):
        net = net.with_rank(edge, rank, generator=generator)
    error, more = greedy._fit_ring_lm(net, target, 1e-6)
    return error, steps + more


ARMS: dict[str, Callable] = {"plain": plain, "above": above, "below": below}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", required=True)
    parser.add_argument("--starts", type=int, default=6)
    args = parser.parse_args()
    torch.set_num_threads(1)
    totals = {arm: [0, 0] for arm in ARMS}
    for seed in args.seeds:
        _, _, cut, target = true_ring(seed)
        for arm, fit in ARMS.items():
            generator = torch.Generator().manual_seed(seed)
            start = time.perf_counter()
            results = [fit(cut, target, generator) for _ in range(args.starts)]
            reached = sum(error <= 1e-6 for error, _ in results)
            steps = sum(s for _, s in results)
            totals[arm][0] += reached
            totals[arm][1] += steps
            print(
                f"seed {seed} ranks {cut} {arm:5s}: {reached}/{args.starts} reached, {steps} "
                f"steps, {time.perf_counter() - start:.0f} s; "
                + " ".join(f"{error:.0e}" for error, _ in results),
                flush=True,
            )
    for arm, (reached, steps) in totals.items():
        total = args.starts * len(args.seeds)
        print(f"all seeds, {arm:5s}: {reached}/{total} reached, {steps} steps")


if __name__ == "__main__":
    main()
