"""Born machines as circuits of native gates: fidelity and held-out NLL against layers.

For each bond dimension: train an MPS Born machine on binarised 8x8 images (64 qubits),
compile it densely (one gate per tensor, Qiskit's synthesis of each: the baseline cost) and
natively (staircase layers of SO(4) blocks, 2 CX each, found by the iterative protocol of
Rudolph et al.; or with ``--window W`` brick layers in windows of W qubits, every gate
re-optimised on the exact fidelity after each layer), and record per number of layers the
fidelity to the trained state, the held-out NLL of the circuit's distribution, the CX count
(also after routing on IBM's heavy-hex lattice) and the time. With ``--aqc``,
qiskit-addon-aqc-tensor optimises its KAK ansatz (3 CX per block) on the same target from
the same starting circuit, at the same CX counts as tnml's circuits, side by side.

Usage (the commands recorded in benchmarks/RESULTS.md):

    python benchmarks/native_born.py --data-dir ../shared/data/mnist --bond-dims 8 16 \\
        --layers 8 --aqc --out benchmarks/out/native_born.json

Images: MNIST 28x28 padded to 32x32, 4x4 block means, threshold 0.5 (the 8x8 binarised
digits of the generative-circuit benchmark); or ``--dataset digits`` (scikit-learn's 8x8
digits, threshold 8). The held-out images are never used for training or selection.
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
from tnml.quantum import compile
from tnml.quantum.compile_native import born_layers_circuit, finish_native
from tnml.quantum.export import to_qiskit, transpile_report
from tnml.quantum.native import two_qubit_count
from tnml.quantum.synthesis import EXACT_LAYERS, synthesize_state
from tnml.quantum.targets import heavy_hex_target
from tnml.tensor.born import mps_log_prob
from tnml.tensor.mps import mps_overlap


def load_binary(args) -> tuple[np.ndarray, np.ndarray, str]:
    """Training and held-out binary images, (n, 64) int64, and a description."""
    if args.dataset == "digits":
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        X, y = load_digits(return_X_y=True)
        binary = (X > 8).astype(np.int64)
        train, test = train_test_split(binary, test_size=0.25, random_state=0, stratify=y)
        return train, test, "scikit-learn digits 8x8, threshold 8 (1,347 train / 450 test)"

    def prep(images: np.ndarray) -> np.ndarray:
        small = flatten_images(downsample(pad_to(images.astype(np.float64), 32), 8))
        return (small > 0.5).astype(np.int64)

    X, _ = load_mnist(args.data_dir, "train")
    X_test, _ = load_mnist(args.data_dir, "test")
    train = prep(X[: args.n_train])
    test = prep(X_test[: args.n_test])
    desc = f"MNIST 8x8 (32x32 pad, 4x4 means, > 0.5): first {len(train)} train, {len(test)} test"
    return train, test, desc


def dense_cost(born, level: int) -> dict:
    circuit = compile(born, "full")
    started = time.perf_counter()
    report = transpile_report(circuit, optimization_level=level)
    return {
        "qubits": circuit.num_qubits,
        "cx": report["two_qubit_gates"],
        "depth": report["depth"],
        "optimization_level": level,
        "seconds": round(time.perf_counter() - started, 1),
    }


def run_aqc_tensor(born, start_state, maxiter: int) -> tuple[dict, object]:
    """qiskit-addon-aqc-tensor's KAK ansatz (3 CX a block) on the layout of
    ``start_state``'s circuit, started from it and optimised by L-BFGS-B through its Aer MPS
    gradient against the dense compile's state. Returns its record and the bound ansatz."""
    from qiskit import QuantumCircuit
    from qiskit_addon_aqc_tensor import generate_ansatz_from_circuit
    from qiskit_addon_aqc_tensor.objective import MaximizeStateFidelity
    from qiskit_addon_aqc_tensor.simulation import tensornetwork_from_circuit
    from qiskit_aer import AerSimulator
    from scipy.optimize import minimize

    simulator = AerSimulator(method="matrix_product_state")
    reference = to_qiskit(compile(born, "full"), measure=False)
    target = tensornetwork_from_circuit(reference, simulator)
    start = to_qiskit(born_layers_circuit(start_state, "full"), measure=False)
    # The dense target carries its final bond qubits (|0>) after the features.
    padded = QuantumCircuit(reference.num_qubits)
    padded.compose(start, qubits=list(range(start.num_qubits)), inplace=True)
    ansatz, x0 = generate_ansatz_from_circuit(padded, qubits_initially_zero=True)
    objective = MaximizeStateFidelity(target, ansatz, simulator)
    start_fidelity = 1 - objective.loss_function(np.asarray(x0))[0]
    started = time.perf_counter()
    result = minimize(
        objective.loss_function,
        np.asarray(x0),
        method="L-BFGS-B",
        jac=True,
        options={"maxiter": maxiter},
    )
    record = {
        "layers": start_state.n_layers,
        "cx": sum(1 for inst in ansatz.decompose().data if inst.operation.name == "cx"),
        "fidelity_start": float(start_fidelity),
        "fidelity": float(1 - result.fun),
        "iterations": int(result.nit),
        "seconds": round(time.perf_counter() - started, 1),
    }
    return record, ansatz.assign_parameters(result.x)


def stage_record(args, mps, stage, train, test, heavy_hex) -> dict:
    """Fidelity, held-out NLL and CX counts of one stage (exact up to EXACT_LAYERS)."""
    k = stage.n_layers
    row = {**stage.history[-1], "cx": stage.two_qubit_gates}
    if k > EXACT_LAYERS and not stage.window:
        approx = stage.state(max_bond=args.eval_bond)
        row["fidelity_eval"] = float(mps_overlap(mps, approx)) ** 2 / float(mps.norm()) ** 2
        row["eval_bond"] = args.eval_bond
        images = torch.as_tensor(test)
        row["test_nll"] = float(-mps_log_prob(approx, images).mean())
        row["train_nll"] = float(
            -mps_log_prob(approx, torch.as_tensor(train[: args.n_nll_train])).mean()
        )
    else:
        row["test_nll"] = float(-stage.log_prob(torch.as_tensor(test)).mean())
        row["train_nll"] = float(-stage.log_prob(torch.as_tensor(train[: args.n_nll_train])).mean())
    routed = finish_native(born_layers_circuit(stage, "full"), heavy_hex)
    row.update(
        cx_heavy_hex=two_qubit_count(routed),
        swaps_heavy_hex=routed.metadata["swaps"],
        depth_heavy_hex=routed.metadata["depth"],
        qubits_heavy_hex=routed.num_qubits,
    )
    return row


def run_bond(args, D: int, train: np.ndarray, test: np.ndarray, save) -> dict:
    """One bond dimension's results; ``save(record)`` is called whenever a part is done,
    so a run stopped during the slow side-by-side keeps what it measured."""
    torch.manual_seed(args.seed)
    started = time.perf_counter()
    born = tnml.MPSBornMachine(bond_dim=D, epochs=args.epochs, random_state=args.seed)
    born.fit(train)
    record: dict = {"bond_dim": D, "train_seconds": round(time.perf_counter() - started, 1)}
    record["model_train_nll"] = float(-born.log_prob(train).mean())
    record["model_test_nll"] = float(-born.log_prob(test).mean())
    print(f"D={D}: train NLL {record['model_train_nll']:.3f}, test {record['model_test_nll']:.3f}")
    if not args.no_dense:
        record["dense"] = dense_cost(born, args.dense_level)
        print(f"  dense compile: {record['dense']}", flush=True)
    mps = born.to_mps()
    started = time.perf_counter()
    state = synthesize_state(
        mps,
        args.layers,
        protocol="iterative",
        max_iter=args.max_iter,
        product_threshold=args.product_threshold,
        optimizer=args.optimizer,
        sweeps=args.sweeps,
        max_bond=args.max_bond,
        window=args.window,
        callback=lambda r: print(f"  {r}", flush=True),
    )
    record["synthesis_seconds"] = round(time.perf_counter() - started, 1)
    record["window"] = state.window
    record["active_sites"] = state.active
    record["product_sites"] = sorted(state.product)
    heavy_hex = heavy_hex_target()
    rows = []
    for k in range(1, state.n_layers + 1):
        deep = k > EXACT_LAYERS and not state.window
        if (deep or state.window) and k % args.eval_every and k != state.n_layers:
            rows.append({**state.stage(k).history[-1], "cx": state.stage(k).two_qubit_gates})
            continue
        row = stage_record(args, mps, state.stage(k), train, test, heavy_hex)
        if "dense" in record:
            row["cx_fraction_of_dense"] = row["cx_heavy_hex"] / record["dense"]["cx"]
        rows.append(row)
        how = "exact" if not deep else f"eval {row.get('fidelity_eval', float('nan')):.4f}"
        print(
            f"  layers {k}: fidelity {row['fidelity']:.4f} ({how}), CX {row['cx']} "
            f"(heavy-hex {row['cx_heavy_hex']}), test NLL {row['test_nll']:.3f}",
            flush=True,
        )
    record["native"] = rows
    save(record)
    if args.aqc:
        record["aqc_tensor"] = []
        per_layer = 2 * (len(state.active) - 1)
        for theirs in args.aqc_layers:
            if theirs > state.n_layers:
                continue
            res, _ = run_aqc_tensor(born, state.stage(theirs), args.aqc_maxiter)
            ours_layers = res["cx"] // per_layer
            ours = rows[ours_layers - 1] if 1 <= ours_layers <= len(rows) else None
            res["tnml_at_equal_cx"] = (
                {"layers": ours_layers, "cx": ours["cx"], "fidelity": ours["fidelity"]}
                if ours and ours["cx"] == res["cx"]
                else None
            )
            record["aqc_tensor"].append(res)
            save(record)
            print(f"  aqc-tensor: {res}", flush=True)
    return record


def plot(paths: list[str], figure: str) -> None:
    """Fidelity against CX count for every bond dimension in the result files."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), layout="constrained")
    drawn: set[tuple[int, int]] = set()  # each (bond, window) is drawn once, from its first file
    for path in paths:
        for bond in json.loads(Path(path).read_text())["bonds"]:
            rows = bond["native"]
            D, window = bond["bond_dim"], bond.get("window", 0)
            if (D, window) not in drawn:
                drawn.add((D, window))
                cx = [r.get("cx_heavy_hex", r["cx"]) for r in rows]
                layout = f"windows of {window}" if window else "staircase"
                label = f"tnml {layout}, D={D} ({len(bond['active_sites'])} active qubits)"
                ax.plot(cx, [r["fidelity"] for r in rows], "o-", ms=3, label=label)
            aqc = bond.get("aqc_tensor") or []
            if aqc:
                ax.plot([a["cx"] for a in aqc], [a["fidelity"] for a in aqc], "s", ms=6,
                        label=f"qiskit-addon-aqc-tensor, D={D}")  # fmt: skip
            if "dense" in bond:
                ax.plot([bond["dense"]["cx"]], [1.0], "k^", ms=6)
                ax.text(bond["dense"]["cx"], 0.985, f"dense D={D} ", fontsize=7, ha="right")
                ax.axvline(bond["dense"]["cx"] / 10, ls=":", color="grey", lw=1)
                ax.text(bond["dense"]["cx"] / 10, 0.52, f" dense/10, D={D}", fontsize=7,
                        rotation=90, va="bottom")  # fmt: skip
    ax.axhline(0.9, ls="--", color="grey", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("CX after routing on heavy-hex")
    ax.set_ylabel("fidelity to the trained Born machine")
    ax.set_ylim(0.5, 1.01)
    ax.legend(fontsize=7, loc="lower right")
    fig.savefig(figure, dpi=120)
    print(f"wrote {figure}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", choices=("mnist", "digits"), default="mnist")
    parser.add_argument("--data-dir", default="../shared/data/mnist")
    parser.add_argument("--n-train", type=int, default=20000)
    parser.add_argument("--n-test", type=int, default=10000)
    parser.add_argument("--n-nll-train", type=int, default=2000)
    parser.add_argument("--bond-dims", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--max-iter", type=int, default=300)
    parser.add_argument("--optimizer", choices=("auto", "lbfgs", "sweep"), default="auto")
    parser.add_argument("--sweeps", type=int, default=20)
    parser.add_argument("--max-bond", type=int, default=64)
    parser.add_argument("--product-threshold", type=float, default=1e-3)
    parser.add_argument("--window", type=int, default=None, help="brick layers in windows")
    parser.add_argument("--eval-bond", type=int, default=256)
    parser.add_argument("--eval-every", type=int, default=5)
    parser.add_argument("--dense-level", type=int, default=3)
    parser.add_argument("--no-dense", action="store_true")
    parser.add_argument("--aqc", action="store_true")
    parser.add_argument("--aqc-layers", type=int, nargs="+", default=[2, 4])
    parser.add_argument("--aqc-maxiter", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default="benchmarks/out/native_born.json")
    parser.add_argument("--plot", nargs="+", default=None, help="result files to plot only")
    parser.add_argument("--figure", default="benchmarks/figures/native_born_fidelity.png")
    args = parser.parse_args(argv)
    if args.plot:
        plot(args.plot, args.figure)
        return
    if args.window is not None and args.aqc:
        parser.error("--aqc starts qiskit-addon-aqc-tensor from staircase layers: drop --window")
    torch.set_num_threads(args.threads)
    train, test, description = load_binary(args)
    results = {
        "command": "python benchmarks/native_born.py "
        + " ".join(f"{k}={v}" for k, v in vars(args).items()),
        "data": description,
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "torch": torch.__version__,
            "threads": args.threads,
        },
        "date": time.strftime("%Y-%m-%d"),
        "bonds": [],
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    def save(record: dict) -> None:
        done = [r for r in results["bonds"] if r["bond_dim"] != record["bond_dim"]]
        results["bonds"] = [*done, record]
        partial = out.with_suffix(".part")
        partial.write_text(json.dumps(results, indent=2))
        partial.replace(out)

    for D in args.bond_dims:
        save(run_bond(args, D, train, test, save))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
