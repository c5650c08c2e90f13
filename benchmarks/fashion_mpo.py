"""Fashion-MNIST 784 -> 50 -> 10 with its first layer compressed as an MPO (TT-matrix) or by SVD,
before and after retraining; TensorKrowch's MPO layer on the same trained network (issue 18).

Usage (the command behind the numbers reported from this file):

    python benchmarks/fashion_mpo.py --data-dir DIR --threads 1 \
        --out benchmarks/out/fashion_mpo.json

``DIR`` holds Fashion-MNIST's four IDX ``.gz`` files (Zalando's fashion-mnist repository; Debian
and Ubuntu install them with ``apt install dataset-fashion-mnist`` at
``/usr/share/datasets/fashion-mnist``).

The setup is TensorKrowch's "Tensorizing Neural Networks" example: a dense
``784 -> 50 -> ReLU -> 10`` network trained for 10 epochs (Adam 1e-3, weight decay 1e-5, batch
64) on the 60,000 training images in [0, 1]; its first layer's weight, reshaped with input
modes ``(2, 2, 7, 7, 2, 2)`` and output modes ``(1, 1, 5, 5, 2, 1)``, is split into an MPO by
sequential SVDs (``tnml.nn.TTLinear.from_linear``); then the whole network is retrained for 5
epochs (Adam 1e-4, weight decay 1e-5, batch 64). The example's budget is its MPO's size, 27,384
weights; the others are fc1's 39,200 weights over 4, 8 and 16. At each budget the MPO gets the
largest bond whose weights fit; the SVD baseline (``tnml.nn.LowRankLinear.from_linear``) is
run at the two ranks whose sizes bracket the MPO's (a rank costs 834 weights, so equal sizes
are rarely possible). No epoch is selected: every figure is the test accuracy after the
fixed number of epochs.

TensorKrowch (``pip install --no-deps tensorkrowch``) is run as its example runs it: an
``MPO`` built from the same weight (``mat_to_mpo``, same modes and bond cap), contracted with
the input given as an exact MPS (``vec_to_mps``, ``MPSData``), traced. Its accuracy without
retraining is measured; its retraining is timed over ``--tk-steps`` steps (a full 5 epochs
takes hours on a CPU), beside tnml's step on the same batches.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from typing import Any

import torch
from torch import nn

from tnml.data import load_mnist
from tnml.nn import LowRankLinear, TTLinear

try:  # TensorKrowch is optional: without it only tnml is run.
    import tensorkrowch as tk
except ImportError:  # pragma: no cover - depends on the environment
    tk = None

IN_MODES = (2, 2, 7, 7, 2, 2)
OUT_MODES = (1, 1, 5, 5, 2, 1)
EXAMPLE_BUDGET = 27_384  # TensorKrowch's example: 27,944 parameters less fc2 (510) and bias (50)
BATCH = 64


def load(
    data_dir: str, limit: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Training and test images as (n, 784) float32 in [0, 1], and their labels (the first
    ``limit`` of each split when given)."""
    out = []
    for split in ("train", "test"):
        images, labels = load_mnist(data_dir, split)
        images, labels = images[:limit], labels[:limit]
        out += [torch.as_tensor(images, dtype=torch.float32).reshape(len(images), -1)]
        out += [torch.as_tensor(labels, dtype=torch.long)]
    return out[0], out[1], out[2], out[3]


class Network(nn.Module):
    """``784 -> 50 -> ReLU -> 10``; ``fc1`` may be any layer mapping 784 features to 50."""

    def __init__(self, fc1: nn.Module | None = None, fc2: nn.Linear | None = None) -> None:
        super().__init__()
        self.fc1 = fc1 if fc1 is not None else nn.Linear(784, 50)
        self.fc2 = fc2 if fc2 is not None else nn.Linear(50, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x)))


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 1000) -> float:
    model.eval()
    with torch.no_grad():
        right = sum(
            int((model(xb).argmax(1) == yb).sum())
            for xb, yb in zip(x.split(batch), y.split(batch), strict=True)
        )
    model.train()
    return right / len(y)


def train(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, epochs: int, lr: float, seed: int
) -> float:
    """Adam (weight decay 1e-5), batch 64, shuffled per epoch; returns the seconds taken."""
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-5)
    gen = torch.Generator().manual_seed(seed)
    started = time.perf_counter()
    for _ in range(epochs):
        for idx in torch.randperm(len(y), generator=gen).split(BATCH):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    return time.perf_counter() - started


def n_weights(layer: nn.Module) -> int:
    """Parameters of a layer other than its bias."""
    return sum(p.numel() for name, p in layer.named_parameters() if name != "bias")


def mpo_within(linear: nn.Linear, budget: int) -> TTLinear:
    """The MPO of ``linear`` with the largest bond whose weights fit ``budget``."""
    best = None
    for bond in range(1, 200):
        layer = TTLinear.from_linear(linear, bond, in_modes=IN_MODES, out_modes=OUT_MODES)
        if n_weights(layer) > budget:
            break
        best = layer
        if layer.max_bond < bond:  # every bond at full rank: larger caps change nothing
            break
    if best is None:
        raise ValueError(f"no MPO fits {budget} weights")
    return best


def svd_ranks(linear: nn.Linear, weights: int) -> list[int]:
    """The SVD ranks whose sizes bracket ``weights``: the largest at most, the next above."""
    below = max(weights // (linear.in_features + linear.out_features), 1)
    return [below, below + 1]


def tk_layer(linear: nn.Linear, max_bond: int) -> nn.Module:
    """TensorKrowch's MPO of ``linear`` (as in its example), input given as an exact MPS."""
    k = len(IN_MODES)

    class TKLinear(tk.models.MPO):
        def __init__(self) -> None:
            weight = linear.weight.detach().T.reshape(*IN_MODES, *OUT_MODES)
            weight = weight.permute(*[a for j in range(k) for a in (j, k + j)])
            tensors = tk.decompositions.mat_to_mpo(weight, rank=max_bond, renormalize=True)
            super().__init__(tensors=tensors)
            self.bias = nn.Parameter(linear.bias.detach().clone())

        def set_data_nodes(self) -> None:
            self.mps_data = tk.models.MPSData(
                n_features=k, phys_dim=list(IN_MODES), bond_dim=10, boundary="obc"
            )

        def add_data(self, data: torch.Tensor) -> None:
            tensors = tk.decompositions.vec_to_mps(
                data.reshape(data.shape[0], *IN_MODES), n_batches=1, renormalize=True
            )
            self.mps_data.add_data(tensors)

        def contract(self):  # returns TensorKrowch's Node
            return super().contract(inline_input=True, inline_mats=True, mps=self.mps_data)

        def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
            return super().forward(x, *args, **kwargs).reshape(-1, 50) + self.bias

    layer = TKLinear()
    layer.trace(torch.zeros(1, 784))
    return layer


def seconds_per_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> float:
    """Median seconds of a retraining step (Adam 1e-4) over ``steps`` batches of 64."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-4, weight_decay=1e-5)
    times = []
    for idx in torch.arange(steps * BATCH).split(BATCH):
        started = time.perf_counter()
        opt.zero_grad()
        nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
        times.append(time.perf_counter() - started)
    return sorted(times)[len(times) // 2]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True, help="folder of Fashion-MNIST's IDX files")
    parser.add_argument("--ratios", default="4,8,16", help="fc1 compressions besides the example")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--retrain-epochs", type=int, default=5)
    parser.add_argument("--tk-steps", type=int, default=20)
    parser.add_argument("--no-tensorkrowch", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="first N images of each split")
    parser.add_argument("--out", default="benchmarks/out/fashion_mpo.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    x, y, x_test, y_test = load(args.data_dir, args.limit)

    dense = Network()
    seconds = train(dense, x, y, args.epochs, 1e-3, args.seed)
    dense_acc = accuracy(dense, x_test, y_test)
    print(f"dense: {dense_acc:.4f} after {args.epochs} epochs ({seconds:.0f} s)", flush=True)
    rows: list[dict[str, Any]] = []
    budgets = [("example", EXAMPLE_BUDGET)] + [
        (f"{r}x", math.floor(784 * 50 / float(r))) for r in args.ratios.split(",")
    ]
    for label, budget in budgets:
        mpo = mpo_within(dense.fc1, budget)
        layers = [("mpo", mpo)] + [
            ("svd", LowRankLinear.from_linear(dense.fc1, rank))
            for rank in svd_ranks(dense.fc1, n_weights(mpo))
        ]
        for method, fc1 in layers:
            torch.manual_seed(args.seed)
            fc2 = nn.Linear(50, 10)
            fc2.load_state_dict(dense.fc2.state_dict())
            model = Network(fc1, fc2)
            before = accuracy(model, x_test, y_test)
            seconds = train(model, x, y, args.retrain_epochs, 1e-4, args.seed)
            after = accuracy(model, x_test, y_test)
            size = f"bond {fc1.max_bond}" if method == "mpo" else f"rank {fc1.rank}"
            row = {
                "budget": label,
                "method": method,
                "size": size,
                "weights": n_weights(fc1),
                "compression": 784 * 50 / n_weights(fc1),
                "accuracy_before": before,
                "accuracy_after": after,
                "retrain_seconds": seconds,
            }
            rows.append(row)
            print(
                f"{label:8s} {method}: {size:8s} {row['weights']:6d} weights "
                f"({row['compression']:.1f}x)  {before:.4f} -> {after:.4f} ({seconds:.0f} s)",
                flush=True,
            )
    result: dict[str, Any] = {
        "machine": {"cpu": platform.processor() or platform.machine(), "threads": args.threads},
        "torch": torch.__version__,
        "dense_accuracy": dense_acc,
        "rows": rows,
    }
    if tk is not None and not args.no_tensorkrowch:
        mpo = mpo_within(dense.fc1, EXAMPLE_BUDGET)
        fc2 = nn.Linear(50, 10)
        fc2.load_state_dict(dense.fc2.state_dict())
        tk_model = Network(tk_layer(dense.fc1, mpo.max_bond), fc2)
        tk_acc = accuracy(tk_model, x_test, y_test, batch=BATCH)
        tk_step = seconds_per_step(tk_model, x, y, args.tk_steps)
        fc2 = nn.Linear(50, 10)
        fc2.load_state_dict(dense.fc2.state_dict())
        tnml_step = seconds_per_step(Network(mpo, fc2), x, y, args.tk_steps)
        tk_weights = sum(p.numel() for p in tk_model.fc1.parameters()) - 50
        result["tensorkrowch"] = {
            "version": tk.__version__,
            "max_bond": mpo.max_bond,
            "weights": tk_weights,
            "accuracy_before": tk_acc,
            "step_seconds": tk_step,
            "tnml_step_seconds": tnml_step,
        }
        print(
            f"TensorKrowch {tk.__version__} MPO, bond {mpo.max_bond}, {tk_weights} weights: "
            f"{tk_acc:.4f} without retraining; a retraining step {tk_step * 1e3:.1f} ms "
            f"(tnml's MPO: {tnml_step * 1e3:.2f} ms)",
            flush=True,
        )
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
