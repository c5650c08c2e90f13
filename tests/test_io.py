"""Saving and loading fitted estimators: identical predictions, atomic writes, bad files."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from sklearn.datasets import load_digits

import tnml
import tnml.io
from tnml.exceptions import ModelFileError


@pytest.fixture(scope="module")
def fitted():
    X, y = load_digits(return_X_y=True)
    labels = np.array(
        ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    )[y]
    clf = tnml.MPSClassifier(bond_dim=4, epochs=2, random_state=0).fit(X[:300], labels[:300])
    return clf, X[300:400]


def test_round_trip_predicts_identically(fitted, tmp_path):
    clf, X = fitted
    path = tnml.io.save(clf, tmp_path / "m.tnml", metadata={"preprocessing": {"downsample": 4}})
    loaded = tnml.io.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))
    assert loaded.get_params() == clf.get_params()
    assert loaded.metadata_ == {"preprocessing": {"downsample": 4}}
    np.testing.assert_array_equal(loaded.data_min_, clf.data_min_)
    assert loaded.history_ == clf.history_
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # not mkstemp's private 0600
    header = tnml.io.read_header(path)
    assert header["tnml_version"] == tnml.__version__ and header["estimator"] == "MPSClassifier"


def test_crash_mid_save_keeps_the_old_file(fitted, tmp_path, monkeypatch):
    clf, _ = fitted
    path = tnml.io.save(clf, tmp_path / "m.tnml")
    before = path.read_bytes()

    def crash(tensors, filename, metadata=None):
        with open(filename, "wb") as handle:
            handle.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(tnml.io, "save_file", crash)
    with pytest.raises(OSError, match="disk full"):
        tnml.io.save(clf, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.tnml"]  # no temp file left


def test_bad_files(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        tnml.io.load(tmp_path / "missing.tnml")
    junk = tmp_path / "junk.tnml"
    junk.write_bytes(np.random.default_rng(0).bytes(300))
    with pytest.raises(ModelFileError, match="not a tnml model"):
        tnml.io.load(junk)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(ModelFileError, match="not written by tnml"):
        tnml.io.load(foreign)
    with pytest.raises(ModelFileError, match="fitted tnml estimator"):
        tnml.io.save(tnml.MPSClassifier(), tmp_path / "unfitted.tnml")


def saved_parts(clf, path) -> tuple[dict, dict]:
    """Save ``clf`` at ``path`` and read back the file's metadata and tensors."""
    from safetensors import safe_open

    tnml.io.save(clf, path)
    with safe_open(str(path), framework="pt") as handle:
        return handle.metadata(), {key: handle.get_tensor(key) for key in handle.keys()}


def test_edited_headers_are_refused_as_model_file_errors(fitted, tmp_path):
    import json

    meta, tensors = saved_parts(fitted[0], tmp_path / "model.tnml")
    header = json.loads(meta["tnml"])

    def with_header(name: str, value: object) -> object:
        edited = tmp_path / name
        save_file(tensors, str(edited), metadata={**meta, "tnml": json.dumps(value)})
        return edited

    with pytest.raises(ModelFileError, match="a JSON list, not an object"):
        tnml.io.load(with_header("list.tnml", [1, 2]))
    with pytest.raises(ModelFileError, match="a JSON list, not an object"):
        tnml.io.read_header(with_header("list.tnml", [1, 2]))
    for key, value in (("estimator", ["MPSClassifier"]), ("format_version", "2")):
        with pytest.raises(ModelFileError, match=f"'{key}' is a"):
            tnml.io.read_header(with_header("typed.tnml", {**header, key: value}))
    without_fitted = {k: v for k, v in header.items() if k != "fitted"}
    with pytest.raises(ModelFileError, match="inconsistent tnml model: KeyError: 'fitted'"):
        tnml.io.load(with_header("no_fitted.tnml", without_fitted))
    with pytest.raises(ModelFileError, match="inconsistent tnml model"):
        tnml.io.load(with_header("bad_fitted.tnml", {**header, "fitted": [1]}))


def test_damaged_weights_and_directories_are_refused(fitted, tmp_path):
    meta, tensors = saved_parts(fitted[0], tmp_path / "model.tnml")
    key = next(k for k in tensors if k.startswith("module.") and tensors[k].is_floating_point())
    tensors[key] = tensors[key].clone()
    tensors[key].view(-1)[0] = float("nan")
    damaged = tmp_path / "damaged.tnml"
    save_file(tensors, str(damaged), metadata=meta)
    with pytest.raises(ModelFileError, match=rf"damaged: tensor '{key}' holds NaN"):
        tnml.io.load(damaged)
    with pytest.raises(ModelFileError, match="is a directory"):
        tnml.io.load(tmp_path)


def test_a_changed_weight_is_refused_by_its_checksum(fitted, tmp_path):
    """A flipped bit in the weights loaded silently and changed predictions."""
    meta, tensors = saved_parts(fitted[0], tmp_path / "model.tnml")
    key = next(k for k in tensors if k.startswith("module.") and tensors[k].is_floating_point())
    tensors[key] = tensors[key].clone()
    tensors[key].view(-1)[0] = tensors[key].view(-1)[0] * 1.0001 + 1e-3
    changed = tmp_path / "changed.tnml"
    save_file(tensors, str(changed), metadata=meta)
    with pytest.raises(ModelFileError, match="SHA-256 mismatch"):
        tnml.io.load(changed)


def test_a_random_state_instance_is_saved_as_none(tmp_path):
    X, y = load_digits(return_X_y=True)
    clf = tnml.MPSClassifier(bond_dim=3, epochs=1, random_state=np.random.RandomState(0))
    clf.fit(X[:200], y[:200])
    loaded = tnml.io.load(tnml.io.save(clf, tmp_path / "model.tnml"))
    assert loaded.get_params()["random_state"] is None
    np.testing.assert_array_equal(loaded.predict_proba(X[200:260]), clf.predict_proba(X[200:260]))
