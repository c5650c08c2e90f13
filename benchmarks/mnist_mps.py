"""Train an MPS or tree classifier on full MNIST (60k train / 10k test), report test accuracy.

Usage (the command recorded in benchmarks/RESULTS.md):

    python benchmarks/mnist_mps.py --data-dir ../shared/data/mnist --size 14 --bond-dim 10 \
        --epochs 15 --lr 1e-3 --batch-size 32 --threads 2 --out benchmarks/out/mnist_d10.json

Hyperparameters were chosen on a 5,000-image validation split of the training set; the test
set is scored once, at the end.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

import tnml
from tnml.data import downsample, flatten_images, load_mnist


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data/mnist")
    parser.add_argument("--model", choices=["mps", "ttn"], default="mps")
    parser.add_argument("--trainer", choices=["autodiff", "sweep"], default="autodiff")
    parser.add_argument(
        "--max-bond", type=int, default=None, help="sweeps: bonds grow from --bond-dim to this"
    )
    parser.add_argument(
        "--temperature", type=float, default=None, help="sweeps: fixed readout temperature"
    )
    parser.add_argument(
        "--sweep-batch-size", type=int, default=None, help="sweeps: mini-batch bond updates"
    )
    parser.add_argument("--steps-per-bond", type=int, default=1, help="sweeps")
    parser.add_argument(
        "--truncation", choices=["data", "norm"], default=None, help="sweeps (default: data)"
    )
    parser.add_argument(
        "--loss", default="cross_entropy", choices=["cross_entropy", "mse", "quadratic"]
    )
    parser.add_argument(
        "--solver", default="gradient", choices=["gradient", "cg"], help="sweeps: bond optimiser"
    )
    parser.add_argument(
        "--l2", type=float, default=None, help="sweeps with --solver cg (default: train_sweep's)"
    )
    parser.add_argument(
        "--memory-gib", type=float, default=None, help="sweeps: environment memory budget"
    )
    parser.add_argument("--lr-schedule", default=None, choices=["cosine", "constant"])
    parser.add_argument("--max-grad-norm", type=float, default=None, help="clip gradients")
    parser.add_argument(
        "--temperature-lr", type=float, default=None, help="autodiff: the readout's own step"
    )
    parser.add_argument("--size", type=int, default=14)
    parser.add_argument("--bond-dim", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--lr", type=float, default=None, help="default: the estimator's")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--readout", default="normalized")
    parser.add_argument(
        "--augment-shift", type=float, default=0.0, help="random shifts of up to this many pixels"
    )
    parser.add_argument("--augment-rotation", type=float, default=0.0, help="degrees")
    parser.add_argument("--augment-scale", type=float, default=0.0, help="zoom 1 +- this")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N images")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--no-test",
        action="store_true",
        help="do not read or score the test set (runs that choose settings on validation)",
    )
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    if args.truncation is not None and args.trainer != "sweep":
        parser.error("--truncation is an option of --trainer sweep")
    torch.set_num_threads(args.threads)

    def load(split: str):
        images, labels = load_mnist(args.data_dir, split)
        images, labels = images[: args.limit], labels[: args.limit]
        return flatten_images(downsample(images, args.size)), labels

    X_train, y_train = load("train")
    common = dict(
        bond_dim=args.bond_dim,
        epochs=args.epochs,
        lr=args.lr,
        batch_size=args.sweep_batch_size if args.trainer == "sweep" else args.batch_size,
        validation_fraction=args.val_fraction,
        readout=args.readout,
        lr_schedule=args.lr_schedule,
        random_state=args.seed,
        device=args.device,
        verbose=0 if args.quiet else 1,
    )
    if args.model == "ttn":
        clf = tnml.TTNClassifier(layout=(args.size, args.size), **common)
    else:
        clf = tnml.MPSClassifier(
            trainer=args.trainer, max_bond=args.max_bond, loss=args.loss, **common
        )
    fit_kwargs: dict = {} if args.temperature is None else {"temperature": args.temperature}
    if args.trainer == "sweep":
        fit_kwargs["steps_per_bond"] = args.steps_per_bond
        if args.truncation is not None:
            fit_kwargs["truncation"] = args.truncation
        if args.solver != "gradient":
            fit_kwargs["solver"] = args.solver
        if args.l2 is not None:
            fit_kwargs["l2"] = args.l2
        if args.memory_gib is not None:
            fit_kwargs["memory_budget"] = int(args.memory_gib * 2**30)
    if args.temperature_lr is not None:
        fit_kwargs["temperature_lr"] = args.temperature_lr
    if args.max_grad_norm is not None:
        fit_kwargs["max_grad_norm"] = args.max_grad_norm
    if args.augment_shift or args.augment_rotation or args.augment_scale:
        fit_kwargs["augment"] = tnml.train.RandomAffine(
            (args.size, args.size),
            max_shift=args.augment_shift,
            max_rotation=args.augment_rotation,
            max_scale=args.augment_scale,
        )
    started = time.perf_counter()
    clf.fit(X_train, y_train, **fit_kwargs)
    seconds = time.perf_counter() - started
    accuracy = None  # JSON null: the test set was not read
    if not args.no_test:
        X_test, y_test = load("test")
        accuracy = clf.score(X_test, y_test)
    report = {
        "test_accuracy": accuracy,
        "test_error_percent": None if accuracy is None else 100 * (1 - accuracy),
        "train_seconds": seconds,
        "best_epoch": clf.best_epoch_,
        "history": clf.history_,
        "args": vars(args),
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} "
        f"threads, torch {torch.__version__}",
        "tnml_version": tnml.__version__,
    }
    curve = " / ".join(f"{100 * e['val_accuracy']:.2f}" for e in clf.history_)
    print(f"validation accuracy per epoch {curve}")
    test = "not read" if accuracy is None else f"{accuracy:.4f}"
    print(f"test accuracy {test}  train time {seconds:.0f}s  best epoch {clf.best_epoch_}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
