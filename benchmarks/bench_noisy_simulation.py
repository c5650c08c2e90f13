"""Seconds for tnml's exact noisy simulation of a native circuit (density matrices).

The 10-digit circuit's layout (8 qubits, 7 SO(4) blocks per feature, 64 features: 896 CX
after routing on heavy-hex), random angles, two-qubit depolarising noise after every CX,
``--images`` random inputs in one batch. Run it at two commits to compare them.

Usage: python benchmarks/bench_noisy_simulation.py --images 20 --repeats 3 --threads 1
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

import tnml
from tnml.quantum import NoiseModel, compile, simulate
from tnml.quantum.native import two_qubit_count


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--p2", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    module = tnml.nn.CircuitClassifierModule(64, 10, 8, blocks_per_feature=7, angle_scale=0.25)
    module.double().reset_parameters(torch.Generator().manual_seed(0))
    circuit = compile(module, gates="native", target="heavy-hex")
    X = torch.rand(args.images, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    noise = NoiseModel(depolarizing_2q=args.p2)
    dtype = getattr(torch, args.dtype)
    seconds = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        probs = simulate(circuit, X, noise=noise, dtype=dtype)
        seconds.append(time.perf_counter() - started)
    print(
        json.dumps(
            {
                "tnml": tnml.__version__,
                "cpu": platform.processor() or platform.machine(),
                "threads": args.threads,
                "images": args.images,
                "cx": two_qubit_count(circuit),
                "ops": len(circuit.ops),
                "seconds": [round(s, 2) for s in seconds],
                "seconds_per_image": round(min(seconds) / args.images, 3),
                "checksum": float(probs.sum()),
                "first_row": [round(float(v), 6) for v in probs[0]],
            }
        )
    )


if __name__ == "__main__":
    main()
