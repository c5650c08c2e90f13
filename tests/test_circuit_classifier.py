"""The circuit classifier: its module against a dense state vector, the estimator's face."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits
from sklearn.utils.estimator_checks import parametrize_with_checks

import tnml
from tnml.exceptions import InvalidInputError
from tnml.nn.circuit import CircuitClassifierModule, blocks_after, circuit_plan


def probabilities_by_hand(module: CircuitClassifierModule, x: torch.Tensor) -> torch.Tensor:
    """p(l|x) from full 2^n x 2^n matrices (Kronecker products), one sample at a time."""
    n = module.n_qubits
    gates = module.gate_matrices().detach()
    eye = torch.eye(2, dtype=torch.float64)
    out = []
    for row in x:
        psi = torch.zeros(2**n, dtype=torch.float64)
        psi[0] = 1
        for kind, index, a, b in module.plan:
            if kind == "data":
                t = module.angle_scale * math.pi * float(row[index])
                local = torch.tensor(
                    [[math.cos(t / 2), -math.sin(t / 2)], [math.sin(t / 2), math.cos(t / 2)]],
                    dtype=torch.float64,
                )
                parts = [local if q == a else eye for q in range(n)]
            else:
                parts = [eye] * a + [gates[index]] + [eye] * (n - b - 1)
            full = parts[0]
            for p in parts[1:]:
                full = torch.kron(full, p)
            psi = full @ psi
        label_bits = module.n_label_qubits
        weights = (psi**2).reshape(2**label_bits, -1).sum(1)[: module.n_classes]
        out.append(weights / weights.sum())
    return torch.stack(out)


def test_module_is_the_circuit_it_describes():
    module = CircuitClassifierModule(7, 3, 4, blocks_per_feature=1.5, angle_scale=0.6)
    module.double().reset_parameters(torch.Generator().manual_seed(0))
    with torch.no_grad():
        module.angles.mul_(100)  # far from the identity
    x = torch.rand(5, 7, dtype=torch.float64)
    torch.testing.assert_close(module.label_probabilities(x), probabilities_by_hand(module, x))
    logp = module(x)
    torch.testing.assert_close(logp.exp().sum(1), torch.ones(5, dtype=torch.float64))


def test_plan_spreads_blocks_and_loads_every_feature():
    assert blocks_after(10, 1.5) == [1, 2, 1, 2, 1, 2, 1, 2, 1, 2]
    assert sum(blocks_after(64, 3.9)) == 249
    plan = circuit_plan(6, 4, 2, "snake")
    assert [p[1] for p in plan if p[0] == "data"] == list(range(6))
    edges = [p[2] for p in plan if p[0] == "block"]
    assert edges == [0, 1, 2, 1, 0, 1, 2, 1, 0, 1, 2, 1]
    assert all(b == a + 1 for kind, _, a, b in plan if kind == "block")  # line neighbours
    brick = [p[2] for p in circuit_plan(3, 5, 2, "brickwork") if p[0] == "block"]
    assert brick == [0, 2, 1, 3, 0, 2]


def test_module_rejects_bad_settings():
    with pytest.raises(InvalidInputError, match="label"):
        CircuitClassifierModule(4, 10, 3)
    with pytest.raises(InvalidInputError, match="blocks_per_feature"):
        CircuitClassifierModule(4, 2, 3, blocks_per_feature=0)
    with pytest.raises(InvalidInputError, match="gives no block"):
        CircuitClassifierModule(4, 2, 3, blocks_per_feature=0.1)
    with pytest.raises(InvalidInputError, match="angle_scale"):
        CircuitClassifierModule(4, 2, 3, angle_scale=float("nan"))
    with pytest.raises(InvalidInputError, match="layout"):
        CircuitClassifierModule(4, 2, 3, layout="spiral")
    with pytest.raises(InvalidInputError, match="x must have shape"):
        CircuitClassifierModule(4, 2, 3)(torch.rand(2, 5))


@parametrize_with_checks(
    [tnml.CircuitClassifier(n_qubits=2, blocks_per_feature=4, angle_scale=1.0, epochs=10)]
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_learns_digit_pairs_and_round_trips(tmp_path):
    X, y = load_digits(return_X_y=True)
    keep = np.isin(y, (3, 8))
    X, y = X[keep] / 16, y[keep]
    clf = tnml.CircuitClassifier(n_qubits=3, blocks_per_feature=1, epochs=6, random_state=0)
    clf.fit(X[:250], y[:250])
    assert clf.score(X[250:], y[250:]) > 0.9
    path = tnml.io.save(clf, tmp_path / "c.tnml")
    loaded = tnml.io.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(X[250:]), clf.predict_proba(X[250:]))
    again = tnml.CircuitClassifier(n_qubits=3, blocks_per_feature=1, epochs=6, random_state=0)
    np.testing.assert_array_equal(
        again.fit(X[:250], y[:250]).predict_proba(X), clf.predict_proba(X)
    )


def test_too_few_qubits_for_the_labels():
    X, y = load_digits(return_X_y=True)
    with pytest.raises(InvalidInputError, match="n_qubits"):
        tnml.CircuitClassifier(n_qubits=3, epochs=1).fit(X[:100] / 16, y[:100])


def test_load_on_a_missing_device_is_a_clean_error(tmp_path):
    X, y = load_digits(return_X_y=True)
    clf = tnml.CircuitClassifier(n_qubits=4, blocks_per_feature=1, epochs=1).fit(
        X[:80] / 16, y[:80]
    )
    path = tnml.io.save(clf, tmp_path / "c.tnml")
    if not torch.cuda.is_available():
        with pytest.raises(InvalidInputError, match="CUDA is not available"):
            tnml.io.load(path, device="cuda")
    with pytest.raises(InvalidInputError, match="device"):
        tnml.io.load(path, device="gpu9")
