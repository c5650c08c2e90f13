"""Time the two ways of extending per-sample MPS environments by one site (issue 15).

Usage (the command behind the numbers reported from this file):

    python benchmarks/bench_environments.py --samples 20000 --bond-dims 8,32,100 --threads 1

``outer-gemm`` (what :func:`tnml.tensor.environments.extend_left` does): the outer product of
each environment row with the site's local vector, then one GEMM with the core reshaped to
``(Dl * d, Dr)``. ``gemm-contract`` (what the Born-machine sweeps did before): one GEMM with the
core reshaped to ``(Dl, d * Dr)``, then the contraction with the local vector. Both over the
same chunks of 4,096 samples, float32, d = 2; the median of ``--repeats`` timings is printed.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from tnml.tensor.environments import extend_left


def gemm_contract(env: torch.Tensor, core: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    dl, d, dr = core.shape
    matrix = core.reshape(dl, d * dr)
    out = env.new_empty(env.shape[0], dr)
    for s in range(0, env.shape[0], 4096):
        t = (env[s : s + 4096] @ matrix).reshape(-1, d, dr)
        out[s : s + 4096] = torch.einsum("tsr,ts->tr", t, phi[s : s + 4096])
    return out


def median_ms(fn, repeats: int) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20000)
    parser.add_argument("--bond-dims", default="8,32,100")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    print(f"{'D':>5} {'outer-gemm ms':>14} {'gemm-contract ms':>17} {'max |diff|':>11}")
    for bond in (int(b) for b in args.bond_dims.split(",")):
        env = torch.randn(args.samples, bond, generator=gen)
        core = torch.randn(bond, 2, bond, generator=gen)
        phi = torch.rand(args.samples, 2, generator=gen)
        ours = median_ms(lambda: extend_left(env, core, phi), args.repeats)  # noqa: B023
        before = median_ms(lambda: gemm_contract(env, core, phi), args.repeats)  # noqa: B023
        diff = float((extend_left(env, core, phi) - gemm_contract(env, core, phi)).abs().max())
        print(f"{bond:>5} {ours:>14.2f} {before:>17.2f} {diff:>11.1e}")


if __name__ == "__main__":
    main()
