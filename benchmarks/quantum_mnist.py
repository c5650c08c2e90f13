"""Huggins et al. (2019) reproduced: tree classifiers on pairs of MNIST digits as circuits.

For each digit pair: train a unitary tree (``TTNClassifier(unitary=True)``, two-qubit gates
for ``--bond-dim 2``) classically on the pair's training images downsampled to ``--size`` x
``--size`` (28x28 padded to 32x32, then block means), compile it full-width (one qubit per
pixel) and qubit-efficient (qubits reset and reused), check the circuit against the model and
against Qiskit Aer, score it exactly and with shots, fine-tune it from shot-estimated
probabilities only (SPSA or parameter shift), and measure its accuracy against depolarising
noise per gate.

Usage (the command recorded in benchmarks/RESULTS.md):

    python benchmarks/quantum_mnist.py --data-dir ../shared/data/mnist --size 8 \
        --pairs 0,1 3,5 4,9 --epochs 10 --finetune spsa --finetune-steps 200 --shots 1000 \
        --threads 2 --out benchmarks/out/quantum_mnist_8.json \
        --figure benchmarks/figures/quantum_noise_8x8.png

The test images are scored once per stage; nothing is tuned on them.
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
from tnml.plot import plot_noise_curve
from tnml.quantum import run_aer, simulate, to_qiskit, transpile_report
from tnml.quantum.compile import compile
from tnml.quantum.evaluate import circuit_accuracy, circuit_inputs, noise_study
from tnml.quantum.hardware import fit_circuit

NOISE_LEVELS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)


def _images(X: np.ndarray, size: int) -> np.ndarray:
    padded = pad_to(X.astype(np.float64), 32)
    return flatten_images(downsample(padded, size))


def _pair(X, y, pair, limit, rng):
    keep = np.flatnonzero(np.isin(y, pair))
    if limit is not None and limit < keep.size:
        keep = np.sort(rng.choice(keep, size=limit, replace=False))
    return X[keep], y[keep]


def run_pair(args, pair, train, test) -> dict:
    rng = np.random.default_rng(args.seed)
    X_train, y_train = _pair(*train, pair, args.n_train, rng)
    X_test, y_test = _pair(*test, pair, args.n_test, rng)
    X_train, X_test = _images(X_train, args.size), _images(X_test, args.size)
    record: dict = {"pair": list(pair), "n_train": len(y_train), "n_test": len(y_test)}
    started = time.perf_counter()
    model = tnml.TTNClassifier(
        bond_dim=args.bond_dim,
        unitary=True,
        layout=(args.size, args.size),
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        random_state=args.seed,
    ).fit(X_train, y_train)
    record["train_seconds"] = round(time.perf_counter() - started, 2)
    record["classical_test_accuracy"] = float(model.score(X_test, y_test))
    U_train, U_test = circuit_inputs(model, X_train), circuit_inputs(model, X_test)
    idx_train = np.searchsorted(model.classes_, y_train)
    idx_test = np.searchsorted(model.classes_, y_test)
    model_probs = model.predict_proba(X_test)
    circuits = {}
    for schedule in ("full", "efficient"):
        circuit = compile(model, schedule)
        circuits[schedule] = circuit
        exported = to_qiskit(circuit.bind(U_test[0]))
        probs = simulate(circuit, U_test).numpy()
        aer_rows = min(args.aer_rows, len(U_test))
        aer = run_aer(circuit, U_test[:aer_rows]).numpy()
        report = transpile_report(circuit)
        record[schedule] = {
            "qubits_exported": exported.num_qubits,
            "ops": circuit.count_ops(),
            "native": {k: report[k] for k in ("depth", "size", "two_qubit_gates", "counts")},
            "exact_test_accuracy": float(np.mean(probs.argmax(1) == idx_test)),
            "max_abs_diff_vs_model": float(np.abs(probs - model_probs).max()),
            "max_abs_diff_vs_aer": float(np.abs(probs[:aer_rows] - aer).max()),
            "aer_rows": aer_rows,
            f"shots{args.shots}_test_accuracy": circuit_accuracy(
                circuit, U_test, idx_test, shots=args.shots, seed=args.seed
            ),
        }
        print(pair, schedule, json.dumps(record[schedule]["native"]["depth"]), flush=True)
    if args.finetune != "none":
        started = time.perf_counter()
        result = fit_circuit(
            circuits["full"],
            U_train,
            idx_train,
            method=args.finetune,
            shots=args.shots,
            n_steps=args.finetune_steps,
            batch_size=args.finetune_batch,
            lr=args.finetune_lr,
            perturbation=args.finetune_perturbation,
            params_per_step=args.params_per_step,
            seed=args.seed,
        )
        tuned = result.circuit
        record["finetune"] = {
            "method": args.finetune,
            "steps": len(result.history),
            "circuit_runs": result.n_circuit_runs,
            "shots_spent": result.n_shots,
            "seconds": round(time.perf_counter() - started, 2),
            "train_loss_first_last": [result.history[0]["loss"], result.history[-1]["loss"]],
            "exact_test_accuracy": circuit_accuracy(tuned, U_test, idx_test),
            f"shots{args.shots}_test_accuracy": circuit_accuracy(
                tuned, U_test, idx_test, shots=args.shots, seed=args.seed + 1
            ),
        }
    else:
        tuned = circuits["full"]
    if args.noise:
        rows = noise_study(
            tuned, U_test[: args.noise_rows], idx_test[: args.noise_rows], NOISE_LEVELS
        )
        record["noise"] = rows
    print(json.dumps(record), flush=True)
    return record


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data/mnist")
    parser.add_argument("--size", type=int, default=8)
    parser.add_argument("--pairs", nargs="+", default=["0,1", "3,5", "4,9"])
    parser.add_argument("--bond-dim", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=0.02)
    parser.add_argument("--n-train", type=int, default=None, help="images per pair (all)")
    parser.add_argument("--n-test", type=int, default=None, help="test images per pair (all)")
    parser.add_argument("--shots", type=int, default=1000)
    parser.add_argument("--finetune", choices=["spsa", "parameter_shift", "none"], default="spsa")
    parser.add_argument("--finetune-steps", type=int, default=200)
    parser.add_argument("--finetune-batch", type=int, default=64)
    parser.add_argument("--finetune-lr", type=float, default=None)
    parser.add_argument("--finetune-perturbation", type=float, default=0.1)
    parser.add_argument("--params-per-step", type=int, default=None)
    parser.add_argument("--aer-rows", type=int, default=20)
    parser.add_argument("--noise", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--noise-rows", type=int, default=None, help="test images (all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--figure", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    pairs = [tuple(int(d) for d in p.split(",")) for p in args.pairs]
    train, test = load_mnist(args.data_dir, "train"), load_mnist(args.data_dir, "test")
    records = [run_pair(args, pair, train, test) for pair in pairs]
    summary = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}",
        "threads": args.threads,
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "pairs": records,
    }
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(summary, indent=2))
    if args.figure is not None and args.noise:
        levels = [row["level"] for row in records[0]["noise"][1:]]
        curves = [[row["accuracy"] for row in r["noise"][1:]] for r in records]
        fig = plot_noise_curve(
            levels,
            curves,
            args.figure,
            curve_labels=[f"{a} vs {b}" for a, b in pairs],
            title=f"Tree circuits on {args.size}x{args.size} MNIST pairs "
            + ", ".join(f"{a}v{b}" for a, b in pairs),
        )
        del fig


if __name__ == "__main__":
    main()
