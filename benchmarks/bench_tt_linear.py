"""Latency and FLOPs of tnml's TTLinear against nn.Linear, a rank-r SVD layer and
tensorly-torch's FactorizedLinear (issue 18), on the same inputs, CPU.

Usage (the command behind the numbers reported from this file):

    python benchmarks/bench_tt_linear.py --shapes "1024x1024:4,4,4,4,4;1024x1024:32,32" \
        --bonds 4,8,16,32,64 --batches 64,256 --threads 2

A shape is ``INxOUT:in_modes`` (the same modes out), ``INxOUT:in_modes/out_modes``, or
``INxOUT:fast,K``: ``K`` cores with the modes ``tnml.nn.tt.fast_modes`` picks at each bond
(what ``TTLinear(..., modes="fast")`` uses).

For each shape, TT bond and batch: parameters of the TT cores and their compression against
the dense weight, the multiply-adds of nn.Linear over those of TTLinear's forward (its cores
grouped by ``contraction_plan``, shown as the sizes of the groups), and the median latency (ms)
of the forward pass with gradients off for nn.Linear, TTLinear, TTLinear contracting one core
at a time (the plain factorised forward), the SVD layer with as many parameters as the TT
cores (``Linear(in, r) -> Linear(r, out)``), and, when installed (``pip install --no-deps
tensorly tensorly-torch``), tensorly-torch's ``FactorizedLinear`` with a block-TT of the same
modes and rank in its ``"factorized"`` implementation.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from tnml.nn import TTLinear
from tnml.nn.tt import contraction_plan, fast_modes


def median_ms(fn, repeats: int = 30) -> float:
    with torch.no_grad():
        for _ in range(3):
            fn()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def svd_layer(linear: nn.Linear, rank: int) -> nn.Sequential:
    u, s, vh = torch.linalg.svd(linear.weight.detach(), full_matrices=False)
    first = nn.Linear(linear.in_features, rank, bias=False)
    second = nn.Linear(rank, linear.out_features)
    with torch.no_grad():
        first.weight.copy_(vh[:rank] * s[:rank, None])
        second.weight.copy_(u[:, :rank])
        second.bias.copy_(linear.bias)
    return nn.Sequential(first, second)


def tltorch_layer(
    linear: nn.Linear, modes: list[int], out_modes: list[int], rank: int
) -> nn.Module | None:
    try:
        import tltorch
    except ImportError:
        return None
    return tltorch.FactorizedLinear.from_linear(
        linear,
        auto_tensorize=False,
        in_tensorized_features=tuple(modes),
        out_tensorized_features=tuple(out_modes),
        factorization="blocktt",
        rank=rank,
        implementation="factorized",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="1024x1024:4,4,4,4,4")
    parser.add_argument("--bonds", default="4,8,16,32")
    parser.add_argument("--batches", default="64,256")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(
        f"{'shape':>10} {'modes in/out':>13} {'D':>3} {'batch':>5} {'params x':>8} "
        f"{'flops x':>7} {'plan':>9} "
        f"{'Linear ms':>9} {'TTLinear ms':>11} {'per-core ms':>11} {'SVD ms':>7} "
        f"{'tltorch ms':>10}"
    )
    for spec in args.shapes.split(";"):
        size, modes_text = spec.split(":")
        n_in, n_out = (int(v) for v in size.split("x"))
        linear = nn.Linear(n_in, n_out)
        for bond in (int(b) for b in args.bonds.split(",")):
            if modes_text.startswith("fast"):
                n_cores = int(modes_text.partition(",")[2] or 2)
                modes, out_modes = fast_modes(n_in, n_out, n_cores, bond)
            else:
                in_text, _, out_text = modes_text.partition("/")
                modes = [int(m) for m in in_text.split(",")]
                out_modes = [int(m) for m in (out_text or in_text).split(",")]
            tt = TTLinear.from_linear(linear, max_bond=bond, in_modes=modes, out_modes=out_modes)
            tt_params = sum(c.numel() for c in tt.cores)
            rank = max(1, round(tt_params / (n_in + n_out)))
            svd = svd_layer(linear, rank)
            tl = tltorch_layer(linear, modes, out_modes, bond)
            shapes = tuple(tuple(c.shape) for c in tt.cores)
            for batch in (int(b) for b in args.batches.split(",")):
                x = torch.randn(batch, n_in)
                plan = "+".join(str(j - i) for i, j in contraction_plan(shapes, batch))
                tl_ms = f"{median_ms(lambda: tl(x)):10.3f}" if tl is not None else f"{'-':>10}"  # noqa: B023
                print(
                    f"{size:>10} {'x'.join(map(str, modes))}/{'x'.join(map(str, out_modes))} "
                    f"{bond:>3} {batch:>5} {n_in * n_out / tt_params:8.1f} "
                    f"{n_in * n_out * batch / tt.flops(batch):7.2f} {plan:>9} "
                    f"{median_ms(lambda: linear(x)):9.3f} {median_ms(lambda: tt(x)):11.3f} "  # noqa: B023
                    f"{median_ms(lambda: tt._factorized(x)):11.3f} "  # noqa: B023
                    f"{median_ms(lambda: svd(x)):7.3f} {tl_ms}",  # noqa: B023
                    flush=True,
                )


if __name__ == "__main__":
    main()
