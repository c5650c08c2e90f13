"""Qiskit export and Qiskit Aer as an independent check of the torch simulator."""

import math

import numpy as np
import pytest
import torch

pytest.importorskip("qiskit_aer")

from qiskit.quantum_info import Statevector

from tnml.exceptions import InvalidInputError
from tnml.quantum import (
    Circuit,
    Gate,
    Measure,
    NoiseModel,
    Reset,
    register_probabilities,
    run_aer,
    sample,
    simulate,
    to_qasm3,
    to_qiskit,
    transpile_report,
)


def random_unitary(rng: np.random.Generator, k: int, complex_: bool = False) -> torch.Tensor:
    a = rng.normal(size=(2**k, 2**k))
    if complex_:
        a = a + 1j * rng.normal(size=(2**k, 2**k))
    q, r = np.linalg.qr(a)
    return torch.as_tensor(q * (np.diag(r) / np.abs(np.diag(r))))


def reset_circuit(seed: int = 0) -> Circuit:
    """5 qubits: data gates, 1-3 qubit real and complex gates, mid-circuit measure + reset."""
    rng = np.random.default_rng(seed)
    ops = [Gate((q,), feature=q) for q in range(5)]
    ops += [
        Gate((0, 1), random_unitary(rng, 2), name="a"),
        Gate((2, 1, 3), random_unitary(rng, 3, True), name="b"),
        Measure(1, "aux", 0),
        Reset(1),
        Gate((1,), feature=5),
        Gate((4, 1), random_unitary(rng, 2, True), name="c"),
        Reset(0),
        Gate((3, 0), random_unitary(rng, 2), name="d"),
        Gate((2,), random_unitary(rng, 1, True), name="e"),
        Gate((0, 2, 4), random_unitary(rng, 3), name="f"),
        Measure(4, "label", 0),
        Measure(2, "label", 1),
    ]
    return Circuit(5, ops, {"aux": 1, "label": 2}, n_features=6, n_labels=3)


def staircase(n: int, seed: int = 1) -> Circuit:
    rng = np.random.default_rng(seed)
    ops = [Gate((q,), feature=q) for q in range(n)]
    ops += [Gate((q, q + 1), random_unitary(rng, 2, q % 3 == 0)) for q in range(n - 1)]
    ops += [Measure(n - 1, "label", 0), Measure(n - 2, "label", 1)]
    return Circuit(n, ops, {"label": 2}, n_features=n)


def tree(n: int, seed: int = 2) -> Circuit:
    rng = np.random.default_rng(seed)
    ops = [Gate((q,), feature=q) for q in range(n)]
    active = list(range(n))
    while len(active) > 1:
        pairs = list(zip(active[0::2], active[1::2], strict=False))
        ops += [Gate((a, b), random_unitary(rng, 2), name="node") for a, b in pairs]
        active = [b for _, b in pairs] + ([active[-1]] if len(active) % 2 else [])
    ops.append(Measure(active[0], "label", 0))
    return Circuit(n, ops, {"label": 1}, n_features=n)


def test_to_qiskit_bit_order_and_registers():
    x = torch.tensor([[0, 1], [1, 0]], dtype=torch.float64)
    cnot = torch.eye(4, dtype=torch.float64)[[0, 1, 3, 2]]  # control = qubits[0]
    ops = [Reset(0), Gate((0,), x), Gate((0, 1), cnot), Gate((2, 0), cnot), Measure(0, "label", 0)]
    ops += [Measure(1, "label", 1), Measure(2, "label", 2)]
    circuit = Circuit(3, ops, {"aux": 1, "label": 3})
    qc = to_qiskit(circuit)
    assert [c.name for c in qc.cregs] == ["aux", "label"] and qc.num_qubits == 3
    assert qc.count_ops()["measure"] == 3 and qc.count_ops()["reset"] == 1
    # q0 = q1 = 1, q2 = 0; Qiskit's label is little-endian (q0 rightmost).
    assert Statevector(to_qiskit(circuit, measure=False)).probabilities_dict() == {"011": 1.0}
    np.testing.assert_allclose(simulate(circuit).numpy(), np.eye(8)[[3]])


def test_exact_with_resets_matches_aer():
    circuit = reset_circuit()
    X = np.random.default_rng(5).random((3, 6))
    np.testing.assert_allclose(simulate(circuit, X), run_aer(circuit, X), atol=1e-6)


def test_exact_20_qubits_statevector():
    circuit = staircase(20)
    X = np.random.default_rng(6).random((2, 20))
    np.testing.assert_allclose(simulate(circuit, X), run_aer(circuit, X), atol=1e-6)


def test_exact_wide_tree_matrix_product_state():
    circuit = tree(33)
    X = np.random.default_rng(7).random((2, 33))
    np.testing.assert_allclose(simulate(circuit, X), run_aer(circuit, X), atol=1e-6)


@pytest.mark.parametrize(
    "noise",
    [
        NoiseModel(depolarizing_1q=0.1),
        NoiseModel(depolarizing_2q=0.15),
        NoiseModel(amplitude_damping=0.2),
        NoiseModel(dephasing=0.25),
        NoiseModel(readout_error=(0.05, 0.1)),
        NoiseModel(0.03, 0.08, 0.05, 0.07, 0.02),
    ],
)
def test_exact_noise_matches_aer(noise):
    circuit = reset_circuit(1)
    X = np.random.default_rng(8).random((2, 6))
    noisy = simulate(circuit, X, noise=noise)
    np.testing.assert_allclose(noisy, run_aer(circuit, X, noise=noise), atol=1e-6)
    assert not torch.allclose(noisy, simulate(circuit, X), atol=1e-4)


@pytest.mark.parametrize(
    "noise", [None, NoiseModel(readout_error=(0.08, 0.15)), NoiseModel(0.05, 0.1, 0.05, 0.05, 0.03)]
)
def test_shots_agree_with_aer_shots(noise):
    circuit = reset_circuit(2)
    # Aer's density-matrix shots (used for gate noise) are slow: one input there.
    X = np.random.default_rng(9).random((1 if noise and noise.has_gate_noise() else 3, 6))
    shots = 4000
    exact = simulate(circuit, X, noise=noise).numpy()
    ours = simulate(circuit, X, noise=noise, shots=shots, seed=11).numpy()
    aer = run_aer(circuit, X, noise=noise, shots=shots, seed=11).numpy()
    # Frequencies among the shots that gave a valid label (3 of the 4 register values).
    valid = register_probabilities(circuit, X, noise=noise)[:, :3].sum(1, keepdim=True).numpy()
    se = np.sqrt(exact * (1 - exact) / (shots * valid))
    assert np.all(np.abs(ours - aer) <= 3 * math.sqrt(2) * se)
    assert np.all(np.abs(aer - exact) <= 4 * se)


def generative(seed: int = 3, steps: int = 6) -> Circuit:
    rng = np.random.default_rng(seed)
    ops = []
    for i in range(steps):
        ops += [Gate((0, 1, 2), random_unitary(rng, 3, i % 2 == 0)), Measure(2, "sample", i)]
        ops.append(Reset(2))
    return Circuit(3, ops, {"sample": steps}, label_register="sample")


def test_generative_sampling_matches_aer_counts():
    circuit = generative()
    shots = 20000
    aer = run_aer(circuit, shots=shots, seed=5)[0].numpy()
    exact = register_probabilities(circuit)[0].numpy()
    bits = sample(circuit, shots, seed=6)
    ours = np.bincount((bits * (1 << torch.arange(6))).sum(1).numpy(), minlength=64) / shots
    se = np.sqrt(exact * (1 - exact) / shots)
    assert np.all(np.abs(aer - exact) <= 4.5 * se + 2 / shots)
    assert np.all(np.abs(ours - aer) <= 4.5 * math.sqrt(2) * se + 2 / shots)
    with pytest.raises(InvalidInputError, match="last operation"):
        run_aer(circuit)


def test_qasm3_keeps_measure_and_reset():
    circuit = reset_circuit().bind(np.linspace(0, 1, 6))
    text = to_qasm3(circuit)
    assert "OPENQASM 3" in text and "measure" in text and "reset" in text
    assert "unitary" not in text
    qasm3 = pytest.importorskip("qiskit.qasm3")
    try:
        loaded = qasm3.loads(text)
    except ImportError:  # loading needs the optional qiskit_qasm3_import package
        return
    assert loaded.num_qubits == 5


def test_transpile_report_counts_basis_gates():
    report = transpile_report(reset_circuit())
    basis = {"rz", "sx", "x", "cx"}
    assert set(report["counts"]) <= basis | {"measure", "reset"}
    assert report["counts"]["measure"] == 3 and report["num_qubits"] == 5
    assert report["two_qubit_gates"] == report["counts"]["cx"] > 0
    assert report["basis_gates"] == ["rz", "sx", "x", "cx"] and report["depth"] > 0
    with pytest.raises(InvalidInputError, match="basis_gates"):
        transpile_report(reset_circuit(), basis_gates=["rz"])


def test_run_aer_argument_errors():
    circuit = reset_circuit()
    x = np.full(6, 0.5)
    with pytest.raises(InvalidInputError, match="method"):
        run_aer(circuit, x, method="stabilizer")
    with pytest.raises(InvalidInputError, match="density_matrix"):
        run_aer(circuit, x, method="statevector")
