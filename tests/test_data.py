"""Tests of tnml.data: IDX files, MNIST and digits loaders, CSV/NPZ loading, preprocessing."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tnml.data import (
    check_array_2d,
    downsample,
    find_mnist_dir,
    flatten_images,
    load_csv,
    load_digits,
    load_mnist,
    load_npz,
    pad_to,
    read_idx,
    read_idx_header,
    scale_unit,
    train_val_split,
    write_idx,
)
from tnml.exceptions import DataFileError, InvalidInputError

# ----------------------------------------------------------------------------- IDX

IDX_DTYPES = ["uint8", "int8", ">i2", "<i4", "float32", ">f8"]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    array=hnp.arrays(
        dtype=st.sampled_from(IDX_DTYPES).map(np.dtype),
        shape=hnp.array_shapes(min_dims=1, max_dims=4, min_side=0, max_side=5),
    ),
    gz=st.booleans(),
)
def test_idx_round_trip(tmp_path: Path, array: np.ndarray, gz: bool) -> None:
    path = tmp_path / ("a.idx.gz" if gz else "a.idx")
    write_idx(path, array)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == gz
    back = read_idx(path)
    assert back.shape == array.shape
    assert back.dtype == array.dtype.newbyteorder("=")
    assert back.dtype.isnative and back.flags.writeable
    np.testing.assert_array_equal(back, array)
    assert read_idx_header(path) == (back.dtype, array.shape)


def test_idx_header_bytes_follow_the_spec(tmp_path: Path) -> None:
    path = tmp_path / "x.idx"
    write_idx(path, np.arange(6, dtype=np.int16).reshape(2, 3))
    raw = path.read_bytes()
    assert raw[:4] == bytes([0, 0, 0x0B, 2])
    assert raw[4:12] == (2).to_bytes(4, "big") + (3).to_bytes(4, "big")
    assert raw[12:] == b"".join(v.to_bytes(2, "big") for v in range(6))


def test_idx_gzip_detected_by_content_not_suffix(tmp_path: Path) -> None:
    plain = tmp_path / "plain.idx"
    write_idx(plain, np.arange(10, dtype=np.uint8))
    disguised = tmp_path / "no-suffix"
    disguised.write_bytes(gzip.compress(plain.read_bytes()))
    np.testing.assert_array_equal(read_idx(disguised), np.arange(10))


@pytest.mark.parametrize("gz", [False, True])
def test_idx_truncated(tmp_path: Path, gz: bool) -> None:
    path = tmp_path / "a.idx"
    write_idx(path, np.zeros((4, 5), dtype=np.float32))
    raw = path.read_bytes()[:-3]
    path.write_bytes(gzip.compress(raw) if gz else raw)
    with pytest.raises(DataFileError, match="truncated"):
        read_idx(path)


def test_idx_truncated_gzip_stream(tmp_path: Path) -> None:
    path = tmp_path / "a.idx.gz"
    write_idx(path, np.arange(1000, dtype=np.int32))
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(DataFileError, match=r"a\.idx\.gz"):
        read_idx(path)


def test_idx_trailing_bytes(tmp_path: Path) -> None:
    path = tmp_path / "a.idx"
    write_idx(path, np.zeros(3, dtype=np.uint8))
    path.write_bytes(path.read_bytes() + b"\x00")
    with pytest.raises(DataFileError, match="trailing"):
        read_idx(path)


@pytest.mark.parametrize(
    ("header", "fragment"),
    [(b"\x01\x00\x08\x01", "magic"), (b"\x00\x00\x07\x01", "type code"), (b"", "magic")],
)
def test_idx_bad_header(tmp_path: Path, header: bytes, fragment: str) -> None:
    path = tmp_path / "bad.idx"
    path.write_bytes(header + (b"\x00\x00\x00\x01\x05" if header else b""))
    with pytest.raises(DataFileError, match=fragment):
        read_idx(path)


def test_idx_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match=r"nope\.idx"):
        read_idx(tmp_path / "nope.idx")
    with pytest.raises(FileNotFoundError):  # DataFileError is a FileNotFoundError
        read_idx(tmp_path / "nope.idx")


def test_write_idx_rejects_unsupported_dtype(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="int64"):
        write_idx(tmp_path / "a.idx", np.zeros(3, dtype=np.int64))


# ----------------------------------------------------------------------------- MNIST


def _write_fake_mnist(directory: Path, split: str, n: int, *, gz: bool, dotted: bool = False):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    images[0, 0, 0], images[0, 0, 1] = 0, 255
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    prefix = "train" if split == "train" else "t10k"
    sep = "." if dotted else "-"
    suffix = ".gz" if gz else ""
    write_idx(directory / f"{prefix}-images{sep}idx3-ubyte{suffix}", images)
    write_idx(directory / f"{prefix}-labels{sep}idx1-ubyte{suffix}", labels)
    return images, labels


@pytest.mark.parametrize(
    ("split", "gz", "dotted"),
    [("train", True, False), ("test", False, False), ("train", False, True)],
)
def test_load_mnist_fixture(tmp_path: Path, split: str, gz: bool, dotted: bool) -> None:
    images, labels = _write_fake_mnist(tmp_path, split, 7, gz=gz, dotted=dotted)
    X, y = load_mnist(tmp_path, split)
    assert X.shape == (7, 28, 28) and X.dtype == np.float32
    assert y.shape == (7,) and y.dtype == np.int64
    assert X.min() == 0.0 and X.max() == 1.0
    np.testing.assert_allclose(X, images / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(y, labels)


def test_load_mnist_errors(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="train-images-idx3-ubyte") as info:
        load_mnist(tmp_path / "missing")
    assert "missing" in str(info.value)
    with pytest.raises(DataFileError, match="t10k-images-idx3-ubyte") as info:
        load_mnist(tmp_path, "test")
    assert str(tmp_path) in str(info.value)
    with pytest.raises(InvalidInputError, match="split"):
        load_mnist(tmp_path, "validation")
    _write_fake_mnist(tmp_path, "train", 5, gz=True)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(4, dtype=np.uint8))
    with pytest.raises(DataFileError, match=r"5 images but .* 4 labels"):
        load_mnist(tmp_path, "train")


def test_find_mnist_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert find_mnist_dir([tmp_path / "a", tmp_path]) == tmp_path.resolve()
    assert find_mnist_dir([tmp_path / "a"]) is None
    monkeypatch.setenv("TNML_MNIST_DIR", str(tmp_path))
    assert find_mnist_dir() == tmp_path.resolve()


def test_load_mnist_real_data() -> None:
    directory = find_mnist_dir()
    if directory is None:
        pytest.skip("MNIST not found (set TNML_MNIST_DIR or place it in ../shared/data/mnist)")
    # The train split is checked through its headers only, to keep the test fast.
    for name, shape in [
        ("train-images-idx3-ubyte.gz", (60000, 28, 28)),
        ("train-labels-idx1-ubyte.gz", (60000,)),
    ]:
        if (directory / name).exists():
            assert read_idx_header(directory / name) == (np.dtype(np.uint8), shape)
    images, labels = load_mnist(directory, "test")
    assert images.shape == (10000, 28, 28) and images.dtype == np.float32
    assert labels.shape == (10000,) and labels.dtype == np.int64
    assert images.min() == 0.0 and images.max() == 1.0
    assert set(np.unique(labels).tolist()) == set(range(10))


def test_load_digits() -> None:
    images, labels = load_digits()
    assert images.shape == (1797, 8, 8) and images.dtype == np.float32
    assert labels.shape == (1797,) and labels.dtype == np.int64
    assert images.min() == 0.0 and images.max() == 1.0
    assert set(labels.tolist()) == set(range(10))


# ----------------------------------------------------------------------------- preprocess


def test_downsample_matches_hand_loop() -> None:
    images = np.random.default_rng(0).random((3, 8, 8))
    out = downsample(images, 4)
    expected = np.empty((3, 4, 4))
    for n in range(3):
        for i in range(4):
            for j in range(4):
                expected[n, i, j] = images[n, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2].mean()
    np.testing.assert_allclose(out, expected)
    np.testing.assert_allclose(out.mean(axis=(1, 2)), images.mean(axis=(1, 2)))


def test_downsample_shapes_and_dtypes() -> None:
    images = np.random.default_rng(1).random((2, 28, 28)).astype(np.float32)
    for size in (14, 7, 4, 1, 28):
        out = downsample(images, size)
        assert out.shape == (2, size, size) and out.dtype == np.float32
        np.testing.assert_allclose(out.mean(axis=(1, 2)), images.mean(axis=(1, 2)), rtol=1e-5)
    assert downsample(images, (14, 4)).shape == (2, 14, 4)
    assert downsample(np.ones((1, 4, 4), dtype=np.uint8), 2).dtype == np.float64


@pytest.mark.parametrize("size", [5, 3, 0, (14, 5), 56])
def test_downsample_bad_size(size: object) -> None:
    with pytest.raises(InvalidInputError, match="size"):
        downsample(np.zeros((1, 28, 28)), size)  # type: ignore[arg-type]


def test_downsample_bad_size_lists_divisors() -> None:
    with pytest.raises(InvalidInputError, match="1, 2, 4, 7, 14, 28"):
        downsample(np.zeros((1, 28, 28)), 5)


def test_downsample_rejects_flat_images() -> None:
    with pytest.raises(InvalidInputError, match="images"):
        downsample(np.zeros((5, 784)), 14)


def test_pad_to() -> None:
    images = np.ones((2, 28, 28), dtype=np.float32)
    out = pad_to(images, 32)
    assert out.shape == (2, 32, 32) and out.dtype == np.float32
    assert out.sum() == images.sum()
    np.testing.assert_array_equal(out[:, 2:30, 2:30], images)
    odd = pad_to(np.ones((1, 3, 3)), (4, 6))
    assert odd.shape == (1, 4, 6)
    np.testing.assert_array_equal(odd[0, :3, 1:4], 1.0)
    with pytest.raises(InvalidInputError, match="size"):
        pad_to(images, 14)


def test_flatten_images() -> None:
    images = np.arange(24).reshape(2, 3, 4)
    flat = flatten_images(images)
    assert flat.shape == (2, 12)
    np.testing.assert_array_equal(flat[1], images[1].ravel())


def test_scale_unit() -> None:
    X = np.array([[0.0, 5.0, -1.0], [2.0, 5.0, 1.0], [1.0, 5.0, 0.0]])
    Xs, lo, hi = scale_unit(X)
    np.testing.assert_allclose(Xs, [[0, 0, 0], [1, 0, 1], [0.5, 0, 0.5]])
    np.testing.assert_array_equal(lo, [0, 5, -1])
    np.testing.assert_array_equal(hi, [2, 5, 1])
    new, _, _ = scale_unit(np.array([[4.0, 7.0, -3.0]]), lo, hi)
    np.testing.assert_allclose(new, [[1, 0, 0]])  # clipped; constant column -> 0
    assert scale_unit(X.astype(np.float32))[0].dtype == np.float32
    with pytest.raises(InvalidInputError, match="data_max"):
        scale_unit(X, data_min=lo)
    with pytest.raises(InvalidInputError, match="data_min"):
        scale_unit(X, data_min=lo[:2], data_max=hi[:2])


def test_check_array_2d() -> None:
    assert check_array_2d([[1, 2]]).dtype == np.float64
    with pytest.raises(InvalidInputError, match=r"X must be 2D.*\(2, 2, 2\)"):
        check_array_2d(np.zeros((2, 2, 2)))
    bad = np.zeros((4, 9))
    bad[3, 7] = np.nan
    with pytest.raises(InvalidInputError, match="X contains NaN at row 3, column 7"):
        check_array_2d(bad)
    with pytest.raises(InvalidInputError, match="Z must be a numeric"):
        check_array_2d([["a"]], name="Z")


def test_train_val_split_stratified() -> None:
    y = np.repeat([0, 1, 2], [500, 300, 200])
    X = np.arange(len(y))[:, None] * np.ones((1, 3))
    X_tr, X_val, y_tr, y_val = train_val_split(X, y, 0.2, random_state=3)
    assert len(X_val) == 200 and len(X_tr) == 800
    np.testing.assert_array_equal(np.bincount(y_val), [100, 60, 40])
    np.testing.assert_array_equal(np.bincount(y_tr), [400, 240, 160])
    ids_tr, ids_val = X_tr[:, 0].astype(int), X_val[:, 0].astype(int)
    assert not set(ids_tr) & set(ids_val)
    assert set(ids_tr) | set(ids_val) == set(range(1000))
    np.testing.assert_array_equal(y[ids_val], y_val)  # rows stay paired with labels
    again = train_val_split(X, y, 0.2, random_state=3)
    np.testing.assert_array_equal(again[1], X_val)
    other = train_val_split(X, y, 0.2, random_state=4)
    assert not np.array_equal(other[1], X_val)


def test_train_val_split_edge_cases() -> None:
    X, y = np.zeros((10, 2)), np.array([0, 1] * 5)
    X_tr, X_val, y_tr, y_val = train_val_split(X, y, 0.0)
    assert X_tr.shape == (10, 2) and X_val.shape == (0, 2) and y_val.shape == (0,)
    X_tr, X_val, y_tr, y_val = train_val_split(X, None, 0.3)
    assert X_val.shape == (3, 2) and y_tr is None and y_val is None
    for bad in (1.0, -0.1, 1.5):
        with pytest.raises(InvalidInputError, match="val_fraction"):
            train_val_split(X, y, bad)
    with pytest.raises(InvalidInputError, match="stratify=False"):
        train_val_split(X, np.array([0] * 9 + [1]), 0.3)
    with pytest.raises(InvalidInputError, match="length"):
        train_val_split(X, y[:5])


# ----------------------------------------------------------------------------- CSV / NPZ


def test_load_csv_numeric(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("a,label,b\n1.5,0,2\n-3,1,4e-1\n\n0,2,7\n")
    X, y, names = load_csv(path, target="label")
    assert names == ["a", "b"]
    assert X.dtype == np.float64
    np.testing.assert_array_equal(X, [[1.5, 2], [-3, 0.4], [0, 7]])
    assert y.dtype == np.int64
    np.testing.assert_array_equal(y, [0, 1, 2])


def test_load_csv_string_and_float_targets(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("x;species\n1;setosa\n2; virginica\n")
    _, y, _ = load_csv(path, "species", delimiter=";")
    assert y.tolist() == ["setosa", "virginica"]
    path.write_text("x,t\n1,0.5\n2,1.0\n")
    assert load_csv(path, "t")[1].dtype == np.float64


def test_load_csv_missing_target(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(
        InvalidInputError, match=re.escape("'label' not found in data.csv; columns are: a, b, c")
    ):
        load_csv(path, "label")


@pytest.mark.parametrize("cell", ["", "nan", "NA"])
def test_load_csv_missing_value(tmp_path: Path, cell: str) -> None:
    path = tmp_path / "data.csv"
    path.write_text(f"a,b,y\n1,2,0\n3,{cell},1\n")
    with pytest.raises(InvalidInputError, match=r"missing values.*'b'.*row 2"):
        load_csv(path, "y")


def test_load_csv_non_numeric(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("a,b,y\n1,2,0\nred,3,1\n")
    with pytest.raises(InvalidInputError, match=r"'a' holds 'red' at row 2 \(line 3\)"):
        load_csv(path, "y")


def test_load_csv_ragged_and_empty(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text("a,b,y\n1,2\n")
    with pytest.raises(InvalidInputError, match="row 1"):
        load_csv(path, "y")
    path.write_text("")
    with pytest.raises(DataFileError, match="empty"):
        load_csv(path, "y")


def test_load_csv_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match=r"nope\.csv"):
        load_csv(tmp_path / "nope.csv", "y")


def test_load_npz(tmp_path: Path) -> None:
    X, y = np.arange(12.0).reshape(4, 3), np.array([0, 1, 0, 1])
    np.savez(tmp_path / "d.npz", X=X, y=y, other=X)
    X2, y2 = load_npz(tmp_path / "d.npz")
    np.testing.assert_array_equal(X2, X)
    np.testing.assert_array_equal(y2, y)
    assert load_npz(tmp_path / "d.npz", y_key=None)[1] is None
    with pytest.raises(
        InvalidInputError, match=re.escape("'labels' not found in d.npz; keys are: X, y, other")
    ):
        load_npz(tmp_path / "d.npz", y_key="labels")
    folder = tmp_path / "arrays"
    folder.mkdir()
    np.save(folder / "X.npy", X)
    np.save(folder / "y.npy", y)
    np.testing.assert_array_equal(load_npz(folder)[0], X)
    with pytest.raises(InvalidInputError, match="'target' not found"):
        load_npz(folder, y_key="target")
    with pytest.raises(DataFileError, match=r"missing\.npz"):
        load_npz(tmp_path / "missing.npz")
    np.savez(tmp_path / "bad.npz", X=X, y=y[:3])
    with pytest.raises(InvalidInputError, match="length"):
        load_npz(tmp_path / "bad.npz")


@settings(max_examples=30, deadline=None)
@given(hnp.arrays(np.float64, st.tuples(st.integers(2, 6), st.integers(1, 5)),
                  elements=st.floats(-1e3, 1e3, allow_nan=False)))  # fmt: skip
def test_a_csv_without_header_is_refused_not_shifted(tmp_path_factory, table) -> None:
    path = tmp_path_factory.mktemp("csv") / "no_header.csv"
    np.savetxt(path, table, delimiter=",", fmt="%.6g")
    first = [float(f"{v:.6g}") for v in table[0]]
    if first in (list(range(len(first))), list(range(1, len(first) + 1))):
        return  # names 0..n-1 / 1..n are a header by design
    with pytest.raises(InvalidInputError, match=r"first row of no_header\.csv holds numbers"):
        load_csv(path, target=None)


def test_integer_column_names_are_a_header(tmp_path: Path) -> None:
    path = tmp_path / "pandas.csv"
    path.write_text("0,1,2\n0.5,1,2\n3,4,5\n")  # pandas' names for unnamed columns
    X, _, names = load_csv(path, target=None)
    assert names == ["0", "1", "2"] and X.shape == (2, 3)


def test_text_columns_are_kept_as_categories_on_request(tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    path.write_text("a,kind,b\n1,red,0.5\n2,blue,1.5\n")
    with pytest.raises(InvalidInputError, match="'kind' holds 'red'"):
        load_csv(path, target=None)
    X, _, names = load_csv(path, target=None, text_columns=True)
    assert names == ["a", "kind", "b"] and X.dtype == object
    assert X[:, 1].tolist() == ["red", "blue"] and X[:, 0].tolist() == [1.0, 2.0]
    # a numeric column with a hole is still refused, by cell
    path.write_text("a,kind\n1,red\n,blue\n")
    with pytest.raises(InvalidInputError, match="'a' is empty or NaN at row 2"):
        load_csv(path, target=None, text_columns=True)
