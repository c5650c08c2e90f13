"""``tnml evaluate``, ``tnml predict``, ``tnml compress-bonds`` and ``tnml info``: commands on a
saved model. Plain functions; :mod:`tnml.cli.commands` registers them with error handling.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import typer
from rich.console import Console
from rich.table import Table
from sklearn.metrics import confusion_matrix

from tnml import io as tnml_io
from tnml._files import atomic_write
from tnml.cli.options import (
    DataDirOpt,
    DownsampleOpt,
    FileArg,
    ModelDatasetArg,
    TargetOpt,
    output_file,
)
from tnml.estimators import compress_bonds
from tnml.estimators.mps_classifier import check_compressible
from tnml.exceptions import InvalidInputError
from tnml.workflows.data import (
    ModelSpec,
    discretize,
    is_born_machine,
    load_evaluation_data,
    load_prediction_input,
)
from tnml.workflows.train import (
    flatten_record,
)

#: Estimators whose training loss is a negative log-likelihood.
DENSITY_ESTIMATORS = frozenset({"MPSBornMachine", "TTNBornMachine", "MPSAnomalyDetector"})


# -- evaluate -------------------------------------------------------------------------------
def _confusion(
    y_true: np.ndarray, y_pred: np.ndarray, classes: np.ndarray
) -> tuple[list[Any], np.ndarray]:
    """Labels (the model's classes, then unseen true labels) and the confusion matrix."""
    if (y_true.dtype.kind in "US") != (classes.dtype.kind in "US"):
        y_true, y_pred, classes = y_true.astype(str), y_pred.astype(str), classes.astype(str)
    labels = list(classes.tolist())
    labels += [label for label in np.unique(y_true).tolist() if label not in labels]
    return labels, confusion_matrix(y_true, y_pred, labels=np.asarray(labels, dtype=object))


def evaluate(
    model_path: Annotated[Path, typer.Argument(metavar="MODEL", help="A .tnml model file.")],
    dataset: ModelDatasetArg = None,
    file: FileArg = None,
    data_dir: DataDirOpt = None,
    target: TargetOpt = None,
    split: Annotated[
        Literal["test", "train", "all"] | None,
        typer.Option(
            help="Which part: the held-out test split the training used (default), the "
            "training part, or all samples (default for a csv file the model was not "
            "trained on).",
            show_default=False,
        ),
    ] = None,
    downsample: DownsampleOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Score MODEL on a labelled dataset: accuracy and confusion matrix."""
    model = tnml_io.load(model_path)
    data = load_evaluation_data(
        ModelSpec.from_model(model),
        dataset,
        file,
        data_dir=data_dir,
        target=target,
        split=split,
        downsample=downsample,
    )
    if is_born_machine(model):
        nll = model.nll(discretize(data.X, ModelSpec.from_model(model)))
        if as_json:
            report = {
                "model": str(model_path),
                "data": data.description,
                "n_samples": len(data.X),
                "nll": nll,
            }
            typer.echo(json.dumps(report, indent=2))
        else:
            typer.echo(f"NLL {nll:.4f} nats per sample ({len(data.X)} samples, {data.description})")
        return
    if not hasattr(model, "classes_"):
        raise InvalidInputError(
            f"{model_path} holds a {type(model).__name__}: evaluate scores classifiers and "
            "Born machines (for an anomaly detector use `tnml anomaly score`)"
        )
    predicted = model.predict(data.X)
    labels, matrix = _confusion(np.asarray(data.y), np.asarray(predicted), model.classes_)
    unseen = labels[len(model.classes_) :]
    if unseen:
        more = f" and {len(unseen) - 5} more" if len(unseen) > 5 else ""
        raise InvalidInputError(
            f"the data hold labels the model was not trained on: {unseen[:5]}{more} "
            f"(its classes: {labels[: len(model.classes_)][:10]}); check --target and the file"
        )
    accuracy = float(np.trace(matrix) / max(len(data.y), 1))
    if as_json:
        report = {
            "model": str(model_path),
            "data": data.description,
            "n_samples": len(data.y),
            "accuracy": accuracy,
            "labels": labels,
            "confusion_matrix": matrix.tolist(),
        }
        typer.echo(json.dumps(report, indent=2))
        return
    typer.echo(f"accuracy {accuracy:.4f} ({len(data.y)} samples, {data.description})")
    table = Table(title="confusion matrix (rows: true label, columns: predicted)")
    table.add_column("true \\ pred", justify="right", style="bold")
    for label in labels:
        table.add_column(str(label), justify="right")
    for label, row in zip(labels, matrix.tolist(), strict=True):
        table.add_row(str(label), *(str(count) for count in row))
    Console(soft_wrap=False).print(table)


# -- compress-bonds -------------------------------------------------------------------------
def _bond_dims(value: str) -> list[int]:
    try:
        dims = [int(part) for part in value.split(",") if part.strip()]
    except ValueError:
        raise typer.BadParameter(
            f"expected comma-separated integers, got {value!r}", param_hint="'--bond-dims'"
        ) from None
    if not dims or min(dims) < 1:
        raise typer.BadParameter(
            f"expected bond dimensions >= 1, got {value!r}", param_hint="'--bond-dims'"
        )
    return dims


def compress_bonds_command(
    model_path: Annotated[Path, typer.Argument(metavar="MODEL", help="A .tnml model file.")],
    bond_dims: Annotated[
        str, typer.Option(help="Comma-separated bond dimensions to truncate to, e.g. 10,20,50.")
    ],
    dataset: ModelDatasetArg = None,
    file: FileArg = None,
    data_dir: DataDirOpt = None,
    target: TargetOpt = None,
    out_dir: Annotated[
        Path | None,
        typer.Option(help="Also save each compressed model here.", show_default=False),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Truncate MODEL's bonds (canonical form + SVD) and report test accuracy per bond."""
    dims = _bond_dims(bond_dims)
    model = tnml_io.load(model_path)
    check_compressible(model)  # before loading data for it
    data = load_evaluation_data(
        ModelSpec.from_model(model), dataset, file, data_dir=data_dir, target=target,
        split=None, downsample=None, command="compress-bonds",
    )  # fmt: skip
    rows = [
        {
            "bond_dim": model.module_.bond_dim,
            "accuracy": model.score(data.X, data.y),
            "discarded_weight": 0.0,
        }
    ]
    for dim in dims:
        compressed, discarded = compress_bonds(model, dim)
        rows.append(
            {
                "bond_dim": dim,
                "accuracy": compressed.score(data.X, data.y),
                "discarded_weight": discarded,
            }
        )
        if out_dir is not None:
            path = out_dir / f"{model_path.stem}-D{dim}.tnml"
            tnml_io.save(compressed, path, metadata=getattr(model, "metadata_", None))
    if as_json:
        typer.echo(json.dumps({"data": data.description, "results": rows}, indent=2))
        return
    table = Table(title=f"accuracy against bond dimension ({data.description})")
    table.add_column("bond dim", justify="right")
    table.add_column("accuracy", justify="right")
    table.add_column("discarded weight", justify="right")
    for i, row in enumerate(rows):
        label = f"{row['bond_dim']} (original)" if i == 0 else str(row["bond_dim"])
        table.add_row(label, f"{row['accuracy']:.4f}", f"{row['discarded_weight']:.2e}")
    Console(soft_wrap=False).print(table)


# -- predict --------------------------------------------------------------------------------
def predict(
    model_path: Annotated[Path, typer.Argument(metavar="MODEL", help="A .tnml model file.")],
    input_path: Annotated[
        Path,
        typer.Argument(
            metavar="INPUT",
            help="A CSV file with a header row, a .npy/.npz array, or an IDX image file "
            "(*-idx3-ubyte[.gz]).",
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            help="Write here instead of to stdout.", show_default=False, callback=output_file
        ),
    ] = None,
    proba: Annotated[
        bool, typer.Option("--proba", help="Add the class probabilities as CSV columns.")
    ] = False,
    downsample: DownsampleOpt = None,
) -> None:
    """Predict a label for every sample of INPUT, one per line."""
    model = tnml_io.load(model_path)
    if not hasattr(model, "predict"):
        raise InvalidInputError(
            f"{model_path} holds a {type(model).__name__}, which predicts no labels: score it "
            "with `tnml evaluate` or draw from it with `tnml sample`"
        )
    if proba and not hasattr(model, "predict_proba"):
        raise InvalidInputError(
            f"--proba needs a classifier; {model_path} holds a {type(model).__name__}"
        )
    X = load_prediction_input(input_path, ModelSpec.from_model(model), downsample=downsample)
    labels = model.predict(X).tolist()
    buffer = io.StringIO()
    if proba:
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["label", *(f"p_{label}" for label in model.classes_.tolist())])
        for label, row in zip(labels, model.predict_proba(X).tolist(), strict=True):
            writer.writerow([label, *(f"{p:.6g}" for p in row)])
    else:
        buffer.writelines(f"{label}\n" for label in labels)
    if out is None:
        sys.stdout.write(buffer.getvalue())
    else:  # like every other command: create the folder, never leave half a file
        atomic_write(out, lambda tmp: Path(tmp).write_text(buffer.getvalue()))


# -- info -----------------------------------------------------------------------------------
def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | dict):
        return json.dumps(value)
    return "null" if value is None else str(value)


def info(
    model_path: Annotated[Path, typer.Argument(metavar="MODEL", help="A .tnml model file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw header as JSON.")] = False,
) -> None:
    """Show what a model file holds: estimator, parameters, classes, training metadata."""
    header = tnml_io.read_header(model_path)
    if as_json:
        typer.echo(json.dumps(header, indent=2))
        return
    fitted = header.get("fitted") or {}
    classes = header.get("classes")
    lines = [
        ("file", str(model_path)),
        ("estimator", header.get("estimator")),
        ("tnml version", f"{header.get('tnml_version')} (format {header.get('format_version')})"),
    ]
    if classes is not None:
        lines.append(("classes", f"{len(classes)}: {' '.join(map(str, classes))}"))
    lines.append(("features", fitted.get("n_features_in_")))
    if header.get("feature_names_in"):
        lines.append(("feature names", ", ".join(header["feature_names_in"])))
    history = fitted.get("history_") or []
    if isinstance(history, list) and history:
        last = history[-1]
        best = fitted.get("best_epoch_")
        loss = last.get("train_loss") if isinstance(last, dict) else None
        loss_value = f"{loss:.4f}" if isinstance(loss, (int, float)) else "not recorded"
        if header.get("estimator") in DENSITY_ESTIMATORS:
            loss_text = f"last train NLL {loss_value}"
        else:
            loss_text = f"last train loss {loss_value}"
        text = f"{len(history)} epoch{'s' * (len(history) != 1)}, {loss_text}"
        if best is not None:
            text += f", best epoch {best}"
        lines.append(("trained", text))
    for key, value in lines:
        typer.echo(f"{key:<14}{_show(value)}")
    typer.echo("parameters")
    for key, value in (header.get("params") or {}).items():
        typer.echo(f"  {key} = {_show(value)}")
    metadata = header.get("metadata") or {}
    if metadata:
        typer.echo("metadata")
        for key, value in flatten_record("", metadata):
            typer.echo(f"  {key.lstrip('.')} = {_show(value)}")
