"""Data-parallel training: 2 processes (gloo, CPU) give the same model as 1 process.

Both trainers: mini-batch autodiff (DDP) and sweeps (environments sharded by samples).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import tnml
from tnml.features import embed
from tnml.nn import MPSClassifierModule
from tnml.train import LabelledMPS, train_classifier, train_sweep
from tnml.train.distributed import shard_for_rank

GLOBAL_BATCH = 20


def problem():
    g = torch.Generator().manual_seed(0)
    X = torch.rand(130, 7, generator=g, dtype=torch.float64)
    y = ((X[:, 1] + X[:, 5]) > 1).long() + (X[:, 3] > 0.7).long()
    module = MPSClassifierModule(7, 3, 4, dtype=torch.float64)
    module.reset_parameters(generator=torch.Generator().manual_seed(1))
    return module, X[:100], y[:100], X[100:], y[100:]


def train_both():
    """Train the module directly and through the estimator; return what to compare."""
    module, X, y, X_val, y_val = problem()
    result = train_classifier(
        module,
        X,
        y,
        X_val=X_val,
        y_val=y_val,
        epochs=3,
        batch_size=GLOBAL_BATCH,
        lr=1e-2,
        seed=3,
    )
    clf = tnml.MPSClassifier(
        bond_dim=3, epochs=2, batch_size=GLOBAL_BATCH, dtype="float64", random_state=0
    )
    clf.fit(X.numpy(), y.numpy())
    # sweeps: each process keeps the environments of its own shard of the samples; their
    # default mini-batches are drawn from all processes' samples, the same for any number
    sweeper = tnml.MPSClassifier(bond_dim=2, trainer="sweep", max_bond=6, epochs=2,
                                 dtype="float64", random_state=0)  # fmt: skip
    sweeper.fit(X.numpy()[:-1], y.numpy()[:-1])  # 81 training samples: shards of 41 and 40
    # processes that start from different models train rank 0's (it is broadcast, and every
    # process's environments must come from it)
    rank = dist.get_rank() if dist.is_initialized() else 0
    start = MPSClassifierModule(7, 3, 2, dtype=torch.float64)
    start.reset_parameters(generator=torch.Generator().manual_seed(5 + rank))
    shard = shard_for_rank(X.shape[0])
    swept = train_sweep(
        LabelledMPS.from_module(start),
        embed(X[shard]),
        y[shard],
        n_sweeps=1,
        max_bond=6,
        loss="cross_entropy",
        env_dtype=torch.float64,
    )
    # shards of unequal size (45 and 44): mini-batch steps of raw-amplitude losses, which no
    # step cap evens out, with the default step computed from the number of all samples
    uneven = shard_for_rank(X.shape[0] - 1)
    raw = train_sweep(
        LabelledMPS.from_module(start),
        embed(X[:-1][uneven]),
        y[:-1][uneven],
        n_sweeps=1,
        max_bond=4,
        loss="mse",
        readout="linear",
        batch_size=16,
        env_dtype=torch.float64,
    )
    return {
        "state": {k: v.clone() for k, v in module.state_dict().items()},
        "history": result.history,
        "proba": clf.predict_proba(X_val.numpy()),
        "sweep_proba": sweeper.predict_proba(X_val.numpy()),
        "sweep_history": sweeper.history_,
        "swept": swept.model.amplitudes(embed(X_val)),
        "raw": raw.model.amplitudes(embed(X_val)),
        "raw_lr": raw.steps[0]["lr"],
    }


def worker(rank: int, world: int, init_file: str, out_file: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        outcome = train_both()
        if rank == 0:
            torch.save(outcome, out_file)
    finally:
        dist.destroy_process_group()


def test_two_processes_match_one_process(tmp_path):
    single = train_both()
    out_file = tmp_path / "rank0.pt"
    mp.spawn(worker, args=(2, str(tmp_path / "init"), str(out_file)), nprocs=2, join=True)
    double = torch.load(out_file, weights_only=False)
    for key, value in single["state"].items():
        torch.testing.assert_close(double["state"][key], value, rtol=1e-9, atol=1e-11)
    for a, b in zip(single["history"], double["history"], strict=True):
        assert abs(a["train_loss"] - b["train_loss"]) < 1e-9
        assert abs(a["val_loss"] - b["val_loss"]) < 1e-9
        assert a["val_accuracy"] == b["val_accuracy"]
    np.testing.assert_allclose(double["proba"], single["proba"], rtol=1e-8, atol=1e-10)
    # the sweeps' SVDs amplify the different summation order to ~1e-8 in float64
    np.testing.assert_allclose(double["sweep_proba"], single["sweep_proba"], rtol=1e-6,
                               atol=1e-9)  # fmt: skip
    for a, b in zip(single["sweep_history"], double["sweep_history"], strict=True):
        assert abs(a["train_loss"] - b["train_loss"]) < 1e-7
        assert a["train_accuracy"] == b["train_accuracy"]
    torch.testing.assert_close(double["swept"], single["swept"], rtol=1e-6, atol=1e-9)
    assert double["raw_lr"] == single["raw_lr"]
    torch.testing.assert_close(double["raw"], single["raw"], rtol=1e-6, atol=1e-9)
    # the training did something: the weights moved
    fresh = problem()[0].state_dict()
    assert not torch.allclose(fresh["cores"], single["state"]["cores"])
