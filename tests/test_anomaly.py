"""MPSAnomalyDetector: the outlier-detector face, mixed columns, and that it detects."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score
from sklearn.utils.estimator_checks import parametrize_with_checks

import tnml
from tnml.estimators.anomaly import UNSEEN_SCORE, MPSAnomalyDetector
from tnml.exceptions import InvalidInputError


def correlated_normal(n: int, seed: int = 0) -> np.ndarray:
    """Normal data: 8 numeric columns driven by one latent factor (strongly correlated)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, 1))
    return z + 0.3 * rng.normal(size=(n, 8))


@pytest.fixture(scope="module")
def detector():
    X = correlated_normal(600)
    return tnml.MPSAnomalyDetector(bond_dim=6, epochs=4, random_state=0).fit(X)


def test_scores_separate_anomalies_that_break_correlations(detector):
    normal = correlated_normal(300, seed=1)
    # anomalies: every column has the normal marginal, but half of them disagree in sign
    anomalies = correlated_normal(300, seed=3) * np.r_[np.ones(4), -np.ones(4)]
    scores = detector.score_samples(np.vstack([normal, anomalies]))
    labels = np.r_[np.zeros(300), np.ones(300)]
    auroc = roc_auc_score(labels, -scores)
    # where the latent factor is near 0 the flipped rows look normal: no detector is perfect
    # here; an IsolationForest, which sees mostly marginals, does far worse
    forest = IsolationForest(random_state=0).fit(correlated_normal(600))
    forest_auroc = roc_auc_score(labels, -forest.score_samples(np.vstack([normal, anomalies])))
    assert auroc > 0.85 and auroc > forest_auroc + 0.1, (auroc, forest_auroc)


def test_outlier_detector_face(detector):
    X = correlated_normal(600)
    scores = detector.score_samples(X)
    assert scores.shape == (600,)
    np.testing.assert_allclose(detector.decision_function(X), scores - detector.offset_)
    predicted = detector.predict(X)
    assert set(np.unique(predicted)) <= {-1, 1}
    # contamination=0.1 puts ~10% of the training data below the threshold
    assert abs((predicted == -1).mean() - 0.1) < 0.02
    assert (scores <= 1e-12).all()  # log-probabilities of product states


def test_mixed_numeric_and_categorical_columns():
    rng = np.random.default_rng(0)
    n = 500
    colour = rng.choice(["red", "green", "blue"], n)
    size = np.where(colour == "red", 10.0, 1.0) + rng.normal(scale=0.5, size=n)
    frame = pd.DataFrame({"colour": colour, "size": size, "weight": 2 * size})
    model = tnml.MPSAnomalyDetector(bond_dim=4, epochs=4, random_state=0).fit(frame)
    assert model.categories_[0].tolist() == ["blue", "green", "red"]
    assert model.scales_[0] is None and model.categories_[1] is None
    odd = pd.DataFrame(
        {"colour": ["red", "blue", "purple"], "size": [1.0, 10.0, 1.0], "weight": [2.0, 20.0, 2.0]}
    )
    usual = pd.DataFrame({"colour": ["red", "blue"], "size": [10.0, 1.0], "weight": [20.0, 2.0]})
    odd_scores = model.score_samples(odd)
    usual_scores = model.score_samples(usual)
    assert odd_scores[:2].max() < usual_scores.min()  # red-and-small is anomalous
    assert odd_scores[2] == UNSEEN_SCORE  # an unseen category
    assert model.predict(odd)[2] == -1


def test_bad_input_is_named(detector):
    with pytest.raises(InvalidInputError, match="NaN"):
        detector.score_samples(np.full((2, 8), np.nan))
    with pytest.raises(InvalidInputError, match="8"):
        detector.score_samples(np.zeros((2, 5)))
    with pytest.raises(InvalidInputError, match="categorical_features"):
        tnml.MPSAnomalyDetector(epochs=1, categorical_features=None).fit(
            np.array([["a", 1.0], ["b", 2.0]] * 5, dtype=object)
        )


def test_save_and_load_round_trip(detector, tmp_path):
    X = correlated_normal(50, seed=5)
    path = tnml.io.save(detector, tmp_path / "detector.tnml")
    loaded = tnml.io.load(path)
    np.testing.assert_allclose(loaded.score_samples(X), detector.score_samples(X), rtol=1e-12)
    np.testing.assert_array_equal(loaded.predict(X), detector.predict(X))
    assert loaded.offset_ == detector.offset_


def test_binned_scores_are_the_discrete_born_log_likelihood():
    rng = np.random.default_rng(0)
    X = (rng.random((300, 5)) < 0.3).astype(float)
    X[:, 1] = X[:, 0]
    for encoding in ("bins", "trig"):  # on 0/1 data the two encodings agree
        model = tnml.MPSAnomalyDetector(
            bond_dim=4, encoding=encoding, epochs=3, random_state=0
        ).fit(X)
        grid = np.array(list(itertools.product([0.0, 1.0], repeat=5)))
        assert abs(np.exp(model.score_samples(grid)).sum() - 1.0) < 1e-9


@parametrize_with_checks([MPSAnomalyDetector(bond_dim=4, epochs=2)])
def test_anomaly_detector_is_sklearn_compatible(estimator, check):
    check(estimator)


def test_warm_start_continues_with_the_first_fits_encoders():
    X = correlated_normal(300, seed=1)
    detector = tnml.MPSAnomalyDetector(bond_dim=4, epochs=1, warm_start=True, random_state=0)
    detector.fit(X)
    edges = [e.copy() for e in detector.bin_edges_]
    detector.fit(X[:150] * 3)  # other data: the encoders stay those of the first fit
    assert all(np.array_equal(a, b) for a, b in zip(edges, detector.bin_edges_, strict=True))
    cold = tnml.MPSAnomalyDetector(bond_dim=4, epochs=1, random_state=0).fit(X)
    again = tnml.MPSAnomalyDetector(bond_dim=4, epochs=1, warm_start=True, random_state=0)
    again.fit(X).fit(X)
    assert -again.score_samples(X).mean() < -cold.score_samples(X).mean()  # it kept training


def test_a_skewed_binary_column_keeps_both_values_apart():
    """Quantile bins of a column that is 1 nine times in ten: both quantiles are 1, and an
    edge on the value merged 0 into 1's bin, so the rare 0 scored like the common 1."""
    rng = np.random.default_rng(0)
    X = (rng.random((400, 4)) < [0.9, 0.5, 0.5, 0.5]).astype(float)
    model = MPSAnomalyDetector(bond_dim=4, epochs=3, random_state=0).fit(X)
    common, rare = model.score_samples(np.array([[1.0, 0, 1, 0], [0.0, 0, 1, 0]]))
    assert rare < common - 1.0  # p(x0 = 0) is about 0.1
    # and the binned model is a normalised distribution over the 2^4 inputs
    grid = np.array(list(itertools.product([0.0, 1.0], repeat=4)))
    np.testing.assert_allclose(np.exp(model.score_samples(grid)).sum(), 1.0, rtol=1e-6)


def test_categories_match_by_value_whatever_their_numeric_type():
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"code": rng.integers(0, 3, 300), "x": rng.normal(size=300)})
    model = MPSAnomalyDetector(bond_dim=4, epochs=2, categorical_features=[0], random_state=0).fit(
        frame
    )
    scores = model.score_samples(frame)
    np.testing.assert_array_equal(model.score_samples(frame.astype(float)), scores)
    as_objects = frame.astype(object)
    as_objects["code"] = frame["code"].astype(float).astype(str)  # "0.0", "1.0", "2.0"
    np.testing.assert_array_equal(model.score_samples(as_objects), scores)
    assert (scores > UNSEEN_SCORE).all()


def test_a_category_key_does_not_depend_on_the_rest_of_the_batch():
    """Keys were chosen per column and call: a column that mixed strings and numbers at fit
    stored '3.0', and a scoring batch of numbers only keyed it '3', an unseen category."""
    rng = np.random.default_rng(2)
    grade = np.array(
        ["unknown" if i % 10 == 0 else ["1.0", "2.5", "3.0"][i % 3] for i in range(120)]
    )
    frame = pd.DataFrame({"grade": grade, "x": rng.normal(size=120)})
    model = MPSAnomalyDetector(bond_dim=2, epochs=1, random_state=0).fit(frame)
    alone = model.score_samples(pd.DataFrame({"grade": ["3.0", "2.5"], "x": [0.0, 0.0]}))
    mixed = model.score_samples(
        pd.DataFrame({"grade": ["3.0", "2.5", "unknown"], "x": [0.0, 0.0, 0.0]})
    )
    as_numbers = model.score_samples(pd.DataFrame({"grade": [3.0, 2.5], "x": [0.0, 0.0]}))
    np.testing.assert_array_equal(alone, mixed[:2])
    np.testing.assert_array_equal(alone, as_numbers)
    assert (alone > UNSEEN_SCORE).all()
    # codes with leading zeros and large integers stay distinct categories
    codes = pd.DataFrame({"zip": ["02139", "10001"] * 30, "x": rng.normal(size=60)})
    zips = MPSAnomalyDetector(bond_dim=2, epochs=1, categorical_features=[0]).fit(codes)
    assert zips.score_samples(pd.DataFrame({"zip": ["2139"], "x": [0.0]}))[0] == UNSEEN_SCORE
    ids = pd.DataFrame({"id": [10**17, 10**17 + 2] * 30, "x": rng.normal(size=60)})
    big = MPSAnomalyDetector(bond_dim=2, epochs=1, categorical_features=[0]).fit(ids)
    assert big.score_samples(pd.DataFrame({"id": [10**17 + 1], "x": [0.0]}))[0] == UNSEEN_SCORE
