"""``learn`` on TnALE targets with a larger ring-fit budget: more work and more candidates.

Runs ``tnml.structure.learn`` exactly as ``structure_vs_tensorly.py synthetic`` does, on the
TnALE ring of each seed, with ``_RING_WORK`` set to ``--work`` multiply-adds and
``_RING_CANDIDATES`` to ``--candidates`` (the fit cap follows: three per candidate). Prints
success (rse <= 1e-5 at no more than the true ring's parameters), parameters, error, fits and
seconds, as the benchmark does.

    python benchmarks/tnale_ring_budget.py --seeds 128 140 119 124 --work 3e12 --candidates 400
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from structure_vs_tensorly import rse, synthetic_targets
from tnml.structure import greedy, learn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", required=True)
    parser.add_argument("--work", type=float, default=greedy._RING_WORK)
    parser.add_argument("--candidates", type=int, default=greedy._RING_CANDIDATES)
    args = parser.parse_args()
    torch.set_num_threads(1)
    greedy._RING_WORK = args.work
    greedy._RING_CANDIDATES = args.candidates
    greedy._RING_MAX_FITS = args.candidates * greedy._RING_STARTS
    for seed in args.seeds:
        truth = synthetic_targets(seed)["TnALE TR order 6"]
        target = truth.to_dense().numpy()
        target /= np.linalg.norm(target)
        start = time.perf_counter()
        net = learn(target, rse=1e-6, random_state=seed)
        error = rse(net.to_dense().numpy(), target)
        ok = error <= 1e-5 and net.n_params <= truth.n_params
        print(
            f"seed {seed}: {'ok' if ok else 'MISS'} params {net.n_params} (true {truth.n_params}) "
            f"rse {error:.1e} fits {net.n_fits} {time.perf_counter() - start:.0f}s",
            flush=True,
        )


if __name__ == "__main__":
    main()
