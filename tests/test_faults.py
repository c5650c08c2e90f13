"""Fault injection: every command and every estimator, faced with the faults a hostile or
unlucky user brings, gives a correct result or a clean refusal -- never a silent wrong answer,
a traceback or an internal error.

CLI: exit 0, or exit 2 with one line ``error: ...`` naming the problem. API: a result, or a
:class:`~tnml.exceptions.TnmlError` / the scikit-learn error a user expects (``ValueError``,
``TypeError``, ``NotFittedError``) -- never ``IndexError``, ``RuntimeError``, ``AssertionError``...
Interrupting any trainer and resuming gives the model of the uninterrupted run, bit for bit.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.datasets import load_digits
from sklearn.exceptions import NotFittedError
from typer.testing import CliRunner

import tnml
from tnml.cli import app
from tnml.exceptions import TnmlError
from tnml.train.progress import TrainingProgress

runner = CliRunner()
EXPECTED_API_ERRORS = (TnmlError, ValueError, TypeError, NotFittedError)


def cli(*args: Any) -> Any:
    return runner.invoke(app, [str(a) for a in args])


def assert_clean(result: Any) -> None:
    """Exit 0, or exit 2 with exactly one ``error:`` line; never a traceback."""
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    if result.exit_code == 0:
        return
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr


# -- saved models of every kind, once -------------------------------------------------------
@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("fault-models")
    train = {
        "mps": ["--model", "mps", "--bond-dim", 3, "--epochs", 1, "--downsample", 4],
        "mps-born": ["--model", "mps-born", "--bond-dim", 3, "--epochs", 1, "--downsample", 4],
        "ttn": ["--model", "ttn", "--bond-dim", 2, "--epochs", 1, "--downsample", 4],
    }
    out = {}
    for name, args in train.items():
        out[name] = root / f"{name}.tnml"
        result = cli("train", "digits", *args, "--quiet", "--out", out[name])
        assert result.exit_code == 0, result.output
    out["anomaly"] = root / "anomaly.tnml"
    result = cli("anomaly", "fit", "digits", "--normal-class", 0, "--epochs", 1, "--bond-dim", 3,
                 "--downsample", 4, "--out", out["anomaly"])  # fmt: skip
    assert result.exit_code == 0, result.output
    valid = out["mps"].read_bytes()
    faults = {
        "missing": root / "absent.tnml",
        "directory": root,
        "empty": root / "empty.tnml",
        "random bytes": root / "random.tnml",
        "truncated": root / "truncated.tnml",
        "csv": root / "table.csv",
    }
    faults["empty"].write_bytes(b"")
    faults["random bytes"].write_bytes(np.random.default_rng(0).bytes(4096))
    faults["truncated"].write_bytes(valid[: len(valid) // 2])
    faults["csv"].write_text("a,b\n1,2\n")
    out.update({f"fault:{k}": v for k, v in faults.items()})
    return out


def model_commands(model: Path, out: Path) -> dict[str, list[Any]]:
    """Each command that reads a model, with arguments that would work for a suitable one."""
    inputs = out / "inputs.csv"
    if not inputs.exists():
        X = load_digits().data[:5] / 16
        header = ",".join(f"p{i}" for i in range(64))
        np.savetxt(inputs, X, delimiter=",", header=header, comments="")
    return {
        "info": ["info", model],
        "evaluate": ["evaluate", model],
        "predict": ["predict", model, inputs, "--out", out / "pred.txt"],
        "predict --proba": ["predict", model, inputs, "--proba", "--out", out / "p.csv"],
        "sample": ["sample", model, "--n", 4, "--out", out / "s.png"],
        "inpaint": ["inpaint", model, "--out", out / "i.png"],
        "explain": ["explain", model, "--out", out / "explain"],
        "compile": ["compile", model, "--out", out / "c.qasm"],
        "compress-bonds": ["compress-bonds", model, "--bond-dims", 2],
        "anomaly score": ["anomaly", "score", model, "--out", out / "scores.csv"],
    }


MODEL_KINDS = ["mps", "mps-born", "ttn", "anomaly"] + [
    f"fault:{k}" for k in ("missing", "directory", "empty", "random bytes", "truncated", "csv")
]


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_every_command_on_every_model_file(
    kind: str, models: dict[str, Path], tmp_path: Path
) -> None:
    """A command meets a model of its kind, another kind, or a broken file."""
    for name, args in model_commands(models[kind], tmp_path).items():
        result = cli(*args)
        assert_clean(result)
        if kind.startswith("fault:"):
            assert result.exit_code == 2, (name, result.output)


@pytest.mark.parametrize(
    "args",
    [
        ["--lr", "nan"],
        ["--lr", "inf"],
        ["--lr", "-1"],
        ["--epochs", "0"],
        ["--bond-dim", "0"],
        ["--seed", "-1"],
        ["--seed", str(2**32)],
        ["--val-fraction", "1.0"],
        ["--test-fraction", "1"],
        ["--downsample", "5"],
        ["--max-bond", "3", "--trainer", "autodiff", "--model", "ttn"],
        ["--model", "circuit", "--bond-dim", "4"],
        ["--model", "mps-born", "--readout", "born"],
        ["--out", "/proc/forbidden/model.tnml"],
        ["--checkpoint", "/proc/forbidden/c.ckpt"],
    ],
)
def test_train_with_bad_options_refuses_before_training(args: list[str], tmp_path: Path) -> None:
    if "--out" not in args:
        args = [*args, "--out", str(tmp_path / "m.tnml")]
    result = cli("train", "digits", "--epochs", 1, "--quiet", *args)
    assert_clean(result)
    assert result.exit_code == 2


CSV_FAULTS = {
    "no header": "1,2,a\n3,4,b\n5,6,a\n7,8,b\n",
    "header only": "x,y,label\n",
    "text feature": "x,y,label\n1,foo,a\n2,3,b\n3,4,a\n4,5,b\n",
    "NaN": "x,y,label\n1,,a\n2,3,b\n3,4,a\n4,5,b\n",
    "inf": "x,y,label\n1,inf,a\n2,3,b\n3,4,a\n4,5,b\n",
    "one class": "x,y,label\n1,2,a\n2,3,a\n3,4,a\n4,5,a\n",
    "duplicate columns": "x,x,label\n1,2,a\n2,3,b\n3,4,a\n4,5,b\n",
    "one row": "x,y,label\n1,2,a\n",
    "huge value": "x,y,label\n"
    + "".join(f"{i},{1e300 * (i == 5)},{'ab'[i % 2]}\n" for i in range(12)),
    "ragged": "x,y,label\n1,2,a\n3,b\n5,6,a,7\n",
}


@pytest.mark.parametrize("case", list(CSV_FAULTS))
def test_train_and_predict_on_faulty_csv(case: str, tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text(CSV_FAULTS[case])
    out = tmp_path / "m.tnml"
    result = cli("train", "csv", path, "--target", "label", "--epochs", 1, "--quiet", "--out", out)
    assert_clean(result)
    if result.exit_code == 0:  # trained: predicting the same features must work or refuse
        features = tmp_path / "features.csv"
        lines = CSV_FAULTS[case].splitlines()
        features.write_text("\n".join(",".join(row.split(",")[:-1]) for row in lines) + "\n")
        assert_clean(cli("predict", out, features, "--out", tmp_path / "p.txt"))


# -- the API --------------------------------------------------------------------------------
def _estimators() -> dict[str, tuple[Any, str]]:
    """Each public estimator on tiny budgets, with the kind of data it fits."""
    return {
        "MPSClassifier": (tnml.MPSClassifier(bond_dim=3, epochs=1, random_state=0), "classify"),
        "MPSClassifier-sweep": (
            tnml.MPSClassifier(trainer="sweep", bond_dim=2, max_bond=4, epochs=1, random_state=0),
            "classify",
        ),
        "TTNClassifier": (tnml.TTNClassifier(bond_dim=2, epochs=1, random_state=0), "classify"),
        "CircuitClassifier": (
            tnml.CircuitClassifier(n_qubits=3, epochs=1, random_state=0),
            "classify",
        ),
        "MPSBornMachine": (tnml.MPSBornMachine(bond_dim=3, epochs=1, random_state=0), "levels"),
        "MPSBornMachine-autodiff": (
            tnml.MPSBornMachine(bond_dim=3, epochs=1, trainer="autodiff", random_state=0),
            "levels",
        ),
        "TTNBornMachine": (tnml.TTNBornMachine(bond_dim=3, epochs=1, random_state=0), "levels"),
        "TTNBornMachine-sweep": (
            tnml.TTNBornMachine(bond_dim=3, epochs=1, trainer="sweep", random_state=0),
            "levels",
        ),
        "MPSAnomalyDetector": (
            tnml.MPSAnomalyDetector(bond_dim=3, epochs=1, random_state=0),
            "any",
        ),
    }


def _data(kind: str, n: int = 120) -> tuple[np.ndarray, np.ndarray | None]:
    digits = load_digits()
    X = digits.data[:n, ::4] / 16  # 16 features
    if kind == "levels":
        return (X > 0.3).astype(np.int64), None
    return X, digits.target[:n] % 3


def _use(estimator: Any, X: Any) -> Any:
    for method in ("predict_proba", "score_samples", "predict"):
        if hasattr(estimator, method):
            return getattr(estimator, method)(X)
    raise AssertionError(type(estimator).__name__)


BAD_ARRAYS = {
    "NaN": lambda X: np.where(np.arange(X.size).reshape(X.shape) == 3, np.nan, X),
    "inf": lambda X: np.where(np.arange(X.size).reshape(X.shape) == 3, np.inf, X),
    "1-D": lambda X: X[0],
    "3-D": lambda X: X[:, :, None],
    "empty": lambda X: X[:0],
    "one column short": lambda X: X[:, :-1],
    "strings": lambda X: X.astype(str),
    "complex": lambda X: X + 1j,
    "negative": lambda X: -1 - X,
}


@pytest.mark.parametrize("name", list(_estimators()))
@pytest.mark.parametrize("fault", list(BAD_ARRAYS))
def test_estimators_refuse_bad_arrays_cleanly(name: str, fault: str) -> None:
    estimator, kind = _estimators()[name]
    X, y = _data(kind)
    bad = BAD_ARRAYS[fault](X)
    try:
        estimator.fit(bad, y) if y is not None and bad.ndim == 2 and len(bad) else estimator.fit(
            bad
        )
    except EXPECTED_API_ERRORS:
        pass
    estimator.fit(X, y) if y is not None else estimator.fit(X)
    try:
        out = _use(estimator, bad)
    except EXPECTED_API_ERRORS:
        return
    assert np.all(np.isfinite(np.asarray(out, dtype=float)) | (np.asarray(out) == -np.inf))


# scikit-learn's finiteness check sums the array, which warns when +inf meets -inf
@pytest.mark.filterwarnings("ignore:invalid value encountered in reduce:RuntimeWarning")
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    hnp.arrays(
        np.float64,
        st.tuples(st.integers(1, 6), st.just(16)),
        elements=st.floats(allow_nan=True, allow_infinity=True, width=64),
    )
)
def test_classifier_predictions_are_valid_or_refused(X: np.ndarray) -> None:
    """Any float array: probabilities that sum to one, or a clean error."""
    clf = _fitted_classifier()
    try:
        proba = clf.predict_proba(X)
    except EXPECTED_API_ERRORS:
        return
    assert np.all(np.isfinite(proba)) and np.allclose(proba.sum(axis=1), 1.0)


_FITTED: dict[str, Any] = {}


def _fitted_classifier() -> Any:
    if "clf" not in _FITTED:
        X, y = _data("classify")
        _FITTED["clf"] = tnml.MPSClassifier(bond_dim=3, epochs=1, random_state=0).fit(X, y)
    return _FITTED["clf"]


def test_unfitted_estimators_say_so() -> None:
    for estimator, kind in _estimators().values():
        X, _ = _data(kind, 5)
        with pytest.raises(NotFittedError):
            _use(estimator, X)


# -- interruption and resume, every trainer -------------------------------------------------
def _interrupt_at(step: int):
    calls = {"n": 0}
    original = TrainingProgress.update

    def update(self: TrainingProgress, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == step:
            signal.raise_signal(signal.SIGINT)

    return update


@pytest.mark.parametrize("name", list(_estimators()))
def test_interrupted_and_resumed_fit_is_bitwise_the_uninterrupted_one(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make = lambda: _estimators()[name][0].set_params(epochs=2)  # noqa: E731
    kind = _estimators()[name][1]
    X, y = _data(kind)
    fit_args = (X, y) if y is not None else (X,)
    reference = make().fit(*fit_args)
    path = tmp_path / "run.ckpt"
    monkeypatch.setattr(TrainingProgress, "update", _interrupt_at(3))  # the 2nd epoch at most
    with pytest.raises(KeyboardInterrupt):
        make().fit(*fit_args, checkpoint_path=path)
    monkeypatch.undo()
    assert path.is_file()
    resumed = make().fit(*fit_args, checkpoint_path=path, resume=True)
    np.testing.assert_array_equal(_use(resumed, X), _use(reference, X))


# -- faults found by a hostile review (2026-12-05), each fixed ------------------------------
def test_a_fresh_run_removes_the_old_checkpoint_with_its_record(tmp_path: Path) -> None:
    """Run A left a checkpoint; run B (other options) died before its first one: a --resume
    must not continue A under B's record."""
    from tnml.workflows.train import check_or_record_run

    checkpoint = tmp_path / "m.tnml.ckpt"
    checkpoint.write_bytes(b"run A's checkpoint")
    check_or_record_run(checkpoint, {"params": {"lr": 0.5}}, resume=False)  # run B starts
    assert not checkpoint.exists()
    out = tmp_path / "m.tnml"
    result = cli("train", "digits", "--lr", 0.5, "--resume", "--out", out, "--quiet")
    assert_clean(result)
    assert result.exit_code == 2 and "nothing to resume" in result.stderr


def test_integer_labels_beyond_int64_stay_distinct(tmp_path: Path) -> None:
    from tnml.data import load_csv

    rows = "".join(f"{i},{i % 5},{label}\n" for i, label in enumerate(["0", "1e19", "2e19"] * 4))
    path = tmp_path / "labels.csv"
    path.write_text("a,b,label\n" + rows)
    _, y, _ = load_csv(path, "label")
    assert sorted(set(y.tolist())) == ["0", "1e19", "2e19"]
    path.write_text("a,b,label\n1,2,99999999999999999999\n3,4,5\n")
    _, y, _ = load_csv(path, "label")  # no OverflowError
    assert y.tolist() == ["99999999999999999999", "5"]


def test_duplicate_feature_names_are_refused_at_training(tmp_path: Path) -> None:
    path = tmp_path / "dup.csv"
    path.write_text("a,a,y\n" + "".join(f"{i},{i + 1},{i % 2}\n" for i in range(8)))
    result = cli("train", "csv", path, "--target", "y", "--out", tmp_path / "m.tnml")
    assert_clean(result)
    assert result.exit_code == 2 and "duplicate column names: a" in result.stderr


def test_sample_size_is_bounded_and_csv_samples_read_back(
    models: dict[str, Path], tmp_path: Path
) -> None:
    from tnml.data import load_csv

    result = cli("sample", models["mps-born"], "--n", 10**8, "--out", tmp_path / "s.csv")
    assert_clean(result)
    assert result.exit_code == 2 and "draw them in batches" in result.stderr
    out = tmp_path / "s.csv"
    assert cli("sample", models["mps-born"], "--n", 5, "--out", out).exit_code == 0
    X, _, names = load_csv(out, None)
    assert X.shape == (5, 16) and len(names) == 16


def test_compile_refuses_an_output_name_of_the_other_format(
    models: dict[str, Path], tmp_path: Path
) -> None:
    result = cli("compile", models["mps-born"], "--format", "qiskit", "--out", tmp_path / "c.qasm")
    assert_clean(result)
    assert result.exit_code == 2 and "use a .qpy name" in result.stderr


def test_saving_onto_a_folder_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    X, y = _data("classify", 40)
    model = tnml.MPSClassifier(bond_dim=2, epochs=1, random_state=0).fit(X, y)
    folder = tmp_path / "model.tnml"
    folder.mkdir()
    with pytest.raises(TnmlError, match="is a folder; give a file name"):
        tnml.io.save(model, folder)
    assert list(folder.iterdir()) == [] and [p.name for p in tmp_path.iterdir()] == ["model.tnml"]
