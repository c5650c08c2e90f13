"""Validation accuracy of conjugate-gradient sweeps on 10,000 MNIST training images.

The options of ``train_sweep(solver="cg")`` were chosen with this script, on the first 9,000
training images with images 9,000-9,999 as validation data (the test set is not read):

    python benchmarks/sweep_cg_calibration.py --normalize 0 --l2 0
    python benchmarks/sweep_cg_calibration.py --normalize 0 --l2 1e-3

Bonds grow from 2 up to ``--max-bond`` over ``--sweeps`` sweeps of the quadratic cost
(``loss="quadratic"``), ``--passes`` CG passes per bond.
"""

from __future__ import annotations

import argparse
import time

import torch

import tnml
from tnml.data import downsample, flatten_images, load_mnist


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data/mnist")
    parser.add_argument("--normalize", type=int, choices=[0, 1], default=0)
    parser.add_argument("--l2", type=float, default=1e-3)
    parser.add_argument("--passes", type=int, default=2)
    parser.add_argument("--max-bond", type=int, default=10)
    parser.add_argument("--sweeps", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    images, labels = load_mnist(args.data_dir, "train")
    X = flatten_images(downsample(images[:10000], 14))
    y = labels[:10000]
    started = time.perf_counter()
    clf = tnml.MPSClassifier(
        trainer="sweep",
        bond_dim=2,
        max_bond=args.max_bond,
        epochs=args.sweeps,
        loss="quadratic",
        validation_fraction=0.0,
        random_state=0,
        verbose=0,
    )
    clf.fit(
        X[:9000],
        y[:9000],
        solver="cg",
        steps_per_bond=args.passes,
        l2=args.l2,
        normalize=bool(args.normalize),
    )
    print(
        f"normalize={bool(args.normalize)} l2={args.l2} passes={args.passes}: validation "
        f"accuracy {clf.score(X[9000:], y[9000:]):.4f}, training accuracy per sweep "
        f"{[round(h['train_accuracy'], 4) for h in clf.history_]}, "
        f"{time.perf_counter() - started:.0f} s"
    )


if __name__ == "__main__":
    main()
