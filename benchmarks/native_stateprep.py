"""A Born machine small enough for Qiskit's generic state preparation, side by side.

Train an MPS Born machine on binarised 4x4 MNIST (16 qubits, so the state has 65,536
amplitudes and Qiskit can still write it down), then prepare it four ways and print the
two-qubit gate count (CX after Qiskit's transpiler to rz/sx/x/cx, all-to-all) and the
fidelity to the trained state of each:

- Qiskit ``StatePreparation`` of the full state vector (exact; what a Qiskit user reaches
  for first);
- tnml's dense compile (one isometry per MPS tensor, synthesised by Qiskit);
- tnml's native staircase layers (``synthesize_state``), 1 ... ``--layers`` of them;
- qiskit-addon-aqc-tensor's KAK ansatz (``--aqc``), started from Ran's analytic layers
  (the initialisation both sides share) or from tnml's optimised circuit.

Every fidelity is computed independently of tnml's own contraction: from Qiskit's
Aer state vector of the exported circuit against the dense target.

    python benchmarks/native_stateprep.py --bond-dim 8 --layers 6 --aqc \\
        --out benchmarks/out/native_stateprep.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

# native_born.py, beside this script, holds the aqc-tensor side-by-side both scripts run
sys.path.insert(0, str(Path(__file__).resolve().parent))
import tnml
from native_born import run_aqc_tensor
from tnml.data import downsample, flatten_images, load_mnist, pad_to
from tnml.quantum import compile
from tnml.quantum.compile_native import born_layers_circuit, finish_native
from tnml.quantum.export import to_qiskit, transpile_report
from tnml.quantum.native import two_qubit_count
from tnml.quantum.synthesis import synthesize_state
from tnml.tensor.mps import MPS, mps_normalize, mps_to_dense

BASIS = ["rz", "sx", "x", "cx"]


def load_binary(args) -> tuple[np.ndarray, np.ndarray]:
    """Training and held-out binary 4x4 images, (n, 16) int64."""

    def prep(images: np.ndarray) -> np.ndarray:
        small = flatten_images(downsample(pad_to(images.astype(np.float64), 32), 4))
        return (small > 0.5).astype(np.int64)

    X, _ = load_mnist(args.data_dir, "train")
    X_test, _ = load_mnist(args.data_dir, "test")
    return prep(X[: args.n_train]), prep(X_test[: args.n_test])


def qiskit_order(vector: np.ndarray, n: int) -> np.ndarray:
    """Site 0 most significant (tnml) <-> qubit 0 least significant (Qiskit)."""
    return vector.reshape([2] * n).transpose(list(range(n))[::-1]).reshape(-1)


def fidelity_of(qc, target: np.ndarray) -> float:
    """|<target|qc|0>|^2 from Qiskit Aer's state vector; ``target`` in Qiskit's order."""
    from qiskit_aer.quantum_info import AerStatevector

    state = AerStatevector(qc).data
    return float(abs(np.vdot(target, state[: target.size])) ** 2)


def transpiled(qc, level: int) -> tuple[object, dict]:
    """``qc`` in rz/sx/x/cx (all-to-all) and its CX count, depth and transpile time."""
    from qiskit import transpile

    started = time.perf_counter()
    out = transpile(qc, basis_gates=BASIS, optimization_level=level, seed_transpiler=0)
    seconds = round(time.perf_counter() - started, 1)
    return out, {"cx": out.count_ops().get("cx", 0), "depth": out.depth(), "seconds": seconds}


def qiskit_state_preparation(target: np.ndarray, n: int, level: int) -> dict:
    from qiskit import QuantumCircuit
    from qiskit.circuit.library import StatePreparation

    qc = QuantumCircuit(n)
    qc.append(StatePreparation(target), range(n))
    out, counts = transpiled(qc, level)
    return {**counts, "fidelity": fidelity_of(out, target)}


def aqc(born, start_state, target: np.ndarray, maxiter: int) -> dict:
    """qiskit-addon-aqc-tensor from ``start_state``'s circuit, with the fidelity of its
    result also from Aer's state vector."""
    record, bound = run_aqc_tensor(born, start_state, maxiter)
    return {**record, "fidelity_statevector": fidelity_of(bound, target)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="../shared/data/mnist")
    parser.add_argument("--n-train", type=int, default=20000)
    parser.add_argument("--n-test", type=int, default=10000)
    parser.add_argument("--pixels", type=int, default=16, help="the first N pixels only")
    parser.add_argument("--bond-dim", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--level", type=int, default=1, help="Qiskit optimisation level")
    parser.add_argument("--aqc", action="store_true")
    parser.add_argument("--aqc-layers", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--aqc-maxiter", type=int, default=200)
    parser.add_argument(
        "--aqc-start",
        nargs="+",
        choices=("tnml", "analytic"),
        default=["analytic", "tnml"],
        help="AQC's starting circuit: Ran's analytic layers, or tnml's optimised ones",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/out/native_stateprep.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    train, test = load_binary(args)
    train, test = train[:, : args.pixels], test[:, : args.pixels]
    n = train.shape[1]
    born = tnml.MPSBornMachine(bond_dim=args.bond_dim, epochs=args.epochs, random_state=0)
    born.fit(train)
    trained = born.to_mps()
    mps = mps_normalize(MPS([core.to(torch.float64) for core in trained.cores]))
    target = qiskit_order(mps_to_dense(mps).reshape(-1).numpy(), n)
    record: dict = {
        "command": "python benchmarks/native_stateprep.py "
        + " ".join(f"{k}={v}" for k, v in vars(args).items()),
        "data": f"MNIST 4x4 (32x32 pad, 8x8 means, > 0.5): first {len(train)} train, "
        f"{len(test)} test",
        "machine": {"platform": platform.platform(), "torch": torch.__version__},
        "date": time.strftime("%Y-%m-%d"),
        "qubits": n,
        "model_test_nll": float(-born.log_prob(test).mean()),
    }
    print(f"{n} qubits, D={args.bond_dim}: test NLL {record['model_test_nll']:.3f}", flush=True)
    record["qiskit_state_preparation"] = qiskit_state_preparation(target, n, args.level)
    print(f"  Qiskit StatePreparation: {record['qiskit_state_preparation']}", flush=True)
    dense = compile(born, "full")
    report = transpile_report(dense, optimization_level=args.level)
    dense_qc = to_qiskit(dense, measure=False)
    record["tnml_dense"] = {
        "qubits": dense.num_qubits,
        "cx": report["two_qubit_gates"],
        "depth": report["depth"],
        "fidelity": fidelity_of(dense_qc, target),
    }
    print(f"  tnml dense compile: {record['tnml_dense']}", flush=True)
    state = synthesize_state(mps, args.layers, protocol="iterative", product_threshold=0.0)
    record["tnml_native"] = []
    for k in range(1, state.n_layers + 1):
        stage = state.stage(k)
        circuit = born_layers_circuit(stage, "full")
        row = {
            "layers": k,
            "cx": two_qubit_count(finish_native(circuit, None)),
            "fidelity": stage.fidelity,
            "fidelity_statevector": fidelity_of(to_qiskit(circuit, measure=False), target),
            "test_nll": float(-stage.log_prob(torch.as_tensor(test)).mean()),
        }
        record["tnml_native"].append(row)
        print(f"  tnml native: {row}", flush=True)
    if args.aqc:
        record["aqc_tensor"] = []
        for layers in args.aqc_layers:
            starts = {
                "tnml": state.stage(layers),
                "analytic": synthesize_state(mps, layers, protocol="analytic", product_threshold=0),
            }
            for name in args.aqc_start:
                row = {"start": name, **aqc(born, starts[name], target, args.aqc_maxiter)}
                record["aqc_tensor"].append(row)
                print(f"  aqc-tensor: {row}", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
