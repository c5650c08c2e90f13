"""The factor simulator against a dense density-matrix simulator written out here."""

import itertools
import math
import time

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tnml.exceptions import InvalidInputError
from tnml.quantum import (
    Circuit,
    Gate,
    Measure,
    NoiseModel,
    Reset,
    register_probabilities,
    sample,
    simulate,
)
from tnml.quantum.simulate import MAX_EXACT_BITS

# ---------------------------------------------------------------- dense reference simulator

PAULI = [
    np.eye(2),
    np.array([[0, 1], [1, 0]]),
    np.array([[0, -1j], [1j, 0]]),
    np.array([[1, 0], [0, -1]]),
]


def full_operator(mat: np.ndarray, qubits: tuple, n: int) -> np.ndarray:
    """``mat`` on ``qubits`` (first = most significant) as a ``2**n`` matrix; qubit 0 is the MSB."""
    index = np.arange(2**n)
    bits = (index[:, None] >> (n - 1 - np.arange(n))) & 1
    sub = bits[:, list(qubits)] @ (1 << np.arange(len(qubits) - 1, -1, -1))
    others = [q for q in range(n) if q not in qubits]
    rest = bits[:, others] @ (1 << np.arange(len(others))) if others else np.zeros(2**n, int)
    return mat[sub[:, None], sub[None, :]] * (rest[:, None] == rest[None, :])


def channel(rho: np.ndarray, kraus: list, qubits: tuple, n: int) -> np.ndarray:
    out = np.zeros_like(rho)
    for k in kraus:
        full = full_operator(np.asarray(k, dtype=complex), qubits, n)
        out += full @ rho @ full.conj().T
    return out


def depolarizing_kraus(p: float, k: int) -> list:
    # (1 - p) rho + p / 4**k sum_P P rho P over all k-qubit Pauli strings P.
    out = []
    for labels in itertools.product(range(4), repeat=k):
        pauli = np.eye(1)
        for a in labels:
            pauli = np.kron(pauli, PAULI[a])
        weight = p / 4**k + (1 - p if not any(labels) else 0.0)
        out.append(math.sqrt(weight) * pauli)
    return out


def dense_register_probabilities(circuit, x, noise, register) -> np.ndarray:
    """Exact register distribution by branching on every measurement of ``register``."""
    n = circuit.num_qubits
    rho0 = np.zeros((2**n, 2**n), dtype=complex)
    rho0[0, 0] = 1
    branches = {(): rho0}
    proj = [np.diag([1.0, 0.0]), np.diag([0.0, 1.0])]
    for op in circuit.ops:
        if isinstance(op, Gate):
            if op.feature is not None:
                a = math.pi * x[op.feature]
                mat = np.array(
                    [[math.cos(a / 2), -math.sin(a / 2)], [math.sin(a / 2), math.cos(a / 2)]]
                )
            else:
                mat = op.matrix.numpy()
            branches = {
                key: _gate_noise(channel(rho, [mat], op.qubits, n), op.qubits, n, noise)
                for key, rho in branches.items()
            }
        elif isinstance(op, Reset):
            reset = [np.array([[1, 0], [0, 0]]), np.array([[0, 1], [0, 0]])]
            branches = {key: channel(rho, reset, (op.qubit,), n) for key, rho in branches.items()}
        elif op.register == register:
            branches = {
                (*key, (op.bit, i)): channel(rho, [proj[i]], (op.qubit,), n)
                for key, rho in branches.items()
                for i in (0, 1)
            }
        else:
            branches = {key: channel(rho, proj, (op.qubit,), n) for key, rho in branches.items()}
    size = circuit.registers[register]
    dist = np.zeros(2**size)
    for key, rho in branches.items():
        dist[sum(i << bit for bit, i in key)] += np.trace(rho).real
    if noise is not None:
        p01, p10 = noise.readout_probabilities
        measured = {
            op.bit for op in circuit.ops if isinstance(op, Measure) and op.register == register
        }
        for bit in measured:
            new = np.zeros_like(dist)
            for value, p in enumerate(dist):
                flip = p10 if (value >> bit) & 1 else p01
                new[value] += p * (1 - flip)
                new[value ^ (1 << bit)] += p * flip
            dist = new
    return dist


def _gate_noise(rho, qubits, n, noise):
    if noise is None:
        return rho
    k = len(qubits)
    p = noise.depolarizing_1q if k == 1 else noise.depolarizing_2q
    rho = channel(rho, depolarizing_kraus(p, k), qubits, n)
    g, lam = noise.amplitude_damping, noise.dephasing
    damping = [np.array([[1, 0], [0, math.sqrt(1 - g)]]), np.array([[0, math.sqrt(g)], [0, 0]])]
    dephasing = [
        np.array([[1, 0], [0, math.sqrt(1 - lam)]]),
        np.array([[0, 0], [0, math.sqrt(lam)]]),
    ]
    for kraus in (damping, dephasing):
        for q in qubits:
            rho = channel(rho, kraus, (q,), n)
    return rho


# ---------------------------------------------------------------- random circuits


def random_unitary(rng: np.random.Generator, k: int, complex_: bool) -> torch.Tensor:
    a = rng.normal(size=(2**k, 2**k))
    if complex_:
        a = a + 1j * rng.normal(size=(2**k, 2**k))
    q, r = np.linalg.qr(a)
    return torch.as_tensor(q * (np.diag(r) / np.abs(np.diag(r))))


NOISES = [
    None,
    NoiseModel(depolarizing_1q=0.1, depolarizing_2q=0.2),
    NoiseModel(amplitude_damping=0.15),
    NoiseModel(dephasing=0.2),
    NoiseModel(readout_error=(0.05, 0.12)),
    NoiseModel(0.05, 0.1, 0.07, 0.12, (0.03, 0.08)),
    # one-qubit gates folded into the next wider gate (nothing happens after them)
    NoiseModel(depolarizing_2q=0.2, readout_error=(0.02, 0.05)),
]


@st.composite
def random_circuits(draw):
    n = draw(st.integers(2, 5))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n_label_bits = draw(st.integers(1, 2))
    label_times = draw(st.lists(st.integers(0, 12), min_size=n_label_bits, max_size=n_label_bits))
    ops, n_aux = [], 0
    for t in range(draw(st.integers(1, 12))):
        kind = draw(st.sampled_from(["data", "real", "complex", "reset", "mid"]))
        q = int(rng.integers(n))
        if kind == "data":
            ops.append(Gate((q,), feature=int(rng.integers(3))))
        elif kind in ("real", "complex"):
            k = int(rng.integers(1, min(3, n) + 1))
            qubits = tuple(int(v) for v in rng.choice(n, size=k, replace=False))
            ops.append(Gate(qubits, random_unitary(rng, k, kind == "complex"), name=kind))
        elif kind == "reset":
            ops.append(Reset(q))
        else:
            ops += (
                [Measure(q, "aux", n_aux), Reset(q)]
                if rng.random() < 0.7
                else [Measure(q, "aux", n_aux)]
            )
            n_aux += 1
        for bit, when in enumerate(label_times):
            if when == t:  # a label bit measured mid-circuit; its qubit may be used again
                ops.append(Measure(int(rng.integers(n)), "label", bit))
    measured = {op.bit for op in ops if isinstance(op, Measure) and op.register == "label"}
    for bit in range(n_label_bits):
        if bit not in measured:
            ops.append(Measure(int(rng.integers(n)), "label", bit))
    n_labels = draw(st.sampled_from([None, *range(1, 2**n_label_bits + 1)]))
    registers = {"aux": max(n_aux, 1), "label": n_label_bits}
    circuit = Circuit(n, ops, registers, n_features=3, n_labels=n_labels)
    return circuit, rng.random((2, 3)), draw(st.sampled_from(NOISES))


@settings(max_examples=40, deadline=None)
@given(random_circuits())
def test_matches_dense_simulator(case):
    circuit, X, noise = case
    probs = register_probabilities(circuit, X, noise=noise)
    expected = np.stack([dense_register_probabilities(circuit, x, noise, "label") for x in X])
    np.testing.assert_allclose(probs.numpy(), expected, atol=1e-10)
    n_labels = circuit.n_labels or expected.shape[1]
    valid = expected[:, :n_labels]
    renorm = valid / valid.sum(1, keepdims=True)
    renorm[valid.sum(1) <= 16 * np.finfo(float).eps] = 1 / n_labels
    np.testing.assert_allclose(simulate(circuit, X, noise=noise).numpy(), renorm, atol=1e-9)


# ---------------------------------------------------------------- wide trees


def tree_circuit(n_leaves: int, rng: np.random.Generator) -> tuple[Circuit, list]:
    """Binary tree of random 2-qubit orthogonal gates; the first qubit of each pair is dropped."""
    ops = [Gate((q,), feature=q) for q in range(n_leaves)]
    active, nodes = list(range(n_leaves)), []
    while len(active) > 1:
        survivors = []
        for a, b in zip(active[0::2], active[1::2], strict=False):
            u = random_unitary(rng, 2, False)
            ops.append(Gate((a, b), u, name="node"))
            nodes.append((a, b, u.numpy()))
            survivors.append(b)
        if len(active) % 2:
            survivors.append(active[-1])
        active = survivors
    ops.append(Measure(active[0], "label", 0))
    circuit = Circuit(n_leaves, ops, {"label": 1}, n_features=n_leaves)
    return circuit, nodes


def tree_reference(n_leaves: int, nodes: list, x: np.ndarray) -> np.ndarray:
    rho = {}
    for q in range(n_leaves):
        psi = np.array([math.cos(math.pi * x[q] / 2), math.sin(math.pi * x[q] / 2)])
        rho[q] = np.outer(psi, psi)
    for a, b, u in nodes:
        joint = u @ np.kron(rho.pop(a), rho[b]) @ u.T
        rho[b] = np.einsum("iaib->ab", joint.reshape(2, 2, 2, 2))
    (root,) = rho.values()
    return np.diag(root)


def test_wide_tree_matches_recursive_densities():
    rng = np.random.default_rng(0)
    circuit, nodes = tree_circuit(40, rng)
    X = rng.random((8, 40))
    start = time.perf_counter()
    probs = simulate(circuit, X)
    elapsed = time.perf_counter() - start
    expected = np.stack([tree_reference(40, nodes, x) for x in X])
    np.testing.assert_allclose(probs.numpy(), expected, atol=1e-12)
    assert elapsed < 5.0


def test_64_qubit_tree_runs_batched():
    circuit, _ = tree_circuit(64, np.random.default_rng(1))
    probs = simulate(circuit, np.random.default_rng(2).random((300, 64)), batch_size=128)
    assert probs.shape == (300, 2)
    torch.testing.assert_close(probs.sum(1), torch.ones(300, dtype=torch.float64))


# ---------------------------------------------------------------- generative circuits and sampling


def generative_circuit(rng: np.random.Generator, steps: int = 8) -> Circuit:
    """Two bond qubits and one output qubit, measured into bit i, reset and reused."""
    ops = []
    for i in range(steps):
        ops.append(Gate((0, 1, 2), random_unitary(rng, 3, i % 2 == 1), name=f"step{i}"))
        ops += [Measure(2, "sample", i), Reset(2)]
    return Circuit(3, ops, {"sample": steps}, label_register="sample")


def test_generative_register_probabilities_match_dense():
    circuit = generative_circuit(np.random.default_rng(3))
    for noise in (None, NoiseModel(0.02, 0.05, 0.03, 0.04, (0.01, 0.03))):
        probs = register_probabilities(circuit, noise=noise)
        expected = dense_register_probabilities(circuit, [], noise, "sample")
        np.testing.assert_allclose(probs[0].numpy(), expected, atol=1e-10)


def chi_square_ok(counts: np.ndarray, probs: np.ndarray) -> bool:
    n = counts.sum()
    expected = n * probs
    big = expected >= 5
    stat = ((counts[big] - expected[big]) ** 2 / expected[big]).sum()
    # Pool the small cells into one.
    rest_obs, rest_exp = counts[~big].sum(), expected[~big].sum()
    if rest_exp > 0:
        stat += (rest_obs - rest_exp) ** 2 / rest_exp
    dof = big.sum() + (rest_exp > 0) - 1
    return stat < dof + 5 * math.sqrt(2 * dof)


def register_counts(bits: torch.Tensor) -> np.ndarray:
    values = (bits * (1 << torch.arange(bits.shape[1]))).sum(1)
    return np.bincount(values.numpy(), minlength=2 ** bits.shape[1])


@pytest.mark.parametrize("noise", [None, NoiseModel(0.03, 0.05, 0.02, 0.04, (0.02, 0.05))])
def test_sample_matches_exact_distribution(noise):
    circuit = generative_circuit(np.random.default_rng(4))
    bits = sample(circuit, 20000, noise=noise, seed=0)
    assert bits.shape == (20000, 8) and bits.dtype == torch.int64
    probs = register_probabilities(circuit, noise=noise)[0].numpy()
    counts = register_counts(bits)
    assert chi_square_ok(counts, probs)
    sigma = np.sqrt(20000 * probs * (1 - probs))
    assert np.all(np.abs(counts - 20000 * probs) <= 4.5 * sigma + 3)


def test_sample_is_seeded_and_accepts_per_shot_inputs():
    circuit = Circuit(
        1, [Gate((0,), feature=0), Measure(0, "label", 0)], {"label": 1}, n_features=1
    )
    assert torch.equal(sample(circuit, 50, [0.5], seed=1), sample(circuit, 50, [0.5], seed=1))
    x = np.repeat([[0.0], [1.0]], 10, axis=0)
    assert sample(circuit, 20, x, seed=0)[:, 0].tolist() == [0] * 10 + [1] * 10
    with pytest.raises(InvalidInputError, match="n_shots"):
        sample(circuit, 7, x)


# ---------------------------------------------------------------- simulate's contract


def bell_like(n_labels=None) -> Circuit:
    ops = [
        Gate((0,), feature=0),
        Gate((1,), feature=1),
        Measure(0, "label", 0),
        Measure(1, "label", 1),
    ]
    return Circuit(2, ops, {"label": 2}, n_features=2, n_labels=n_labels)


def test_renormalises_over_valid_labels():
    # P(q0 = 1) = sin^2(pi x0 / 2); value = q0 + 2 q1.
    p0, p1 = math.sin(math.pi * 0.3 / 2) ** 2, math.sin(math.pi * 0.6 / 2) ** 2
    full = np.array([(1 - p0) * (1 - p1), p0 * (1 - p1), (1 - p0) * p1, p0 * p1])
    probs = simulate(bell_like(3), [0.3, 0.6])
    np.testing.assert_allclose(probs[0].numpy(), full[:3] / full[:3].sum(), atol=1e-12)
    assert probs.shape == (1, 3)
    # Only value 3 possible: no valid label has weight, so the row is uniform.
    np.testing.assert_allclose(simulate(bell_like(3), [[1.0, 1.0]]).numpy(), [[1 / 3] * 3])


def test_shots_are_seeded_frequencies():
    circuit = bell_like()
    X = np.random.default_rng(0).random((5, 2))
    a = simulate(circuit, X, shots=1000, seed=3)
    assert torch.equal(a, simulate(circuit, X, shots=1000, seed=3))
    assert torch.all((a * 1000 - (a * 1000).round()).abs() < 1e-9)
    exact = simulate(circuit, X)
    assert torch.all((a - exact).abs() <= 4 * (exact * (1 - exact) / 1000).sqrt() + 1e-3)


def test_dtypes_and_shapes():
    circuit = bell_like()
    p64 = simulate(circuit, [0.2, 0.7])
    p32 = simulate(circuit, torch.tensor([[0.2, 0.7]]), dtype=torch.float32)
    assert p32.dtype == torch.float32 and p64.shape == (1, 4)
    torch.testing.assert_close(p32.double(), p64, atol=1e-6, rtol=0)
    complex_gate = Gate((0,), torch.tensor([[1, 0], [0, 1j]], dtype=torch.complex128), name="s")
    ops = [Gate((0,), feature=0), complex_gate, Measure(0, "label", 0)]
    c = Circuit(1, ops, {"label": 1}, n_features=1)
    assert simulate(c, [0.5]).dtype == torch.float64
    empty = Circuit(1, [Measure(0, "label", 0)], {"label": 1})
    np.testing.assert_allclose(simulate(empty).numpy(), [[1.0, 0.0]])


def test_input_errors():
    circuit = bell_like()
    with pytest.raises(InvalidInputError, match="n_features=2"):
        simulate(circuit, [[0.1, 0.2, 0.3]])
    with pytest.raises(InvalidInputError, match="NaN"):
        simulate(circuit, [[0.1, float("nan")]])
    with pytest.raises(InvalidInputError, match="required"):
        simulate(circuit, None)
    with pytest.raises(InvalidInputError, match="shots"):
        simulate(circuit, [0.1, 0.2], shots=0)
    with pytest.raises(InvalidInputError, match="noise"):
        simulate(circuit, [0.1, 0.2], noise=0.1)
    wide = Circuit(1, [], {"label": MAX_EXACT_BITS + 1})
    with pytest.raises(InvalidInputError, match="sample"):
        simulate(wide)
    assert sample(wide, 3).shape == (3, MAX_EXACT_BITS + 1)


def test_gradients_flow_to_gate_matrices():
    noise = NoiseModel(0.05, 0.1, 0.05, 0.05, 0.02)

    def rotation(t):
        c, s = torch.cos(t), torch.sin(t)
        return torch.stack([torch.stack([c, -s]), torch.stack([s, c])])

    def circuit(u):
        ops = [Gate((0,), feature=0), Gate((0,), u), Measure(0, "aux", 0)]
        ops += [Gate((0, 1), torch.eye(4, dtype=torch.float64)[[0, 1, 3, 2]]), Reset(0)]
        ops += [Measure(1, "label", 0)]
        return Circuit(2, ops, {"aux": 1, "label": 1}, n_features=1)

    theta = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    simulate(circuit(rotation(theta)), [0.4], noise=noise)[0, 1].backward()
    h = 1e-6
    plus, minus = (
        simulate(circuit(rotation(torch.tensor(0.3 + d, dtype=torch.float64))), [0.4], noise=noise)[
            0, 1
        ]
        for d in (h, -h)
    )
    assert theta.grad.item() == pytest.approx(float(plus - minus) / (2 * h), abs=1e-7)


@pytest.mark.parametrize("noise", [None, NoiseModel(depolarizing_2q=0.1)])
def test_gradients_through_one_qubit_gates_folded_into_the_next_gate(noise):
    """One-qubit gates (a data gate and a trainable one per qubit) ride on the CX after them
    when no noise follows them; the gradient must still be the finite difference's."""

    def circuit(t):
        c, s = torch.cos(t), torch.sin(t)
        flip = torch.stack([torch.stack([c, s]), torch.stack([s, -c])])  # no RY commutes
        cx = torch.eye(4, dtype=torch.float64)[[0, 1, 3, 2]]
        ops = [Gate((0,), feature=0), Gate((1,), feature=1), Gate((1,), flip), Gate((0,), flip)]
        ops += [Gate((1, 0), cx), Gate((0,), flip), Measure(2, "aux", 0), Gate((2, 1), cx)]
        ops += [Measure(1, "label", 0), Measure(0, "label", 1)]
        return Circuit(3, ops, {"aux": 1, "label": 2}, n_features=2)

    x = [[0.4, 0.7]]
    theta = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    register_probabilities(circuit(theta), x, noise=noise)[0, 1].backward()
    h = 1e-6
    plus, minus = (
        register_probabilities(circuit(torch.tensor(0.3 + d, dtype=torch.float64)), x, noise=noise)
        for d in (h, -h)
    )
    assert theta.grad.item() == pytest.approx(float(plus[0, 1] - minus[0, 1]) / (2 * h), abs=1e-7)
    expected = dense_register_probabilities(circuit(theta.detach()), x[0], noise, "label")
    np.testing.assert_allclose(
        register_probabilities(circuit(theta), x, noise=noise)[0].detach(), expected, atol=1e-12
    )


def test_rows_are_simulated_in_chunks_whose_largest_factor_fits_the_cache():
    from tnml.quantum.simulate import _CACHE_BYTES, _largest_factor, _rows_in_cache

    cx = torch.eye(4, dtype=torch.float64)[[0, 1, 3, 2]]
    # qubit 0 is traced out after the first CX, qubit 1 after the second: at most two
    # qubits (16 entries) are ever entangled, then one qubit and one recorded bit (8)
    chain = [Gate((0,), feature=0), Gate((0, 1), cx), Gate((1, 2), cx)]
    circuit = Circuit(3, [*chain, Measure(2, "label", 0)], {"label": 1}, n_features=1)
    assert _largest_factor(circuit, "label") == (2, 0)
    # measuring qubit 0 mid-circuit and keeping it: 3 qubits and 1 bit at once (2 * 4**3)
    kept = [Gate((0,), feature=0), Gate((0, 1), cx), Measure(0, "label", 0), Gate((1, 2), cx)]
    kept += [Gate((0, 2), cx), Measure(2, "label", 1)]
    circuit = Circuit(3, kept, {"label": 2}, n_features=1)
    assert _largest_factor(circuit, "label") == (3, 1)
    assert _rows_in_cache(3, 1, torch.complex128) == _CACHE_BYTES // (2 * 4**3 * 16)
    # a last measurement turns its qubit into a bit: two qubits, then one qubit and one bit
    h = torch.tensor([[1.0, 1.0], [1.0, -1.0]], dtype=torch.float64) / 2**0.5
    bell = [Gate((0,), h), Gate((0, 1), cx), Measure(0, "label", 0), Measure(1, "label", 1)]
    assert _largest_factor(Circuit(2, bell, {"label": 2}), "label") == (2, 0)
    X = torch.rand(300, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    noise = NoiseModel(depolarizing_2q=0.1)
    chunked = register_probabilities(circuit, X, noise=noise)
    expected = np.stack([dense_register_probabilities(circuit, x, noise, "label") for x in X[:5]])
    np.testing.assert_allclose(chunked[:5].numpy(), expected, atol=1e-12)
    one_by_one = torch.cat([register_probabilities(circuit, x[None], noise=noise) for x in X[-3:]])
    torch.testing.assert_close(chunked[-3:], one_by_one)


def test_gradient_by_gate_entries_under_depolarising_is_that_of_the_channel_as_written():
    """The depolarising channel after a gate is ``(1-p) U rho U^+ + p I/4 (x) Tr(U rho U^+)``
    as a function of any matrix ``U``: the gradient by the matrix's entries, in non-unitary
    directions too, must match finite differences of the dense reference."""
    u = random_unitary(np.random.default_rng(3), 2, False)

    def circuit(matrix):
        gate = Gate((1, 0), u)
        object.__setattr__(gate, "matrix", matrix)  # past the unitarity check, on purpose
        ops = [Gate((0,), feature=0), gate, Measure(1, "aux", 0), Measure(0, "label", 0)]
        return Circuit(2, ops, {"aux": 1, "label": 1}, n_features=1)

    noise = NoiseModel(depolarizing_2q=0.3)
    x = [[0.35]]
    entries = u.clone().requires_grad_(True)
    register_probabilities(circuit(entries), x, noise=noise)[0, 1].backward()
    h = 1e-6
    expected = np.zeros((4, 4))
    for i, j in itertools.product(range(4), range(4)):
        step = torch.zeros(4, 4, dtype=torch.float64)
        step[i, j] = h
        plus, minus = (
            dense_register_probabilities(circuit(u + sign * step), x[0], noise, "label")[1]
            for sign in (1, -1)
        )
        expected[i, j] = (plus - minus) / (2 * h)
    np.testing.assert_allclose(entries.grad.numpy(), expected, atol=1e-6)


def test_a_factor_too_large_for_exact_simulation_is_refused_before_it_is_built() -> None:
    """Thirteen qubits entangled by a CX chain and kept alive, under gate noise: 4**13
    entries per input, for 64 inputs 64 GiB of density matrices, refused with advice."""
    from tnml.quantum import NoiseModel
    from tnml.quantum.circuit import Circuit, Gate, Measure
    from tnml.quantum.simulate import MAX_FACTOR_BYTES, simulate

    h = torch.tensor([[1.0, 1.0], [1.0, -1.0]], dtype=torch.float64) / 2**0.5
    cx = torch.tensor([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]], dtype=torch.float64)
    n = 13
    chain = [Gate((q, q + 1), cx) for q in range(n - 1)]
    last = [Gate((q,), h) for q in range(n)]  # every qubit stays alive to the end
    ops = [Gate((0,), h), *chain, *last, Measure(n - 1, "label", 0)]
    circuit = Circuit(n, ops, {"label": 1})
    noise = NoiseModel.depolarizing(1e-3)
    with pytest.raises(InvalidInputError, match=r"entangled qubits .* tnml\.quantum\.sample"):
        simulate(circuit, np.zeros((64, 0)), noise=noise)
    assert 64 * 4**n * 16 > MAX_FACTOR_BYTES
    probs = simulate(circuit, np.zeros((1, 0)))  # one noiseless input: a state vector
    torch.testing.assert_close(probs, torch.tensor([[0.5, 0.5]], dtype=probs.dtype))
