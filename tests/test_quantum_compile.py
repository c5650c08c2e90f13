"""Circuits compiled from unitary models compute what the models compute.

Truth: a brute-force dense density-matrix simulation of the circuit written here (full
``2^n x 2^n`` operators), the models' own classical evaluation, and dense Born amplitudes.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

import tnml
from tnml.exceptions import InvalidInputError
from tnml.nn.unitary import UnitaryMPSClassifierModule, UnitaryTTNClassifierModule
from tnml.quantum.circuit import Gate, Measure, Reset
from tnml.quantum.compile import compile as compile_circuit
from tnml.quantum.compile import compile_born_mps
from tnml.tensor.mps import MPS, mps_to_dense, random_mps


def _full_operator(matrix: torch.Tensor, qubits: tuple[int, ...], n: int) -> torch.Tensor:
    """``matrix`` on ``qubits`` (first most significant) as a 2^n x 2^n operator."""
    k = len(qubits)
    rest = [q for q in range(n) if q not in qubits]
    op = torch.kron(matrix, torch.eye(2 ** len(rest), dtype=matrix.dtype))
    # op acts on the order (qubits..., rest...); permute to 0..n-1.
    order = list(qubits) + rest
    op = op.reshape([2] * (2 * n))
    perm = [order.index(q) for q in range(n)]
    op = op.permute(perm + [n + p for p in perm])
    assert k <= n
    return op.reshape(2**n, 2**n)


def _dense_run(circuit, x) -> tuple[torch.Tensor, dict[str, list[int]]]:
    """Final density of every qubit and, per register, the qubit of each bit (measures must
    come after the last operation on their qubit)."""
    bound = circuit.bind(x) if circuit.n_features else circuit
    n = bound.num_qubits
    rho = torch.zeros(2**n, 2**n, dtype=torch.float64)
    rho[0, 0] = 1.0
    measured: dict[str, list[int]] = {name: [-1] * size for name, size in bound.registers.items()}
    done: set[int] = set()
    for op in bound.ops:
        if isinstance(op, Gate):
            assert not set(op.qubits) & done
            u = _full_operator(op.matrix, op.qubits, n)
            rho = u @ rho @ u.T
        elif isinstance(op, Reset):
            assert op.qubit not in done
            k0 = _full_operator(
                torch.tensor([[1.0, 0.0], [0.0, 0.0]], dtype=torch.float64), (op.qubit,), n
            )
            k1 = _full_operator(
                torch.tensor([[0.0, 1.0], [0.0, 0.0]], dtype=torch.float64), (op.qubit,), n
            )
            rho = k0 @ rho @ k0.T + k1 @ rho @ k1.T
        else:
            assert isinstance(op, Measure)
            measured[op.register][op.bit] = op.qubit
            done.add(op.qubit)
    return rho, measured


def _register_distribution(rho: torch.Tensor, qubits: list[int], n: int) -> torch.Tensor:
    diag = torch.diagonal(rho).reshape([2] * n)
    others = [q for q in range(n) if q not in qubits]
    marginal = diag.sum(dim=others) if others else diag
    # marginal axes are the measured qubits in increasing qubit order; value = sum bit_b 2^b
    sorted_q = sorted(qubits)
    probs = torch.zeros(2 ** len(qubits), dtype=torch.float64)
    for bits in itertools.product((0, 1), repeat=len(qubits)):
        value = sum(bit << b for b, bit in enumerate(bits))
        index = tuple(bits[qubits.index(q)] for q in sorted_q)
        probs[value] = marginal[index]
    return probs


def _label_probs(circuit, x) -> torch.Tensor:
    rho, measured = _dense_run(circuit, x)
    probs = _register_distribution(rho, measured["label"], circuit.num_qubits)
    probs = probs[: circuit.n_labels]
    return probs / probs.sum()


@pytest.mark.parametrize("schedule", ["full", "efficient"])
@pytest.mark.parametrize(("n_features", "bond_dim", "n_classes"), [(5, 2, 2), (4, 4, 3), (3, 4, 4)])
def test_mps_circuit_matches_module(schedule, n_features, bond_dim, n_classes):
    torch.manual_seed(0)
    module = UnitaryMPSClassifierModule(
        n_features, n_classes, bond_dim, init="random", init_std=0.5, dtype=torch.float64
    )
    circuit = compile_circuit(module, schedule)
    v = module.n_bond_qubits
    assert circuit.num_qubits == (v + 1 if schedule == "efficient" else n_features + v)
    x = torch.rand(3, n_features, dtype=torch.float64)
    expected = module.label_probabilities(x).detach()
    for i in range(3):
        got = _label_probs(circuit, x[i].numpy())
        torch.testing.assert_close(got, expected[i], atol=1e-10, rtol=0)


@pytest.mark.parametrize("schedule", ["full", "efficient"])
@pytest.mark.parametrize(
    ("n_features", "bond_dim", "layout", "n_classes"),
    [(4, 2, "image", 2), (6, 4, "1d", 3), (5, 2, "1d", 2)],
)
def test_tree_circuit_matches_module(schedule, n_features, bond_dim, layout, n_classes):
    torch.manual_seed(1)
    module = UnitaryTTNClassifierModule(
        n_features,
        n_classes,
        bond_dim,
        layout=layout,
        init="random",
        init_std=0.5,
        dtype=torch.float64,
    )
    circuit = compile_circuit(module, schedule)
    if schedule == "full":
        assert circuit.num_qubits == n_features
    x = torch.rand(3, n_features, dtype=torch.float64)
    expected = module.label_probabilities(x).detach()
    for i in range(3):
        got = _label_probs(circuit, x[i].numpy())
        torch.testing.assert_close(got, expected[i], atol=1e-10, rtol=0)


@pytest.mark.parametrize(("side", "bond_dim"), [(4, 2), (8, 2), (8, 4)])
def test_qubit_counts(side, bond_dim):
    n = side * side
    v = int(math.log2(bond_dim))
    tree = UnitaryTTNClassifierModule(n, 2, bond_dim, layout="image")
    assert compile_circuit(tree, "full").num_qubits == n
    efficient = compile_circuit(tree, "efficient").num_qubits
    assert efficient <= v * (int(math.log2(n)) + 1)
    if v == 1:
        assert efficient == int(math.log2(n)) + 1
    mps = UnitaryMPSClassifierModule(n, 2, bond_dim)
    assert compile_circuit(mps, "efficient").num_qubits == v + 1
    assert compile_circuit(mps, "full").num_qubits == n + v


def test_efficient_schedule_reuses_qubits_by_reset():
    module = UnitaryMPSClassifierModule(10, 2, 2)
    circuit = compile_circuit(module, "efficient")
    counts = circuit.count_ops()
    assert counts["reset"] == 9
    assert counts["measure"] == 1


@pytest.mark.parametrize("bond", [1, 2, 3, 5])
def test_born_circuit_distribution_is_born_rule(bond):
    torch.manual_seed(2)
    mps = random_mps(5, 2, bond, dtype=torch.float64)
    circuit = compile_born_mps(mps, "full")
    psi = mps_to_dense(mps).reshape(-1)
    born = psi**2 / (psi**2).sum()  # index: feature 0 most significant
    rho, measured = _dense_run(circuit, None)
    probs = _register_distribution(rho, measured["sample"], circuit.num_qubits)
    # register value has bit j = feature j; reorder to feature 0 most significant
    reordered = torch.zeros_like(probs)
    for value in range(32):
        bits = [(value >> j) & 1 for j in range(5)]
        reordered[int("".join(map(str, bits)), 2)] = probs[value]
    torch.testing.assert_close(reordered, born, atol=1e-10, rtol=0)


def test_born_circuit_efficient_width():
    mps = random_mps(12, 2, 4, dtype=torch.float64)
    assert compile_born_mps(mps, "efficient").num_qubits == 3
    assert compile_born_mps(mps, "full").num_qubits == 14


def test_compile_estimators_and_errors():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    keep = np.isin(y, [0, 1])
    X, y = X[keep][:60] / 16, y[keep][:60]
    clf = tnml.TTNClassifier(bond_dim=2, unitary=True, epochs=1, layout="image", random_state=0)
    clf.fit(X, y)
    circuit = compile_circuit(clf, "efficient")
    assert circuit.n_features == 64 and circuit.n_labels == 2
    expected = clf.predict_proba(X[:2])
    for i in range(2):
        got = _label_probs_wide_ok(circuit, X[i], clf)
        np.testing.assert_allclose(got, expected[i], atol=1e-5)
    plain = tnml.TTNClassifier(bond_dim=2, epochs=1, layout="image", random_state=0).fit(X, y)
    with pytest.raises(InvalidInputError, match="unitary"):
        compile_circuit(plain)
    with pytest.raises(InvalidInputError, match="schedule"):
        compile_circuit(clf, "wide")
    with pytest.raises(InvalidInputError, match="2 levels"):
        compile_born_mps(MPS.random(3, 3, 2))


def _label_probs_wide_ok(circuit, x, clf):
    """The estimator's own probabilities through its module equal the circuit's (7 qubits)."""
    assert circuit.num_qubits == 7
    return _label_probs(circuit, x).numpy()


@pytest.mark.parametrize(("layout", "bond_dim"), [("1d", 3), ("image", 2), ("image", 4)])
def test_tree_born_circuit_distribution_is_born_rule(layout, bond_dim):
    from tnml.quantum.simulate import register_probabilities

    rng = np.random.default_rng(0)
    n = 8 if layout == "1d" else 9  # 3x3 image: a carried row and column
    X = rng.integers(0, 2, size=(200, n))
    X[:, 1] = X[:, 0]
    model = tnml.TTNBornMachine(
        bond_dim=bond_dim, layout=layout, epochs=2, n_levels=2, random_state=0
    ).fit(X)
    values = ((np.arange(2**n)[:, None] >> np.arange(n)) & 1).astype(np.int64)  # bit j = x_j
    expected = np.exp(model.log_prob(values))
    widths = []
    for schedule in ("full", "efficient"):
        circuit = compile_circuit(model, schedule)
        widths.append(circuit.num_qubits)
        probs = register_probabilities(circuit)[0].numpy()
        np.testing.assert_allclose(probs, expected, atol=1e-10)
    assert widths[0] == n
    assert widths[1] < n


@pytest.mark.parametrize(
    "option",
    [{"layers": 2}, {"window": 4}, {"protocol": "foo"}, {"block": "u4"}, {"min_fidelity": 0.5}],
)
def test_born_only_options_are_refused_for_a_classifier(option):
    module = UnitaryMPSClassifierModule(4, 2, 2, init="random", dtype=torch.float64)
    name = next(iter(option))
    with pytest.raises(InvalidInputError, match=f"{name}= applies to gates='native' compiles"):
        compile_circuit(module, gates="native", **option)


def test_a_zero_or_nan_mps_is_named_as_such():
    zero = MPS(
        [torch.zeros(1, 2, 2, dtype=torch.float64), torch.zeros(2, 2, 1, dtype=torch.float64)]
    )
    with pytest.raises(InvalidInputError, match="zero vector"):
        compile_circuit(zero)
    nan = MPS([torch.full((1, 2, 1), float("nan"), dtype=torch.float64)] * 2)
    with pytest.raises(InvalidInputError, match="NaN"):
        compile_circuit(nan)


def test_small_argument_checks_of_the_quantum_tier():
    from tnml.quantum.evaluate import noise_study
    from tnml.quantum.export import run_aer
    from tnml.quantum.targets import heavy_hex_target

    with pytest.raises(InvalidInputError, match="min_qubits must be an integer"):
        heavy_hex_target("a")
    with pytest.raises(InvalidInputError, match="circuit must be a tnml Circuit"):
        run_aer("x")
    module = UnitaryMPSClassifierModule(4, 2, 2, init="random", dtype=torch.float64)
    circuit = compile_circuit(module)
    X = torch.rand(5, 4, dtype=torch.float64)
    with pytest.raises(InvalidInputError, match="levels must be one sequence"):
        noise_study(circuit, X, np.zeros(5, dtype=int), [[0.1, 0.2]])
    pytest.importorskip("qiskit_aer")
    with pytest.raises(InvalidInputError, match="X is required"):
        run_aer(circuit)
