"""The default Adam step on a long chain: digits upscaled to 24x24 (576 sites), bond 20.

Fits ``MPSClassifier(bond_dim=20, epochs=4, random_state=seed)`` with the default step and
with the old fixed 2e-3 on scikit-learn's digits, each pixel repeated 3x3, and prints the
accuracy on a stratified held-out quarter (the setting of the test
``test_a_long_chain_with_a_large_bond_trains_with_the_default_step``).

Usage (the command behind the figures in benchmarks/RESULTS.md):

    python benchmarks/long_chain_digits.py --seeds 0,1,2,3
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import tnml


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2,3")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    X, y = load_digits(return_X_y=True)
    X = np.kron(X.reshape(-1, 8, 8), np.ones((1, 3, 3))).reshape(len(X), -1) / 16
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    print("seed  default step  lr 2e-3")
    for seed in (int(s) for s in args.seeds.split(",")):
        scores = []
        for lr in (None, 2e-3):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                clf = tnml.MPSClassifier(bond_dim=20, epochs=4, lr=lr, random_state=seed)
                scores.append(clf.fit(X_tr, y_tr).score(X_te, y_te))
        print(f"{seed:4d}  {scores[0]:12.4f}  {scores[1]:7.4f}", flush=True)


if __name__ == "__main__":
    main()
