"""How often a random start of the true ring reaches a TnALE target, with and without the
negative-curvature step of ``learn``'s ring fits.

For each seed of ``structure_vs_tensorly.py synthetic`` (TnALE's order-6 ring, modes of 3):
the true ring with its reducible ranks cut (as ``ring_candidate_positions.py``), fitted from
``--starts`` standard normal starts by ``tnml.structure.greedy._fit_ring_from_random_cores``
(LM, the finer stall test below 1e-2, and the step where it applies), once as the library
does and once with the step switched off, from the same starts (one generator per seed and
arm, seeded alike). Prints, per seed and arm, the starts that reach rse 1e-6, the steps that
formed normal equations (the work ``learn`` counts) and each start's final error with, in
brackets, the ratio of the second to the first eigenvalue (in modulus) of the fitted ring's
transfer operator (the product around the ring of ``sum_i A_k[i] (x) A_k[i]``): near 1 the
ring is close to a sum of two smaller rings; the target's own rings have ratios of a few
hundredths.

    python benchmarks/ring_start_success.py --seeds 128 138 140 146 --starts 8
"""

from __future__ import annotations

import argparse
import time

import torch

from ring_candidate_positions import true_ring
from tnml.structure import greedy
from tnml.tensor.network import TensorNetwork


def transfer_ratio(net: TensorNetwork) -> float:
    """``|lambda_2| / |lambda_1|`` of the transfer operator of a ring whose node ``k`` carries
    mode ``k`` (``TensorNetwork.ring``)."""
    n = net.n_nodes
    product = None
    for k in range(n):
        left, right = tuple(sorted(((k - 1) % n, k))), tuple(sorted((k, (k + 1) % n)))
        edges = list(net.structure.node_edges(k))
        core = net.cores[k].permute(1 + edges.index(left), 0, 1 + edges.index(right))
        a, _, b = core.shape
        transfer = torch.einsum("aib,cid->acbd", core, core).reshape(a * a, b * b)
        product = transfer if product is None else product @ transfer
    values = torch.linalg.eigvals(product).abs().sort(descending=True).values
    return float(values[1] / values[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", required=True)
    parser.add_argument("--starts", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(1)
    escape = greedy._RING_ESCAPE_BELOW
    totals = {"with the step": [0, 0, 0.0], "without": [0, 0, 0.0]}
    try:
        for seed in args.seeds:
            truth, _, cut, target = true_ring(seed)
            print(f"seed {seed:3d}: the target's ring, transfer ratio {transfer_ratio(truth):.2f}")
            for arm, below in (("with the step", escape), ("without", 0.0)):
                greedy._RING_ESCAPE_BELOW = below
                generator = torch.Generator().manual_seed(seed)
                start = time.perf_counter()
                results = []
                for _ in range(args.starts):
                    net = TensorNetwork.ring((3,) * 6, cut, dtype=target.dtype)
                    error, steps = greedy._fit_ring_from_random_cores(net, target, 1e-6, generator)
                    results.append((error, steps, transfer_ratio(net)))
                seconds = time.perf_counter() - start
                reached = sum(error <= 1e-6 for error, _, _ in results)
                steps = sum(s for _, s, _ in results)
                for k, value in enumerate((reached, steps, seconds)):
                    totals[arm][k] += value
                print(
                    f"seed {seed:3d} ranks {cut} {arm:13s}: {reached}/{args.starts} reached, "
                    f"{steps} steps, {seconds:.1f} s; "
                    + " ".join(f"{error:.0e} [{ratio:.2f}]" for error, _, ratio in results),
                    flush=True,
                )
    finally:
        greedy._RING_ESCAPE_BELOW = escape
    for arm, (reached, steps, seconds) in totals.items():
        print(
            f"all seeds, {arm:13s}: {reached}/{args.starts * len(args.seeds)} reached, "
            f"{steps} steps, {seconds:.1f} s"
        )


if __name__ == "__main__":
    main()
