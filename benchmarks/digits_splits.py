"""Score ``MPSClassifier`` settings on stratified splits of the digits quickstart's training part.

Usage (the commands behind the digits figures in benchmarks/RESULTS.md):

    python benchmarks/digits_splits.py --base '{"trainer": "sweep", "bond_dim": 2, "max_bond": 16,
        "epochs": 3}' --configs '[{}, {"batch_size": 32}]' --splits 12 --threads 1

Each configuration (keyword arguments of ``MPSClassifier`` over ``--base`` and
``random_state=0``) is fitted on 75% of each of ``--splits`` stratified splits of the training
part that ``tnml train digits`` uses (its held-out 25% is never read) and scored on the other
25%. ``--quickstart-test`` instead fits on the whole training part and scores the command's
own held-out split, as ``tnml train digits`` prints it.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from sklearn.model_selection import StratifiedShuffleSplit

import tnml
from tnml.workflows.data import load_training_data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", default="{}", help="JSON keyword arguments of every run")
    parser.add_argument("--configs", default="[{}]", help="a JSON list of keyword dicts")
    parser.add_argument("--splits", type=int, default=12)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--quickstart-test",
        action="store_true",
        help="fit on the whole training part, score the quickstart's held-out split",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    data = load_training_data("digits")
    X, y = np.asarray(data.X_train), np.asarray(data.y_train)
    base = {"random_state": 0, "verbose": 0, **json.loads(args.base)}
    for config in json.loads(args.configs):
        started = time.perf_counter()
        params = {**base, **config}
        if args.quickstart_test:
            clf = tnml.MPSClassifier(**params).fit(X, y)
            accuracy = clf.score(np.asarray(data.X_test), np.asarray(data.y_test))
            print(json.dumps(config), f"quickstart test accuracy {accuracy:.4f}", flush=True)
            continue
        splitter = StratifiedShuffleSplit(args.splits, test_size=0.25, random_state=1)
        accuracies = []
        for train, val in splitter.split(X, y):
            clf = tnml.MPSClassifier(**params).fit(X[train], y[train])
            accuracies.append(clf.score(X[val], y[val]))
        print(
            json.dumps(config),
            f"mean {np.mean(accuracies):.4f} min {np.min(accuracies):.4f}",
            " ".join(f"{a:.3f}" for a in accuracies),
            f"{time.perf_counter() - started:.0f}s",
            flush=True,
        )


if __name__ == "__main__":
    main()
