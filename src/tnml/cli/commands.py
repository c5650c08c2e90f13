"""The ``tnml`` command: train, evaluate, predict and inspect tensor-network models.

Each command declares its options and forwards them to the library (:mod:`tnml.data` through
:mod:`tnml.workflows`, the estimators, :mod:`tnml.io`). Errors a user can cause are
:class:`~tnml.exceptions.TnmlError`\\ s; :func:`handle_errors`, which wraps every command, turns
each into one line ``error: <message>`` on stderr and exit code 2. Ctrl-C during training
leaves a checkpoint and exits with 130.
"""

from __future__ import annotations

import csv
import functools
import inspect
import io
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn, ParamSpec, TypeVar

import numpy as np
import typer
from rich.console import Console
from rich.table import Table
from sklearn.metrics import confusion_matrix
from sklearn.utils._param_validation import InvalidParameterError
from typer.core import TyperGroup

try:  # Typer >= 0.25 carries its own copy of click
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover - older Typer on click
    from click.exceptions import ClickException

from tnml import io as tnml_io
from tnml._files import atomic_write
from tnml._version import __version__
from tnml.cli.generative import discretize, inpaint, is_born_machine, sample
from tnml.cli.inspect import anomaly_app, anomaly_fit, anomaly_score, explain
from tnml.cli.options import output_file
from tnml.cli.quantum import compile_command, noise_study_command
from tnml.data import MNIST_ENV_VAR
from tnml.estimators import (
    compress_bonds,
)
from tnml.exceptions import InvalidInputError, TnmlError
from tnml.train import init_distributed
from tnml.workflows.data import (
    DEFAULT_SEED,
    DEFAULT_TEST_FRACTION,
    SEED_MAX,
    ModelSpec,
    load_evaluation_data,
    load_prediction_input,
    load_training_data,
)
from tnml.workflows.train import (
    MODEL_CLASSES,
    RENAMED_PARAMS,
    TrainingOptions,
    first_samples,
    flatten_record,
    train_model,
)

__all__ = ["app", "handle_errors", "main"]

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130

P = ParamSpec("P")
R = TypeVar("R")


class OneLineErrors(TyperGroup):
    """The ``tnml`` group: a usage error (unknown option, value out of range) is one line
    ``error: <message> (see: tnml CMD -h)`` on stderr and exit 2, not a framed box."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        try:
            result = super().main(*args, standalone_mode=False, **kwargs)
        except ClickException as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":  # the help is the message, shown
                sys.exit(exc.exit_code)
            context = getattr(exc, "ctx", None)
            where = f" (see: {context.command_path} -h)" if context is not None else ""
            typer.echo(f"error: {' '.join(exc.format_message().split())}{where}", err=True)
            sys.exit(exc.exit_code)
        except typer.Abort:
            typer.echo("interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        if not standalone_mode:
            return result
        sys.exit(result if isinstance(result, int) else 0)


app = typer.Typer(
    name="tnml",
    cls=OneLineErrors,
    help="Machine learning with tensor networks: train, evaluate, sample, explain and compile "
    "tensor-network models to quantum circuits.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


# -- error handling: the one place where user errors become a line and an exit code ---------
def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {' '.join(message.split())}", err=True)
    raise typer.Exit(EXIT_ERROR)


def handle_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Run ``command``; print a :class:`TnmlError` (or an OS error) as one line and exit 2.

    A ``KeyboardInterrupt`` exits with 130 and says where the checkpoint is, when training
    left one.
    """

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except (TnmlError, InvalidParameterError) as exc:
            _fail(str(exc))
        except KeyboardInterrupt as exc:
            checkpoint = getattr(exc, "checkpoint", None)
            if checkpoint is not None and Path(checkpoint).is_file():
                message = (
                    f"interrupted: checkpoint saved to {checkpoint}; rerun the same command "
                    "with --resume"
                )
            else:
                message = "interrupted"
            typer.echo(message, err=True)
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except OSError as exc:  # e.g. an output file that cannot be written
            where = f": {exc.filename}" if exc.filename else ""
            _fail(f"{exc.strerror or exc}{where}")

    return wrapper


# -- option checks (Typer usage errors, exit 2) ---------------------------------------------
def _positive(value: float | None) -> float | None:
    if value is not None and not 0 < value < float("inf"):
        raise typer.BadParameter(f"must be a finite number > 0, got {value}")
    return value


def _fraction(value: float | None) -> float | None:
    if value is not None and not 0 <= value < 1:
        raise typer.BadParameter(f"must lie in [0, 1), got {value}")
    return value


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"tnml {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            "-V",
            callback=_show_version,
            is_eager=True,
            help="Show the version and exit.",
        ),
    ] = False,
) -> None:
    """Machine learning with tensor networks: train, evaluate, sample, explain and compile
    tensor-network models to quantum circuits."""


# -- shared option types --------------------------------------------------------------------
DatasetArg = Annotated[
    str, typer.Argument(help="digits (sklearn's 8x8 digits, embedded), mnist or csv.")
]
ModelDatasetArg = Annotated[
    str | None,
    typer.Argument(
        help="digits, mnist or csv (default: the data the model was trained on).",
        show_default=False,
    ),
]
FileArg = Annotated[
    Path | None, typer.Argument(help="The CSV file (dataset csv).", show_default=False)
]
DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        envvar=MNIST_ENV_VAR,
        help="Folder holding the four MNIST IDX files (dataset mnist).",
        show_default=False,
    ),
]
TargetOpt = Annotated[
    str | None,
    typer.Option("--target", help="Name of the label column (dataset csv).", show_default=False),
]
DownsampleOpt = Annotated[
    int | None,
    typer.Option(
        "--downsample",
        min=1,
        help="Images only: side length after block averaging (e.g. 14, 7, 4 for MNIST; 4 or 2 "
        "for digits).",
        show_default=False,
    ),
]


# -- train ----------------------------------------------------------------------------------
#: Estimators whose training loss is a negative log-likelihood.
DENSITY_ESTIMATORS = frozenset({"MPSBornMachine", "TTNBornMachine", "MPSAnomalyDetector"})


# The estimator classes as imported: --help reads their signatures, whatever a test swaps in.
_ESTIMATOR_CLASSES = dict(MODEL_CLASSES)


@functools.cache
def model_defaults(param: str) -> str:
    """``(default: 10)`` or ``(default: mps 10, ttn 20)``: the estimators' own defaults for the
    models that take ``param``, read from their signatures so the help cannot drift."""
    found: dict[str, str] = {}
    for model, cls in _ESTIMATOR_CLASSES.items():
        name = RENAMED_PARAMS.get((model, param), param)
        parameter = inspect.signature(cls).parameters.get(name)
        if parameter is not None:
            value = parameter.default
            found[model] = "auto" if value is None else str(value).lower()  # None: chosen per run
    if not found:
        raise AssertionError(f"no model takes {param!r}")  # pragma: no cover - a typo here
    if len(set(found.values())) == 1:
        models = "" if len(found) == len(_ESTIMATOR_CLASSES) else f" ({', '.join(found)})"
        return f"(default{models}: {next(iter(found.values()))})"
    return "(default: " + ", ".join(f"{m} {v}" for m, v in found.items()) + ")"


def _given(**options: Any) -> dict[str, Any]:
    """The options the user gave (not None), so the estimator's own defaults apply to the rest."""
    return {name: value for name, value in options.items() if value is not None}


@app.command()
@handle_errors
def train(
    dataset: DatasetArg = "digits",
    file: FileArg = None,
    model: Annotated[
        Literal["mps", "ttn", "mps-born", "ttn-born", "circuit"],
        typer.Option(
            help="Model: mps or ttn (matrix product state or tree classifier), mps-born or "
            "ttn-born (generative Born machines; images are binarised at 0.5, csv columns "
            "must hold integers), circuit (a classifier made of native one- and two-qubit "
            "gates, for `tnml compile --native`). Tree models pair image pixels in square "
            "patches."
        ),
    ] = "mps",
    bond_dim: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Bond dimension D (where sweeps grow bonds: the start). "
            + model_defaults("bond_dim"),
            show_default=False,
        ),
    ] = None,
    epochs: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Passes over the data (epochs or sweeps). " + model_defaults("epochs"),
            show_default=False,
        ),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            min=1, help="Mini-batch size. " + model_defaults("batch_size"), show_default=False
        ),
    ] = None,
    lr: Annotated[
        float | None,
        typer.Option(
            callback=_positive,
            help="Learning rate (Adam) or sweep step. " + model_defaults("lr"),
            show_default=False,
        ),
    ] = None,
    feature_map: Annotated[
        Literal["trig", "linear"] | None,
        typer.Option(
            help="Local feature map. " + model_defaults("feature_map"), show_default=False
        ),
    ] = None,
    feature_dim: Annotated[
        int | None,
        typer.Option(
            min=2, help="Local dimension d. " + model_defaults("feature_dim"), show_default=False
        ),
    ] = None,
    readout: Annotated[
        Literal["normalized", "born", "linear"] | None,
        typer.Option(
            help="How amplitudes become probabilities. " + model_defaults("readout"),
            show_default=False,
        ),
    ] = None,
    trainer: Annotated[
        Literal["autodiff", "sweep"] | None,
        typer.Option(
            help="autodiff (mini-batch Adam) or sweep (mps, mps-born: two-site DMRG-style "
            "sweeps that grow the bonds up to --max-bond; ttn-born: one-site sweeps over the "
            "tree; --epochs counts sweeps). " + model_defaults("trainer"),
            show_default=False,
        ),
    ] = None,
    max_bond: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Sweeps: largest bond dimension. " + model_defaults("max_bond"),
            show_default=False,
        ),
    ] = None,
    cutoff: Annotated[
        float | None,
        typer.Option(
            min=0,
            help="Sweeps: relative singular-value cutoff. " + model_defaults("cutoff"),
            show_default=False,
        ),
    ] = None,
    memory: Annotated[
        float | None,
        typer.Option(
            "--memory",
            callback=_positive,
            help="Sweeps: GiB the cached per-sample environments may use (default 4).",
            show_default=False,
        ),
    ] = None,
    loss: Annotated[
        Literal["cross_entropy", "mse"] | None,
        typer.Option(
            help="Training loss (mse: sweeps, linear readout). " + model_defaults("loss"),
            show_default=False,
        ),
    ] = None,
    grad_floor: Annotated[
        bool | None,
        typer.Option(
            "--grad-floor/--no-grad-floor",
            help="Born-machine sweeps: scale local gradients below numel**0.25 up to that "
            "norm (fits faster). " + model_defaults("grad_floor"),
            show_default=False,
        ),
    ] = None,
    lr_decay: Annotated[
        float | None,
        typer.Option(
            callback=_fraction,
            help="Born-machine sweeps: multiply the step by this after a sweep that raised "
            "the training NLL. " + model_defaults("lr_decay"),
            show_default=False,
        ),
    ] = None,
    steps_per_bond: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Born-machine sweeps: gradient steps per bond (mps-born) or per tree node "
            "(ttn-born) each time the sweep reaches it. " + model_defaults("steps_per_bond"),
            show_default=False,
        ),
    ] = None,
    n_train: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Train on the first N training samples only (e.g. Han et al.'s 1,000 MNIST "
            "images); the test split is unchanged.",
            show_default=False,
        ),
    ] = None,
    n_qubits: Annotated[
        int | None,
        typer.Option(
            min=2,
            help="circuit: qubits of the register. " + model_defaults("n_qubits"),
            show_default=False,
        ),
    ] = None,
    blocks_per_feature: Annotated[
        float | None,
        typer.Option(
            callback=_positive,
            help="circuit: two-qubit blocks (2 CX each) per input feature. "
            + model_defaults("blocks_per_feature"),
            show_default=False,
        ),
    ] = None,
    angle_scale: Annotated[
        float | None,
        typer.Option(
            callback=_positive,
            help="circuit: data rotations are RY(scale * pi * x). " + model_defaults("angle_scale"),
            show_default=False,
        ),
    ] = None,
    downsample: DownsampleOpt = None,
    augment_shift: Annotated[
        float,
        typer.Option(
            min=0,
            help="Images, autodiff classifiers: move each training image by a random "
            "(sub-pixel) shift of up to this many pixels every time it is seen (0: off).",
        ),
    ] = 0.0,
    augment_rotation: Annotated[
        float,
        typer.Option(
            min=0,
            help="Images, autodiff classifiers: also rotate by up to this many degrees.",
        ),
    ] = 0.0,
    unitary: Annotated[
        bool,
        typer.Option(
            "--unitary",
            help="mps, ttn, mps-born: keep the model in quantum-circuit form (orthogonal "
            "gates / isometric cores, --bond-dim a power of two) for `tnml compile`.",
        ),
    ] = False,
    val_fraction: Annotated[
        float | None,
        typer.Option(
            callback=_fraction,
            help="Fraction of the training data used to validate each epoch (0: none). "
            + model_defaults("validation_fraction"),
            show_default=False,
        ),
    ] = None,
    patience: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Stop after this many epochs without improvement. "
            + model_defaults("n_iter_no_change"),
            show_default=False,
        ),
    ] = None,
    select_by: Annotated[
        Literal["loss", "accuracy"] | None,
        typer.Option(
            help="Classifiers: keep the epoch with the lowest validation loss or the highest "
            "validation accuracy. " + model_defaults("select_by"),
            show_default=False,
        ),
    ] = None,
    test_fraction: Annotated[
        float,
        typer.Option(
            callback=_fraction, help="digits/csv: stratified held-out test fraction (seeded)."
        ),
    ] = DEFAULT_TEST_FRACTION,
    seed: Annotated[
        int, typer.Option(help="Seed of the split and the model.", min=0, max=SEED_MAX)
    ] = DEFAULT_SEED,
    device: Annotated[
        Literal["cpu", "cuda", "auto"] | None,
        typer.Option(help="Where to train. " + model_defaults("device"), show_default=False),
    ] = None,
    data_dir: DataDirOpt = None,
    target: TargetOpt = None,
    out: Annotated[
        Path, typer.Option(help="Where to save the model.", callback=output_file)
    ] = Path("model.tnml"),
    checkpoint: Annotated[
        Path | None,
        typer.Option(help="Checkpoint file (default: <out>.ckpt).", show_default=False),
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the checkpoint.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
    distributed: Annotated[
        bool,
        typer.Option(
            "--distributed",
            help="Data parallel over the processes torchrun started (gloo on CPU, NCCL on "
            "CUDA); --batch-size is the global batch. Rank 0 reports and saves.",
        ),
    ] = False,
) -> None:
    """Train a model on DATASET, report its test accuracy (or NLL) and save it."""
    rank = 0
    if distributed:
        rank, _, device = init_distributed(device or "cpu")
    data = load_training_data(
        dataset,
        file,
        data_dir=data_dir,
        target=target,
        downsample=downsample,
        test_fraction=test_fraction,
        seed=seed,
    )
    if n_train is not None:
        data = first_samples(data, n_train)
    params = _given(
        bond_dim=bond_dim,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        feature_map=feature_map,
        feature_dim=feature_dim,
        readout=readout,
        trainer=trainer,
        max_bond=max_bond,
        cutoff=cutoff,
        loss=loss,
        grad_floor=grad_floor,
        lr_decay=lr_decay,
        steps_per_bond=steps_per_bond,
        validation_fraction=val_fraction,
        n_iter_no_change=patience,
        select_by=select_by,
        device=device,
        n_qubits=n_qubits,
        blocks_per_feature=blocks_per_feature,
        angle_scale=angle_scale,
    )
    params.update(random_state=seed, verbose=0 if quiet or rank else 1)
    options = TrainingOptions(
        model=model,
        params=params,
        out=out,
        checkpoint=checkpoint,
        resume=resume,
        unitary=unitary,
        memory_gib=memory,
        augment_shift=augment_shift,
        augment_rotation=augment_rotation,
        distributed=distributed,
    )
    train_model(data, options, rank=rank, report=typer.echo)


app.command("sample")(handle_errors(sample))
app.command("inpaint")(handle_errors(inpaint))
app.command("explain")(handle_errors(explain))
app.command("compile")(handle_errors(compile_command))
app.command("noise-study")(handle_errors(noise_study_command))
anomaly_app.command("fit")(handle_errors(anomaly_fit))
anomaly_app.command("score")(handle_errors(anomaly_score))
app.add_typer(anomaly_app, name="anomaly")


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


@app.command()
@handle_errors
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
        raise typer.BadParameter(f"expected comma-separated integers, got {value!r}") from None
    if not dims or min(dims) < 1:
        raise typer.BadParameter(f"expected bond dimensions >= 1, got {value!r}")
    return dims


@app.command("compress-bonds")
@handle_errors
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
    data = load_evaluation_data(
        ModelSpec.from_model(model), dataset, file, data_dir=data_dir, target=target,
        split=None, downsample=None,
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
@app.command()
@handle_errors
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


@app.command()
@handle_errors
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
    if history:
        last = history[-1]
        best = fitted.get("best_epoch_")
        if header.get("estimator") in DENSITY_ESTIMATORS:
            loss_text = f"last train NLL {last.get('train_loss', float('nan')):.4f}"
        else:
            loss_text = f"last train loss {last.get('train_loss', float('nan')):.4f}"
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


def main() -> None:
    """Entry point of the ``tnml`` console script."""
    app(prog_name="tnml")
