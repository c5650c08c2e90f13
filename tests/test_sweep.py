"""Two-site sweep training: every check against an independent, plainly written computation."""

from __future__ import annotations

import math
import signal
import warnings

import pytest
import torch
from torch.nn import functional as F

import tnml
from tnml.exceptions import InvalidInputError, TrainingWarning
from tnml.features import embed
from tnml.nn import MPSClassifierModule
from tnml.tensor import MPS
from tnml.train import load_checkpoint
from tnml.train.bond_sweeper import MAX_NORMALIZED_STEP
from tnml.train.sweep import (
    BondSweeper,
    LabelledMPS,
    move_label,
    shard_for_rank,
    train_sweep,
)

F64 = torch.float64


# --------------------------------------------------------------------------------------------
# independent references
# --------------------------------------------------------------------------------------------


def unfused_cores(model: LabelledMPS) -> list[torch.Tensor]:
    """The cores with the label core as (Dl, d, L, Dr), unpacked by hand from the fused
    (Dl, d * L, Dr) storage (label index fastest)."""
    cores = list(model.cores)
    core = cores[model.label_site]
    cores[model.label_site] = core.reshape(core.shape[0], -1, model.n_classes, core.shape[2])
    return cores


def reference_amplitudes(model: LabelledMPS, phi: torch.Tensor) -> torch.Tensor:
    """f_l(x) from the dense tensor W: contract each site's physical index with phi."""
    cores = unfused_cores(model)
    w = cores[0]
    for core in cores[1:]:
        w = torch.tensordot(w, core, dims=([w.ndim - 1], [0]))
    # axes (s_0, .., s_c, l, s_c+1, .., s_N-1) once the end bonds are dropped: label to the end
    w = w.squeeze(0).squeeze(-1).movedim(model.label_site + 1, -1) * math.exp(model.log_scale)
    out = torch.einsum("s...,bs->b...", w, phi[:, 0])
    for i in range(1, model.n_sites):
        out = torch.einsum("bs...,bs->b...", out, phi[:, i])
    return out  # (B, L)


def reference_environment(model: LabelledMPS, phi: torch.Tensor, side: str, site: int):
    """Plain contraction (no renormalisation) of sites < site (left) or > site (right)."""
    v = torch.ones(phi.shape[0], 1, dtype=F64)
    if side == "left":
        for i in range(site):
            v = torch.einsum("na,asb,ns->nb", v, model.cores[i], phi[:, i])
    else:
        for i in range(model.n_sites - 1, site, -1):
            v = torch.einsum("asb,ns,nb->na", model.cores[i], phi[:, i], v)
    return v


def reference_loss(f: torch.Tensor, y: torch.Tensor, loss: str, readout: str, t: float = 1.0):
    if loss == "mse":
        return 0.5 * (f - F.one_hot(y, f.shape[1]).to(f.dtype)).square().sum(1).mean()
    if readout == "normalized":
        logits = t * f / f.norm(dim=1, keepdim=True)
    elif readout == "linear":
        logits = f
    else:
        p = f.square() / f.square().sum(1, keepdim=True)
        logits = torch.log(p + 1e-12)
    return F.cross_entropy(logits, y)


def assert_canonical(model: LabelledMPS, atol: float = 1e-10) -> None:
    for i, core in enumerate(model.cores):
        if i < model.label_site:
            m = core.reshape(-1, core.shape[-1])
            eye = torch.eye(m.shape[1], dtype=m.dtype)
            torch.testing.assert_close(m.T @ m, eye, atol=atol, rtol=0)
        elif i > model.label_site:
            m = core.reshape(core.shape[0], -1)
            eye = torch.eye(m.shape[0], dtype=m.dtype)
            torch.testing.assert_close(m @ m.T, eye, atol=atol, rtol=0)


# --------------------------------------------------------------------------------------------
# problems
# --------------------------------------------------------------------------------------------


def make_problem(n: int = 120, n_sites: int = 8, n_classes: int = 3, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, n_sites, generator=g, dtype=F64)
    if n_classes == 2:
        y = (x[:, 1] + x[:, 4] > 1).long()
    else:
        y = x[:, [0, 3, 5]].argmax(dim=1)
    return x, embed(x), y


def make_model(
    n_sites: int = 8, n_classes: int = 3, bond: int = 3, readout: str = "normalized", seed=1
):
    module = MPSClassifierModule(n_sites, n_classes, bond, readout=readout, dtype=F64)
    module.reset_parameters(generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():  # away from the identity so the canonical form is not trivial
        g = torch.Generator().manual_seed(seed + 100)
        module.cores.add_(0.3 * torch.randn(module.cores.shape, generator=g, dtype=F64))
        module.output_core.add_(0.3 * torch.randn(module.output_core.shape, generator=g, dtype=F64))
    return module, LabelledMPS.from_module(module)


# --------------------------------------------------------------------------------------------
# the model container
# --------------------------------------------------------------------------------------------


def test_from_module_reproduces_the_module_amplitudes():
    x, phi, _ = make_problem(n=40)
    module, model = make_model()
    mantissa, log_scale = module.amplitudes(x)
    expected = mantissa * log_scale.exp()[:, None]
    assert model.label_site == 4 and model.bond_dims == (3,) * 7
    assert model.cores[0].shape[0] == 1 and model.cores[-1].shape[-1] == 1
    torch.testing.assert_close(model.amplitudes(phi), expected, rtol=1e-10, atol=0)
    torch.testing.assert_close(reference_amplitudes(model, phi), expected, rtol=1e-10, atol=0)
    m, ls = model.log_amplitudes(phi)
    torch.testing.assert_close(m * ls.exp()[:, None], expected, rtol=1e-10, atol=0)


@pytest.mark.parametrize("label_site", [0, 3, 7])
def test_to_module_zero_padding_is_exact(label_site):
    x, phi, y = make_problem(n=50)
    _, model = make_model()
    # uneven bonds: a few training moves with growth, then the label to label_site
    sweeper = BondSweeper(model, phi, y, max_bond=6, env_dtype=F64)
    for direction in ["right", "right", "left", "left", "left"]:
        sweeper.update_bond(direction, lr=0.5, max_bond=6)
    uneven = move_label(sweeper.model, label_site)
    uneven.log_scale = torch.tensor(0.7, dtype=F64)
    assert len(set(uneven.bond_dims)) > 1
    module = uneven.to_module()
    assert module.bond_dim == uneven.max_bond_dim and module.output_site == label_site
    mantissa, log_scale = module.amplitudes(x)
    expected = reference_amplitudes(uneven, phi)
    torch.testing.assert_close(mantissa * log_scale.exp()[:, None], expected, rtol=1e-10, atol=0)
    torch.testing.assert_close(uneven.amplitudes(phi), expected, rtol=1e-10, atol=0)
    back = LabelledMPS.from_module(module)
    torch.testing.assert_close(back.amplitudes(phi), expected, rtol=1e-10, atol=0)


def test_a_labelled_mps_is_an_mps_with_the_label_fused_into_its_site():
    """The MPS algebra applies to it unchanged: its norm is that of the dense W, canonical
    forms keep the label and the classifier's attributes, and the fused site is what
    MPSClassifierModule.from_mps reads."""
    module, model = make_model()
    dense = torch.stack([reference_amplitudes(model, e) for e in _basis_inputs(model)])
    assert isinstance(model, MPS) and model.phys_dims[model.label_site] == 2 * 3
    torch.testing.assert_close(model.norm(), dense.norm(), rtol=1e-10, atol=0)
    moved = model.canonicalize(2)
    assert isinstance(moved, LabelledMPS) and moved.center == 2 and not moved.canonical
    assert moved.label_site == model.label_site and moved.readout == model.readout
    _, phi, _ = make_problem(n=20)
    torch.testing.assert_close(moved.amplitudes(phi), model.amplitudes(phi), rtol=1e-10, atol=0)
    again = MPSClassifierModule.from_mps(model, 3, model.label_site)
    torch.testing.assert_close(again.output_core, module.output_core, rtol=1e-12, atol=1e-14)


def _basis_inputs(model: LabelledMPS) -> list[torch.Tensor]:
    """Every basis product state of the (non-label) physical indices, as (1, N, d) inputs."""
    n, d = model.n_sites, model.phys_dim
    grid = torch.cartesian_prod(*[torch.arange(d)] * n).reshape(-1, n)
    return [F.one_hot(row, d).to(F64)[None] for row in grid]


def test_state_dict_round_trip_and_the_unfused_checkpoint_format():
    _, phi, y = make_problem(n=40)
    _, model = make_model()
    sweeper = BondSweeper(model, phi, y, loss="cross_entropy", env_dtype=F64)
    sweeper.update_bond("right", lr=0.3)
    trained = sweeper.model
    back = LabelledMPS.from_state_dict(trained.state_dict())
    assert back.center == trained.center == trained.label_site
    for a, b in zip(back.cores, trained.cores, strict=True):
        assert torch.equal(a, b)
    assert torch.equal(back.log_scale, trained.log_scale)
    # checkpoints written before the label core was fused: (Dl, d, L, Dr) and a flag
    old = trained.state_dict()
    old["cores"] = unfused_cores(trained)
    old["log_scale"] = float(old.pop("log_scale"))
    old.pop("center"), old.pop("n_classes")
    old["canonical"] = True
    legacy = LabelledMPS.from_state_dict(old)
    assert legacy.canonical and legacy.n_classes == 3
    torch.testing.assert_close(legacy.amplitudes(phi), trained.amplitudes(phi), rtol=0, atol=0)


def test_to_module_carries_readout_and_temperature():
    _, model = make_model(readout="born")
    assert model.to_module().readout == "born"
    _, model = make_model()
    model.log_temperature = 1.5
    assert float(model.to_module().log_temperature.detach()) == 1.5
    with pytest.raises(InvalidInputError, match="bond_dim"):
        model.to_module(bond_dim=1)


# --------------------------------------------------------------------------------------------
# bond updates, environments, canonical form
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("loss", "readout", "lr"),
    [
        ("mse", "normalized", 1.0),
        ("cross_entropy", "normalized", 0.1),
        ("cross_entropy", "born", 0.02),
    ],
)
def test_one_bond_update_lowers_the_loss(loss, readout, lr):
    _, phi, y = make_problem(n=150)
    _, model = make_model(readout=readout)
    sweeper = BondSweeper(model, phi, y, loss=loss, temperature=4.0, env_dtype=F64)
    start = sweeper.model.copy()
    before = reference_loss(reference_amplitudes(start, phi), y, loss, readout, 4.0)
    entry = sweeper.update_bond("right", lr=lr, steps_per_bond=3, max_bond=None, cutoff=0.0)
    after = reference_loss(reference_amplitudes(sweeper.model, phi), y, loss, readout, 4.0)
    assert after < before - 1e-3
    assert entry["discarded_weight"] == 0.0
    # the reported loss was evaluated on the model the last step started from
    first = BondSweeper(model, phi, y, loss=loss, temperature=4.0, env_dtype=F64)
    assert first.update_bond("right", lr=lr, max_bond=None, cutoff=0.0)["loss"] == (
        pytest.approx(float(before), rel=1e-10)
    )


@pytest.mark.parametrize("batch_size", [7, 40, 1000])
def test_mini_batch_bond_update_equals_sgd_on_the_exact_bond_function(batch_size):
    # reference: autograd through the plainly contracted bond function
    # f_l(x) = L(x) phi_k(x) B phi_k+1(x) R(x), one normalised SGD step per shuffled batch,
    # on the loss divided by the temperature, at most MAX_NORMALIZED_STEP long
    _, phi, y = make_problem(n=100)
    _, model = make_model()
    t, lr, steps, seed = 4.0, 0.3, 2, 11
    sweeper = BondSweeper(model, phi, y, loss="cross_entropy", temperature=t, env_dtype=F64)
    start = sweeper.model.copy()
    k = start.label_site
    left = reference_environment(start, phi, "left", k)
    right = reference_environment(start, phi, "right", k + 1)
    bond = torch.einsum("aslb,btr->asltr", unfused_cores(start)[k], start.cores[k + 1])
    bond = bond / torch.linalg.vector_norm(bond)

    def amplitudes(b, idx):
        return torch.einsum(
            "na,ns,asltr,nt,nr->nl", left[idx], phi[idx, k], b, phi[idx, k + 1], right[idx]
        )

    n_batches = math.ceil(100 / batch_size)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        for idx in torch.randperm(100, generator=generator).tensor_split(n_batches):
            leaf = bond.clone().requires_grad_(True)
            loss = reference_loss(amplitudes(leaf, idx), y[idx], "cross_entropy", "normalized", t)
            (grad,) = torch.autograd.grad(loss, leaf)
            step = lr / t * grad
            step = step * min(1.0, MAX_NORMALIZED_STEP / float(torch.linalg.vector_norm(step)))
            bond = bond - step
            bond = bond / torch.linalg.vector_norm(bond)

    sweeper.update_bond(
        "right",
        lr=lr,
        steps_per_bond=steps,
        max_bond=None,
        cutoff=0.0,
        normalize=True,
        batch_size=batch_size,
        batch_seed=seed,
    )
    got = reference_amplitudes(sweeper.model, phi)
    expected = amplitudes(bond, torch.arange(100))
    # the model carries the bond's scale in log_scale; the readout only sees directions
    torch.testing.assert_close(
        got / got.norm(dim=1, keepdim=True),
        expected / expected.norm(dim=1, keepdim=True),
        rtol=1e-9,
        atol=1e-10,
    )


def test_incremental_environments_equal_recomputation():
    _, phi, y = make_problem(n=80, n_sites=9)
    _, model = make_model(n_sites=9)
    sweeper = BondSweeper(model, phi, y, loss="cross_entropy", max_bond=5, env_dtype=F64)
    moves = ["right"] * 3 + ["left"] * 7 + ["right"] * 4
    for direction in moves:
        sweeper.update_bond(direction, lr=0.2, steps_per_bond=2, max_bond=5)
        current, c = sweeper.model, sweeper.model.label_site
        for site in range(c + 1):
            expected = reference_environment(current, phi, "left", site)
            torch.testing.assert_close(
                sweeper.environment("left", site), expected, rtol=1e-5, atol=1e-12
            )
        for site in range(c, current.n_sites):
            expected = reference_environment(current, phi, "right", site)
            torch.testing.assert_close(
                sweeper.environment("right", site), expected, rtol=1e-5, atol=1e-12
            )
        # only the side needed at the current position is kept: stale ones raise
        for site in range(c + 1, current.n_sites):
            with pytest.raises(InvalidInputError, match="not valid"):
                sweeper.environment("left", site)
        for site in range(c):
            with pytest.raises(InvalidInputError, match="not valid"):
                sweeper.environment("right", site)


def test_environments_stay_finite_over_a_long_chain():
    g = torch.Generator().manual_seed(3)
    x = torch.rand(30, 600, generator=g)
    y = (x[:, 0] > 0.5).long()
    module = MPSClassifierModule(600, 2, 3, init_std=1.0)  # random cores: small overlaps
    module.reset_parameters(generator=torch.Generator().manual_seed(0))  # not the global RNG
    model = LabelledMPS.from_module(module)
    sweeper = BondSweeper(model, embed(x), y, loss="cross_entropy")  # float32 environments
    c = sweeper.model.label_site
    kept = [sweeper.envs.left(i) for i in range(c + 1)]
    kept += [sweeper.envs.right(i) for i in range(c, 600)]
    for env, log in kept:
        assert torch.isfinite(env).all() and torch.isfinite(log).all()
        torch.testing.assert_close(env.norm(dim=1), torch.ones(30), rtol=1e-5, atol=0)
    # the left environment at the label has shrunk far below float32's range in raw form
    assert c == 300 and sweeper.envs.left(300)[1].max() < -100
    entry = sweeper.update_bond("right", lr=0.1)
    assert math.isfinite(entry["loss"])


def test_moving_the_label_keeps_predictions_and_canonical_form():
    _, phi, y = make_problem(n=60)
    _, model = make_model()
    expected = reference_amplitudes(model, phi)
    sweeper = BondSweeper(model, phi, y, max_bond=64, env_dtype=F64)
    assert_canonical(sweeper.model)
    for direction in ["right"] * 3 + ["left"] * 7 + ["right"] * 2:
        sweeper.update_bond(direction, lr=0.0, max_bond=None, cutoff=0.0)
        assert_canonical(sweeper.model)
        torch.testing.assert_close(
            reference_amplitudes(sweeper.model, phi), expected, rtol=0, atol=1e-10
        )
    assert sweeper.model.label_site == 2
    for site in [0, 7, 3]:
        moved = move_label(model, site)
        assert moved.label_site == site
        assert_canonical(moved)
        torch.testing.assert_close(reference_amplitudes(moved, phi), expected, rtol=0, atol=1e-10)


def test_a_sweep_leaves_the_label_on_site_zero_in_canonical_form():
    _, phi, y = make_problem(n=60)
    _, model = make_model()
    result = train_sweep(model, phi, y, n_sweeps=1, max_bond=4, env_dtype=F64)
    n_sites = model.n_sites
    assert result.model.label_site == 0
    assert_canonical(result.model)
    # one sweep from the middle: to the right end, then back to the left end
    directions = [e["direction"] for e in result.steps]
    assert directions == ["right"] * (n_sites - 1 - 4) + ["left"] * (n_sites - 1)
    assert [e["bond"] for e in result.steps][:3] == [4, 5, 6]
    assert model.label_site == 4  # the input model is not modified


def test_bond_dimensions_grow_up_to_max_bond():
    _, phi, y = make_problem(n=150, n_sites=8)
    _, model = make_model(bond=1)
    assert model.max_bond_dim == 1
    result = train_sweep(model, phi, y, n_sweeps=2, max_bond=5, cutoff=1e-12, env_dtype=F64)
    dims = [e["bond_dim"] for e in result.steps]
    assert max(dims) == 5 and all(d <= 5 for d in dims)
    assert result.model.max_bond_dim == 5
    assert max(e["max_bond_dim"] for e in result.steps) == 5
    assert any(e["discarded_weight"] > 0 for e in result.steps)  # truncation did happen


def _dense_ranks_label_left(model: LabelledMPS, tol: float = 1e-10) -> list[int]:
    """Rank of W split between (label, sites <= b) and sites > b, from the dense tensor."""
    cores = unfused_cores(model)
    w = cores[0]
    for core in cores[1:]:
        w = torch.tensordot(w, core, dims=([w.ndim - 1], [0]))
    w = w.squeeze(0).squeeze(-1).movedim(model.label_site + 1, 0)  # (L, d, ..., d)
    d, n = model.phys_dim, model.n_sites
    ranks = []
    for b in range(n - 1):
        s = torch.linalg.svdvals(w.reshape(w.shape[0] * d ** (b + 1), -1))
        ranks.append(int((s > tol * s[0]).sum()))
    return ranks


def test_cutoff_shrinks_the_bonds_of_a_low_rank_model():
    g = torch.Generator().manual_seed(7)
    n_sites, d, n_labels, r, big = 7, 2, 2, 2, 6
    cores = [torch.randn(r, d, r, generator=g, dtype=F64) for _ in range(n_sites)]
    cores[3] = torch.randn(r, d, n_labels, r, generator=g, dtype=F64)
    cores[0], cores[-1] = cores[0][:1], cores[-1][..., :1]
    low = LabelledMPS(cores, 3)
    # disguise: pad every internal bond to 6 and mix it with a random orthogonal matrix
    qs = [torch.linalg.qr(torch.randn(big, big, generator=g, dtype=F64))[0] for _ in cores[1:]]
    disguised = []
    for i, core in enumerate(cores):
        dl = 1 if i == 0 else big
        dr = 1 if i == n_sites - 1 else big
        padded = torch.zeros(dl, *core.shape[1:-1], dr, dtype=F64)
        padded[: core.shape[0], ..., : core.shape[-1]] = core
        if i > 0:
            padded = torch.tensordot(qs[i - 1].T, padded, dims=([1], [0]))
        if i < n_sites - 1:
            padded = torch.tensordot(padded, qs[i], dims=([padded.ndim - 1], [0]))
        disguised.append(padded)
    model = LabelledMPS(disguised, 3)
    x = torch.rand(40, n_sites, generator=g, dtype=F64)
    phi, y = embed(x), torch.zeros(40, dtype=torch.long)
    torch.testing.assert_close(model.amplitudes(phi), low.amplitudes(phi), rtol=1e-10, atol=1e-12)

    kwargs = dict(n_sweeps=1, lr=0.0, max_bond=64, env_dtype=F64)
    kept = train_sweep(model, phi, y, cutoff=0.0, **kwargs).model
    cut = train_sweep(model, phi, y, cutoff=1e-10, **kwargs).model
    # the sweep ends with the label on site 0, left of every bond
    expected = _dense_ranks_label_left(low)
    assert cut.label_site == 0 and list(cut.bond_dims) == expected
    assert max(expected) <= r * n_labels < big
    assert sum(kept.bond_dims) > sum(cut.bond_dims)
    torch.testing.assert_close(cut.amplitudes(phi), low.amplitudes(phi), rtol=1e-8, atol=1e-10)


# --------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("loss", "readout", "extra"),
    [
        ("mse", "normalized", {}),
        ("cross_entropy", "normalized", {"temperature": 5.0, "lr": 1.0}),
        ("cross_entropy", "born", {"lr": 0.1, "max_grad_norm": 1.0}),
        ("cross_entropy", "normalized", {"temperature": 5.0, "batch_size": 25, "lr": 0.25}),
        ("quadratic", "normalized", {"solver": "cg", "l2": 1e-3}),
        ("mse", "linear", {"solver": "cg"}),
    ],
)
def test_short_sweep_training_reaches_high_accuracy(loss, readout, extra):
    _, phi, y = make_problem(n=200, n_sites=8, n_classes=2, seed=4)
    _, phi_val, y_val = make_problem(n=100, n_sites=8, n_classes=2, seed=5)
    module = MPSClassifierModule(8, 2, 2, readout=readout, dtype=F64)
    module.reset_parameters(generator=torch.Generator().manual_seed(0))
    model = LabelledMPS.from_module(module)
    result = train_sweep(
        model,
        phi,
        y,
        n_sweeps=3,
        max_bond=6,
        loss=loss,
        steps_per_bond=2,
        phi_val=phi_val,
        y_val=y_val,
        env_dtype=F64,
        **extra,
    )
    assert len(result.history) == 3
    # the returned model is the sweep with the lowest validation loss
    val_losses = [entry["val_loss"] for entry in result.history]
    assert result.best_epoch == 1 + val_losses.index(min(val_losses))
    final = result.history[result.best_epoch - 1]
    assert final["train_accuracy"] >= 0.9 and final["val_accuracy"] >= 0.85
    # the summary is exact: it equals an independent evaluation of the returned model
    f = reference_amplitudes(result.model, phi)
    pred = (f.abs() if readout == "born" else f).argmax(1)
    assert final["train_accuracy"] == pytest.approx(float((pred == y).double().mean()))
    assert result.model.readout == readout
    module_out = result.model.to_module()
    assert (module_out(embed_inverse(phi)).argmax(1) == pred).all()


def embed_inverse(phi: torch.Tensor) -> torch.Tensor:
    """x back from the trigonometric map phi = [cos(pi x / 2), sin(pi x / 2)]."""
    return torch.atan2(phi[..., 1], phi[..., 0]) * 2 / math.pi


@pytest.mark.parametrize("batch_size", [None, 16])
def test_interrupted_and_resumed_sweeps_equal_an_uninterrupted_run(tmp_path, batch_size):
    _, phi, y = make_problem(n=80)
    _, model = make_model()
    kwargs = dict(
        n_sweeps=2,
        max_bond=5,
        loss="cross_entropy",
        env_dtype=F64,
        batch_size=batch_size,
        lr_schedule="constant" if batch_size is None else "cosine",
    )
    if batch_size is not None:  # the best sweep so far travels in the checkpoint
        kwargs.update(phi_val=phi[:30], y_val=y[:30])
    reference = train_sweep(model, phi, y, **kwargs)

    def ctrl_c_at_bond_5(state, metrics):
        if state["epoch"] == 1 and state["step"] == 5:
            signal.raise_signal(signal.SIGINT)

    ckpt = tmp_path / "sweep.ckpt"
    with pytest.raises(KeyboardInterrupt):
        train_sweep(model, phi, y, checkpoint_path=ckpt, callback=ctrl_c_at_bond_5, **kwargs)
    saved = load_checkpoint(ckpt)
    assert saved["loop"]["epoch"] == 0 and saved["loop"]["step"] == 5
    resumed = train_sweep(model, phi, y, checkpoint_path=ckpt, resume=True, **kwargs)
    for a, b in zip(reference.model.cores, resumed.model.cores, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert [e["loss"] for e in resumed.steps] == [e["loss"] for e in reference.steps]
    assert resumed.best_epoch == reference.best_epoch
    assert load_checkpoint(ckpt)["loop"]["epoch"] == 2


def test_cosine_schedule_anneals_the_bond_step_over_the_run():
    _, phi, y = make_problem(n=60)
    _, model = make_model()
    result = train_sweep(model, phi, y, n_sweeps=2, lr=0.2, lr_schedule="cosine")
    steps = [entry["lr"] for entry in result.steps]
    # the first sweep goes from the middle label site to the right end and back to 0
    total = (model.n_sites - 1 - model.label_site) + (model.n_sites - 1) + 2 * (model.n_sites - 1)
    assert len(steps) == total
    expected = [0.1 * (1 + math.cos(math.pi * m / total)) for m in range(total)]
    assert steps == pytest.approx(expected, rel=1e-12)
    constant = train_sweep(model, phi, y, n_sweeps=1, lr=0.2)
    assert {entry["lr"] for entry in constant.history} == {0.2}
    with pytest.raises(InvalidInputError, match="lr_schedule"):
        train_sweep(model, phi, y, lr_schedule="plateau")


def test_callback_stops_the_sweep():
    _, phi, y = make_problem(n=40)
    _, model = make_model()
    result = train_sweep(model, phi, y, n_sweeps=2, callback=lambda state, m: state["step"] == 2)
    assert result.stopped_early and len(result.steps) == 2 and result.history == []


# --------------------------------------------------------------------------------------------
# memory, input checks, data-parallel helpers
# --------------------------------------------------------------------------------------------


def test_memory_budget_error_says_what_is_needed():
    _, phi, y = make_problem(n=100)
    _, model = make_model()
    with pytest.raises(InvalidInputError) as err:
        train_sweep(model, phi, y, max_bond=32, memory_budget=10_000)
    text = str(err.value)
    needed = 100 * 9 * 32 * 4 / 2**30
    assert f"{needed:.2f} GiB" in text
    assert "memory_budget" in text and "max_bond" in text and "fewer samples" in text
    # a budget that fits works and bounds the chunk of samples projected at once
    sweeper = BondSweeper(model, phi, y, max_bond=32, memory_budget=200_000)
    assert 1 <= sweeper.chunk_size < 100
    sweeper.update_bond("right", lr=0.1)


def test_chunked_and_unchunked_bond_updates_agree():
    _, phi, y = make_problem(n=90)
    _, model = make_model()
    results = []
    for chunk in (7, None):
        sweeper = BondSweeper(model, phi, y, loss="cross_entropy", env_dtype=F64, chunk_size=chunk)
        entry = sweeper.update_bond("left", lr=0.3, steps_per_bond=2)
        results.append((entry["loss"], unfused_cores(sweeper.model)[3]))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-12)
    torch.testing.assert_close(results[0][1], results[1][1], rtol=1e-10, atol=1e-12)


def test_bad_input_is_rejected_with_clear_messages():
    _, phi, y = make_problem(n=30)
    _, model = make_model()
    with pytest.raises(InvalidInputError, match="phi must have shape"):
        train_sweep(model, phi[:, :5], y)
    with pytest.raises(InvalidInputError, match=r"class indices in \[0, 3\)"):
        train_sweep(model, phi, y + 3)
    with pytest.raises(InvalidInputError, match="loss must be one of"):
        train_sweep(model, phi, y, loss="hinge")
    with pytest.raises(InvalidInputError, match="resume=True needs checkpoint_path"):
        train_sweep(model, phi, y, resume=True)
    with pytest.raises(InvalidInputError, match="cannot move left"):
        BondSweeper(move_label(model, 0), phi, y).update_bond("left")
    with pytest.raises(InvalidInputError, match="D_left = 1"):
        LabelledMPS([torch.ones(2, 2, 2), torch.ones(2, 2, 3, 1)], 1)
    with pytest.raises(InvalidInputError, match="pass n_classes"):
        LabelledMPS([torch.ones(1, 2, 2), torch.ones(2, 6, 1)], 1)
    with pytest.raises(InvalidInputError, match="not d \\* n_classes"):
        LabelledMPS([torch.ones(1, 2, 2), torch.ones(2, 5, 1)], 1, n_classes=2)
    with pytest.raises(InvalidInputError, match="one physical dimension"):
        LabelledMPS([torch.ones(1, 3, 2), torch.ones(2, 2, 3, 1)], 1)


def test_shard_for_rank_covers_every_sample_once():
    for n, world in [(10, 3), (7, 4), (2, 3)]:
        shards = [shard_for_rank(n, rank=r, world_size=world) for r in range(world)]
        covered = [i for s in shards for i in range(n)[s]]
        assert covered == list(range(n))
    assert shard_for_rank(5) == slice(0, 5)  # not distributed: everything


def test_fit_temperature_minimises_the_training_cross_entropy():
    _, phi, y = make_problem(n=150)
    _, model = make_model()
    # a model that has learned something, trained with the temperature held at 1
    trained = train_sweep(
        model, phi, y, n_sweeps=2, max_bond=4, loss="cross_entropy", temperature=1.0
    ).model
    sweeper = BondSweeper(trained, phi, y, loss="cross_entropy", env_dtype=F64)
    before, _ = sweeper.training_metrics()
    t = sweeper.fit_temperature()
    after, _ = sweeper.training_metrics()
    assert after < before
    # a minimum: moving the temperature either way raises the loss
    for factor in (0.9, 1.1):
        sweeper.model.log_temperature = math.log(t * factor)
        assert sweeper.training_metrics()[0] > after
    # train_sweep learns it by default (a fixed temperature of 1 caps the logits at 1)
    result = train_sweep(model, phi, y, n_sweeps=1, max_bond=4, loss="cross_entropy")
    assert result.model.log_temperature != model.log_temperature
    fixed = train_sweep(
        model, phi, y, n_sweeps=1, max_bond=4, loss="cross_entropy", temperature=2.0
    )
    assert fixed.model.log_temperature == pytest.approx(math.log(2.0))


def test_fit_temperature_on_held_out_data_minimises_their_cross_entropy():
    _, phi, y = make_problem(n=150)
    _, phi_val, y_val = make_problem(n=80, seed=3)
    _, model = make_model()
    trained = train_sweep(
        model, phi, y, n_sweeps=2, max_bond=4, loss="cross_entropy", temperature=1.0
    ).model
    sweeper = BondSweeper(trained, phi, y, loss="cross_entropy", env_dtype=F64)
    t = sweeper.fit_temperature(phi_val, y_val)
    held_out = sweeper.evaluate(phi_val, y_val)[0]
    for factor in (0.9, 1.1):
        sweeper.model.log_temperature = math.log(t * factor)
        assert sweeper.evaluate(phi_val, y_val)[0] > held_out
    with pytest.raises(InvalidInputError, match="y"):
        sweeper.fit_temperature(phi_val, y_val[:10])
    # a process without validation samples (a small set over many processes) keeps its place
    sweeper.model.log_temperature = math.log(t)
    assert sweeper.fit_temperature(phi_val[:0], y_val[:0]) == pytest.approx(t)


def test_sweeps_on_separable_data_without_validation_do_not_undo_the_model():
    # the training set separates after a sweep, so the fitted temperature grows without
    # bound; the steps, taken on the loss divided by the temperature, must not grow with it
    _, phi, y = make_problem(n=60, seed=2)
    _, model = make_model(bond=4)
    result = train_sweep(model, phi, y, n_sweeps=5, max_bond=8, loss="cross_entropy")
    accuracies = [entry["train_accuracy"] for entry in result.history]
    assert min(accuracies[1:]) >= 0.9, accuracies  # (before: 0.85, 0.62, 0.52, 0.60, 0.53)


def test_default_sweep_step_shrinks_with_the_square_root_of_the_batch():
    _, phi, y = make_problem(n=100)
    _, model = make_model()
    full = train_sweep(model, phi, y, n_sweeps=1, max_bond=4, loss="cross_entropy")
    mini = train_sweep(model, phi, y, n_sweeps=1, max_bond=4, loss="cross_entropy", batch_size=25)
    assert full.steps[0]["lr"] == pytest.approx(2.0)
    assert mini.steps[0]["lr"] == pytest.approx(2.0 * math.sqrt(25 / 100))


# --------------------------------------------------------------------------------------------
# the paper's quadratic cost and conjugate-gradient bond solver
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("loss", "readout"), [("quadratic", "normalized"), ("mse", "linear")])
def test_conjugate_gradient_reaches_the_exact_minimiser_of_the_bond_problem(loss, readout):
    """Unnormalised CG on the regularised quadratic bond problem converges to its unique
    minimiser: the gradient of mean loss + l2/2 ||B||^2 vanishes there, and no other bond
    tensor nearby does better."""
    _, phi, y = make_problem(n=60, n_sites=5, n_classes=2, seed=7)
    _, model = make_model(n_sites=5, n_classes=2, bond=2, readout=readout)
    sweeper = BondSweeper(model, phi, y, loss=loss, env_dtype=F64)
    k = sweeper.model.label_site
    cores = unfused_cores(sweeper.model)
    start = torch.einsum("aslb,btr->asltr", cores[k], cores[k + 1])
    l2 = 1e-3
    bond, _, _ = sweeper._conjugate_gradient(start, k, passes=60, l2=l2, normalize=False)

    def objective(b):
        loss_sum, _, grad = sweeper._loss_and_gradient(b, k, need_grad=True)
        n = phi.shape[0]
        return loss_sum / n + 0.5 * l2 * float(b.square().sum()), grad / n + l2 * b

    value, grad = objective(bond)
    assert float(grad.norm()) < 1e-8 * max(1.0, float(bond.norm()))
    start_value, _ = objective(start)
    assert value < start_value
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        nudged = bond + 1e-3 * torch.randn(bond.shape, generator=g, dtype=F64)
        assert objective(nudged)[0] > value


def test_quadratic_loss_reads_inputs_projected_into_unit_norm_environments():
    """The cost of the paper's code: 1/2 sum_l (c_l - delta)^2 with c the amplitude of the
    input projected into left and right environments scaled to norm 1 -- the same on the
    training samples (from the stored environments) and through the chain (held-out path)."""
    _, phi, y = make_problem(n=50, n_sites=6, n_classes=3, seed=2)
    _, model = make_model(n_sites=6, n_classes=3, bond=3)
    sweeper = BondSweeper(model, phi, y, loss="quadratic", env_dtype=F64)
    c = sweeper.model.label_site
    left = reference_environment(sweeper.model, phi, "left", c)
    right = reference_environment(sweeper.model, phi, "right", c)
    left = left / left.norm(dim=1, keepdim=True)
    right = right / right.norm(dim=1, keepdim=True)
    core = unfused_cores(sweeper.model)[c]
    amp = torch.einsum("na,aslb,ns,nb->nl", left, core, phi[:, c], right)
    expected = 0.5 * (amp - F.one_hot(y, 3).to(F64)).square().sum(1).mean()
    train_loss, _ = sweeper.training_metrics()
    held_out_loss, _ = sweeper.evaluate(phi, y)
    assert train_loss == pytest.approx(float(expected), rel=1e-10)
    assert held_out_loss == pytest.approx(float(expected), rel=1e-10)


def test_conjugate_gradient_solver_rejects_what_it_cannot_do():
    _, phi, y = make_problem(n=30, n_sites=5, n_classes=2)
    _, model = make_model(n_sites=5, n_classes=2, bond=2)
    with pytest.raises(InvalidInputError, match="solver='cg' needs a quadratic loss"):
        train_sweep(model, phi, y, loss="cross_entropy", solver="cg")
    with pytest.raises(InvalidInputError, match="full-batch"):
        train_sweep(model, phi, y, loss="quadratic", solver="cg", batch_size=8)
    with pytest.raises(InvalidInputError, match="solver must be one of"):
        train_sweep(model, phi, y, loss="quadratic", solver="newton")
    with pytest.raises(InvalidInputError, match="l2 must be"):
        train_sweep(model, phi, y, loss="quadratic", solver="cg", l2=-1.0)


# --------------------------------------------------------------------------------------------
# truncation in the data's metric
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_bond_grams_are_the_metric_of_the_projected_samples(loss):
    _, phi, y = make_problem(n=50)
    _, model = make_model()
    sweeper = BondSweeper(model, phi, y, loss=loss, env_dtype=F64)
    k = sweeper.model.label_site
    left = reference_environment(sweeper.model, phi, "left", k)
    right = reference_environment(sweeper.model, phi, "right", k + 1)
    x = torch.einsum("na,ns->nas", left, phi[:, k]).reshape(50, -1)
    yv = torch.einsum("ns,nb->nsb", phi[:, k + 1], right).reshape(50, -1)
    if loss == "mse":  # each sample weighed by its squared scale, as the loss weighs it
        weights = left.square().sum(1) * right.square().sum(1)
        scale_x, scale_y = right.square().sum(1), left.square().sum(1)
    else:  # scale-free: every sample's projection at unit norm
        weights = torch.ones(50, dtype=F64)
        scale_x, scale_y = 1 / left.square().sum(1), 1 / right.square().sum(1)
    expected_left = (x * scale_x[:, None]).T @ x / weights.sum()
    expected_right = (yv * scale_y[:, None]).T @ yv / weights.sum()
    gram_left, gram_right = sweeper.bond_grams(k)
    torch.testing.assert_close(gram_left, expected_left, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(gram_right, expected_right, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_truncating_in_the_data_metric_keeps_what_the_samples_see(seed):
    """Label moves truncated to a small bond: where the samples see a small part of the
    model's norm (here inputs near 0, so ``phi ~ (1, small)`` at every site, as real images
    are mostly background), the classifier's amplitudes on them change far less when truncated
    in their metric than in norm; the moves stay canonical."""
    x, _, y = make_problem(n=200, seed=seed)
    phi = embed(0.15 * x)
    _, model = make_model(bond=6, seed=seed + 1)
    expected = reference_amplitudes(model, phi)
    errors = {}
    for truncation in ("data", "norm"):
        sweeper = BondSweeper(model, phi, y, loss="cross_entropy", env_dtype=F64)
        for direction in ["right"] * 3 + ["left"] * 7:
            sweeper.update_bond(direction, max_bond=2, cutoff=0.0, truncation=truncation)
            assert_canonical(sweeper.model)
        got = reference_amplitudes(sweeper.model, phi)
        # scale-free readout: compare each sample's amplitudes at unit norm
        unit = expected / expected.norm(dim=1, keepdim=True)
        got_unit = got / got.norm(dim=1, keepdim=True)
        errors[truncation] = float((unit - got_unit).square().sum(1).mean())
    assert errors["data"] < 0.5 * errors["norm"], errors


def test_sweeps_truncate_in_the_data_metric_by_default_and_in_norm_on_request():
    _, phi, y = make_problem(n=120)
    _, model = make_model(bond=4)
    by_default = train_sweep(model, phi, y, n_sweeps=1, max_bond=2, env_dtype=F64)
    in_data = train_sweep(model, phi, y, n_sweeps=1, max_bond=2, env_dtype=F64, truncation="data")
    in_norm = train_sweep(model, phi, y, n_sweeps=1, max_bond=2, env_dtype=F64, truncation="norm")
    for a, b in zip(by_default.model.cores, in_data.model.cores, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert any(
        not torch.allclose(a, b)
        for a, b in zip(in_data.model.cores, in_norm.model.cores, strict=True)
    )
    with pytest.raises(InvalidInputError, match="truncation must be one of"):
        train_sweep(model, phi, y, n_sweeps=1, truncation="svd")
    # the born readout truncates in norm unless told otherwise
    born = train_sweep(model, phi, y, n_sweeps=1, max_bond=2, env_dtype=F64, readout="born")
    born_norm = train_sweep(
        model, phi, y, n_sweeps=1, max_bond=2, env_dtype=F64, readout="born", truncation="norm"
    )
    for a, b in zip(born.model.cores, born_norm.model.cores, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("env_dtype", [F64, torch.float32])
def test_each_split_discards_exactly_its_weight_in_the_data_metric(env_dtype):
    """Moves both ways: the change of the merged bond tensor, measured with the Grams of the
    samples before the move, is the discarded weight the update reports (so neither side's
    metric can be dropped or swapped unnoticed)."""
    _, phi, y = make_problem(n=150, seed=2)
    _, model = make_model(bond=5, seed=3)
    sweeper = BondSweeper(model, phi, y, loss="cross_entropy", env_dtype=env_dtype)
    for direction in ["right"] * 3 + ["left"] * 5:
        c = sweeper.model.label_site
        k = c if direction == "right" else c - 1
        before = sweeper.model.merged_bond(k).double()
        gram_left, gram_right = sweeper.bond_grams(k)
        record = sweeper.update_bond(direction, max_bond=3, cutoff=0.0, truncation="data")
        after = sweeper.model.merged_bond(k).double()
        dl, d, n_labels, _, dr = before.shape
        e = (before - after).reshape(dl * d, n_labels, d * dr)
        error = float(torch.einsum("alq,ab,blr,qr->", e, gram_left, e, gram_right))
        assert record["discarded_weight"] == pytest.approx(
            error, rel=1e-4 if env_dtype == F64 else 1e-3, abs=1e-12
        )


# --------------------------------------------------------------------------------------------
# the losses on the raw amplitudes: scale and step
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("loss", "readout"), [("mse", "linear"), ("cross_entropy", "linear")])
def test_fit_scale_minimises_the_loss_over_the_scale_of_the_model(loss, readout):
    _, phi, y = make_problem(n=80)
    _, model = make_model(readout=readout)
    with torch.no_grad():  # amplitudes far off their targets, as a fresh long chain's are
        model.cores[model.label_site].mul_(300.0)
    sweeper = BondSweeper(model, phi, y, loss=loss, readout=readout, env_dtype=F64)
    before = reference_amplitudes(sweeper.model, phi)
    sweeper.fit_scale()
    after = reference_amplitudes(sweeper.model, phi)
    factor = (after / before).mean()
    torch.testing.assert_close(after, factor * before)  # only the scale changed

    scale = torch.tensor(1.0, dtype=F64, requires_grad=True)
    value = reference_loss(scale * after, y, loss, readout)
    (slope,) = torch.autograd.grad(value, scale)
    assert abs(float(slope)) < 1e-6  # stationary in the scale
    assert float(value) < float(reference_loss(before, y, loss, readout))


def test_fit_scale_leaves_scale_free_losses_alone():
    _, phi, y = make_problem(n=40)
    _, model = make_model()
    sweeper = BondSweeper(model, phi, y, loss="cross_entropy", env_dtype=F64)
    before = reference_amplitudes(sweeper.model, phi)
    sweeper.fit_scale()
    torch.testing.assert_close(reference_amplitudes(sweeper.model, phi), before)


@pytest.mark.parametrize("k", [0, 3, 6])
@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
@pytest.mark.parametrize("batch", [None, 7])
def test_raw_amplitude_gradient_scale_bounds_the_hessian(k, loss, batch):
    _, phi, y = make_problem(n=60)
    _, model = make_model(n_sites=8, readout="linear")
    sweeper = BondSweeper(model, phi, y, loss=loss, readout="linear", env_dtype=F64)
    sweeper.fit_scale()
    while sweeper.model.label_site > k:  # the label to site k: bond (k, k + 1) is trained
        sweeper.update_bond("left", lr=0.0, max_bond=None)
    while sweeper.model.label_site < k:
        sweeper.update_bond("right", lr=0.0, max_bond=None)
    bond = sweeper.model.merged_bond(k)
    rows = slice(None) if batch is None else torch.arange(5, 5 + batch)  # a mini-batch
    log_scale = sweeper._log_scale_at(k)[rows]

    def mean_loss(b: torch.Tensor) -> torch.Tensor:
        x_left, x_right = sweeper.envs.left(k)[0][rows], sweeper.envs.right(k + 1)[0][rows]
        c = torch.einsum(
            "na,ns,asltr,nt,nr->nl", x_left, phi[rows, k], b, phi[rows, k + 1], x_right
        )
        return reference_loss(c * torch.exp(log_scale)[:, None], y[rows], loss, "linear")

    hessian = torch.autograd.functional.hessian(mean_loss, bond).reshape(bond.numel(), -1)
    largest = float(torch.linalg.eigvalsh(hessian).max())
    bound = sweeper._gradient_scale(log_scale)
    assert 0 < largest <= bound * (1 + 1e-9)
    assert largest > 1e-3 * bound  # a bound on the scale of the curvature, not a loose one


def test_raw_amplitude_losses_train_on_a_long_chain():
    # 64 sites: a fresh chain's raw amplitudes are far off their targets and their scales
    # orders of magnitude below 1; before the scale fit and the scaled step these sweeps
    # stayed at chance (10%)
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x, y = torch.tensor(x / 16.0), torch.tensor(y)
    phi = embed(x[:600])
    module = MPSClassifierModule(64, 10, 2, readout="linear", dtype=F64)
    module.reset_parameters(generator=torch.Generator().manual_seed(0))
    start = LabelledMPS.from_module(module)
    for loss in ("mse", "cross_entropy"):
        result = train_sweep(
            start,
            phi,
            y[:600],
            n_sweeps=1,
            max_bond=8,
            loss=loss,
            readout="linear",
            batch_size=20,
            env_dtype=F64,
        )
        predicted = result.model.amplitudes(embed(x[600:900])).argmax(1)  # tested above
        assert float((predicted == y[600:900]).double().mean()) > 0.6, loss  # chance: 0.1


def test_a_sweep_that_learns_nothing_says_so():
    _, phi, y = make_problem(n=120)
    _, model = make_model()
    with pytest.warns(TrainingWarning, match="next to no progress in the first sweep"):
        train_sweep(model, phi, y, n_sweeps=2, max_bond=4, loss="cross_entropy", lr=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrainingWarning)
        train_sweep(model, phi, y, n_sweeps=2, max_bond=4, loss="cross_entropy", batch_size=20)


def test_the_quadratic_loss_trains_the_same_with_any_readout():
    # its amplitudes live in unit-norm environments: the readout only picks the argmax
    _, phi, y = make_problem(n=120)
    models = {}
    for readout in ("normalized", "linear"):
        _, start = make_model(readout=readout)
        result = train_sweep(start, phi, y, n_sweeps=1, max_bond=4, loss="quadratic", batch_size=30)
        models[readout] = result.model
    for a, b in zip(models["normalized"].cores, models["linear"].cores, strict=True):
        torch.testing.assert_close(a, b)
    assert float((models["linear"].amplitudes(phi).argmax(1) == y).double().mean()) > 0.8


def test_a_warm_start_keeps_the_fitted_scale_of_raw_amplitudes():
    # the cross-entropy of raw amplitudes that separate the training set is lowest at an
    # infinite scale: refitting it on every warm fit froze the model at saturated outputs
    x, _, y = make_problem(n=200, n_classes=2)
    clf = tnml.MPSClassifier(
        bond_dim=2, trainer="sweep", max_bond=6, epochs=3, loss="cross_entropy",
        readout="linear", dtype="float64", random_state=0, warm_start=True,
    )  # fmt: skip
    losses = []
    for _ in range(3):
        clf.fit(x[:150].numpy(), y[:150].numpy())
        losses.append([entry["val_loss"] for entry in clf.history_])
    assert losses[2][-1] < losses[1][-1] < losses[0][-1]  # each warm fit goes on improving
    assert float(clf.predict_proba(x[150:].numpy()).max(1).min()) < 0.99
