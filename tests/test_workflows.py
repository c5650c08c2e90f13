"""tnml.workflows from Python: what ``tnml train`` does, without the command line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import tnml
from tnml.exceptions import InvalidInputError
from tnml.workflows.data import load_training_data
from tnml.workflows.train import TrainingOptions, first_samples, train_model


def test_train_model_saves_what_it_reports(tmp_path: Path) -> None:
    data = first_samples(load_training_data("digits", downsample=4, seed=1), 400)
    lines: list[str] = []
    options = TrainingOptions(
        model="mps",
        params={"bond_dim": 4, "epochs": 2, "random_state": 0},
        out=tmp_path / "m.tnml",
    )
    metadata = train_model(data, options, report=lines.append)
    model = tnml.io.load(tmp_path / "m.tnml")
    accuracy = model.score(data.X_test, data.y_test)
    assert metadata["test_accuracy"] == pytest.approx(accuracy)
    assert lines[0].startswith(f"test accuracy {accuracy:.4f} ({len(data.y_test)} samples")
    assert model.metadata_["preprocessing"] == {
        "kind": "image",
        "image_shape": [8, 8],
        "downsample": 4,
    }
    assert model.metadata_["split"]["n_train"] == 400
    assert not (tmp_path / "m.tnml.ckpt").exists()  # a finished run leaves no checkpoint


def test_born_machine_and_option_checks(tmp_path: Path) -> None:
    data = first_samples(load_training_data("digits", downsample=4), 200)
    options = TrainingOptions(
        model="mps-born", params={"max_bond": 4, "epochs": 1}, out=tmp_path / "b.tnml"
    )
    metadata = train_model(data, options, report=lambda line: None)
    born = tnml.io.load(tmp_path / "b.tnml")
    assert born.max_bond == 4 and born.history_[-1]["max_bond_dim"] <= 4  # the sweeps' cap
    binary = (data.X_test > 0.5).astype(np.int64)
    assert metadata["test_nll"] == pytest.approx(born.nll(binary))
    with pytest.raises(
        InvalidInputError, match="--unitary applies to --model mps, ttn or mps-born"
    ):
        train_model(data, TrainingOptions(model="ttn-born", unitary=True, out=tmp_path / "x"))
    with pytest.raises(InvalidInputError, match="--readout applies to classifiers"):
        train_model(data, TrainingOptions(model="mps-born", params={"readout": "born"}))


def test_options_take_string_paths_and_name_a_bad_model(tmp_path: Path) -> None:
    options = TrainingOptions(out=str(tmp_path / "m.tnml"), checkpoint=str(tmp_path / "c"))
    assert options.out == tmp_path / "m.tnml" and options.checkpoint == tmp_path / "c"
    with pytest.raises(InvalidInputError, match="model must be one of mps, ttn"):
        TrainingOptions(model="cnn")


def test_a_csv_run_records_its_file_digest_but_resumes_without_it(tmp_path: Path) -> None:
    from tnml.workflows.data import file_sha256
    from tnml.workflows.train import make_estimator, run_identity

    table = tmp_path / "t.csv"
    table.write_text("a,b,label\n" + "".join(f"{i % 3},{i % 5},{i % 2}\n" for i in range(40)))
    data = load_training_data("csv", table, target="label")
    assert data.metadata["source_sha256"] == file_sha256(table)
    # a checkpoint's record (written before the digest existed) must still match on --resume:
    # the digest of what was read is training_data_sha256 already
    identity = run_identity("mps", make_estimator("mps", {}), data, {})
    assert "source_sha256" not in identity["data"] and identity["training_data_sha256"]
