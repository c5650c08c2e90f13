"""Compare bond-update rules of the MPS Born machine from one saved model (issue 4 study).

    python benchmarks/born_update_rules.py MODEL.tnml --rule one-site --sweeps 20
    python benchmarks/born_update_rules.py MODEL.tnml --rule two-site --sweeps 1

``two-site`` is the library's update (merge two cores, gradient steps on the unit sphere,
SVD split truncated to ``--max-bond``); ``one-site`` takes the same steps on a single core
and moves the centre by QR, so no bond is ever truncated. Prints the training NLL after
every sweep (first 1,000 MNIST training images binarised at 0.5, as in mnist_born.py).
"""

from __future__ import annotations

import argparse
import time

import torch

import tnml
from mnist_born import binarised
from tnml.train.born_sweep import _bond_gradient, _Sweeper, mean_nll


def one_site_update(sweeper: _Sweeper, k: int, direction: str, lr: float, n_steps: int) -> None:
    """Gradient steps on core k (the centre) alone, then move the centre by QR."""
    core = sweeper.cores[k] / torch.linalg.vector_norm(sweeper.cores[k])
    dl, d, dr = core.shape
    left, right = sweeper.envs.left(k)[0], sweeper.envs.right(k)[0]
    bond = core.reshape(dl, d, 1, dr)  # a "bond tensor" whose second site is trivial
    for _ in range(n_steps):
        grad, _ = _bond_gradient(bond, left, right, sweeper.phis[k])
        bond = bond - lr * grad
        bond = bond / torch.linalg.vector_norm(bond)
    core = bond.reshape(dl, d, dr)
    if direction == "right":
        q, r = torch.linalg.qr(core.reshape(dl * d, dr))
        sweeper.cores[k] = q.reshape(dl, d, -1)
        following = torch.tensordot(r, sweeper.cores[k + 1], dims=([1], [0]))
        sweeper.cores[k + 1] = following / torch.linalg.vector_norm(following)
        sweeper.envs.push_left(k, sweeper.cores[k])
    else:
        q, r = torch.linalg.qr(core.reshape(dl, d * dr).T)
        sweeper.cores[k] = q.T.reshape(-1, d, dr)
        preceding = torch.tensordot(sweeper.cores[k - 1], r.T, dims=([2], [0]))
        sweeper.cores[k - 1] = preceding / torch.linalg.vector_norm(preceding)
        sweeper.envs.push_right(k, sweeper.cores[k])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--rule", choices=["one-site", "two-site"], required=True)
    parser.add_argument("--sweeps", type=int, default=1)
    parser.add_argument("--lr", type=float, default=0.2)
    parser.add_argument("--steps-per-bond", type=int, default=5)
    parser.add_argument("--max-bond", type=int, default=100)
    parser.add_argument("--cutoff", type=float, default=1e-7)
    parser.add_argument("--data-dir", default="../shared/data/mnist")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    X = torch.as_tensor(binarised(args.data_dir, "train", 1000))
    sweeper = _Sweeper(tnml.io.load(args.model).to_mps(), X, center=0)
    n = sweeper.n
    print(f"start: train NLL {mean_nll(sweeper.mps(center=0), X):.4f}", flush=True)
    for sweep in range(args.sweeps):
        started = time.perf_counter()
        if args.rule == "one-site":
            for k in range(n - 1):
                one_site_update(sweeper, k, "right", args.lr, args.steps_per_bond)
            for k in range(n - 1, 0, -1):
                one_site_update(sweeper, k, "left", args.lr, args.steps_per_bond)
        else:
            options = dict(
                lr=args.lr, n_steps=args.steps_per_bond, max_bond=args.max_bond, cutoff=args.cutoff
            )
            for k in range(n - 1):
                sweeper.update(k, "right", **options)
            for k in range(n - 2, -1, -1):
                sweeper.update(k, "left", **options)
        nll = mean_nll(sweeper.mps(center=0), X)
        print(
            f"sweep {sweep + 1}: train NLL {nll:.4f}  {time.perf_counter() - started:.1f}s",
            flush=True,
        )


if __name__ == "__main__":
    main()
