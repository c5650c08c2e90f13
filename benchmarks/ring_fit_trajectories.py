"""Can a ring fit that will not reach a TnALE target be told apart early from one that will?

For each seed of ``structure_vs_tensorly.py synthetic`` (TnALE's order-6 ring, modes of 3):
``--starts`` Levenberg-Marquardt fits of the true ring (reducible ranks cut) from standard
normal cores, and one fit of each of the first ``--wrong`` other ring candidates of
``ring_structures`` (cheapest first), every fit up to 300 steps and stopping after three
steps in a row that gain less than 1e-7 (finer than ``learn``'s 150 steps and 1e-4, to see
where each ends). Printed per fit: parameters, final error, LM steps, and at steps 10, 20, 30,
45 and 60 the relative error and the transfer-operator ratio of ``ring_start_success.py``
(second to first eigenvalue in modulus; near 1: close to a sum of two smaller rings).

    python benchmarks/ring_fit_trajectories.py --seeds 140 128 --starts 6 --wrong 8
"""

from __future__ import annotations

import argparse

import torch

from ring_candidate_positions import candidates_and_key, edges_by_mode
from ring_start_success import transfer_ratio
from tnml.tensor.network import TensorNetwork
from tnml.tensor.network_fit import fit_network

CHECKPOINTS = (10, 20, 30, 45, 60)


def trajectory(
    net: TensorNetwork, target: torch.Tensor, generator: torch.Generator
) -> tuple[float, int, dict[int, tuple[float, float]]]:
    """Fit ``net`` from standard normal cores; final error, steps, and (error, transfer
    ratio) at each of ``CHECKPOINTS`` the fit reaches."""
    with torch.no_grad():
        for core in net.cores:
            core.copy_(torch.randn(core.shape, generator=generator, dtype=core.dtype))
    seen: dict[int, tuple[float, float]] = {}

    def record(step: int, error: float) -> None:
        if step in CHECKPOINTS:
            seen[step] = (error, transfer_ratio(net))

    fit = fit_network(net, target, method="lm", max_sweeps=300, tol=1e-7, callback=record)
    return fit.rse, fit.n_sweeps, seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", required=True)
    parser.add_argument("--starts", type=int, default=6)
    parser.add_argument("--wrong", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for seed in args.seeds:
        _, cut, target, candidates, wanted = candidates_and_key(seed, 200)
        true_at = [i for i, net in enumerate(candidates) if edges_by_mode(net) == wanted]
        print(f"seed {seed}: true ring {cut}, candidate {[i + 1 for i in true_at]}", flush=True)
        generator = torch.Generator().manual_seed(seed)
        fits = [("true", TensorNetwork.ring((3,) * 6, cut, dtype=target.dtype))] * args.starts
        fits += [
            (f"other {i + 1}", net.copy())
            for i, net in enumerate(candidates[: args.wrong + len(true_at)])
            if i not in true_at
        ][: args.wrong]
        for label, net in fits:
            net = net.copy()
            error, steps, seen = trajectory(net, target, generator)
            print(
                f"  {label:9s} {net.n_params:4d} params: final {error:.1e} after {steps:3d} "
                "steps | "
                + " ".join(f"{k}: {e:.0e} / {r:.2f}" for k, (e, r) in sorted(seen.items())),
                flush=True,
            )


if __name__ == "__main__":
    main()
