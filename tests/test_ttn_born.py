"""Born-rule probabilities, marginals and exact sampling of a tree, against dense truth."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from scipy.stats import chisquare

from tnml.exceptions import InvalidInputError
from tnml.tensor.ttn import TTN, tree_layout_1d, tree_layout_2d
from tnml.tensor.ttn_born import ttn_log_prob, ttn_marginal_log_prob, ttn_sample


def random_tree(layout, phys=2, bond=3, seed=0) -> TTN:
    tree = TTN.random(layout, phys, bond, generator=torch.Generator().manual_seed(seed))
    tree.tensors[0][0] = tree.tensors[0][0] * 5.0  # off the canonical form and unit scale
    tree.is_canonical = False
    return tree


LAYOUTS = {
    "1d-10": tree_layout_1d(10),
    "1d-7": tree_layout_1d(7),
    "2d-2x5": tree_layout_2d(2, 5),
    "2d-3x3": tree_layout_2d(3, 3),
}


def dense_probs(tree: TTN) -> torch.Tensor:
    psi = tree.to_dense()
    psi = psi.reshape(psi.shape[: tree.layout.n_leaves])
    return psi.square() / psi.square().sum()


def pooled_chisquare(counts: np.ndarray, probs: np.ndarray) -> float:
    keep = probs * counts.sum() >= 5
    observed = np.append(counts[keep], counts[~keep].sum())
    expected = np.append(probs[keep], probs[~keep].sum()) * counts.sum()
    if expected[-1] == 0:
        observed, expected = observed[:-1], expected[:-1]
    return float(chisquare(observed, expected).pvalue)


@pytest.mark.parametrize("name", LAYOUTS)
def test_log_prob_matches_dense_and_sums_to_one(name):
    tree = random_tree(LAYOUTS[name])
    n = tree.layout.n_leaves
    x = torch.tensor(list(itertools.product([0, 1], repeat=n)))
    p = ttn_log_prob(tree, x).exp()
    torch.testing.assert_close(p, dense_probs(tree).reshape(-1), rtol=1e-10, atol=1e-14)
    assert abs(float(p.sum()) - 1) < 1e-10


@pytest.mark.parametrize("name", ["1d-10", "2d-3x3"])
@pytest.mark.parametrize("subset", [[0], [4, 1], [2, 3, 8]])
def test_marginals_match_dense(name, subset):
    tree = random_tree(LAYOUTS[name], seed=1)
    probs = dense_probs(tree)
    n = tree.layout.n_leaves
    rest = tuple(i for i in range(n) if i not in subset)
    marginal = probs.sum(dim=rest)  # axes in increasing leaf order
    values = torch.tensor(list(itertools.product([0, 1], repeat=len(subset))))
    got = ttn_marginal_log_prob(tree, subset, values).exp()
    order = sorted(subset)
    for row, p in zip(values.tolist(), got, strict=True):
        assignment = dict(zip(subset, row, strict=True))
        assert abs(float(p) - float(marginal[tuple(assignment[s] for s in order)])) < 1e-12


@pytest.mark.parametrize("name", ["1d-10", "2d-2x5"])
def test_samples_follow_the_exact_distribution(name):
    tree = random_tree(LAYOUTS[name], seed=2)
    probs = dense_probs(tree).reshape(-1).numpy()
    samples = ttn_sample(tree, 30_000, generator=torch.Generator().manual_seed(0))
    codes = samples.numpy() @ (2 ** np.arange(9, -1, -1))
    assert pooled_chisquare(np.bincount(codes, minlength=1024), probs) > 1e-3


def test_conditional_samples_follow_the_exact_conditional():
    tree = random_tree(LAYOUTS["2d-2x5"], seed=3)
    probs = dense_probs(tree)
    evidence = {0: 1, 6: 0, 9: 1}
    cond = probs[1][..., 0, :, :, 1].reshape(-1).numpy()  # leaves 1..9, fix 6 and 9
    cond = cond / cond.sum()
    samples = ttn_sample(
        tree, 30_000, evidence=evidence, generator=torch.Generator().manual_seed(1)
    )
    assert (samples[:, 0] == 1).all() and (samples[:, 6] == 0).all() and (samples[:, 9] == 1).all()
    free = [1, 2, 3, 4, 5, 7, 8]
    codes = samples[:, free].numpy() @ (2 ** np.arange(6, -1, -1))
    assert pooled_chisquare(np.bincount(codes, minlength=128), cond) > 1e-3


def test_per_sample_evidence_and_bad_input():
    tree = random_tree(LAYOUTS["1d-7"], seed=4)
    values = torch.tensor([0, 1] * 50)
    samples = ttn_sample(
        tree, 100, evidence={3: values}, generator=torch.Generator().manual_seed(2)
    )
    assert torch.equal(samples[:, 3], values)
    with pytest.raises(InvalidInputError, match="evidence"):
        ttn_sample(tree, 5, evidence={7: 0})
    with pytest.raises(InvalidInputError, match=r"indices\[0, 2\]"):
        ttn_log_prob(tree, torch.tensor([[0, 0, 2, 0, 0, 0, 0]]))
