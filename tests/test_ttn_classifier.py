"""The TTN classifier module and its scikit-learn estimator."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.utils.estimator_checks import parametrize_with_checks

import tnml.io
from tnml.estimators.ttn_classifier import TTNClassifier
from tnml.exceptions import InvalidInputError
from tnml.features import embed
from tnml.nn.ttn import TTNClassifierModule
from tnml.tensor.ttn import TTN, contract_ttn_product_states, tree_layout_2d


def amplitudes_by_hand(module: TTNClassifierModule, x: torch.Tensor) -> torch.Tensor:
    """f_l(x) by explicit recursion over the tree, node by node (no log scaling), float64."""
    phi = embed(x.double(), module.feature_map, module.feature_dim)
    if module.n_features == 1:
        phi = torch.cat(
            (phi, torch.nn.functional.one_hot(torch.zeros_like(phi[:, :, 0]).long(), 2).double()),
            dim=1,
        )
    tree = module.tree
    tensors = {}
    for layer, groups in enumerate(module.node_groups):
        for idx, i in groups:
            for j, k in enumerate(idx):
                tensors[(layer, k)] = module.nodes[i][j].detach().double()

    def vector(ref):
        if isinstance(ref, int):
            return phi[:, ref]
        a, b = tree.children(ref)
        return torch.einsum("ba,bc,acp->bp", vector(a), vector(b), tensors[ref])

    return vector(tree.root)


@pytest.mark.parametrize("readout", ["normalized", "born", "linear"])
@pytest.mark.parametrize(
    ("n_features", "layout"), [(5, "1d"), (6, (2, 3)), (9, "image"), (1, "1d")]
)
def test_module_readouts_match_explicit_amplitudes(readout, n_features, layout):
    g = torch.Generator().manual_seed(1)
    module = TTNClassifierModule(
        n_features, 3, 3, layout=layout, readout=readout, init_std=0.3, dtype=torch.float64
    )
    module.reset_parameters(generator=g)
    x = torch.rand(5, n_features, generator=g, dtype=torch.float64)
    f = amplitudes_by_hand(module, x)
    logits = module(x)
    assert logits.shape == (5, 3)
    if readout == "linear":
        torch.testing.assert_close(logits, f)
    elif readout == "born":
        torch.testing.assert_close(logits.softmax(1), f**2 / (f**2).sum(1, keepdim=True))
    else:
        expected = module.log_temperature.exp() * f / f.norm(dim=1, keepdim=True)
        torch.testing.assert_close(logits, expected)


def test_layout_and_bond_structure():
    module = TTNClassifierModule(64, 10, 8, layout=(8, 8))
    assert module.layout == [8, 8] and module.tree == tree_layout_2d(8, 8)
    shapes = [tuple(module.nodes[i].shape) for layer in module.node_groups for _, i in layer]
    # bonds min(D, Da * Db): exact products low in the tree, the label index on the root
    assert shapes == [
        (32, 2, 2, 4),
        (16, 4, 4, 8),
        (8, 8, 8, 8),
        (4, 8, 8, 8),
        (2, 8, 8, 8),
        (1, 8, 8, 10),
    ]
    # an odd count carries a node up, giving two shapes in one layer
    odd = TTNClassifierModule(9, 2, 8)
    assert [len(layer) for layer in odd.node_groups] == [1, 1, 1, 1]
    assert tuple(odd.nodes[odd.node_groups[-1][0][1]].shape) == (1, 8, 2, 2)
    assert "layout=(8, 8)" in repr(module) and "depth=6" in repr(module)


def test_initial_amplitudes_are_moderate_and_unit_norm_while_exact():
    X, _ = load_digits(return_X_y=True)
    module = TTNClassifierModule(64, 10, 20, layout=(8, 8), readout="linear", init_std=0.0)
    module.reset_parameters(generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        f = module(torch.tensor(X / 16, dtype=torch.float32))
    norms = f.norm(dim=1)
    assert torch.isfinite(norms).all()
    assert 0.1 < float(norms.median()) < 1e3
    # the first layers copy the product exactly: the 2x2-patch vectors keep unit norm
    ttn = module.to_ttn()
    t0, t1 = ttn.tensors[0][0], ttn.tensors[1][0]
    u = embed(torch.rand(7, 4, dtype=torch.float32), "trig", 2)
    v = torch.einsum("ba,bc,acp->bp", u[:, 0], u[:, 1], t0)
    w = torch.einsum("ba,bc,acp->bp", u[:, 2], u[:, 3], t0)
    top = torch.einsum("ba,bc,acp->bp", v, w, t1)
    torch.testing.assert_close(top.norm(dim=1), torch.ones(7))


@pytest.mark.parametrize("readout", ["normalized", "born"])
@pytest.mark.parametrize("layout", ["1d", (28, 28)])
def test_float32_stable_at_784_features(readout, layout):
    g = torch.Generator().manual_seed(0)
    module = TTNClassifierModule(784, 10, 16, layout=layout, readout=readout)
    module.reset_parameters(generator=g)
    x = torch.rand(8, 784, generator=g)
    logits = module(x)
    loss = torch.nn.functional.cross_entropy(logits, torch.arange(8) % 10)
    loss.backward()
    assert torch.isfinite(logits).all() and torch.isfinite(loss)
    for name, param in module.named_parameters():
        assert torch.isfinite(param.grad).all(), name


@pytest.mark.parametrize(("n_features", "layout"), [(7, "1d"), (12, (3, 4)), (1, "1d")])
def test_to_ttn_and_from_ttn_round_trip(n_features, layout):
    g = torch.Generator().manual_seed(2)
    module = TTNClassifierModule(n_features, 3, 4, layout=layout, init_std=0.5, dtype=torch.float64)
    module.reset_parameters(generator=g)
    ttn = module.to_ttn()
    assert isinstance(ttn, TTN) and ttn.out_dim == 3
    x = torch.rand(6, n_features, generator=g, dtype=torch.float64)
    want = amplitudes_by_hand(module, x)
    again = TTNClassifierModule.from_ttn(ttn, n_features=n_features, readout="linear")
    torch.testing.assert_close(again(x), want)
    # a truncated, canonical TTN (smaller bonds, a log_scale) is zero-padded exactly
    small, _ = ttn.truncate(max_bond=2)
    padded = TTNClassifierModule.from_ttn(small, n_features=n_features, readout="linear")
    assert padded.bond_dim == small.max_bond_dim == (2 if n_features > 1 else 1)
    wide = TTNClassifierModule.from_ttn(small, n_features=n_features, readout="linear", bond_dim=4)
    phi = embed(x, "trig", 2)
    if n_features == 1:
        phi = torch.cat((phi, torch.tensor([1.0, 0.0], dtype=phi.dtype).expand_as(phi)), dim=1)
    m, ls = contract_ttn_product_states(small, phi)
    expected = m * ls.exp().unsqueeze(1)
    torch.testing.assert_close(padded(x), expected)
    torch.testing.assert_close(wide(x), expected)
    if n_features > 1:
        with pytest.raises(InvalidInputError, match="bond_dim"):
            TTNClassifierModule.from_ttn(ttn, n_features=n_features, bond_dim=1)


def test_module_rejects_bad_input():
    module = TTNClassifierModule(6, 2, 3)
    with pytest.raises(InvalidInputError, match=r"shape \(batch, 6\)"):
        module(torch.rand(2, 5))
    with pytest.raises(InvalidInputError, match=r"\[0, 1\]"):
        module(torch.full((2, 6), 1.5))
    with pytest.raises(InvalidInputError, match="NaN"):
        module(torch.full((2, 6), float("nan")))
    with pytest.raises(InvalidInputError, match="bond_dim"):
        TTNClassifierModule(6, 2, 0)
    with pytest.raises(InvalidInputError, match="layout='image'"):
        TTNClassifierModule(6, 2, 3, layout="image")
    with pytest.raises(InvalidInputError, match=r"layout=\(2, 2\)"):
        TTNClassifierModule(6, 2, 3, layout=(2, 2))
    with pytest.raises(InvalidInputError, match="layout must be"):
        TTNClassifierModule(6, 2, 3, layout="2d")
    with pytest.raises(InvalidInputError, match="readout"):
        TTNClassifierModule(6, 2, 3, readout="softmax")


def test_module_trains_inside_a_plain_pytorch_loop():
    X, y = load_digits(return_X_y=True)
    X = torch.tensor(X[:400] / 16, dtype=torch.float32)
    y = torch.tensor(y[:400])
    module = TTNClassifierModule(64, 10, 8, layout=(8, 8))
    module.reset_parameters(generator=torch.Generator().manual_seed(0))
    opt = torch.optim.Adam(module.parameters(), lr=1e-2)
    first = None
    for _ in range(40):
        loss = torch.nn.functional.cross_entropy(module(X), y)
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first


@parametrize_with_checks([TTNClassifier(epochs=10)])
def test_sklearn_compatible(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def digits_split():
    X, y = load_digits(return_X_y=True)
    return train_test_split(X / 16, y, test_size=0.25, stratify=y, random_state=0)


def test_digits_accuracy_and_reproducibility(digits_split):
    X_tr, X_te, y_tr, y_te = digits_split
    clf = TTNClassifier(bond_dim=12, layout="image", epochs=5, random_state=3).fit(X_tr, y_tr)
    assert clf.score(X_te, y_te) > 0.95
    assert clf.module_.tree.grid == (8, 8)
    again = TTNClassifier(bond_dim=12, layout="image", epochs=5, random_state=3).fit(X_tr, y_tr)
    np.testing.assert_array_equal(clf.predict_proba(X_te), again.predict_proba(X_te))
    proba = clf.predict_proba(X_te)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(np.exp(clf.predict_log_proba(X_te)), proba, rtol=1e-9)
    assert len(clf.history_) == clf.n_iter_ == 5 and clf.best_epoch_ is not None


def test_born_readout_trains_with_default_clipping(digits_split):
    X_tr, X_te, y_tr, y_te = digits_split
    clf = TTNClassifier(bond_dim=12, layout=(8, 8), readout="born", epochs=5, random_state=0)
    assert clf.fit(X_tr, y_tr).score(X_te, y_te) > 0.9
    proba = clf.predict_proba(X_te[:5])
    with torch.no_grad():
        f = clf.module_.amplitudes(torch.tensor(X_te[:5], dtype=torch.float32))[0].double()
    np.testing.assert_allclose(proba, (f**2 / (f**2).sum(1, keepdim=True)).numpy(), atol=1e-6)


def test_save_load_round_trip(digits_split, tmp_path, monkeypatch):
    monkeypatch.setitem(tnml.io.ESTIMATORS, "TTNClassifier", TTNClassifier)
    X_tr, X_te, y_tr, _ = digits_split
    clf = TTNClassifier(bond_dim=6, layout=(8, 8), epochs=1, random_state=0).fit(X_tr, y_tr)
    loaded = tnml.io.load(tnml.io.save(clf, tmp_path / "ttn.tnml"))
    assert isinstance(loaded, TTNClassifier) and loaded.module_.layout == [8, 8]
    np.testing.assert_array_equal(loaded.predict_proba(X_te), clf.predict_proba(X_te))
    # the JSON round trip turned the layout tuple into a list; it still fits
    assert loaded.get_params()["layout"] == [8, 8]
    loaded.set_params(epochs=1, warm_start=False).fit(X_tr[:200], y_tr[:200])


def test_estimator_layout_and_parameter_errors():
    rng = np.random.default_rng(0)
    X, y = rng.random((20, 6)), np.arange(20) % 2
    with pytest.raises(InvalidInputError, match="layout='image'"):
        TTNClassifier(layout="image", epochs=1).fit(X, y)
    with pytest.raises(InvalidInputError, match=r"layout=\(2, 4\)"):
        TTNClassifier(layout=(2, 4), epochs=1).fit(X, y)
    with pytest.raises(ValueError, match="layout"):
        TTNClassifier(layout="2d", epochs=1).fit(X, y)
    with pytest.raises(ValueError, match="max_grad_norm"):
        TTNClassifier(max_grad_norm=0.0, epochs=1).fit(X, y)
    fitted = TTNClassifier(bond_dim=2, epochs=1, layout=(2, 3)).fit(X, y)
    assert fitted.module_.tree.grid == (2, 3)
    with pytest.raises(ValueError, match="6 features"):
        fitted.predict(rng.random((4, 5)))
    # a fit-time max_grad_norm overrides the parameter
    TTNClassifier(bond_dim=2, epochs=1, max_grad_norm=None).fit(X, y, max_grad_norm=1.0)
