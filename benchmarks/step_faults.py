"""Time an MPS-classifier training step and count the page faults and system time it costs.

Usage (the commands behind the before/after figures in benchmarks/RESULTS.md, issue 17):

    python benchmarks/step_faults.py --bond-dim 64 --threads 2
    # the previous library, from a checkout of it, alternating with the current one:
    PYTHONPATH=OLD_CHECKOUT/src python benchmarks/step_faults.py --bond-dim 64 --threads 2

A step is the one ``benchmarks/bench_training_step.py`` times (its ``build_tnml``: 196 sites,
batch 100, float32, the normalized readout, cross-entropy against random labels, backward,
tnml's Adam); here
5 warm-up steps, then ``--steps`` timed ones in one stretch, with the minor page faults and
the user and system CPU time over them (``getrusage``), per step. Like tnml's training loop,
it first calls ``tnml.train.retain_freed_memory`` where the library has it.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import torch

import tnml.train

sys.path.insert(0, str(Path(__file__).resolve().parent))
# the same step that script times
from bench_training_step import build_tnml


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bond-dim", type=int, default=64)
    parser.add_argument("--sites", type=int, default=196)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    # what tnml's training loop does first; libraries before it lack the function
    retain = getattr(tnml.train, "retain_freed_memory", None)
    if retain is not None:
        retain()
    x, y = torch.rand(args.batch, args.sites), torch.randint(0, 10, (args.batch,))
    _, step = build_tnml(x, y, args.bond_dim, "auto")
    for _ in range(5):
        step()
    before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(args.steps):
        step()
    wall = (time.perf_counter() - started) / args.steps
    after = resource.getrusage(resource.RUSAGE_SELF)
    per_step = {
        "faults": (after.ru_minflt - before.ru_minflt) / args.steps,
        "user_ms": (after.ru_utime - before.ru_utime) / args.steps * 1e3,
        "sys_ms": (after.ru_stime - before.ru_stime) / args.steps * 1e3,
    }
    print(
        f"D={args.bond_dim} sites={args.sites} threads={args.threads}: "
        f"{wall * 1e3:.2f} ms a step, {per_step['faults']:.0f} page faults, "
        f"system {per_step['sys_ms']:.2f} ms, user {per_step['user_ms']:.2f} ms"
    )


if __name__ == "__main__":
    main()
