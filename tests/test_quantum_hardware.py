"""Hardware-style training: Pauli-rotation parameters, the shift rule, SPSA, noise studies."""

from __future__ import annotations

import pytest
import torch

from tnml.exceptions import InvalidInputError
from tnml.nn.unitary import UnitaryMPSClassifierModule, UnitaryTTNClassifierModule
from tnml.quantum.compile import compile as compile_circuit
from tnml.quantum.evaluate import circuit_accuracy, noise_model, noise_study
from tnml.quantum.hardware import CircuitParameters, fit_circuit, parameter_shift_gradient
from tnml.quantum.noise import NoiseModel
from tnml.quantum.simulate import simulate
from tnml.tensor.unitary import pauli_rotations, real_pauli_generators


def _problem(seed: int = 0, n: int = 40):
    torch.manual_seed(seed)
    module = UnitaryTTNClassifierModule(
        4, 2, 2, layout="1d", init="random", init_std=0.3, dtype=torch.float64
    )
    circuit = compile_circuit(module, "efficient")
    X = torch.rand(n, 4, dtype=torch.float64)
    y = (X[:, 0] + X[:, 3] > 1).long()
    return circuit, X, y


def _exact_loss(params, theta, X, y):
    probs = simulate(params.circuit_at(theta), X)
    return -torch.log(probs.gather(1, y[:, None])).mean()


@pytest.mark.parametrize("n_qubits", [1, 2, 3])
def test_real_pauli_generators_span_so_n(n_qubits):
    gens = real_pauli_generators(n_qubits)
    dim = 2**n_qubits
    assert gens.shape == (dim * (dim - 1) // 2, dim, dim)
    eye = torch.eye(dim, dtype=torch.float64)
    for g in gens:
        torch.testing.assert_close(g, -g.T)  # antisymmetric
        torch.testing.assert_close(g @ g, -eye)  # so exp(t G / 2) = cos + sin G
    # linearly independent: they span all antisymmetric matrices
    assert torch.linalg.matrix_rank(gens.reshape(gens.shape[0], -1)) == gens.shape[0]


def test_pauli_rotations_are_matrix_exponentials():
    gens = real_pauli_generators(2)
    angles = torch.randn(gens.shape[0], dtype=torch.float64)
    got = pauli_rotations(angles, gens)
    expected = torch.eye(4, dtype=torch.float64)
    for a, g in zip(angles, gens, strict=True):
        expected = torch.linalg.matrix_exp(a / 2 * g) @ expected
    torch.testing.assert_close(got, expected)


def test_zero_angles_give_the_circuit_back():
    circuit, X, _ = _problem()
    params = CircuitParameters(circuit)
    assert params.n_params == 3 * 6  # three two-qubit gates
    same = params.circuit_at(torch.zeros(params.n_params, dtype=torch.float64))
    torch.testing.assert_close(simulate(same, X), simulate(circuit, X))


@pytest.mark.parametrize("noise", [None, NoiseModel(depolarizing_1q=0.02, depolarizing_2q=0.05)])
def test_parameter_shift_is_exact(noise):
    circuit, X, y = _problem()
    params = CircuitParameters(circuit)
    theta = 0.3 * torch.randn(
        params.n_params, dtype=torch.float64, generator=torch.Generator().manual_seed(1)
    )
    _, grad, _ = parameter_shift_gradient(params, theta, X, y, noise=noise)
    eps = 1e-5
    for j in range(0, params.n_params, 5):
        shift = torch.zeros_like(theta)
        shift[j] = eps

        def loss(t):
            probs = simulate(params.circuit_at(t), X, noise=noise)
            return -torch.log(probs.gather(1, y[:, None])).mean()

        numeric = (loss(theta + shift) - loss(theta - shift)) / (2 * eps)
        assert abs(float(grad[j] - numeric)) < 1e-7


def test_parameter_shift_is_exact_for_labels_not_a_power_of_two():
    # simulate renormalises over the 3 valid labels of a 2-qubit register; the rule must
    # differentiate the raw distribution and chain through the renormalisation
    torch.manual_seed(4)
    module = UnitaryMPSClassifierModule(3, 3, 4, init="random", init_std=0.5, dtype=torch.float64)
    circuit = compile_circuit(module, "efficient")
    X = torch.rand(20, 3, dtype=torch.float64)
    y = torch.arange(20) % 3
    params = CircuitParameters(circuit)
    theta = 0.2 * torch.randn(params.n_params, dtype=torch.float64)
    loss, grad, probs = parameter_shift_gradient(params, theta, X, y, indices=range(0, 60, 7))
    torch.testing.assert_close(probs.sum(1), torch.ones(20, dtype=torch.float64))
    torch.testing.assert_close(loss, _exact_loss(params, theta, X, y))
    eps = 1e-5
    for j in range(0, 60, 7):
        shift = torch.zeros_like(theta)
        shift[j] = eps
        numeric = (
            _exact_loss(params, theta + shift, X, y) - _exact_loss(params, theta - shift, X, y)
        ) / (2 * eps)
        assert abs(float(grad[j] - numeric)) < 1e-7


@pytest.mark.parametrize("method", ["spsa", "parameter_shift"])
def test_shot_training_lowers_the_exact_loss(method):
    circuit, X, y = _problem(seed=3, n=60)
    params = CircuitParameters(circuit)
    zero = torch.zeros(params.n_params, dtype=torch.float64)
    before = float(_exact_loss(params, zero, X, y))
    result = fit_circuit(
        circuit,
        X.numpy(),
        y.numpy(),
        method=method,
        shots=2000,
        n_steps=60 if method == "spsa" else 8,
        batch_size=60,
        lr=0.5 if method == "spsa" else 0.3,
        seed=0,
    )
    after = float(_exact_loss(params, result.theta, X, y))
    assert after < before - 0.02
    assert result.n_shots > 0 and len(result.history) >= 1
    torch.testing.assert_close(
        simulate(result.circuit, X), simulate(params.circuit_at(result.theta), X)
    )


def test_fit_is_seeded():
    circuit, X, y = _problem()
    a = fit_circuit(circuit, X.numpy(), y.numpy(), n_steps=5, shots=100, seed=7)
    b = fit_circuit(circuit, X.numpy(), y.numpy(), n_steps=5, shots=100, seed=7)
    torch.testing.assert_close(a.theta, b.theta)


def test_fit_rejects_bad_input():
    circuit, X, y = _problem()
    with pytest.raises(InvalidInputError, match="method"):
        fit_circuit(circuit, X, y, method="adam")
    with pytest.raises(InvalidInputError, match="X must have shape"):
        fit_circuit(circuit, X[:, :3], y)
    with pytest.raises(InvalidInputError, match="y must hold class indices"):
        fit_circuit(circuit, X, y + 5)
    with pytest.raises(InvalidInputError, match="integer class indices"):
        fit_circuit(circuit, X, y + 0.5)
    with pytest.raises(InvalidInputError, match="perturbation"):
        fit_circuit(circuit, X, y, perturbation=0.0)
    with pytest.raises(InvalidInputError, match="lr"):
        fit_circuit(circuit, X, y, lr=-1.0)
    with pytest.raises(InvalidInputError, match="params_per_step"):
        fit_circuit(circuit, X, y, method="parameter_shift", params_per_step=0)
    with pytest.raises(InvalidInputError, match="seed"):
        fit_circuit(circuit, X, y, seed=-1)


def test_noise_study_and_accuracy():
    torch.manual_seed(0)
    module = UnitaryMPSClassifierModule(6, 2, 2, init="random", init_std=0.5, dtype=torch.float64)
    circuit = compile_circuit(module, "efficient")
    X = torch.rand(50, 6, dtype=torch.float64)
    y = module.label_probabilities(X).argmax(1).numpy()  # the noiseless circuit is always right
    assert circuit_accuracy(circuit, X, y) == 1.0
    rows = noise_study(circuit, X, y, [1e-3, 1.0])
    assert [r["level"] for r in rows] == [0.0, 1e-3, 1.0]
    assert rows[0]["accuracy"] == 1.0
    assert rows[1]["accuracy"] > 0.9
    # fully depolarising gates erase the input: every label equally likely
    flat = simulate(circuit, X, noise=noise_model("depolarizing", 1.0))
    torch.testing.assert_close(flat, torch.full_like(flat, 0.5))
    with pytest.raises(InvalidInputError, match="channel"):
        noise_model("bitflip", 0.1)
    assert noise_model("readout", 0.1).readout_error == 0.1


@pytest.mark.parametrize(
    ("y", "match"),
    [
        (["a", "b"] * 25, "integer class indices"),  # an estimator's labels, not indices
        ([True, False] * 25, "integer class indices"),
        ([0.5, 1.0] * 25, "integer class indices"),
        ([0, 3] * 25, r"0 \.\. 1, found 0 \.\. 3"),
    ],
)
def test_accuracy_refuses_labels_that_are_not_class_indices(y, match):
    torch.manual_seed(0)
    module = UnitaryMPSClassifierModule(6, 2, 2, init="random", init_std=0.5, dtype=torch.float64)
    circuit = compile_circuit(module, "efficient")
    X = torch.rand(50, 6, dtype=torch.float64)
    with pytest.raises(InvalidInputError, match=match):
        circuit_accuracy(circuit, X, y)


def test_parameter_shift_checks_its_arguments():
    circuit, X, y = _problem()
    params = CircuitParameters(circuit)
    theta = torch.zeros(params.n_params, dtype=torch.float64)
    with pytest.raises(InvalidInputError, match=r"labels must hold class indices in 0 \.\. 1"):
        parameter_shift_gradient(params, theta, X, y + 1)
    with pytest.raises(InvalidInputError, match="theta must have shape"):
        parameter_shift_gradient(params, theta[:-1], X, y)
    with pytest.raises(InvalidInputError, match="indices must lie in"):
        parameter_shift_gradient(params, theta, X, y, indices=[999])
    # numpy labels work as tensors do
    loss, _, _ = parameter_shift_gradient(params, theta, X, y.numpy(), indices=[0])
    torch.testing.assert_close(loss, parameter_shift_gradient(params, theta, X, y, indices=[0])[0])


def test_parameter_shift_takes_one_row_as_a_batch_of_one():
    circuit, X, y = _problem()
    params = CircuitParameters(circuit)
    theta = torch.zeros(params.n_params, dtype=torch.float64)
    one = parameter_shift_gradient(params, theta, X[0], y[:1], indices=[0])
    batch = parameter_shift_gradient(params, theta, X[:1], y[:1], indices=[0])
    torch.testing.assert_close(one[0], batch[0])
