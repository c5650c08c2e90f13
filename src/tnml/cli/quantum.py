"""``tnml compile`` and ``tnml noise-study``: a fitted model as a circuit, and under noise."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from tnml import io as tnml_io
from tnml import plot as tn_plot
from tnml.cli.datasets import ModelSpec, load_evaluation_data
from tnml.data import MNIST_ENV_VAR
from tnml.exceptions import InvalidInputError
from tnml.quantum.compile import compile as compile_circuit
from tnml.quantum.evaluate import NOISE_CHANNELS, circuit_inputs, noise_study
from tnml.train.checkpoint import atomic_write

DEFAULT_LEVELS = "1e-4,3e-4,1e-3,3e-3,1e-2,3e-2,1e-1"

ModelArg = Annotated[Path, typer.Argument(metavar="MODEL", help="A .tnml model file.")]
ScheduleOpt = Annotated[
    Literal["full", "efficient"],
    typer.Option(help="full: one qubit per input; efficient: qubits measured/reset and reused."),
]


def compile_command(
    model_path: ModelArg,
    schedule: ScheduleOpt = "full",
    fmt: Annotated[
        Literal["qasm3", "qiskit"],
        typer.Option(
            "--format",
            help="qasm3 (OpenQASM 3 text in native gates, inputs as `input float` "
            "parameters) or qiskit (a QPY file of the QuantumCircuit).",
        ),
    ] = "qasm3",
    out: Annotated[Path, typer.Option(help="Where to write the circuit.")] = Path("circuit.qasm"),
    basis: Annotated[
        str, typer.Option(help="Native gates for the QASM export and the report.")
    ] = "rz,sx,x,cx",
) -> None:
    """Compile MODEL (a unitary classifier or a Born machine on binary data) into a circuit."""
    model = tnml_io.load(model_path)
    circuit = compile_circuit(model, schedule)
    from tnml.quantum.export import to_qasm3, to_qiskit, transpile_report

    basis_gates = tuple(g.strip() for g in basis.split(",") if g.strip())
    if not basis_gates:
        raise InvalidInputError("--basis must name at least one gate, e.g. rz,sx,x,cx")
    report = transpile_report(circuit, basis_gates=basis_gates)
    if fmt == "qasm3":
        text = to_qasm3(circuit, basis_gates=basis_gates)
        atomic_write(out, lambda tmp: Path(tmp).write_text(text))
    else:
        from qiskit import qpy

        qc = to_qiskit(circuit)

        def write(tmp: str) -> None:
            with open(tmp, "wb") as handle:
                qpy.dump(qc, handle)

        atomic_write(out, write)
    counts = ", ".join(f"{k} {v}" for k, v in sorted(report["counts"].items()))
    typer.echo(
        f"{schedule} circuit: {circuit.num_qubits} qubits, {circuit.n_features} inputs, "
        f"registers {circuit.registers}"
    )
    typer.echo(f"native ({','.join(basis_gates)}): depth {report['depth']}, {counts}")
    typer.echo(f"wrote {out}")


def _levels(value: str) -> list[float]:
    try:
        levels = [float(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise InvalidInputError(
            f"--levels must be comma-separated numbers, got {value!r}"
        ) from None
    if not levels or any(not 0 < v <= 1 for v in levels):
        raise InvalidInputError(f"--levels must hold numbers in (0, 1], got {value!r}")
    return levels


def noise_study_command(
    model_path: ModelArg,
    dataset: Annotated[
        str | None,
        typer.Argument(
            help="digits, mnist or csv (default: the data the model was trained on).",
            show_default=False,
        ),
    ] = None,
    file: Annotated[
        Path | None, typer.Argument(help="The CSV file (dataset csv).", show_default=False)
    ] = None,
    noise: Annotated[
        str, typer.Option(help=f"Noise channel: {', '.join(NOISE_CHANNELS)}.")
    ] = "depolarizing",
    levels: Annotated[
        str, typer.Option(help="Comma-separated strengths per gate (per bit for readout).")
    ] = DEFAULT_LEVELS,
    schedule: ScheduleOpt = "full",
    shots: Annotated[
        int | None,
        typer.Option(min=1, help="Estimate from shots (default: exact).", show_default=False),
    ] = None,
    n_samples: Annotated[
        int | None,
        typer.Option(
            min=1, help="Score the first N test samples (default: all).", show_default=False
        ),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            envvar=MNIST_ENV_VAR, help="MNIST folder (default: the model's).", show_default=False
        ),
    ] = None,
    out: Annotated[Path, typer.Option(help="Folder for noise.png and noise.json.")] = Path(
        "noise-study"
    ),
) -> None:
    """Accuracy of MODEL's circuit on its test data against the noise strength per gate."""
    if noise not in NOISE_CHANNELS:
        raise InvalidInputError(
            f"--noise must be one of {', '.join(NOISE_CHANNELS)}, got {noise!r}"
        )
    values = _levels(levels)
    model = tnml_io.load(model_path)
    if not hasattr(model, "classes_"):
        raise InvalidInputError("noise-study scores classifiers; MODEL is not one")
    circuit = compile_circuit(model, schedule)
    data = load_evaluation_data(ModelSpec.from_model(model), dataset, file, data_dir=data_dir)
    X, y = data.X, np.asarray(data.y)
    if n_samples is not None:
        X, y = X[:n_samples], y[:n_samples]
    inputs = circuit_inputs(model, X)
    unknown = ~np.isin(y, model.classes_)
    if unknown.any():
        raise InvalidInputError(
            f"the data hold labels the model never saw: {np.unique(y[unknown])}"
        )
    labels = np.searchsorted(model.classes_, y)
    started = time.perf_counter()
    rows = noise_study(circuit, inputs, labels, values, channel=noise, shots=shots)
    seconds = time.perf_counter() - started
    out.mkdir(parents=True, exist_ok=True)
    tn_plot.plot_noise_curve(
        values,
        [r["accuracy"] for r in rows[1:]],
        out / "noise.png",
        noiseless=rows[0]["accuracy"],
        label=noise,
        title=f"{model_path.name}: {schedule} circuit, {len(y)} samples",
    )
    report = {
        "model": str(model_path),
        "data": data.description,
        "n_samples": len(y),
        "schedule": schedule,
        "qubits": circuit.num_qubits,
        "noise": noise,
        "shots": shots,
        "rows": rows,
        "seconds": round(seconds, 3),
    }
    atomic_write(out / "noise.json", lambda tmp: Path(tmp).write_text(json.dumps(report, indent=2)))
    table = Table(title=f"{noise} noise, {schedule} circuit ({circuit.num_qubits} qubits)")
    table.add_column("level per gate", justify="right")
    table.add_column("accuracy", justify="right")
    for row in rows:
        table.add_row(
            "0 (noiseless)" if row["level"] == 0 else f"{row['level']:g}", f"{row['accuracy']:.4f}"
        )
    Console(soft_wrap=False).print(table)
    typer.echo(f"wrote noise.png, noise.json to {out}")
