"""Reduced density matrices and entropies of an MPS (tnml.tensor.rdm) against dense truth."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tnml.exceptions import InvalidInputError
from tnml.tensor.entropy import density_matrix_entropy, probability_entropy, schmidt_entropy
from tnml.tensor.mps import MPS
from tnml.tensor.rdm import (
    mps_mutual_information,
    mps_one_site_rdms,
    mps_pair_entropies,
    mps_two_site_rdms,
)

TOL = 1e-9

# (physical dims, bond dim): uniform d=2 up to 12 sites, d=3, and mixed dims
CASES = [
    ([2] * 12, 6),
    ([2] * 7, 3),
    ([3] * 6, 5),
    ([2, 3, 2, 2, 3, 2, 3], 4),
]


def random_state(dims: list[int], bond: int, dtype: torch.dtype, seed: int = 0) -> MPS:
    g = torch.Generator().manual_seed(seed)
    return MPS.random(len(dims), dims, bond, generator=g, dtype=dtype, normalize=False)


def dense(mps: MPS) -> np.ndarray:
    psi = mps.to_dense().numpy()
    return psi / np.linalg.norm(psi)


def dense_rdm(psi: np.ndarray, sites: list[int]) -> np.ndarray:
    """rho of ``sites`` (in that order) as a (prod d, prod d) matrix."""
    psi = np.moveaxis(psi, sites, list(range(len(sites))))
    rest = list(range(len(sites), psi.ndim))
    rho = np.tensordot(psi, psi.conj(), axes=(rest, rest))  # (s_sites..., s'_sites...)
    m = math.prod(psi.shape[: len(sites)])
    return rho.reshape(m, m)


def dense_entropy(rho: np.ndarray, kind: str = "vn") -> float:
    p = np.clip(np.linalg.eigvalsh(rho), 0, None)
    p = p / p.sum()
    if kind == "vn":
        nz = p[p > 0]
        return float(-(nz * np.log(nz)).sum())
    return float(-np.log((p**2).sum()))


@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
@pytest.mark.parametrize(("dims", "bond"), CASES)
def test_one_and_two_site_rdms_match_dense(dims, bond, dtype):
    mps = random_state(dims, bond, dtype)
    psi = dense(mps)
    n, d = len(dims), max(dims)
    one = mps_one_site_rdms(mps).numpy()
    two = mps_two_site_rdms(mps).numpy()
    assert one.shape == (n, d, d)
    assert two.shape == (n, n, d, d, d, d)
    for i in range(n):
        di = dims[i]
        np.testing.assert_allclose(one[i, :di, :di], dense_rdm(psi, [i]), atol=TOL)
        assert np.all(one[i, di:] == 0) and np.all(one[i, :, di:] == 0)
        assert np.all(two[i, i] == 0)
        for j in range(n):
            if i == j:
                continue
            dj = dims[j]
            got = two[i, j, :di, :dj, :di, :dj].reshape(di * dj, di * dj)
            np.testing.assert_allclose(got, dense_rdm(psi, [i, j]), atol=TOL)


@pytest.mark.parametrize("kind", ["vn", "renyi2"])
@pytest.mark.parametrize(("dims", "bond"), CASES)
def test_pair_entropies_and_mutual_information_match_dense(dims, bond, kind):
    mps = random_state(dims, bond, torch.float64, seed=3)
    psi = dense(mps)
    n = len(dims)
    single = [dense_entropy(dense_rdm(psi, [i]), kind) for i in range(n)]
    pair = np.zeros((n, n))
    mi = np.zeros((n, n))
    for i in range(n):
        pair[i, i] = single[i]
        for j in range(i + 1, n):
            pair[i, j] = pair[j, i] = dense_entropy(dense_rdm(psi, [i, j]), kind)
            mi[i, j] = mi[j, i] = single[i] + single[j] - pair[i, j]
    np.testing.assert_allclose(mps_pair_entropies(mps, kind).numpy(), pair, atol=1e-8)
    got = mps_mutual_information(mps, kind).numpy()
    np.testing.assert_allclose(got, mi, atol=1e-8)
    assert np.array_equal(got, got.T)
    assert np.all(np.diag(got) == 0)


def test_mutual_information_bounds_and_complex_states():
    mps = random_state([2] * 9, 4, torch.complex128, seed=5)
    mi = mps_mutual_information(mps).numpy()
    assert mi.dtype == np.float64
    assert np.array_equal(mi, mi.T)
    assert mi.min() >= -1e-12
    assert mi.max() <= 2 * math.log(2) + 1e-12
    assert mi.max() > 1e-3  # a random state is correlated


def test_product_state_has_no_mutual_information():
    g = torch.Generator().manual_seed(2)
    cores = [torch.randn(1, 3, 1, generator=g, dtype=torch.float64) for _ in range(8)]
    mps = MPS(cores, log_scale=7.0)
    np.testing.assert_allclose(mps_mutual_information(mps).numpy(), 0.0, atol=1e-12)
    # its one-site rdms are the normalised local projectors
    one = mps_one_site_rdms(mps)
    for c, rho in zip(cores, one, strict=True):
        v = c.reshape(-1) / c.norm()
        torch.testing.assert_close(rho, torch.outer(v, v), atol=1e-12, rtol=0)


def test_bell_pairs_have_maximal_mutual_information():
    # sites (0, 3) and (1, 2) form Bell pairs, built densely and converted to an MPS
    psi = torch.zeros(2, 2, 2, 2, dtype=torch.float64)
    for a in range(2):
        for b in range(2):
            psi[a, b, b, a] = 0.5
    mi = mps_mutual_information(MPS.from_dense(psi)).numpy()
    expected = np.zeros((4, 4))
    expected[0, 3] = expected[3, 0] = expected[1, 2] = expected[2, 1] = 2 * math.log(2)
    np.testing.assert_allclose(mi, expected, atol=1e-12)


@pytest.mark.parametrize("label_site", [0, 2, 4])
def test_traced_dims_trace_out_part_of_a_site(label_site):
    # the layout of MPSClassifierModule.to_mps(): site k carries s * L + l, the label traced
    d, n_labels, n = 2, 3, 5
    dims = [d] * n
    dims[label_site] = d * n_labels
    mps = random_state(dims, 4, torch.float64, seed=label_site)
    psi = dense(mps)
    split = [d] * n
    split.insert(label_site + 1, n_labels)
    psi = psi.reshape(split)  # the label is axis label_site + 1
    label_axis = label_site + 1
    sites = [k if k <= label_site else k + 1 for k in range(n)]  # axes of the kept indices
    traced = [1] * n
    traced[label_site] = n_labels
    one = mps_one_site_rdms(mps, traced_dims=traced).numpy()
    two = mps_two_site_rdms(mps, traced_dims=traced).numpy()
    mi = mps_mutual_information(mps, traced_dims=traced).numpy()
    assert one.shape == (n, d, d)
    assert two.shape == (n, n, d, d, d, d)
    singles = []
    for i in range(n):
        rho = dense_rdm(psi, [sites[i]])
        np.testing.assert_allclose(one[i], rho, atol=TOL)
        singles.append(dense_entropy(rho))
    for i in range(n):
        for j in range(i + 1, n):
            rho = dense_rdm(psi, [sites[i], sites[j]])
            np.testing.assert_allclose(two[i, j].reshape(d * d, d * d), rho, atol=TOL)
            s_ij = dense_entropy(rho)
            assert mi[i, j] == pytest.approx(singles[i] + singles[j] - s_ij, abs=1e-8)
    assert label_axis not in sites
    assert mi.min() >= -1e-12  # subadditivity holds for the mixed state too


def test_single_site_and_input_left_untouched():
    mps = random_state([3], 1, torch.float64)
    before = [c.clone() for c in mps.cores]
    rho = mps_one_site_rdms(mps)
    v = mps.cores[0].reshape(-1)
    torch.testing.assert_close(rho[0], torch.outer(v, v) / v.dot(v))
    assert mps_two_site_rdms(mps).shape == (1, 1, 3, 3, 3, 3)
    assert mps_mutual_information(mps).tolist() == [[0.0]]
    assert mps.center is None
    for a, b in zip(before, mps.cores, strict=True):
        assert torch.equal(a, b)


def test_long_chain_stays_finite():
    # 300 sites of unnormalised cores: the raw norm would overflow float64
    g = torch.Generator().manual_seed(0)
    cores = [3.0 * torch.randn(1 if i == 0 else 4, 2, 1 if i == 299 else 4, generator=g)
             for i in range(300)]  # fmt: skip
    mps = MPS([c.double() for c in cores])
    one = mps_one_site_rdms(mps)
    assert torch.isfinite(one).all()
    torch.testing.assert_close(
        one.diagonal(dim1=1, dim2=2).sum(1), torch.ones(300, dtype=torch.float64)
    )


def test_entropy_helpers():
    p = torch.tensor([[0.25, 0.25, 0.25, 0.25], [1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    vn = probability_entropy(p.double(), "vn")
    r2 = probability_entropy(p.double(), "renyi2")
    torch.testing.assert_close(vn, torch.tensor([math.log(4), 0.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(r2, torch.tensor([math.log(4), 0.0, 0.0], dtype=torch.float64))
    # unnormalised weights are normalised; Renyi-2 never exceeds von Neumann
    q = torch.tensor([3.0, 1.0], dtype=torch.float64)
    assert float(probability_entropy(q)) == pytest.approx(
        -(0.75 * math.log(0.75) + 0.25 * math.log(0.25))
    )
    assert float(probability_entropy(q, "renyi2")) < float(probability_entropy(q))
    s = torch.tensor([math.sqrt(0.5), math.sqrt(0.5)], dtype=torch.float64)
    assert float(schmidt_entropy(s)) == pytest.approx(math.log(2))
    rho = torch.eye(3, dtype=torch.complex128) / 3
    assert float(density_matrix_entropy(rho)) == pytest.approx(math.log(3))
    assert float(density_matrix_entropy(rho, "renyi2")) == pytest.approx(math.log(3))


def test_bad_input_is_rejected_with_a_clear_message():
    mps = random_state([2, 2, 2], 2, torch.float64)
    with pytest.raises(InvalidInputError, match="mps must be an MPS"):
        mps_one_site_rdms(torch.zeros(2, 2))
    with pytest.raises(InvalidInputError, match="kind must be one of"):
        mps_mutual_information(mps, kind="shannon")
    with pytest.raises(InvalidInputError, match="does not divide"):
        mps_one_site_rdms(mps, traced_dims=[1, 3, 1])
    with pytest.raises(InvalidInputError, match="traced_dims must be a sequence of n_sites=3"):
        mps_two_site_rdms(mps, traced_dims=[1, 1])
    zero = MPS([torch.zeros(1, 2, 1, dtype=torch.float64)] * 3)
    with pytest.raises(InvalidInputError, match="zero state"):
        mps_pair_entropies(zero)
    with pytest.raises(InvalidInputError, match=r"rho must have shape \(\.\.\., m, m\)"):
        density_matrix_entropy(torch.zeros(2, 3))
