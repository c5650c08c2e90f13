"""The benchmark scripts run end to end on tiny configurations (they are not timed here)."""

from __future__ import annotations

import importlib.util
import json
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
    args = ["--data-dir", str(directory), "--size", "7", "--bond-dim", "3", "--epochs", "1"]
    args += ["--limit", "600", "--quiet", "--threads", "1", "--out", str(out)]
    bench.main(args)
    report = json.loads(out.read_text())
    assert 0.1 < report["test_accuracy"] <= 1.0
