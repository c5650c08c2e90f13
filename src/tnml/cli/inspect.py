"""``tnml explain`` and ``tnml anomaly fit|score``: looking inside models, finding outliers.

Thin over :mod:`tnml.explain`, :mod:`tnml.plot` and :class:`tnml.MPSAnomalyDetector`.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from tnml import explain as tn_explain
from tnml import io as tnml_io
from tnml import plot as tn_plot
from tnml._files import atomic_write
from tnml.cli.generative import image_shape, is_born_machine
from tnml.cli.options import output_file, output_folder
from tnml.data import load_csv
from tnml.estimators import MPSAnomalyDetector
from tnml.exceptions import InvalidInputError
from tnml.nn import MPSClassifierModule, TTNClassifierModule
from tnml.workflows.data import (
    SEED_MAX,
    ModelSpec,
    check_source_unchanged,
    columns_by_name,
    load_evaluation_data,
    load_training_data,
    source_changed,
    split_part,
)

__all__ = ["anomaly_app", "anomaly_fit", "anomaly_score", "explain"]

anomaly_app = typer.Typer(
    help="Anomaly detection with an MPS Born machine fitted on normal data.",
    no_args_is_help=True,
)


def _write_json(path: Path, value: Any) -> None:
    text = json.dumps(value, indent=1)
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


EXPLAIN_PLOTS = ("entropy.png", "mutual_information.png", "importance.png")
"""The plots :func:`explain` may write."""


def explain(
    model_path: Annotated[Path, typer.Argument(metavar="MODEL", help="A .tnml model file.")],
    out: Annotated[
        Path, typer.Option(help="Folder for the plots and explain.json.", callback=output_folder)
    ] = Path("explain"),
    mutual_information: Annotated[
        bool,
        typer.Option(
            "--mutual-information/--no-mutual-information",
            help="Compute the N x N mutual-information matrix (cost ~ N^2 d^2 D^3).",
        ),
    ] = True,
    n_samples: Annotated[
        int,
        typer.Option(min=1, help="Classifiers: test samples whose feature importance is averaged."),
    ] = 200,
    data_dir: Annotated[
        Path | None, typer.Option(help="MNIST folder (default: the model's).", show_default=False)
    ] = None,
) -> None:
    """Entanglement entropy per bond, marginals, mutual information and (for classifiers)
    feature importance of MODEL: PNG plots and one JSON of the numbers in --out."""
    model = tnml_io.load(model_path)
    spec = ModelSpec.from_model(model)
    started = time.perf_counter()
    # everything is computed (and the data read) before anything is written, so a failure
    # leaves --out as it was
    profile = tn_explain.entanglement_entropy(model)
    report: dict[str, Any] = {
        "model": str(model_path),
        "estimator": type(model).__name__,
        "entropy": {
            "bonds": profile.bonds.tolist(),
            "von_neumann": profile.von_neumann.tolist(),
            "renyi2": profile.renyi2.tolist(),
            "bond_dims": profile.bond_dims.tolist(),
            "edges": None
            if profile.edges is None
            else [e if isinstance(e, int) else list(e) for e in profile.edges],
            "schmidt_values": [s.tolist() for s in profile.schmidt_values],
        },
        "marginals": tn_explain.marginals(model).tolist(),
    }
    mi = tn_explain.mutual_information(model) if mutual_information else None
    if mi is not None:
        report["mutual_information"] = mi.tolist()
    is_image = (spec.preprocessing or {}).get("kind") == "image"
    module = getattr(model, "module_", None)
    explainable = isinstance(module, (MPSClassifierModule, TTNClassifierModule))
    importance = None
    if not is_born_machine(model) and hasattr(model, "classes_") and explainable:
        # importance is not a held-out score: a training CSV changed since is read whole
        source = spec.metadata.get("source") if spec.metadata.get("dataset") == "csv" else None
        changed = source is not None and Path(source).is_file()
        changed = changed and source_changed(spec.metadata, source)
        data = load_evaluation_data(
            spec, data_dir=data_dir, split="all" if changed else "test", command="explain"
        )
        X = data.X[:n_samples]
        importance = tn_explain.feature_importance(model, X, reduce="mean_abs")
        report["feature_importance"] = {
            "mean_abs": importance.tolist(),
            "n_samples": int(X.shape[0]),
            "data": data.description,
        }
    report["seconds"] = round(time.perf_counter() - started, 3)

    # a folder an earlier explain wrote (its explain.json there): its plots are this command's
    earlier_run = (out / "explain.json").is_file()
    out.mkdir(parents=True, exist_ok=True)
    tn_plot.plot_entropy_profile(profile, out / "entropy.png", title=model_path.name)
    written = ["entropy.png"]
    if mi is not None:
        tn_plot.plot_mutual_information(mi, out / "mutual_information.png")
        written.append("mutual_information.png")
    if importance is not None and is_image:
        tn_plot.plot_importance_map(
            importance, image_shape(spec), out / "importance.png", title="mean |importance|"
        )
        written.append("importance.png")
    _write_json(out / "explain.json", report)
    written.append("explain.json")
    for stale in EXPLAIN_PLOTS if earlier_run else ():  # the earlier run's, not replaced
        if stale not in written:
            (out / stale).unlink(missing_ok=True)
    largest = int(np.argmax(profile.von_neumann)) if profile.von_neumann.size else None
    if largest is not None:
        where = (
            f"bond {profile.bonds[largest]}"
            if profile.edges is None
            else f"tree edge above {profile.edges[largest]}"
        )
        typer.echo(
            f"largest entanglement: {where} "
            f"(S = {profile.von_neumann[largest]:.4f} nats, D = {profile.bond_dims[largest]})"
        )
    typer.echo(f"wrote {', '.join(written)} to {out}")


# -- anomaly --------------------------------------------------------------------------------
def _normal_rows(y: np.ndarray, normal_class: str | None) -> np.ndarray:
    if normal_class is None:
        return np.ones(len(y), dtype=bool)
    mask = y.astype(str) == str(normal_class)
    if not mask.any():
        raise InvalidInputError(
            f"--normal-class {normal_class!r} matches no sample; the labels are "
            f"{', '.join(map(str, np.unique(y)[:20]))}"
        )
    return mask


def anomaly_fit(
    dataset: Annotated[str, typer.Argument(help="digits, mnist or csv.")] = "digits",
    file: Annotated[
        Path | None, typer.Argument(help="The CSV file (dataset csv).", show_default=False)
    ] = None,
    normal_class: Annotated[
        str | None,
        typer.Option(
            help="Train on the samples of this class only (images: a digit; csv: a value of "
            "--target). Default: every training sample is normal.",
            show_default=False,
        ),
    ] = None,
    target: Annotated[
        str | None,
        typer.Option(help="csv: label column (dropped from the features).", show_default=False),
    ] = None,
    bond_dim: Annotated[int, typer.Option(min=1, help="Largest bond dimension.")] = 16,
    n_bins: Annotated[
        int | None,
        typer.Option(
            min=2,
            help="Tabular data: levels per numeric column (quantiles; default 3).",
            show_default=False,
        ),
    ] = None,
    epochs: Annotated[int, typer.Option(min=1, help="Sweeps.")] = 4,
    contamination: Annotated[
        float, typer.Option(min=0.0001, max=0.5, help="Expected outlier share (threshold).")
    ] = 0.1,
    downsample: Annotated[
        int | None, typer.Option(min=1, help="Images: side after block averaging.")
    ] = None,
    data_dir: Annotated[Path | None, typer.Option(help="MNIST folder.")] = None,
    seed: Annotated[
        int, typer.Option(help="Seed of the split and the model.", min=0, max=SEED_MAX)
    ] = 0,
    out: Annotated[
        Path, typer.Option(help="Where to save the detector.", callback=output_file)
    ] = Path("detector.tnml"),
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Fit an MPSAnomalyDetector on normal data and save it."""
    image = dataset in ("digits", "mnist")
    if image and n_bins is not None:
        raise InvalidInputError(
            f"--n-bins applies to tabular data; dataset {dataset}'s images are encoded by the "
            "trigonometric map"
        )
    if dataset == "csv" and target is None:
        if file is None:
            raise InvalidInputError("dataset csv needs a FILE argument")
        for name, value, why in (
            ("--normal-class", normal_class, "picks a value of --target COL; give the column"),
            ("--downsample", downsample, "applies to images; dataset csv is a table"),
            ("--data-dir", data_dir, "is the MNIST folder; dataset csv reads FILE"),
        ):
            if value is not None:
                raise InvalidInputError(f"{name} {why}")
        X, _, names = load_csv(file, None, text_columns=True)
        y = np.zeros(len(X))
        metadata = {
            "dataset": "csv",
            "source": str(Path(file).resolve()),
            "preprocessing": {"kind": "tabular", "feature_names": names, "target": None},
        }
        X_train, y_train = X, y
    else:
        data = load_training_data(
            dataset, file, data_dir=data_dir, target=target, downsample=downsample, seed=seed
        )
        X_train, y_train, metadata = data.X_train, data.y_train, data.metadata
    rows = _normal_rows(y_train, normal_class)
    detector = MPSAnomalyDetector(
        bond_dim=bond_dim,
        encoding="trig" if image else "bins",
        n_bins=3 if n_bins is None else n_bins,
        epochs=epochs,
        contamination=contamination,
        random_state=seed,
        verbose=0 if quiet else 1,
    )
    started = time.perf_counter()
    detector.fit(X_train[rows])
    seconds = time.perf_counter() - started
    metadata = {**metadata, "normal_class": normal_class, "train_seconds": round(seconds, 3)}
    tnml_io.save(detector, out, metadata=metadata)
    typer.echo(f"fitted on {int(rows.sum())} normal samples in {seconds:.1f} s")
    typer.echo(f"saved detector to {out}")


def anomaly_score(
    model_path: Annotated[Path, typer.Argument(metavar="MODEL", help="A saved detector.")],
    dataset: Annotated[
        str | None,
        typer.Argument(
            help="digits, mnist or csv (default: the training data's test split; a CSV "
            "detector fitted without --target has none, and scores its whole file)."
        ),
    ] = None,
    file: Annotated[Path | None, typer.Argument(help="CSV file.", show_default=False)] = None,
    data_dir: Annotated[Path | None, typer.Option(help="MNIST folder.")] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Write score, decision, prediction per row (CSV).", callback=output_file),
    ] = None,
) -> None:
    """Score samples: log-likelihood, decision (< 0: outlier), prediction (+1 / -1).

    With labels and a normal class known, also prints the AUROC of the scores.
    """
    from sklearn.metrics import roc_auc_score

    model = tnml_io.load(model_path)
    if not isinstance(model, MPSAnomalyDetector):
        raise InvalidInputError(f"{model_path} holds a {type(model).__name__}, not a detector")
    spec = ModelSpec.from_model(model)
    labels = None
    if dataset == "csv" or (dataset is None and spec.metadata.get("dataset") == "csv"):
        path = file if file is not None else Path(spec.metadata.get("source") or "")
        if not path.is_file():
            raise InvalidInputError("give the CSV file to score: tnml anomaly score MODEL csv FILE")
        X, y, names = load_csv(path, spec.target, text_columns=True)
        if spec.feature_names is not None:
            X = columns_by_name(X, names, spec.feature_names, path.name)
        source = spec.metadata.get("source")
        trained_on_file = source is not None and Path(source) == path.resolve()
        if spec.target is not None:
            if trained_on_file:
                check_source_unchanged(spec.metadata, path, "anomaly score")
            part = split_part(X, y, spec.metadata, "test" if trained_on_file else "all", path.name)
            X, labels, description = part.X, part.y, part.description
        else:  # fitted on every row: this file has no held-out part
            labels = None
            description = f"{path.name}, all {len(X)} rows"
            if trained_on_file:
                description += ", every one fitted (the detector was fitted without --target)"
    else:
        data = load_evaluation_data(spec, dataset, file, data_dir=data_dir, split="test")
        X, labels, description = data.X, data.y, data.description
    scores = model.score_samples(X)
    decision = scores - model.offset_
    predicted = np.where(decision < 0, -1, 1)
    typer.echo(
        f"{len(scores)} samples ({description}): {int((predicted == -1).sum())} flagged as "
        f"outliers at offset {model.offset_:.3f}"
    )
    normal_class = spec.metadata.get("normal_class")
    if labels is not None and normal_class is not None:
        anomalous = (np.asarray(labels).astype(str) != str(normal_class)).astype(int)
        if 0 < anomalous.sum() < len(anomalous):
            auroc = roc_auc_score(anomalous, -scores)
            typer.echo(f"AUROC {auroc:.4f} (normal class {normal_class})")
    if out is not None:

        def write(tmp: str) -> None:
            with open(tmp, "w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(["score", "decision", "prediction"])
                for row in zip(scores, decision, predicted, strict=True):
                    writer.writerow([f"{row[0]:.6g}", f"{row[1]:.6g}", int(row[2])])

        atomic_write(out, write)
        typer.echo(f"wrote {out}")
