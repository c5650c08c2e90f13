"""One-site tree sweeps for the TTN Born machine, against autograd and dense contraction."""

from __future__ import annotations

import itertools
import signal

import numpy as np
import pytest
import torch

import tnml
from tnml.exceptions import InvalidInputError
from tnml.nn.born import TTNBornModule
from tnml.nn.ttn import node_shapes
from tnml.tensor.ttn import TTN, ttn_canonicalize
from tnml.tensor.ttn_born import ttn_log_prob
from tnml.train.ttn_born_sweep import (
    _node_gradient,
    _TreeSweeper,
    euler_tour,
    train_ttn_born_sweep,
)


def correlated_bits(n_samples: int, n_sites: int, seed: int = 0) -> torch.Tensor:
    """Noisy copies of two templates over ``n_sites`` bits."""
    g = torch.Generator().manual_seed(seed)
    templates = torch.stack([torch.arange(n_sites) % 2, (torch.arange(n_sites) // 3) % 2])
    rows = templates[torch.randint(0, 2, (n_samples,), generator=g)]
    flips = torch.rand(rows.shape, generator=g) < 0.1
    return torch.where(flips, 1 - rows, rows)


def random_tree(layout: object, n_sites: int, bond_dim: int, seed: int) -> TTN:
    module = TTNBornModule(n_sites, 2, bond_dim, layout=layout, init_std=0.5, dtype=torch.float64)
    module.reset_parameters(generator=torch.Generator().manual_seed(seed))
    return module.to_ttn()


def all_inputs(n: int) -> torch.Tensor:
    return torch.tensor(list(itertools.product([0, 1], repeat=n)))


def dense_unit(tensors: list[list[torch.Tensor]], ttn: TTN) -> torch.Tensor:
    psi = TTN(ttn.layout, [list(row) for row in tensors]).to_dense()
    return psi / psi.norm()


def test_euler_tour_visits_every_node_through_neighbours():
    layout = tnml.tensor.ttn.tree_layout_2d(4, 4)
    tour = euler_tour(layout)
    assert tour[0] == tour[-1] == layout.root
    assert set(tour) == set(layout.nodes)
    assert len(tour) == 2 * layout.n_nodes - 1  # every edge down and back up once
    for a, b in itertools.pairwise(tour):
        assert b in layout.children(a) or a in layout.children(b)


@pytest.mark.parametrize(("layout", "n_sites"), [((4, 4), 16), ("1d", 10), ("1d", 7)])
def test_moves_keep_the_state_and_the_centre_gradient_is_exact(layout, n_sites):
    # on every node of the tour: the represented state is unchanged, Z = ||centre||^2 (the
    # rest are isometries towards it), and the local gradient equals autograd of the exact
    # NLL in that tensor
    ttn = random_tree(layout, n_sites, 3, seed=1)
    X = correlated_bits(100, n_sites)
    canon = ttn_canonicalize(ttn)
    reference = dense_unit(canon.tensors, ttn)
    sweeper = _TreeSweeper([list(r) for r in canon.tensors], ttn.layout, X, ttn.layout.root)
    for node in euler_tour(ttn.layout)[1:]:
        sweeper.move(node)
        psi = TTN(ttn.layout, [list(r) for r in sweeper.tensors]).to_dense()
        centre = sweeper.tensors[node[0]][node[1]]
        torch.testing.assert_close(psi.square().sum(), centre.square().sum())
        state = psi / psi.norm()
        torch.testing.assert_close(state * torch.sign((state * reference).sum()), reference)

        leaf = centre.clone().requires_grad_(True)
        tensors = [list(r) for r in sweeper.tensors]
        tensors[node[0]][node[1]] = leaf
        nll = -ttn_log_prob(TTN(ttn.layout, tensors), X).mean()
        (expected,) = torch.autograd.grad(nll, leaf)
        a, b = ttn.layout.children(node)
        got, _ = _node_gradient(centre, sweeper.up[a], sweeper.up[b], sweeper.down[node])
        torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-10)


def test_cached_environments_equal_a_fresh_build():
    ttn = random_tree((4, 4), 16, 3, seed=2)
    X = correlated_bits(80, 16, seed=1)
    canon = ttn_canonicalize(ttn)
    sweeper = _TreeSweeper([list(r) for r in canon.tensors], ttn.layout, X, ttn.layout.root)
    tour = euler_tour(ttn.layout)
    for node in tour[1:12]:
        sweeper.move(node)
        sweeper.update(lr=0.05, n_steps=1, grad_floor=True)
    fresh = _TreeSweeper([list(r) for r in sweeper.tensors], ttn.layout, X, sweeper.centre)
    for ref, env in fresh.up.items():
        torch.testing.assert_close(sweeper.up[ref].abs(), env.abs())  # up to a per-row sign
    for node, env in fresh.down.items():
        torch.testing.assert_close(sweeper.down[node].abs(), env.abs())


@pytest.mark.parametrize(("layout", "n_sites"), [((4, 4), 16), ("1d", 10)])
def test_sweeps_lower_the_nll_and_stay_normalised(layout, n_sites):
    ttn = random_tree(layout, n_sites, 4, seed=3)
    X = correlated_bits(300, n_sites, seed=2)
    start = float(-ttn_log_prob(ttn, X).mean())
    result = train_ttn_born_sweep(ttn, X, n_sweeps=4, lr=0.02)
    nlls = [h["train_loss"] for h in result.history]
    assert nlls[-1] < start - 1.0
    assert result.model.is_canonical
    total = ttn_log_prob(result.model, all_inputs(n_sites)).exp().sum()
    torch.testing.assert_close(total, torch.tensor(1.0, dtype=total.dtype))
    torch.testing.assert_close(result.model.norm(), torch.tensor(1.0, dtype=total.dtype))


@pytest.mark.parametrize("stop_after", [5, 23, 35])
def test_ctrl_c_mid_sweep_checkpoints_and_resume_matches(tmp_path, monkeypatch, stop_after):
    ttn = random_tree((4, 4), 16, 3, seed=4)
    X = correlated_bits(120, 16, seed=3)
    kwargs = dict(n_sweeps=2, lr=0.02, lr_decay=0.5)
    reference = train_ttn_born_sweep(ttn, X, **kwargs)

    original = _TreeSweeper.update
    calls = {"n": 0}

    def update_then_ctrl_c(self, **kw):
        original(self, **kw)
        calls["n"] += 1
        if calls["n"] == stop_after:
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(_TreeSweeper, "update", update_then_ctrl_c)
    path = tmp_path / "tree.ckpt"
    with pytest.raises(KeyboardInterrupt):
        train_ttn_born_sweep(ttn, X, checkpoint_path=path, **kwargs)
    monkeypatch.setattr(_TreeSweeper, "update", original)
    resumed = train_ttn_born_sweep(ttn, X, checkpoint_path=path, resume=True, **kwargs)
    x = all_inputs(16)
    torch.testing.assert_close(
        ttn_log_prob(resumed.model, x), ttn_log_prob(reference.model, x), rtol=1e-8, atol=1e-8
    )
    assert [h["lr"] for h in resumed.history] == [h["lr"] for h in reference.history]


def test_estimator_trains_by_sweeps_and_checks_its_options():
    X = correlated_bits(200, 16, seed=5).numpy()
    model = tnml.TTNBornMachine(bond_dim=4, trainer="sweep", epochs=3, random_state=0).fit(X)
    assert len(model.history_) == model.n_iter_ == 3
    assert model.history_[-1]["train_loss"] < model.history_[0]["train_loss"]
    assert model.nll(X) == pytest.approx(model.history_[-1]["train_loss"], rel=1e-9)
    with pytest.raises(InvalidInputError, match="lr_decay"):
        train_ttn_born_sweep(random_tree((4, 4), 16, 2, seed=0), torch.as_tensor(X), lr_decay=2)
    with pytest.raises(ValueError, match="trainer"):
        tnml.TTNBornMachine(trainer="dmrg").fit(X)


def test_a_bond_larger_than_its_outside_is_a_clear_error():
    # on 7 leaves in 1D the node over leaves 0-3 has a bond of 16 from below, but only the
    # 3 other leaves (8 states) above it: the centre cannot cross it without shrinking it
    layout = tnml.tensor.ttn.tree_layout_1d(7)
    shapes = node_shapes(layout, 2, 16, 1)
    g = torch.Generator().manual_seed(0)
    tensors = [[torch.randn(*s, generator=g, dtype=torch.float64) for s in row] for row in shapes]
    with pytest.raises(InvalidInputError, match="larger than the other legs"):
        train_ttn_born_sweep(TTN(layout, tensors), correlated_bits(20, 7), n_sweeps=1)


def test_float32_sweeps_stay_finite_over_784_leaves():
    X = (torch.rand(40, 784, generator=torch.Generator().manual_seed(0)) < 0.2).long()
    model = tnml.TTNBornMachine(bond_dim=4, trainer="sweep", epochs=2, dtype="float32")
    model.fit(X.numpy())
    log_p = model.log_prob(X.numpy())
    assert np.isfinite(log_p).all() and log_p.mean() > -784 * np.log(2)  # beats uniform
    assert model.history_[1]["train_loss"] < model.history_[0]["train_loss"]


def test_three_level_features_train_and_stay_normalised():
    g = torch.Generator().manual_seed(6)
    base = torch.randint(0, 3, (1, 6), generator=g)
    X = (base + (torch.rand(300, 6, generator=g) < 0.2).long()) % 3  # noisy copies of one row
    model = tnml.TTNBornMachine(bond_dim=4, trainer="sweep", epochs=3, random_state=0)
    model.fit(X.numpy())
    grid = torch.tensor(list(itertools.product(range(3), repeat=6))).numpy()
    assert np.exp(model.log_prob(grid)).sum() == pytest.approx(1.0, abs=1e-9)
    assert model.nll(X.numpy()) < 6 * np.log(3) - 1.0  # well below the uniform 6.59 nats
