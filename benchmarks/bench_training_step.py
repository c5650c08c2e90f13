"""Time one full MPS-classifier training step of tnml and of TensorKrowch on the same problem.

Usage (the command behind the numbers reported from this file):

    python benchmarks/bench_training_step.py --bond-dims 10,32,64,128 --batch 100 --sites 196 \
        --min-time 2 --out benchmarks/out/training_step.json

TensorKrowch is installed without touching the installed torch:
``pip install --no-deps tensorkrowch opt_einsum`` (its only other requirement). Without it, or
with ``--no-tensorkrowch``, only tnml is timed.

A training step is: embed a fixed batch of ``--batch`` random inputs in [0, 1] with the
trigonometric map ``[cos(pi x/2), sin(pi x/2)]`` (d = 2), contract the MPS, take the softmax
cross-entropy against fixed random labels (10 classes), backpropagate and take one Adam step
(lr 1e-4; for both libraries the optimizer tnml's trainer builds, ``tnml.train.OPTIMIZERS
["adam"]``: torch's Adam fused into one kernel where the device has it); float32 throughout,
both libraries on the same number of torch threads.

* tnml: ``MPSClassifierModule(sites, 10, D)`` with the default ("normalized") readout, fed
  the raw inputs (it embeds internally), timed with ``contraction="auto"`` (what the ratio
  uses) and also with ``"sequential"`` and ``"pairwise"`` forced.
* TensorKrowch: ``tk.models.MPSLayer(n_features=sites + 1, in_dim=2, out_dim=10, bond_dim=D,
  init_method="randn_eye", std=1e-9)`` (OBC, label node in the middle), fed the embedded
  tensor, with ``auto_stack=True``, ``auto_unbind=False`` and ``trace()`` before training (its
  first-steps tutorial and the "How to save Memory and Time" tutorial). Every combination of
  ``inline_input``, ``inline_mats`` and ``renormalize`` is probed briefly and the fastest one
  whose logits are finite and not all zero is timed; without ``renormalize`` a 196-site chain
  of near-identity cores fed ``cos``/``sin`` features underflows to exactly zero in float32,
  which cannot train.

Each timed configuration gets 3 warm-up steps, then ``--repeats`` runs of at least
``--min-time`` seconds each, taken round-robin over the contestants of one bond dimension (so
a disturbance hits them alike); samples/s comes from the median seconds per step. A run during
which other processes used more than ``--max-others`` cores (from /proc/stat) is redone after
a pause, up to ``--max-retries`` times, and flagged if still disturbed. The dense matmul
throughput (float32 ``torch.mm`` of 1024^2 and 2048^2 matrices) is measured at the start and the
end of the same run; the best is the "peak". tnml's GFLOP/s counts the multiply-adds of the
contraction path it runs (see :func:`tnml_forward_flops`) and assumes backward = 2 x forward.

The process first calls ``tnml.train.retain_freed_memory`` (what tnml's training loop does:
glibc keeps freed memory instead of faulting it in again every step), which applies to both
libraries' steps. The machine should be idle: the 1-minute load average at start and end is
recorded.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import math
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

import tnml
from tnml.nn import MPSClassifierModule
from tnml.tensor.contract import choose_path
from tnml.train import OPTIMIZERS

try:  # TensorKrowch is optional: without it only tnml is timed.
    import tensorkrowch as tk
except ImportError:  # pragma: no cover - depends on the environment
    tk = None

N_CLASSES = 10
PHYS_DIM = 2
WARMUP_STEPS = 3
TNML_PATHS = ("auto", "sequential", "pairwise")
MATMUL_SIZES = (1024, 2048)


# -- machine ---------------------------------------------------------------------------------
def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo (falls back to :mod:`platform`)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> float | None:
    """The 1-minute load average, or None where the OS has none."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def machine_info(threads: int) -> dict[str, Any]:
    return {
        "cpu_model": cpu_model(),
        "logical_cores": os.cpu_count(),
        "torch_threads": threads,
        "torch_interop_threads": torch.get_num_interop_threads(),
        "torch_version": torch.__version__,
        "tensorkrowch_version": getattr(tk, "__version__", None),
        "tnml_version": tnml.__version__,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


# -- timing ----------------------------------------------------------------------------------
def _cpu_busy_seconds() -> float | None:
    """CPU seconds the whole machine has spent busy since boot (Linux /proc/stat)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


@dataclass
class Timer:
    """Times callables in repeats, redoing a repeat when other processes took CPU meanwhile.

    ``others`` of a repeat is the CPU time (in cores) that processes other than this one used
    during it, from /proc/stat; a repeat with ``others > max_others`` is run again (after a
    pause) up to ``max_retries`` times, then kept and flagged.
    """

    min_time: float
    repeats: int
    max_others: float = 0.25
    max_retries: int = 5
    pause: float = 10.0
    sync: Callable[[], None] = lambda: None  # waits for queued GPU work (no-op on CPU)
    contended: list[str] = field(default_factory=list)

    def repeat(self, fn: Callable[[], Any], min_time: float, label: str) -> tuple[float, float]:
        """Seconds per call over one run of at least ``min_time`` s, and the others' cores."""
        for attempt in range(self.max_retries + 1):
            busy_start, own_start = _cpu_busy_seconds(), _own_cpu_seconds()
            calls = 0
            start = time.perf_counter()
            while True:
                fn()
                self.sync()
                calls += 1
                elapsed = time.perf_counter() - start
                if elapsed >= min_time:
                    break
            busy_end, own_end = _cpu_busy_seconds(), _own_cpu_seconds()
            if busy_start is None or busy_end is None:
                return elapsed / calls, math.nan
            others = max(0.0, (busy_end - busy_start) - (own_end - own_start)) / elapsed
            if others <= self.max_others:
                return elapsed / calls, others
            if attempt < self.max_retries:
                print(
                    f"    ({label}: other processes used {others:.2f} cores; "
                    f"pausing {self.pause:.0f} s and redoing it)",
                    flush=True,
                )
                time.sleep(self.pause)
        self.contended.append(f"{label}: others used {others:.2f} cores")
        return elapsed / calls, others


# Seconds-per-call and others-cores of each repeat of one timed configuration.
Runs = list[tuple[float, float]]


def median_seconds(runs: Runs) -> float:
    return statistics.median(seconds for seconds, _ in runs)


def matmul_gflops(timer: Timer, n: int, device: torch.device) -> float:
    """float32 GFLOP/s of ``torch.mm`` on two ``n x n`` matrices (2 n^3 flops per product)."""
    generator = torch.Generator().manual_seed(n)
    a = torch.randn(n, n, generator=generator).to(device)
    b = torch.randn(n, n, generator=generator).to(device)
    out = torch.empty(n, n, device=device)
    for _ in range(WARMUP_STEPS):
        torch.mm(a, b, out=out)
    runs = [
        timer.repeat(lambda: torch.mm(a, b, out=out), timer.min_time / 2, f"mm {n}")
        for _ in range(timer.repeats)
    ]
    return 2 * n**3 / median_seconds(runs) / 1e9


def measure_matmul(timer: Timer, device: torch.device) -> dict[str, float]:
    return {str(n): matmul_gflops(timer, n, device) for n in MATMUL_SIZES}


# -- FLOP count of tnml's contraction --------------------------------------------------------
def tnml_forward_flops(
    path: str, batch: int, n_sites: int, phys_dim: int, bond_dim: int, n_classes: int
) -> int:
    """Multiply-add flops (2 per MAC) of one forward contraction in :mod:`tnml.tensor.contract`.

    The chain is cut at the output site ``n_sites // 2`` into 2 chains of ``n`` sites each
    (the shorter one padded with identity cores, which are counted).

    * ``"sequential"``, per chain and site: ``bmm`` ``(B, D) @ (D, d D)`` (``2 B d D^2``) and
      the multiply-and-sum over ``d`` (``2 B d D``).
    * ``"pairwise"``: each chain is padded with identity sites to ``n2``, the next power of
      two; transfer matrices ``2 B n2 d D^2`` per chain, then ``n2 - 1`` products of ``D x D``
      matrices per chain and sample (``2 D^3`` each).
    * Both: the readout einsum, leading terms ``2 B D^2 d L + 2 B D d L``.

    Norms, logs and divisions are not counted.
    """
    output_site = n_sites // 2
    n = max(output_site, n_sites - 1 - output_site)
    n_chains = 2
    if path == "sequential":
        chains = (
            n_chains * n * (2 * batch * phys_dim * bond_dim**2 + 2 * batch * phys_dim * bond_dim)
        )
    elif path == "pairwise":
        n2 = 1 << max(n - 1, 0).bit_length() if n else 0
        transfer = 2 * batch * n2 * phys_dim * bond_dim**2
        products = 2 * batch * max(n2 - 1, 0) * bond_dim**3
        chains = n_chains * (transfer + products)
    else:
        raise ValueError(f"path must be 'sequential' or 'pairwise', got {path!r}")
    readout = (
        2 * batch * bond_dim**2 * phys_dim * n_classes + 2 * batch * bond_dim * phys_dim * n_classes
    )
    return chains + readout


# -- training steps --------------------------------------------------------------------------
def trig_embed(x: Tensor) -> Tensor:
    """``(B, N)`` in [0, 1] -> ``(B, N, 2)``: ``[cos(pi x/2), sin(pi x/2)]``."""
    angle = (math.pi / 2) * x
    return torch.stack([torch.cos(angle), torch.sin(angle)], dim=-1)


def make_step(
    model: nn.Module, forward: Callable[[], Tensor], labels: Tensor
) -> Callable[[], tuple[Tensor, Tensor]]:
    """One Adam training step on cross-entropy; returns the (logits, loss) it computed."""
    optimizer = OPTIMIZERS["adam"](model.parameters(), lr=1e-4, weight_decay=0.0)
    loss_fn = nn.CrossEntropyLoss()

    def step() -> tuple[Tensor, Tensor]:
        optimizer.zero_grad(set_to_none=True)
        logits = forward()
        loss = loss_fn(logits, labels)
        loss.backward()
        optimizer.step()
        return logits, loss

    return step


def warm_up(step: Callable[[], tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
    for _ in range(WARMUP_STEPS):
        logits, loss = step()
    return logits.detach(), loss.detach()


def usable(logits: Tensor, loss: Tensor) -> bool:
    """Logits a classifier can learn from: finite and not all exactly zero."""
    return bool(torch.isfinite(logits).all() and logits.abs().max() > 0 and torch.isfinite(loss))


Step = Callable[[], tuple[Tensor, Tensor]]


def build_tnml(x: Tensor, labels: Tensor, bond_dim: int, path: str) -> tuple[nn.Module, Step]:
    torch.manual_seed(0)
    module = MPSClassifierModule(x.shape[1], N_CLASSES, bond_dim, contraction=path).to(x.device)
    module.train()
    return module, make_step(module, lambda: module(x), labels)


def tk_settings_grid() -> list[dict[str, bool]]:
    return [
        {"inline_input": ii, "inline_mats": im, "renormalize": rn}
        for ii, im, rn in product((False, True), repeat=3)
    ]


def build_tk(
    x: Tensor, labels: Tensor, bond_dim: int, settings: dict[str, bool]
) -> tuple[nn.Module, Step, float]:
    """A traced TensorKrowch ``MPSLayer``, its training step and the seconds ``trace`` took."""
    torch.manual_seed(0)
    n_sites = x.shape[1]
    mps = tk.models.MPSLayer(
        n_features=n_sites + 1,
        in_dim=PHYS_DIM,
        out_dim=N_CLASSES,
        bond_dim=bond_dim,
        boundary="obc",
        init_method="randn_eye",
        std=1e-9,
    )
    mps = mps.to(x.device)
    mps.auto_stack = True
    mps.auto_unbind = False
    started = time.perf_counter()
    mps.trace(torch.zeros(1, n_sites, PHYS_DIM, device=x.device), **settings)
    trace_seconds = time.perf_counter() - started
    # The optimizer gets the parameters after tracing, as the tutorial says.
    step = make_step(mps, lambda: mps(trig_embed(x), **settings), labels)
    return mps, step, trace_seconds


def settings_label(settings: dict[str, bool]) -> str:
    short = {"inline_input": "in", "inline_mats": "mats", "renormalize": "renorm"}
    return ",".join(f"{short[k]}={'T' if v else 'F'}" for k, v in settings.items())


def probe_tensorkrowch(
    timer: Timer, x: Tensor, labels: Tensor, bond_dim: int, probe_time: float
) -> list[dict[str, Any]]:
    """Time every TensorKrowch contraction setting briefly (one warm-up step, then one run)."""
    probes = []
    for settings in tk_settings_grid():
        mps, step, trace_seconds = build_tk(x, labels, bond_dim, settings)
        logits, loss = step()
        seconds, others = timer.repeat(step, probe_time, f"tk probe D={bond_dim}")
        probes.append(
            {
                "settings": settings,
                "trace_seconds": trace_seconds,
                "step_seconds": seconds,
                "samples_per_s": x.shape[0] / seconds,
                "others_cores": others,
                "usable": usable(logits.detach(), loss.detach()),
            }
        )
        print(
            f"    tk probe D={bond_dim:<4d} {settings_label(settings):<26s} "
            f"{x.shape[0] / seconds:8.1f} samples/s  usable={probes[-1]['usable']}",
            flush=True,
        )
        del mps, step
        gc.collect()
    return probes


def bench_bond_dim(
    timer: Timer, x: Tensor, labels: Tensor, bond_dim: int, use_tk: bool, probe_time: float
) -> dict[str, Any]:
    """All timings at one bond dimension; the repeats go round-robin over the contestants."""
    row: dict[str, Any] = {"bond_dim": bond_dim, "tnml": {}}
    contestants: dict[str, Step] = {}
    keep: list[nn.Module] = []
    for path in TNML_PATHS:
        module, step = build_tnml(x, labels, bond_dim, path)
        logits, loss = warm_up(step)
        concrete = choose_path(bond_dim, path, x.device.type)
        row["tnml"][path] = {
            "contraction": path,
            "path": concrete,
            "forward_flops": tnml_forward_flops(
                concrete, x.shape[0], x.shape[1], PHYS_DIM, bond_dim, N_CLASSES
            ),
            "usable": usable(logits, loss),
        }
        contestants[f"tnml {path}"] = step
        keep.append(module)
    if use_tk:
        probes = probe_tensorkrowch(timer, x, labels, bond_dim, probe_time)
        candidates = [p for p in probes if p["usable"]] or probes
        best = min(candidates, key=lambda p: p["step_seconds"])
        mps, step, trace_seconds = build_tk(x, labels, bond_dim, best["settings"])
        logits, loss = warm_up(step)
        row["tensorkrowch"] = {
            "settings": best["settings"],
            "trace_seconds": trace_seconds,
            "usable": usable(logits, loss),
            "probes": probes,
        }
        contestants["tensorkrowch"] = step
        keep.append(mps)

    runs: dict[str, Runs] = {name: [] for name in contestants}
    for _ in range(timer.repeats):
        for name, step in contestants.items():
            runs[name].append(timer.repeat(step, timer.min_time, f"{name} D={bond_dim}"))
    for name, name_runs in runs.items():
        entry = row["tensorkrowch"] if name == "tensorkrowch" else row["tnml"][name.split()[1]]
        entry["step_seconds"] = [seconds for seconds, _ in name_runs]
        entry["others_cores"] = [others for _, others in name_runs]
        entry["samples_per_s"] = x.shape[0] / median_seconds(name_runs)
        label = settings_label(entry["settings"]) if name == "tensorkrowch" else entry["path"]
        print(
            f"  {name:<16s} D={bond_dim:<4d} ({label}) {entry['samples_per_s']:8.1f} samples/s",
            flush=True,
        )
    if use_tk:
        row["ratio"] = row["tnml"]["auto"]["samples_per_s"] / row["tensorkrowch"]["samples_per_s"]
    del keep, contestants
    gc.collect()
    return row


# -- report ----------------------------------------------------------------------------------
def print_table(results: list[dict[str, Any]], peak: float) -> None:
    header = (
        f"{'D':>4} {'tnml contraction':<22} {'tnml samp/s':>11} {'TK samp/s':>10} "
        f"{'ratio':>6} {'tnml GFLOP/s':>12} {'of peak':>8}  TK settings"
    )
    print(header)
    print("-" * len(header))
    for row in results:
        tk_row = row.get("tensorkrowch")
        for path in TNML_PATHS:
            run = row["tnml"][path]
            is_auto = path == "auto"
            name = f"{path} ({run['path']})" if is_auto else path
            show_tk = tk_row is not None and is_auto
            tk_text = f"{tk_row['samples_per_s']:10.1f}" if show_tk else f"{'':>10}"
            ratio_text = f"{row['ratio']:6.2f}" if show_tk else f"{'':>6}"
            settings_text = settings_label(tk_row["settings"]) if show_tk else ""
            print(
                f"{row['bond_dim'] if is_auto else '':>4} {name:<22} "
                f"{run['samples_per_s']:11.1f} {tk_text} {ratio_text} "
                f"{run['gflops']:12.2f} {run['fraction_of_peak']:8.1%}  {settings_text}"
            )
    print(
        f"\npeak = best float32 torch.mm GFLOP/s of this run: {peak:.1f}. tnml GFLOP/s = "
        "3 x forward contraction flops / step time (backward assumed 2 x forward)."
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bond-dims", default="10,32,64,128", help="comma-separated D values")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--sites", type=int, default=196)
    parser.add_argument("--min-time", type=float, default=2.0, help="seconds per repeat")
    parser.add_argument("--repeats", type=int, default=3, help="repeats; the median is used")
    parser.add_argument(
        "--probe-time", type=float, default=0.5, help="seconds per TensorKrowch setting probed"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's default)"
    )
    parser.add_argument(
        "--max-others",
        type=float,
        default=0.25,
        help="redo a repeat when other processes used more than this many cores during it",
    )
    parser.add_argument("--max-retries", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-tensorkrowch", action="store_true", help="time tnml only")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (timings synchronise)")
    parser.add_argument("--out", default="benchmarks/out/training_step.json")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    # what tnml's training loop does first (the same process: TensorKrowch's steps get it too);
    # libraries before it lack the function
    retain = getattr(tnml.train, "retain_freed_memory", None)
    if retain is not None:
        retain()
    bond_dims = [int(v) for v in args.bond_dims.split(",") if v.strip()]
    use_tk = tk is not None and not args.no_tensorkrowch
    if tk is None:
        print("tensorkrowch is not importable: timing tnml alone.", flush=True)
    warnings.filterwarnings("ignore", module="tensorkrowch")
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    timer = Timer(args.min_time, args.repeats, args.max_others, args.max_retries, sync=sync)

    info = machine_info(threads)
    info["load_average_1min_start"] = load_average()
    print(
        f"{info['cpu_model']}, {info['logical_cores']} logical cores, {threads} torch threads, "
        f"torch {info['torch_version']}, tensorkrowch {info['tensorkrowch_version']}, "
        f"1-min load {info['load_average_1min_start']}",
        flush=True,
    )
    matmul_start = measure_matmul(timer, device)
    print(f"torch.mm float32 GFLOP/s: {matmul_start}", flush=True)

    generator = torch.Generator().manual_seed(args.seed)
    x = torch.rand(args.batch, args.sites, generator=generator).to(device)
    labels = torch.randint(0, N_CLASSES, (args.batch,), generator=generator).to(device)
    results = [
        bench_bond_dim(timer, x, labels, bond_dim, use_tk, args.probe_time)
        for bond_dim in bond_dims
    ]

    matmul_end = measure_matmul(timer, device)
    peak = max(*matmul_start.values(), *matmul_end.values())
    for row in results:
        for run in row["tnml"].values():
            step_flops = 3 * run["forward_flops"]
            run["gflops"] = step_flops / statistics.median(run["step_seconds"]) / 1e9
            run["fraction_of_peak"] = run["gflops"] / peak
    info["load_average_1min_end"] = load_average()

    print()
    print_table(results, peak)
    print(
        f"1-min load average: {info['load_average_1min_start']:.2f} at start (before this "
        f"run), {info['load_average_1min_end']:.2f} at end (includes this run)."
    )
    if timer.contended:
        print(
            f"{len(timer.contended)} repeat(s) still disturbed after {timer.max_retries} "
            "retries (listed in the JSON): " + "; ".join(sorted(set(timer.contended))[:5])
        )
    if not use_tk:
        print("TensorKrowch was not timed (not importable or --no-tensorkrowch).")

    report = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": info,
        "config": {
            "sites": args.sites,
            "phys_dim": PHYS_DIM,
            "n_classes": N_CLASSES,
            "batch": args.batch,
            "dtype": "float32",
            "device": str(device),
            "bond_dims": bond_dims,
            "min_time": args.min_time,
            "repeats": args.repeats,
            "warmup_steps": WARMUP_STEPS,
            "max_others_cores": args.max_others,
            "optimizer": "Adam(lr=1e-4)",
            "loss": "CrossEntropyLoss",
            "seed": args.seed,
        },
        "matmul_gflops": {"start": matmul_start, "end": matmul_end, "peak": peak},
        "flop_model": tnml_forward_flops.__doc__,
        "backward_assumption": "backward = 2 x forward flops",
        "tensorkrowch_timed": use_tk,
        "contended_repeats": timer.contended,
        "results": results,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
