"""Classifiers as hardware-native circuits: accuracy within a CX budget, routed, under noise.

Digit pairs (MNIST 8x8, as in the tree-circuit benchmark): a ``CircuitClassifier`` (data
re-uploaded onto a line of qubits, SO(4) blocks) against today's D=2 unitary tree
(``TTNClassifier(bond_dim=2, unitary=True)``), both compiled qubit-efficient into native
gates and routed on IBM's heavy-hex lattice; test accuracy of the routed circuits, CX count,
depth and qubits. Ten-class digits (scikit-learn 8x8) with at most 8 qubits and 2,000 CX.
Noise: accuracy against the two-qubit depolarising rate, charged per native gate, for both
circuits; tnml's simulator against Qiskit Aer on the same routed circuits and noise.

Usage (the commands recorded in benchmarks/RESULTS.md):

    python benchmarks/native_classifiers.py pairs --data-dir ../shared/data/mnist \\
        --out benchmarks/out/native_pairs.json
    python benchmarks/native_classifiers.py digits --out benchmarks/out/native_digits.json

Hyperparameters were chosen on the estimators' validation split of the training data
(3 vs 5 for the pairs, digits for ten classes); each test set is scored once per model.
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
from tnml.data import downsample, flatten_images, load_mnist, pad_to
from tnml.quantum import compile, simulate
from tnml.quantum.evaluate import circuit_accuracy, circuit_inputs, noise_model
from tnml.quantum.native import two_qubit_count
from tnml.quantum.simulate import valid_label_probabilities

NOISE_LEVELS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)


def _images(X: np.ndarray) -> np.ndarray:
    return flatten_images(downsample(pad_to(X.astype(np.float64), 32), 8))


def circuit_classifier(args) -> tnml.CircuitClassifier:
    return tnml.CircuitClassifier(
        n_qubits=args.n_qubits,
        blocks_per_feature=args.blocks_per_feature,
        angle_scale=args.angle_scale,
        epochs=args.epochs,
        random_state=args.seed,
    )


def circuit_record(model, X_test, y_test, *, schedule: str = "efficient") -> tuple[dict, object]:
    """Compile natively on heavy-hex; score the routed circuit exactly on the test set."""
    started = time.perf_counter()
    circuit = compile(model, schedule, gates="native", target="heavy-hex")
    seconds = time.perf_counter() - started
    inputs = circuit_inputs(model, X_test)
    labels = np.searchsorted(model.classes_, y_test)
    record = {
        "qubits": circuit.num_qubits,
        "physical_qubits": circuit.metadata["physical_qubits"],
        "cx": two_qubit_count(circuit),
        "swaps": circuit.metadata["swaps"],
        "depth": circuit.metadata["depth"],
        "compile_seconds": round(seconds, 2),
        "circuit_test_accuracy": circuit_accuracy(circuit, inputs, labels),
    }
    return record, circuit


def noise_curves(
    circuit, inputs, labels, levels, shots: int, seed: int, dtype: torch.dtype = torch.float64
) -> list[dict]:
    """Exact and ``shots``-shot accuracy, and the mean probability of the true label, per
    two-qubit depolarising rate (noise after every native gate). The shots are drawn from
    the exact register distribution, as ``simulate(..., shots=)`` draws them, without
    simulating the circuit twice."""
    generator = torch.Generator().manual_seed(seed)
    n_labels = circuit.n_labels
    rows = []
    for level in (0.0, *levels):
        noise = noise_model("depolarizing_2q", level) if level else None
        register = simulate(circuit, inputs, noise=noise, valid_only=False, dtype=dtype)
        register = register.to(torch.float64)
        draws = torch.multinomial(register, shots, replacement=True, generator=generator)
        ones = torch.ones(draws.shape, dtype=register.dtype)
        counts = torch.zeros_like(register).scatter_add_(1, draws, ones)
        probs = valid_label_probabilities(register, n_labels)
        estimated = valid_label_probabilities(counts, n_labels)
        true = probs.gather(1, torch.as_tensor(labels)[:, None]).squeeze(1)
        rows.append(
            {
                "p2": level,
                "accuracy": float((probs.argmax(1).numpy() == labels).mean()),
                f"accuracy_{shots}_shots": float((estimated.argmax(1).numpy() == labels).mean()),
                "mean_true_probability": float(true.mean()),
            }
        )
    return rows


def aer_check(circuit, inputs, labels, level: float, shots: int, n: int, seed: int) -> dict:
    """tnml's exact noisy probabilities vs Aer's (density matrix) on ``n`` test images, and
    the shot-estimated accuracy of both on the same images."""
    from tnml.quantum import run_aer

    noise = noise_model("depolarizing_2q", level)
    X, y = inputs[:n], labels[:n]
    raw = simulate(circuit, X, noise=noise, valid_only=False)  # every register value
    ours = valid_label_probabilities(raw, circuit.n_labels or raw.shape[1])
    theirs = run_aer(circuit, X, noise=noise)
    started = time.perf_counter()
    ours_shots = simulate(circuit, X, noise=noise, shots=shots, seed=seed)
    aer_shots = run_aer(circuit, X, noise=noise, shots=shots, seed=seed)
    acc = [float((p.argmax(1).numpy() == y).mean()) for p in (ours_shots, aer_shots)]
    # Per-image label probability: difference of two shot estimates, in standard errors. Both
    # renormalise over the valid labels, so each estimate rests on the shots that gave one
    # (10 labels in 4 bits: the other 6 values take some shots), not on all of them.
    p_true = ours.gather(1, torch.as_tensor(y)[:, None]).squeeze(1).numpy()
    p_valid = raw[:, : ours.shape[1]].sum(1).numpy()
    se = np.sqrt(2 * p_true * (1 - p_true) / (shots * p_valid)) + 1e-12
    z = (
        np.abs(
            ours_shots.gather(1, torch.as_tensor(y)[:, None]).squeeze(1).numpy()
            - aer_shots.gather(1, torch.as_tensor(y)[:, None]).squeeze(1).numpy()
        )
        / se
    )
    return {
        "p2": level,
        "images": len(y),
        "max_abs_exact_difference": float((ours - theirs).abs().max()),
        "shots": shots,
        "accuracy_tnml_shots": acc[0],
        "accuracy_aer_shots": acc[1],
        "fraction_within_2_se": float((z <= 2).mean()),
        "mean_valid_fraction": float(p_valid.mean()),
        "seconds": round(time.perf_counter() - started, 1),
    }


def run_pairs(args) -> dict:
    train = load_mnist(args.data_dir, "train")
    test = load_mnist(args.data_dir, "test")
    out = []
    for text in args.pairs:
        pair = tuple(int(v) for v in text.split(","))
        keep_tr, keep_te = np.isin(train[1], pair), np.isin(test[1], pair)
        X_train, y_train = _images(train[0][keep_tr][: args.limit]), train[1][keep_tr][: args.limit]
        X_test, y_test = _images(test[0][keep_te][: args.limit]), test[1][keep_te][: args.limit]
        record: dict = {"pair": list(pair), "n_train": len(y_train), "n_test": len(y_test)}
        started = time.perf_counter()
        native = circuit_classifier(args).fit(X_train, y_train)
        record["native_train_seconds"] = round(time.perf_counter() - started, 1)
        record["native_model_test_accuracy"] = float(native.score(X_test, y_test))
        record["native"], native_circuit = circuit_record(native, X_test, y_test)
        started = time.perf_counter()
        tree = tnml.TTNClassifier(
            bond_dim=2, unitary=True, layout=(8, 8), epochs=10, batch_size=32, lr=0.02,
            random_state=args.seed,
        ).fit(X_train, y_train)  # fmt: skip
        record["tree_train_seconds"] = round(time.perf_counter() - started, 1)
        record["tree_model_test_accuracy"] = float(tree.score(X_test, y_test))
        record["tree"], tree_circuit = circuit_record(tree, X_test, y_test)
        print(json.dumps(record), flush=True)
        if text in args.noise_pairs:
            for name, model, circuit in (
                ("native", native, native_circuit),
                ("tree", tree, tree_circuit),
            ):
                inputs = circuit_inputs(model, X_test)
                labels = np.searchsorted(model.classes_, y_test)
                record[name]["noise"] = noise_curves(
                    circuit, inputs, labels, NOISE_LEVELS, args.noise_shots, args.seed
                )
                record[name]["aer"] = aer_check(
                    circuit, inputs, labels, args.aer_level, args.shots, args.aer_images or 40,
                    args.seed,
                )  # fmt: skip
                print(name, json.dumps(record[name]["noise"]), record[name]["aer"], flush=True)
        out.append(record)
    return {"pairs": out}


def run_digits(args) -> dict:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X / 16, y, stratify=y, random_state=0)
    started = time.perf_counter()
    model = circuit_classifier(args).fit(X_train, y_train)
    record: dict = {"train_seconds": round(time.perf_counter() - started, 1)}
    record["model_test_accuracy"] = float(model.score(X_test, y_test))
    record["best_epoch"] = model.best_epoch_
    record["circuit"], circuit = circuit_record(model, X_test, y_test)
    print(json.dumps(record), flush=True)
    if args.noise_pairs:
        inputs = circuit_inputs(model, X_test)
        labels = np.searchsorted(model.classes_, y_test)
        record["circuit"]["noise"] = noise_curves(
            circuit,
            inputs[: args.noise_images],
            labels[: args.noise_images],
            NOISE_LEVELS,
            args.noise_shots,
            args.seed,
            getattr(torch, args.noise_dtype),
        )
        record["circuit"]["noise_images"] = min(args.noise_images, len(labels))
        record["circuit"]["noise_dtype"] = args.noise_dtype
        print(json.dumps(record["circuit"]["noise"]), flush=True)
    if args.aer_images:
        inputs = circuit_inputs(model, X_test)
        labels = np.searchsorted(model.classes_, y_test)
        record["circuit"]["aer"] = aer_check(
            circuit, inputs, labels, args.aer_level, args.shots, args.aer_images, args.seed
        )
        print(json.dumps(record["circuit"]["aer"]), flush=True)
    return {"digits": record}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("task", choices=("pairs", "digits"))
    parser.add_argument("--data-dir", default="../shared/data/mnist")
    parser.add_argument("--pairs", nargs="+", default=["0,1", "3,5", "4,9", "2,7"])
    parser.add_argument("--noise-pairs", nargs="*", default=["3,5"])
    parser.add_argument("--n-qubits", type=int, default=None)
    parser.add_argument("--blocks-per-feature", type=float, default=None)
    parser.add_argument("--angle-scale", type=float, default=None)
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--shots", type=int, default=2000, help="shots of the Aer check")
    parser.add_argument("--noise-shots", type=int, default=1000)
    parser.add_argument(
        "--aer-images", type=int, default=None,
        help="images of the Aer check (pairs: default 40; digits: only when given)",
    )  # fmt: skip
    parser.add_argument("--aer-level", type=float, default=1e-2, help="p2 of the Aer check")
    parser.add_argument("--noise-images", type=int, default=450)
    parser.add_argument(
        "--noise-dtype",
        choices=("float64", "float32"),
        default="float64",
        help="precision of the digits task's noisy density matrices (float32: half the memory "
        "traffic, which bounds that simulation)",
    )
    parser.add_argument("--limit", type=int, default=None, help="first N images per split")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    # Settings chosen on validation splits (3 vs 5 for pairs, digits for ten classes).
    defaults = {
        "pairs": {"n_qubits": 4, "blocks_per_feature": 3.9, "angle_scale": 1.0, "epochs": 20},
        "digits": {"n_qubits": 8, "blocks_per_feature": 7, "angle_scale": 0.25, "epochs": 40},
    }[args.task]
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    torch.set_num_threads(args.threads)
    result = run_pairs(args) if args.task == "pairs" else run_digits(args)
    result.update(
        command="python benchmarks/native_classifiers.py "
        + " ".join(f"{k}={v}" for k, v in vars(args).items()),
        machine={
            "platform": platform.platform(),
            "processor": platform.processor(),
            "torch": torch.__version__,
            "threads": args.threads,
        },
        date=time.strftime("%Y-%m-%d"),
    )
    path = Path(args.out or f"benchmarks/out/native_{args.task}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
