"""Probe autodiff settings for ``MPSClassifier(bond_dim=10, epochs=2)`` on 10,000 MNIST images,
on validation data only (issue 17's 10,000-image goal; the test set is never read).

Usage (the commands behind the probe recorded in benchmarks/RESULTS.md):

    python benchmarks/defaults_probe_10k.py --data-dir DIR --subsets 1,2,3,4 \
        --configs '[{}, {"lr": 1.5e-3}, {"lr": 3e-3}, {"lr": 4e-3}, {"batch_size": 8}]'

Each configuration (keyword arguments of ``MPSClassifier``, or with ``--model ttn`` of
``TTNClassifier``, over its defaults) is fitted with
each ``random_state`` in ``--seeds`` (default 0) on training images ``[10,000 s, 10,000 (s + 1))``
for each subset ``s`` and scored on training images 50,000-59,999; one thread. Accuracies
are printed subset by subset, seed by seed within a subset.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

import tnml
from tnml.data import downsample, flatten_images, load_mnist


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data/mnist")
    parser.add_argument("--subsets", default="1,2,3,4")
    parser.add_argument("--configs", default="[{}]", help="a JSON list of keyword dicts")
    parser.add_argument("--model", choices=["mps", "ttn"], default="mps")
    parser.add_argument("--size", type=int, default=14, help="images downsampled to size x size")
    parser.add_argument("--seeds", default="0", help="random_state values, comma-separated")
    args = parser.parse_args()
    torch.set_num_threads(1)
    images, labels = load_mnist(args.data_dir, "train")
    x = flatten_images(downsample(images, args.size))
    subsets = [int(s) for s in args.subsets.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    estimator = tnml.MPSClassifier if args.model == "mps" else tnml.TTNClassifier
    for config in json.loads(args.configs):
        started = time.perf_counter()

        def fit(X: np.ndarray, y: np.ndarray, seed: int, config: dict = config) -> Any:
            clf = estimator(**{"bond_dim": 10, "epochs": 2, "random_state": seed, **config})
            return clf.fit(X, y)

        accuracies = validation_accuracies(fit, x, labels, subsets, seeds)
        print_row(json.dumps(config), accuracies, started)


def validation_accuracies(
    fit: Callable[[np.ndarray, np.ndarray, int], Any],
    x: np.ndarray,
    labels: np.ndarray,
    subsets: list[int],
    seeds: list[int],
) -> list[float]:
    """``fit(X, y, seed)`` on training images ``[10,000 s, 10,000 (s + 1))`` for each subset
    ``s`` and seed; the fitted classifiers' accuracies on training images 50,000-59,999, subset
    by subset, seed by seed within a subset."""
    x_val, y_val = x[50000:60000], labels[50000:60000]
    accuracies = []
    for s in subsets:
        rows = slice(s * 10000, (s + 1) * 10000)
        for seed in seeds:
            clf = fit(x[rows], labels[rows], seed)
            accuracies.append(float((clf.predict(x_val) == y_val).mean()))
    return accuracies


def print_row(label: str, accuracies: list[float], started: float) -> None:
    print(
        label,
        " ".join(f"{a:.4f}" for a in accuracies),
        f"mean {np.mean(accuracies):.4f}",
        f"{time.perf_counter() - started:.0f}s",
        flush=True,
    )


if __name__ == "__main__":
    main()
