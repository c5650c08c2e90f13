"""Seconds for tnml's exact noisy simulation of a native circuit (density matrices).

The 10-digit circuit's layout (8 qubits, 7 SO(4) blocks per feature, 64 features: 896 CX
after routing on heavy-hex), random angles, two-qubit depolarising noise after every CX,
``--images`` random inputs. With ``--baseline-commit C`` the simulator module of commit C
(read with ``git show``) runs the same inputs alternately with today's, in the same process,
and the ratio of their times is printed (robust to a machine whose speed drifts).

Usage: python benchmarks/bench_noisy_simulation.py --images 16 --repeats 1 --threads 1 \
           --baseline-commit 1fcbbb8 --p1 0 1e-4
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import tnml
from tnml.quantum import NoiseModel, compile, simulate
from tnml.quantum.native import two_qubit_count


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--p2", type=float, default=1e-3)
    parser.add_argument(
        "--p1",
        type=float,
        nargs="+",
        default=[0.0],
        help="one-qubit depolarising rates to run (0: one-qubit gates fold into the next CX)",
    )
    parser.add_argument("--baseline-commit", default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    module = tnml.nn.CircuitClassifierModule(64, 10, 8, blocks_per_feature=7, angle_scale=0.25)
    module.double().reset_parameters(torch.Generator().manual_seed(0))
    circuit = compile(module, gates="native", target="heavy-hex")
    X = torch.rand(args.images, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    dtype = getattr(torch, args.dtype)
    runs = {"now": simulate}
    if args.baseline_commit:
        runs[args.baseline_commit] = _baseline_simulate(args.baseline_commit)
    for p1 in args.p1:
        noise = NoiseModel(depolarizing_1q=p1, depolarizing_2q=args.p2)
        seconds: dict[str, list[float]] = {name: [] for name in runs}
        results = {}
        for _ in range(args.repeats):
            for name, run in runs.items():
                started = time.perf_counter()
                results[name] = run(circuit, X, noise=noise, dtype=dtype)
                seconds[name].append(time.perf_counter() - started)
        record = {
            "cpu": platform.processor() or platform.machine(),
            "threads": args.threads,
            "images": args.images,
            "cx": two_qubit_count(circuit),
            "ops": len(circuit.ops),
            "p1": p1,
            "p2": args.p2,
            "seconds": {name: [round(x, 2) for x in v] for name, v in seconds.items()},
            "seconds_per_image": {
                name: round(min(v) / args.images, 3) for name, v in seconds.items()
            },
        }
        if args.baseline_commit:
            record["speedup"] = round(min(seconds[args.baseline_commit]) / min(seconds["now"]), 2)
            record["max_abs_difference"] = float(
                (results["now"] - results[args.baseline_commit]).abs().max()
            )
        print(json.dumps(record), flush=True)


def _baseline_simulate(commit: str):
    """``simulate`` from ``src/tnml/quantum/simulate.py`` at ``commit``."""
    source = subprocess.run(
        ["git", "show", f"{commit}:src/tnml/quantum/simulate.py"],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parent,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "simulate_baseline.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("simulate_baseline", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["simulate_baseline"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module.simulate


if __name__ == "__main__":
    main()
