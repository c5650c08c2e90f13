"""Native-gate circuits: state synthesis, synthesis into CX, device targets, routing, compile."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

import tnml
from tnml.exceptions import InvalidInputError
from tnml.quantum import compile, register_probabilities, simulate
from tnml.quantum.circuit import Circuit, Gate, Measure, Reset
from tnml.quantum.native import CX, decompose, gate_cx_cost, two_qubit_count
from tnml.quantum.routing import route
from tnml.quantum.synthesis import (
    analytic_layer,
    optimize_layers,
    product_sites,
    staircase_pairs,
    sweep_layers,
    synthesize_state,
    window_pairs,
)
from tnml.quantum.targets import heavy_hex_target, resolve_target
from tnml.tensor.circuit_mps import circuit_state
from tnml.tensor.gates import block_matrices
from tnml.tensor.mps import MPS, mps_overlap


def random_mps(n, bond, seed=0):
    return MPS.random(
        n, 2, bond, generator=torch.Generator().manual_seed(seed), dtype=torch.float64
    )


def fidelity(a: MPS, b: MPS) -> float:
    return float(mps_overlap(a, b).abs()) ** 2 / (float(a.norm()) ** 2 * float(b.norm()) ** 2)


def gate_unitary(gates, n):
    """Dense unitary of a list of tnml gates on ``n`` qubits (big-endian, qubit 0 first)."""
    u = torch.eye(2**n, dtype=torch.complex128).reshape(2**n, *([2] * n))
    for g in gates:
        k = len(g.qubits)
        axes = tuple(1 + q for q in g.qubits)
        x = u.movedim(axes, tuple(range(-k, 0)))
        shape = x.shape
        x = (x.reshape(-1, 2**k) @ g.matrix.to(torch.complex128).T).reshape(shape)
        u = x.movedim(tuple(range(-k, 0)), axes)
    return u.reshape(2**n, 2**n).T


def equal_up_to_phase(a, b, atol=1e-10):
    overlap = (a.conj() * b).sum()
    return bool((a * overlap / overlap.abs() - b).abs().max() < atol)


# -- state synthesis ------------------------------------------------------------------------


def test_a_bond_two_mps_is_one_exact_staircase_layer():
    psi = random_mps(30, 2, seed=1)
    layer = analytic_layer(psi)
    assert layer.shape == (29, 4, 4)
    dets = torch.linalg.det(layer)
    torch.testing.assert_close(dets, torch.ones_like(dets))  # rotations: 2 CX each
    state = circuit_state(staircase_pairs(30, 1), layer, 30)
    assert fidelity(psi, state) >= 1 - 1e-10
    result = synthesize_state(psi, 1, protocol="analytic")
    assert result.fidelity >= 1 - 1e-10 and result.two_qubit_gates == 2 * 29


def test_iterative_layers_raise_the_fidelity_and_beat_analytic_ones():
    psi = random_mps(10, 8, seed=2)
    analytic = synthesize_state(psi, 3, protocol="analytic")
    iterative = synthesize_state(psi, 3, protocol="iterative", max_iter=60)
    values = [row["fidelity"] for row in iterative.history]
    assert all(b >= a - 1e-9 for a, b in itertools.pairwise(values))
    assert iterative.fidelity > analytic.fidelity
    # the reported fidelity is the overlap of the circuit's state with the target
    assert fidelity(psi, iterative.state()) == pytest.approx(iterative.fidelity, abs=1e-10)
    stage = iterative.stage(2)
    assert stage.n_layers == 2 and stage.fidelity == pytest.approx(values[1])
    assert fidelity(psi, stage.state()) == pytest.approx(values[1], abs=1e-10)


def test_optimize_layers_keeps_rotations_and_improves():
    psi = random_mps(8, 4, seed=3)
    layers = [analytic_layer(psi)]
    new, info = optimize_layers(psi, layers, max_iter=40)
    assert info["fidelity"] >= info["fidelity_start"]
    dets = torch.linalg.det(new[0])
    torch.testing.assert_close(dets, torch.ones_like(dets))


def test_complex_states_need_complex_blocks():
    cores = [torch.randn(1, 2, 2, dtype=torch.complex128)]
    cores += [torch.randn(2, 2, 2, dtype=torch.complex128) for _ in range(4)]
    cores += [torch.randn(2, 2, 1, dtype=torch.complex128)]
    psi = MPS(cores)
    with pytest.raises(InvalidInputError, match="u4"):
        synthesize_state(psi, 1)
    result = synthesize_state(psi, 1, block="u4", protocol="analytic")
    assert result.fidelity >= 1 - 1e-10
    # windows stay exact at any depth: more than EXACT_LAYERS complex layers are fine
    deep = synthesize_state(psi, 11, block="u4", window=3, max_iter=2)
    assert deep.n_layers == 11 and deep.gates.is_complex()
    assert fidelity(psi, deep.state()) == pytest.approx(deep.fidelity, abs=1e-10)


def test_synthesis_rejects_bad_input():
    with pytest.raises(InvalidInputError, match="MPS"):
        synthesize_state(np.zeros(4), 1)
    with pytest.raises(InvalidInputError, match="n_layers"):
        synthesize_state(random_mps(4, 2), 0)
    with pytest.raises(InvalidInputError, match="protocol"):
        synthesize_state(random_mps(4, 2), 1, protocol="magic")
    three = MPS([torch.randn(1, 3, 2), torch.randn(2, 3, 1)])
    with pytest.raises(InvalidInputError, match="physical dimension 2"):
        synthesize_state(three, 1)


def test_window_pairs_walk_the_chain_window_by_window():
    # windows of 3 qubits, 2 brick layers: layer 0 on (t, t+1), layer 1 on (t+1, t+2); odd
    # windows apply them in reverse, so no window ends on the pair the next one starts with
    assert window_pairs(5, 3, 2) == [(0, 1), (1, 2), (2, 3), (1, 2), (2, 3), (3, 4)]
    for window, depth in itertools.product((3, 4, 5), (1, 2, 3, 4)):
        pairs = window_pairs(12, window, depth)
        for g, pair in enumerate(pairs):  # the next gate on either qubit acts elsewhere too
            later = [p for p in pairs[g + 1 :] if set(p) & set(pair)]
            assert not later or later[0] != pair, (window, depth, g)
    assert window_pairs(6, 4, 1) == [(0, 1), (2, 3), (1, 2), (3, 4), (2, 3), (4, 5)]
    assert len(window_pairs(10, 5, 3)) == 6 * (2 + 2 + 2)


def test_windows_reach_a_bond_two_state_and_match_the_dense_circuit():
    psi = random_mps(10, 2, seed=1)
    exact = synthesize_state(psi, 2, window=3, max_iter=300)
    assert exact.fidelity >= 1 - 1e-7 and exact.two_qubit_gates == 2 * 8 * 2
    psi = random_mps(8, 4, seed=6)
    result = synthesize_state(psi, 4, window=3, max_iter=150)
    values = [row["fidelity"] for row in result.history]
    # every new layer starts a small turn away from the identity: nothing is lost
    assert all(b >= a - 1e-3 for a, b in itertools.pairwise(values)) and values[-1] > 0.95
    assert result.window == 3 and result.two_qubit_gates == 2 * 6 * 4
    # independent truth: the state of the gates applied to a dense vector in their order
    ops = [Gate(p, matrix=g) for p, g in zip(result.pairs, result.gates, strict=True)]
    dense = gate_unitary(ops, 8)[:, 0].real
    target = psi.to_dense().reshape(-1) / psi.norm()
    assert float(target @ dense) ** 2 == pytest.approx(result.fidelity, abs=1e-10)
    x = torch.tensor(list(itertools.product([0, 1], repeat=8))[::17])
    index = (x * 2 ** torch.arange(7, -1, -1)).sum(1)
    torch.testing.assert_close(result.log_prob(x).exp(), dense[index] ** 2, atol=1e-12, rtol=0)
    stage = result.stage(2)
    assert stage.window == 3 and fidelity(psi, stage.state()) == pytest.approx(values[1])
    with pytest.raises(InvalidInputError, match="window"):
        synthesize_state(psi, 2, window=2)  # one staircase layer: no room for more
    with pytest.raises(InvalidInputError, match="n_layers must be >= 2"):
        synthesize_state(psi, 1, window=3)  # one layer of an odd window skips the last qubit
    with pytest.raises(InvalidInputError, match="window must be at most"):
        window_pairs(5, 7, 2)
    with pytest.raises(InvalidInputError, match="protocol='iterative'"):
        synthesize_state(psi, 2, window=3, protocol="analytic")


def test_native_born_windows_compile_qubit_efficiently():
    psi = random_mps(7, 4, seed=5)
    full = compile(psi, gates="native", layers=2, window=3)
    efficient = compile(psi, "efficient", gates="native", layers=2, window=3)
    assert full.num_qubits == 7 and efficient.num_qubits == 3
    torch.testing.assert_close(register_probabilities(efficient), register_probabilities(full))
    assert two_qubit_count(full) == 2 * 5 * 2  # 5 windows, one block per brick layer each
    budget = compile(psi, gates="native", window=3, max_two_qubit_gates=25)
    assert budget.metadata["layers"] == 2 and two_qubit_count(budget) <= 25
    with pytest.raises(InvalidInputError, match="too small for 2 brick layer"):
        compile(psi, gates="native", window=3, max_two_qubit_gates=19)
    with pytest.raises(InvalidInputError, match="layers must be >= 2"):
        compile(psi, gates="native", window=3, layers=1)
    # a fidelity the first layer already reaches still gets the two an odd window needs
    assert compile(psi, gates="native", window=3, min_fidelity=0.01).metadata["layers"] == 2
    one = compile(psi, gates="native", window=4, layers=1)  # an even window: every qubit
    assert one.metadata["layers"] == 1 and two_qubit_count(one) == 2 * 4 * 2
    with pytest.raises(InvalidInputError, match="window= applies to gates='native'"):
        compile(psi, window=3)


# -- synthesis into one-qubit gates and CX ---------------------------------------------------


def test_real_rotations_cost_two_cx_and_synthesise_exactly():
    g = torch.Generator().manual_seed(0)
    for matrix in block_matrices(torch.randn(25, 6, generator=g, dtype=torch.float64)):
        circuit = Circuit(2, [Gate((0, 1), matrix=matrix)], {})
        native = decompose(circuit)
        assert two_qubit_count(native) == 2 and gate_cx_cost(matrix) == 2
        assert all(len(op.qubits) == 1 or op.name == "cx" for op in native.ops)
        assert equal_up_to_phase(gate_unitary(native.ops, 2), matrix.to(torch.complex128))


def test_reflections_products_and_complex_gates():
    rot = block_matrices(torch.randn(6, dtype=torch.float64))
    reflection = rot @ torch.diag(torch.tensor([1.0, 1.0, 1.0, -1.0], dtype=torch.float64))
    rotation = torch.tensor([[0.6, -0.8], [0.8, 0.6]], dtype=torch.float64)
    flip = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    cases = [(reflection, 3), (torch.kron(rotation, flip), 0)]
    pytest.importorskip("qiskit")  # a CX-class gate and complex gates go through its KAK
    cases += [(CX, 1), (block_matrices(torch.randn(15, dtype=torch.float64), "u4"), 3)]
    for matrix, cost in cases:
        native = decompose(Circuit(2, [Gate((1, 0), matrix=matrix)], {}))
        assert two_qubit_count(native) == cost
        # written on (1, 0): compare with the gate's matrix in that qubit order
        expected = gate_unitary([Gate((1, 0), matrix=matrix)], 2)
        assert equal_up_to_phase(gate_unitary(native.ops, 2), expected)


def test_gates_of_three_qubits_synthesise_exactly():
    pytest.importorskip("qiskit")
    q, _ = torch.linalg.qr(torch.randn(8, 8, dtype=torch.float64))
    native = decompose(Circuit(3, [Gate((2, 0, 1), matrix=q)], {}))
    assert two_qubit_count(native) >= 14  # O(4^k): a general 3-qubit gate needs 14+ CX
    expected = gate_unitary([Gate((2, 0, 1), matrix=q)], 3)
    assert equal_up_to_phase(gate_unitary(native.ops, 3), expected, atol=1e-8)


def test_decompose_keeps_data_gates_measurements_and_probabilities():
    module = tnml.nn.CircuitClassifierModule(6, 3, 3, blocks_per_feature=1.5, angle_scale=0.7)
    module.double().reset_parameters(torch.Generator().manual_seed(0))
    with torch.no_grad():
        module.angles.mul_(50)
    circuit = compile(module)
    native = decompose(circuit)
    assert native.metadata["native"] and native.metadata["two_qubit_gates"] == 2 * 9
    assert decompose(native).count_ops() == native.count_ops()
    X = torch.rand(16, 6, dtype=torch.float64)
    torch.testing.assert_close(simulate(native, X), simulate(circuit, X))
    torch.testing.assert_close(simulate(native, X), module.label_probabilities(X))


# -- device targets and routing --------------------------------------------------------------


def test_heavy_hex_is_ibm_eagle():
    device = heavy_hex_target()
    assert device.num_qubits == 127 and len(device.edges) == 144
    degrees = [len(device.neighbours(q)) for q in range(127)]
    assert max(degrees) == 3 and min(degrees) == 1
    assert max(device.distances(0)) < 128  # connected
    path = device.find_path(64)
    assert len(set(path)) == 64 and all(
        device.is_coupled(a, b) for a, b in itertools.pairwise(path)
    )
    assert heavy_hex_target(200).num_qubits >= 200


def test_resolve_target_accepts_names_pairs_and_qiskit_objects():
    assert resolve_target(None, 5) is None
    assert resolve_target("line", 5).edges == ((0, 1), (1, 2), (2, 3), (3, 4))
    assert len(resolve_target("all-to-all", 4).edges) == 6
    custom = resolve_target([(0, 1), (1, 2)], 3)
    assert custom.num_qubits == 3 and custom.is_coupled(2, 1)
    with pytest.raises(InvalidInputError, match="target must be one of"):
        resolve_target("hexagonal", 5)
    with pytest.raises(InvalidInputError, match="has 3 qubits"):
        resolve_target([(0, 1), (1, 2)], 5)
    qiskit = pytest.importorskip("qiskit")
    from qiskit.transpiler import CouplingMap, Target

    ring = CouplingMap.from_ring(6)
    assert resolve_target(ring, 6).is_coupled(0, 5)
    target = Target.from_configuration(["cx", "rz", "sx"], coupling_map=ring)
    assert resolve_target(target, 6).is_coupled(5, 0)
    assert qiskit  # the import is the check


def random_circuit(n, n_gates, seed):
    """Gates of one and two qubits on random pairs, a mid-circuit measure and reset."""
    rng = np.random.default_rng(seed)
    ops = []
    for i in range(n_gates):
        a, b = rng.choice(n, size=2, replace=False)
        ops.append(
            Gate((int(a), int(b)), matrix=block_matrices(torch.randn(6, dtype=torch.float64)))
        )
        if i == n_gates // 2:
            ops.append(Measure(int(a), "label", 0))
            ops.append(Reset(int(a)))
    ops += [Measure(q, "label", 1 + q) for q in range(n)]
    return Circuit(n, ops, {"label": n + 1})


@pytest.mark.parametrize("name", ["line", "heavy-hex"])
def test_routing_couples_every_gate_and_keeps_the_distribution(name):
    circuit = random_circuit(5, 14, seed=1)
    device = resolve_target(name, 5)
    routed = route(circuit, device)
    physical = routed.metadata["physical_qubits"]
    for op in routed.ops:
        if isinstance(op, Gate) and len(op.qubits) == 2:
            a, b = (physical[q] for q in op.qubits)
            assert device.is_coupled(a, b)
    torch.testing.assert_close(register_probabilities(routed), register_probabilities(circuit))
    assert routed.metadata["swaps"] > 0  # random pairs on a line need SWAPs


def test_a_chain_is_placed_on_a_path_without_swaps():
    chain = Circuit(
        6,
        [Gate((i, i + 1), matrix=block_matrices(torch.randn(6, dtype=torch.float64)))
         for i in range(5)] + [Measure(0, "label", 0)],
        {"label": 1},
    )  # fmt: skip
    routed = route(chain, heavy_hex_target())
    assert routed.metadata["swaps"] == 0 and routed.num_qubits == 6


# -- compile(..., gates="native") ------------------------------------------------------------


def test_native_born_circuit_is_exact_for_bond_two_and_samples_its_state():
    psi = random_mps(8, 2, seed=4)
    circuit = compile(psi, gates="native", target="heavy-hex", layers=1)
    assert circuit.metadata["fidelity"] >= 1 - 1e-10
    assert two_qubit_count(circuit) == 2 * 7
    probs = register_probabilities(circuit)[0]
    dense = psi.to_dense().reshape(-1) ** 2 / float(psi.norm()) ** 2
    # register value: bit j is feature j (least significant first); dense index: site 0 first
    order = [int("".join(str((v >> j) & 1) for j in range(8)), 2) for v in range(256)]
    torch.testing.assert_close(probs, dense[order], atol=1e-10, rtol=0)


def test_native_born_schedules_and_budgets():
    psi = random_mps(7, 4, seed=5)
    full = compile(psi, gates="native", layers=2)
    efficient = compile(psi, "efficient", gates="native", layers=2)
    assert full.num_qubits == 7 and efficient.num_qubits == 3
    assert any(isinstance(op, Reset) for op in efficient.ops)
    torch.testing.assert_close(register_probabilities(efficient), register_probabilities(full))
    per_layer = 2 * 6
    budget = compile(psi, gates="native", max_two_qubit_gates=2 * per_layer + 5)
    assert budget.metadata["layers"] == 2 and two_qubit_count(budget) <= 2 * per_layer + 5
    with pytest.raises(InvalidInputError, match="max_two_qubit_gates"):
        compile(psi, gates="native", max_two_qubit_gates=5)
    routed = compile(psi, "efficient", gates="native", layers=2, target="line")
    with pytest.raises(InvalidInputError, match="too small"):
        compile(psi, "efficient", gates="native", layers=2, target="line",
                max_two_qubit_gates=two_qubit_count(routed) - 1)  # fmt: skip


def test_native_compile_of_classifiers():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    keep = y < 2
    X, y = X[keep][:200] / 16, y[keep][:200]
    clf = tnml.CircuitClassifier(n_qubits=3, blocks_per_feature=1, epochs=1, random_state=0)
    clf.set_params(dtype="float64").fit(X, y)
    circuit = compile(clf, gates="native", target="heavy-hex", max_two_qubit_gates=200)
    assert two_qubit_count(circuit) == 128 and circuit.metadata["swaps"] == 0
    torch.testing.assert_close(
        simulate(circuit, X[:30]), torch.as_tensor(clf.predict_proba(X[:30]))
    )
    with pytest.raises(InvalidInputError, match="needs 128 CX"):
        compile(clf, gates="native", max_two_qubit_gates=100)
    tree = tnml.TTNClassifier(bond_dim=2, unitary=True, layout=(8, 8), epochs=1, random_state=0)
    tree.fit(X, y)
    dense = compile(tree, "efficient")
    native = compile(tree, "efficient", gates="native", target="heavy-hex")
    torch.testing.assert_close(simulate(native, X[:30]), simulate(dense, X[:30]))
    assert two_qubit_count(native) <= 3 * 63


def test_compile_refuses_what_it_cannot_do():
    psi = random_mps(5, 2)
    with pytest.raises(InvalidInputError, match="gates must be one of"):
        compile(psi, gates="sparse")
    with pytest.raises(InvalidInputError, match="target= needs gates='native'"):
        compile(psi, target="line")
    with pytest.raises(InvalidInputError, match="layers"):
        compile(psi, gates="native", layers=0)
    with pytest.raises(InvalidInputError, match="target must be one of"):
        compile(psi, gates="native", layers=1, target="torus")
    born = tnml.TTNBornMachine(bond_dim=2, epochs=1).fit(
        np.random.default_rng(0).integers(0, 2, (20, 4))
    )
    with pytest.raises(InvalidInputError, match="tree Born machine"):
        compile(born, gates="native")


@pytest.mark.parametrize("per_gate", ["1q and 2q", "2q only"])
def test_native_circuits_agree_with_aer_on_the_coupling_map(per_gate):
    pytest.importorskip("qiskit_aer")
    from tnml.quantum import run_aer
    from tnml.quantum.export import to_qiskit, transpile_report
    from tnml.quantum.noise import NoiseModel

    module = tnml.nn.CircuitClassifierModule(8, 4, 3, blocks_per_feature=1, angle_scale=0.8)
    module.double().reset_parameters(torch.Generator().manual_seed(1))
    with torch.no_grad():
        module.angles.mul_(80)
    circuit = compile(module, gates="native", target="heavy-hex")
    X = torch.rand(6, 8, dtype=torch.float64)
    # "2q only": tnml folds the one-qubit gates into the CX after them; Aer does not
    noise = NoiseModel(
        depolarizing_1q=1e-3 if per_gate == "1q and 2q" else 0.0, depolarizing_2q=1e-2
    )
    torch.testing.assert_close(run_aer(circuit, X, noise=noise), simulate(circuit, X, noise=noise))
    device = heavy_hex_target()
    report = transpile_report(circuit, physical=True)
    assert report["num_qubits"] == 127
    assert all(device.is_coupled(a, b) for a, b in report["two_qubit_pairs"])
    qc = to_qiskit(circuit.bind(X[0]), physical=True)
    assert qc.num_qubits == 127


def test_product_sites_leave_the_staircase_and_cost_what_they_say():
    # sites 0 and 3 are exactly |+>-like product factors: a 2-site-shorter staircase
    psi = random_mps(6, 2, seed=8)
    plus = torch.tensor([0.8, 0.6], dtype=torch.float64)
    cores = list(psi.cores)
    eye = torch.eye(cores[2].shape[-1], dtype=torch.float64)
    cores.insert(3, torch.einsum("lr,s->lsr", eye, plus))
    cores.insert(0, plus.reshape(1, 2, 1))
    state = MPS(cores)
    product, reduced, weight = product_sites(state.normalize(), 1e-8)
    assert sorted(product) == [0, 4] and reduced.n_sites == 6
    assert weight == pytest.approx(1.0)
    result = synthesize_state(state, 1, product_threshold=1e-8)
    assert result.active == [1, 2, 3, 5, 6, 7] and result.fidelity >= 1 - 1e-10
    assert result.two_qubit_gates == 2 * 5
    assert fidelity(state, result.state()) == pytest.approx(result.fidelity, abs=1e-10)
    x = torch.randint(0, 2, (5, 8))
    dense = state.to_dense().reshape(-1) ** 2 / float(state.norm()) ** 2
    index = (x * 2 ** torch.arange(7, -1, -1)).sum(1)
    torch.testing.assert_close(result.log_prob(x).exp(), dense[index])
    circuit = compile(state, "efficient", gates="native", layers=1, product_threshold=1e-8)
    assert two_qubit_count(circuit) == 10 and circuit.metadata["product_sites"] == [0, 4]
    full = compile(state, gates="native", layers=1, product_threshold=1e-8)
    torch.testing.assert_close(register_probabilities(circuit), register_probabilities(full))


def test_sweeps_improve_deep_layers_without_lowering_the_fidelity():
    psi = random_mps(8, 4, seed=9)
    start = synthesize_state(psi, 2, protocol="analytic")
    layers, info = sweep_layers(psi, start.layers, n_sweeps=5, max_bond=64)
    improved = synthesize_state(psi, 2, optimizer="sweep", sweeps=5)
    assert info["fidelity"] >= start.fidelity - 1e-12
    state = circuit_state(staircase_pairs(8, 2), torch.cat(layers), 8)
    assert fidelity(psi, state) == pytest.approx(info["fidelity"], abs=1e-10)
    assert improved.fidelity >= start.fidelity - 1e-12


def test_shot_training_keeps_native_cx_fixed():
    from tnml.quantum.hardware import CircuitParameters

    module = tnml.nn.CircuitClassifierModule(4, 2, 2, blocks_per_feature=1)
    module.double()
    blocks = compile(module)
    native = decompose(blocks)
    assert CircuitParameters(blocks).n_params == 6 * 4  # six rotation angles per block
    params = CircuitParameters(native)
    assert all(native.ops[i].name != "cx" for i in params.gate_indices)
    tuned = params.circuit_at(torch.full((params.n_params,), 0.3, dtype=torch.float64))
    assert two_qubit_count(tuned) == two_qubit_count(native) == 8


def test_parameter_shift_training_of_a_circuit_classifier():
    from tnml.quantum.hardware import CircuitParameters, fit_circuit, parameter_shift_gradient

    module = tnml.nn.CircuitClassifierModule(3, 2, 2, blocks_per_feature=1, angle_scale=1.0)
    module.double().reset_parameters(torch.Generator().manual_seed(3))
    circuit = compile(module)
    X = torch.rand(12, 3, dtype=torch.float64)
    y = (X[:, 0] > 0.5).long()
    params = CircuitParameters(circuit)
    theta = torch.zeros(params.n_params, dtype=torch.float64)
    loss, grad, _ = parameter_shift_gradient(params, theta, X, y)
    # the shift rule against central finite differences of the exact loss
    eps = 1e-6
    for j in (0, 7, params.n_params - 1):
        step = torch.zeros_like(theta)
        step[j] = eps
        up = parameter_shift_gradient(params, theta + step, X, y, indices=[])[0]
        down = parameter_shift_gradient(params, theta - step, X, y, indices=[])[0]
        assert float(grad[j]) == pytest.approx(float(up - down) / (2 * eps), abs=1e-6)
    result = fit_circuit(circuit, X, y, method="parameter_shift", shots=None, n_steps=15,
                         batch_size=12, lr=0.5)  # fmt: skip
    after = parameter_shift_gradient(CircuitParameters(result.circuit), theta, X, y, indices=[])[0]
    assert float(after) < float(loss)
    assert two_qubit_count(decompose(result.circuit)) == 2 * 3  # blocks stay rotations


def test_state_vector_and_density_paths_agree():
    module = tnml.nn.CircuitClassifierModule(5, 4, 3, blocks_per_feature=1.4, angle_scale=0.9)
    module.double().reset_parameters(torch.Generator().manual_seed(4))
    with torch.no_grad():
        module.angles.mul_(60)
    circuit = decompose(compile(module))
    X = torch.rand(7, 5, dtype=torch.float64)
    pure = register_probabilities(circuit, X)  # noiseless, no reset: state vectors
    # a reset on an extra qubit changes nothing but forces the density-matrix path
    forced = Circuit(circuit.num_qubits + 1, [*circuit.ops, Reset(circuit.num_qubits)],
                     circuit.registers, n_features=5, n_labels=4)  # fmt: skip
    torch.testing.assert_close(pure, register_probabilities(forced, X))
    torch.testing.assert_close(simulate(circuit, X), module.label_probabilities(X))


def test_no_inputs_give_empty_results():
    circuit = Circuit(1, [Gate((0,), feature=0), Measure(0, "label", 0)], {"label": 1},
                      n_features=1)  # fmt: skip
    assert simulate(circuit, torch.zeros(0, 1)).shape == (0, 2)
    assert simulate(circuit, torch.zeros(0, 1), shots=10).shape == (0, 2)


def test_fusing_a_strided_complex_one_qubit_gate_into_a_two_qubit_gate() -> None:
    """A one-qubit gate whose matrix is a transposed complex view (as synthesis can leave)
    merged into the two-qubit gate before it: torch.kron of such a view failed."""
    from tnml.quantum.routing import fuse_two_qubit_runs

    gen = torch.Generator().manual_seed(0)
    two = torch.linalg.qr(torch.randn(4, 4, dtype=torch.complex128, generator=gen))[0]
    one = torch.linalg.qr(torch.randn(2, 2, dtype=torch.complex128, generator=gen))[0]
    assert not one.is_contiguous()
    fused = fuse_two_qubit_runs([Gate((0, 1), matrix=two), Gate((1,), matrix=one)])
    assert len(fused) == 1
    expected = torch.kron(torch.eye(2, dtype=torch.complex128), one.contiguous()) @ two
    torch.testing.assert_close(fused[0].matrix, expected)


def test_a_four_qubit_gate_of_a_trained_classifier_synthesises_exactly():
    """Qiskit's Shannon decomposition with its optimisation A.1 leaves an error of 2.5e-5 on
    this gate (the last 16 x 16 gate of a unitary MPS classifier, orthogonal to 7e-16);
    tnml checks every synthesis and redoes this one without it."""
    pytest.importorskip("qiskit")
    path = Path(__file__).parent / "data" / "orthogonal_gate_4q.npy"
    matrix = torch.tensor(np.load(path), dtype=torch.float64)
    native = decompose(Circuit(4, [Gate((0, 1, 2, 3), matrix=matrix)], {}))
    assert all(len(op.qubits) == 1 or op.name == "cx" for op in native.ops)
    assert equal_up_to_phase(gate_unitary(native.ops, 4), matrix.to(torch.complex128))


def test_targets_and_layouts_take_qubit_indices_only():
    from tnml.quantum.targets import DeviceTarget, line_target

    with pytest.raises(InvalidInputError, match=r"must be an integer >= 0, got 0\.7"):
        resolve_target([(0.7, 1.2)], 2)  # was silently the edge (0, 1)
    with pytest.raises(InvalidInputError, match="num_qubits must be >= 1"):
        DeviceTarget("x", -1, ())
    # qubit indices are integers, as a Gate's are: no booleans, strings or floats
    for bad in (np.True_, torch.tensor(True), "1", 1.0):
        with pytest.raises(InvalidInputError, match="a target qubit must be an integer"):
            resolve_target([(0, bad)], 2)
    assert resolve_target([(0, np.int64(1))], 2).edges == ((0, 1),)
    circuit = Circuit(3, [Gate((0, 1), matrix=CX), Gate((1, 2), matrix=CX)], {})
    with pytest.raises(InvalidInputError, match=r"places qubits on \[7\]"):
        route(circuit, line_target(3), initial_layout={0: 0, 1: 1, 2: 7})
    with pytest.raises(InvalidInputError, match="initial_layout value must be an integer >= 0"):
        route(circuit, line_target(3), initial_layout={0: 0, 1: 1, 2: -4})
    route(circuit, line_target(3), initial_layout={0: 2, 1: 1, 2: 0})  # a valid layout


def test_a_gate_unitary_only_to_1e9_still_synthesises():
    """A Gate accepts matrices unitary to 1e-8; the check of the synthesis is against the
    nearest unitary, not the matrix itself (which no circuit reproduces)."""
    pytest.importorskip("qiskit")
    g = torch.Generator().manual_seed(3)
    q, _ = torch.linalg.qr(torch.randn(8, 8, generator=g, dtype=torch.float64))
    noisy = q + 5e-10 * torch.randn(8, 8, generator=g, dtype=torch.float64)
    native = decompose(Circuit(3, [Gate((0, 1, 2), matrix=noisy)], {}))
    assert equal_up_to_phase(gate_unitary(native.ops, 3), q.to(torch.complex128), atol=1e-8)
