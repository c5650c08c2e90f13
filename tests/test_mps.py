"""Tests for tnml.tensor.mps against dense (independent) truth."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tnml.exceptions import InvalidInputError
from tnml.tensor.contract import contract_product_states
from tnml.tensor.mps import MPS, mps_canonicalize

DTYPES = [torch.float64, torch.complex128]
SETTINGS = settings(max_examples=25, deadline=None)
TOL = {"rtol": 1e-9, "atol": 1e-10}


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Small linear algebra is far slower with OpenMP threads on a busy shared machine."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@st.composite
def mps_strategy(draw: st.DrawFn, min_sites: int = 1, max_sites: int = 6) -> MPS:
    n = draw(st.integers(min_sites, max_sites))
    dims = draw(st.lists(st.integers(2, 3), min_size=n, max_size=n))
    bond = draw(st.integers(1, 6))
    dtype = draw(st.sampled_from(DTYPES))
    seed = draw(st.integers(0, 2**31 - 1))
    normalize = draw(st.booleans())
    g = torch.Generator().manual_seed(seed)
    m = MPS.random(n, dims, bond, generator=g, dtype=dtype, normalize=normalize)
    if not normalize:  # a non-trivial overall scale
        m.log_scale = m.log_scale + draw(st.floats(-3, 3))
    return m


def _left_iso(a: torch.Tensor) -> torch.Tensor:
    """sum_{l,s} conj(A[l,s,r]) A[l,s,r'] ."""
    return torch.einsum("lsr,lsq->rq", a.conj(), a)


def _right_iso(a: torch.Tensor) -> torch.Tensor:
    """sum_{s,r} A[l,s,r] conj(A[q,s,r]) ."""
    return torch.einsum("lsr,qsr->lq", a, a.conj())


def _eye(k: int, like: torch.Tensor) -> torch.Tensor:
    return torch.eye(k, dtype=like.dtype)


def _dense_amplitudes(psi: torch.Tensor, phis: list[torch.Tensor]) -> torch.Tensor:
    out = psi.unsqueeze(0).expand(phis[0].shape[0], *psi.shape)
    for p in phis:  # contract the leading physical index each time
        dtype = torch.promote_types(out.dtype, p.dtype)
        out = torch.einsum("bs...,bs->b...", out.to(dtype), p.to(dtype))
    return out


def _check_canonical(m: MPS, center: int) -> None:
    for i, a in enumerate(m.cores):
        if i < center:
            torch.testing.assert_close(_left_iso(a), _eye(a.shape[2], a), rtol=0, atol=1e-10)
        elif i > center:
            torch.testing.assert_close(_right_iso(a), _eye(a.shape[0], a), rtol=0, atol=1e-10)
    c = m.cores[center]
    assert abs(float(torch.linalg.vector_norm(c)) - 1.0) < 1e-10
    assert m.center == center


# ---- construction and dense conversion -----------------------------------------------------


@SETTINGS
@given(
    dims=st.lists(st.integers(1, 3), min_size=1, max_size=7),
    dtype=st.sampled_from(DTYPES),
    seed=st.integers(0, 2**31 - 1),
    scale=st.floats(1e-3, 1e3),
)
def test_from_dense_round_trip(
    dims: list[int], dtype: torch.dtype, seed: int, scale: float
) -> None:
    psi = scale * torch.randn(*dims, dtype=dtype, generator=torch.Generator().manual_seed(seed))
    m = MPS.from_dense(psi)
    assert m.phys_dims == tuple(dims)
    assert m.n_sites == len(dims) and len(m.bond_dims) == len(dims) - 1
    torch.testing.assert_close(m.to_dense(), psi, **TOL)
    _check_canonical(m, len(dims) - 1)
    assert m.dtype == dtype and m.log_scale.dtype == dtype.to_real()


def test_from_dense_truncates() -> None:
    psi = torch.randn(2, 2, 2, 2, 2, 2, dtype=torch.float64)
    m = MPS.from_dense(psi, max_bond=3)
    assert m.max_bond_dim == 3
    exact = MPS.from_dense(psi)
    assert exact.bond_dims == (2, 4, 8, 4, 2)


def test_random_bonds_seed_and_norm() -> None:
    a = MPS.random(7, 2, 5, generator=torch.Generator().manual_seed(3))
    b = MPS.random(7, 2, 5, generator=torch.Generator().manual_seed(3))
    assert a.bond_dims == (2, 4, 5, 5, 4, 2)
    assert a.max_bond_dim == 5
    for x, y in zip(a.cores, b.cores, strict=True):
        assert torch.equal(x, y)
    torch.testing.assert_close(torch.linalg.vector_norm(a.to_dense()), torch.tensor(1.0).double())
    c = MPS.random(3, [3, 1, 2], 6, dtype=torch.complex64)
    assert c.phys_dims == (3, 1, 2) and c.bond_dims == (2, 2) and c.dtype == torch.complex64
    assert c.log_scale.dtype == torch.float32


def test_repr() -> None:
    r = repr(MPS.random(3, 2, 2))
    assert "n_sites=3" in r and "phys_dims=(2, 2, 2)" in r and "bond_dims=(2, 2)" in r
    assert "float64" in r
    long = repr(MPS.random(40, 2, 2))
    assert "..." in long and len(long) < 200


# ---- canonical forms -----------------------------------------------------------------------


@SETTINGS
@given(m=mps_strategy(), data=st.data())
def test_canonicalize_every_center(m: MPS, data: st.DataObject) -> None:
    psi = m.to_dense()
    norm = torch.linalg.vector_norm(psi)
    for c in range(m.n_sites):
        mc = m.canonicalize(c)
        torch.testing.assert_close(mc.to_dense(), psi, **TOL)
        _check_canonical(mc, c)
        torch.testing.assert_close(mc.log_scale.exp(), norm, **TOL)
    assert m.center is None  # the original is untouched
    # moving a known centre around (the incremental path)
    mc = m.canonicalize(data.draw(st.integers(0, m.n_sites - 1)))
    for _ in range(3):
        c = data.draw(st.integers(0, m.n_sites - 1))
        mc = mc.canonicalize(c)
        _check_canonical(mc, c)
        torch.testing.assert_close(mc.to_dense(), psi, **TOL)


@SETTINGS
@given(m=mps_strategy(min_sites=2), data=st.data())
def test_left_and_right_canonicalize(m: MPS, data: st.DataObject) -> None:
    psi = m.to_dense()
    upto = data.draw(st.integers(0, m.n_sites - 1))
    left = m.left_canonicalize(upto)
    torch.testing.assert_close(left.to_dense(), psi, **TOL)
    for a in left.cores[:upto]:
        torch.testing.assert_close(_left_iso(a), _eye(a.shape[2], a), rtol=0, atol=1e-10)
    assert left.center == (upto if upto == m.n_sites - 1 else None)
    right = m.right_canonicalize(upto)
    torch.testing.assert_close(right.to_dense(), psi, **TOL)
    for a in right.cores[upto + 1 :]:
        torch.testing.assert_close(_right_iso(a), _eye(a.shape[0], a), rtol=0, atol=1e-10)
    # left then right: both sides isometric (centre unknown unless at an end), state kept
    both = left.right_canonicalize(upto)
    torch.testing.assert_close(both.to_dense(), psi, **TOL)
    for a in both.cores[:upto]:
        torch.testing.assert_close(_left_iso(a), _eye(a.shape[2], a), rtol=0, atol=1e-10)
    for a in both.cores[upto + 1 :]:
        torch.testing.assert_close(_right_iso(a), _eye(a.shape[0], a), rtol=0, atol=1e-10)
    # from a known centre, left/right canonicalize move it
    start = m.canonicalize(0)
    _check_canonical(start.left_canonicalize(upto), upto)
    _check_canonical(start.left_canonicalize(upto).right_canonicalize(0), 0)
    # defaults: fully left / right canonical
    _check_canonical(m.left_canonicalize(), m.n_sites - 1)
    _check_canonical(m.right_canonicalize(), 0)


def test_in_place_twins() -> None:
    m = MPS.random(5, 2, 3, generator=torch.Generator().manual_seed(0))
    psi = m.to_dense()
    snapshot = [c.clone() for c in m.cores]
    old_cores = list(m.cores)
    out = m.canonicalize_(2)
    assert out is m and m.center == 2
    torch.testing.assert_close(m.to_dense(), psi)
    # the original tensors were not modified in place
    assert all(torch.equal(a, b) for a, b in zip(old_cores, snapshot, strict=True))
    assert m.left_canonicalize_() is m and m.center == 4
    assert m.right_canonicalize_() is m and m.center == 0
    m.log_scale = m.log_scale + 2.0
    assert m.normalize_() is m
    torch.testing.assert_close(m.norm(), torch.tensor(1.0).double())
    t, _ = m.truncate_(max_bond=1)
    assert t is m and m.max_bond_dim == 1
    # the module function and the method agree
    torch.testing.assert_close(mps_canonicalize(m, 1).to_dense(), m.canonicalize(1).to_dense())


# ---- norms and overlaps --------------------------------------------------------------------


@SETTINGS
@given(m=mps_strategy())
def test_norm_matches_dense(m: MPS) -> None:
    psi = m.to_dense()
    expected = torch.linalg.vector_norm(psi)
    torch.testing.assert_close(m.norm(), expected, **TOL)
    torch.testing.assert_close(m.log_norm(), expected.log(), **TOL)
    torch.testing.assert_close(m.canonicalize(0).norm(), expected, **TOL)  # centre shortcut
    n = m.normalize()
    torch.testing.assert_close(torch.linalg.vector_norm(n.to_dense()), torch.ones_like(expected))
    assert n.log_scale.ndim == 0


def _scaled_gauged_isometries(
    n: int, d: int, bond: int, seed: int, dtype: torch.dtype
) -> tuple[MPS, float]:
    """A long MPS of known norm: left isometries times per-core scales, then gauge-mixed.

    Cores are ``c_i * Q_i`` with ``Q_i`` left isometries (the last a unit vector), so the
    norm is ``prod c_i``. Random invertible matrices ``G`` are then inserted on every bond
    (``A_i G``, ``G^-1 A_{i+1}``), which keeps the state but destroys the canonical form.
    """
    g = torch.Generator().manual_seed(seed)
    scales = 2.0 + 2.0 * torch.rand(n, generator=g, dtype=torch.float64)
    dims = [1] + [min(bond, d ** min(k, n - k)) for k in range(1, n)] + [1]
    cores = []
    for i in range(n):
        dl, dr = dims[i], dims[i + 1]
        x = torch.randn(dl * d, dr, generator=g, dtype=torch.float64)
        q, _ = torch.linalg.qr(x)
        cores.append(float(scales[i]) * q.reshape(dl, d, dr))
    cores[-1] = cores[-1] / torch.linalg.vector_norm(cores[-1]) * float(scales[-1])
    for i in range(n - 1):
        k = dims[i + 1]
        o, _ = torch.linalg.qr(torch.randn(k, k, generator=g, dtype=torch.float64))
        diag = torch.exp(torch.rand(k, generator=g, dtype=torch.float64) - 0.5)
        gauge = o * diag
        cores[i] = torch.einsum("lsr,rq->lsq", cores[i], gauge)
        cores[i + 1] = torch.einsum("qr,rsx->qsx", torch.linalg.inv(gauge), cores[i + 1])
    return MPS([c.to(dtype) for c in cores]), float(scales.log().sum())


def test_log_norm_long_float32_chain() -> None:
    m, expected = _scaled_gauged_isometries(300, 2, 4, seed=0, dtype=torch.float32)
    assert expected > 300 * math.log(2.0)  # far beyond float32 range (log max ~ 88.7)
    ln = m.log_norm()
    assert ln.dtype == torch.float32 and bool(torch.isfinite(ln))
    assert abs(float(ln) - expected) < 1e-4 * expected
    # overlap with itself is the squared norm, still in log space
    phase, log_abs = m.log_overlap(m)
    assert float(phase) == pytest.approx(1.0, abs=1e-5)
    assert abs(float(log_abs) - 2 * expected) < 2e-4 * expected
    # canonicalising a long chain keeps everything finite and the norm in log_scale
    c = m.canonicalize(150)
    assert abs(float(c.log_scale) - expected) < 1e-4 * expected
    assert all(bool(torch.isfinite(a).all()) for a in c.cores)


@SETTINGS
@given(data=st.data())
def test_overlap_matches_dense_vdot(data: st.DataObject) -> None:
    a = data.draw(mps_strategy())
    dims = a.phys_dims
    dtype_b = data.draw(st.sampled_from(DTYPES))
    seed = data.draw(st.integers(0, 2**31 - 1))
    b = MPS.random(
        len(dims), list(dims), 4, generator=torch.Generator().manual_seed(seed), dtype=dtype_b
    )
    b.log_scale = b.log_scale + 1.5
    expected = torch.vdot(
        a.to_dense().flatten().to(torch.complex128), b.to_dense().flatten().to(torch.complex128)
    )
    got = a.overlap(b)
    assert got.dtype == torch.promote_types(a.dtype, b.dtype)
    torch.testing.assert_close(got.to(torch.complex128), expected, **TOL)
    phase, log_abs = a.log_overlap(b)
    torch.testing.assert_close(log_abs, expected.abs().log().to(log_abs.dtype), **TOL)
    torch.testing.assert_close(phase.abs().double(), torch.tensor(1.0).double(), **TOL)


def test_overlap_of_orthogonal_states_is_zero() -> None:
    up = torch.tensor([1.0, 0.0], dtype=torch.float64)
    down = torch.tensor([0.0, 1.0], dtype=torch.float64)
    a = MPS([up.reshape(1, 2, 1), up.reshape(1, 2, 1)])
    b = MPS([up.reshape(1, 2, 1), down.reshape(1, 2, 1)])
    phase, log_abs = a.log_overlap(b)
    assert float(phase) == 0.0 and float(log_abs) == -math.inf
    assert float(a.overlap(b)) == 0.0


# ---- truncation ----------------------------------------------------------------------------


@SETTINGS
@given(
    m=mps_strategy(min_sites=2),
    max_bond=st.one_of(st.none(), st.integers(1, 4)),
    cutoff=st.sampled_from([0.0, 1e-2, 0.2]),
    mode=st.sampled_from(["rel", "abs", "sum2"]),
)
def test_truncate_error_equals_discarded_weight(
    m: MPS, max_bond: int | None, cutoff: float, mode: str
) -> None:
    psi = m.to_dense()
    nrm = torch.linalg.vector_norm(psi)
    t, dw = m.truncate(max_bond=max_bond, cutoff=cutoff, cutoff_mode=mode)
    if max_bond is not None:
        assert t.max_bond_dim <= max_bond
    dist2 = torch.linalg.vector_norm(psi / nrm - t.to_dense() / nrm).square()
    # the per-bond errors are orthogonal: equality, not just the bound
    assert float(dist2) <= float(dw) + 1e-10
    torch.testing.assert_close(dist2, dw, rtol=1e-7, atol=1e-10)
    _check_canonical(t, m.n_sites - 1)
    torch.testing.assert_close(t.norm().square(), nrm.square() * (1 - dw), **TOL)
    r, dw_r = m.truncate(max_bond=max_bond, cutoff=cutoff, cutoff_mode=mode, renorm=True)
    torch.testing.assert_close(r.norm(), nrm, **TOL)
    torch.testing.assert_close(dw_r, dw, **TOL)


@SETTINGS
@given(dtype=st.sampled_from(DTYPES), seed=st.integers(0, 2**31 - 1), keep=st.integers(1, 3))
def test_truncate_single_bond_matches_dense_schmidt_tail(
    dtype: torch.dtype, seed: int, keep: int
) -> None:
    # bonds (2, 4, 2): max_bond = keep <= 3 cuts the middle bond (and the others only if keep=1)
    m = MPS.random(4, 2, 4, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    psi = m.to_dense()
    psi = psi / torch.linalg.vector_norm(psi)
    t, dw = m.truncate(max_bond=keep)
    dist2 = torch.linalg.vector_norm(psi - t.to_dense() / m.norm()).square()
    torch.testing.assert_close(dist2, dw, rtol=1e-8, atol=1e-12)
    if keep >= 2:  # only bond 1 is cut: the error is the tail of the exact Schmidt spectrum
        s = np.linalg.svd(psi.reshape(4, 4).numpy(), compute_uv=False)
        np.testing.assert_allclose(float(dw), float(np.sum(s[keep:] ** 2)), rtol=1e-8, atol=1e-12)


def test_truncate_without_truncation_is_exact() -> None:
    m = MPS.random(5, 2, 3, generator=torch.Generator().manual_seed(2))
    t, dw = m.truncate()
    assert float(dw) < 1e-20
    torch.testing.assert_close(t.to_dense(), m.to_dense())


# ---- entanglement --------------------------------------------------------------------------


@SETTINGS
@given(m=mps_strategy(min_sites=2), data=st.data())
def test_schmidt_values_match_dense_svd(m: MPS, data: st.DataObject) -> None:
    bond = data.draw(st.integers(0, m.n_sites - 2))
    psi = m.to_dense()
    psi = psi / torch.linalg.vector_norm(psi)
    left = math.prod(m.phys_dims[: bond + 1])
    expected = np.linalg.svd(psi.reshape(left, -1).numpy(), compute_uv=False)
    got = m.schmidt_values(bond).numpy()
    k = min(len(got), len(expected))
    np.testing.assert_allclose(got[:k], expected[:k], atol=1e-10)
    # whatever either side has beyond the common length is zero
    assert np.all(np.abs(got[k:]) < 1e-10) and np.all(np.abs(expected[k:]) < 1e-10)
    assert float(np.sum(got**2)) == pytest.approx(1.0, abs=1e-10)


def test_entropy_of_product_and_ghz_states() -> None:
    g = torch.Generator().manual_seed(0)
    vecs = [torch.randn(2, generator=g, dtype=torch.float64) for _ in range(5)]
    product = MPS([v.reshape(1, 2, 1) for v in vecs])
    for b in range(4):
        assert abs(float(product.entanglement_entropy(b))) < 1e-12
        assert abs(float(product.entanglement_entropy(b, kind="renyi2"))) < 1e-12
    ghz = torch.zeros((2,) * 5, dtype=torch.float64)
    ghz[(0,) * 5] = ghz[(1,) * 5] = 7.0  # any scale: entropies are of the normalised state
    m = MPS.from_dense(ghz)
    for b in range(4):
        torch.testing.assert_close(m.entanglement_entropy(b), torch.tensor(math.log(2.0)).double())
        torch.testing.assert_close(
            m.entanglement_entropy(b, kind="renyi2"), torch.tensor(math.log(2.0)).double()
        )
    ghz_c = MPS.from_dense(ghz.to(torch.complex128) * 1j)
    assert float(ghz_c.entanglement_entropy(2)) == pytest.approx(math.log(2.0), abs=1e-12)


# ---- product-state contraction -------------------------------------------------------------


@SETTINGS
@given(m=mps_strategy(), data=st.data())
def test_contract_product_states_matches_dense(m: MPS, data: st.DataObject) -> None:
    batch = data.draw(st.integers(1, 5))
    g = torch.Generator().manual_seed(data.draw(st.integers(0, 2**31 - 1)))
    phi_dtype = data.draw(st.sampled_from(DTYPES))
    phis = [torch.randn(batch, d, generator=g, dtype=phi_dtype) for d in m.phys_dims]
    expected = _dense_amplitudes(m.to_dense(), phis)
    mant, log_abs = m.contract_product_states(phis)
    assert mant.shape == (batch,) and log_abs.shape == (batch,)
    assert not log_abs.is_complex()
    got = mant * log_abs.exp().to(mant.dtype)
    torch.testing.assert_close(got.to(expected.dtype), expected, **TOL)
    if len(set(m.phys_dims)) == 1:  # the (B, N, d) tensor form
        mant2, log2 = contract_product_states(m.cores, torch.stack(phis, 1), m.log_scale)
        torch.testing.assert_close(mant2, mant)
        torch.testing.assert_close(log2, log_abs)


def test_contract_product_states_long_float32_chain() -> None:
    """400 sites in float32: amplitude = prod_i (phi_i . a) * l^T G^(N-2) r, up to ~3^400."""
    n, batch = 400, 6
    a = torch.tensor([3.0, 1.0], dtype=torch.float64)
    theta = 0.01
    rot = torch.eye(3, dtype=torch.float64)
    rot[:2, :2] = torch.tensor(
        [[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]]
    )
    e0 = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    first = torch.einsum("s,r->sr", a, e0).reshape(1, 2, 3)
    middle = torch.einsum("s,lr->lsr", a, rot)
    last = torch.einsum("l,s->ls", e0, a).reshape(3, 2, 1)
    cores = [first] + [middle] * (n - 2) + [last]
    x = torch.rand(batch, n, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    phi = torch.stack([torch.cos(math.pi * x / 2), torch.sin(math.pi * x / 2)], dim=-1)

    factor = e0 @ torch.linalg.matrix_power(rot, n - 2) @ e0  # cos((n-2) theta) < 0
    expected_log = (phi @ a).log().sum(dim=1) + factor.abs().log()
    expected_sign = torch.sign(factor)
    assert float(expected_log.min()) > 200  # the raw product overflows float32

    mant, log_abs = contract_product_states([c.float() for c in cores], phi.float(), 0.5)
    assert mant.dtype == torch.float32 and log_abs.dtype == torch.float32
    assert bool(torch.isfinite(mant).all()) and bool(torch.isfinite(log_abs).all())
    torch.testing.assert_close(mant, expected_sign.float().expand(batch), rtol=0, atol=1e-4)
    torch.testing.assert_close(log_abs.double(), expected_log + 0.5, rtol=1e-5, atol=1e-3)


def test_contract_product_states_is_differentiable() -> None:
    g = torch.Generator().manual_seed(4)
    m = MPS.random(4, 2, 3, generator=g)
    cores = [c.clone().requires_grad_(True) for c in m.cores]
    phi = torch.rand(3, 4, 2, generator=g, dtype=torch.float64)

    def amplitude(*cs: torch.Tensor) -> torch.Tensor:
        mant, log_abs = contract_product_states(list(cs), phi)
        return mant * log_abs.exp()

    assert torch.autograd.gradcheck(amplitude, tuple(cores))


def test_zero_amplitude_is_guarded() -> None:
    up = torch.tensor([1.0, 0.0], dtype=torch.float64).reshape(1, 2, 1)
    phi = torch.tensor([[[0.0, 1.0], [1.0, 0.0]]], dtype=torch.float64)  # orthogonal at site 0
    mant, log_abs = contract_product_states([up, up], phi)
    assert float(mant) == 0.0 and bool(torch.isfinite(log_abs).all())


# ---- bad input -----------------------------------------------------------------------------


def test_bad_cores() -> None:
    with pytest.raises(InvalidInputError, match=r"cores\[1\].*D_left = 3"):
        MPS([torch.randn(1, 2, 2), torch.randn(3, 2, 1)])
    with pytest.raises(InvalidInputError, match=r"cores\[1\] must be 3-dim"):
        MPS([torch.randn(1, 2, 2), torch.randn(2, 2)])
    with pytest.raises(InvalidInputError, match=r"cores\[0\] must have D_left = 1"):
        MPS([torch.randn(2, 2, 1)])
    with pytest.raises(InvalidInputError, match=r"cores\[1\] must have D_right = 1"):
        MPS([torch.randn(1, 2, 2), torch.randn(2, 2, 2)])
    with pytest.raises(InvalidInputError, match=r"cores\[1\] has dtype"):
        MPS([torch.randn(1, 2, 2), torch.randn(2, 2, 1, dtype=torch.float64)])
    with pytest.raises(InvalidInputError, match="non-empty"):
        MPS([])
    with pytest.raises(InvalidInputError, match="float or complex"):
        MPS([torch.ones(1, 2, 1, dtype=torch.int64)])
    with pytest.raises(InvalidInputError, match="log_scale"):
        MPS([torch.randn(1, 2, 1)], log_scale=torch.zeros(2))


def test_bad_arguments() -> None:
    m = MPS.random(4, 2, 2)
    with pytest.raises(InvalidInputError, match="bond"):
        m.schmidt_values(3)
    with pytest.raises(InvalidInputError, match="bond"):
        m.entanglement_entropy(-1)
    with pytest.raises(InvalidInputError, match="kind"):
        m.entanglement_entropy(1, kind="shannon")
    with pytest.raises(InvalidInputError, match="center"):
        m.canonicalize(4)
    with pytest.raises(InvalidInputError, match="upto"):
        m.left_canonicalize(7)
    with pytest.raises(InvalidInputError, match="max_bond"):
        m.truncate(max_bond=0)
    with pytest.raises(InvalidInputError, match="physical dims"):
        m.overlap(MPS.random(4, 3, 2))
    with pytest.raises(InvalidInputError, match="other must be an MPS"):
        m.overlap(m.to_dense())  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="phi must have shape"):
        m.contract_product_states(torch.rand(3, 5, 2, dtype=torch.float64))
    with pytest.raises(InvalidInputError, match="phi at site 2"):
        m.contract_product_states([torch.rand(3, 2)] * 2 + [torch.rand(3, 3)] + [torch.rand(3, 2)])
    with pytest.raises(InvalidInputError, match="psi"):
        MPS.from_dense(torch.ones(2, 2, dtype=torch.int64))
    with pytest.raises(InvalidInputError, match="phys_dim"):
        MPS.random(3, [2, 2], 2)
    with pytest.raises(InvalidInputError, match="bond_dim"):
        MPS.random(3, 2, 0)
    with pytest.raises(InvalidInputError, match="at least 2 sites"):
        MPS.random(1, 2, 2).schmidt_values(0)
    zero = MPS([torch.zeros(1, 2, 1, dtype=torch.float64)])
    assert float(zero.norm()) == 0.0
    with pytest.raises(InvalidInputError, match="normalize"):
        zero.normalize()
