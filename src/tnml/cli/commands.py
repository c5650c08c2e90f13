"""The ``tnml`` command: train, evaluate, predict and inspect tensor-network models.

Each command declares its options and forwards them to the library (:mod:`tnml.data` through
:mod:`tnml.workflows`, the estimators, :mod:`tnml.io`). Errors a user can cause are
:class:`~tnml.exceptions.TnmlError`\\ s; :func:`handle_errors`, which wraps every command, turns
each into one line ``error: <message>`` on stderr and exit code 2. Ctrl-C during training
leaves a checkpoint and exits with 130.
"""

from __future__ import annotations

import functools
import inspect
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, NoReturn, ParamSpec, TypeVar

import typer
from sklearn.utils._param_validation import InvalidParameterError
from typer.core import TyperGroup

try:  # Typer >= 0.25 carries its own copy of click
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover - older Typer on click
    from click.exceptions import ClickException

from tnml._version import __version__
from tnml.cli.compress import compress_command
from tnml.cli.generative import inpaint, sample
from tnml.cli.inspect import anomaly_app, anomaly_fit, anomaly_score, explain
from tnml.cli.model_commands import compress_bonds_command, evaluate, info, predict
from tnml.cli.options import (
    DataDirOpt,
    DatasetArg,
    DownsampleOpt,
    FileArg,
    TargetOpt,
    fraction,
    hide_flag_types,
    output_file,
    positive,
)
from tnml.cli.quantum import compile_command, noise_study_command
from tnml.cli.structure import structure_command
from tnml.exceptions import TnmlError
from tnml.train import init_distributed
from tnml.workflows.data import (
    DEFAULT_SEED,
    DEFAULT_TEST_FRACTION,
    SEED_MAX,
    load_training_data,
)
from tnml.workflows.train import (
    MODEL_CLASSES,
    TrainingOptions,
    first_samples,
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


hide_flag_types()
app = typer.Typer(
    name="tnml",
    cls=OneLineErrors,
    help="Machine learning with tensor networks: train, evaluate, sample, explain and compile "
    "tensor-network models to quantum circuits; compress neural networks with TT/MPO layers.",
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


# -- train ----------------------------------------------------------------------------------


# The estimator classes as imported: --help reads their signatures, whatever a test swaps in.
_ESTIMATOR_CLASSES = dict(MODEL_CLASSES)


@functools.cache
def model_defaults(param: str) -> str:
    """``(default: 10)`` or ``(default: mps 10, ttn 20)``: the estimators' own defaults for the
    models that take ``param``, read from their signatures so the help cannot drift."""
    found: dict[str, str] = {}
    for model, cls in _ESTIMATOR_CLASSES.items():
        parameter = inspect.signature(cls).parameters.get(param)
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
            min=1,
            help="Mini-batch size (the Born machines': --trainer autodiff only). "
            + model_defaults("batch_size"),
            show_default=False,
        ),
    ] = None,
    lr: Annotated[
        float | None,
        typer.Option(
            callback=positive,
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
            callback=positive,
            help="Sweeps: GiB the cached per-sample environments may use (default 4).",
            show_default=False,
        ),
    ] = None,
    loss: Annotated[
        Literal["cross_entropy", "mse", "quadratic"] | None,
        typer.Option(
            help="Training loss (mse: sweeps, linear readout; quadratic: sweeps, the paper's "
            "squared error on unit-norm projections). " + model_defaults("loss"),
            show_default=False,
        ),
    ] = None,
    solver: Annotated[
        Literal["gradient", "cg"] | None,
        typer.Option(
            help="MPS classifier sweeps: gradient steps, or conjugate gradient on the mse or "
            "quadratic loss (the paper's code). " + model_defaults("solver"),
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
            callback=fraction,
            help="Born-machine sweeps: multiply the step by this after a sweep that raised "
            "the training NLL. " + model_defaults("lr_decay"),
            show_default=False,
        ),
    ] = None,
    truncation: Annotated[
        Literal["norm", "data"] | None,
        typer.Option(
            help="MPS Born-machine sweeps: truncate each split in the bond tensor's norm or "
            "in the training data's metric (fits binarised MNIST better). "
            + model_defaults("truncation"),
            show_default=False,
        ),
    ] = None,
    steps_per_bond: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="MPS sweeps (mps --trainer sweep, mps-born): gradient steps (for mps, passes "
            "of mini-batch steps) each time the sweep reaches a bond. "
            + model_defaults("steps_per_bond"),
            show_default=False,
        ),
    ] = None,
    steps_per_node: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Tree Born-machine sweeps (ttn-born): gradient steps each time the sweep "
            "reaches a node. " + model_defaults("steps_per_node"),
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
            callback=positive,
            help="circuit: two-qubit blocks (2 CX each) per input feature. "
            + model_defaults("blocks_per_feature"),
            show_default=False,
        ),
    ] = None,
    angle_scale: Annotated[
        float | None,
        typer.Option(
            callback=positive,
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
            callback=fraction,
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
            callback=fraction, help="digits/csv: stratified held-out test fraction (seeded)."
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
        truncation=truncation,
        steps_per_bond=steps_per_bond,
        steps_per_node=steps_per_node,
        solver=solver,
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


# --help lists the commands in this order: the model's life first, then the rest
app.command("evaluate")(handle_errors(evaluate))
app.command("predict")(handle_errors(predict))
app.command("info")(handle_errors(info))
app.command("sample")(handle_errors(sample))
app.command("inpaint")(handle_errors(inpaint))
app.command("explain")(handle_errors(explain))
app.command("compile")(handle_errors(compile_command))
app.command("noise-study")(handle_errors(noise_study_command))
app.command("compress-bonds")(handle_errors(compress_bonds_command))
app.command("compress")(handle_errors(compress_command))
app.command("structure")(handle_errors(structure_command))
anomaly_app.command("fit")(handle_errors(anomaly_fit))
anomaly_app.command("score")(handle_errors(anomaly_score))
app.add_typer(anomaly_app, name="anomaly")


def _one_line_warning(
    message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any
) -> str:
    """Warnings as the CLI prints them: one line, no source location."""
    return f"warning: {message}\n"


def main() -> None:
    """Entry point of the ``tnml`` console script."""
    warnings.formatwarning = _one_line_warning
    app(prog_name="tnml")
