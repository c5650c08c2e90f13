"""Which metric should a Born-machine sweep truncate a bond in? Measured offline.

Takes a trained MPS Born machine (a ``--save-model`` file of ``mnist_born.py``) and the
training images it was fitted on; at each chosen bond it does what a sweep does (merge the two
cores, take ``--steps`` floored gradient steps of size ``--lr`` on the unit sphere) and then
splits the merged tensor back to ``--max-bond`` in several metrics, printing the local NLL
``-mean log psi^2 + log ||B||^2`` after each split minus the NLL before it (lower is better;
0 would be a lossless split). The metrics:

- ``norm``: the plain truncated SVD (``truncation="norm"``);
- ``data``: the unit environments' Grams (``truncation="data"``);
- ``rel``: the Gauss-Newton metric of ``-log psi_i^2``, ``mean x_i x_i^T (x) y_i y_i^T /
  psi_i^2`` (unit ``x_i``, ``y_i``; ``psi_i = x_i^T B y_i``), in its nearest Kronecker form
  (one pass of Van Loan's alternation from ``G_R = I``);
- ``rel+z``: ``rel`` plus the ``log Z`` term's ``||dB||^2 / ||B||^2``, as ``(A + a I) (x)
  (C + c I)`` with ``a c`` scaled to it.

Usage (the command behind the figures in benchmarks/RESULTS.md):

    python benchmarks/born_split_metrics.py \
        --model benchmarks/out/mnist_born_mps_random1_data_stage1.tnml --random-subset 1 \
        --bonds 100,200,250,300,350,400,450,500,600,700
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch
from torch import Tensor

import tnml
from mnist_born import binarised
from tnml.tensor.decomp import split_tensor, split_tensor_in_metric
from tnml.tensor.environments import bond_projections
from tnml.train.born_sweep import (
    _bond_gradient_indexed,
    _data_grams,
    _Sweeper,
    floored_gradient,
    unit_rows,
)


def local_nll(bond: Tensor, left: Tensor, right: Tensor, pair_index: Tensor) -> float:
    """``-mean log psi_i^2 + log ||bond||^2`` (up to the environments' per-sample scales)."""
    dl, d1, d2, dr = bond.shape
    slices = bond.permute(1, 2, 0, 3).reshape(d1 * d2, dl, dr)[pair_index]  # (T, Dl, Dr)
    psi = torch.einsum("ta,tab,tb->t", left, slices, right)
    tiny = torch.finfo(psi.dtype).tiny
    return float(-torch.log(psi.square().clamp_min(tiny)).mean() + torch.log(bond.square().sum()))


def relative_grams(
    bond: Tensor, left: Tensor, phi_left: Tensor, phi_right: Tensor, right: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """The Kronecker factors (A, C) of ``mean x x^T (x) y y^T / psi^2`` and the weights."""
    x, y = bond_projections(left, phi_left, phi_right, right)
    x, y = unit_rows(x).double(), unit_rows(y).double()
    b = bond.double().reshape(x.shape[1], y.shape[1])
    b = b / torch.linalg.vector_norm(b)
    psi = ((x @ b) * y).sum(1)
    w = 1.0 / psi.square().clamp_min(1e-300)
    a = (x * w[:, None]).T @ x / x.shape[0]
    # C = mean w_i (x_i^T A x_i) y_i y_i^T / ||A||^2: the next Van Loan half-step
    xa = ((x @ a) * x).sum(1)
    c = (y * (w * xa)[:, None]).T @ y / (x.shape[0] * a.square().sum())
    return a, c, w


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data-dir", default="../shared/data/mnist")
    parser.add_argument("--random-subset", type=int, default=None)
    parser.add_argument("--train-indices", default=None)
    parser.add_argument("--n-train", type=int, default=1000)
    parser.add_argument("--bonds", default="100,200,300,400,500,600,700")
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--max-bond", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    indices = None
    if args.train_indices:
        indices = np.loadtxt(args.train_indices, dtype=np.int64, comments="#", ndmin=1)
    X = binarised(args.data_dir, "train", args.n_train, args.random_subset, indices=indices)
    model = tnml.io.load(args.model)
    mps = model.module_.to_mps()
    X_t = torch.as_tensor(X)
    totals: dict[str, list[float]] = {}
    print("bond  " + "  ".join(f"{m:>9}" for m in ("norm", "data", "rel", "rel+z")))
    for k in (int(b) for b in args.bonds.split(",")):
        sweeper = _Sweeper(mps, X_t, k)
        a_core, b_core = sweeper.cores[k], sweeper.cores[k + 1]
        bond = torch.tensordot(a_core, b_core, dims=([2], [0]))
        left, right = sweeper.envs.left(k)[0], sweeper.envs.right(k + 1)[0]
        pair_index = sweeper.indices[:, k] * bond.shape[2] + sweeper.indices[:, k + 1]
        for _ in range(args.steps):
            grad, _ = _bond_gradient_indexed(bond, left, right, pair_index)
            bond = bond - args.lr * floored_gradient(grad)
            bond = bond / torch.linalg.vector_norm(bond)
        before = local_nll(bond, left, right, pair_index)
        phi_l, phi_r = sweeper.phis[k], sweeper.phis[k + 1]
        splits = {"norm": split_tensor(bond, 2, method="svd", max_bond=args.max_bond, cutoff=0)}
        g_l, g_r = _data_grams(left, phi_l, phi_r, right)
        splits["data"] = split_tensor_in_metric(
            bond, 2, left_gram=g_l, right_gram=g_r, max_bond=args.max_bond, root="cholesky"
        )
        a, c, _ = relative_grams(bond, left, phi_l, phi_r, right)
        splits["rel"] = split_tensor_in_metric(
            bond, 2, left_gram=a, right_gram=c, max_bond=args.max_bond, root="cholesky"
        )
        # A (x) C approximates the data term; ||dB||^2 (||B|| = 1) is the log Z term: add
        # (A + alpha I) (x) (C + gamma I) with alpha gamma = 1, alpha / gamma balancing the
        # cross terms' traces
        n_a, n_c = a.shape[0], c.shape[0]
        ratio = math.sqrt(float(torch.trace(a)) * n_c / (float(torch.trace(c)) * n_a))
        eye_a = torch.eye(n_a, dtype=a.dtype)
        eye_c = torch.eye(n_c, dtype=c.dtype)
        splits["rel+z"] = split_tensor_in_metric(
            bond,
            2,
            left_gram=a + ratio * eye_a,
            right_gram=c + eye_c / ratio,
            max_bond=args.max_bond,
            root="cholesky",
        )
        row = {}
        for name, res in splits.items():
            merged = torch.tensordot(res.left, res.right, dims=([2], [0]))
            row[name] = local_nll(merged.to(bond.dtype), left, right, pair_index) - before
            totals.setdefault(name, []).append(row[name])
        print(f"{k:4d}  " + "  ".join(f"{row[m]:9.5f}" for m in splits), flush=True)
    print("mean  " + "  ".join(f"{np.mean(v):9.5f}" for v in totals.values()))


if __name__ == "__main__":
    main()
