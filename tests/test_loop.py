"""The one training loop: the same result and history keys from every trainer, and the loop's
own duties (selection, patience, callbacks, checkpoints, resume) checked on a scripted rule."""

from __future__ import annotations

import math
import signal
from pathlib import Path
from typing import Any

import pytest
import torch

from tnml.exceptions import InvalidInputError
from tnml.features import embed
from tnml.nn import MPSClassifierModule, TTNBornModule
from tnml.tensor import MPS
from tnml.train import (
    HISTORY_KEYS,
    FitResult,
    LabelledMPS,
    UpdateRule,
    fit_loop,
    train_born_sweep,
    train_classifier,
    train_sweep,
    train_ttn_born_sweep,
)
from tnml.train.checkpoint import load_checkpoint


class ScriptedRule(UpdateRule):
    """Steps add 1 to a counter; epoch ``e`` reports ``val_losses[e]``."""

    name = "scripted"

    def __init__(
        self,
        val_losses: list[float],
        steps: int = 3,
        interrupt_at: int = -1,
        val_accuracies: list[float] | None = None,
    ) -> None:
        self.val_losses, self.n, self.interrupt_at = val_losses, steps, interrupt_at
        self.val_accuracies = val_accuracies or [0.5] * len(val_losses)
        self.counter = 0

    def steps_in_epoch(self, epoch: int) -> int:
        return self.n

    def step(self, epoch: int, index: int) -> tuple[str, dict[str, Any]]:
        self.counter += 1
        if self.counter == self.interrupt_at:
            signal.raise_signal(signal.SIGINT)
        return f"counter {self.counter}", {"counter": self.counter}

    def end_epoch(self, epoch: int) -> dict[str, Any]:
        return {
            "train_loss": 1.0 / (epoch + 1),
            "train_accuracy": math.nan,
            "val_loss": self.val_losses[epoch],
            "val_accuracy": self.val_accuracies[epoch],
            "lr": 0.1,
        }

    def state_dict(self) -> dict[str, Any]:
        return {"counter": self.counter}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.counter = state["counter"]

    def weights(self) -> int:
        return self.counter

    def load_weights(self, weights: int) -> None:
        self.counter = weights

    def result(self) -> int:
        return self.counter


def test_best_epoch_is_restored_and_patience_stops() -> None:
    rule = ScriptedRule([3.0, 2.0, 2.5, 2.6, 1.0])
    result = fit_loop(rule, epochs=5, patience=2)
    assert [h["epoch"] for h in result.history] == [1, 2, 3, 4]  # 2 epochs without a gain
    assert result.stopped_early and result.best_epoch == 2
    assert result.model == 6  # the counter after epoch 2 (3 steps an epoch)
    assert [s["counter"] for s in result.steps] == list(range(1, 13))


def test_select_by_accuracy_and_callbacks() -> None:
    seen: list[tuple[int, int]] = []
    result = fit_loop(
        ScriptedRule([3.0, 2.0, 2.5], val_accuracies=[0.9, 0.5, 0.8]),
        epochs=3,
        select_by="accuracy",  # the lowest loss is epoch 2, the highest accuracy epoch 1
        callback=lambda info, entry: seen.append((info["epoch"], entry["epoch"])) and False,
    )
    assert result.best_epoch == 1 and seen == [(1, 1), (2, 2), (3, 3)]
    stopped = fit_loop(ScriptedRule([1.0] * 3), epochs=3, step_callback=lambda i, r: i["step"] == 2)
    assert stopped.stopped_early and stopped.history == [] and len(stopped.steps) == 2


def test_interrupted_and_resumed_loop_equals_an_uninterrupted_one(tmp_path: Path) -> None:
    reference = fit_loop(ScriptedRule([3.0, 1.0, 2.0]), epochs=3)
    path = tmp_path / "run.ckpt"
    with pytest.raises(KeyboardInterrupt):
        fit_loop(ScriptedRule([3.0, 1.0, 2.0], interrupt_at=5), epochs=3, checkpoint_path=path)
    saved = load_checkpoint(path)
    assert saved["trainer"] == "scripted" and (saved["loop"]["epoch"], saved["loop"]["step"]) == (
        1,
        2,
    )
    resumed = fit_loop(ScriptedRule([3.0, 1.0, 2.0]), epochs=3, checkpoint_path=path, resume=True)
    assert resumed.steps == reference.steps and resumed.best_epoch == reference.best_epoch == 2
    assert [h["val_loss"] for h in resumed.history] == [3.0, 1.0, 2.0]


def test_resume_refuses_another_trainers_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "run.ckpt"
    fit_loop(ScriptedRule([1.0]), epochs=1, checkpoint_path=path)

    class Other(ScriptedRule):
        name = "other"

    with pytest.raises(InvalidInputError, match="not a checkpoint of this trainer \\(other\\)"):
        fit_loop(Other([1.0, 1.0]), epochs=2, checkpoint_path=path, resume=True)


def test_resume_refuses_a_finished_longer_run(tmp_path: Path) -> None:
    path = tmp_path / "run.ckpt"
    fit_loop(ScriptedRule([1.0, 1.0, 1.0]), epochs=3, checkpoint_path=path)
    with pytest.raises(InvalidInputError, match="epochs"):
        fit_loop(ScriptedRule([1.0, 1.0]), epochs=2, checkpoint_path=path, resume=True)


def _check_history(result: FitResult, n_epochs: int) -> None:
    assert isinstance(result, FitResult) and len(result.history) == n_epochs
    for entry in result.history:
        assert set(HISTORY_KEYS) <= set(entry), sorted(entry)
        assert all(isinstance(entry[k], (int, float)) for k in HISTORY_KEYS)
    val = [h["val_loss"] for h in result.history]
    assert result.best_epoch == 1 + val.index(min(val))


def test_every_trainer_returns_the_same_result_and_history_keys() -> None:
    torch.manual_seed(0)
    x = torch.rand(80, 6, dtype=torch.float64)
    y = (x[:, 0] > 0.5).long()
    bits = (x > 0.5).long()
    module = MPSClassifierModule(6, 2, bond_dim=3, dtype=torch.float64)
    result = train_classifier(module, x, y, X_val=x[:20], y_val=y[:20], epochs=2, batch_size=16)
    _check_history(result, 2)
    assert result.model is module
    start = LabelledMPS.from_module(MPSClassifierModule(6, 2, bond_dim=2, dtype=torch.float64))
    phi = embed(x)
    result = train_sweep(start, phi, y, phi_val=phi[:20], y_val=y[:20], n_sweeps=2, max_bond=4)
    _check_history(result, 2)
    assert isinstance(result.model, LabelledMPS) and len(result.steps) > 0
    mps = MPS.random(6, 2, 2, generator=torch.Generator().manual_seed(0))
    result = train_born_sweep(mps, bits, X_val=bits[:20], n_sweeps=2, max_bond=4, lr=0.05)
    _check_history(result, 2)
    assert isinstance(result.model, MPS) and math.isnan(result.history[0]["train_accuracy"])
    tree = TTNBornModule(8, bond_dim=4, dtype=torch.float64)
    bits8 = (torch.rand(60, 8) > 0.5).long()
    result = train_ttn_born_sweep(tree.to_ttn(), bits8, X_val=bits8[:20], n_sweeps=2, lr=0.05)
    _check_history(result, 2)


FIT_TIME_CASES = [
    ("MPSClassifier", {"bond_dim": 3}, "classifier"),
    ("MPSClassifier", {"bond_dim": 3, "trainer": "sweep", "max_bond": 4}, "classifier"),
    ("TTNClassifier", {"bond_dim": 2}, "classifier"),
    ("CircuitClassifier", {"n_qubits": 4, "blocks_per_feature": 1}, "classifier"),
    ("MPSBornMachine", {"bond_dim": 3}, "bits"),
    ("MPSBornMachine", {"bond_dim": 3, "trainer": "sweep"}, "bits"),
    ("TTNBornMachine", {"bond_dim": 2}, "bits"),
    ("MPSAnomalyDetector", {"bond_dim": 3}, "bits"),
]


@pytest.mark.parametrize(("name", "params", "data"), FIT_TIME_CASES)
def test_fit_time_options_are_parameters_and_fit_keywords_win(
    name: str, params: dict[str, Any], data: str, tmp_path: Path
) -> None:
    """checkpoint_path and callback reach every trainer through set_params (so a grid search
    or a clone carries them); the same keyword given to fit replaces the parameter."""
    import sklearn.base

    import tnml

    gen = torch.Generator().manual_seed(0)
    x = torch.rand(60, 8, generator=gen, dtype=torch.float64).numpy()
    y = (x[:, 0] + x[:, 3] > 1).astype(int)
    X = (x > 0.5).astype(int) if data == "bits" else x
    seen: list[int] = []
    estimator = getattr(tnml, name)(epochs=2, random_state=0, **params)
    estimator.set_params(
        checkpoint_path=tmp_path / "ck.pt", callback=lambda state, m: seen.append(m["epoch"])
    )
    clone = sklearn.base.clone(estimator)
    assert clone.get_params()["checkpoint_path"] == tmp_path / "ck.pt"
    clone.fit(X, y)
    # (the sweeps call back after every bond update too, within its epoch)
    assert sorted(set(seen)) == [1, 2] and (tmp_path / "ck.pt").is_file()
    calls = len(seen)
    replaced: list[int] = []
    clone.fit(X, y, callback=lambda state, m: replaced.append(m["epoch"]))
    assert len(seen) == calls and sorted(set(replaced)) == [1, 2]
    # a saved model keeps none of a run's side arrangements
    tnml.io.save(clone, tmp_path / "model.tnml")
    loaded = tnml.io.load(tmp_path / "model.tnml").get_params()
    assert loaded["callback"] is None and loaded["checkpoint_path"] is None
