"""Tree tensor networks in tnml.explain and tnml.tensor.ttn_rdm, against dense computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError

import tnml
from tnml.exceptions import InvalidInputError
from tnml.explain import (
    EntropyProfile,
    entanglement_entropy,
    marginals,
    mutual_information,
    tree_edges,
)
from tnml.explain._network import as_network
from tnml.nn import TTNClassifierModule
from tnml.tensor.mps import MPS
from tnml.tensor.rdm import mps_two_site_rdms
from tnml.tensor.ttn import (
    TTN,
    TreeLayout,
    tree_layout_1d,
    tree_layout_2d,
    ttn_from_dense,
    ttn_schmidt_values,
    ttn_to_dense,
)
from tnml.tensor.ttn_rdm import (
    ttn_mutual_information,
    ttn_one_site_rdms,
    ttn_pair_entropies,
    ttn_two_site_rdms,
)

TOL = 1e-8


# --------------------------------------------------------------------------------------------
# random trees and dense references
# --------------------------------------------------------------------------------------------


def random_tree(
    layout: TreeLayout,
    leaf_dims: list[int],
    out: int = 1,
    *,
    max_bond: int = 4,
    dtype: torch.dtype = torch.float64,
    seed: int = 0,
) -> TTN:
    """Gaussian tensors with a random bond dimension in [1, max_bond] above every node (so
    some bonds are smaller and some larger than useful), not canonical, any scale."""
    g = torch.Generator().manual_seed(seed)
    dims: dict[object, int] = dict(enumerate(leaf_dims))
    tensors = []
    for layer, size in enumerate(layout.layer_sizes):
        row = []
        for k in range(size):
            a, b = layout.children((layer, k))
            dp = (
                out
                if (layer, k) == layout.root
                else int(torch.randint(1, max_bond + 1, (1,), generator=g))
            )
            dims[(layer, k)] = dp
            t = torch.randn((dims[a], dims[b], dp), generator=g, dtype=torch.float64)
            if dtype.is_complex:
                t = t + 1j * torch.randn((dims[a], dims[b], dp), generator=g, dtype=torch.float64)
            row.append((1.7 * t).to(dtype))
        tensors.append(row)
    return TTN(layout, tensors, log_scale=3.0)


def dense_state(ttn: TTN) -> np.ndarray:
    """psi of shape (d_0, ..., d_{N-1}, L) (L = 1 for a state), unit norm."""
    psi = ttn_to_dense(ttn).numpy()
    if ttn.out_dim == 1:
        psi = psi[..., None]
    return psi / np.linalg.norm(psi)


def dense_rdm(psi: np.ndarray, sites: list[int]) -> np.ndarray:
    """Density matrix of ``sites`` (all other axes traced, the last one included), shaped
    (d_i, d_j, ..., d_i', d_j', ...)."""
    moved = np.moveaxis(psi, sites, list(range(len(sites))))
    shape = moved.shape[: len(sites)]
    mat = moved.reshape(math.prod(shape), -1)
    return (mat @ mat.conj().T).reshape(shape + shape)


def dense_entropy(rho: np.ndarray, kind: str = "vn") -> float:
    m = math.isqrt(rho.size)
    w = np.clip(np.linalg.eigvalsh(rho.reshape(m, m)), 0, None)
    w = w / w.sum()
    if kind == "renyi2":
        return float(-np.log((w**2).sum()))
    w = w[w > 0]
    return float(-(w * np.log(w)).sum())


def dense_mutual_information(psi: np.ndarray, kind: str = "vn") -> np.ndarray:
    n = psi.ndim - 1
    single = [dense_entropy(dense_rdm(psi, [i]), kind) for i in range(n)]
    mi = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            pair = dense_entropy(dense_rdm(psi, [i, j]), kind)
            mi[i, j] = mi[j, i] = single[i] + single[j] - pair
    return mi


def dense_schmidt(psi: np.ndarray, leaves: tuple[int, ...]) -> np.ndarray:
    moved = np.moveaxis(psi, list(leaves), list(range(len(leaves))))
    m = math.prod(moved.shape[: len(leaves)])
    return np.linalg.svd(moved.reshape(m, -1), compute_uv=False)


def pad_to(a: np.ndarray, k: int) -> np.ndarray:
    return np.pad(a, [(0, k - s) for s in a.shape])


CASES = {
    "1d-8-d2": (tree_layout_1d(8), [2] * 8, 1),
    "1d-7-d3": (tree_layout_1d(7), [3] * 7, 1),
    "2d-3x4-d2": (tree_layout_2d(3, 4), [2] * 12, 1),
    "2d-2x3-d3-classifier": (tree_layout_2d(2, 3), [3] * 6, 3),
    "1d-11-d2-classifier": (tree_layout_1d(11), [2] * 11, 3),
    "1d-6-mixed-dims": (tree_layout_1d(6), [2, 3, 2, 2, 3, 2], 2),
}


@pytest.fixture(params=sorted(CASES))
def case(request):
    layout, dims, out = CASES[request.param]
    ttn = random_tree(layout, dims, out, seed=len(request.param))
    return ttn, dense_state(ttn)


# --------------------------------------------------------------------------------------------
# tnml.tensor.ttn_rdm
# --------------------------------------------------------------------------------------------


def test_one_and_two_site_rdms_match_dense(case):
    ttn, psi = case
    n, d = ttn.n_leaves, max(ttn.phys_dims)
    one = ttn_one_site_rdms(ttn)
    two = ttn_two_site_rdms(ttn)
    assert one.shape == (n, d, d) and two.shape == (n, n, d, d, d, d)
    for i in range(n):
        np.testing.assert_allclose(one[i].numpy(), pad_to(dense_rdm(psi, [i]), d), atol=TOL)
        assert np.all(two[i, i].numpy() == 0)
        for j in range(n):
            if i != j:
                expected = pad_to(dense_rdm(psi, [i, j]), d)
                np.testing.assert_allclose(two[i, j].numpy(), expected, atol=TOL)


@pytest.mark.parametrize("kind", ["vn", "renyi2"])
def test_mutual_information_and_pair_entropies_match_dense(case, kind):
    ttn, psi = case
    mi = ttn_mutual_information(ttn, kind).numpy()
    np.testing.assert_allclose(mi, dense_mutual_information(psi, kind), atol=TOL)
    assert np.array_equal(mi, mi.T) and np.all(np.diag(mi) == 0)
    if kind == "vn":
        assert mi.min() >= -1e-12
        assert mi.max() <= 2 * math.log(max(ttn.phys_dims)) + 1e-12
    pair = ttn_pair_entropies(ttn, kind).numpy()
    for i in range(ttn.n_leaves):
        assert pair[i, i] == pytest.approx(dense_entropy(dense_rdm(psi, [i]), kind), abs=TOL)


def test_complex_tree_matches_dense():
    ttn = random_tree(tree_layout_2d(2, 4), [2] * 8, 2, dtype=torch.complex128, seed=3)
    psi = dense_state(ttn)
    one = ttn_one_site_rdms(ttn)
    two = ttn_two_site_rdms(ttn)
    assert one.dtype == torch.complex128
    np.testing.assert_allclose(one[5].numpy(), dense_rdm(psi, [5]), atol=TOL)
    np.testing.assert_allclose(two[6, 1].numpy(), dense_rdm(psi, [6, 1]), atol=TOL)
    mi = ttn_mutual_information(ttn)
    assert mi.dtype == torch.float64
    np.testing.assert_allclose(mi.numpy(), dense_mutual_information(psi), atol=TOL)


def test_two_site_rdms_follow_the_mps_convention():
    g = torch.Generator().manual_seed(11)
    psi = torch.randn([2, 3, 2, 2, 3, 2, 2], generator=g, dtype=torch.float64)
    tree = ttn_from_dense(psi, tree_layout_1d(7))
    chain = MPS.from_dense(psi)
    np.testing.assert_allclose(
        ttn_two_site_rdms(tree).numpy(), mps_two_site_rdms(chain).numpy(), atol=1e-10
    )
    two = ttn_two_site_rdms(tree)
    np.testing.assert_allclose(two[4, 1].numpy(), two[1, 4].permute(1, 0, 3, 2).numpy())


def test_traced_dims_trace_part_of_a_leaf():
    layout = tree_layout_2d(2, 3)
    ttn = random_tree(layout, [2, 6, 2, 4, 2, 2], seed=5)
    traced = [1, 3, 1, 2, 1, 1]
    psi = dense_state(ttn)[..., 0]
    # split leaf 1 into (kept 2, traced 3), leaf 3 into (kept 2, traced 2); traced axes last
    split = psi.reshape(2, 2, 3, 2, 2, 2, 2, 2)
    split = np.moveaxis(split, [2, 5], [-2, -1])  # (6 kept leaves, 3, 2)
    merged = split.reshape(2, 2, 2, 2, 2, 2, 6)
    np.testing.assert_allclose(
        ttn_one_site_rdms(ttn, traced_dims=traced).numpy(),
        np.stack([dense_rdm(merged, [i]) for i in range(6)]),
        atol=TOL,
    )
    np.testing.assert_allclose(
        ttn_mutual_information(ttn, traced_dims=traced).numpy(),
        dense_mutual_information(merged),
        atol=TOL,
    )
    assert ttn_two_site_rdms(ttn, traced_dims=traced).shape == (6, 6, 2, 2, 2, 2)
    with pytest.raises(InvalidInputError, match="does not divide"):
        ttn_one_site_rdms(ttn, traced_dims=[1, 4, 1, 1, 1, 1])
    with pytest.raises(InvalidInputError, match="n_leaves=6 ints"):
        ttn_one_site_rdms(ttn, traced_dims=[1, 1])


def test_product_state_has_zero_mutual_information():
    g = torch.Generator().manual_seed(2)
    layout = tree_layout_2d(3, 3)
    tensors = []
    for layer, size in enumerate(layout.layer_sizes):
        row = []
        for k in range(size):
            # each leaf leg a random vector, every bond of dimension 1: a product state
            legs = [
                torch.randn(3 if isinstance(child, int) else 1, generator=g, dtype=torch.float64)
                for child in layout.children((layer, k))
            ]
            row.append(torch.einsum("a,b->ab", *legs).unsqueeze(-1))
        tensors.append(row)
    ttn = TTN(layout, tensors)
    np.testing.assert_allclose(ttn_mutual_information(ttn).numpy(), 0.0, atol=1e-12)
    np.testing.assert_allclose(ttn_mutual_information(ttn, "renyi2").numpy(), 0.0, atol=1e-12)
    np.testing.assert_allclose(mutual_information(ttn), 0.0, atol=1e-12)
    np.testing.assert_allclose(entanglement_entropy(ttn).von_neumann, 0.0, atol=1e-12)


def test_rdm_errors():
    zero = random_tree(tree_layout_1d(4), [2] * 4)
    zero.tensors[-1][0] = torch.zeros_like(zero.tensors[-1][0])
    with pytest.raises(InvalidInputError, match="zero state"):
        ttn_one_site_rdms(zero)
    with pytest.raises(InvalidInputError, match="zero state"):
        entanglement_entropy(zero)
    with pytest.raises(InvalidInputError, match=r"must be a tnml\.tensor\.TTN"):
        ttn_two_site_rdms(MPS.from_dense(torch.ones(2, 2, dtype=torch.float64)))
    with pytest.raises(InvalidInputError, match="kind must be one of"):
        ttn_mutual_information(random_tree(tree_layout_1d(3), [2] * 3), "shannon")


# --------------------------------------------------------------------------------------------
# tnml.explain on trees
# --------------------------------------------------------------------------------------------


def test_marginals_and_mutual_information_match_dense(case):
    ttn, psi = case
    n, d = ttn.n_leaves, max(ttn.phys_dims)
    prob = np.abs(psi) ** 2
    got = marginals(ttn)
    assert got.shape == (n, d) and got.dtype == np.float64
    for i, di in enumerate(ttn.phys_dims):
        expected = prob.sum(axis=tuple(k for k in range(prob.ndim) if k != i))
        np.testing.assert_allclose(got[i, :di], expected, atol=TOL)
        assert np.all(got[i, di:] == 0)
    np.testing.assert_allclose(mutual_information(ttn), dense_mutual_information(psi), atol=TOL)
    np.testing.assert_allclose(
        mutual_information(ttn, kind="renyi2"),
        dense_mutual_information(psi, "renyi2"),
        atol=TOL,
    )


def test_edge_entropies_and_spectra_match_dense(case):
    ttn, psi = case
    layout = ttn.layout
    profile = entanglement_entropy(ttn)
    assert isinstance(profile, EntropyProfile)
    edges = tree_edges(ttn)
    n_edges = 2 * ttn.n_leaves - 2 + (ttn.out_dim > 1)
    assert len(edges) == n_edges and profile.edges == edges
    assert profile.bonds.tolist() == list(range(n_edges))
    assert edges[: ttn.n_leaves] == tuple(range(ttn.n_leaves))
    assert (layout.root in edges) == (ttn.out_dim > 1)
    for e, edge in enumerate(edges):
        leaves = layout.leaves_below(edge)
        assert profile.subsystems[e] == leaves
        s = dense_schmidt(psi, leaves)  # the label axis stays with the other leaves
        k = len(profile.schmidt_values[e])
        np.testing.assert_allclose(profile.schmidt_values[e], s[:k], atol=TOL)
        assert np.sum(s[k:] ** 2) < 1e-16
        p = s**2
        p = p[p > 1e-300]
        assert profile.von_neumann[e] == pytest.approx(-(p * np.log(p)).sum(), abs=TOL)
        assert profile.renyi2[e] == pytest.approx(-np.log((p**2).sum()), abs=TOL)
        assert profile.renyi2[e] <= profile.von_neumann[e] + 1e-12
        assert profile.von_neumann[e] <= profile.max_entropy[e] + 1e-12
        if isinstance(edge, int):
            assert profile.bond_dims[e] == ttn.phys_dims[edge]
        else:
            assert profile.bond_dims[e] == ttn.tensors[edge[0]][edge[1]].shape[2]


def test_chosen_edges():
    ttn = random_tree(tree_layout_2d(2, 4), [2] * 8, 3, seed=9)
    full = entanglement_entropy(ttn)
    part = entanglement_entropy(ttn, bonds=[9, 2, (1, 1), 9])
    assert part.bonds.tolist() == [9, 2, full.edges.index((1, 1)), 9]
    assert part.edges == (full.edges[9], 2, (1, 1), full.edges[9])
    np.testing.assert_allclose(part.von_neumann, full.von_neumann[part.bonds], atol=1e-12)
    one = entanglement_entropy(ttn, bonds=(0, 2))  # a single tuple is one node
    assert one.edges == ((0, 2),)
    root = entanglement_entropy(ttn, bonds=ttn.layout.root)  # the label edge
    expected = ttn_schmidt_values(ttn, ttn.layout.root).numpy()
    np.testing.assert_allclose(root.schmidt_values[0], expected, atol=1e-12)
    assert entanglement_entropy(ttn, bonds=np.int64(3)).bonds.tolist() == [3]
    with pytest.raises(InvalidInputError, match=r"tree edge numbers in \[0, 14\]"):
        entanglement_entropy(ttn, bonds=[15])
    with pytest.raises(InvalidInputError, match="tensor nodes"):
        entanglement_entropy(ttn, bonds=[(5, 0)])
    with pytest.raises(InvalidInputError, match="at least one"):
        entanglement_entropy(ttn, bonds=[])
    state = random_tree(tree_layout_1d(4), [2] * 4, seed=1)
    with pytest.raises(InvalidInputError, match="root excluded"):
        entanglement_entropy(state, bonds=state.layout.root)


def test_mps_profiles_keep_their_fields():
    g = torch.Generator().manual_seed(0)
    mps = MPS.random(6, 2, 3, generator=g)
    profile = entanglement_entropy(mps)
    assert profile.edges is None
    assert profile.subsystems == tuple(tuple(range(b + 1)) for b in range(5))
    assert as_network(mps).ttn is None and not as_network(mps).is_tree


def test_plot_entropy_profile_of_a_tree(tmp_path):
    pytest.importorskip("matplotlib")
    from tnml.plot import plot_entropy_profile

    ttn = random_tree(tree_layout_2d(4, 4), [2] * 16, seed=4)
    fig = plot_entropy_profile(entanglement_entropy(ttn), tmp_path / "tree.png")
    assert fig.axes and (tmp_path / "tree.png").read_bytes()[:4] == b"\x89PNG"


# --------------------------------------------------------------------------------------------
# fitted models end to end
# --------------------------------------------------------------------------------------------


class _TreeModule:
    """Stands in for any module with to_ttn()."""

    def __init__(self, ttn: object) -> None:
        self.ttn = ttn

    def to_ttn(self) -> object:
        return self.ttn


@pytest.fixture(scope="module")
def born_machine() -> tnml.TTNBornMachine:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 2, size=(300, 1))
    X = (base + (rng.random((300, 8)) < 0.2)) % 2  # correlated binary features
    return tnml.TTNBornMachine(bond_dim=3, layout="1d", epochs=2, random_state=0).fit(X)


def test_fitted_born_machine_end_to_end(born_machine):
    model = born_machine
    prob = model.to_dense() ** 2
    got = marginals(model)
    assert got.shape == (8, 2)
    for i in range(8):
        p1 = np.exp(model.marginal_log_prob([i], [[1]]))[0]
        assert got[i, 1] == pytest.approx(p1, abs=TOL)
        expected = prob.sum(axis=tuple(k for k in range(8) if k != i))
        np.testing.assert_allclose(got[i], expected, atol=TOL)
    psi = model.to_dense()[..., None]
    mi = mutual_information(model)
    np.testing.assert_allclose(mi, dense_mutual_information(psi), atol=TOL)
    assert mi.max() > 1e-3  # the features are correlated
    profile = entanglement_entropy(model)
    assert len(profile.edges) == 14  # 8 leaf legs, 6 inner bonds
    for e, edge in enumerate(profile.edges):
        s = dense_schmidt(psi, model.module_.tree.leaves_below(edge))
        k = len(profile.schmidt_values[e])
        np.testing.assert_allclose(profile.schmidt_values[e], s[:k], atol=TOL)
    # the module and its TTN give the same
    np.testing.assert_allclose(marginals(model.module_), got, atol=1e-12)
    np.testing.assert_allclose(mutual_information(model.to_ttn()), mi, atol=1e-12)


@pytest.fixture(scope="module")
def classifier() -> tnml.TTNClassifier:
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = X[:300, 24:40] / 16  # 16 features: two middle rows of the 8x8 digits
    clf = tnml.TTNClassifier(
        bond_dim=4, layout=(2, 8), epochs=1, validation_fraction=0.0, random_state=0
    )
    return clf.fit(X, y[:300])


def test_fitted_classifier_end_to_end(classifier):
    clf = classifier
    module = clf.module_
    ttn = module.to_ttn()
    assert ttn.out_dim == 10
    w = ttn_to_dense(TTN(ttn.layout, [[t.double() for t in row] for row in ttn.tensors]))
    w = (w / w.norm()).numpy()  # (2, ..., 2, 10): the label axis last, traced below
    prob = (w**2).sum(axis=-1)
    got = marginals(clf)
    assert got.shape == (16, 2)
    for i in range(16):
        expected = prob.sum(axis=tuple(k for k in range(16) if k != i))
        np.testing.assert_allclose(got[i], expected, atol=TOL)
    mi = mutual_information(clf)
    assert mi.shape == (16, 16)
    rng = np.random.default_rng(0)
    for i, j in rng.choice(16, size=(12, 2)):
        if i == j:
            continue
        si = dense_entropy(dense_rdm(w, [i]))
        sj = dense_entropy(dense_rdm(w, [j]))
        sij = dense_entropy(dense_rdm(w, [i, j]))
        assert mi[i, j] == pytest.approx(si + sj - sij, abs=TOL)
    profile = entanglement_entropy(clf)
    assert profile.edges[-1] == ttn.layout.root  # the label edge is last
    for e in (0, 9, 16, 25, 29, 30):
        s = dense_schmidt(w, profile.subsystems[e])
        k = len(profile.schmidt_values[e])
        np.testing.assert_allclose(profile.schmidt_values[e], s[:k], atol=TOL)
    np.testing.assert_allclose(marginals(module), got, atol=1e-12)
    np.testing.assert_allclose(mutual_information(module), mi, atol=1e-12)


def test_one_feature_tree_classifier_is_one_site():
    module = TTNClassifierModule(1, 3, bond_dim=2, feature_dim=3, dtype=torch.float64)
    with torch.no_grad():
        module.nodes[0].normal_(generator=torch.Generator().manual_seed(0))
    net = as_network(module)
    assert net.mps is not None and net.traced_dims == (3,)
    root = module.to_ttn().tensors[-1][0][:, 0, :].numpy()  # (d, L): second leaf fed e_0
    prob = (root**2).sum(axis=1) / (root**2).sum()
    np.testing.assert_allclose(marginals(module), prob[None], atol=1e-12)
    np.testing.assert_allclose(mutual_information(module), np.zeros((1, 1)))


def test_tree_models_accepted_and_rejected():
    ttn = random_tree(tree_layout_1d(5), [2] * 5, seed=6)
    expected = marginals(ttn)
    np.testing.assert_allclose(marginals(_TreeModule(ttn)), expected, atol=1e-12)
    net = as_network(_TreeModule(ttn.canonicalize()))
    assert net.is_tree and not net.ttn.is_canonical and net.n_sites == 5
    # float32 trees are read in float64
    single = TTN(ttn.layout, [[t.float() for t in row] for row in ttn.tensors])
    assert as_network(single).ttn.dtype == torch.float64
    with pytest.raises(InvalidInputError, match=r"must return a tnml\.tensor\.TTN"):
        marginals(_TreeModule(torch.zeros(3)))
    with pytest.raises(NotFittedError):
        marginals(tnml.TTNClassifier())
    with pytest.raises(NotFittedError):
        entanglement_entropy(tnml.TTNBornMachine())
    with pytest.raises(InvalidInputError, match="kind must be one of"):
        mutual_information(ttn, kind="shannon")


# --------------------------------------------------------------------------------------------
# feature importance of tree classifiers
# --------------------------------------------------------------------------------------------


def random_tree_classifier(readout: str, layout: object, n_features: int, feature_dim: int):
    rng = np.random.default_rng(3)
    X = 4.0 * rng.random((30, n_features)) - 1.0  # min-max scaled inside the estimator
    clf = tnml.TTNClassifier(
        bond_dim=3,
        layout=layout,
        feature_dim=feature_dim,
        readout=readout,
        epochs=1,
        validation_fraction=0.0,
        random_state=0,
        dtype="float64",
    ).fit(X, np.arange(30) % 3)
    g = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for param in clf.module_.nodes:
            param.copy_(0.8 * torch.randn(param.shape, generator=g, dtype=torch.float64))
        if clf.module_.log_temperature is not None:
            clf.module_.log_temperature.fill_(1.1)
    return clf


def brute_force_tree_importance(clf, X: np.ndarray, method: str) -> np.ndarray:
    """p(c|x) - p_j(c|x), each branch amplitude from a full dense contraction of the tree."""
    from test_explain import brute_force_from_amplitude

    module = clf.module_
    d = module.feature_dim
    ttn = module.to_ttn()
    w = ttn_to_dense(TTN(ttn.layout, [[t.double() for t in row] for row in ttn.tensors]))
    phi = tnml.features.embed(
        torch.as_tensor(clf._to_unit(X), dtype=torch.float64), module.feature_map, d
    )
    pad = torch.eye(d, dtype=torch.float64)[0]  # the constant second leaf of a 1-feature tree

    def amplitude(vectors):
        out = w
        for v in [*vectors, pad][: w.ndim - 1]:
            out = torch.tensordot(v, out, dims=([0], [0]))
        return out

    return brute_force_from_amplitude(module, phi, amplitude, method)


@pytest.mark.parametrize("method", ["trace", "uniform"])
@pytest.mark.parametrize("readout", ["normalized", "born", "linear"])
@pytest.mark.parametrize(
    ("layout", "n_features", "feature_dim"), [((2, 4), 8, 2), ("1d", 7, 3), ("1d", 1, 2)]
)
def test_tree_feature_importance_matches_brute_force(
    readout, method, layout, n_features, feature_dim
):
    from tnml.explain import feature_importance

    clf = random_tree_classifier(readout, layout, n_features, feature_dim)
    X = 4.0 * np.random.default_rng(5).random((5, n_features)) - 1.0  # scaled by the estimator
    got = feature_importance(clf, X, method=method, batch_size=3)
    expected = brute_force_tree_importance(clf, X, method)
    assert np.abs(expected).max() > 1e-3  # the features matter, so the check has teeth
    np.testing.assert_allclose(got, expected, atol=1e-10)
    np.testing.assert_allclose(
        feature_importance(clf.module_, clf._to_unit(X), method=method), got, atol=1e-12
    )
