"""Why the 784-leaf tree classifier trains unstably: starts and readout temperatures, tried.

``TTNClassifier(bond_dim=20, epochs=2)`` on 10,000 MNIST training images at 28x28 (784
leaves, the 1d layout), every other setting at its default (Adam at the default step, 5e-4
at 784 leaves), scored on training images 50,000-59,999 (validation; the test set is never
read), one thread. Each variant changes one thing:

* ``fold``: the estimator's start (folded copies plus noise, a random root).
* ``stride``: the folded copy ``p = (a * s + b) mod Dp`` with a stride ``s`` coprime with
  ``Dp`` where the children's product does not fit (``Da * Db > Dp``); the library's fold
  uses ``s = Db``, which at ``Da = Db = Dp`` ignores the left child but for the sum of its
  entries.
* ``pca``: each node (but the root) the leading ``Dp`` eigenvectors of its children's
  product states' second-moment matrix over 2,000 training images, layer by layer
  (Stoudenmire 2018's unsupervised coarse-graining).

``stride`` and ``pca`` add the same noise as the library's start (the generator's draws are
replayed), so they differ from ``fold`` in the copy tensors alone.
* ``t0``: the readout's temperature starts at ``sqrt(L)`` (as the MPS's does) instead of 1.
* ``--temperature-lr``: the temperature's own Adam step (``train_classifier(temperature_lr=)``).

``--trace SUBSET``: one run's loss at every 25th step and its final temperature (with
``--lr``).

Usage (the commands behind benchmarks/RESULTS.md):

    python benchmarks/ttn_784_starts.py --variants fold,stride,pca,t0 --subsets 1,2,3,4
    python benchmarks/ttn_784_starts.py --variants fold --temperature-lr 1e-2 --subsets 1,2,3,4
    python benchmarks/ttn_784_starts.py --trace 4 --lr 1e-3
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Any

import numpy as np
import torch

import tnml
from defaults_probe_10k import print_row, validation_accuracies
from tnml.data import downsample, flatten_images, load_mnist
from tnml.features import embed
from tnml.nn.ttn import TTNClassifierModule
from tnml.train import autodiff

_library_reset = TTNClassifierModule.reset_parameters


def stride_fold(da: int, db: int, dp: int) -> torch.Tensor:
    """``(Da, Db, Dp)``: 1 at ``p = (a * s + b) mod Dp``, ``s = Db`` while the product fits,
    else the smallest ``s >= 3`` coprime with ``Dp``."""
    stride = db
    if da * db > dp:
        stride = 3
        while math.gcd(stride, dp) != 1:
            stride += 1
    a = torch.arange(da).reshape(-1, 1).expand(da, db)
    b = torch.arange(db).reshape(1, -1).expand(da, db)
    fold = torch.zeros(da, db, dp, dtype=torch.float64)
    fold[a, b, (a * stride + b) % dp] = 1.0
    return fold


def pca_nodes(module: TTNClassifierModule, x: torch.Tensor, noise: list[torch.Tensor]) -> None:
    """Set every node but the root to the leading eigenvectors of its children's product
    states' second moment over ``x`` (n, N), plus ``init_std`` times ``noise`` (one tensor per
    stacked parameter, its shape)."""
    phi = embed(x, module.feature_map, module.feature_dim).to(torch.float64)
    vectors = {leaf: phi[:, leaf] for leaf in range(module.tree.n_leaves)}
    for layer, row in enumerate(module.node_groups):
        for indices, which in row:
            param = module.nodes[which]
            _, da, db, dp = param.shape
            for position, k in enumerate(indices):
                node = (layer, k)
                if node == module.tree.root:
                    continue
                left, right = module.tree.children(node)
                product = torch.einsum("na,nb->nab", vectors[left], vectors[right]).flatten(1)
                if da * db <= dp:
                    basis = torch.eye(da * db, dp, dtype=product.dtype)
                else:
                    moment = product.T @ product
                    moment += 1e-10 * moment.trace() * torch.eye(da * db, dtype=moment.dtype)
                    basis = torch.linalg.eigh(moment).eigenvectors[:, -dp:].flip(-1)
                start = basis.reshape(da, db, dp).to(param.dtype)
                with torch.no_grad():
                    param[position] = start + module.init_std * noise[which][position]
                out = product @ basis
                vectors[node] = out / out.norm(dim=1, keepdim=True).clamp_min(1e-30)


def use_variant(variant: str, x_init: torch.Tensor) -> None:
    def reset(self: TTNClassifierModule, generator: torch.Generator | None = None) -> None:
        state = None if generator is None else generator.get_state()
        _library_reset(self, generator)
        if generator is None:  # the module's constructor; the estimator resets it seeded
            return
        if variant in ("stride", "pca"):  # the library's noise, drawn again in its order
            generator.set_state(state)
            noise = [torch.randn(p.shape, generator=generator, dtype=p.dtype) for p in self.nodes]
        with torch.no_grad():
            if variant == "stride":
                root = self.node_groups[-1][0][1]
                for i, param in enumerate(self.nodes):
                    if i == root:
                        continue
                    _, da, db, dp = param.shape
                    fold = stride_fold(da, db, dp).to(param.dtype)
                    param.copy_(fold.unsqueeze(0) + self.init_std * noise[i])
            elif variant == "pca":
                pca_nodes(self, x_init, noise)
            elif variant == "t0" and self.log_temperature is not None:
                self.log_temperature.fill_(0.5 * math.log(self.n_classes))

    TTNClassifierModule.reset_parameters = reset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data/mnist")
    parser.add_argument("--variants", default="fold")
    parser.add_argument("--subsets", default="1,2,3,4")
    parser.add_argument("--temperature-lr", type=float, default=None)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--trace", type=int, default=None, help="one run on this subset, traced")
    args = parser.parse_args()
    torch.set_num_threads(1)
    images, labels = load_mnist(args.data_dir, "train")
    x = flatten_images(downsample(images, 28)).astype(np.float32)
    x_val, y_val = x[50000:60000], labels[50000:60000]
    fit_kwargs = {} if args.temperature_lr is None else {"temperature_lr": args.temperature_lr}
    if args.trace is not None:
        losses: list[float] = []
        original = autodiff.AutodiffRule.__setattr__

        class Recorded(list):
            def append(self, value: float) -> None:
                losses.append(value)
                super().append(value)

        def record(self: object, name: str, value: object) -> None:
            if name == "batch_losses":
                value = Recorded(value)
            original(self, name, value)

        autodiff.AutodiffRule.__setattr__ = record
        rows = slice(args.trace * 10000, (args.trace + 1) * 10000)
        clf = tnml.TTNClassifier(bond_dim=20, epochs=2, random_state=0, lr=args.lr)
        clf.fit(x[rows], labels[rows], **fit_kwargs)
        step = "the default step" if args.lr is None else f"lr {args.lr}"
        print(f"subset {args.trace}, {step}: loss every 25th step (mean of 5)")
        for start in range(0, len(losses), 25):
            print(f"  step {start:5d}: {np.mean(losses[start : start + 5]):.3f}")
        accuracy = float((clf.predict(x_val) == y_val).mean())
        temperature = float(clf.module_.log_temperature.detach().exp())
        print(f"validation accuracy {accuracy:.4f}, final temperature {temperature:.3f}")
        return
    subsets = [int(v) for v in args.subsets.split(",")]
    for variant in args.variants.split(","):
        started = time.perf_counter()

        def fit(X: np.ndarray, y: np.ndarray, seed: int, variant: str = variant) -> Any:
            use_variant(variant, torch.as_tensor(X[:2000]))
            clf = tnml.TTNClassifier(bond_dim=20, epochs=2, random_state=seed, lr=args.lr)
            return clf.fit(X, y, **fit_kwargs)

        accuracies = validation_accuracies(fit, x, labels, subsets, [0])
        label = f"{variant} temperature_lr {args.temperature_lr} lr {args.lr}:"
        print_row(label, accuracies, started)


if __name__ == "__main__":
    main()
