"""An MNIST MLP whose 1024 -> 1024 hidden layer is a TT layer trained from scratch, against the
same MLP with a dense layer (issue 18; the setup of Novikov et al. 2015 that Hashemizadeh et
al. reused).

Usage (the command behind the numbers reported from this file):

    python benchmarks/mnist_tt_mlp.py --data-dir ../shared/data/mnist --ranks 1,2,4,8 \
        --epochs 12 --threads 2

Images (in [0, 1]) are resized to 32 x 32 (bilinear); the network is
``1024 -> 1024 (TT, modes 4^5 x 4^5, all ranks r) -> ReLU -> dropout 0.5 -> 10`` (the dense
baseline has an ``nn.Linear`` in place of the TT layer). Adam, learning rate 1e-3 halved every
4 epochs, batch 128. The last 5,000 training images are held out for validation; the test
error is that of the epoch with the best validation error. Compression is the dense hidden
weight's size over the TT cores' size.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch
from torch import nn

from tnml.data import load_mnist
from tnml.nn import TTLinear


def resized(images, size: int = 32) -> torch.Tensor:
    x = torch.as_tensor(images, dtype=torch.float32).reshape(-1, 1, 28, 28)  # in [0, 1]
    x = nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return x.reshape(len(x), -1)


def network(rank: int | None) -> nn.Sequential:
    hidden = (
        nn.Linear(1024, 1024)
        if rank is None
        else TTLinear(1024, 1024, max_bond=rank, in_modes=[4] * 5, out_modes=[4] * 5)
    )
    return nn.Sequential(hidden, nn.ReLU(), nn.Dropout(0.5), nn.Linear(1024, 10))


def error(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        wrong = sum(
            int((model(xb).argmax(1) != yb).sum())
            for xb, yb in zip(x.split(2000), y.split(2000), strict=True)
        )
    return wrong / len(y)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default="../shared/data/mnist")
    parser.add_argument("--ranks", default="1,2,4,8")
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    images, labels = load_mnist(args.data_dir, "train")
    test_images, test_labels = load_mnist(args.data_dir, "test")
    x, y = resized(images), torch.as_tensor(labels, dtype=torch.long)
    x_train, y_train, x_val, y_val = x[:-5000], y[:-5000], x[-5000:], y[-5000:]
    x_test, y_test = resized(test_images), torch.as_tensor(test_labels, dtype=torch.long)
    print(
        f"# {time.strftime('%Y-%m-%d')} {platform.machine()}, {args.threads} threads, "
        f"torch {torch.__version__}; train {len(y_train)}, val {len(y_val)}, test {len(y_test)}"
    )
    rows = []
    for rank in [None, *(int(r) for r in args.ranks.split(","))]:
        torch.manual_seed(0)
        model = network(rank)
        hidden = model[0]
        hidden_params = sum(p.numel() for p in hidden.parameters()) - 1024  # without bias
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        schedule = torch.optim.lr_scheduler.StepLR(optimizer, step_size=4, gamma=0.5)
        best = (2.0, 0.0, 0)
        start = time.perf_counter()
        for epoch in range(1, args.epochs + 1):
            model.train()
            order = torch.randperm(len(y_train))
            for idx in order.split(128):
                loss = nn.functional.cross_entropy(model(x_train[idx]), y_train[idx])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            schedule.step()
            val = error(model, x_val, y_val)
            if val < best[0]:
                best = (val, error(model, x_test, y_test), epoch)
        row = {
            "hidden": "dense" if rank is None else f"TT rank {rank}",
            "hidden_params": hidden_params,
            "compression": 1024 * 1024 / hidden_params,
            "best_epoch": best[2],
            "val_error": best[0],
            "test_error": best[1],
            "seconds": round(time.perf_counter() - start, 1),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)
    print(f"{'hidden layer':<12} {'params':>8} {'compression':>11} {'test error %':>12} {'s':>6}")
    for r in rows:
        print(
            f"{r['hidden']:<12} {r['hidden_params']:>8} {r['compression']:>11.1f} "
            f"{100 * r['test_error']:>12.2f} {r['seconds']:>6.0f}"
        )


if __name__ == "__main__":
    main()
