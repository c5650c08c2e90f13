"""MPSBornMachine: exact likelihoods, sampling and conditionals on enumerable models."""

from __future__ import annotations

import itertools
import signal

import numpy as np
import pytest
import torch
from scipy.stats import chisquare
from sklearn.utils.estimator_checks import parametrize_with_checks

import tnml
from tnml.exceptions import InvalidInputError
from tnml.tensor.born import mps_log_prob
from tnml.tensor.decomp import split_tensor, split_tensor_in_metric
from tnml.train.born_sweep import _Sweeper, mean_nll, train_born_sweep

N_SITES = 10


def correlated_bits(n_samples: int, seed: int = 0) -> np.ndarray:
    """Noisy copies of two templates: a structured distribution worth learning."""
    rng = np.random.default_rng(seed)
    templates = np.array([[0, 1] * (N_SITES // 2), [1, 1, 0, 0, 1] * (N_SITES // 5)])
    rows = templates[rng.integers(0, 2, n_samples)]
    flips = rng.random(rows.shape) < 0.1
    return np.where(flips, 1 - rows, rows)


def make_machine(kind: str):
    if kind == "ttn":
        return tnml.TTNBornMachine(bond_dim=6, epochs=6, random_state=0, batch_size=32)
    if kind == "ttn-sweep":
        return tnml.TTNBornMachine(bond_dim=6, trainer="sweep", epochs=4, random_state=0)
    batch = {"batch_size": 32} if kind == "autodiff" else {}  # the sweeps take no mini-batch
    return tnml.MPSBornMachine(bond_dim=6, trainer=kind, epochs=3, random_state=0, **batch)


@pytest.fixture(scope="module", params=["sweep", "autodiff", "ttn", "ttn-sweep"])
def fitted(request):
    X = correlated_bits(400)
    return make_machine(request.param).fit(X), X


def all_inputs(n: int) -> np.ndarray:
    return np.array(list(itertools.product([0, 1], repeat=n)))


def pooled_chisquare(counts: np.ndarray, probs: np.ndarray) -> float:
    keep = probs * counts.sum() >= 5
    observed = np.append(counts[keep], counts[~keep].sum())
    expected = np.append(probs[keep], probs[~keep].sum()) * counts.sum()
    return float(chisquare(observed, expected).pvalue)


def test_probabilities_sum_to_one_and_match_dense(fitted):
    model, _ = fitted
    x = all_inputs(N_SITES)
    p = np.exp(model.log_prob(x))
    assert abs(p.sum() - 1.0) < 1e-9
    psi = model.to_dense()
    assert psi.shape == (2,) * N_SITES
    np.testing.assert_allclose(p, (psi**2).reshape(-1), rtol=1e-8, atol=1e-14)


def test_learns_the_distribution(fitted):
    model, X = fitted
    uniform = N_SITES * np.log(2)
    assert model.nll(X) < uniform - 2.0  # far better than the uniform start
    if (
        getattr(model, "trainer", None) == "sweep"
    ):  # exact NLL after each sweep (autodiff: epoch running mean)
        assert model.history_[-1]["train_loss"] == pytest.approx(model.nll(X), rel=1e-9)


def test_samples_pass_chi_square_against_exact(fitted):
    model, _ = fitted
    probs = (model.to_dense() ** 2).reshape(-1)
    samples = model.sample(20_000, random_state=0)
    codes = samples @ (2 ** np.arange(N_SITES - 1, -1, -1))
    counts = np.bincount(codes, minlength=2**N_SITES)
    assert pooled_chisquare(counts, probs) > 1e-3


def test_conditional_samples_follow_exact_conditional(fitted):
    model, _ = fitted
    probs = (model.to_dense() ** 2).reshape((2,) * N_SITES)
    cond = probs[1, :, :, :, :, :, :, 0].reshape(-1)  # site 0 = 1, site 7 = 0
    cond = cond / cond.sum()
    samples = model.sample(20_000, evidence={0: 1, 7: 0}, random_state=1)
    assert (samples[:, 0] == 1).all() and (samples[:, 7] == 0).all()
    free = [i for i in range(N_SITES) if i not in (0, 7)]
    codes = samples[:, free] @ (2 ** np.arange(len(free) - 1, -1, -1))
    counts = np.bincount(codes, minlength=2 ** len(free))
    assert pooled_chisquare(counts, cond) > 1e-3


def test_marginals_match_dense(fitted):
    model, _ = fitted
    probs = (model.to_dense() ** 2).reshape((2,) * N_SITES)
    expected = probs.sum(axis=(0, 1, 2, 4, 5, 6, 8, 9))  # sites 3 and 7
    values = np.array([[0, 0], [0, 1], [1, 0], [1, 1]])
    got = np.exp(model.marginal_log_prob([3, 7], values))
    np.testing.assert_allclose(got, expected.reshape(-1), rtol=1e-9)


def test_unseen_values_get_minus_inf_and_bad_input_is_named(fitted):
    model, X = fitted
    x = X[:3].copy()
    x[1, 4] = 2
    lp = model.log_prob(x)
    assert np.isneginf(lp[1]) and np.isfinite(lp[[0, 2]]).all()
    with pytest.raises(InvalidInputError, match="integer values"):
        model.log_prob(X[:2] + 0.5)
    with pytest.raises(InvalidInputError, match="non-negative"):
        model.log_prob(-X[:2] - 1)
    with pytest.raises(ValueError, match="features"):
        model.log_prob(X[:, :5])


def test_evidence_values_are_levels_not_rounded(fitted):
    model, _ = fitted
    # whole numbers of any dtype condition exactly
    for value in (1, np.int64(1), 1.0, True, [1, 1, 1]):
        assert (model.sample(3, evidence={0: value}, random_state=0)[:, 0] == 1).all()
    for value, message in ((0.9, "integer values"), (1.7, "integer values"), ("1", "dtype")):
        with pytest.raises(
            InvalidInputError, match=rf"evidence\[0\] must hold {message}|{message}"
        ):
            model.sample(2, evidence={0: value})
    with pytest.raises(InvalidInputError, match=r"evidence\[0\] must lie in"):
        model.sample(2, evidence={0: 2})
    with pytest.raises(InvalidInputError, match="NaN"):
        model.sample(2, evidence={0: float("nan")})
    for key in ("0", 0.0, True):
        with pytest.raises(InvalidInputError, match="evidence keys"):
            model.sample(2, evidence={key: 1})
    with pytest.raises(InvalidInputError, match="evidence must be a dict"):
        model.sample(2, evidence=[(0, 1)])


def test_save_and_load_round_trip(fitted, tmp_path):
    model, X = fitted
    path = tnml.io.save(model, tmp_path / "born.tnml")
    loaded = tnml.io.load(path)
    np.testing.assert_array_equal(loaded.n_levels_, model.n_levels_)
    np.testing.assert_allclose(loaded.log_prob(X[:20]), model.log_prob(X[:20]), rtol=1e-12)
    np.testing.assert_array_equal(
        loaded.sample(10, random_state=3), model.sample(10, random_state=3)
    )


def test_categorical_columns_of_different_sizes():
    rng = np.random.default_rng(0)
    X = np.stack([rng.integers(0, 3, 300), rng.integers(0, 2, 300), rng.integers(0, 4, 300)], 1)
    X[:, 2] = (X[:, 0] + X[:, 1]) % 4  # a deterministic relation
    model = tnml.MPSBornMachine(bond_dim=4, epochs=4, random_state=0).fit(X)
    assert model.n_levels_.tolist() == [3, 2, 4]
    grid = np.array(list(itertools.product(range(3), range(2), range(4))))
    assert abs(np.exp(model.log_prob(grid)).sum() - 1) < 1e-9
    # most of the mass sits on the 6 consistent rows
    consistent = grid[:, 2] == (grid[:, 0] + grid[:, 1]) % 4
    assert np.exp(model.log_prob(grid[consistent])).sum() > 0.9


def test_one_bond_update_lowers_the_nll():
    X = torch.as_tensor(correlated_bits(300, seed=1))
    mps = tnml.tensor.MPS.random(N_SITES, 2, 3, generator=torch.Generator().manual_seed(0))
    sweeper = _Sweeper(mps, X, center=4)
    before = mean_nll(sweeper.mps(center=4), X)
    sweeper.update(4, "right", lr=0.01, n_steps=3, max_bond=8, cutoff=0.0)
    after = mean_nll(sweeper.mps(center=5), X)
    assert after < before


@pytest.mark.parametrize("lr", [1e-3, 0.5, 50.0])
def test_line_search_updates_never_raise_the_nll(lr):
    # without truncation (max_bond large), each accepted step lowers the exact NLL, whatever
    # the first trial step
    X = torch.as_tensor(correlated_bits(300, seed=1))
    mps = tnml.tensor.MPS.random(N_SITES, 2, 3, generator=torch.Generator().manual_seed(0))
    sweeper = _Sweeper(mps, X, center=0)
    nll = mean_nll(sweeper.mps(center=0), X)
    for k in range(N_SITES - 1):
        sweeper.update(k, "right", lr=lr, n_steps=3, max_bond=64, cutoff=0.0, line_search=True)
        after = mean_nll(sweeper.mps(center=k + 1), X)
        assert after <= nll + 1e-10
        nll = after
    result = train_born_sweep(mps, X, n_sweeps=2, max_bond=8, lr=lr, n_steps=3, line_search=True)
    assert result.history[-1]["train_loss"] < mean_nll(mps, X)


def test_incremental_environments_equal_a_fresh_build():
    X = torch.as_tensor(correlated_bits(100, seed=2))
    mps = tnml.tensor.MPS.random(N_SITES, 2, 3, generator=torch.Generator().manual_seed(1))
    sweeper = _Sweeper(mps, X, center=0)
    for k in range(6):
        sweeper.update(k, "right", lr=0.01, n_steps=1, max_bond=6, cutoff=0.0)
    fresh = _Sweeper(sweeper.mps(center=6), X, center=6)
    for k in range(1, 7):
        a, b = sweeper.envs.left(k)[0], fresh.envs.left(k)[0]
        # environments are unit rows, defined up to a per-row sign from the QR gauge
        torch.testing.assert_close(a.abs(), b.abs(), rtol=1e-10, atol=1e-12)


def test_sweep_checkpoint_resume_matches_uninterrupted(tmp_path):
    X = torch.as_tensor(correlated_bits(200, seed=3))
    mps = tnml.tensor.MPS.random(N_SITES, 2, 2, generator=torch.Generator().manual_seed(2))
    full = train_born_sweep(mps, X, n_sweeps=2, max_bond=6, lr=0.01)
    path = tmp_path / "ck.pt"
    calls = []

    def stop_after_first(state, metrics):
        calls.append(metrics)
        return True

    first = train_born_sweep(
        mps, X, n_sweeps=2, max_bond=6, lr=0.01, checkpoint_path=path, callback=stop_after_first
    )
    assert first.stopped_early and len(first.history) == 1
    resumed = train_born_sweep(
        mps, X, n_sweeps=2, max_bond=6, lr=0.01, checkpoint_path=path, resume=True
    )
    assert len(resumed.history) == 2
    x = torch.as_tensor(all_inputs(N_SITES))
    torch.testing.assert_close(
        mps_log_prob(resumed.model, x), mps_log_prob(full.model, x), rtol=1e-8, atol=1e-8
    )


def test_warm_start_continues_from_the_fitted_state():
    X = correlated_bits(300, seed=4)
    model = tnml.MPSBornMachine(bond_dim=4, epochs=1, random_state=0, warm_start=True).fit(X)
    first = model.nll(X)
    model.fit(X)
    assert model.nll(X) < first
    with pytest.raises(InvalidInputError, match="is expecting 10 features"):
        model.fit(np.c_[X, X[:, :1]])


@pytest.mark.parametrize("stop_at", [(5, "right"), (3, "left")])
def test_ctrl_c_mid_sweep_checkpoints_and_resume_matches(tmp_path, monkeypatch, stop_at):
    import signal

    X = torch.as_tensor(correlated_bits(150, seed=5))
    mps = tnml.tensor.MPS.random(N_SITES, 2, 2, generator=torch.Generator().manual_seed(3))
    kwargs = dict(n_sweeps=2, max_bond=6, lr=0.01)
    reference = train_born_sweep(mps, X, **kwargs)

    original = _Sweeper.update
    calls = {"n": 0}

    def update_then_ctrl_c(self, k, direction, **kw):
        original(self, k, direction, **kw)
        calls["n"] += 1
        if (k, direction) == stop_at and calls["n"] < 2 * (N_SITES - 1):  # first sweep only
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(_Sweeper, "update", update_then_ctrl_c)
    path = tmp_path / "born.ckpt"
    with pytest.raises(KeyboardInterrupt):
        train_born_sweep(mps, X, checkpoint_path=path, **kwargs)
    monkeypatch.setattr(_Sweeper, "update", original)
    resumed = train_born_sweep(mps, X, checkpoint_path=path, resume=True, **kwargs)
    x = torch.as_tensor(all_inputs(N_SITES))
    torch.testing.assert_close(
        mps_log_prob(resumed.model, x), mps_log_prob(reference.model, x), rtol=1e-8, atol=1e-8
    )
    assert len(resumed.history) == 2


def dense_nll(cores: list[torch.Tensor], X: torch.Tensor) -> torch.Tensor:
    """Exact mean NLL of the MPS ``cores`` on the rows of ``X``, by full contraction."""
    psi = cores[0]
    for core in cores[1:]:
        psi = torch.tensordot(psi, core, dims=([psi.ndim - 1], [0]))
    psi = psi.squeeze(0).squeeze(-1)
    amplitudes = psi[tuple(X.T)]
    return torch.log(psi.square().sum()) - torch.log(amplitudes.square()).mean()


def test_floored_bond_step_matches_autograd_on_the_dense_nll():
    # one step with grad_floor: B <- (B - lr g') / |.|, g' the exact gradient of the NLL in B
    # scaled up to norm numel ** 0.25; the split without truncation gives B back exactly
    X = torch.as_tensor(correlated_bits(300, seed=6))
    mps = tnml.tensor.MPS.random(N_SITES, 2, 3, generator=torch.Generator().manual_seed(4))
    warm = train_born_sweep(mps, X, n_sweeps=2, max_bond=8, lr=0.05, n_steps=3).model
    k, lr = 4, 0.01
    sweeper = _Sweeper(warm, X, center=k)
    cores = [c.clone() for c in sweeper.cores]
    bond = torch.tensordot(cores[k], cores[k + 1], dims=([2], [0])).requires_grad_(True)
    merged = [*cores[:k], bond.flatten(1, 2), *cores[k + 2 :]]  # sites k, k+1 as one of 4
    pairs = torch.cat([X[:, :k], (2 * X[:, k] + X[:, k + 1])[:, None], X[:, k + 2 :]], dim=1)
    (grad,) = torch.autograd.grad(dense_nll(merged, pairs), bond)
    floor = grad.numel() ** 0.25
    assert 0 < float(grad.norm()) < floor  # the floor is what this step exercises
    expected = bond.detach() - lr * grad * (floor / grad.norm())
    expected = expected / expected.norm()

    sweeper.update(k, "right", lr=lr, n_steps=1, max_bond=64, cutoff=0.0, grad_floor=True)
    got = torch.tensordot(sweeper.cores[k], sweeper.cores[k + 1], dims=([2], [0]))
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-11)


def test_data_truncation_is_the_metric_split_of_the_samples_environments():
    # truncation="data": the stepped bond tensor is split in the metric of the samples' unit
    # environments, built here by dense contraction of each sample's left and right halves
    X = torch.as_tensor(correlated_bits(300, seed=6))
    mps = tnml.tensor.MPS.random(N_SITES, 2, 3, generator=torch.Generator().manual_seed(4))
    warm = train_born_sweep(mps, X, n_sweeps=2, max_bond=8, lr=0.05, n_steps=3).model
    k, lr, keep = 4, 0.01, 3
    sweeper = _Sweeper(warm, X, center=k)
    cores = [c.clone() for c in sweeper.cores]
    bond = torch.tensordot(cores[k], cores[k + 1], dims=([2], [0])).requires_grad_(True)
    merged = [*cores[:k], bond.flatten(1, 2), *cores[k + 2 :]]
    pairs = torch.cat([X[:, :k], (2 * X[:, k] + X[:, k + 1])[:, None], X[:, k + 2 :]], dim=1)
    (grad,) = torch.autograd.grad(dense_nll(merged, pairs), bond)
    stepped = bond.detach() - lr * grad
    stepped = stepped / stepped.norm()

    def contracted(chain: list[torch.Tensor]) -> torch.Tensor:
        state = chain[0]  # every input of the chain's sites at once, densely
        for core in chain[1:]:
            state = torch.tensordot(state, core, dims=([state.ndim - 1], [0]))
        return state

    left_dense = contracted(cores[:k]).squeeze(0)  # (2,) * k + (Dl,)
    right_dense = contracted(cores[k + 2 :]).squeeze(-1)  # (Dr,) + (2,) * (N - k - 2)
    lefts = torch.stack([left_dense[tuple(x[:k])] for x in X])
    rights = torch.stack([right_dense[(slice(None), *x[k + 2 :])] for x in X])
    eye = torch.eye(2, dtype=lefts.dtype)
    x_vecs = torch.einsum("ta,ts->tas", lefts, eye[X[:, k]]).flatten(1)
    y_vecs = torch.einsum("ts,tb->tsb", eye[X[:, k + 1]], rights).flatten(1)
    x_vecs = x_vecs / x_vecs.norm(dim=1, keepdim=True)
    y_vecs = y_vecs / y_vecs.norm(dim=1, keepdim=True)
    expected = split_tensor_in_metric(
        stepped,
        2,
        left_gram=x_vecs.T @ x_vecs / len(X),
        right_gram=y_vecs.T @ y_vecs / len(X),
        max_bond=keep,
        absorb="right",
        root="cholesky",
    )
    plain = split_tensor(stepped, 2, method="svd", max_bond=keep, absorb="right")

    sweeper.update(k, "right", lr=lr, n_steps=1, max_bond=keep, cutoff=0.0, truncation="data")
    got = torch.tensordot(sweeper.cores[k], sweeper.cores[k + 1], dims=([2], [0]))
    want = torch.tensordot(expected.left, expected.right, dims=([2], [0]))
    want = want / want.norm()  # the sweeper keeps the bond tensor at unit norm
    torch.testing.assert_close(got, want, rtol=1e-8, atol=1e-10)
    unlike = torch.tensordot(plain.left, plain.right, dims=([2], [0]))
    assert float((unlike / unlike.norm() - want).norm()) > 1e-3  # the metric changed the split
    assert sweeper.cores[k].shape[2] == keep


@pytest.mark.parametrize("direction", ["right", "left"])
def test_data_truncation_keeps_the_canonical_form_where_an_input_never_occurs(direction):
    # sites 0, 1, 4, 5 and 9 are always 0 (as MNIST's border pixels): half of those sites'
    # Gram blocks are zero; the splits stay finite, the moved-past core an isometry, and the
    # state normalised with Z = ||B||^2 at the next bond
    X = correlated_bits(300, seed=2)
    X[:, [0, 1, 4, 5, 9]] = 0
    X = torch.as_tensor(X)
    mps = tnml.tensor.MPS.random(N_SITES, 2, 3, generator=torch.Generator().manual_seed(3))
    sweeper = _Sweeper(mps, X, center=4 if direction == "right" else 5)
    sweeper.update(4, direction, lr=0.05, n_steps=2, max_bond=2, cutoff=0.0, truncation="data")
    left, right = sweeper.cores[4], sweeper.cores[5]
    assert torch.isfinite(left).all() and torch.isfinite(right).all()
    eye = torch.eye(2, dtype=left.dtype)
    if direction == "right":
        torch.testing.assert_close(left.reshape(-1, 2).T @ left.reshape(-1, 2), eye)
        assert float(right.norm()) == pytest.approx(1.0)
    else:
        torch.testing.assert_close(right.reshape(2, -1) @ right.reshape(2, -1).T, eye)
        assert float(left.norm()) == pytest.approx(1.0)
    state = sweeper.mps(center=5 if direction == "right" else 4)
    grid = torch.as_tensor(all_inputs(N_SITES))
    assert float(mps_log_prob(state, grid).exp().sum()) == pytest.approx(1.0, rel=1e-9)


def test_data_truncation_is_checked_where_it_cannot_apply(tmp_path):
    X = correlated_bits(60)
    with pytest.raises(InvalidInputError, match="trainer='autodiff' does not split"):
        tnml.MPSBornMachine(bond_dim=2, trainer="autodiff", epochs=1, truncation="data").fit(X)
    with pytest.raises(InvalidInputError, match="parameter of the estimator"):
        tnml.MPSBornMachine(bond_dim=2, epochs=1).fit(X, truncation="data")
    with pytest.raises(ValueError, match="truncation"):
        tnml.MPSBornMachine(truncation="entropy").fit(X)
    with pytest.raises(InvalidInputError, match="do not split"):
        tnml.TTNBornMachine(bond_dim=2, trainer="sweep", epochs=1).fit(X, truncation="data")
    # a checkpoint of norm splits does not resume as data splits (it would mix two runs)
    mps = tnml.tensor.MPS.random(N_SITES, 2, 2, generator=torch.Generator().manual_seed(0))
    path = tmp_path / "ck.pt"
    data = torch.as_tensor(X)
    train_born_sweep(mps, data, n_sweeps=1, max_bond=4, checkpoint_path=path)
    with pytest.raises(InvalidInputError, match="truncation='norm', now 'data'"):
        train_born_sweep(
            mps, data, n_sweeps=2, max_bond=4, checkpoint_path=path, resume=True, truncation="data"
        )


def test_data_truncation_changes_nothing_without_truncation():
    X = torch.as_tensor(correlated_bits(200, seed=3))
    mps = tnml.tensor.MPS.random(N_SITES, 2, 2, generator=torch.Generator().manual_seed(2))
    kwargs = dict(n_sweeps=2, max_bond=64, lr=0.05, n_steps=2, cutoff=0.0)
    norm = train_born_sweep(mps, X, **kwargs)
    data = train_born_sweep(mps, X, truncation="data", **kwargs)
    for a, b in zip(norm.history, data.history, strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-9)
    with pytest.raises(InvalidInputError, match="truncation"):
        train_born_sweep(mps, X, truncation="entropy")


def test_lr_decay_follows_the_training_nll_and_survives_resume(tmp_path):
    X = torch.as_tensor(correlated_bits(200, seed=3))
    mps = tnml.tensor.MPS.random(N_SITES, 2, 2, generator=torch.Generator().manual_seed(2))
    kwargs = dict(n_sweeps=6, max_bond=6, lr=0.2, n_steps=1, grad_floor=True, lr_decay=0.5)
    full = train_born_sweep(mps, X, cutoff=0.0, **kwargs)
    nll = [h["train_loss"] for h in full.history]
    lrs = [h["lr"] for h in full.history]
    rises = [i for i in range(1, len(nll)) if nll[i] > nll[i - 1]]
    assert rises, "the step is meant to be large enough for the NLL to rise once"
    for i in range(1, len(nll)):
        assert lrs[i] == pytest.approx(lrs[i - 1] * (0.5 if i - 1 in rises else 1.0))

    path = tmp_path / "ck.pt"
    stop_at = rises[0] + 1  # stop after the decay, so the checkpoint must carry the new step

    def stop(state, metrics):
        return state["epoch"] == stop_at

    first = train_born_sweep(mps, X, cutoff=0.0, checkpoint_path=path, callback=stop, **kwargs)
    assert first.stopped_early
    resumed = train_born_sweep(mps, X, cutoff=0.0, checkpoint_path=path, resume=True, **kwargs)
    assert [h["lr"] for h in resumed.history] == lrs
    x = torch.as_tensor(all_inputs(N_SITES))
    # the large floored steps amplify the round-off of re-canonicalising on resume
    torch.testing.assert_close(
        mps_log_prob(resumed.model, x), mps_log_prob(full.model, x), rtol=1e-5, atol=1e-6
    )


def test_sweep_step_options_are_checked():
    X = torch.as_tensor(correlated_bits(50))
    mps = tnml.tensor.MPS.random(N_SITES, 2, 2, generator=torch.Generator().manual_seed(0))
    with pytest.raises(InvalidInputError, match="lr_decay"):
        train_born_sweep(mps, X, lr_decay=1.5)
    with pytest.raises(InvalidInputError, match="grad_floor and line_search"):
        train_born_sweep(mps, X, grad_floor=True, line_search=True)
    with pytest.raises(ValueError, match="lr_decay"):
        tnml.MPSBornMachine(lr_decay=0.0).fit(correlated_bits(50))


@pytest.mark.parametrize("kind", ["sweep", "autodiff", "ttn-sweep"])
def test_validation_keeps_the_state_of_the_best_sweep(kind):
    # 60 training rows and a large bond: the validation NLL turns up while training goes on
    X, X_val = correlated_bits(60, seed=7), correlated_bits(300, seed=8)
    if kind == "ttn-sweep":
        model = tnml.TTNBornMachine(bond_dim=8, trainer="sweep", epochs=6, lr=0.05)
    else:
        batch = {"batch_size": 8} if kind == "autodiff" else {}
        model = tnml.MPSBornMachine(bond_dim=8, trainer=kind, epochs=8, lr=0.05, **batch)
    model.set_params(random_state=0).fit(X, X_val=X_val)
    val = [h["val_loss"] for h in model.history_]
    assert model.best_epoch_ == int(np.argmin(val)) + 1
    assert model.nll(X_val) == pytest.approx(min(val), rel=1e-9)
    assert model.best_epoch_ < len(val)  # the last sweep was not the best: a real choice
    if kind != "autodiff":  # (autodiff records the mean over an epoch's mini-batches)
        best = model.history_[model.best_epoch_ - 1]
        assert model.nll(X) == pytest.approx(best["train_loss"], rel=1e-9)


def test_indexed_bond_gradient_equals_the_dense_one():
    from tnml.train.born_sweep import _bond_gradient, _bond_gradient_indexed

    g = torch.Generator().manual_seed(9)
    bond = torch.randn(5, 3, 2, 4, generator=g, dtype=torch.float64)
    left = torch.randn(50, 5, generator=g, dtype=torch.float64)
    right = torch.randn(50, 4, generator=g, dtype=torch.float64)
    xk = torch.randint(0, 3, (50,), generator=g)
    xk1 = torch.randint(0, 2, (50,), generator=g)
    xk1[(xk == 2) & (xk1 == 1)] = 0  # one slice without samples
    pair = (one_hot(xk, 3).unsqueeze(2) * one_hot(xk1, 2).unsqueeze(1)).flatten(1)
    dense_grad, dense_psi = _bond_gradient(bond, left, right, pair)
    grad, psi = _bond_gradient_indexed(bond, left, right, xk * 2 + xk1)
    torch.testing.assert_close(grad, dense_grad)
    torch.testing.assert_close(psi, dense_psi)


def one_hot(x: torch.Tensor, d: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(x, d).double()


def test_resume_with_fewer_sweeps_than_already_run_is_refused(tmp_path):
    X = torch.as_tensor(correlated_bits(100, seed=3))
    mps = tnml.tensor.MPS.random(N_SITES, 2, 2, generator=torch.Generator().manual_seed(2))
    path = tmp_path / "ck.pt"
    train_born_sweep(mps, X, n_sweeps=2, max_bond=4, lr=0.01, checkpoint_path=path)
    with pytest.raises(InvalidInputError, match="already run 2 sweeps, more than the 1"):
        train_born_sweep(mps, X, n_sweeps=1, max_bond=4, lr=0.01, checkpoint_path=path,
                         resume=True)  # fmt: skip


def test_estimator_resume_is_exact_on_binarised_digits(tmp_path, monkeypatch):
    """Binarised digits have many always-off pixels, so the sweeps meet degenerate singular
    values; a resume that re-canonicalised the saved cores (a new QR sign gauge) kept other
    singular vectors and ended 0.07 nats away. The saved mixed form is now used as it is."""
    from sklearn.datasets import load_digits

    X = (load_digits().data[:300] > 8).astype(int)
    reference = tnml.MPSBornMachine(bond_dim=6, epochs=2, random_state=0).fit(X)
    calls = {"n": 0}
    original = _Sweeper.update

    def update_then_ctrl_c(self, *args, **kwargs):
        original(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 20:
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(_Sweeper, "update", update_then_ctrl_c)
    path = tmp_path / "born.ckpt"
    with pytest.raises(KeyboardInterrupt):
        tnml.MPSBornMachine(bond_dim=6, epochs=2, random_state=0).fit(X, checkpoint_path=path)
    monkeypatch.setattr(_Sweeper, "update", original)
    resumed = tnml.MPSBornMachine(bond_dim=6, epochs=2, random_state=0).fit(
        X, checkpoint_path=path, resume=True
    )
    assert resumed.nll(X) == reference.nll(X)


@parametrize_with_checks(
    [
        tnml.MPSBornMachine(bond_dim=4, epochs=2),
        tnml.MPSBornMachine(bond_dim=4, epochs=2, trainer="autodiff"),
        tnml.TTNBornMachine(bond_dim=4, epochs=2),
    ]
)
def test_born_machines_are_sklearn_compatible(estimator, check):
    check(estimator)  # the checks feed integer levels: the estimators' "categorical" tag


def test_max_bond_caps_the_sweeps_as_for_the_classifier():
    X = (np.random.default_rng(0).random((80, 10)) < 0.4).astype(int)
    capped = tnml.MPSBornMachine(bond_dim=16, max_bond=3, epochs=1, random_state=0).fit(X)
    assert max(capped.to_mps().bond_dims) <= 3
    default = tnml.MPSBornMachine(bond_dim=3, epochs=1, random_state=0).fit(X)
    np.testing.assert_array_equal(default.log_prob(X), capped.log_prob(X))  # None: bond_dim
    with pytest.raises(InvalidInputError, match="max_bond caps the sweeps"):
        tnml.MPSBornMachine(max_bond=3, trainer="autodiff", epochs=1).fit(X)
    with pytest.raises(InvalidInputError, match="unitary=True keeps every bond"):
        tnml.MPSBornMachine(bond_dim=4, max_bond=2, unitary=True, epochs=1).fit(X)


def test_a_warm_fit_keeps_the_first_fits_levels_and_refuses_new_ones():
    X = correlated_bits(200, seed=4)
    X3 = X.copy()
    X3[0, 2] = 2  # a third level in column 2
    model = tnml.MPSBornMachine(bond_dim=3, epochs=1, random_state=0, warm_start=True).fit(X3)
    assert model.n_levels_[2] == 3
    model.fit(X)  # a chunk without the third level continues, with three levels kept
    assert model.n_levels_[2] == 3
    log_p = model.score_samples(X3[:1])
    bad = X.copy()
    bad[0, 1] = 2
    with pytest.raises(InvalidInputError, match=r"X\[:, 1\] holds the value 2"):
        model.fit(bad)
    np.testing.assert_array_equal(model.score_samples(X3[:1]), log_p)  # left as it was


def test_validation_values_beyond_the_levels_are_refused():
    X = correlated_bits(200, seed=4)
    model = tnml.MPSBornMachine(bond_dim=3, epochs=1, random_state=0)
    with pytest.raises(InvalidInputError, match=r"X_val\[:, 0\] holds the value 3"):
        model.fit(X, X_val=np.full((5, X.shape[1]), 3))


@pytest.mark.parametrize(
    ("make", "named"),
    [
        (lambda: tnml.MPSBornMachine(trainer="sweep", batch_size=32), "batch_size=32"),
        (lambda: tnml.MPSBornMachine(trainer="sweep", weight_decay=0.1), "weight_decay=0.1"),
        (lambda: tnml.MPSBornMachine(trainer="autodiff", cutoff=1e-3), "cutoff=0.001"),
        (lambda: tnml.MPSBornMachine(trainer="autodiff", grad_floor=True), "grad_floor=True"),
        (lambda: tnml.TTNBornMachine(trainer="sweep", max_grad_norm=1.0), "max_grad_norm=1.0"),
        (lambda: tnml.TTNBornMachine(trainer="autodiff", steps_per_node=3), "steps_per_node=3"),
    ],
)
def test_options_the_born_trainer_would_ignore_are_refused(make, named):
    with pytest.raises(InvalidInputError, match=f"{named} applies to trainer="):
        make().set_params(bond_dim=2, epochs=1).fit(correlated_bits(50))
