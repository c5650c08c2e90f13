"""How much of a trained MPS classifier survives moving its label, truncated in norm or in the
data's metric.

An MPS classifier is trained by autodiff on the first 9,000 MNIST training images (14x14,
bond 10, two epochs, the estimator's defaults); its label is then moved ``--moves`` bonds to
the right and back by two-site splits with no training (``BondSweeper.update_bond(lr=0)``),
each split truncated to ``--max-bond`` by the plain SVD (``truncation="norm"``) or in the
metric of the training samples' environments (``"data"``). Accuracy on those 9,000 images and
on training images 9,000-9,999 (held out; the test set is not read) is printed along the way::

    python benchmarks/sweep_truncation.py --data-dir ../shared/data/mnist --max-bonds 10,20
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import tnml
from tnml.data import downsample, flatten_images, load_mnist
from tnml.features import embed
from tnml.train.bond_sweeper import BondSweeper
from tnml.train.sweep import LabelledMPS


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data/mnist")
    parser.add_argument("--n-train", type=int, default=9000)
    parser.add_argument("--n-val", type=int, default=1000)
    parser.add_argument("--bond-dim", type=int, default=10)
    parser.add_argument("--max-bonds", default="10,20", help="truncation bonds, comma-separated")
    parser.add_argument("--moves", type=int, default=40, help="bonds moved each way")
    parser.add_argument("--every", type=int, default=10, help="report every this many moves")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    images, labels = load_mnist(args.data_dir, "train")
    n = args.n_train + args.n_val
    x = flatten_images(downsample(images[:n], 14)).astype(np.float32)
    y = labels[:n].astype(np.int64)
    started = time.perf_counter()
    clf = tnml.MPSClassifier(bond_dim=args.bond_dim, epochs=2, random_state=0, verbose=0)
    clf.fit(x[: args.n_train], y[: args.n_train])
    print(f"trained by autodiff in {time.perf_counter() - started:.0f} s")
    phi = embed(torch.from_numpy(x[: args.n_train]))
    phi_val = embed(torch.from_numpy(x[args.n_train :]))
    y_train = torch.from_numpy(y[: args.n_train])
    y_val = torch.from_numpy(y[args.n_train :])

    rows = []
    for max_bond in (int(b) for b in args.max_bonds.split(",")):
        for truncation in ("norm", "data"):
            sweeper = BondSweeper(
                LabelledMPS.from_module(clf.module_), phi, y_train, loss="cross_entropy"
            )
            curve = [(0, sweeper.training_metrics()[1], sweeper.evaluate(phi_val, y_val)[1])]
            moves = ["right"] * args.moves + ["left"] * args.moves
            discarded = []  # each split's discarded share of ||B||^2 (plain SVD's measure)
            for done, direction in enumerate(moves, start=1):
                c = sweeper.model.label_site
                before = sweeper.model.merged_bond(c if direction == "right" else c - 1)
                sweeper.update_bond(direction, max_bond=max_bond, cutoff=0.0, truncation=truncation)
                after = sweeper.model.merged_bond(c if direction == "right" else c - 1)
                discarded.append(float((before - after).square().sum() / before.square().sum()))
                if done % args.every == 0:
                    train = sweeper.training_metrics()[1]
                    curve.append((done, train, sweeper.evaluate(phi_val, y_val)[1]))
            text = "  ".join(f"{m}: {100 * a:.1f}/{100 * v:.1f}" for m, a, v in curve)
            print(f"bond {max_bond:3d}  {truncation:4s}  moves: train/held-out %  {text}")
            print(
                f"          share of ||B||^2 discarded per split: median "
                f"{np.median(discarded):.1e}, max {max(discarded):.1e}"
            )
            rows.append(
                {"max_bond": max_bond, "truncation": truncation, "curve": curve,
                 "discarded_share": discarded}
            )  # fmt: skip
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
