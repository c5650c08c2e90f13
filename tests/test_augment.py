"""Image augmentation: exact translations and rotations, seeded randomness, use in training."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import tnml
from tnml.exceptions import InvalidInputError
from tnml.nn import MPSClassifierModule
from tnml.train import RandomAffine, affine_images, train_classifier


def translate_exactly(image: np.ndarray, down: int, right: int) -> np.ndarray:
    """Independent reference: move the content, fill with zeros."""
    h, w = image.shape
    out = np.zeros_like(image)
    for i in range(h):
        for j in range(w):
            if 0 <= i - down < h and 0 <= j - right < w:
                out[i, j] = image[i - down, j - right]
    return out


@settings(max_examples=40, deadline=None)
@given(
    h=st.integers(2, 9),
    w=st.integers(2, 9),
    down=st.integers(-3, 3),
    right=st.integers(-3, 3),
    seed=st.integers(0, 1000),
)
def test_integer_shifts_are_exact_translations(h, w, down, right, seed):
    image = np.random.default_rng(seed).random((h, w))
    moved = affine_images(
        torch.as_tensor(image.reshape(1, -1)), (h, w), torch.tensor([[down, right]])
    )
    expected = translate_exactly(image, down, right)
    np.testing.assert_allclose(moved.reshape(h, w).numpy(), expected, atol=1e-12)


@pytest.mark.parametrize("shape", [(7, 7), (6, 6), (14, 14)])
def test_quarter_turns_equal_rot90(shape):
    images = torch.rand(3, *shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for quarter in (1, 2, 3):
        turned = affine_images(
            images.reshape(3, -1), shape, torch.zeros(3, 2), torch.full((3,), 90.0 * quarter)
        )
        # torch.rot90 with dims (0, 1) on (row, col) arrays turns counter-clockwise on screen
        expected = torch.rot90(images, quarter, dims=(1, 2))
        torch.testing.assert_close(turned.reshape(3, *shape), expected, rtol=0, atol=1e-12)


def test_identity_and_zoom_about_the_centre():
    X = torch.rand(4, 30, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    same = affine_images(X, (5, 6), torch.zeros(4, 2), torch.zeros(4), torch.ones(4))
    torch.testing.assert_close(same, X, rtol=0, atol=1e-12)
    # zoom 3 about the centre of a 9x9 image sends the pixel 1 right of centre 3 right
    image = torch.zeros(1, 9, 9, dtype=torch.float64)
    image[0, 4, 5] = 1.0
    zoomed = affine_images(
        image.reshape(1, -1), (9, 9), torch.zeros(1, 2), None, torch.tensor([3.0])
    )
    assert zoomed.reshape(9, 9)[4, 7] == pytest.approx(1.0)


def test_random_affine_is_seeded_bounded_and_keeps_dtype_and_shape():
    images = torch.zeros(200, 12, 12)
    images[:, 5:7, 5:7] = 1.0  # a 2x2 blob at the centre
    X = images.reshape(200, -1)
    augment = RandomAffine((12, 12), max_shift=2.0)
    a = augment(X, torch.Generator().manual_seed(3))
    b = augment(X, torch.Generator().manual_seed(3))
    c = augment(X, torch.Generator().manual_seed(4))
    assert a.shape == X.shape and a.dtype == X.dtype
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a, c)
    # mass is kept (the blob stays inside) and its centre moves by at most max_shift
    torch.testing.assert_close(a.sum(1), X.sum(1), rtol=0, atol=1e-5)
    rows = torch.arange(12.0).repeat_interleave(12)
    cols = torch.arange(12.0).repeat(12)
    centre_row = (a * rows).sum(1) / a.sum(1)
    centre_col = (a * cols).sum(1) / a.sum(1)
    assert (centre_row - 5.5).abs().max() <= 2.0 + 1e-5
    assert (centre_col - 5.5).abs().max() <= 2.0 + 1e-5
    assert (centre_col - 5.5).abs().max() > 1.0  # the range is used
    unchanged = RandomAffine((12, 12), max_shift=0.0)(X, torch.Generator().manual_seed(0))
    torch.testing.assert_close(unchanged, X, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"image_shape": (4,)}, "image_shape"),
        ({"image_shape": (4, 4), "max_shift": -1}, "max_shift"),
        ({"image_shape": (4, 4), "max_shift": 4}, "max_shift"),
        ({"image_shape": (4, 4), "max_rotation": 200}, "max_rotation"),
        ({"image_shape": (4, 4), "max_scale": 1.5}, "max_scale"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(InvalidInputError, match=message):
        RandomAffine(**kwargs)


def test_wrong_feature_count_is_reported_before_training():
    X = torch.rand(20, 6)
    y = (X[:, 0] > 0.5).long()
    with pytest.raises(InvalidInputError, match="3x3 images"):
        train_classifier(MPSClassifierModule(6, 2, 2), X, y, augment=RandomAffine((3, 3)))
    with pytest.raises(InvalidInputError, match="shape"):
        affine_images(X, (3, 3), torch.zeros(20, 2))


def test_classifier_fit_takes_augment_and_the_sweeps_refuse_it():
    X = np.random.default_rng(0).random((200, 6))
    y = (X[:, 0] + X[:, 3] > 1).astype(np.int64)
    clf = tnml.MPSClassifier(bond_dim=3, epochs=20, lr=1e-2, random_state=0)
    clf.fit(X, y, augment=RandomAffine((2, 3), 0.5))
    assert clf.score(X, y) > 0.8  # (the majority class is 53%)
    sweeps = tnml.MPSClassifier(bond_dim=2, trainer="sweep", epochs=1, random_state=0)
    with pytest.raises(InvalidInputError, match="augment"):
        sweeps.fit(X, y, augment=RandomAffine((2, 3), 0.5))
