"""Born-rule probabilities, marginals and exact sampling of an MPS, against dense truth."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from tnml.exceptions import InvalidInputError
from tnml.tensor import MPS
from tnml.tensor.born import mps_log_prob, mps_marginal_log_prob, mps_sample


def random_state(n_sites=8, phys=2, bond=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    mps = MPS.random(n_sites, phys, bond, generator=g, dtype=torch.float64)
    # a non-trivial scale, and no canonical form, to check that both are handled
    mps.cores[3] = mps.cores[3] * 7.0
    mps.center = None
    return mps


def dense_probs(mps: MPS) -> torch.Tensor:
    psi = mps.to_dense()
    return psi.square() / psi.square().sum()


def all_inputs(dims) -> torch.Tensor:
    return torch.tensor(list(itertools.product(*[range(d) for d in dims])))


def chi_square_p_value(counts: np.ndarray, probs: np.ndarray) -> float:
    from scipy.stats import chisquare

    keep = probs * counts.sum() >= 5  # pool the rare cells, as the test requires
    observed = np.append(counts[keep], counts[~keep].sum())
    expected = np.append(probs[keep], probs[~keep].sum()) * counts.sum()
    if expected[-1] == 0:
        observed, expected = observed[:-1], expected[:-1]
    return float(chisquare(observed, expected).pvalue)


@pytest.mark.parametrize("phys", [2, 3, (2, 3, 2, 4, 2, 3)])
def test_log_prob_matches_dense_and_sums_to_one(phys):
    n = 6
    if isinstance(phys, tuple):
        g = torch.Generator().manual_seed(1)
        cores, dims = [], list(phys)
        bonds = [1, 2, 4, 5, 4, 3, 1]
        for i, d in enumerate(dims):
            cores.append(torch.randn(bonds[i], d, bonds[i + 1], generator=g, dtype=torch.float64))
        mps = MPS(cores)
    else:
        mps = random_state(n, phys, 4)
        dims = [phys] * n
    x = all_inputs(dims)
    logp = mps_log_prob(mps, x)
    probs = dense_probs(mps).reshape(-1)
    torch.testing.assert_close(logp.exp(), probs, rtol=1e-10, atol=1e-14)
    assert abs(float(logp.exp().sum()) - 1.0) < 1e-10


def test_log_prob_finite_over_long_chains_float32():
    mps = MPS.random(600, 2, 16, generator=torch.Generator().manual_seed(0))
    mps.cores = [c * 3.0 for c in mps.cores]
    mps.center = None
    x = torch.randint(0, 2, (5, 600), generator=torch.Generator().manual_seed(1))
    logp = mps_log_prob(mps, x)
    assert torch.isfinite(logp).all() and (logp < 0).all()


def test_log_prob_gradient_is_finite():
    mps = random_state()
    mps.cores = [c.clone().requires_grad_(True) for c in mps.cores]
    x = torch.randint(0, 2, (10, 8), generator=torch.Generator().manual_seed(2))
    (-mps_log_prob(mps, x).mean()).backward()
    assert all(torch.isfinite(c.grad).all() for c in mps.cores)


def test_bad_indices_are_named():
    mps = random_state()
    with pytest.raises(InvalidInputError, match=r"indices\[1, 2\] = 2 is outside \[0, 2\)"):
        x = torch.zeros(3, 8, dtype=torch.long)
        x[1, 2] = 2
        mps_log_prob(mps, x)
    with pytest.raises(InvalidInputError, match="shape"):
        mps_log_prob(mps, torch.zeros(3, 7, dtype=torch.long))
    with pytest.raises(InvalidInputError, match="integers"):
        mps_log_prob(mps, torch.zeros(3, 8))


@pytest.mark.parametrize("sites", [[0], [5], [2, 3], [6, 1, 4], [0, 7], [0, 1, 2, 3, 4, 5, 6, 7]])
def test_marginals_match_dense(sites):
    mps = random_state(8, 2, 4)
    probs = dense_probs(mps)
    rest = [i for i in range(8) if i not in sites]
    marginal = probs.sum(dim=tuple(rest)) if rest else probs
    # marginal's axes are in increasing site order; index it in the order given
    order = sorted(sites)
    values = all_inputs([2] * len(sites))
    logp = mps_marginal_log_prob(mps, sites, values)
    for row, lp in zip(values, logp, strict=True):
        assignment = dict(zip(sites, row.tolist(), strict=True))
        expected = marginal[tuple(assignment[s] for s in order)]
        assert abs(float(lp.exp()) - float(expected)) < 1e-12


def test_samples_follow_the_exact_distribution():
    mps = random_state(10, 2, 4, seed=3)
    probs = dense_probs(mps).reshape(-1).numpy()
    samples = mps_sample(mps, 40_000, generator=torch.Generator().manual_seed(0))
    assert samples.shape == (40_000, 10) and samples.dtype == torch.long
    codes = (samples * (2 ** torch.arange(9, -1, -1))).sum(1).numpy()
    counts = np.bincount(codes, minlength=2**10)
    assert chi_square_p_value(counts, probs) > 1e-3


def test_conditional_samples_follow_the_exact_conditional():
    mps = random_state(10, 2, 4, seed=4)
    probs = dense_probs(mps)
    evidence = {1: 1, 6: 0, 9: 1}
    cond = probs[:, 1][..., 0, :, :, 1]  # fix site 1 = 1, site 6 = 0, site 9 = 1
    cond = cond.reshape(-1).numpy()
    cond = cond / cond.sum()
    samples = mps_sample(mps, 30_000, evidence=evidence, generator=torch.Generator().manual_seed(1))
    assert (samples[:, 1] == 1).all() and (samples[:, 6] == 0).all() and (samples[:, 9] == 1).all()
    free = [0, 2, 3, 4, 5, 7, 8]
    codes = (samples[:, free] * (2 ** torch.arange(6, -1, -1))).sum(1).numpy()
    counts = np.bincount(codes, minlength=2**7)
    assert chi_square_p_value(counts, cond) > 1e-3


def test_per_sample_evidence_conditions_each_row():
    mps = random_state(6, 2, 3, seed=5)
    probs = dense_probs(mps)
    values = torch.tensor([0, 1] * 5000)
    samples = mps_sample(
        mps, 10_000, evidence={0: values}, generator=torch.Generator().manual_seed(2)
    )
    assert torch.equal(samples[:, 0], values)
    for v in (0, 1):
        rows = samples[values == v]
        freq = rows[:, 1].float().mean().item()
        expected = float(probs[v, 1].sum() / probs[v].sum())
        assert abs(freq - expected) < 4 * np.sqrt(expected * (1 - expected) / rows.shape[0])


def test_sampling_is_reproducible_and_checks_evidence():
    mps = random_state()
    a = mps_sample(mps, 50, generator=torch.Generator().manual_seed(7))
    b = mps_sample(mps, 50, generator=torch.Generator().manual_seed(7))
    assert torch.equal(a, b)
    with pytest.raises(InvalidInputError, match="evidence"):
        mps_sample(mps, 5, evidence={8: 0})
    with pytest.raises(InvalidInputError, match=r"evidence\[2\] must lie in"):
        mps_sample(mps, 5, evidence={2: 3})
    with pytest.raises(InvalidInputError, match="n_samples"):
        mps_sample(mps, 0)


def test_continuous_density_with_whitened_trig_map_integrates_to_one():
    from numpy.polynomial.legendre import leggauss

    from tnml.tensor.born import mps_log_density

    mps = random_state(4, 2, 2, seed=6)
    metric = np.array([[0.5, 1 / np.pi], [1 / np.pi, 0.5]])  # int_0^1 f f^T, trig map
    w, v = np.linalg.eigh(metric)
    whiten = torch.as_tensor(v @ np.diag(w**-0.5) @ v.T)
    nodes, weights = leggauss(16)  # converges far below 1e-10 for these smooth integrands
    nodes, weights = (nodes + 1) / 2, weights / 2  # on [0, 1]
    grid = torch.as_tensor(np.stack(np.meshgrid(*[nodes] * 4, indexing="ij"), -1))
    x = grid.reshape(-1, 4)
    f = torch.stack([torch.cos(np.pi * x / 2), torch.sin(np.pi * x / 2)], -1)
    density = mps_log_density(mps, f @ whiten).exp()
    w4 = np.einsum("i,j,k,l->ijkl", *[weights] * 4).reshape(-1)
    assert abs(float((density.numpy() * w4).sum()) - 1.0) < 1e-10


def test_impossible_evidence_is_a_clear_error_not_nan():
    mps = random_state(6, 2, 3, seed=8)
    mps.cores[4] = mps.cores[4].clone()
    mps.cores[4][:, 1, :] = 0.0  # site 4 can never take the value 1
    mps.center = None
    evidence = {4: torch.tensor([0, 1, 0]), 5: 1}
    with pytest.raises(InvalidInputError, match=r"evidence of samples \[1\]"):
        mps_sample(mps, 3, evidence=evidence, generator=torch.Generator().manual_seed(0))
    logp = mps_marginal_log_prob(mps, [4, 5], torch.tensor([[0, 1], [1, 1]]))
    assert torch.isfinite(logp[0]) and torch.isneginf(logp[1])
