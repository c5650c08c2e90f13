"""One-class MNIST anomaly detection: tnml.MPSAnomalyDetector against scikit-learn, one run.

For each digit c (ten runs): fit every detector on the training images of c only, score a
set of images of all digits, and compute the AUROC of "not c" against the anomaly score.
All detectors see the same preprocessing: 28x28 images block-averaged to 14x14, pixels in
[0, 1] (196 features). Baselines: IsolationForest, OneClassSVM (RBF) and PCA
reconstruction error.

``--split val`` chooses settings without touching the test set: it trains on 90% of each
digit's training images and scores a held-out 10% of the training set (all digits).
``--split test`` trains on all training images of the digit and scores the 10,000 test
images once.

Usage (the commands recorded in benchmarks/RESULTS.md):

    python benchmarks/anomaly_mnist.py --split test --out benchmarks/out/anomaly_mnist.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.decomposition import PCA
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score
from sklearn.svm import OneClassSVM

import tnml
from tnml.data import downsample, flatten_images, load_mnist


class PCAReconstruction:
    """Anomaly score = squared reconstruction error after projecting on the top components."""

    def __init__(self, n_components: float | int) -> None:
        self.pca = PCA(n_components=n_components, random_state=0)

    def fit(self, X: np.ndarray) -> PCAReconstruction:
        self.pca.fit(X)
        return self

    def score_samples(self, X: np.ndarray) -> np.ndarray:
        rebuilt = self.pca.inverse_transform(self.pca.transform(X))
        return -((X - rebuilt) ** 2).sum(axis=1)


def detectors(args: argparse.Namespace) -> dict:
    return {
        "tnml MPS": lambda: tnml.MPSAnomalyDetector(
            bond_dim=args.bond_dim,
            encoding=args.encoding,
            n_bins=args.n_bins,
            binning=args.binning,
            epochs=args.sweeps,
            random_state=args.seed,
        ),
        "IsolationForest": lambda: IsolationForest(n_estimators=200, random_state=args.seed),
        "OneClassSVM": lambda: OneClassSVM(kernel="rbf", gamma="scale", nu=0.1),
        "PCA reconstruction": lambda: PCAReconstruction(n_components=args.pca_variance),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data/mnist")
    parser.add_argument("--split", choices=["val", "test"], default="val")
    parser.add_argument("--size", type=int, default=14)
    parser.add_argument("--digits", default="0,1,2,3,4,5,6,7,8,9")
    parser.add_argument("--bond-dim", type=int, default=16)
    parser.add_argument("--n-bins", type=int, default=2)
    parser.add_argument("--binning", choices=["uniform", "quantile"], default="uniform")
    parser.add_argument("--sweeps", type=int, default=3)
    parser.add_argument("--encoding", choices=["trig", "bins"], default="trig")
    parser.add_argument("--pca-variance", type=float, default=0.9)
    parser.add_argument("--only", default=None, help="comma-separated detector names")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    def load(split: str) -> tuple[np.ndarray, np.ndarray]:
        images, labels = load_mnist(args.data_dir, split)
        return flatten_images(downsample(images, args.size)).astype(np.float64), labels

    X_pool, y_pool = load("train")
    if args.split == "val":
        order = np.random.default_rng(args.seed).permutation(len(y_pool))
        held = order[: len(order) // 10]
        kept = order[len(order) // 10 :]
        X_fit_all, y_fit_all = X_pool[kept], y_pool[kept]
        X_score, y_score = X_pool[held], y_pool[held]
    else:
        X_fit_all, y_fit_all = X_pool, y_pool
        X_score, y_score = load("test")

    makers = detectors(args)
    if args.only:
        makers = {name: makers[name] for name in args.only.split(",")}
    digits = [int(d) for d in args.digits.split(",")]
    table: dict[str, dict[int, float]] = {name: {} for name in makers}
    seconds: dict[str, float] = {name: 0.0 for name in makers}
    for digit in digits:
        X_fit = X_fit_all[y_fit_all == digit]
        anomalous = (y_score != digit).astype(int)
        for name, make in makers.items():
            started = time.perf_counter()
            model = make().fit(X_fit)
            scores = model.score_samples(X_score)
            seconds[name] += time.perf_counter() - started
            table[name][digit] = float(roc_auc_score(anomalous, -scores))
        print(
            f"digit {digit}: " + "  ".join(f"{name} {table[name][digit]:.4f}" for name in makers),
            flush=True,
        )
    means = {name: float(np.mean(list(values.values()))) for name, values in table.items()}
    print("mean AUROC: " + "  ".join(f"{name} {means[name]:.4f}" for name in makers))
    if args.out:
        result = {
            "split": args.split,
            "auroc": {
                name: {str(d): v for d, v in values.items()} for name, values in table.items()
            },
            "mean_auroc": means,
            "seconds": seconds,
            "args": vars(args),
            "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}",
            "tnml_version": tnml.__version__,
        }
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
