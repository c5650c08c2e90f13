"""Tests of tnml.features: local feature maps, embed's checks, the sklearn transformer."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler

from tnml.exceptions import InvalidInputError
from tnml.features import (
    FEATURE_MAPS,
    FeatureMap,
    embed,
    get_feature_map,
    linear,
    one_hot,
    trig,
)

unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


def test_trig_dim2_matches_formula() -> None:
    x = torch.rand(4, 7, dtype=torch.float64)
    phi = trig(x)
    assert phi.shape == (4, 7, 2)
    assert torch.allclose(phi[..., 0], torch.cos(math.pi * x / 2))
    assert torch.allclose(phi[..., 1], torch.sin(math.pi * x / 2))


def test_trig_endpoints_are_basis_states() -> None:
    phi = trig(torch.tensor([0.0, 1.0], dtype=torch.float64), dim=4)
    assert torch.allclose(phi[0], torch.tensor([1.0, 0, 0, 0], dtype=torch.float64))
    assert torch.allclose(phi[1], torch.tensor([0.0, 0, 0, 1], dtype=torch.float64), atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(xs=st.lists(unit, min_size=1, max_size=5), dim=st.integers(2, 6))
def test_trig_unit_norm(xs: list[float], dim: int) -> None:
    x = torch.tensor(xs, dtype=torch.float64)
    phi = trig(x, dim=dim)
    assert phi.shape == (len(xs), dim)
    assert torch.allclose(phi.norm(dim=-1), torch.ones(len(xs), dtype=torch.float64))


@settings(max_examples=30, deadline=None)
@given(xs=st.lists(unit, min_size=1, max_size=5), dim=st.integers(2, 6))
def test_trig_general_formula(xs: list[float], dim: int) -> None:
    x = torch.tensor(xs, dtype=torch.float64)
    phi = trig(x, dim=dim)
    for i, v in enumerate(xs):
        c, s = math.cos(math.pi * v / 2), math.sin(math.pi * v / 2)
        for k in range(dim):
            expected = math.sqrt(math.comb(dim - 1, k)) * c ** (dim - 1 - k) * s**k
            assert phi[i, k].item() == pytest.approx(expected, abs=1e-12)


def test_trig_follows_dtype_and_works_in_float32() -> None:
    x = torch.rand(3, 5)
    assert trig(x).dtype == torch.float32
    assert trig(x, dim=3).dtype == torch.float32
    assert trig(x.double(), dim=3).dtype == torch.float64


def test_trig_bad_dim() -> None:
    with pytest.raises(InvalidInputError, match="dim"):
        trig(torch.rand(2), dim=1)


def test_linear() -> None:
    x = torch.tensor([[0.0, 0.25, 1.0]])
    phi = linear(x)
    assert phi.shape == (1, 3, 2)
    assert torch.equal(phi[..., 0], 1 - x)
    assert torch.equal(phi[..., 1], x)
    with pytest.raises(InvalidInputError, match="dim"):
        linear(x, dim=3)


def test_one_hot_round_trip() -> None:
    codes = torch.randint(0, 5, (6, 4))
    phi = one_hot(codes, 5)
    assert phi.shape == (6, 4, 5)
    assert phi.dtype == torch.get_default_dtype()
    assert torch.equal(phi.argmax(dim=-1), codes)
    assert torch.equal(phi.sum(dim=-1), torch.ones(6, 4))
    assert one_hot(codes, 5, dtype=torch.float64).dtype == torch.float64
    assert torch.equal(one_hot(codes.double(), 5), phi)


@pytest.mark.parametrize("bad", [[0, 5], [-1, 0]])
def test_one_hot_out_of_range(bad: list[int]) -> None:
    with pytest.raises(InvalidInputError, match=r"n_categories=5"):
        one_hot(torch.tensor(bad), 5)


def test_one_hot_non_integral_floats() -> None:
    with pytest.raises(InvalidInputError, match="integer category codes"):
        one_hot(torch.tensor([0.5]), 3)


def test_registry() -> None:
    assert set(FEATURE_MAPS) == {"trig", "linear"}
    assert get_feature_map("trig") is trig
    with pytest.raises(InvalidInputError, match="'trig'") as info:
        get_feature_map("fourier")
    assert "'linear'" in str(info.value) and "fourier" in str(info.value)


def test_embed_default_is_trig() -> None:
    x = torch.rand(8, 3)
    assert torch.equal(embed(x), trig(x))
    assert torch.equal(embed(x, "linear"), linear(x))
    assert torch.equal(embed(x, dim=3), trig(x, 3))


@pytest.mark.parametrize(
    ("value", "fragment"),
    [(float("nan"), "NaN"), (float("inf"), "inf"), (1.5, "1.5"), (-0.2, "-0.2")],
)
def test_embed_rejects_bad_values(value: float, fragment: str) -> None:
    x = torch.full((3, 4), 0.5)
    x[1, 2] = value
    with pytest.raises(InvalidInputError) as info:
        embed(x)
    message = str(info.value)
    assert "X" in message and fragment in message
    if fragment not in ("NaN", "inf"):
        assert "[0, 1]" in message
    else:
        assert "(1, 2)" in message


def test_embed_clamps_rounding_noise() -> None:
    x = torch.tensor([1 + 1e-7, -1e-7, 0.5], dtype=torch.float64)
    phi = embed(x)
    assert torch.allclose(phi, trig(torch.tensor([1.0, 0.0, 0.5], dtype=torch.float64)))
    assert torch.equal(embed(x, "linear")[0], torch.tensor([0.0, 1.0], dtype=torch.float64))


def test_embed_check_false_skips_validation() -> None:
    x = torch.tensor([1.5])
    assert torch.allclose(embed(x, check=False), trig(x))


def test_embed_rejects_non_float_and_non_tensor() -> None:
    with pytest.raises(InvalidInputError, match="floating"):
        embed(torch.tensor([0, 1]))
    with pytest.raises(InvalidInputError, match=r"torch\.Tensor"):
        embed(np.zeros(3))  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="feature_map"):
        embed(torch.rand(3), "nope")


def test_embed_keeps_gradient() -> None:
    x = torch.rand(2, 3, requires_grad=True)
    embed(x, dim=3).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


def test_feature_map_transformer() -> None:
    X = np.random.default_rng(0).random((10, 6))
    fm = FeatureMap(dim=3)
    out = fm.fit_transform(X)
    assert fm.n_features_in_ == 6
    assert isinstance(out, np.ndarray) and out.shape == (10, 6, 3)
    np.testing.assert_allclose(out, trig(torch.from_numpy(X), 3).numpy())
    assert FeatureMap().fit(X.astype(np.float32)).transform(X.astype(np.float32)).dtype == (
        np.float32
    )
    assert clone(fm).get_params() == {"feature_map": "trig", "dim": 3}
    with pytest.raises(ValueError, match="features"):
        fm.transform(X[:, :4])


def test_feature_map_transformer_in_pipeline_and_errors() -> None:
    X = np.random.default_rng(1).normal(size=(5, 3)) * 10
    out = make_pipeline(MinMaxScaler(), FeatureMap("linear")).fit_transform(X)
    assert out.shape == (5, 3, 2)
    with pytest.raises(InvalidInputError, match=r"\[0, 1\]"):
        FeatureMap().fit_transform(X)
    with pytest.raises(InvalidInputError, match="feature_map"):
        FeatureMap("bogus").fit(X)
    with pytest.raises(InvalidInputError, match="dim"):
        FeatureMap("linear", dim=3).fit(X)
