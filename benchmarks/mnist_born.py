"""Born machine on binarised MNIST (Han et al. 2018): training NLL and held-out test NLL.

Han et al. train an MPS Born machine on 1,000 MNIST training images binarised at 0.5
(28x28 = 784 binary sites) with D_max = 100 and report the training NLL. This script does the
same with ``tnml.MPSBornMachine`` (two-site sweeps, or autodiff) or ``tnml.TTNBornMachine``
and also scores the 10,000 test images, which the model never saw.

Usage (the commands recorded in benchmarks/RESULTS.md):

    python benchmarks/mnist_born.py --model mps --bond-dim 100 --epochs 20 \
        --out benchmarks/out/mnist_born_mps.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

import tnml
from tnml.data import load_mnist


def binarised(
    data_dir: str,
    split: str,
    limit: int | None,
    random_seed: int | None = None,
    indices: np.ndarray | None = None,
) -> np.ndarray:
    """The first ``limit`` images of ``split`` (all: None), or ``limit`` drawn at random
    without replacement with ``random_seed``, or those at ``indices`` (0-based, in that
    order), binarised at 0.5, flattened (n, 784)."""
    images, _ = load_mnist(data_dir, split)
    if indices is not None:
        images = images[indices]
    elif limit and random_seed is not None:
        rng = np.random.default_rng(random_seed)
        images = images[rng.choice(len(images), size=limit, replace=False)]
    elif limit:
        images = images[:limit]
    return (images.reshape(images.shape[0], -1) > 0.5).astype(np.int64)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data/mnist")
    parser.add_argument("--model", choices=["mps", "ttn"], default="mps")
    parser.add_argument(
        "--trainer",
        choices=["sweep", "autodiff"],
        default=None,
        help="default: sweep for --model mps, autodiff for ttn",
    )
    parser.add_argument("--n-train", type=int, default=1000)
    parser.add_argument(
        "--n-val",
        type=int,
        default=0,
        help="track the NLL of the next N training images (after --n-train) every sweep/epoch",
    )
    parser.add_argument("--n-test", type=int, default=None, help="default: all 10,000")
    parser.add_argument(
        "--random-subset",
        type=int,
        default=None,
        metavar="SEED",
        help="draw the training (and validation) images at random with this seed, as Han et "
        "al. did, instead of taking the first ones",
    )
    parser.add_argument(
        "--train-indices",
        default=None,
        metavar="FILE",
        help="train on the training images at these 0-based indices (a text file, one a line, "
        "'#' comments), e.g. benchmarks/data/han2018_rand1k_train_indices.txt: Han et al.'s "
        "own 1,000; overrides --n-train and --random-subset; no validation images",
    )
    parser.add_argument("--bond-dim", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument(
        "--steps-per-bond", type=int, default=5, help="sweeps: steps per bond (mps) / node (ttn)"
    )
    parser.add_argument(
        "--line-search",
        action="store_true",
        help="sweeps: backtracking line search on each bond's local NLL (--lr: first step)",
    )
    parser.add_argument(
        "--grad-floor",
        action="store_true",
        help="sweeps: scale small bond gradients up to norm numel**0.25 (Han et al.'s code)",
    )
    parser.add_argument(
        "--lr-decay",
        type=float,
        default=None,
        help="sweeps: multiply the step by this after a sweep that raised the training NLL",
    )
    parser.add_argument(
        "--truncation",
        choices=["norm", "data"],
        default="norm",
        help="MPS sweeps: truncate each split in norm (Han et al.) or in the data's metric",
    )
    parser.add_argument("--batch-size", type=int, default=100, help="autodiff only")
    parser.add_argument("--cutoff", type=float, default=1e-7)
    parser.add_argument("--dtype", default="float64")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--out", default=None)
    parser.add_argument("--save-model", default=None, help="write the fitted model here")
    parser.add_argument(
        "--init-model", default=None, help="continue training this saved model (warm start)"
    )
    args = parser.parse_args(argv)
    if args.trainer is None:
        args.trainer = "sweep" if args.model == "mps" else "autodiff"
    if args.truncation != "norm" and (args.model != "mps" or args.trainer != "sweep"):
        parser.error("--truncation applies to --model mps --trainer sweep")
    if args.train_indices and args.n_val:
        parser.error("--train-indices takes no --n-val")
    torch.set_num_threads(args.threads)

    if args.train_indices:
        indices = np.loadtxt(args.train_indices, dtype=np.int64, comments="#", ndmin=1)
        if indices.min() < 0 or indices.max() >= 60_000 or len(np.unique(indices)) < len(indices):
            parser.error("--train-indices: expected distinct indices in [0, 60000)")
        X_train = binarised(args.data_dir, "train", None, indices=indices)
        args.n_train = len(X_train)
    else:
        X_train = binarised(args.data_dir, "train", args.n_train + args.n_val, args.random_subset)
    X_train, X_val = X_train[: args.n_train], X_train[args.n_train :]
    X_test = binarised(args.data_dir, "test", args.n_test)
    common = {
        "bond_dim": args.bond_dim,
        "epochs": args.epochs,
        "lr": args.lr,
        "n_levels": 2,
        "random_state": args.seed,
        "dtype": args.dtype,
        "verbose": 0 if args.quiet else 1,
    }
    # the estimators refuse options their trainer would ignore: each gets its own
    if args.trainer == "autodiff":
        common["batch_size"] = args.batch_size
        sweeps: dict = {}
    else:
        sweeps = {"grad_floor": args.grad_floor, "lr_decay": args.lr_decay}
    if args.model == "mps":
        if args.trainer == "sweep":
            sweeps.update(cutoff=args.cutoff, steps_per_bond=args.steps_per_bond)
        model = tnml.MPSBornMachine(
            trainer=args.trainer, truncation=args.truncation, **sweeps, **common
        )
    else:
        if args.trainer == "sweep":
            sweeps["steps_per_node"] = args.steps_per_bond
        model = tnml.TTNBornMachine(layout=(28, 28), trainer=args.trainer, **sweeps, **common)
    if args.init_model:
        previous = tnml.io.load(args.init_model)
        model.set_params(warm_start=True)
        model.module_, model.n_levels_ = previous.module_, previous.n_levels_
        model.n_features_in_ = previous.n_features_in_
    started = time.perf_counter()
    history: list[dict] = []

    def report(state: dict, metrics: dict) -> None:
        history.append(metrics)
        print(json.dumps(metrics), flush=True)

    fit_kwargs: dict = {"line_search": True} if args.line_search else {}
    if args.n_val:
        fit_kwargs["X_val"] = X_val
    model.fit(X_train, callback=report, **fit_kwargs)
    seconds = time.perf_counter() - started
    train_nll = model.nll(X_train)
    test_nll = model.nll(X_test)
    result = {
        "model": args.model,
        "trainer": args.trainer,
        "line_search": args.line_search,
        "grad_floor": args.grad_floor,
        "lr_decay": args.lr_decay,
        "truncation": args.truncation,
        "train_nll": train_nll,
        "test_nll": test_nll,
        "n_parameters": int(sum(p.numel() for p in model.module_.parameters())),
        "max_bond": int(max(max(c.shape) for c in model.module_.parameters())),
        "train_seconds": seconds,
        "history": model.history_,
        "args": vars(args),
        "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}",
        "tnml_version": tnml.__version__,
    }
    print(
        f"{args.model}: train NLL {train_nll:.3f}  test NLL {test_nll:.3f}  "
        f"params {result['n_parameters']}  {seconds:.0f}s"
    )
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=1))
    if args.save_model:
        # the metadata `tnml train` would write, so `tnml sample` / `tnml inpaint` work on it
        metadata = {
            "dataset": "mnist",
            "source": str(Path(args.data_dir).resolve()),
            "preprocessing": {"kind": "image", "image_shape": [28, 28], "downsample": None},
            "split": {"test": "official"},
            "discretize": {"binary_threshold": 0.5},
            "train_nll": train_nll,
            "test_nll": test_nll,
        }
        tnml.io.save(model, args.save_model, metadata=metadata)


if __name__ == "__main__":
    main()
