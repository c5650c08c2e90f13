"""The ``tnml`` command line: argument forwarding, end-to-end runs on tiny budgets, errors."""

from __future__ import annotations

import csv
import importlib
import json
import os
import re
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.numpy import save_file
from sklearn.datasets import load_iris
from typer.testing import CliRunner, Result

import tnml
from tnml.cli import app, main
from tnml.data import MNIST_ENV_VAR, load_digits, write_idx
from tnml.workflows.train import MODEL_CLASSES

runner = CliRunner()
cli_module = importlib.import_module("tnml.cli.commands")


def run(*args: Any) -> Result:
    """Invoke ``tnml ARGS`` in-process."""
    return runner.invoke(app, [str(a) for a in args])


def ok(result: Result) -> Result:
    """Assert a clean exit and return the result."""
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    return result


def assert_error(result: Result, *fragments: str) -> None:
    """Exit 2, exactly one ``error:`` line on stderr mentioning ``fragments``, no traceback."""
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and len(lines[0]) > len("error: ")
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    assert "Traceback" not in result.output
    assert result.stdout == ""


@pytest.fixture(autouse=True)
def _no_mnist_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(MNIST_ENV_VAR, raising=False)


# -- data fixtures --------------------------------------------------------------------------
def write_table(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def fake_mnist(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Digit-like 28x28 uint8 images: a bright bar whose row depends on the label, plus noise."""
    labels = np.arange(n) % 10
    images = rng.integers(0, 40, size=(n, 28, 28)).astype(np.uint8)
    for image, label in zip(images, labels, strict=True):
        image[2 + 2 * label : 5 + 2 * label, 4:24] = 230
    return images, labels.astype(np.uint8)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Input files shared by the tests: MNIST-style IDX folder, CSVs, arrays, bad models."""
    root = tmp_path_factory.mktemp("files")
    rng = np.random.default_rng(0)
    mnist = root / "mnist"
    mnist.mkdir()
    for prefix, n in (("train", 60), ("t10k", 20)):
        images, labels = fake_mnist(n, rng)
        write_idx(mnist / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(mnist / f"{prefix}-labels-idx1-ubyte", labels)

    iris = load_iris()
    columns = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    species = iris.target_names[iris.target].tolist()
    rows = [[*x.tolist(), s] for x, s in zip(iris.data, species, strict=True)]
    out = {"mnist": mnist, "mnist_test_images": mnist / "t10k-images-idx3-ubyte.gz"}
    out["iris"] = write_table(root / "iris.csv", [*columns, "species"], rows)
    nan_rows = [list(row) for row in rows]
    nan_rows[3][1] = ""
    out["iris_nan"] = write_table(root / "iris_nan.csv", [*columns, "species"], nan_rows)
    renamed = [[*row[:4], "rose" if row[4] == "setosa" else row[4]] for row in rows]
    out["iris_unseen"] = write_table(root / "iris_unseen.csv", [*columns, "species"], renamed)
    # features only, columns in another order
    out["iris_features"] = write_table(
        root / "iris_features.csv", columns[::-1], [row[:4][::-1] for row in rows]
    )
    out["iris_missing_col"] = write_table(
        root / "iris_missing.csv", columns[:3], [row[:3] for row in rows]
    )

    images, _ = load_digits()
    pixels = [f"p{i}" for i in range(64)]
    flat = images[:5].reshape(5, -1).tolist()
    out["digits_csv"] = write_table(root / "digits.csv", pixels, flat)
    bad = [list(row) for row in flat]
    bad[2][5] = ""
    out["digits_nan_csv"] = write_table(root / "digits_nan.csv", pixels, bad)
    out["digits_raw_csv"] = write_table(
        root / "digits_raw.csv", pixels, (images[:5].reshape(5, -1) * 16).tolist()
    )
    out["digits_npy"] = root / "digits.npy"
    np.save(out["digits_npy"], images[:7])
    out["digits_npz"] = root / "digits.npz"
    np.savez(out["digits_npz"], X=images[:5].reshape(5, -1), y=np.arange(5))
    nan_images = images[:3].copy()
    nan_images[1, 2, 3] = np.nan
    out["digits_nan_npy"] = root / "digits_nan.npy"
    np.save(out["digits_nan_npy"], nan_images)

    out["random_bytes"] = root / "random.tnml"
    out["random_bytes"].write_bytes(rng.bytes(256))
    out["foreign"] = root / "foreign.safetensors"
    save_file({"weight": np.zeros((2, 2), dtype=np.float32)}, str(out["foreign"]))
    return out


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``tnml train digits --epochs 1 --bond-dim 4 --quiet``; returns the model file."""
    out = tmp_path_factory.mktemp("digits") / "model.tnml"
    result = ok(run("train", "digits", "--epochs", 1, "--bond-dim", 4, "--out", out, "--quiet"))
    assert re.search(r"^test accuracy \d\.\d{4} \(450 samples", result.stdout, re.M)
    assert re.search(r"^training time \d+\.\d s", result.stdout, re.M)
    assert f"saved model to {out}" in result.stdout
    assert out.is_file() and not Path(f"{out}.ckpt").exists()
    return out


@pytest.fixture(scope="module")
def mnist_model(files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("mnist") / "mnist.tnml"
    result = ok(
        run("train", "mnist", "--data-dir", files["mnist"], "--downsample", 7, "--epochs", 1,
            "--bond-dim", 3, "--out", out, "--quiet")
    )  # fmt: skip
    assert re.search(r"^test accuracy \d\.\d{4} \(20 samples, MNIST test split", result.stdout)
    return out


@pytest.fixture(scope="module")
def iris_model(files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("iris") / "iris.tnml"
    result = ok(
        run("train", "csv", files["iris"], "--target", "species", "--epochs", 3, "--bond-dim", 3,
            "--lr", 0.05, "--out", out, "--quiet")
    )  # fmt: skip
    assert re.search(r"^test accuracy \d\.\d{4} \(38 samples", result.stdout)
    return out


# -- parsing and forwarding -----------------------------------------------------------------
class Recorder:
    """Stands in for the estimator and ``tnml.io.save``; records what the CLI passes."""

    def __init__(self) -> None:
        self.init: dict[str, Any] = {}
        self.fit: dict[str, Any] = {}
        self.data: tuple[np.ndarray, np.ndarray] | None = None
        self.saved: dict[str, Any] = {}

    def estimator(self, **kwargs: Any) -> Any:
        recorder = self

        class FakeEstimator:
            n_iter_ = 1

            def fit(self, X: np.ndarray, y: np.ndarray, **fit_kwargs: Any) -> FakeEstimator:
                recorder.data = (X, y)
                recorder.fit = fit_kwargs
                return self

            def score(self, X: np.ndarray, y: np.ndarray) -> float:
                return 0.5

            def get_params(self, deep: bool = True) -> dict[str, Any]:
                return dict(kwargs)

        self.init = kwargs
        return FakeEstimator()

    def save(self, model: Any, path: Path, *, metadata: dict | None = None) -> Path:
        self.saved = {"path": path, "metadata": metadata}
        return Path(path)


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Recorder:
    rec = Recorder()
    monkeypatch.setitem(MODEL_CLASSES, "mps", rec.estimator)
    monkeypatch.setattr("tnml.io.save", rec.save)
    monkeypatch.chdir(tmp_path)
    return rec


def test_version_and_entry_point() -> None:
    assert ok(run("--version")).stdout.strip() == f"tnml {tnml.__version__}"
    assert ok(run("-V")).stdout.strip() == f"tnml {tnml.__version__}"
    assert callable(main)


@pytest.mark.parametrize("command", [[], ["train"], ["anomaly", "fit"], ["compile"]])
def test_short_help_is_the_long_help(command: list[str]) -> None:
    assert ok(run(*command, "-h")).stdout == ok(run(*command, "--help")).stdout


@pytest.mark.parametrize("command", [["train"], ["compile"], ["anomaly", "fit"], ["evaluate"]])
def test_help_gives_flags_no_value_type(command: list[str]) -> None:
    """On/off flags take no value: the help shows none (recent Typer printed <bool>), while
    options that take one keep theirs."""
    text = ok(run(*command, "-h")).stdout
    assert "--help" in text and "<bool>" not in text and "bool" not in text.lower().split()
    if command == ["train"]:
        assert "<int" in text and "--resume" in text


def test_unknown_command_and_option_are_one_line() -> None:
    assert_error(run("trian"), "No such command", "(see: tnml -h)")
    assert_error(run("train", "--bond", 3), "No such option: --bond", "(see: tnml train -h)")


def test_help_shows_the_estimators_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # one help entry a line
    text = ok(run("train", "-h")).stdout
    bond = tnml.MPSClassifier().bond_dim, tnml.TTNClassifier().bond_dim
    assert f"(default: mps {bond[0]}, ttn {bond[1]}, " in text
    assert "(default (mps, mps-born): auto)" in text  # --max-bond: None, i.e. bond_dim
    assert "(default (circuit): 0.25)" in text.replace("  ", " ")
    assert cli_module.model_defaults("device") == "(default: cpu)"


def test_train_passes_only_the_options_given(recorder: Recorder) -> None:
    result = ok(run("train", "digits", "--downsample", 2))
    # estimator defaults (epochs, lr, ...) are not repeated by the CLI
    assert recorder.init == {"random_state": 0, "verbose": 1}
    assert recorder.fit == {"checkpoint_path": Path("model.tnml.ckpt"), "resume": False}
    X, y = recorder.data
    assert X.shape == (1347, 4) and y.shape == (1347,)
    assert recorder.saved["path"] == Path("model.tnml")
    meta = recorder.saved["metadata"]
    assert meta["dataset"] == "digits"
    assert meta["preprocessing"] == {"kind": "image", "image_shape": [8, 8], "downsample": 2}
    assert meta["split"] == {"test_fraction": 0.25, "seed": 0}
    assert meta["test_accuracy"] == 0.5 and meta["n_test"] == 450 and "train_seconds" in meta
    assert "test accuracy 0.5000 (450 samples" in result.stdout


def test_train_forwards_every_option(recorder: Recorder) -> None:
    ok(
        run("train", "digits", "--model", "mps", "--bond-dim", 7, "--epochs", 3,
            "--batch-size", 8, "--lr", 0.01, "--feature-map", "linear", "--feature-dim", 3,
            "--readout", "born", "--val-fraction", 0.2, "--patience", 2, "--seed", 5,
            "--test-fraction", 0.5, "--device", "cpu", "--out", "x.tnml",
            "--checkpoint", "c.ckpt", "--resume", "--quiet")
    )  # fmt: skip
    assert recorder.init == {
        "bond_dim": 7,
        "epochs": 3,
        "batch_size": 8,
        "lr": 0.01,
        "feature_map": "linear",
        "feature_dim": 3,
        "readout": "born",
        "validation_fraction": 0.2,
        "n_iter_no_change": 2,
        "device": "cpu",
        "random_state": 5,
        "verbose": 0,
    }
    assert recorder.fit == {"checkpoint_path": Path("c.ckpt"), "resume": True}
    assert recorder.data[0].shape == (898, 64)
    assert recorder.saved["metadata"]["split"] == {"test_fraction": 0.5, "seed": 5}


def test_train_forwards_the_sweep_memory_budget(recorder: Recorder) -> None:
    ok(run("train", "digits", "--trainer", "sweep", "--memory", 0.5, "--batch-size", 50))
    assert recorder.fit["memory_budget"] == 2**29
    assert recorder.init["trainer"] == "sweep" and recorder.init["batch_size"] == 50
    result = run("train", "digits", "--memory", 1)
    assert result.exit_code != 0 and "--trainer sweep" in result.output


def test_train_forwards_augmentation_for_images_only(recorder: Recorder, tmp_path: Path) -> None:
    ok(run("train", "digits", "--augment-shift", 1.5, "--augment-rotation", 10))
    augment = recorder.fit["augment"]
    assert isinstance(augment, tnml.train.RandomAffine)
    assert augment.image_shape == (8, 8)
    assert (augment.max_shift, augment.max_rotation, augment.max_scale) == (1.5, 10.0, 0.0)
    table = tmp_path / "t.csv"
    table.write_text("a,b,label\n" + "".join(f"{i % 3},{i % 5},{i % 2}\n" for i in range(40)))
    result = run("train", "csv", table, "--target", "label", "--augment-shift", 1)
    assert result.exit_code != 0 and "not images" in result.output
    result = run("train", "digits", "--model", "mps-born", "--augment-shift", 1)
    assert result.exit_code != 0 and "train classifiers" in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["--bond-dim", "0"],
        ["--lr", "0"],
        ["--lr", "inf"],
        ["--lr", "nan"],
        ["--seed", "-1"],
        ["--out", "."],  # a folder: refused before training, not after
        ["--feature-map", "cubic"],
        ["--model", "peps"],
        ["--val-fraction", "1.5"],
        ["--device", "tpu"],
    ],
)
def test_typer_usage_errors_exit_2(recorder: Recorder, args: list[str]) -> None:
    result = run("train", "digits", *args)
    assert_error(result, args[0], "(see: tnml train -h)")  # one line, no framed box
    assert recorder.init == {}


# -- end to end -----------------------------------------------------------------------------
def test_digits_evaluate_predict_info(digits_model: Path, files: dict[str, Path]) -> None:
    header = tnml.io.read_header(digits_model)
    meta = header["metadata"]
    assert meta["preprocessing"] == {"kind": "image", "image_shape": [8, 8], "downsample": None}

    result = ok(run("evaluate", digits_model, "digits"))
    assert re.search(r"^accuracy \d\.\d{4} \(450 samples, digits, test split", result.stdout)
    assert "confusion matrix" in result.stdout
    report = json.loads(ok(run("evaluate", digits_model, "digits", "--json")).stdout)
    matrix = np.array(report["confusion_matrix"])
    assert matrix.shape == (10, 10) and matrix.sum() == 450 == report["n_samples"]
    # the same held-out split the training reported on
    assert report["accuracy"] == pytest.approx(meta["test_accuracy"])
    everything = json.loads(ok(run("evaluate", digits_model, "--split", "all", "--json")).stdout)
    assert everything["n_samples"] == 1797

    labels = ok(run("predict", digits_model, files["digits_csv"])).stdout.split()
    assert len(labels) == 5 and all(label in "0123456789" for label in labels)
    assert ok(run("predict", digits_model, files["digits_npy"])).stdout.split()[:5] == labels
    assert ok(run("predict", digits_model, files["digits_npz"])).stdout.split() == labels

    out = files["digits_csv"].with_name("predictions.csv")
    ok(run("predict", digits_model, files["digits_csv"], "--proba", "--out", out))
    rows = list(csv.reader(out.open()))
    assert rows[0] == ["label", *(f"p_{k}" for k in range(10))]
    assert [row[0] for row in rows[1:]] == labels
    nested = files["digits_csv"].with_name("new-folder") / "labels.txt"
    ok(run("predict", digits_model, files["digits_csv"], "--out", nested))
    assert nested.read_text().split() == labels
    assert np.allclose(np.array(rows[1:], dtype=float)[:, 1:].sum(axis=1), 1, atol=1e-4)

    text = ok(run("info", digits_model)).stdout
    for fragment in ("MPSClassifier", "bond_dim = 4", "features      64", "classes       10:",
                     "preprocessing.image_shape = [8, 8]", "test_accuracy = "):  # fmt: skip
        assert fragment in text
    assert json.loads(ok(run("info", digits_model, "--json")).stdout)["estimator"] == (
        "MPSClassifier"
    )


def test_csv_round_trip(iris_model: Path, files: dict[str, Path]) -> None:
    meta = tnml.io.read_header(iris_model)["metadata"]
    assert meta["preprocessing"] == {
        "kind": "tabular",
        "feature_names": ["sepal_length", "sepal_width", "petal_length", "petal_width"],
        "target": "species",
    }
    # default: the training file, its held-out test split
    report = json.loads(ok(run("evaluate", iris_model, "--json")).stdout)
    assert report["n_samples"] == 38
    assert report["accuracy"] == pytest.approx(meta["test_accuracy"])
    assert report["labels"] == ["setosa", "versicolor", "virginica"]
    result = ok(run("evaluate", iris_model, "csv", files["iris"], "--split", "all"))
    assert "(150 samples" in result.stdout

    with_target = ok(run("predict", iris_model, files["iris"])).stdout.split()
    reordered = ok(run("predict", iris_model, files["iris_features"])).stdout.split()
    assert len(with_target) == 150 and with_target == reordered
    assert set(with_target) <= {"setosa", "versicolor", "virginica"}


def test_mnist_from_idx_files(mnist_model: Path, files: dict[str, Path]) -> None:
    meta = tnml.io.read_header(mnist_model)["metadata"]
    assert meta["preprocessing"] == {"kind": "image", "image_shape": [28, 28], "downsample": 7}
    assert meta["dataset"] == "mnist"
    result = ok(run("evaluate", mnist_model, "mnist", "--data-dir", files["mnist"]))
    assert "(20 samples, MNIST test split)" in result.stdout
    assert "(60 samples" in ok(run("evaluate", mnist_model, "--split", "train")).stdout
    labels = ok(run("predict", mnist_model, files["mnist_test_images"])).stdout.split()
    assert len(labels) == 20


def test_interrupt_writes_checkpoint_and_resume_finishes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "m.tnml"
    ckpt = tmp_path / "m.tnml.ckpt"
    args = ["train", "digits", "--downsample", 2, "--epochs", 3, "--bond-dim", 3,
            "--batch-size", 64, "--out", out, "--quiet"]  # fmt: skip
    original_fit = tnml.MPSClassifier.fit

    def fit_then_ctrl_c(self: Any, X: Any, y: Any, **kwargs: Any) -> Any:
        def callback(state: dict[str, Any], metrics: dict[str, float]) -> None:
            if state["epoch"] == 1:  # a real SIGINT, as from Ctrl-C, after the first epoch
                os.kill(os.getpid(), signal.SIGINT)

        return original_fit(self, X, y, callback=callback, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(tnml.MPSClassifier, "fit", fit_then_ctrl_c)
        result = run(*args)
    assert result.exit_code == 130, result.output
    assert result.stderr.strip() == (
        f"interrupted: checkpoint saved to {ckpt}; rerun the same command with --resume"
    )
    assert ckpt.is_file() and not out.exists()

    # a resume that would mix two runs is refused, naming what differs; the checkpoint stays
    other_size = [*args[:2], "--downsample", 4, *args[4:]]
    for options, fragments in (
        ([*args, "--seed", 1], ["random_state: 0 -> 1", "split.seed: 0 -> 1"]),
        ([*args, "--lr", 0.5], ["lr: None -> 0.5"]),
        (other_size, ["downsample: 2 -> 4", "training_data_sha256"]),
    ):
        assert_error(run(*options, "--resume"), "--resume would mix two runs", *fragments)
    assert ckpt.is_file()
    ok(run(*args, "--resume"))
    assert out.is_file() and not ckpt.exists()
    assert not ckpt.with_name(ckpt.name + ".run.json").exists()
    resumed = tnml.io.load(out)
    assert resumed.n_iter_ == 3

    straight = tmp_path / "straight.tnml"
    ok(run(*args[:-3], "--out", straight, "--quiet"))
    reference = tnml.io.load(straight)
    for key, value in reference.module_.state_dict().items():
        torch.testing.assert_close(resumed.module_.state_dict()[key], value)


# -- errors: one line, exit 2 ---------------------------------------------------------------
ERROR_CASES = {
    "missing mnist dir": (["train", "mnist", "--data-dir", "/nonexistent"], ["/nonexistent"]),
    "mnist without --data-dir": (["train", "mnist"], ["--data-dir"]),
    "csv without FILE": (["train", "csv", "--target", "species"], ["FILE"]),
    "csv without --target": (["train", "csv", "{iris}"], ["--target"]),
    "unknown dataset": (["train", "cifar"], ["'cifar'", "digits"]),
    "absent target column": (["train", "csv", "{iris}", "--target", "kind"], ["'kind'"]),
    "NaN in training csv": (
        ["train", "csv", "{iris_nan}", "--target", "species"],
        ["sepal_width", "row 4"],
    ),
    "downsample not dividing": (["train", "digits", "--downsample", "3"], ["--downsample 3"]),
    "resume without checkpoint": (
        ["train", "digits", "--resume", "--checkpoint", "{mnist}/none.ckpt"],
        ["none.ckpt"],
    ),
    "test fraction for mnist": (
        ["train", "mnist", "--data-dir", "{mnist}", "--test-fraction", "0.5"],
        ["--test-fraction", "official test split"],
    ),
    "checkpoint is the output file": (
        ["train", "digits", "--out", "{mnist}/same.tnml", "--checkpoint", "{mnist}/same.tnml"],
        ["--checkpoint", "same.tnml", "--out"],
    ),
    "checkpoint is a file no run wrote": (
        ["train", "digits", "--out", "{mnist}/m.tnml", "--checkpoint", "{iris}"],
        ["--checkpoint", "iris.csv", "no tnml run wrote it"],
    ),
    "checkpoint is a folder": (
        ["train", "digits", "--out", "{mnist}/m.tnml", "--checkpoint", "{mnist}"],
        ["--checkpoint", "is a folder"],
    ),
    "missing model file": (["evaluate", "{mnist}/no-model.tnml", "digits"], ["no-model.tnml"]),
    "missing model file (info)": (["info", "{mnist}/no-model.tnml"], ["not found"]),
    "corrupt model file": (["info", "{random_bytes}"], ["random.tnml", "not a tnml model"]),
    "safetensors not from tnml": (
        ["predict", "{foreign}", "{digits_csv}"],
        ["not written by tnml"],
    ),
    "csv given as model": (["info", "{iris}"], ["iris.csv", "not a tnml model"]),
    "28x28 images for an 8x8 model (evaluate)": (
        ["evaluate", "{digits_model}", "mnist", "--data-dir", "{mnist}"],
        ["8x8", "28x28"],
    ),
    "28x28 images for an 8x8 model (predict)": (
        ["predict", "{digits_model}", "{mnist_test_images}"],
        ["8x8", "28x28", "t10k-images-idx3-ubyte.gz"],
    ),
    "other --downsample than the model's": (
        ["evaluate", "{mnist_model}", "--downsample", "14"],
        ["7x7", "--downsample 14"],
    ),
    "NaN in prediction csv": (["predict", "{digits_model}", "{digits_nan_csv}"], ["'p5'", "row 3"]),
    "NaN in prediction array": (
        ["predict", "{digits_model}", "{digits_nan_npy}"],
        ["digits_nan.npy", "NaN", "image 1", "row 2, column 3"],
    ),
    "pixels outside [0, 1]": (["predict", "{digits_model}", "{digits_raw_csv}"], ["[0, 16]"]),
    "missing feature column": (["predict", "{iris_model}", "{iris_missing_col}"], ["petal_width"]),
    "tabular model on images": (["evaluate", "{iris_model}", "digits"], ["tabular"]),
    "non-integer target": (
        ["train", "csv", "{iris_features}", "--target", "petal_width"],
        ["'petal_width'", "class labels"],
    ),
    "IDX label file as input": (
        ["predict", "{digits_model}", "{mnist}/t10k-labels-idx1-ubyte"],
        ["t10k-labels-idx1-ubyte", "label file"],
    ),
    "missing prediction input": (["predict", "{digits_model}", "{mnist}/none.csv"], ["none.csv"]),
    "labels the model never saw": (
        ["evaluate", "{iris_model}", "csv", "{iris_unseen}", "--split", "all"],
        ["'rose'", "not trained on", "'setosa'"],
    ),
    "directory given as model": (["info", "{mnist}"], ["mnist", "is a directory"]),
}


@pytest.mark.parametrize("case", list(ERROR_CASES))
def test_errors_are_one_line_exit_2(
    case: str,
    files: dict[str, Path],
    digits_model: Path,
    mnist_model: Path,
    iris_model: Path,
) -> None:
    args, fragments = ERROR_CASES[case]
    paths = {**files, "digits_model": digits_model, "mnist_model": mnist_model,
             "iris_model": iris_model}  # fmt: skip
    assert_error(run(*(arg.format(**paths) for arg in args)), *fragments)


def test_info_shows_a_history_without_its_loss(digits_model: Path, tmp_path: Path) -> None:
    from safetensors import safe_open
    from safetensors.torch import save_file as save_torch_file

    with safe_open(str(digits_model), framework="pt") as handle:
        meta = handle.metadata()
        tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    header = json.loads(meta["tnml"])
    header["fitted"]["history_"][-1]["train_loss"] = None
    edited = tmp_path / "edited.tnml"
    save_torch_file(tensors, str(edited), metadata={**meta, "tnml": json.dumps(header)})
    assert "last train loss not recorded" in ok(run("info", edited)).output


def test_digits_trains_with_the_mnist_folder_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the README's way of pointing at MNIST fills --data-dir; digits ignores it
    monkeypatch.setenv(MNIST_ENV_VAR, str(tmp_path))
    ok(run("train", "digits", "--downsample", 2, "--epochs", 1, "--bond-dim", 2, "--quiet",
           "--out", tmp_path / "m.tnml"))  # fmt: skip


def test_a_changed_training_csv_is_not_split_again(files: dict[str, Path], tmp_path: Path):
    table = tmp_path / "iris.csv"
    table.write_text(files["iris"].read_text())
    model = tmp_path / "iris.tnml"
    ok(run("train", "csv", table, "--target", "species", "--epochs", 1, "--bond-dim", 2,
           "--out", model, "--quiet"))  # fmt: skip
    assert "test split" in ok(run("evaluate", model)).output
    # a row appended: the seeded split of the new file would move fitted rows into "test"
    lines = table.read_text().splitlines()
    table.write_text("\n".join([*lines, lines[1]]) + "\n")
    assert_error(run("evaluate", model), "iris.csv changed since the model", "--split all")
    assert "all 151 samples" in ok(run("evaluate", model, "--split", "all")).output
    # explain's importance is no held-out score: it reads the changed file whole
    report = tmp_path / "explained"
    ok(run("explain", model, "--out", report, "--no-mutual-information"))
    assert "all 151 samples" in json.loads((report / "explain.json").read_text())[
        "feature_importance"]["data"]  # fmt: skip
    assert_error(run("compress-bonds", model, "--bond-dims", 2), "give a copy of iris.csv")
    detector = tmp_path / "d.tnml"
    table.write_text("\n".join(lines) + "\n")
    ok(run("anomaly", "fit", "csv", table, "--target", "species", "--normal-class", "setosa",
           "--epochs", 1, "--quiet", "--out", detector))  # fmt: skip
    ok(run("anomaly", "score", detector))
    table.write_text("\n".join([*lines, lines[1]]) + "\n")
    assert_error(run("anomaly", "score", detector), "iris.csv changed")


def test_checkpoint_never_deletes_what_no_run_wrote(tmp_path: Path) -> None:
    precious = tmp_path / "precious.csv"
    precious.write_text("a,b\n1,2\n")
    out = tmp_path / "m.tnml"
    args = ("train", "digits", "--downsample", 2, "--epochs", 1, "--out", out, "--quiet")
    assert_error(run(*args, "--checkpoint", precious), "precious.csv")
    assert precious.read_text() == "a,b\n1,2\n" and not out.exists()
    # a checkpoint that a run left behind (its record beside it) is replaced by a fresh run
    left = tmp_path / "left.ckpt"
    left.write_bytes(b"old")
    left.with_name("left.ckpt.run.json").write_text("{}")
    ok(run(*args, "--checkpoint", left))
    assert out.is_file() and not left.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_unavailable_is_one_line(tmp_path: Path) -> None:
    result = run("train", "digits", "--downsample", 2, "--epochs", 1, "--device", "cuda",
                 "--out", tmp_path / "m.tnml", "--quiet")  # fmt: skip
    assert_error(result, "cuda")


def test_distributed_outside_torchrun_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    result = run("train", "digits", "--distributed", "--out", tmp_path / "m.tnml", "--quiet")
    assert_error(result, "torchrun", "WORLD_SIZE")


def test_compress_bonds_reports_accuracy_per_bond(digits_model: Path, tmp_path: Path) -> None:
    result = ok(run("compress-bonds", digits_model, "--bond-dims", "2,4", "--json",
                    "--out-dir", tmp_path))  # fmt: skip
    rows = json.loads(result.stdout)["results"]
    assert [row["bond_dim"] for row in rows] == [4, 2, 4]
    evaluated = json.loads(ok(run("evaluate", digits_model, "--json")).stdout)["accuracy"]
    assert rows[0]["accuracy"] == pytest.approx(evaluated)
    assert rows[2]["accuracy"] == pytest.approx(evaluated)  # truncating to its own bond
    assert rows[1]["discarded_weight"] > 0 == rows[0]["discarded_weight"]
    assert (tmp_path / f"{digits_model.stem}-D2.tnml").is_file()
    assert_error(run("compress-bonds", tmp_path / "missing.tnml", "--bond-dims", "2"),
                 "missing.tnml")  # fmt: skip
    assert run("compress-bonds", digits_model, "--bond-dims", "two").exit_code == 2
    assert_error(run("compress-bonds", digits_model, "--bond-dims", "0"), "--bond-dims", ">= 1")


def test_train_forwards_sweep_options(recorder: Recorder, tmp_path: Path) -> None:
    ok(run("train", "digits", "--trainer", "sweep", "--max-bond", 20, "--cutoff", 1e-8,
           "--loss", "cross_entropy", "--select-by", "accuracy", "--quiet",
           "--out", tmp_path / "m.tnml"))  # fmt: skip
    params = recorder.init
    assert params["trainer"] == "sweep" and params["max_bond"] == 20
    assert params["cutoff"] == 1e-8 and params["loss"] == "cross_entropy"
    assert params["select_by"] == "accuracy"


# -- Born machines: train, evaluate, sample, inpaint -------------------------------------------
@pytest.fixture(scope="module")
def born_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("born") / "born.tnml"
    result = ok(
        run(
            "train",
            "digits",
            "--model",
            "mps-born",
            "--bond-dim",
            8,
            "--epochs",
            1,
            "--quiet",
            "--out",
            out,
        )
    )
    assert re.search(r"train NLL \d+\.\d+ nats", result.output)
    assert re.search(r"test NLL \d+\.\d+ nats per sample \(450 samples", result.output)
    return out


def test_born_train_evaluate_info(born_model: Path) -> None:
    model = tnml.io.load(born_model)
    assert isinstance(model, tnml.MPSBornMachine) and model.bond_dim == 8
    assert model.metadata_["discretize"] == {"binary_threshold": 0.5}
    report = json.loads(ok(run("evaluate", born_model, "--json")).output)
    assert report["nll"] == pytest.approx(model.metadata_["test_nll"], rel=1e-9)
    assert "last train NLL" in ok(run("info", born_model)).output
    images = born_model.with_name("images.npy")
    np.save(images, np.zeros((2, 64)))
    assert_error(run("predict", born_model, images), "MPSBornMachine", "predicts no labels")
    for command in (["sample", born_model], ["inpaint", born_model]):
        result = run(*command, "--seed", -1, "--out", born_model.with_name("x.png"))
        assert result.exit_code == 2 and "--seed" in result.output
        assert "Traceback" not in result.output


def test_born_sweep_step_options(tmp_path: Path) -> None:
    out = tmp_path / "floored.tnml"
    result = ok(run("train", "digits", "--model", "mps-born", "--grad-floor", "--lr-decay", 0.5,
                    "--steps-per-bond", 2, "--truncation", "data", "--n-train", 300, "--bond-dim",
                    4, "--epochs", 1, "--quiet", "--out", out))  # fmt: skip
    assert "(300 samples)" in result.output
    model = tnml.io.load(out)
    assert model.grad_floor is True and model.lr_decay == 0.5 and model.steps_per_bond == 2
    assert model.truncation == "data"
    assert model.metadata_["split"]["n_train"] == 300
    tree = tmp_path / "tree.tnml"
    ok(run("train", "digits", "--model", "ttn-born", "--trainer", "sweep", "--steps-per-node", 2,
           "--bond-dim", 4, "--epochs", 1, "--quiet", "--out", tree))  # fmt: skip
    assert tnml.io.load(tree).steps_per_node == 2
    # each option is the estimator's parameter of the same name, and only its models take it
    assert_error(
        run("train", "digits", "--model", "ttn-born", "--steps-per-bond", 2, "--out", tree),
        "--steps-per-bond applies to the MPS models",
    )
    assert_error(
        run("train", "digits", "--model", "mps-born", "--steps-per-node", 2, "--out", tree),
        "--steps-per-node applies to --model ttn-born",
    )
    assert_error(
        run("train", "digits", "--model", "ttn-born", "--truncation", "data", "--out", tree),
        "--truncation applies to --model mps-born",
    )
    assert_error(
        run("train", "digits", "--model", "ttn", "--solver", "cg", "--out", tree),
        "--solver applies to --model mps",
    )
    # options the chosen trainer would ignore
    for model, trainer, flag in (
        ("mps", "autodiff", ["--max-bond", 7]),
        ("mps", "autodiff", ["--cutoff", 0.5]),
        ("mps-born", "autodiff", ["--lr-decay", 0.5]),
        ("mps-born", "autodiff", ["--grad-floor"]),
        ("mps-born", "autodiff", ["--steps-per-bond", 2]),
        ("ttn-born", "autodiff", ["--grad-floor"]),
        ("ttn-born", "autodiff", ["--steps-per-node", 3]),
    ):
        assert_error(
            run("train", "digits", "--model", model, "--trainer", trainer, *flag, "--out", tree),
            f"{flag[0]} applies to --trainer sweep",
        )
    for model, trainer in (("mps-born", []), ("ttn-born", ["--trainer", "sweep"])):
        assert_error(
            run("train", "digits", "--model", model, *trainer, "--batch-size", 7, "--out", tree),
            "--batch-size is the autodiff mini-batch",
        )
    # a flag turned off asks for what autodiff does: accepted
    ok(run("train", "digits", "--model", "mps-born", "--trainer", "autodiff",
           "--no-grad-floor", "--downsample", 4, "--bond-dim", 2, "--epochs", 1, "--quiet",
           "--out", tree))  # fmt: skip
    assert_error(run("train", "digits", "--target", "foo", "--out", tree), "--target", "digits")
    for flag, message in [
        ("--steps-per-bond", "--steps-per-bond applies to the MPS models"),
        ("--steps-per-node", "--steps-per-node applies to --model ttn-born"),
    ]:
        assert_error(run("train", "digits", "--model", "circuit", flag, 2, "--out", tree), message)
    assert_error(
        run("train", "digits", "--model", "circuit", "--solver", "cg", "--out", tree),
        "--solver applies to --model mps",
    )
    sweep = tmp_path / "cg.tnml"
    ok(run("train", "digits", "--model", "mps", "--trainer", "sweep", "--loss", "quadratic",
           "--solver", "cg", "--steps-per-bond", 2, "--bond-dim", 4, "--epochs", 1, "--quiet",
           "--out", sweep))  # fmt: skip
    cg = tnml.io.load(sweep)
    assert cg.solver == "cg" and cg.steps_per_bond == 2 and cg.loss == "quadratic"
    assert len(cg.history_) == 1 and np.isfinite(cg.history_[0]["train_loss"])
    assert_error(run("train", "digits", "--n-train", 10**6, "--out", out), "--n-train 1000000")
    assert_error(
        run("train", "digits", "--model", "mps", "--grad-floor", "--out", out),
        "--grad-floor applies to Born machines",
    )


def test_sample_writes_png_grid_and_csv(born_model: Path, tmp_path: Path) -> None:
    from PIL import Image

    png = tmp_path / "grid.png"
    ok(run("sample", born_model, "--n", 16, "--out", png, "--seed", 1))
    assert Image.open(png).size[0] > 0
    rows = tmp_path / "samples.csv"
    ok(run("sample", born_model, "--n", 5, "--out", rows, "--seed", 1))
    values = np.loadtxt(rows, delimiter=",", skiprows=1)  # a header row of column names
    assert values.shape == (5, 64) and set(np.unique(values)) <= {0, 1}
    again = tmp_path / "again.csv"
    ok(run("sample", born_model, "--n", 5, "--out", again, "--seed", 1))
    assert rows.read_text() == again.read_text()


def test_sample_csv_is_written_whole_or_not_at_all(
    born_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = tmp_path / "samples.csv"
    ok(run("sample", born_model, "--n", 5, "--out", rows, "--seed", 1))
    before = rows.read_text()

    def dies_half_way(path: str, *args: object, **kwargs: object) -> None:
        Path(path).write_text("0,0,")
        raise OSError("File too large")

    monkeypatch.setattr(np, "savetxt", dies_half_way)
    assert run("sample", born_model, "--n", 5, "--out", rows, "--seed", 2).exit_code != 0
    assert rows.read_text() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["samples.csv"]


def test_inpaint_keeps_visible_pixels(born_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "inpaint.png"
    result = ok(run("inpaint", born_model, "--mask", "bottom-half", "--n", 4, "--out", out))
    assert "32 hidden pixels each" in result.output and out.is_file()


def test_born_errors_are_one_line(born_model: Path, digits_model: Path, tmp_path: Path) -> None:
    assert_error(run("sample", digits_model, "--out", tmp_path / "x.png"), "not a Born machine")
    assert_error(run("sample", born_model, "--out", tmp_path / "x.txt"), ".png or .csv")
    assert_error(run("inpaint", born_model, "--out", tmp_path / "x.csv"), ".png", "x.csv")
    assert_error(
        run(
            "train",
            "digits",
            "--model",
            "mps-born",
            "--readout",
            "born",
            "--out",
            tmp_path / "m.tnml",
        ),
        "--readout applies to classifiers",
    )


# -- explain and anomaly ----------------------------------------------------------------------
def test_explain_writes_plots_and_numbers(digits_model: Path, born_model: Path, tmp_path: Path):
    out = tmp_path / "clf"
    result = ok(run("explain", digits_model, "--out", out, "--n-samples", 20))
    assert "largest entanglement" in result.output
    report = json.loads((out / "explain.json").read_text())
    n = tnml.io.load(digits_model).n_features_in_
    assert len(report["entropy"]["von_neumann"]) == n - 1
    assert np.asarray(report["mutual_information"]).shape == (n, n)
    assert len(report["feature_importance"]["mean_abs"]) == n
    for name in ("entropy.png", "mutual_information.png", "importance.png"):
        assert (out / name).stat().st_size > 0
    out = tmp_path / "born"
    ok(run("explain", born_model, "--out", out, "--no-mutual-information"))
    report = json.loads((out / "explain.json").read_text())
    assert "mutual_information" not in report and "feature_importance" not in report
    np.testing.assert_allclose(np.asarray(report["marginals"]).sum(1), 1.0, atol=1e-9)
    # a Born machine explained into the classifier's folder leaves none of its plots behind
    out = tmp_path / "clf"
    ok(run("explain", born_model, "--out", out, "--no-mutual-information"))
    assert sorted(p.name for p in out.iterdir()) == ["entropy.png", "explain.json"]
    # a folder no explain wrote keeps its files, whatever their names
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "importance.png").write_text("my own picture")
    ok(run("explain", born_model, "--out", mine, "--no-mutual-information"))
    assert (mine / "importance.png").read_text() == "my own picture"


def test_anomaly_fit_and_score(tmp_path: Path) -> None:
    model = tmp_path / "detector.tnml"
    ok(
        run(
            "anomaly",
            "fit",
            "digits",
            "--normal-class",
            0,
            "--epochs",
            1,
            "--bond-dim",
            4,
            "--quiet",
            "--out",
            model,
        )
    )
    scores = tmp_path / "scores.csv"
    result = ok(run("anomaly", "score", model, "--out", scores))
    auroc = float(re.search(r"AUROC (\d\.\d+)", result.output).group(1))
    assert auroc > 0.9  # zeros against the other nine digits
    rows = list(csv.DictReader(scores.open()))
    assert len(rows) == 450 and {r["prediction"] for r in rows} <= {"1", "-1"}
    # a detector is scored by `anomaly score`, not by evaluate
    assert_error(run("evaluate", model, "digits"), "MPSAnomalyDetector", "anomaly score")
    table = write_table(tmp_path / "t.csv", ["a", "b"], [[i % 3, (i % 3) * 2] for i in range(60)])
    ok(run("anomaly", "fit", "csv", table, "--epochs", 1, "--quiet", "--out", model))
    ok(run("anomaly", "score", model, "csv", table))
    # a text column is a category, as in the API (it was refused as "not a number")
    mixed = write_table(tmp_path / "m.csv", ["a", "kind"],
                        [[i % 3, "red" if i % 2 else "blue"] for i in range(60)])  # fmt: skip
    ok(run("anomaly", "fit", "csv", mixed, "--epochs", 1, "--quiet", "--out", model))
    assert tnml.io.load(model).categories_[1] is not None
    scored = ok(run("anomaly", "score", model, "csv", mixed)).output
    assert "60 samples (m.csv, all 60 rows, every one fitted" in scored
    assert_error(
        run("anomaly", "fit", "digits", "--normal-class", 11, "--out", model), "--normal-class"
    )
    assert_error(run("anomaly", "score", tmp_path / "missing.tnml"), "not found")
    # options that an unlabelled CSV, or images, would ignore
    for option, fragment in (
        (["--normal-class", 1], "--normal-class picks a value of --target"),
        (["--downsample", 7], "--downsample applies to images"),
        (["--data-dir", tmp_path], "--data-dir is the MNIST folder"),
    ):
        assert_error(run("anomaly", "fit", "csv", table, *option, "--out", model), fragment)
    assert_error(run("anomaly", "fit", "digits", "--n-bins", 5, "--out", model), "--n-bins")
    assert_error(run("predict", model, table, "--proba"), "--proba needs a classifier")


def test_anomaly_score_csv_matches_columns_by_name_and_holds_out(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rows = [[*(int(v) for v in rng.integers(0, 4, 3)), i % 2] for i in range(80)]
    table = write_table(tmp_path / "t.csv", ["a", "b", "c", "label"], rows)
    model = tmp_path / "d.tnml"
    ok(run("anomaly", "fit", "csv", table, "--target", "label", "--normal-class", 1,
           "--epochs", 1, "--quiet", "--out", model))  # fmt: skip
    # by default the training file's held-out rows, not the rows the detector was fitted on
    scored = ok(run("anomaly", "score", model)).output
    n_scored = int(re.search(r"(\d+) samples \(t\.csv, test split", scored).group(1))
    assert 0 < n_scored < 80
    # columns are matched by name: a file with its columns in another order scores the same
    copy = write_table(tmp_path / "copy.csv", ["a", "b", "c", "label"], rows)
    permuted = write_table(tmp_path / "perm.csv", ["c", "label", "a", "b"],
                           [[r[2], r[3], r[0], r[1]] for r in rows])  # fmt: skip
    first, second = tmp_path / "s1.csv", tmp_path / "s2.csv"
    ok(run("anomaly", "score", model, "csv", copy, "--out", first))
    ok(run("anomaly", "score", model, "csv", permuted, "--out", second))
    assert first.read_text() == second.read_text()
    other = write_table(tmp_path / "other.csv", ["a", "b", "d", "label"], rows)
    assert_error(run("anomaly", "score", model, "csv", other), "missing ['c']", "unknown ['d']")


def test_tree_models_train_with_the_image_layout(tmp_path: Path) -> None:
    out = tmp_path / "ttn.tnml"
    result = ok(
        run(
            "train",
            "digits",
            "--model",
            "ttn",
            "--epochs",
            2,
            "--bond-dim",
            8,
            "--quiet",
            "--out",
            out,
        )
    )
    assert float(re.search(r"test accuracy (\d\.\d+)", result.output).group(1)) > 0.8
    model = tnml.io.load(out)
    assert isinstance(model, tnml.TTNClassifier) and tuple(model.layout) == (8, 8)
    explained = tmp_path / "ttn-explain"
    ok(run("explain", out, "--out", explained, "--n-samples", 10, "--no-mutual-information"))
    report = json.loads((explained / "explain.json").read_text())
    assert len(report["feature_importance"]["mean_abs"]) == 64
    assert (explained / "importance.png").stat().st_size > 0
    born = tmp_path / "ttn-born.tnml"
    ok(
        run(
            "train",
            "digits",
            "--model",
            "ttn-born",
            "--epochs",
            1,
            "--bond-dim",
            4,
            "--quiet",
            "--out",
            born,
        )
    )
    ok(run("sample", born, "--n", 4, "--out", tmp_path / "s.png"))
    assert_error(
        run("train", "digits", "--model", "ttn", "--trainer", "sweep", "--out", out),
        "--trainer applies to the MPS models",
    )
    swept = tmp_path / "ttn-born-sweep.tnml"
    ok(run("train", "digits", "--model", "ttn-born", "--trainer", "sweep", "--epochs", 1,
           "--bond-dim", 4, "--quiet", "--out", swept))  # fmt: skip
    model = tnml.io.load(swept)
    assert model.trainer == "sweep" and len(model.history_) == 1
    assert_error(
        run("train", "digits", "--model", "ttn-born", "--max-bond", 8, "--out", out),
        "--max-bond applies to the MPS models",
    )


def test_readme_csv_commands_run_on_the_example_files(tmp_path: Path) -> None:
    """The README's csv commands, on the files it points at (they exist in the repository)."""
    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text()
    commands = [line.split("#")[0].split() for line in readme.splitlines()]
    train_cmd = next(c for c in commands if c[:3] == ["tnml", "train", "csv"])
    predict_cmd = next(c for c in commands if c[:2] == ["tnml", "predict"] and "iris" in c[2])
    model, predictions = tmp_path / "iris.tnml", tmp_path / "predictions.txt"
    args = [root / a if a.startswith("examples/") else a for a in train_cmd[1:]]
    args[args.index("--out") + 1] = model
    ok(run(*args, "--epochs", 5, "--quiet"))
    args = [root / a if a.startswith("examples/") else a for a in predict_cmd[1:]]
    args[1], args[args.index("--out") + 1] = model, predictions
    ok(run(*args))
    labels = predictions.read_text().split()
    new_rows = (root / "examples" / "iris_new.csv").read_text().splitlines()[1:]
    assert len(labels) == len(new_rows) and set(labels) <= {"setosa", "versicolor", "virginica"}


def test_csv_column_whose_range_overflows_is_named(tmp_path: Path) -> None:
    rows = [[i, (-1) ** i * 1e308, "xy"[i % 2]] for i in range(8)]
    path = write_table(tmp_path / "wide.csv", ["a", "width", "label"], rows)
    result = run("train", "csv", path, "--target", "label", "--out", tmp_path / "m.tnml")
    assert_error(result, "feature width spans", "overflows float64")


def test_cli_prints_warnings_on_one_line(monkeypatch):
    import sys
    import warnings

    from tnml.exceptions import TrainingWarning

    monkeypatch.setattr(warnings, "formatwarning", warnings.formatwarning)  # restored after
    monkeypatch.setattr(sys, "argv", ["tnml", "--version"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 0
    text = warnings.formatwarning(TrainingWarning("more epochs"), TrainingWarning, "x.py", 3)
    assert text == "warning: more epochs\n"


def test_small_mnist_budget_says_why_it_stopped_short(files, tmp_path):
    import warnings

    from tnml.exceptions import TrainingWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ok(run("train", "mnist", "--data-dir", files["mnist"], "--bond-dim", "4", "--epochs",
               "1", "--batch-size", "1", "--lr", "0.01", "--out", tmp_path / "m.tnml"))  # fmt: skip
    messages = [str(w.message) for w in caught if issubclass(w.category, TrainingWarning)]
    assert any("progress in the first epoch" in m for m in messages), messages
