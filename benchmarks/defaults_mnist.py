"""What the defaults give on MNIST 14x14, and tnml against TensorKrowch to 97% test accuracy.

Usage (the commands recorded in benchmarks/RESULTS.md):

    python benchmarks/defaults_mnist.py --runs tnml-10k,tnml-full,tensorkrowch \
        --threads 2 --out benchmarks/out/defaults_mnist.json

Runs, each on MNIST downsampled to 14x14 (196 sites; ``--size 28``: the full 784 pixels),
scored on the 10,000 test images (``--tnml-lr``: tnml's Adam step instead of its default;
``--tnml-bond``: tnml's bond dimension instead of 10; ``--tnml-model ttn``: ``TTNClassifier``
in the tnml runs; ``--seed``: tnml's ``random_state``, 0 by default):

* ``tnml-10k``: ``MPSClassifier(bond_dim=10, epochs=2)`` on the first 10,000 training images,
  every other setting at its default (so 10% of them are held out for validation).
* ``tnml-full``: ``MPSClassifier(bond_dim=10, epochs=3)`` on all 60,000 training images.
* ``tensorkrowch``: TensorKrowch's ``MPSLayer`` (bond 10, OBC, label node in the middle,
  ``init_method="randn_eye"``, ``std=1e-9``, traced with ``auto_stack``), its ``poly``
  embedding of degree ``--tk-degree``, Adam at ``--tk-lr`` with batch ``--tk-batch``
  (the settings its MNIST tutorial uses, with the step the issue found best), for
  ``--tk-epochs`` epochs on all 60,000 training images.

After every epoch the test accuracy is computed outside the timed training (so the runs print
when each library reaches 97%); it is not used to pick anything: tnml keeps the epoch with the
best validation loss, as it does for any user. Training seconds exclude the test scoring.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

import tnml
from tnml.data import downsample, flatten_images, load_mnist

TARGET = 0.97


def mnist_images(
    data_dir: str, size: int = 14
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Train and test images as (n, size * size) float32 in [0, 1], with their labels."""
    splits = []
    for split in ("train", "test"):
        images, labels = load_mnist(data_dir, split)
        splits += [flatten_images(downsample(images, size)), labels]
    return splits[0], splits[1], splits[2], splits[3]


def run_tnml(
    X: np.ndarray,
    y: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    epochs: int,
    lr: float | None = None,
    bond_dim: int = 10,
    model: str = "mps",
    seed: int = 0,
) -> dict[str, Any]:
    """Fit ``MPSClassifier(bond_dim=bond_dim, epochs=epochs, lr=lr, random_state=seed)``
    (``model="ttn"``: ``TTNClassifier``), every other setting at its default (``lr=None``: the
    default too); test after each epoch."""
    X_test_t = torch.as_tensor(X_test)
    curve: list[dict[str, float]] = []
    clock = {"scoring": 0.0}
    started = time.perf_counter()

    def score_epoch(state: dict[str, Any], metrics: dict[str, Any]) -> None:
        tick = time.perf_counter()
        module = state["module"]
        with torch.no_grad():
            predicted = module(X_test_t).argmax(dim=1).numpy()
        accuracy = float((predicted == y_test).mean())
        clock["scoring"] += time.perf_counter() - tick
        seconds = time.perf_counter() - started - clock["scoring"]
        curve.append({"epoch": len(curve) + 1, "train_seconds": seconds, "test_accuracy": accuracy})
        print(
            f"  epoch {len(curve)}: test {accuracy:.4f}  val {metrics['val_accuracy']:.4f}  "
            f"{seconds:.0f} s",
            flush=True,
        )

    estimator = tnml.MPSClassifier if model == "mps" else tnml.TTNClassifier
    clf = estimator(bond_dim=bond_dim, epochs=epochs, lr=lr, random_state=seed)
    clf.fit(X, y, callback=score_epoch)
    train_seconds = time.perf_counter() - started - clock["scoring"]
    return {
        "n_train": int(X.shape[0]),
        "epochs": epochs,
        "best_epoch": clf.best_epoch_,
        "test_accuracy": float(clf.score(X_test, y_test)),
        "train_seconds": train_seconds,
        "curve": curve,
    }


def run_tensorkrowch(
    X: np.ndarray,
    y: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    *,
    epochs: int,
    lr: float,
    batch: int,
    degree: int,
) -> dict[str, Any]:
    """TensorKrowch's MPSLayer trained by Adam; test accuracy after each epoch."""
    import tensorkrowch as tk

    warnings.filterwarnings("ignore", module="tensorkrowch")
    torch.manual_seed(0)
    n_sites = X.shape[1]
    mps = tk.models.MPSLayer(
        n_features=n_sites + 1,
        in_dim=degree + 1,
        out_dim=10,
        bond_dim=10,
        boundary="obc",
        init_method="randn_eye",
        std=1e-9,
    )
    mps.auto_stack = True
    mps.auto_unbind = False
    mps.trace(torch.zeros(1, n_sites, degree + 1))
    optimizer = torch.optim.Adam(mps.parameters(), lr=lr)
    X_t, y_t = torch.as_tensor(X), torch.as_tensor(y)
    X_test_t = tk.embeddings.poly(torch.as_tensor(X_test), degree=degree)
    generator = torch.Generator().manual_seed(0)
    curve: list[dict[str, float]] = []
    seconds = 0.0
    for epoch in range(epochs):
        tick = time.perf_counter()
        order = torch.randperm(X_t.shape[0], generator=generator)
        for start in range(0, X_t.shape[0], batch):
            index = order[start : start + batch]
            logits = mps(tk.embeddings.poly(X_t[index], degree=degree))
            loss = torch.nn.functional.cross_entropy(logits, y_t[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        seconds += time.perf_counter() - tick
        with torch.no_grad():
            predicted = torch.cat(
                [mps(X_test_t[i : i + 1000]).argmax(dim=1) for i in range(0, len(X_test_t), 1000)]
            ).numpy()
        accuracy = float((predicted == y_test).mean())
        curve.append({"epoch": epoch + 1, "train_seconds": seconds, "test_accuracy": accuracy})
        print(f"  epoch {epoch + 1}: test {accuracy:.4f}  {seconds:.0f} s", flush=True)
    return {
        "n_train": int(X.shape[0]),
        "epochs": epochs,
        "lr": lr,
        "batch": batch,
        "degree": degree,
        "version": getattr(tk, "__version__", None),
        "test_accuracy": curve[-1]["test_accuracy"],
        "train_seconds": seconds,
        "curve": curve,
    }


def seconds_to_target(curve: list[dict[str, float]]) -> float | None:
    """Training seconds at the end of the first epoch whose test accuracy reaches TARGET."""
    for point in curve:
        if point["test_accuracy"] >= TARGET:
            return point["train_seconds"]
    return None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data/mnist")
    parser.add_argument("--runs", default="tnml-10k,tnml-full,tensorkrowch")
    parser.add_argument("--full-epochs", type=int, default=3)
    parser.add_argument("--tk-epochs", type=int, default=6)
    parser.add_argument("--tk-lr", type=float, default=1e-3)
    parser.add_argument("--tk-batch", type=int, default=100)
    parser.add_argument("--tk-degree", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, default=14, help="images downsampled to size x size")
    parser.add_argument("--tnml-lr", type=float, default=None, help="default: tnml's own")
    parser.add_argument("--tnml-bond", type=int, default=10, help="tnml's bond dimension")
    parser.add_argument("--tnml-model", choices=["mps", "ttn"], default="mps")
    parser.add_argument("--seed", type=int, default=0, help="tnml's random_state")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    X, y, X_test, y_test = mnist_images(args.data_dir, args.size)
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "tnml": tnml.__version__,
        "threads": args.threads,
        "size": args.size,
        "tnml_lr": args.tnml_lr,
        "tnml_bond": args.tnml_bond,
        "tnml_model": args.tnml_model,
        "seed": args.seed,
        "runs": {},
    }
    for name in args.runs.split(","):
        seed = f" (random_state {args.seed})" if name.startswith("tnml") else ""
        print(f"{name}:{seed}", flush=True)
        if name in ("tnml-10k", "tnml-full"):
            rows, epochs = (10000, 2) if name == "tnml-10k" else (None, args.full_epochs)
            result = run_tnml(
                X[:rows],
                y[:rows],
                X_test,
                y_test,
                epochs=epochs,
                lr=args.tnml_lr,
                bond_dim=args.tnml_bond,
                model=args.tnml_model,
                seed=args.seed,
            )
        elif name == "tensorkrowch":
            result = run_tensorkrowch(
                X,
                y,
                X_test,
                y_test,
                epochs=args.tk_epochs,
                lr=args.tk_lr,
                batch=args.tk_batch,
                degree=args.tk_degree,
            )
        else:
            parser.error(f"unknown run {name!r}")
        result["seconds_to_97"] = seconds_to_target(result["curve"])
        report["runs"][name] = result
        print(
            f"{name}: test accuracy {result['test_accuracy']:.4f}, "
            f"{result['train_seconds']:.0f} s training, "
            f"97% after {result['seconds_to_97']} s",
            flush=True,
        )
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
