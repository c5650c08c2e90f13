"""``tnml train --unitary``, ``tnml compile`` and ``tnml noise-study`` end to end."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from tnml.cli import app

pytest.importorskip("qiskit")
runner = CliRunner()


def run(*args: Any) -> Result:
    return runner.invoke(app, [str(a) for a in args])


def ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    return result


@pytest.fixture(scope="module")
def unitary_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("q") / "u.tnml"
    ok(
        run(
            "train", "digits", "--model", "mps", "--unitary", "--bond-dim", "16",
            "--downsample", "4", "--epochs", "1", "--quiet", "--out", out,
        )
    )  # fmt: skip
    return out


def test_compile_qasm3_and_qiskit(unitary_model, tmp_path):
    qasm = tmp_path / "c.qasm"
    result = ok(run("compile", unitary_model, "--schedule", "efficient", "--out", qasm))
    assert "5 qubits" in result.output  # log2(16) + 1 whatever the 16 inputs
    text = qasm.read_text()
    assert text.startswith("OPENQASM 3")
    assert "input float[64]" in text and "reset" in text and "measure" in text
    qpy_path = tmp_path / "c.qpy"
    ok(run("compile", unitary_model, "--format", "qiskit", "--out", qpy_path))
    from qiskit import qpy

    with open(qpy_path, "rb") as handle:
        (qc,) = qpy.load(handle)
    assert qc.num_qubits == 16 + 4 and qc.num_parameters == 16


@pytest.fixture(scope="module")
def circuit_models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two circuit classifiers on 4x4 digits, with one and with two blocks per pixel."""
    folder = tmp_path_factory.mktemp("n")
    paths = folder / "one.tnml", folder / "two.tnml"
    for path, blocks in zip(paths, ("1", "2"), strict=True):
        ok(
            run(
                "train", "digits", "--model", "circuit", "--n-qubits", "4",
                "--blocks-per-feature", blocks, "--downsample", "4", "--epochs", "1", "--quiet",
                "--out", path,
            )
        )  # fmt: skip
    return paths


def test_noise_study_writes_table_plot_and_json(circuit_models, tmp_path):
    native, tree = circuit_models
    out = tmp_path / "noise"
    result = ok(
        run(
            "noise-study", native, "--also", tree, "--levels", "1e-3,1", "--n-samples", "40",
            "--out", out,
        )
    )  # fmt: skip
    assert "noiseless" in result.output and "CX" in result.output
    report = json.loads((out / "noise.json").read_text())
    first, second = report["models"]
    assert [r["level"] for r in first["rows"]] == [0.0, 1e-3, 1.0]
    assert first["n_samples"] == second["n_samples"] == 40
    assert first["two_qubit_gates"] == 2 * 16  # one block (2 CX) per pixel
    assert second["two_qubit_gates"] == 2 * 32
    # every native gate fully depolarised: the label is a guess among 10 classes
    assert first["rows"][-1]["accuracy"] < 0.35
    assert (out / "noise.png").stat().st_size > 0


def test_native_compile_on_a_device(circuit_models, tmp_path):
    from tnml.quantum.targets import heavy_hex_target

    native, _ = circuit_models
    qasm = tmp_path / "n.qasm"
    result = ok(
        run("compile", native, "--native", "--target", "heavy-hex", "--max-2q", "40", "--out", qasm)
    )
    assert "two-qubit gates 32" in result.output and "heavy-hex" in result.output
    text = qasm.read_text()
    assert "qubit[127]" in text
    device = heavy_hex_target()
    pairs = [
        tuple(int(q) for q in re.findall(r"q\[(\d+)\]", line))
        for line in text.splitlines()
        if line.strip().startswith("cx ")
    ]
    assert len(pairs) == 32 and all(device.is_coupled(a, b) for a, b in pairs)
    for args, message in (
        (["--native", "--target", "torus"], "target must be one of"),
        (["--native", "--max-2q", "10"], "max_two_qubit_gates=10 is too small"),
        (["--target", "line"], "--target needs --native"),
    ):
        result = run("compile", native, *args, "--out", tmp_path / "x.qasm")
        assert result.exit_code == 2 and message in result.stderr, result.output
        assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) == 1


def test_native_born_machine_circuit(tmp_path):
    born = tmp_path / "born.tnml"
    ok(
        run(
            "train", "digits", "--model", "mps-born", "--bond-dim", "4", "--downsample", "4",
            "--epochs", "1", "--quiet", "--out", born,
        )
    )  # fmt: skip
    result = ok(
        run("compile", born, "--native", "--target", "heavy-hex", "--layers", "2", "--out",
            tmp_path / "b.qasm")
    )  # fmt: skip
    assert "2 staircase layer(s), fidelity to the model" in result.output
    assert "two-qubit gates 60" in result.output  # 2 layers x 15 blocks x 2 CX
    result = ok(
        run("compile", born, "--native", "--window", "3", "--layers", "2", "--out",
            tmp_path / "w.qasm")
    )  # fmt: skip
    assert "2 brick layer(s) in windows of 3 qubits, fidelity" in result.output
    assert "two-qubit gates 56" in result.output  # 14 windows x 2 layers x 1 block x 2 CX
    result = run("compile", born, "--window", "3", "--out", tmp_path / "x.qasm")
    assert result.exit_code == 2 and "--window needs --native" in result.stderr


def test_born_machine_circuit(tmp_path):
    born = tmp_path / "born.tnml"
    ok(
        run(
            "train", "digits", "--model", "mps-born", "--unitary", "--bond-dim", "4",
            "--downsample", "4", "--epochs", "1", "--quiet", "--out", born,
        )
    )  # fmt: skip
    result = ok(run("compile", born, "--schedule", "efficient", "--out", tmp_path / "b.qasm"))
    assert "3 qubits" in result.output and "sample" in result.output


def test_quantum_commands_reject_bad_input(unitary_model, tmp_path):
    plain = tmp_path / "plain.tnml"
    ok(run("train", "digits", "--downsample", "4", "--epochs", "1", "--quiet", "--out", plain))
    result = run("compile", plain)
    assert result.exit_code == 2 and "unitary" in result.stderr
    result = run("compile", unitary_model, "--basis", "foo,bar", "--out", tmp_path / "x.qasm")
    assert result.exit_code == 2 and "basis_gates" in result.stderr
    assert "Traceback" not in result.output
    # options of the Born machines' native compilation, given where they do nothing
    result = run(
        "compile", unitary_model, "--native", "--layers", "3", "--out", tmp_path / "l.qasm"
    )
    assert result.exit_code == 2 and "--layers applies to Born machines" in result.stderr
    result = run(
        "compile", unitary_model, "--native", "--window", "5", "--out", tmp_path / "w.qasm"
    )
    assert result.exit_code == 2 and "--window applies to Born machines" in result.stderr
    result = run("compile", unitary_model, "--min-fidelity", "0.5", "--out", tmp_path / "m.qasm")
    assert result.exit_code == 2 and "--min-fidelity needs --native" in result.stderr
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    for command in (["noise-study", unitary_model], ["explain", unitary_model],
                    ["structure", a_file], ["compress", a_file]):  # fmt: skip
        result = run(*command, "--out", a_file)
        assert result.exit_code == 2 and "is a file; give a folder" in result.stderr
    result = run("noise-study", unitary_model, "--levels", "2")
    assert result.exit_code == 2 and "--levels" in result.stderr
    result = run("noise-study", unitary_model, "--noise", "cosmic")
    assert result.exit_code == 2 and "--noise" in result.stderr
    result = run("train", "digits", "--model", "ttn-born", "--unitary", "--out", tmp_path / "b")
    assert result.exit_code == 2 and "--unitary" in result.stderr


def test_noise_study_refuses_models_scored_on_different_data(unitary_model, tmp_path):
    other = tmp_path / "other.tnml"
    ok(
        run(
            "train", "digits", "--model", "mps", "--unitary", "--bond-dim", "16",
            "--downsample", "4", "--epochs", "1", "--quiet", "--test-fraction", "0.5",
            "--seed", "3", "--out", other,
        )
    )  # fmt: skip
    result = run("noise-study", unitary_model, "--also", other, "--levels", "1e-2",
                 "--n-samples", "5", "--out", tmp_path / "ns")  # fmt: skip
    assert result.exit_code == 2 and "same data" in result.stderr
    assert "test fraction 0.5, seed 3" in result.stderr
    assert not (tmp_path / "ns").exists()


def test_circuit_model_options_are_checked(tmp_path):
    out = tmp_path / "x.tnml"
    result = run("train", "digits", "--model", "circuit", "--bond-dim", "4", "--out", out)
    assert result.exit_code == 2 and "--bond-dim applies to" in result.stderr
    result = run("train", "digits", "--model", "mps", "--n-qubits", "4", "--out", out)
    assert result.exit_code == 2 and "--n-qubits applies to --model circuit" in result.stderr
    result = run("train", "digits", "--model", "circuit", "--n-qubits", "3", "--out", out)
    assert result.exit_code == 2 and "n_qubits" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_noise_study_on_a_csv_names_its_label_column_option(tmp_path):
    """``--target`` is the device in noise-study, so a CSV's label column is --label-column."""
    model = tmp_path / "iris.tnml"
    iris = Path(__file__).resolve().parents[1] / "examples" / "iris.csv"
    ok(
        run(
            "train", "csv", iris, "--target", "species", "--model", "circuit",
            "--n-qubits", "4", "--epochs", "1", "--quiet", "--out", model,
        )
    )  # fmt: skip
    out = tmp_path / "noise"
    # a model trained on the CSV remembers its label column
    ok(run("noise-study", model, "csv", iris, "--levels", "1e-2", "--out", out))
    assert json.loads((out / "noise.json").read_text())["models"][0]["n_samples"] > 0
    # a model that does not record one (trained on digits) needs the option, named in the error
    digits_model = tmp_path / "digits.tnml"
    ok(
        run(
            "train", "digits", "--model", "circuit", "--n-qubits", "4", "--downsample", "2",
            "--epochs", "1", "--quiet", "--out", digits_model,
        )
    )  # fmt: skip
    table = tmp_path / "digits4.csv"
    lines = [",".join([f"p{j}" for j in range(4)] + ["label"])]
    lines += [",".join(["0.5"] * 4 + [str(k % 10)]) for k in range(20)]
    table.write_text("\n".join(lines) + "\n")
    failed = run("noise-study", digits_model, "csv", table, "--levels", "1e-2", "--out", out)
    assert failed.exit_code == 2 and "--label-column COL" in failed.output
    ok(
        run(
            "noise-study", digits_model, "csv", table, "--label-column", "label",
            "--target", "heavy-hex", "--levels", "1e-2", "--out", out,
        )
    )  # fmt: skip
