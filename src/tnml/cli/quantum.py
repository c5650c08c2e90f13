"""``tnml compile`` and ``tnml noise-study``: a fitted model as a circuit, and under noise."""

from __future__ import annotations

import inspect
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
from tnml._files import atomic_write
from tnml.cli.options import output_file, output_folder
from tnml.data import MNIST_ENV_VAR
from tnml.exceptions import InvalidInputError
from tnml.quantum.compile import compile as compile_circuit
from tnml.quantum.evaluate import NOISE_CHANNELS, circuit_inputs, noise_study
from tnml.workflows.data import ModelSpec, is_born_machine, load_evaluation_data

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
    out: Annotated[
        Path, typer.Option(help="Where to write the circuit.", callback=output_file)
    ] = Path("circuit.qasm"),
    basis: Annotated[
        str, typer.Option(help="Native gates for the QASM export and the report.")
    ] = "rz,sx,x,cx",
    native: Annotated[
        bool,
        typer.Option(
            "--native/--dense",
            help="native: one- and two-qubit gates only (a Born machine becomes staircase "
            "layers of two-qubit blocks); dense: one gate per tensor.",
        ),
    ] = False,
    target: Annotated[
        str | None,
        typer.Option(
            help="Device coupling map for --native: line, heavy-hex or all-to-all; every CX "
            "of the output then acts on a coupled pair of the device's qubits.",
            show_default=False,
        ),
    ] = None,
    max_2q: Annotated[
        int | None,
        typer.Option(
            "--max-2q",
            min=1,
            help="Largest CX count after routing (--native); a Born machine gets the most "
            "layers that fit.",
            show_default=False,
        ),
    ] = None,
    layers: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Staircase layers of a Born machine (--native); default: the most that fit "
            "--max-2q, else as many as reach --min-fidelity (at most 8).",
            show_default=False,
        ),
    ] = None,
    min_fidelity: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="Born machines (--native) without --layers or --max-2q (default "
            f"{inspect.signature(compile_circuit).parameters['min_fidelity'].default}).",
            show_default=False,
        ),
    ] = None,
    product_threshold: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=0.5,
            help="Born machines: features whose one-site state is this close to pure get a "
            "one-qubit rotation instead of two-qubit gates (shorter layers).",
        ),
    ] = 0.0,
    window: Annotated[
        int | None,
        typer.Option(
            min=3,
            help="Born machines (--native): brick layers in windows of this many qubits "
            "instead of staircase layers; --layers then counts brick layers per window.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Compile MODEL (a unitary, circuit or Born-machine model) into a circuit."""
    suffix = out.suffix.lower()
    if (fmt == "qiskit" and suffix in (".qasm", ".qasm3")) or (fmt == "qasm3" and suffix == ".qpy"):
        wanted = ".qpy" if fmt == "qiskit" else ".qasm"
        raise InvalidInputError(
            f"--format {fmt} writes a {'QPY (binary)' if fmt == 'qiskit' else 'OpenQASM 3'} "
            f"file; --out {out.name} says otherwise (use a {wanted} name)"
        )
    born_options = (
        ("--layers", layers),
        ("--min-fidelity", min_fidelity),
        ("--product-threshold", product_threshold or None),
        ("--window", window),
    )
    if not native:
        for name, value in (("--target", target), ("--max-2q", max_2q), *born_options):
            if value is not None:
                raise InvalidInputError(f"{name} needs --native")
    model = tnml_io.load(model_path)
    if not is_born_machine(model):
        for name, value in born_options:
            if value is not None:
                raise InvalidInputError(
                    f"{name} applies to Born machines; {model_path} holds a {type(model).__name__}"
                )
    circuit = compile_circuit(
        model,
        schedule,
        gates="native" if native else "dense",
        layers=layers,
        target=target,
        max_two_qubit_gates=max_2q,
        **({} if min_fidelity is None else {"min_fidelity": min_fidelity}),
        product_threshold=product_threshold,
        window=window,
        callback=_report_layer,
    )
    from tnml.quantum.export import to_qasm3, to_qiskit, transpile_report

    basis_gates = tuple(g.strip() for g in basis.split(",") if g.strip())
    if not basis_gates:
        raise InvalidInputError("--basis must name at least one gate, e.g. rz,sx,x,cx")
    physical = target is not None
    report = transpile_report(circuit, basis_gates=basis_gates, physical=physical)
    if fmt == "qasm3":
        text = to_qasm3(circuit, basis_gates=basis_gates, physical=physical)
        atomic_write(out, lambda tmp: Path(tmp).write_text(text))
    else:
        from qiskit import qpy

        qc = to_qiskit(circuit, physical=physical)

        def write(tmp: str) -> None:
            with open(tmp, "wb") as handle:
                qpy.dump(qc, handle)

        atomic_write(out, write)
    counts = ", ".join(f"{k} {v}" for k, v in sorted(report["counts"].items()))
    meta = circuit.metadata
    where = ""
    if physical:
        where = f" on {meta['target']} qubits {meta['physical_qubits']}"
    # a circuit classifier has its own layout, no schedule: none is named for it
    layout_name = f"{meta['schedule']} " if "schedule" in meta else ""
    typer.echo(
        f"{layout_name}{'native' if native else 'dense'} circuit: "
        f"{circuit.num_qubits} qubits{where}, {circuit.n_features} inputs, registers "
        f"{circuit.registers}"
    )
    if "fidelity" in meta:
        layout = (
            f"brick layer(s) in windows of {meta['window']} qubits"
            if meta.get("window")
            else "staircase layer(s)"
        )
        typer.echo(f"{meta['layers']} {layout}, fidelity to the model {meta['fidelity']:.6f}")
    typer.echo(
        f"two-qubit gates {report['two_qubit_gates']}, depth {report['depth']} "
        f"({','.join(basis_gates)}: {counts})"
    )
    typer.echo(f"wrote {out}")


def _report_layer(row: dict) -> None:
    """One line per layer on stderr while a Born machine is synthesised."""
    typer.echo(
        f"layer {row['layers']}: fidelity {row['fidelity']:.4f} ({row['seconds']:.1f} s)",
        err=True,
    )


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
    also: Annotated[
        list[Path] | None,
        typer.Option(
            help="Another model file to score on the same data and noise (repeatable); the "
            "table lists each model's CX count, to compare at equal hardware cost.",
            show_default=False,
        ),
    ] = None,
    target: Annotated[
        str | None,
        typer.Option(
            help="Route every circuit on this device (line, heavy-hex, all-to-all) first.",
            show_default=False,
        ),
    ] = None,
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
    label_column: Annotated[
        str | None,
        typer.Option(
            help="Dataset csv: the label column (tnml train's --target; here --target is the "
            "device). Default: the model's.",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        Path, typer.Option(help="Folder for noise.png and noise.json.", callback=output_folder)
    ] = Path("noise-study"),
) -> None:
    """Accuracy of MODEL's circuit on its test data against the noise strength per native
    gate (every circuit is synthesised into one-qubit gates and CX first)."""
    if noise not in NOISE_CHANNELS:
        raise InvalidInputError(
            f"--noise must be one of {', '.join(NOISE_CHANNELS)}, got {noise!r}"
        )
    values = _levels(levels)
    paths = [model_path, *(also or [])]
    # every model and its data first: the models must be scored on the same samples, which is
    # checked before any simulation
    loaded = []
    for path in paths:
        model = tnml_io.load(path)
        if not hasattr(model, "classes_"):
            raise InvalidInputError(f"noise-study scores classifiers; {path} is not one")
        data = load_evaluation_data(
            ModelSpec.from_model(model),
            dataset,
            file,
            data_dir=data_dir,
            target=label_column,
            command="noise-study",
            label_option="--label-column",
        )
        X, y = data.X, np.asarray(data.y)
        if n_samples is not None:
            X, y = X[:n_samples], y[:n_samples]
        if loaded and (
            data.description != loaded[0][2].description or not np.array_equal(y, loaded[0][4])
        ):
            raise InvalidInputError(
                f"--also compares models on the same data: {model_path} is scored on "
                f"{loaded[0][2].description}, {path} on {data.description}; train them on the "
                "same data and split (the same --test-fraction and --seed)"
            )
        unknown = ~np.isin(y, model.classes_)
        if unknown.any():
            raise InvalidInputError(
                f"the data hold labels {path} never saw: {np.unique(y[unknown]).tolist()}"
            )
        loaded.append((path, model, data, X, y))
    results = []
    started = time.perf_counter()
    for path, model, data, X, y in loaded:
        circuit = compile_circuit(
            model, schedule, gates="native" if target else "dense", target=target
        )
        if not circuit.metadata.get("native"):
            from tnml.quantum.native import decompose

            circuit = decompose(circuit)
        labels = np.searchsorted(model.classes_, y)
        rows = noise_study(
            circuit, circuit_inputs(model, X), labels, values, channel=noise, shots=shots
        )
        results.append(
            {
                "model": str(path),
                "data": data.description,
                "n_samples": len(y),
                "qubits": circuit.num_qubits,
                "two_qubit_gates": circuit.metadata["two_qubit_gates"],
                "rows": rows,
            }
        )
    seconds = time.perf_counter() - started
    out.mkdir(parents=True, exist_ok=True)
    tn_plot.plot_noise_curve(
        values,
        [[r["accuracy"] for r in res["rows"][1:]] for res in results],
        out / "noise.png",
        noiseless=results[0]["rows"][0]["accuracy"] if len(results) == 1 else None,
        label=noise,
        curve_labels=[
            f"{Path(res['model']).name} ({res['two_qubit_gates']} CX)" for res in results
        ],
        title=f"{schedule} circuits, {results[0]['n_samples']} samples, noise per native gate",
    )
    report = {
        "noise": noise,
        "schedule": schedule,
        "target": target,
        "shots": shots,
        "models": results,
        "seconds": round(seconds, 3),
    }
    atomic_write(out / "noise.json", lambda tmp: Path(tmp).write_text(json.dumps(report, indent=2)))
    table = Table(title=f"{noise} noise per native gate, {schedule} circuits")
    table.add_column("level per gate", justify="right")
    for res in results:
        table.add_column(
            f"{Path(res['model']).name}\n{res['qubits']} qubits, {res['two_qubit_gates']} CX",
            justify="right",
        )
    for i, level in enumerate([0.0, *values]):
        cells = [f"{res['rows'][i]['accuracy']:.4f}" for res in results]
        table.add_row("0 (noiseless)" if level == 0 else f"{level:g}", *cells)
    Console(soft_wrap=False).print(table)
    typer.echo(f"wrote noise.png, noise.json to {out}")
