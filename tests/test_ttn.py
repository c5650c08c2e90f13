"""Tests for tnml.tensor.ttn against dense (independent) truth."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tnml.exceptions import InvalidInputError
from tnml.tensor.ttn import (
    TTN,
    TreeLayout,
    contract_tree_product_states,
    group_node_tensors,
    tree_layout_1d,
    tree_layout_2d,
    tree_log_amplitudes,
    tree_log_norm,
    ttn_canonicalize,
    ttn_from_dense,
    ungroup_node_tensors,
)

SETTINGS = settings(max_examples=20, deadline=None)
TOL = {"rtol": 1e-9, "atol": 1e-10}

LAYOUTS = {
    "1d-6": lambda: tree_layout_1d(6),
    "1d-8": lambda: tree_layout_1d(8),
    "1d-9": lambda: tree_layout_1d(9),
    "2d-4x4": lambda: tree_layout_2d(4, 4),
    "2d-3x4": lambda: tree_layout_2d(3, 4),
}


def _random(layout: TreeLayout, bond: int = 3, out: int = 1, dtype=torch.float64, seed=0) -> TTN:
    g = torch.Generator().manual_seed(seed)
    ttn = TTN.random(layout, 2, bond, out_dim=out, generator=g, dtype=dtype, normalize=False)
    ttn.log_scale = ttn.log_scale + 0.7  # a non-trivial overall scale
    return ttn


def _dense_amplitudes(psi: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    """psi (d, ..., d[, out]) contracted with phi (B, N, d) leaf by leaf -> (B[, out])."""
    out = psi.unsqueeze(0).expand(phi.shape[0], *psi.shape)
    dtype = torch.promote_types(psi.dtype, phi.dtype)
    for i in range(phi.shape[1]):
        out = torch.einsum("bs...,bs->b...", out.to(dtype), phi[:, i].to(dtype))
    return out


def _iso_defect(t: torch.Tensor) -> float:
    m = t.reshape(-1, t.shape[2])
    eye = torch.eye(m.shape[1], dtype=m.dtype)
    return float((m.conj().T @ m - eye).abs().max())


def _dense_schmidt(psi: torch.Tensor, leaves: tuple[int, ...], n: int) -> torch.Tensor:
    rest = [i for i in range(psi.ndim) if i not in leaves]
    m = psi.permute(*leaves, *rest)
    m = m.reshape(math.prod(psi.shape[i] for i in leaves), -1)
    return torch.linalg.svdvals(m) / torch.linalg.vector_norm(psi)


def _pad(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    k = max(a.numel(), b.numel())
    return torch.nn.functional.pad(a, (0, k - a.numel())), torch.nn.functional.pad(
        b, (0, k - b.numel())
    )


# ---- layouts -------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 3, 5, 6, 8, 9, 17, 64, 100])
def test_layout_1d_covers_each_leaf_once(n):
    layout = tree_layout_1d(n)
    assert sorted(layout.leaf_order) == list(range(n))
    assert layout.leaf_order == tuple(range(n))  # neighbours stay in order
    assert layout.depth == math.ceil(math.log2(n))
    assert layout.n_nodes == n - 1
    assert layout.parent(layout.root) is None
    for node in layout.nodes:
        a, b = layout.children(node)
        assert layout.leaves_below(node) == layout.leaves_below(a) + layout.leaves_below(b)
        assert layout.parent(a) == (node, 0) and layout.parent(b) == (node, 1)
    # layer 0 pairs neighbours
    assert layout.pairs[0][:2] == ((0, 1), (2, 3))[: len(layout.pairs[0][:2])]


def _patch(layout: TreeLayout, node) -> tuple[int, int, set[tuple[int, int]]]:
    width = layout.grid[1]
    cells = {(i // width, i % width) for i in layout.leaves_below(node)}
    rows = {r for r, _ in cells}
    cols = {c for _, c in cells}
    return len(rows), len(cols), cells


@pytest.mark.parametrize("shape", [(4, 4), (3, 4), (8, 8), (3, 3), (1, 5), (5, 1), (2, 7), (6, 5)])
def test_layout_2d_nodes_cover_rectangular_patches(shape):
    h, w = shape
    layout = tree_layout_2d(h, w)
    assert layout.grid == (h, w)
    assert sorted(layout.leaf_order) == list(range(h * w))
    for node in layout.nodes:
        nr, nc, cells = _patch(layout, node)
        rows = {r for r, _ in cells}
        cols = {c for _, c in cells}
        # a full, contiguous rectangle
        assert len(cells) == nr * nc
        assert max(rows) - min(rows) + 1 == nr and max(cols) - min(cols) + 1 == nc
    nr, nc, _ = _patch(layout, layout.root)
    assert (nr, nc) == (h, w)


def test_layout_2d_patch_sizes_alternate_horizontal_vertical():
    layout = tree_layout_2d(8, 8)
    sizes = [
        {_patch(layout, (layer, k))[:2] for k in range(n)}
        for layer, n in enumerate(layout.layer_sizes)
    ]
    assert sizes == [{(1, 2)}, {(2, 2)}, {(2, 4)}, {(4, 4)}, {(4, 8)}, {(8, 8)}]
    # 3 x 4: a carried odd row gets merged horizontally on its own
    layout = tree_layout_2d(3, 4)
    sizes = [
        sorted({_patch(layout, (layer, k))[:2] for k in range(n)})
        for layer, n in enumerate(layout.layer_sizes)
    ]
    assert sizes == [[(1, 2)], [(2, 2)], [(1, 4), (2, 4)], [(3, 4)]]


def test_layout_validation_errors():
    with pytest.raises(InvalidInputError, match="n must be >= 2"):
        tree_layout_1d(1)
    with pytest.raises(InvalidInputError, match="n must be an int"):
        tree_layout_1d(4.0)
    with pytest.raises(InvalidInputError, match="height and width"):
        tree_layout_2d(0, 4)
    with pytest.raises(InvalidInputError, match="exactly once"):
        TreeLayout(4, (((0, 1), (1, 2)), ((0, 1),)), ((), ()))
    with pytest.raises(InvalidInputError, match="single root"):
        TreeLayout(4, (((0, 1), (2, 3)),), ((),))
    with pytest.raises(InvalidInputError, match="one entry per layer"):
        TreeLayout(4, (((0, 1), (2, 3)), ((0, 1),)), ((),))
    with pytest.raises(InvalidInputError, match="grid"):
        TreeLayout(4, (((0, 1), (2, 3)), ((0, 1),)), ((), ()), grid=(3, 3))
    layout = tree_layout_1d(4)
    with pytest.raises(InvalidInputError, match="node"):
        layout.children((5, 0))
    with pytest.raises(InvalidInputError, match="leaf"):
        layout.leaves_below(7)
    # lists (e.g. from JSON) are accepted and normalised
    same = TreeLayout(4, [[[0, 1], [2, 3]], [[0, 1]]], [[], []])
    assert same == layout and hash(same) == hash(layout)


# ---- container and dense truth -------------------------------------------------------------


def test_ttn_validation_errors():
    layout = tree_layout_1d(4)
    good = _random(layout)
    tensors = [list(r) for r in good.tensors]
    with pytest.raises(InvalidInputError, match="one entry per layer"):
        TTN(layout, tensors[:1])
    bad = [list(r) for r in tensors]
    bad[1][0] = torch.zeros(3, 2, 1, dtype=torch.float64)
    with pytest.raises(InvalidInputError, match=r"node \(1, 0\)"):
        TTN(layout, bad)
    bad = [list(r) for r in tensors]
    bad[0][1] = bad[0][1].float()
    with pytest.raises(InvalidInputError, match="dtype"):
        TTN(layout, bad)
    bad = [list(r) for r in tensors]
    bad[0][0] = torch.zeros(2, 2, dtype=torch.float64)
    with pytest.raises(InvalidInputError, match="3-dim"):
        TTN(layout, bad)
    with pytest.raises(InvalidInputError, match=r"phi must have shape \(B, N=4, d=2\)"):
        good.contract_product_states(torch.rand(3, 5, 2, dtype=torch.float64))
    with pytest.raises(InvalidInputError, match="indices must lie"):
        good.log_amplitudes(torch.full((2, 4), 2))
    with pytest.raises(InvalidInputError, match="integer"):
        good.log_amplitudes(torch.zeros(2, 4))
    with pytest.raises(InvalidInputError, match="node"):
        good.schmidt_values((3, 0))
    with pytest.raises(InvalidInputError, match="max_bond"):
        good.truncate(0)


@pytest.mark.parametrize("name", list(LAYOUTS))
@pytest.mark.parametrize("out", [1, 3])
@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
def test_contraction_matches_dense(name, out, dtype):
    layout = LAYOUTS[name]()
    ttn = _random(layout, bond=3, out=out, dtype=dtype)
    psi = ttn.to_dense()
    expected_shape = (2,) * layout.n_leaves + ((out,) if out > 1 else ())
    assert psi.shape == expected_shape
    g = torch.Generator().manual_seed(1)
    phi = torch.randn(5, layout.n_leaves, 2, generator=g, dtype=torch.float64)
    mantissa, log_abs = ttn.contract_product_states(phi)
    assert mantissa.shape == (5, out) and log_abs.shape == (5,)
    got = mantissa * log_abs.exp().unsqueeze(1)
    want = _dense_amplitudes(psi, phi).reshape(5, out)
    torch.testing.assert_close(got, want.to(got.dtype), **TOL)
    torch.testing.assert_close(
        torch.linalg.vector_norm(mantissa, dim=1), torch.ones(5, dtype=torch.float64), **TOL
    )


def test_to_dense_uses_original_leaf_order():
    """A 2D tree contracts leaves out of order; to_dense must put them back."""
    layout = tree_layout_2d(2, 4)  # contraction order (0, 1, 4, 5, 2, 3, 6, 7)
    assert layout.leaf_order != tuple(range(8))
    ttn = _random(layout, bond=4)
    psi = ttn.to_dense()
    phi = torch.zeros(8, 8, 2, dtype=torch.float64)
    phi[..., 0] = 1.0
    for b in range(8):  # basis state with only leaf b set to 1
        phi[b, b] = torch.tensor([0.0, 1.0])
    mantissa, log_abs = ttn.contract_product_states(phi)
    index = [tuple(1 if i == b else 0 for i in range(8)) for b in range(8)]
    want = torch.stack([psi[ix] for ix in index])
    torch.testing.assert_close(mantissa[:, 0] * log_abs.exp(), want, **TOL)


@pytest.mark.parametrize("name", list(LAYOUTS))
@pytest.mark.parametrize("out", [1, 2])
def test_canonical_form_keeps_state_and_makes_isometries(name, out):
    layout = LAYOUTS[name]()
    ttn = _random(layout, bond=5, out=out, dtype=torch.complex128)
    psi = ttn.to_dense()
    canon = ttn_canonicalize(ttn)
    assert canon.is_canonical and not ttn.is_canonical
    torch.testing.assert_close(canon.to_dense(), psi, **TOL)
    for layer, row in enumerate(canon.tensors):
        for k, t in enumerate(row):
            if (layer, k) != layout.root:
                assert _iso_defect(t) < 1e-10
                # bonds never exceed the children's product
                assert t.shape[2] <= t.shape[0] * t.shape[1]
    assert abs(float(torch.linalg.vector_norm(canon.tensors[-1][0])) - 1) < 1e-12
    dense_norm = float(torch.linalg.vector_norm(psi))
    assert float(canon.norm()) == pytest.approx(dense_norm, rel=1e-10)
    assert float(ttn.norm()) == pytest.approx(dense_norm, rel=1e-10)  # doubled contraction
    assert canon.canonicalize() is not canon  # returns a copy
    assert ttn.canonicalize_() is ttn and ttn.is_canonical


def test_canonicalize_shrinks_oversized_bonds():
    layout = tree_layout_1d(4)
    g = torch.Generator().manual_seed(0)
    tensors = [
        [torch.randn(2, 2, 7, generator=g, dtype=torch.float64) for _ in range(2)],
        [torch.randn(7, 7, 1, generator=g, dtype=torch.float64)],
    ]
    ttn = TTN(layout, tensors)
    canon = ttn.canonicalize()
    assert canon.bond_dims == ((4, 4), (1,))
    torch.testing.assert_close(canon.to_dense(), ttn.to_dense(), **TOL)


def test_log_norm_is_differentiable_and_matches_dense():
    layout = tree_layout_1d(9)
    ttn = _random(layout, bond=3, out=2)
    leaves = [[t.clone().requires_grad_(True) for t in row] for row in ttn.tensors]
    groups = group_node_tensors(leaves)
    log_norm = tree_log_norm(layout, groups, ttn.log_scale)
    log_norm.backward()
    grads = [t.grad.clone() for row in leaves for t in row]
    for row in leaves:
        for t in row:
            t.grad = None
    dense = TTN(layout, leaves, ttn.log_scale).to_dense()
    ref = torch.linalg.vector_norm(dense).log()
    ref.backward()
    torch.testing.assert_close(log_norm.detach(), ref.detach(), **TOL)
    for got, t in zip(grads, [t for row in leaves for t in row], strict=True):
        torch.testing.assert_close(got, t.grad, **TOL)


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_truncation_lossless_at_full_rank_and_reports_dense_error(name):
    layout = LAYOUTS[name]()
    ttn = _random(layout, bond=6, out=2, seed=3)
    psi = ttn.to_dense()
    full, discarded = ttn.truncate(max_bond=64)
    assert float(discarded) < 1e-24
    torch.testing.assert_close(full.to_dense(), psi, **TOL)
    for max_bond in (1, 2, 3):
        cut, discarded = ttn.truncate(max_bond=max_bond)
        assert cut.is_canonical and cut.max_bond_dim <= max_bond
        err = float(((psi - cut.to_dense()).abs() ** 2).sum() / (psi.abs() ** 2).sum())
        assert float(discarded) == pytest.approx(err, rel=1e-8, abs=1e-14)
        assert float(discarded) > 1e-6  # something was cut
        renormed, _ = ttn.truncate(max_bond=max_bond, renorm=True)
        assert float(renormed.norm()) == pytest.approx(float(ttn.norm()), rel=1e-10)
    # cutoff drops small Schmidt values
    cut, discarded = ttn.truncate(cutoff=0.3)
    assert cut.max_bond_dim < full.max_bond_dim
    err = float(((psi - cut.to_dense()).abs() ** 2).sum() / (psi.abs() ** 2).sum())
    assert float(discarded) == pytest.approx(err, rel=1e-8)
    same, _ = ttn.truncate_(max_bond=2)
    assert same is ttn


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_schmidt_values_match_dense_svd(name):
    layout = LAYOUTS[name]()
    ttn = _random(layout, bond=4, out=3, seed=5)
    psi = ttn.to_dense()
    n = layout.n_leaves
    refs = [*layout.nodes, 0, n - 1, n // 2]
    for ref in refs:
        s = ttn.schmidt_values(ref)
        if ref == layout.root:
            leaves = tuple(range(n))
        else:
            leaves = layout.leaves_below(ref)
        want = _dense_schmidt(psi, leaves, n)
        got, want = _pad(s, want)
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)
    ent = ttn.entanglement_entropy(layout.nodes[0])
    p = ttn.schmidt_values(layout.nodes[0]) ** 2
    assert float(ent) == pytest.approx(float(-(p * p.log()).sum()), rel=1e-10)
    assert float(ttn.entanglement_entropy(layout.nodes[0], "renyi2")) == pytest.approx(
        float(-(p**2).sum().log()), rel=1e-10
    )


def test_from_dense_round_trip_and_truncation():
    layout = tree_layout_2d(3, 4)
    g = torch.Generator().manual_seed(0)
    psi = torch.randn((2,) * 12 + (3,), generator=g, dtype=torch.float64)
    ttn = ttn_from_dense(psi, layout)
    assert ttn.is_canonical and ttn.out_dim == 3
    torch.testing.assert_close(ttn.to_dense(), psi, **TOL)
    for row in ttn.tensors[:-1]:
        for t in row:
            assert _iso_defect(t) < 1e-10
    small = TTN.from_dense(psi, layout, max_bond=3)
    assert small.max_bond_dim <= 3
    # a low-rank state is represented exactly at its rank
    exact = _random(layout, bond=2, seed=1)
    again = ttn_from_dense(exact.to_dense(), layout, max_bond=2)
    torch.testing.assert_close(again.to_dense(), exact.to_dense(), **TOL)


def test_float32_finite_at_1024_leaves():
    layout = tree_layout_2d(32, 32)
    g = torch.Generator().manual_seed(0)
    ttn64 = TTN.random(layout, 2, 6, out_dim=10, generator=g, normalize=False)
    ttn32 = TTN(layout, [[t.float() for t in row] for row in ttn64.tensors])
    x = torch.rand(4, 1024, generator=g, dtype=torch.float64)
    phi = torch.stack([torch.cos(math.pi * x / 2), torch.sin(math.pi * x / 2)], dim=-1)
    m32, l32 = ttn32.contract_product_states(phi.float())
    m64, l64 = ttn64.contract_product_states(phi)
    assert torch.isfinite(m32).all() and torch.isfinite(l32).all()
    assert l64.abs().min() > 100  # the raw amplitudes are far outside float32's range
    torch.testing.assert_close(l32.double(), l64, rtol=1e-4, atol=1e-2)
    torch.testing.assert_close(m32.double(), m64, rtol=0, atol=1e-3)
    ln32, ln64 = ttn32.log_norm(), ttn64.canonicalize().log_norm()
    assert torch.isfinite(ln32)
    assert float(ln32) == pytest.approx(float(ln64), rel=1e-4)
    idx = (x > 0.5).long()
    a32, s32 = ttn32.log_amplitudes(idx)
    assert torch.isfinite(a32).all() and torch.isfinite(s32).all()


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_gathered_amplitudes_equal_one_hot_contraction(name):
    layout = LAYOUTS[name]()
    ttn = _random(layout, bond=3, out=2, seed=2)
    g = torch.Generator().manual_seed(3)
    idx = torch.randint(0, 2, (6, layout.n_leaves), generator=g)
    phi = torch.nn.functional.one_hot(idx, 2).double()
    m1, l1 = ttn.log_amplitudes(idx)
    m2, l2 = ttn.contract_product_states(phi)
    torch.testing.assert_close(m1, m2, **TOL)
    torch.testing.assert_close(l1, l2, **TOL)
    psi = ttn.to_dense()
    want = torch.stack([psi[tuple(row.tolist())] for row in idx])
    torch.testing.assert_close(m1 * l1.exp().unsqueeze(1), want, **TOL)


def test_group_functions_and_stacked_parameters():
    layout = tree_layout_1d(9)  # a carried leaf gives non-uniform layers
    ttn = _random(layout, bond=3)
    groups = group_node_tensors(ttn.tensors)
    assert [len(layer) for layer in groups] == [1, 1, 1, 1]
    back = ungroup_node_tensors(groups)
    for row_a, row_b in zip(back, ttn.tensors, strict=True):
        for a, b in zip(row_a, row_b, strict=True):
            assert torch.equal(a, b)
    phi = torch.rand(3, 9, 2, dtype=torch.float64)
    m, ls = contract_tree_product_states(layout, groups, phi, ttn.log_scale)
    m2, ls2 = ttn.contract_product_states(phi)
    torch.testing.assert_close(m, m2)
    torch.testing.assert_close(ls, ls2)
    idx = torch.randint(0, 2, (3, 9))
    torch.testing.assert_close(
        tree_log_amplitudes(layout, groups, idx, ttn.log_scale)[1], ttn.log_amplitudes(idx)[1]
    )
    with pytest.raises(InvalidInputError, match="listed twice"):
        contract_tree_product_states(
            layout, [groups[0] + groups[0], *groups[1:]], phi, ttn.log_scale
        )


# ---- properties ----------------------------------------------------------------------------


@st.composite
def ttn_strategy(draw: st.DrawFn) -> TTN:
    if draw(st.booleans()):
        layout = tree_layout_1d(draw(st.integers(2, 7)))
    else:
        h, w = draw(st.integers(1, 3)), draw(st.integers(2, 3))
        layout = tree_layout_2d(h, w)
    d = draw(st.integers(2, 3))
    bond = draw(st.integers(1, 5))
    out = draw(st.integers(1, 3))
    dtype = draw(st.sampled_from([torch.float64, torch.complex128]))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    ttn = TTN.random(layout, d, bond, out_dim=out, generator=g, dtype=dtype, normalize=False)
    ttn.log_scale = ttn.log_scale + draw(st.floats(-3, 3))
    return ttn


@SETTINGS
@given(ttn=ttn_strategy(), seed=st.integers(0, 1000))
def test_property_contraction_canonical_and_norm_agree_with_dense(ttn, seed):
    psi = ttn.to_dense()
    d = ttn.phys_dims[0]
    g = torch.Generator().manual_seed(seed)
    phi = torch.randn(3, ttn.n_leaves, d, generator=g, dtype=torch.float64)
    m, ls = ttn.contract_product_states(phi)
    want = _dense_amplitudes(psi, phi).reshape(3, ttn.out_dim)
    torch.testing.assert_close(m * ls.exp().unsqueeze(1), want.to(m.dtype), **TOL)
    canon = ttn.canonicalize()
    torch.testing.assert_close(canon.to_dense(), psi, **TOL)
    norm = float(torch.linalg.vector_norm(psi))
    assert float(ttn.norm()) == pytest.approx(norm, rel=1e-9)
    assert float(canon.norm()) == pytest.approx(norm, rel=1e-9)
    root_s = canon.schmidt_values(canon.layout.nodes[0])
    assert float((root_s**2).sum()) == pytest.approx(1.0, rel=1e-9)


def test_custom_layout_carrying_the_first_leaf():
    """Leaf 0 carried past layer 0 and paired as a left child later (regression)."""
    layout = TreeLayout(5, (((1, 2), (3, 4)), ((0, 1),), ((1, 0),)), ((0,), (2,), ()))
    assert layout.leaf_order == (0, 1, 2, 3, 4)
    ttn = _random(layout, bond=3, out=2, seed=4)
    psi = ttn.to_dense()
    idx = torch.randint(0, 2, (6, 5), generator=torch.Generator().manual_seed(0))
    m1, l1 = ttn.log_amplitudes(idx)
    m2, l2 = ttn.contract_product_states(torch.nn.functional.one_hot(idx, 2).double())
    want = torch.stack([psi[tuple(row.tolist())] for row in idx])
    torch.testing.assert_close(m1 * l1.exp().unsqueeze(1), want, **TOL)
    torch.testing.assert_close(m2 * l2.exp().unsqueeze(1), want, **TOL)
    assert float(ttn.norm()) == pytest.approx(float(torch.linalg.vector_norm(psi)), rel=1e-10)
    s = ttn.schmidt_values(0)
    got, ref = _pad(s, _dense_schmidt(psi, (0,), 5))
    torch.testing.assert_close(got, ref, rtol=1e-9, atol=1e-9)
