"""Training and validation error per epoch (or sweep) of benchmark runs, in one figure.

Reads the JSON reports that ``mnist_mps.py --out`` writes (their ``history`` and ``args``)::

    python benchmarks/plot_curves.py benchmarks/out/mnist_sweep_d10_table.json \
        benchmarks/out/mnist_sweep_d20_table.json --unit sweep \
        --figure benchmarks/figures/mnist_sweep_curves.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from tnml.plot import plot_training_curves


def run_label(report: dict, path: str) -> str:
    """``D=20`` (the largest bond the run allowed), else the file's name."""
    args = report.get("args", {})
    bond = args.get("max_bond") or args.get("bond_dim")
    return f"D={bond}" if bond else Path(path).stem


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="+", help="JSON reports with a history")
    parser.add_argument("--figure", required=True, help="PNG to write")
    parser.add_argument("--unit", default="epoch", help="what one history entry is")
    parser.add_argument("--title", default=None)
    args = parser.parse_args(argv)
    runs = {}
    for path in args.reports:
        report = json.loads(Path(path).read_text())
        label = run_label(report, path)
        # runs with the same bond (another loss, truncation, seed) keep their file names
        runs[label if label not in runs else Path(path).stem] = report["history"]
    plot_training_curves(runs, args.figure, unit=args.unit, title=args.title)
    print(f"wrote {args.figure}")


if __name__ == "__main__":
    main()
