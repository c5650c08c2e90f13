"""Unitary (circuit-form) classifiers: orthogonality through training, the channel evaluation
against dense density matrices, the estimator faces, conversion of trained models, export."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

import tnml
from tnml import io as tnml_io
from tnml.exceptions import InvalidInputError
from tnml.features import embed
from tnml.nn.unitary import UnitaryMPSClassifierModule, UnitaryTTNClassifierModule
from tnml.quantum import compile, run_aer, simulate, to_qiskit, to_unitary
from tnml.tensor.channel import mps_channel_density
from tnml.tensor.unitary import complete_rows, orthogonal


@pytest.fixture(scope="module")
def digits_pair():
    X, y = load_digits(return_X_y=True)
    keep = np.isin(y, [3, 8])
    return X[keep][:240] / 16, y[keep][:240]


def _dense_mps_channel(gates: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    """The same channel with explicit Kronecker products and partial traces (one sample)."""
    two_d = gates.shape[-1]
    d = two_d // 2
    rho = torch.zeros(d, d, dtype=torch.float64)
    rho[0, 0] = 1
    for i in range(gates.shape[0]):
        full = torch.kron(rho, torch.outer(phi[i], phi[i]))
        full = gates[i] @ full @ gates[i].T
        rho = full.reshape(2, d, 2, d).diagonal(dim1=0, dim2=2).sum(-1)
    return rho


def test_orthogonal_parametrisation_and_completion():
    gen = torch.randn(5, 8, 8, dtype=torch.float64)
    base = torch.linalg.qr(torch.randn(5, 8, 8, dtype=torch.float64)).Q
    u = orthogonal(base, gen)
    torch.testing.assert_close(
        u @ u.transpose(-1, -2), torch.eye(8, dtype=torch.float64).expand(5, 8, 8)
    )
    rows = torch.linalg.qr(torch.randn(8, 3, dtype=torch.float64)).Q.T
    full = complete_rows(rows)
    torch.testing.assert_close(full[:3], rows)
    torch.testing.assert_close(full @ full.T, torch.eye(8, dtype=torch.float64))
    assert torch.linalg.det(full) > 0
    with pytest.raises(InvalidInputError, match="orthonormal"):
        complete_rows(torch.ones(2, 4, dtype=torch.float64))


def test_mps_channel_equals_dense_partial_traces():
    torch.manual_seed(0)
    module = UnitaryMPSClassifierModule(5, 2, 4, init="random", init_std=0.3, dtype=torch.float64)
    x = torch.rand(3, 5, dtype=torch.float64)
    phi = embed(x, "trig", 2)
    got = mps_channel_density(module.unitaries().detach(), phi)
    for b in range(3):
        torch.testing.assert_close(got[b], _dense_mps_channel(module.unitaries().detach(), phi[b]))


def test_gates_stay_orthogonal_through_training(digits_pair):
    X, y = digits_pair
    clf = tnml.TTNClassifier(bond_dim=2, unitary=True, epochs=3, layout="image", random_state=0)
    clf.fit(X, y)
    for row in clf.module_.unitaries():
        for gate in row:
            gate = gate.detach().double()
            torch.testing.assert_close(
                gate @ gate.T, torch.eye(4, dtype=torch.float64), atol=1e-5, rtol=0
            )
    assert clf.score(X, y) > 0.9


@pytest.mark.parametrize("cls", [tnml.MPSClassifier, tnml.TTNClassifier])
def test_unitary_estimator_face(cls, digits_pair, tmp_path):
    X, y = digits_pair
    clf = cls(bond_dim=2, unitary=True, epochs=2, random_state=0).fit(X, y)
    proba = clf.predict_proba(X[:5])
    np.testing.assert_allclose(proba.sum(1), 1.0, atol=1e-6)
    path = tmp_path / "u.tnml"
    tnml_io.save(clf, path)
    again = tnml_io.load(path)
    np.testing.assert_allclose(again.predict_proba(X), clf.predict_proba(X), atol=1e-7)
    circuit = compile(again, "efficient")
    scaled = tnml.quantum.circuit_inputs(again, X[:20])
    np.testing.assert_allclose(
        simulate(circuit, scaled).numpy(),
        proba[:5].tolist() + clf.predict_proba(X[5:20]).tolist(),
        atol=1e-5,
    )


def test_unitary_options_are_checked(digits_pair, tmp_path):
    X, y = digits_pair
    # numpy integers (e.g. from a parameter grid) are bond dimensions too
    clf = tnml.TTNClassifier(bond_dim=np.int64(2), unitary=True, epochs=1).fit(X, y)
    tnml_io.save(clf, tmp_path / "np.tnml")
    assert tnml_io.load(tmp_path / "np.tnml").module_.bond_dim == 2
    with pytest.raises(InvalidInputError, match="warm_start"):
        clf.set_params(unitary=False, warm_start=True).fit(X, y)
    with pytest.raises(InvalidInputError, match="power of two"):
        tnml.MPSClassifier(bond_dim=3, unitary=True, epochs=1).fit(X, y)
    with pytest.raises(InvalidInputError, match="trainer"):
        tnml.MPSClassifier(bond_dim=2, unitary=True, trainer="sweep").fit(X, y)
    with pytest.raises(InvalidInputError, match="feature_dim"):
        tnml.MPSClassifier(bond_dim=2, unitary=True, feature_dim=3).fit(X, y)
    X10, y10 = load_digits(return_X_y=True)
    with pytest.raises(InvalidInputError, match="label qubits"):
        tnml.TTNClassifier(bond_dim=4, unitary=True, epochs=1).fit(X10[:50] / 16, y10[:50])


def test_to_unitary_postselection_reproduces_the_chain(digits_pair):
    X, y = digits_pair
    clf = tnml.MPSClassifier(bond_dim=3, readout="born", epochs=2, random_state=0).fit(X, y)
    converted, report = to_unitary(clf, X, y)
    assert converted.unitary and report.bond_dim in (4, 8)  # moving the label can double a bond
    assert 0 < report.last_core_fidelity <= 1 + 1e-12
    assert 0 <= report.mean_fidelity <= 1 and report.accuracy_before > 0.9
    gates = converted.module_.unitaries().detach().double()
    eye = torch.eye(gates.shape[-1], dtype=torch.float64)
    torch.testing.assert_close(
        gates @ gates.transpose(-1, -2), eye.expand_as(gates), atol=1e-5, rtol=0
    )
    # Post-selecting the discarded qubit on |0> at every step but the last gives the bond
    # vector of the left-canonical chain; closing it with the original last core must give
    # the original Born probabilities.
    from tnml.train.sweep import LabelledMPS, move_label

    moved = move_label(LabelledMPS.from_module(clf.module_.double()), X.shape[1] - 1)
    last = moved.label_core[..., 0]  # (Dl, 2, L)
    x = torch.tensor(clf._to_unit(X[:6]))
    phi = embed(x, "trig", 2)
    d = report.bond_dim
    v = torch.zeros(6, d, dtype=torch.float64)
    v[:, 0] = 1
    for i in range(X.shape[1] - 1):
        t = gates[i][:d].reshape(d, d, 2)
        v = torch.einsum("bi,jis,bs->bj", v, t, phi[:, i])
    dl = last.shape[0]
    f = torch.einsum("bi,isl,bs->bl", v[:, :dl], last, phi[:, -1])
    born = f**2 / (f**2).sum(1, keepdim=True)
    np.testing.assert_allclose(born.numpy(), clf.predict_proba(X[:6]), atol=1e-6)


def test_parametric_export_runs_in_aer():
    pytest.importorskip("qiskit_aer")
    from qiskit_aer import AerSimulator

    torch.manual_seed(3)
    module = UnitaryTTNClassifierModule(8, 2, 2, layout="1d", init="random", dtype=torch.float64)
    x = torch.rand(8, dtype=torch.float64)
    expected = module.label_probabilities(x[None]).detach()[0]
    for schedule in ("full", "efficient"):
        circuit = compile(module, schedule)
        qc = to_qiskit(circuit, measure=False)
        assert qc.num_parameters == 8
        bound = qc.assign_parameters({qc.parameters[i]: float(x[i]) for i in range(8)})
        label_qubit = next(
            op.qubit for op in circuit.ops if getattr(op, "register", None) == "label"
        )
        bound.save_probabilities([label_qubit])
        result = AerSimulator(method="density_matrix").run(bound).result()
        probs = result.data()["probabilities"]
        np.testing.assert_allclose(probs, expected.numpy(), atol=1e-9)
        np.testing.assert_allclose(
            run_aer(circuit, x[None]).numpy()[0], expected.numpy(), atol=1e-9
        )


def test_to_unitary_tree_postselection_reproduces_the_tree(digits_pair):
    from tnml.tensor.ttn import TTN, ttn_canonicalize

    X, y = digits_pair
    X = X[:, [18, 19, 20, 21, 26, 27, 28, 29]]  # 8 central pixels
    clf = tnml.TTNClassifier(bond_dim=4, readout="born", epochs=3, random_state=0).fit(X, y)
    converted, report = to_unitary(clf, X, y)
    assert converted.unitary and report.bond_dim == 4 and 0 < report.last_core_fidelity <= 1
    module = converted.module_.double()
    gates = [[g.detach() for g in row] for row in module.unitaries()]
    phi = embed(torch.tensor(clf._to_unit(X[:5])), "trig", 2)

    def postselected(level: int, entry: int, b: int) -> torch.Tensor:
        """State of an entry's kept qubits, every discarded qubit projected on |0>."""
        if level == 0:
            return phi[b, entry]
        pairs = module.tree.pairs[level - 1]
        if entry >= len(pairs):
            return postselected(level - 1, module.tree.carried[level - 1][entry - len(pairs)], b)
        left = postselected(level - 1, pairs[entry][0], b)
        right = postselected(level - 1, pairs[entry][1], b)
        wl, wr, wk = module.gate_sizes[level - 1][entry]
        out = gates[level - 1][entry] @ torch.kron(left, right)
        return out.reshape(2**wk, 2 ** (wl + wr - wk))[:, 0]

    amplitudes = torch.stack([postselected(module.tree.depth, 0, b) for b in range(5)])
    plain = clf.module_.to_ttn()
    canonical = ttn_canonicalize(
        TTN(plain.layout, [[t.double() for t in row] for row in plain.tensors])
    )
    root = canonical.tensors[-1][0]
    u, s, _ = torch.linalg.svd(root.reshape(-1, 2).T, full_matrices=False)  # (L, L)
    a = amplitudes[:, [0, 2]]  # label l on the root's first qubit: kept index 2 * l
    f_rotated = (s * (a @ u)) @ u.T  # = R c with R = U S V^T, since a = U V^T c
    born = f_rotated**2 / (f_rotated**2).sum(1, keepdim=True)
    np.testing.assert_allclose(born.numpy(), clf.predict_proba(X[:5]), atol=1e-6)


@pytest.mark.parametrize("schedule", ["full", "efficient"])
def test_shots_agree_with_aer_within_three_standard_errors(schedule):
    pytest.importorskip("qiskit_aer")
    torch.manual_seed(5)
    module = UnitaryTTNClassifierModule(
        16, 2, 2, layout="image", init="random", init_std=0.5, dtype=torch.float64
    )
    circuit = compile(module, schedule)
    x = torch.rand(3, 16, dtype=torch.float64)
    exact = module.label_probabilities(x).detach().numpy()
    shots = 4000
    ours = simulate(circuit, x, shots=shots, seed=1).numpy()
    aer = run_aer(circuit, x, shots=shots, seed=2).numpy()
    se = np.sqrt(exact * (1 - exact) / shots) + 1e-12
    assert np.all(np.abs(ours - exact) <= 3 * se)
    assert np.all(np.abs(aer - exact) <= 3 * se)
    assert np.all(np.abs(ours - aer) <= 3 * np.sqrt(2) * se)


def _all_bitstrings(n: int) -> np.ndarray:
    return ((np.arange(2**n)[:, None] >> np.arange(n)[::-1]) & 1).astype(np.int64)


def test_unitary_born_module_is_normalised_and_isometric():
    from tnml.nn.unitary import UnitaryMPSBornModule

    module = UnitaryMPSBornModule(8, 4, init_std=0.3, dtype=torch.float64)
    for core in module.cores():
        rows = core.detach().reshape(core.shape[0], -1)
        torch.testing.assert_close(rows @ rows.T, torch.eye(rows.shape[0], dtype=torch.float64))
    x = torch.as_tensor(_all_bitstrings(8))
    total = torch.logsumexp(module(x).detach(), 0)
    assert abs(float(total)) < 1e-10  # sum_x p(x) = 1 with no partition function


def test_unitary_born_machine_matches_plain_sweeps_and_compiles(tmp_path):
    pytest.importorskip("qiskit")
    rng = np.random.default_rng(0)
    X = (rng.random((300, 8)) < np.linspace(0.2, 0.8, 8)).astype(np.int64)
    X[:, 1] = X[:, 0]  # correlated pixels need a bond
    plain = tnml.MPSBornMachine(bond_dim=4, epochs=2, random_state=0).fit(X)
    unitary = tnml.MPSBornMachine(bond_dim=4, epochs=2, unitary=True, random_state=0).fit(X)
    np.testing.assert_allclose(unitary.log_prob(X), plain.log_prob(X), atol=1e-9)
    path = tmp_path / "born.tnml"
    tnml_io.save(unitary, path)
    again = tnml_io.load(path)
    np.testing.assert_allclose(again.log_prob(X), unitary.log_prob(X), atol=1e-12)
    circuit = compile(again, "efficient")
    assert circuit.num_qubits == 3
    from tnml.quantum import register_probabilities

    probs = register_probabilities(circuit)[0].numpy()  # value: bit j = feature j
    values = _all_bitstrings(8)
    index = (values * (1 << np.arange(8))).sum(1)
    np.testing.assert_allclose(probs[index], np.exp(again.log_prob(values)), atol=1e-10)


def test_born_machine_switches_form_exactly_on_warm_start(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.integers(0, 2, size=(100, 6))
    model = tnml.MPSBornMachine(bond_dim=4, trainer="autodiff", unitary=True, epochs=1)
    model.fit(X)
    before = model.log_prob(X)
    model.set_params(unitary=False, warm_start=True, lr=1e-12).fit(X)  # a no-op step
    np.testing.assert_allclose(model.log_prob(X), before, atol=1e-6)
    tnml_io.save(model, tmp_path / "plain.tnml")
    np.testing.assert_allclose(tnml_io.load(tmp_path / "plain.tnml").log_prob(X), model.log_prob(X))


def test_unitary_born_machine_rejects_non_qubit_settings():
    X = np.random.default_rng(0).integers(0, 3, size=(50, 5))
    with pytest.raises(InvalidInputError, match="2 levels"):
        tnml.MPSBornMachine(bond_dim=4, unitary=True, epochs=1).fit(X)
    with pytest.raises(InvalidInputError, match="power of two"):
        tnml.MPSBornMachine(bond_dim=3, unitary=True, epochs=1).fit(X % 2)


def test_a_converted_classifier_fine_tunes_whatever_its_source_readout_and_output_site():
    """to_unitary copied readout / output_site / contraction, which a unitary fit refuses."""
    X, y = load_digits(return_X_y=True)
    X, y = X[y < 2][:120, ::8] / 16, y[y < 2][:120]
    source = tnml.MPSClassifier(
        bond_dim=2, epochs=1, dtype="float64", readout="born", output_site=3, random_state=0
    ).fit(X, y)
    converted, _ = to_unitary(source)
    assert converted.get_params()["readout"] == "normalized"
    converted.set_params(warm_start=True, epochs=1).fit(X, y)  # refused before
