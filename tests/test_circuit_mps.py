"""Two-qubit blocks and circuits contracted as tensor networks, against dense state vectors."""

from __future__ import annotations

import itertools

import pytest
import torch

from tnml.exceptions import InvalidInputError
from tnml.tensor.circuit_mps import (
    apply_gates,
    circuit_amplitudes,
    circuit_state,
    sequential_schedule,
    sweep_gates,
)
from tnml.tensor.gates import BLOCKS, block_matrices, nearest_special_orthogonal
from tnml.tensor.mps import MPS, mps_overlap

PAIRS = [(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (2, 3), (0, 1), (4, 5), (1, 3), (5, 2), (1, 2)]


def dense_state(pairs, gates, n):
    """The circuit's state vector, gate by gate (independent of the sequential contraction)."""
    psi = torch.zeros([2] * n, dtype=gates.dtype)
    psi[(0,) * n] = 1
    for (a, b), g in zip(pairs, gates, strict=True):
        x = psi.movedim((a, b), (-2, -1))
        shape = x.shape
        psi = (x.reshape(-1, 4) @ g.T).reshape(shape).movedim((-2, -1), (a, b))
    return psi.reshape(-1)


def random_gates(n_gates, block, seed=0):
    g = torch.Generator().manual_seed(seed)
    params = torch.randn(n_gates, BLOCKS[block].n_params, generator=g, dtype=torch.float64)
    return block_matrices(params, block)


@pytest.mark.parametrize("block", ["so4", "u4"])
def test_blocks_are_in_their_group(block):
    gates = random_gates(20, block)
    eye = torch.eye(4, dtype=gates.dtype)
    torch.testing.assert_close(gates @ gates.mH, eye.expand(20, 4, 4))
    det = torch.linalg.det(gates)
    torch.testing.assert_close(det, torch.ones_like(det))
    assert gates.is_complex() == (block == "u4")
    zero = block_matrices(torch.zeros(3, BLOCKS[block].n_params, dtype=torch.float64), block)
    torch.testing.assert_close(zero, eye.expand(3, 4, 4))
    with pytest.raises(InvalidInputError, match="last dim"):
        block_matrices(torch.zeros(2, 5, dtype=torch.float64), block)
    with pytest.raises(InvalidInputError, match="block must be one of"):
        block_matrices(torch.zeros(2, 6), "cnot")


def test_nearest_special_orthogonal_maximises_the_trace():
    g = torch.Generator().manual_seed(1)
    env = torch.randn(4, 4, generator=g, dtype=torch.float64)
    best = nearest_special_orthogonal(env)
    assert float(torch.linalg.det(best)) == pytest.approx(1.0)
    value = float((best * env).sum())
    # no rotation among many random ones does better
    others = random_gates(500, "so4", seed=2)
    assert value >= float((others * env).sum(dim=(1, 2)).max()) - 1e-12


def test_schedule_keeps_time_order_on_shared_qubits():
    steps = sequential_schedule(PAIRS, 6)
    order = [g for step in steps for g in step]
    assert sorted(order) == list(range(len(PAIRS)))
    position = {g: i for i, g in enumerate(order)}
    for g, h in itertools.combinations(range(len(PAIRS)), 2):
        if set(PAIRS[g]) & set(PAIRS[h]):
            assert position[g] < position[h]


@pytest.mark.parametrize("block", ["so4", "u4"])
def test_state_and_amplitudes_equal_the_dense_circuit(block):
    gates = random_gates(len(PAIRS), block)
    psi = dense_state(PAIRS, gates, 6)
    mps = circuit_state(PAIRS, gates, 6)
    torch.testing.assert_close(mps.to_dense().reshape(-1), psi)
    assert mps.center == 0
    basis = torch.eye(2, dtype=torch.float64)[
        torch.tensor(list(itertools.product([0, 1], repeat=6)))
    ]
    phase, log_abs = circuit_amplitudes(basis, PAIRS, gates)
    torch.testing.assert_close(phase * log_abs.exp(), psi)
    target = MPS.random(6, 2, 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    phase, log_abs = circuit_amplitudes(target, PAIRS, gates)
    expected = (target.to_dense().reshape(-1).conj() * psi).sum()
    torch.testing.assert_close(phase[0] * log_abs[0].exp(), expected.to(phase.dtype))


def test_amplitudes_stay_finite_over_hundreds_of_sites_in_float32():
    n = 400
    pairs = [(i, i + 1) for i in range(n - 1)]
    gates = random_gates(n - 1, "so4").float()
    x = torch.rand(3, n)
    phi = torch.stack([torch.cos(torch.pi * x / 2), torch.sin(torch.pi * x / 2)], -1)
    _, log_abs = circuit_amplitudes(phi, pairs, gates)
    assert torch.isfinite(log_abs).all() and (log_abs < 0).all()
    _, log64 = circuit_amplitudes(phi.double(), pairs, gates.double())
    torch.testing.assert_close(log_abs.double(), log64, rtol=1e-4, atol=1e-3)


def test_gradient_of_the_fidelity_matches_finite_differences():
    target = MPS.random(5, 2, 4, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    pairs = [(i, i + 1) for i in range(4)] * 2
    params = torch.randn(len(pairs), 6, dtype=torch.float64, requires_grad=True)

    def log_fidelity(p):
        return 2 * circuit_amplitudes(target, pairs, block_matrices(p))[1][0]

    assert torch.autograd.gradcheck(log_fidelity, (params,))


def test_apply_gates_is_exact_without_a_cap_and_reports_what_a_cap_drops():
    n = 6
    pairs = [(i, i + 1) for i in range(n - 1)] + [(i + 1, i) for i in range(n - 1)]
    gates = random_gates(len(pairs), "so4")
    zero = MPS([torch.tensor([1.0, 0.0], dtype=torch.float64).reshape(1, 2, 1)] * n)
    out, dropped = apply_gates(zero, pairs, gates)
    torch.testing.assert_close(out.to_dense().reshape(-1), dense_state(pairs, gates, n))
    assert float(dropped) < 1e-20
    capped, dropped = apply_gates(zero, pairs, gates, max_bond=2)
    assert capped.max_bond_dim <= 2 and 0 < float(dropped) < 1
    fidelity = float(mps_overlap(out, capped)) ** 2 / float(capped.norm()) ** 2
    assert fidelity == pytest.approx(1 - float(dropped), abs=0.05)
    with pytest.raises(InvalidInputError, match="neighbouring"):
        apply_gates(zero, [(0, 2)], gates[:1])


def test_sweep_updates_never_lower_the_overlap():
    target = MPS.random(7, 2, 4, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    pairs = [(i, i + 1) for i in range(6)] * 2
    gates = random_gates(len(pairs), "so4", seed=7)

    def polar(env, gate):
        return nearest_special_orthogonal(env)

    _, before = circuit_amplitudes(target, pairs, gates)
    values = [float(before[0])]
    for _ in range(4):
        gates, log_abs = sweep_gates(target, pairs, gates, polar)
        values.append(float(log_abs))
        _, check = circuit_amplitudes(target, pairs, gates)
        assert float(check[0]) == pytest.approx(float(log_abs), abs=1e-10)
    assert all(b >= a - 1e-12 for a, b in itertools.pairwise(values))
    assert values[-1] > values[0]
    # the environment handed to the update is dO/dG up to a positive factor, signed by O
    trial = gates.clone().requires_grad_(True)
    phase, log_abs = circuit_amplitudes(target, pairs, trial)
    (grad,) = torch.autograd.grad(phase[0] * log_abs[0].exp(), trial)
    sign = float(torch.sign(phase[0].detach()))
    seen = []

    def record(env, gate):
        seen.append(env)
        return gate

    sweep_gates(target, pairs, gates, record)
    order = [g for step in sequential_schedule(pairs, 7) for g in step]
    for g, env in zip(order, seen, strict=True):
        cosine = float((env * grad[g]).sum() / (env.norm() * grad[g].norm()))
        assert cosine == pytest.approx(sign, abs=1e-9)


def test_bad_arguments_are_refused():
    gates = random_gates(2, "so4")
    with pytest.raises(InvalidInputError, match="pairs"):
        circuit_state([(0, 0), (1, 2)], gates, 3)
    with pytest.raises(InvalidInputError, match="gates must have shape"):
        circuit_state([(0, 1)], gates, 3)
    with pytest.raises(InvalidInputError, match="bra"):
        circuit_amplitudes(torch.zeros(2, 3), [(0, 1)], gates[:1])


def test_staircase_layers_between_two_states():
    from tnml.tensor.staircase import apply_layer, layer_environments, sweep_layer

    g = torch.Generator().manual_seed(10)
    bra = MPS.random(6, 2, 4, generator=g, dtype=torch.float64)
    ket = MPS.random(6, 2, 3, generator=g, dtype=torch.float64)
    gates = random_gates(5, "so4", seed=11)
    moved, dropped = apply_layer(ket, gates)
    assert float(dropped) < 1e-20
    pairs = [(i, i + 1) for i in range(5)]
    torch.testing.assert_close(
        moved.to_dense().reshape(-1),
        apply_gates(ket, pairs, gates)[0].to_dense().reshape(-1),
    )
    back, _ = apply_layer(moved, gates, inverse=True)
    torch.testing.assert_close(back.to_dense(), ket.to_dense())
    overlap, env = layer_environments(bra, gates, ket)
    torch.testing.assert_close(overlap, mps_overlap(bra, moved))
    for i in range(5):  # the overlap is linear in each gate: sum(G_i * E_i) = O
        torch.testing.assert_close((gates[i] * env[i]).sum(), overlap)
    values = [abs(float(overlap))]
    for _ in range(3):
        gates, overlap = sweep_layer(bra, gates, ket, lambda e, _: nearest_special_orthogonal(e))
        values.append(abs(float(overlap)))
    assert all(b >= a - 1e-12 for a, b in itertools.pairwise(values)) and values[-1] > values[0]
    with pytest.raises(InvalidInputError, match="staircase layer"):
        apply_layer(ket, gates[:3])
