"""tnml.preprocessing: scikit-learn transformers checked against independent computations."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import tnml
from tnml.exceptions import InvalidInputError
from tnml.preprocessing import Binarizer, ImageDownsampler, UnitScaler


@parametrize_with_checks([UnitScaler(), Binarizer(), Binarizer(threshold=0.0)])
def test_sklearn_compatible(estimator, check):
    check(estimator)


def block_means_by_loops(images: np.ndarray, h: int, w: int) -> np.ndarray:
    n, H, W = images.shape
    bh, bw = H // h, W // w
    out = np.zeros((n, h, w))
    for i in range(h):
        for j in range(w):
            out[:, i, j] = images[:, i * bh : (i + 1) * bh, j * bw : (j + 1) * bw].mean(axis=(1, 2))
    return out


@pytest.mark.parametrize(("shape", "size"), [((8, 8), 4), ((6, 4), (3, 2)), ((6, 4), (6, 1))])
def test_downsampler_gives_block_means_from_flat_or_3d_images(shape, size) -> None:
    rng = np.random.default_rng(0)
    images = rng.random((5, *shape))
    h, w = (size, size) if isinstance(size, int) else size
    expected = block_means_by_loops(images, h, w).reshape(5, -1)
    flat = ImageDownsampler(size, image_shape=shape).fit_transform(images.reshape(5, -1))
    np.testing.assert_allclose(flat, expected, atol=1e-12)
    np.testing.assert_allclose(ImageDownsampler(size).fit_transform(images), expected, atol=1e-12)


def test_downsampler_guesses_square_images_and_names_its_outputs() -> None:
    X = np.arange(2 * 16, dtype=float).reshape(2, 16)
    down = ImageDownsampler(2).fit(X)
    assert down.image_shape_ == (4, 4)
    assert list(down.get_feature_names_out()) == [
        "pixel_0_0",
        "pixel_0_1",
        "pixel_1_0",
        "pixel_1_1",
    ]
    assert down.transform(X)[0].tolist() == [2.5, 4.5, 10.5, 12.5]


@pytest.mark.parametrize(
    ("kwargs", "X", "message"),
    [
        ({"size": 3}, np.zeros((2, 64)), "does not evenly divide the 8x8"),
        ({"size": 2}, np.zeros((2, 10)), "not a square number; pass image_shape"),
        ({"size": 2, "image_shape": (4, 4)}, np.zeros((2, 10)), "image_shape=(4, 4) means 16"),
        ({"size": (2, 0)}, np.zeros((2, 16)), "size must be a positive int"),
    ],
)
def test_downsampler_refuses_what_does_not_fit(kwargs, X, message) -> None:
    with pytest.raises(InvalidInputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ImageDownsampler(**kwargs).fit(X)


def test_downsampler_refuses_other_images_after_fit() -> None:
    down = ImageDownsampler(2).fit(np.zeros((1, 4, 4)))
    with pytest.raises(InvalidInputError, match="8x8 images; this downsampler was fitted on 4x4"):
        down.transform(np.zeros((1, 8, 8)))


def test_unit_scaler_matches_clipped_min_max_and_maps_constants_to_zero() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(50, 4)) * [1, 10, 1e-3, 0]
    X[:, 3] = 7.0
    X_new = rng.normal(size=(20, 4)) * 20
    scaler = UnitScaler().fit(X)
    reference = MinMaxScaler(clip=True).fit(X)
    # sklearn shifts a constant column by its value instead of sending it to 0
    np.testing.assert_allclose(
        scaler.transform(X_new)[:, :3], reference.transform(X_new)[:, :3], atol=1e-12
    )
    assert np.all(scaler.transform(X_new)[:, 3] == 0)


def test_unit_scaler_names_a_column_whose_range_overflows() -> None:
    frame = pd.DataFrame({"ok": [0.0, 1.0], "huge": [-1e308, 1e308]})
    with pytest.raises(InvalidInputError, match=r"feature huge spans .* overflows float64"):
        UnitScaler().fit(frame)


def test_binarizer_gives_integer_levels() -> None:
    X = np.array([[0.2, 0.5, 0.51], [1.0, 0.0, 0.7]])
    out = Binarizer(0.5).fit_transform(X)
    assert out.dtype == np.int64
    assert out.tolist() == [[0, 0, 1], [1, 0, 1]]


def test_pipeline_downsample_scale_classify_on_digits() -> None:
    X, y = load_digits(return_X_y=True)
    model = make_pipeline(
        ImageDownsampler(4, image_shape=(8, 8)),
        UnitScaler(),
        tnml.MPSClassifier(bond_dim=8, epochs=10, random_state=0),
    )
    scores = cross_val_score(model, X[:600], y[:600], cv=2)
    assert scores.mean() > 0.4  # chance is 0.1; 16 block means, 300 samples, 10 epochs


def test_born_machine_pipeline_on_binarised_digits() -> None:
    X, _ = load_digits(return_X_y=True)
    model = make_pipeline(
        ImageDownsampler(4, image_shape=(8, 8)),
        UnitScaler(),
        Binarizer(0.5),
        tnml.MPSBornMachine(bond_dim=4, epochs=2, random_state=0),
    )
    model.fit(X[:300])
    nll = -model.score_samples(X[300:400]).mean()
    assert 0 < nll < 16 * np.log(2)  # better than the uniform distribution on 16 bits
