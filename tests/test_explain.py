"""tnml.explain and tnml.plot against dense (brute-force) computations on small networks."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError

import tnml
from tnml.exceptions import InvalidInputError
from tnml.explain import (
    EntropyProfile,
    entanglement_entropy,
    feature_importance,
    marginals,
    mutual_information,
)
from tnml.features import embed
from tnml.nn import MPSClassifierModule
from tnml.tensor.mps import MPS

TOL = 1e-9
MPS_CASES = [([2] * 12, 6), ([3] * 6, 4), ([2, 3, 2, 3, 2, 2, 3], 5)]


def random_state(dims: list[int], bond: int, seed: int = 0) -> MPS:
    g = torch.Generator().manual_seed(seed)
    return MPS.random(len(dims), dims, bond, generator=g, normalize=False)


def dense_marginal(p: np.ndarray, i: int) -> np.ndarray:
    return p.sum(axis=tuple(k for k in range(p.ndim) if k != i))


def dense_entropy(rho: np.ndarray) -> float:
    w = np.clip(np.linalg.eigvalsh(rho), 0, None)
    w = w[w > 0] / w.sum()
    return float(-(w * np.log(w)).sum())


def dense_mutual_information(psi: np.ndarray, label_axis: int | None = None) -> np.ndarray:
    """I(i:j) of the normalised dense state over its axes (the label axis traced)."""
    psi = psi / np.linalg.norm(psi)
    axes = [a for a in range(psi.ndim) if a != label_axis]

    def entropy(sites: list[int]) -> float:
        moved = np.moveaxis(psi, sites, list(range(len(sites))))
        m = math.prod(moved.shape[: len(sites)])
        mat = moved.reshape(m, -1)
        return dense_entropy(mat @ mat.conj().T)

    n = len(axes)
    single = [entropy([a]) for a in axes]
    mi = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            mi[i, j] = mi[j, i] = single[i] + single[j] - entropy([axes[i], axes[j]])
    return mi


# --------------------------------------------------------------------------------------------
# a small fitted classifier, its weights made far from the identity
# --------------------------------------------------------------------------------------------


def fitted_classifier(
    readout: str = "normalized",
    output_site: int | None = None,
    feature_dim: int = 2,
    dtype: str = "float64",
    seed: int = 0,
) -> tnml.MPSClassifier:
    rng = np.random.default_rng(seed)
    X = rng.random((24, 5))
    y = np.arange(24) % 3
    clf = tnml.MPSClassifier(
        bond_dim=3,
        feature_dim=feature_dim,
        readout=readout,
        output_site=output_site,
        epochs=1,
        validation_fraction=0.0,
        random_state=seed,
        dtype=dtype,
    ).fit(X, y)
    module = clf.module_
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for param in (module.cores, module.output_core):
            noise = torch.randn(param.shape, generator=g, dtype=torch.float64)
            param.copy_(0.7 * noise.to(param.dtype))
        if module.log_temperature is not None:
            module.log_temperature.fill_(1.3)
    return clf


def dense_weights(module: MPSClassifierModule) -> torch.Tensor:
    """W of shape (d, ..., d, L): the label split off the output site and moved last."""
    d, n_labels, k, n = module.feature_dim, module.n_classes, module.output_site, module.n_features
    mps = module.to_mps()
    w = MPS([core.double() for core in mps.cores]).to_dense()  # contracted in float64
    return w.reshape([d] * k + [d, n_labels] + [d] * (n - 1 - k)).movedim(k + 1, -1)


def amplitudes(w: torch.Tensor, phis: list[torch.Tensor]) -> torch.Tensor:
    out = w
    for p in phis:
        out = torch.tensordot(p, out, dims=([0], [0]))
    return out  # (L,)


def readout_proba(module: MPSClassifierModule, f: torch.Tensor) -> torch.Tensor:
    """The readouts written out independently of the module."""
    if module.readout == "born":
        return f.square() / f.square().sum()
    if module.readout == "normalized":
        return torch.softmax(float(module.log_temperature.detach().exp()) * f / f.norm(), 0)
    return torch.softmax(f, 0)


def brute_force_importance(
    clf: tnml.MPSClassifier, X: np.ndarray, method: str, basis: torch.Tensor | None = None
) -> np.ndarray:
    """p(c|x) - p_j(c|x) for each sample and feature, one full contraction per branch."""
    module = clf.module_
    w = dense_weights(module)
    phi = embed(torch.as_tensor(X, dtype=torch.float64), module.feature_map, module.feature_dim)
    return brute_force_from_amplitude(module, phi, lambda vs: amplitudes(w, vs), method, basis)


def brute_force_from_amplitude(
    module: torch.nn.Module,
    phi: torch.Tensor,
    amplitude: Callable[[list[torch.Tensor]], torch.Tensor],
    method: str,
    basis: torch.Tensor | None = None,
) -> np.ndarray:
    """p(c|x) - p_j(c|x) from ``amplitude(vectors) -> f (L,)``, each branch evaluated anew."""
    n, n_features, d = phi.shape
    basis = torch.eye(d, dtype=torch.float64) if basis is None else basis
    out = np.zeros((n, n_features))
    for b in range(n):
        base = readout_proba(module, amplitude(list(phi[b])))
        c = int(base.argmax())
        for j in range(n_features):
            branches = []
            for s in range(d):
                vectors = list(phi[b])
                vectors[j] = basis[:, s]
                branches.append(amplitude(vectors))
            if method == "trace":
                weights = torch.stack([g.square().sum() for g in branches])
                weights = weights / weights.sum()
            else:
                weights = torch.full((d,), 1.0 / d, dtype=torch.float64)
            marginal = sum(
                wt * readout_proba(module, g) for wt, g in zip(weights, branches, strict=True)
            )
            out[b, j] = float(base[c] - marginal[c])
    return out


# --------------------------------------------------------------------------------------------
# entanglement entropy
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("dims", "bond"), MPS_CASES)
def test_entanglement_entropy_matches_dense_svd(dims, bond):
    mps = random_state(dims, bond, seed=1)
    psi = mps.to_dense().numpy()
    psi = psi / np.linalg.norm(psi)
    profile = entanglement_entropy(mps)
    assert isinstance(profile, EntropyProfile)
    n = len(dims)
    assert profile.bonds.tolist() == list(range(n - 1))
    assert profile.bond_dims.tolist() == list(mps.bond_dims)
    for b in range(n - 1):
        s = np.linalg.svd(psi.reshape(math.prod(dims[: b + 1]), -1), compute_uv=False)
        p = s**2
        p = p[p > 1e-300]
        k = len(profile.schmidt_values[b])
        np.testing.assert_allclose(profile.schmidt_values[b], s[:k], atol=TOL)
        assert np.sum(s[k:] ** 2) < 1e-20
        assert profile.von_neumann[b] == pytest.approx(-(p * np.log(p)).sum(), abs=1e-8)
        assert profile.renyi2[b] == pytest.approx(-np.log((p**2).sum()), abs=1e-8)
        assert profile.renyi2[b] <= profile.von_neumann[b] + 1e-12
        assert profile.von_neumann[b] <= profile.max_entropy[b] + 1e-12


def test_entanglement_entropy_of_chosen_bonds():
    mps = random_state([2] * 8, 4, seed=2)
    full = entanglement_entropy(mps)
    part = entanglement_entropy(mps, bonds=[5, 1, 5])
    assert part.bonds.tolist() == [5, 1, 5]
    np.testing.assert_allclose(part.von_neumann, full.von_neumann[[5, 1, 5]], atol=1e-12)
    np.testing.assert_allclose(part.renyi2, full.renyi2[[5, 1, 5]], atol=1e-12)
    assert entanglement_entropy(mps, bonds=3).bonds.tolist() == [3]
    with pytest.raises(InvalidInputError, match=r"bonds must be ints in \[0, 6\]"):
        entanglement_entropy(mps, bonds=[7])
    with pytest.raises(InvalidInputError, match="at least 2 sites"):
        entanglement_entropy(random_state([2], 1))


def test_classifier_entropy_keeps_the_label_in_the_output_site():
    clf = fitted_classifier(output_site=2)
    mps = clf.module_.to_mps()
    profile = entanglement_entropy(clf)
    for b in range(mps.n_sites - 1):
        assert profile.von_neumann[b] == pytest.approx(float(mps.entanglement_entropy(b)), abs=1e-8)


# --------------------------------------------------------------------------------------------
# marginals and mutual information
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("dims", "bond"), MPS_CASES)
def test_marginals_and_mutual_information_of_a_state_match_dense(dims, bond):
    mps = random_state(dims, bond, seed=4)
    psi = mps.to_dense().numpy()
    prob = psi**2 / np.sum(psi**2)
    got = marginals(mps)
    assert got.shape == (len(dims), max(dims))
    for i, di in enumerate(dims):
        np.testing.assert_allclose(got[i, :di], dense_marginal(prob, i), atol=TOL)
        assert np.all(got[i, di:] == 0)
    mi = mutual_information(mps)
    np.testing.assert_allclose(mi, dense_mutual_information(psi), atol=1e-8)
    assert np.array_equal(mi, mi.T) and mi.min() >= -1e-12


@pytest.mark.parametrize("output_site", [0, 2, 4])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_classifier_marginals_and_mutual_information_trace_the_label(output_site, dtype):
    clf = fitted_classifier(output_site=output_site, dtype=dtype)
    w = dense_weights(clf.module_).numpy()  # (d, ..., d, L)
    label_axis = w.ndim - 1
    prob = w**2 / np.sum(w**2)
    got = marginals(clf)
    assert got.shape == (5, 2)
    for i in range(5):
        np.testing.assert_allclose(got[i], dense_marginal(prob, i), atol=TOL)
    np.testing.assert_allclose(
        mutual_information(clf), dense_mutual_information(w, label_axis), atol=1e-8
    )
    # the module itself gives the same
    np.testing.assert_allclose(marginals(clf.module_), got, atol=1e-15)


def test_product_state_has_zero_mutual_information():
    g = torch.Generator().manual_seed(0)
    mps = MPS([torch.randn(1, 2, 1, generator=g, dtype=torch.float64) for _ in range(10)])
    np.testing.assert_allclose(mutual_information(mps), 0.0, atol=1e-12)
    np.testing.assert_allclose(mutual_information(mps, kind="renyi2"), 0.0, atol=1e-12)


class _BornModule:
    """Stands in for a Born machine module: anything with to_mps()."""

    def __init__(self, mps: MPS) -> None:
        self.mps = mps

    def to_mps(self) -> MPS:
        return self.mps


class _BornEstimator(BaseEstimator):
    """Stands in for a Born machine estimator that keeps its state at ``mps_``."""

    def fit(self, mps: MPS) -> _BornEstimator:
        self.mps_ = mps
        return self


def test_models_accepted_and_rejected():
    mps = random_state([2] * 5, 3, seed=6)
    expected = marginals(mps)
    np.testing.assert_allclose(marginals(_BornModule(mps)), expected, atol=1e-15)
    np.testing.assert_allclose(marginals(_BornEstimator().fit(mps)), expected, atol=1e-15)
    with pytest.raises(NotFittedError):
        marginals(_BornEstimator())
    with pytest.raises(NotFittedError):
        entanglement_entropy(tnml.MPSClassifier())
    with pytest.raises(InvalidInputError, match=r"model must be a tnml\.tensor\.MPS"):
        mutual_information(np.zeros((3, 3)))
    with pytest.raises(InvalidInputError, match=r"must return a tnml\.tensor\.MPS"):
        marginals(_BornModule(torch.zeros(3)))
    with pytest.raises(InvalidInputError, match="kind must be one of"):
        mutual_information(mps, kind="shannon")


# --------------------------------------------------------------------------------------------
# feature importance
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["trace", "uniform"])
@pytest.mark.parametrize("output_site", [0, 2, 4])
@pytest.mark.parametrize("readout", ["normalized", "born", "linear"])
def test_feature_importance_matches_brute_force(readout, output_site, method):
    clf = fitted_classifier(readout, output_site)
    X = np.random.default_rng(1).random((6, 5))
    got = feature_importance(clf, X, method=method, batch_size=4)
    expected = brute_force_importance(clf, X, method)
    assert got.shape == (6, 5)
    np.testing.assert_allclose(got, expected, atol=1e-9)
    assert np.abs(got).max() > 1e-3  # the test is not vacuous


def test_feature_importance_with_three_level_features():
    clf = fitted_classifier("born", 1, feature_dim=3)
    X = np.random.default_rng(2).random((4, 5))
    np.testing.assert_allclose(
        feature_importance(clf, X), brute_force_importance(clf, X, "trace"), atol=1e-9
    )


def test_born_trace_does_not_depend_on_the_local_basis():
    clf = fitted_classifier("born", 3)
    X = np.random.default_rng(3).random((4, 5))
    q, _ = torch.linalg.qr(torch.randn(2, 2, generator=torch.Generator().manual_seed(0)).double())
    rotated = brute_force_importance(clf, X, "trace", basis=q)
    np.testing.assert_allclose(feature_importance(clf, X), rotated, atol=1e-9)


def test_base_probabilities_are_the_models():
    clf = fitted_classifier("normalized", 2)
    X = np.random.default_rng(4).random((5, 5))
    proba = clf.predict_proba(X)
    # with target = the predicted class, the marginalised probability is base - importance
    imp = feature_importance(clf, X)
    w = dense_weights(clf.module_)
    phi = embed(torch.as_tensor(X), "trig", 2)
    for b in range(5):
        base = readout_proba(clf.module_, amplitudes(w, list(phi[b]))).numpy()
        np.testing.assert_allclose(base, proba[b], atol=1e-9)
    assert imp.shape == (5, 5)


@pytest.mark.parametrize("readout", ["normalized", "born"])
def test_an_ignored_feature_has_zero_importance(readout):
    clf = fitted_classifier(readout, 2)
    module = clf.module_
    # site 4 (cores[3]) acts as c_s * M with c > 0: x_4 only rescales f by c . phi(x_4) > 0
    g = torch.Generator().manual_seed(5)
    m = torch.randn(3, 3, generator=g, dtype=torch.float64)
    with torch.no_grad():
        module.cores[3] = torch.stack([0.9 * m, 0.2 * m], dim=1)
    X = np.random.default_rng(5).random((5, 5))
    for method in ("trace", "uniform"):
        imp = feature_importance(clf, X, method=method)
        np.testing.assert_allclose(imp[:, 4], 0.0, atol=1e-12)
        assert np.abs(imp[:, :4]).max() > 1e-3


def test_feature_importance_targets_reductions_and_errors():
    clf = fitted_classifier("born", 2)
    X = np.random.default_rng(6).random((6, 5))
    full = feature_importance(clf, X)
    np.testing.assert_allclose(
        feature_importance(clf, X, reduce="mean_abs"), np.abs(full).mean(axis=0)
    )
    predicted = clf.predict(X)
    np.testing.assert_allclose(feature_importance(clf, X, target=predicted), full, atol=1e-12)
    one = feature_importance(clf, X, target=clf.classes_[1])
    per_sample = feature_importance(clf, X, target=np.full(6, clf.classes_[1]))
    np.testing.assert_allclose(one, per_sample)
    # the module takes X in [0, 1] and class indices
    np.testing.assert_allclose(
        feature_importance(clf.module_, torch.as_tensor(X), target=1), one, atol=1e-12
    )
    with pytest.raises(InvalidInputError, match="not one of the model's classes"):
        feature_importance(clf, X, target=7)
    with pytest.raises(InvalidInputError, match="one label per sample"):
        feature_importance(clf, X, target=[0, 1])
    with pytest.raises(InvalidInputError, match="method must be one of"):
        feature_importance(clf, X, method="mean")
    with pytest.raises(InvalidInputError, match="reduce must be one of"):
        feature_importance(clf, X, reduce="sum")
    with pytest.raises(InvalidInputError, match="batch_size"):
        feature_importance(clf, X, batch_size=0)
    with pytest.raises(ValueError, match="features"):
        feature_importance(clf, X[:, :3])
    with pytest.raises(InvalidInputError, match=r"X must have shape \(n_samples, 5\)"):
        feature_importance(clf.module_, X[:, :3])
    with pytest.raises(NotFittedError):
        feature_importance(tnml.MPSClassifier(), X)
    with pytest.raises(InvalidInputError, match=r"fitted tnml\.MPSClassifier"):
        feature_importance(random_state([2] * 5, 2), X)


def test_feature_importance_uses_the_estimators_scaling():
    rng = np.random.default_rng(7)
    X = 10.0 * rng.random((24, 5)) - 3.0  # min-max scaled inside the estimator
    clf = tnml.MPSClassifier(bond_dim=2, epochs=1, validation_fraction=0.0, random_state=0)
    clf.fit(X, np.arange(24) % 2)
    unit = clf._to_unit(X[:4])
    np.testing.assert_allclose(
        feature_importance(clf, X[:4], target=0),
        feature_importance(clf.module_, unit, target=0),
        atol=1e-12,
    )


# --------------------------------------------------------------------------------------------
# plots
# --------------------------------------------------------------------------------------------

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_png(path: Path) -> bool:
    return path.read_bytes()[:8] == PNG_MAGIC


def test_plots_write_png_files(tmp_path):
    pytest.importorskip("matplotlib")
    from tnml.plot import plot_entropy_profile, plot_importance_map, plot_mutual_information

    mps = random_state([2] * 16, 4, seed=8)
    fig = plot_entropy_profile(entanglement_entropy(mps), tmp_path / "entropy.png")
    assert fig.axes and _is_png(tmp_path / "entropy.png")
    plot_mutual_information(mutual_information(mps), tmp_path / "sub" / "mi.png")
    assert _is_png(tmp_path / "sub" / "mi.png")
    signed = np.random.default_rng(0).normal(size=16)
    plot_importance_map(signed, (4, 4), tmp_path / "imp.png", image=np.linspace(0, 1, 16))
    plot_importance_map(np.abs(signed), (4, 4), str(tmp_path / "imp_abs.png"))
    assert _is_png(tmp_path / "imp.png") and _is_png(tmp_path / "imp_abs.png")
    assert plot_mutual_information(np.eye(3)).axes  # no path: only the figure
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [
        "entropy.png",
        "imp.png",
        "imp_abs.png",
        "mi.png",
    ]  # no temporary files left behind
    with pytest.raises(InvalidInputError, match="image_shape"):
        plot_importance_map(signed, (3, 5))
    with pytest.raises(InvalidInputError, match="square"):
        plot_mutual_information(np.zeros((2, 3)))
    with pytest.raises(InvalidInputError, match="EntropyProfile"):
        plot_entropy_profile(np.zeros(3))


def test_save_image_grid_is_pixel_exact(tmp_path):
    pytest.importorskip("matplotlib")
    from matplotlib.image import imread

    from tnml.plot import save_image_grid

    images = np.random.default_rng(1).random((10, 5, 6))
    path = tmp_path / "grid.png"
    save_image_grid(torch.as_tensor(images), path, n_cols=4, scale=2, pad=1)
    pixels = imread(path)  # (H, W, 4) floats in [0, 1]
    rows, cols = 3, 4
    assert pixels.shape[:2] == (2 * (rows * 6 + 1), 2 * (cols * 7 + 1))
    for i in (0, 5, 9):
        r, c = divmod(i, cols)
        top, left = 2 * (1 + r * 6), 2 * (1 + c * 7)
        block = pixels[top : top + 10 : 2, left : left + 12 : 2, 0]
        np.testing.assert_allclose(block, images[i], atol=0.5 / 255 + 1e-6)
    # fewer images than columns, RGB, and bad input
    save_image_grid(np.ones((2, 3, 3, 3)), tmp_path / "rgb.png")
    assert imread(tmp_path / "rgb.png").shape[:2] == (4 * 5, 4 * 9)
    with pytest.raises(InvalidInputError, match=r"images must lie in \[0, 1\]"):
        save_image_grid(images * 2, tmp_path / "bad.png")
    with pytest.raises(InvalidInputError, match="finite"):
        save_image_grid(np.full((1, 2, 2), np.nan), tmp_path / "bad.png")
    with pytest.raises(InvalidInputError, match="axes"):
        save_image_grid(np.zeros((4, 4)), tmp_path / "bad.png")
    with pytest.raises(InvalidInputError, match="n_cols"):
        save_image_grid(images, tmp_path / "bad.png", n_cols=0)
    assert not (tmp_path / "bad.png").exists()
