"""Circuit and NoiseModel construction: validation, bind, copies and summaries."""

import math
import sys

import numpy as np
import pytest
import torch

from tnml.exceptions import InvalidInputError
from tnml.quantum import Circuit, Gate, Measure, NoiseModel, Reset, ry_matrix, to_qiskit

H = torch.tensor([[1.0, 1.0], [1.0, -1.0]], dtype=torch.float64) / math.sqrt(2)
CNOT = torch.tensor([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]], dtype=torch.float64)


def small_circuit() -> Circuit:
    ops = [
        Gate((0,), feature=0),
        Gate((1,), feature=1),
        Gate((0, 1), CNOT, name="cx"),
        Measure(0, "aux", 0),
        Reset(0),
        Gate((0,), H, name="h"),
        Gate((0, 2), CNOT, name="cx"),
        Measure(2, "label", 0),
        Measure(1, "label", 1),
    ]
    return Circuit(3, ops, {"aux": 1, "label": 2}, n_features=2, n_labels=3, metadata={"a": 1})


def test_ry_matrix_encodes_trig_feature_map():
    x = 0.3
    state = ry_matrix(math.pi * x) @ torch.tensor([1.0, 0.0], dtype=torch.float64)
    expected = torch.tensor([math.cos(math.pi * x / 2), math.sin(math.pi * x / 2)])
    torch.testing.assert_close(state, expected.double())
    assert ry_matrix(0.1).dtype == torch.float64


def test_gate_stores_float64_or_complex128():
    assert Gate((0,), torch.eye(2, dtype=torch.float32)).matrix.dtype == torch.float64
    assert Gate((0,), np.eye(2, dtype=np.complex64)).matrix.dtype == torch.complex128


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"qubits": (0,), "matrix": torch.ones(2, 2)}, "not unitary"),
        ({"qubits": (0, 1), "matrix": torch.eye(2)}, "shape"),
        ({"qubits": (0, 0), "matrix": torch.eye(4)}, "distinct"),
        ({"qubits": (-1,), "matrix": torch.eye(2)}, "qubit"),
        ({"qubits": (0,)}, "exactly one"),
        ({"qubits": (0,), "matrix": torch.eye(2), "feature": 0}, "exactly one"),
        ({"qubits": (0, 1), "feature": 0}, "one qubit"),
    ],
)
def test_gate_validation(kwargs, match):
    with pytest.raises(InvalidInputError, match=match):
        Gate(**kwargs)


@pytest.mark.parametrize(
    ("ops", "registers", "kwargs", "match"),
    [
        ([Gate((3,), H)], {"label": 1}, {}, r"qubit 3"),
        ([Gate((0,), feature=2)], {"label": 1}, {"n_features": 2}, "feature 2"),
        ([Measure(0, "out", 0)], {"label": 1}, {}, "unknown register"),
        ([Measure(0, "label", 1)], {"label": 1}, {}, "bit 1"),
        ([Measure(0, "label", 0), Measure(1, "label", 0)], {"label": 1}, {}, "second time"),
        ([], {"label": 1}, {"n_labels": 3}, "does not fit"),
        ([], {"sample": 2}, {"n_labels": 2}, "no label register"),
        ([], {"label": 0}, {}, "size of register"),
        ([H], {"label": 1}, {}, r"ops\[0\]"),
    ],
)
def test_circuit_validation(ops, registers, kwargs, match):
    with pytest.raises(InvalidInputError, match=match):
        Circuit(2, ops, registers, **kwargs)


def test_bind_replaces_data_gates_and_keeps_indices():
    circuit = small_circuit()
    assert not circuit.is_bound
    bound = circuit.bind([0.25, 1.0])
    assert bound.is_bound
    first = bound.ops[0]
    assert first.name == "ry" and first.angle == pytest.approx(math.pi * 0.25)
    torch.testing.assert_close(first.matrix, ry_matrix(math.pi * 0.25))
    assert bound.gate_indices() == circuit.gate_indices() == [2, 5, 6]
    assert bound.count_ops() == circuit.count_ops()
    assert bound.n_labels == 3 and bound.registers == circuit.registers


@pytest.mark.parametrize(
    ("x", "match"),
    [([0.5], "shape"), ([0.5, float("nan")], "NaN"), ([0.5, 1.5], r"\[0, 1\]"), ("ab", "real")],
)
def test_bind_rejects_bad_input(x, match):
    with pytest.raises(InvalidInputError, match=match):
        small_circuit().bind(x)


def test_bind_clamps_rounding_noise():
    bound = small_circuit().bind([1 + 1e-9, -1e-9])
    assert bound.ops[0].angle == pytest.approx(math.pi)
    assert bound.ops[1].angle == pytest.approx(0.0)


def test_with_matrices_replaces_only_trainable_gates():
    circuit = small_circuit()
    new = circuit.with_matrices({5: torch.eye(2)})
    torch.testing.assert_close(new.ops[5].matrix, torch.eye(2, dtype=torch.float64))
    assert new.ops[5].name == "h" and circuit.ops[5].matrix is not new.ops[5].matrix
    with pytest.raises(InvalidInputError, match="non-data gate"):
        circuit.with_matrices({0: torch.eye(2)})
    with pytest.raises(InvalidInputError, match="not unitary"):
        circuit.with_matrices({5: torch.ones(2, 2)})


def test_summaries_and_copies():
    circuit = small_circuit()
    assert circuit.count_ops() == {"data": 2, "u2": 2, "measure": 3, "reset": 1, "u1": 1}
    # q0: data, cx, measure, reset, h, cx -> 6 layers; label measures after the last cx.
    assert circuit.depth() == 7
    assert "num_qubits=3" in repr(circuit) and "label[2]" in repr(circuit)
    circuit.registers["label"] = 5
    circuit.metadata["a"] = 2
    assert circuit.registers["label"] == 2 and circuit.metadata == {"a": 1}
    assert isinstance(circuit.ops, tuple)


def test_unbound_export_reads_an_input_vector():
    pytest.importorskip("qiskit")
    circuit = small_circuit()
    qc = to_qiskit(circuit)
    assert [p.name for p in qc.parameters] == ["x[0]", "x[1]"]
    x = [0.3, 0.8]
    assigned = qc.assign_parameters(dict(zip(qc.parameters, x, strict=True)))
    bound = to_qiskit(circuit.bind(x))
    from qiskit.quantum_info import Operator

    # same circuit once the inputs are assigned (compare the unitary part, measures dropped)
    def unitary_part(c):
        return Operator(to_qiskit_without_measures(c))

    def to_qiskit_without_measures(c):
        out = c.copy_empty_like()
        for instruction in c.data:
            if instruction.operation.name in ("measure", "reset"):
                break
            out.append(instruction)
        return out

    assert unitary_part(assigned).equiv(unitary_part(bound))
    with pytest.raises(InvalidInputError, match="must be a Circuit"):
        to_qiskit("not a circuit")


def test_noise_model_validation():
    assert NoiseModel().is_noiseless()
    noise = NoiseModel.depolarizing(0.1)
    assert noise.depolarizing_1q == noise.depolarizing_2q == 0.1 and not noise.is_noiseless()
    assert NoiseModel(readout_error=(0.1, 0.2)).readout_probabilities == (0.1, 0.2)
    torch.testing.assert_close(
        NoiseModel(readout_error=(0.1, 0.2)).confusion_matrix().sum(0), torch.ones(2).double()
    )
    for bad in ({"dephasing": -0.1}, {"amplitude_damping": 1.5}, {"readout_error": (0.1,)}):
        with pytest.raises(InvalidInputError):
            NoiseModel(**bad)
    with pytest.raises(InvalidInputError, match="depolarizing_1q"):
        NoiseModel(depolarizing_1q=True)


def test_numpy_integers_are_accepted():
    gate = Gate((np.int64(1), np.int32(0)), CNOT, name="cx")
    assert gate.qubits == (1, 0) and all(type(q) is int for q in gate.qubits)
    assert Measure(np.int64(0), "label", np.int64(0)).bit == 0
    with pytest.raises(InvalidInputError, match="Measure bit"):
        Measure(0, "label", 0.5)


def test_export_without_qiskit_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "qiskit", None)  # makes `import qiskit` fail
    bound = small_circuit().bind([0.1, 0.2])
    with pytest.raises(ImportError, match=r"needs qiskit: pip install 'tnml\[quantum\]'"):
        to_qiskit(bound)


def test_a_bound_circuit_reads_no_features_and_refuses_an_x():
    """A bound circuit answered for the bound input whatever X it was given."""
    from tnml.quantum import simulate

    circuit = Circuit(
        1, [Gate((0,), feature=0), Measure(0, "label", 0)], {"label": 1}, n_features=1
    )
    X = np.array([[0.2], [0.9]])
    bound = circuit.bind(X[0])
    assert bound.n_features == 0
    np.testing.assert_allclose(simulate(bound), simulate(circuit, X[:1]), atol=1e-15)
    with pytest.raises(InvalidInputError, match="n_features=0"):
        simulate(bound, X)


@pytest.mark.parametrize(
    ("qubits", "matrix", "angle"),
    [
        ((0, 1), np.eye(4), 0.3),  # a two-qubit gate exported as ry(0.3) on its first qubit
        ((0,), np.eye(2), 0.3),  # the matrix is not RY(0.3)
        ((0,), np.eye(2), float("nan")),
    ],
)
def test_a_gate_angle_must_be_its_matrix(qubits, matrix, angle):
    with pytest.raises(InvalidInputError, match="angle"):
        Gate(qubits, matrix=torch.tensor(matrix, dtype=torch.float64), angle=angle)
    Gate((0,), matrix=ry_matrix(0.3), angle=0.3)  # what bind makes
