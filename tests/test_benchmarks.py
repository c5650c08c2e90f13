"""The benchmark scripts run end to end on tiny configurations (they are not timed here)."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest

from tnml.data import find_mnist_dir

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_training_step_benchmark_runs(tmp_path):
    bench = load_script("bench_training_step")
    out = tmp_path / "step.json"
    args = ["--bond-dims", "4", "--sites", "12", "--batch", "8", "--min-time", "0.05"]
    args += ["--repeats", "1", "--max-retries", "0", "--no-tensorkrowch", "--out", str(out)]
    bench.main(args)
    report = json.loads(out.read_text())
    row = report["results"][0]
    assert row["bond_dim"] == 4
    assert row["tnml"]["auto"]["samples_per_s"] > 0
    assert row["tnml"]["auto"]["forward_flops"] > 0


def test_mnist_benchmark_runs(tmp_path):
    directory = find_mnist_dir()
    if directory is None:
        pytest.skip("MNIST not found (set TNML_MNIST_DIR or put it at ../shared/data/mnist)")
    bench = load_script("mnist_mps")
    out = tmp_path / "mnist.json"
    args = ["--data-dir", str(directory), "--size", "7", "--bond-dim", "3", "--epochs", "2"]
    args += ["--limit", "600", "--quiet", "--threads", "1", "--out", str(out)]
    bench.main(args)
    report = json.loads(out.read_text())
    assert 0.1 < report["test_accuracy"] <= 1.0
    # shift augmentation, and mini-batch sweeps with a cosine step
    bench.main([*args, "--augment-shift", "1"])
    assert 0.1 < json.loads(out.read_text())["test_accuracy"] <= 1.0
    bench.main(
        [*args, "--trainer", "sweep", "--bond-dim", "2", "--max-bond", "4",
         "--sweep-batch-size", "100", "--lr", "0.05", "--lr-schedule", "cosine"]
    )  # fmt: skip
    report = json.loads(out.read_text())
    assert 0.1 < report["test_accuracy"] <= 1.0 and report["best_epoch"] == 1
    # the validation curves of that run
    figure = tmp_path / "c.png"
    load_script("plot_curves").main([str(out), "--unit", "sweep", "--figure", str(figure)])
    assert figure.read_bytes()[:4] == b"\x89PNG"
    bench.main(
        [*args, "--trainer", "sweep", "--bond-dim", "2", "--max-bond", "4", "--truncation", "norm",
         "--no-test"]
    )  # fmt: skip
    report = json.loads(out.read_text())
    assert report["test_accuracy"] is None  # the test set was not read
    assert 0.1 < report["history"][-1]["val_accuracy"] <= 1.0
    # the paper's quadratic cost with conjugate-gradient bond updates
    bench.main(
        [*args, "--trainer", "sweep", "--bond-dim", "2", "--max-bond", "4",
         "--loss", "quadratic", "--solver", "cg", "--steps-per-bond", "2"]
    )  # fmt: skip
    assert 0.1 < json.loads(out.read_text())["test_accuracy"] <= 1.0


def test_sweep_truncation_benchmark_runs(tmp_path, capsys):
    directory = find_mnist_dir()
    if directory is None:
        pytest.skip("MNIST not found (set TNML_MNIST_DIR or put it at ../shared/data/mnist)")
    out = tmp_path / "truncation.json"
    load_script("sweep_truncation").main(
        ["--data-dir", str(directory), "--n-train", "300", "--n-val", "100", "--bond-dim", "4",
         "--max-bonds", "3", "--moves", "4", "--every", "2", "--threads", "1", "--out", str(out)]
    )  # fmt: skip
    rows = json.loads(out.read_text())["rows"]
    assert [r["truncation"] for r in rows] == ["norm", "data"]
    for row in rows:
        assert [m for m, _, _ in row["curve"]] == [0, 2, 4, 6, 8]
        assert len(row["discarded_share"]) == 8
    assert rows[0]["curve"][0] == rows[1]["curve"][0]  # the same trained model
    assert "discarded per split" in capsys.readouterr().out


def test_born_update_rules_benchmark_runs(tmp_path, capsys):
    directory = find_mnist_dir()
    if directory is None:
        pytest.skip("MNIST not found (../shared/data/mnist); the Born benchmarks need it")
    sys.path.insert(0, str(BENCHMARKS))  # the script imports mnist_born's data loader
    try:
        born = load_script("mnist_born")
        model = tmp_path / "born.tnml"
        born.main(
            ["--data-dir", str(directory), "--model", "mps", "--bond-dim", "2", "--epochs", "1",
             "--n-test", "10", "--threads", "1", "--quiet", "--save-model", str(model),
             "--grad-floor", "--lr", "5e-3", "--steps-per-bond", "1", "--lr-decay", "0.2",
             "--cutoff", "0"]
        )  # fmt: skip
        rules = load_script("born_update_rules")
        for rule in ("one-site", "two-site"):
            options = ["--data-dir", str(directory), "--max-bond", "2"]
            rules.main([str(model), "--rule", rule, *options])
    finally:
        sys.path.remove(str(BENCHMARKS))
    lines = [line for line in capsys.readouterr().out.splitlines() if "train NLL" in line]
    nlls = [float(line.split("train NLL")[1].split()[0]) for line in lines]
    # each rule starts from the saved model and lowers its NLL in one sweep
    start_one, after_one, start_two, after_two = nlls[-4:]
    assert start_one == start_two and after_one < start_one and after_two < start_two


def test_quantum_benchmarks_run(tmp_path):
    directory = find_mnist_dir()
    if directory is None:
        pytest.skip("MNIST not found (../shared/data/mnist); the quantum benchmarks need it")
    pytest.importorskip("qiskit_aer")
    out = tmp_path / "q.json"
    load_script("quantum_mnist").main(
        ["--data-dir", str(directory), "--size", "4", "--pairs", "0,1", "--n-train", "200",
         "--n-test", "50", "--epochs", "1", "--finetune-steps", "2", "--aer-rows", "2",
         "--threads", "1", "--out", str(out), "--figure", str(tmp_path / "n.png")]
    )  # fmt: skip
    record = json.loads(out.read_text())["pairs"][0]
    assert record["full"]["qubits_exported"] == 16 and record["efficient"]["qubits_exported"] == 5
    assert record["full"]["max_abs_diff_vs_aer"] < 1e-6
    assert len(record["noise"]) == 8
    born = tmp_path / "b.json"
    load_script("quantum_born").main(
        ["--data-dir", str(directory), "--size", "4", "--bond-dim", "4", "--n-train", "200",
         "--epochs", "1", "--shots", "500", "--aer-shots", "100", "--threads", "1",
         "--out", str(born)]
    )  # fmt: skip
    report = json.loads(born.read_text())
    assert report["circuit_efficient"]["qubits"] == 3


def test_native_circuit_benchmarks_run(tmp_path):
    pytest.importorskip("qiskit")
    born = tmp_path / "born.json"
    args = ["--dataset", "digits", "--bond-dims", "2", "--layers", "2", "--max-iter", "5",
            "--product-threshold", "0", "--n-nll-train", "50", "--dense-level", "1",
            "--threads", "1", "--out", str(born)]  # fmt: skip
    try:
        import qiskit_addon_aqc_tensor  # noqa: F401

        args += ["--aqc", "--aqc-layers", "1", "--aqc-maxiter", "1"]
    except ImportError:
        pass  # the side-by-side needs the bench extra; tnml's own rows still run
    script = load_script("native_born")
    script.main(args)
    bond = json.loads(born.read_text())["bonds"][0]
    assert [row["layers"] for row in bond["native"]] == [1, 2]
    # a bond-2 state is one exact staircase layer
    assert bond["native"][0]["fidelity"] >= 1 - 1e-9
    assert bond["dense"]["cx"] > bond["native"][0]["cx_heavy_hex"]
    if "aqc_tensor" in bond:
        aqc = bond["aqc_tensor"][0]
        assert aqc["fidelity_start"] == pytest.approx(bond["native"][0]["fidelity"], abs=1e-6)
    windows = tmp_path / "windows.json"
    script.main([*args[:16], "--window", "3", "--no-dense", "--out", str(windows)])
    bond = json.loads(windows.read_text())["bonds"][0]
    assert bond["window"] == 3 and [row["layers"] for row in bond["native"]] == [1, 2]
    assert bond["native"][1]["cx_heavy_hex"] == bond["native"][1]["cx"]  # a path: no SWAP
    script.main(["--plot", str(born), str(windows), "--figure", str(tmp_path / "f.png")])
    assert (tmp_path / "f.png").stat().st_size > 0
    digits = tmp_path / "digits.json"
    load_script("native_classifiers").main(
        ["digits", "--n-qubits", "4", "--blocks-per-feature", "0.5", "--epochs", "1",
         "--noise-pairs", "x", "--noise-images", "10", "--threads", "1", "--out", str(digits)]
    )  # fmt: skip
    record = json.loads(digits.read_text())["digits"]
    assert record["circuit"]["cx"] == 64 and record["circuit"]["swaps"] == 0
    assert record["circuit"]["circuit_test_accuracy"] == pytest.approx(
        record["model_test_accuracy"]
    )
    assert len(record["circuit"]["noise"]) == 6


def test_state_preparation_side_by_side_runs(tmp_path):
    pytest.importorskip("qiskit_aer")
    directory = find_mnist_dir()
    if directory is None:
        pytest.skip("MNIST not found (set TNML_MNIST_DIR or put it at ../shared/data/mnist)")
    out = tmp_path / "stateprep.json"
    args = ["--data-dir", str(directory), "--n-train", "300", "--n-test", "50", "--pixels", "8",
            "--bond-dim", "4", "--epochs", "1", "--layers", "2", "--out", str(out)]  # fmt: skip
    try:
        import qiskit_addon_aqc_tensor  # noqa: F401

        args += ["--aqc", "--aqc-layers", "1", "--aqc-maxiter", "2"]
    except ImportError:
        pass
    load_script("native_stateprep").main(args)
    record = json.loads(out.read_text())
    assert record["qubits"] == 8
    assert record["qiskit_state_preparation"]["fidelity"] == pytest.approx(1, abs=1e-9)
    assert record["tnml_dense"]["fidelity"] == pytest.approx(1, abs=1e-9)
    for row in record["tnml_native"]:
        # tnml's contraction against Aer's state vector of the exported circuit
        assert row["fidelity"] == pytest.approx(row["fidelity_statevector"], abs=1e-9)
    for row in record.get("aqc_tensor", []):
        assert row["fidelity"] == pytest.approx(row["fidelity_statevector"], abs=1e-6)
        assert row["fidelity"] >= row["fidelity_start"] - 1e-9


def _fashion_mnist_dir() -> Path | None:
    """Fashion-MNIST's IDX files: ``TNML_FASHION_MNIST_DIR``, ``../shared/data/fashion-mnist``
    beside the repository, or where Debian's ``dataset-fashion-mnist`` package puts them."""
    candidates = [os.environ.get("TNML_FASHION_MNIST_DIR")]
    candidates += [BENCHMARKS.parent.parent / "shared" / "data" / "fashion-mnist"]
    candidates += ["/usr/share/datasets/fashion-mnist"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "train-images-idx3-ubyte.gz").exists():
            return Path(candidate)
    return None


def test_fashion_mpo_benchmark_runs(tmp_path):
    directory = _fashion_mnist_dir()
    if directory is None:
        pytest.skip("Fashion-MNIST not found (set TNML_FASHION_MNIST_DIR)")
    out = tmp_path / "fashion.json"
    load_script("fashion_mpo").main(
        ["--data-dir", str(directory), "--limit", "1000", "--epochs", "1", "--retrain-epochs",
         "1", "--ratios", "16", "--tk-steps", "2", "--threads", "1", "--out", str(out)]
    )  # fmt: skip
    report = json.loads(out.read_text())
    rows = report["rows"]
    assert [r["budget"] for r in rows] == ["example"] * 3 + ["16x"] * 3
    for budget, weights in (("example", 27_384), ("16x", 784 * 50 // 16)):
        mpo, below, above = (r for r in rows if r["budget"] == budget)
        assert mpo["method"] == "mpo" and mpo["weights"] <= weights
        # the two SVD ranks bracket the MPO's size
        assert below["weights"] <= mpo["weights"] < above["weights"]
        assert all(0.0 < r["accuracy_after"] <= 1.0 for r in (mpo, below, above))


def test_step_faults_benchmark_runs(capsys):
    load_script("step_faults").main(
        ["--bond-dim", "4", "--sites", "12", "--batch", "8", "--steps", "2", "--threads", "1"]
    )
    assert "ms a step" in capsys.readouterr().out
