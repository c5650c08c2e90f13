"""A generative MPS circuit: samples of the compiled Born machine against the model itself.

Trains an ``MPSBornMachine`` on binarised MNIST images (padded to 32x32, block means down to
``--size`` x ``--size``, threshold 0.5), compiles it into a sequential state-preparation
circuit (exact canonical form, one measured qubit per pixel; "efficient": qubits reset and
reused), samples the circuit with ``tnml.quantum.sample`` and with Qiskit Aer, and compares:

- every pixel's frequency of 1 against the model's exact marginal (z-scores);
- the mean log-likelihood of circuit samples against that of the model's own exact samples
  (both estimate minus the entropy of the model).

Usage (the command recorded in benchmarks/RESULTS.md):

    python benchmarks/quantum_born.py --data-dir ../shared/data/mnist --size 8 --bond-dim 8 \
        --n-train 5000 --epochs 4 --shots 20000 --aer-shots 4000 --threads 2 \
        --out benchmarks/out/quantum_born.json --figure benchmarks/figures/quantum_born_samples.png
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
from tnml.plot import save_image_grid
from tnml.quantum import sample, to_qiskit
from tnml.quantum.compile import compile


def _aer_samples(circuit, shots: int, seed: int) -> np.ndarray:
    from qiskit import transpile
    from qiskit_aer import AerSimulator

    qc = to_qiskit(circuit)
    backend = AerSimulator(
        method="density_matrix" if qc.num_qubits <= 10 else "matrix_product_state"
    )
    job = backend.run(transpile(qc, backend), shots=shots, memory=True, seed_simulator=seed)
    memory = job.result().get_memory()
    # one register: the string is big-endian, so bit j (feature j) is character -1 - j
    bits = np.array([[int(ch) for ch in word.replace(" ", "")[::-1]] for word in memory])
    return bits


def _compare(model, bits: np.ndarray, exact_marginals: np.ndarray) -> dict:
    freq = bits.mean(axis=0)
    se = np.sqrt(np.maximum(exact_marginals * (1 - exact_marginals), 1e-12) / bits.shape[0])
    z = (freq - exact_marginals) / se
    log_p = model.log_prob(bits)
    return {
        "n": int(bits.shape[0]),
        "max_abs_z_pixel_marginals": float(np.abs(z).max()),
        "fraction_pixels_within_3se": float(np.mean(np.abs(z) <= 3)),
        "mean_log_prob": float(log_p.mean()),
        "se_mean_log_prob": float(log_p.std(ddof=1) / np.sqrt(len(log_p))),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data/mnist")
    parser.add_argument("--size", type=int, default=8)
    parser.add_argument("--bond-dim", type=int, default=8)
    parser.add_argument("--n-train", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--shots", type=int, default=20000)
    parser.add_argument("--aer-shots", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--figure", type=Path, default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    images, _ = load_mnist(args.data_dir, "train")
    rng = np.random.default_rng(args.seed)
    images = images[rng.choice(len(images), size=args.n_train, replace=False)]
    X = (flatten_images(downsample(pad_to(images, 32), args.size)) >= 0.5).astype(np.int64)
    started = time.perf_counter()
    model = tnml.MPSBornMachine(
        bond_dim=args.bond_dim, epochs=args.epochs, n_levels=2, random_state=args.seed
    ).fit(X)
    record: dict = {
        "n_train": int(X.shape[0]),
        "train_seconds": round(time.perf_counter() - started, 2),
        "train_nll": float(model.nll(X)),
        "bond_dims": list(model.to_mps().bond_dims),
    }
    n = X.shape[1]
    ones = np.ones((1, 1), dtype=np.int64)
    exact = np.array([np.exp(model.marginal_log_prob([j], ones)[0]) for j in range(n)])
    own = model.sample(args.shots, random_state=args.seed)
    record["model_exact_samples"] = _compare(model, own, exact)
    for schedule in ("efficient", "full"):
        circuit = compile(model, schedule)
        started = time.perf_counter()
        bits = sample(circuit, args.shots, seed=args.seed).numpy()
        entry = _compare(model, bits, exact)
        entry.update(
            qubits=circuit.num_qubits,
            ops=circuit.count_ops(),
            sample_seconds=round(time.perf_counter() - started, 2),
        )
        if schedule == "efficient" and args.aer_shots:
            started = time.perf_counter()
            entry["aer"] = _compare(model, _aer_samples(circuit, args.aer_shots, args.seed), exact)
            entry["aer"]["seconds"] = round(time.perf_counter() - started, 2)
        record[f"circuit_{schedule}"] = entry
        if schedule == "efficient" and args.figure is not None:
            save_image_grid(bits[:64].reshape(-1, args.size, args.size).astype(float), args.figure)
        print(schedule, json.dumps(entry), flush=True)
    summary = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.processor() or platform.machine()}, torch {torch.__version__}",
        "threads": args.threads,
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        **record,
    }
    print(json.dumps(summary, indent=2))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
