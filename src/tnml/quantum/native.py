"""Circuits in native gates: every gate a one-qubit unitary or a CX, as a device runs them.

:func:`decompose` rewrites each gate of a :class:`~tnml.quantum.circuit.Circuit`:

* a real two-qubit gate (every block tnml trains) goes through the magic basis ``M``
  (Vatan & Williams 2004): a rotation of determinant +1 is ``M^dagger (A (x) B) M``, two CX;
  one of determinant -1 is such a rotation times a CZ, three CX; a product of one-qubit
  gates needs none. No Qiskit needed;
* a complex two-qubit gate becomes Qiskit's KAK synthesis (at most 3 CX);
* a gate on ``k >= 3`` qubits becomes Qiskit's synthesis of the unitary (quantum Shannon
  decomposition, optimised at level 3): ``O(4**k)`` CX, the cost of the dense compile; where
  that misses 1e-10 (its optimisation A.1 can leave 1e-5 on a trained classifier's gate),
  the decomposition without A.1, a few more CX;
* consecutive one-qubit gates on a qubit are merged into one (``"u"``); data gates,
  measurements and resets are kept as they are.

Every synthesis is checked against its gate to 1e-10. The result is what noise should be
charged on (:class:`~tnml.quantum.noise.NoiseModel` acts after every gate) and what
:func:`two_qubit_count` counts.
"""

from __future__ import annotations

import inspect
import warnings
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from tnml.exceptions import InvalidInputError
from tnml.quantum.circuit import Circuit, Gate, Operation

__all__ = ["CX", "decompose", "gate_cx_cost", "two_qubit_count"]

CX = torch.tensor([[1.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]], dtype=torch.float64)
_CX_COMPLEX = CX.to(torch.complex128)
_IDENTITY_ATOL = 1e-12


def _import_qiskit() -> Any:
    try:
        import qiskit
        from qiskit.synthesis import TwoQubitBasisDecomposer  # noqa: F401
    except ImportError as err:
        raise ImportError(
            "native-gate synthesis needs qiskit: pip install 'tnml[quantum]'"
        ) from err
    return qiskit


@lru_cache(maxsize=1)
def _two_qubit_decomposer() -> Any:
    _import_qiskit()
    from qiskit.circuit.library import CXGate
    from qiskit.synthesis import TwoQubitBasisDecomposer

    return TwoQubitBasisDecomposer(CXGate(), euler_basis="U")


def gate_cx_cost(matrix: torch.Tensor) -> int:
    """CX count of tnml's synthesis of a two-qubit unitary (``(4, 4)``): 0 for a product of
    one-qubit gates, 2 for a real rotation of determinant +1, at most 3."""
    if matrix.shape != (4, 4):
        raise InvalidInputError(f"matrix must be (4, 4), got {tuple(matrix.shape)}")
    m = matrix.detach().cpu().to(torch.complex128).numpy()
    return _cx_in(_kak(m, (0, 1)))


def two_qubit_count(circuit: Circuit) -> int:
    """Number of gates acting on two or more qubits."""
    return sum(1 for op in circuit.ops if isinstance(op, Gate) and len(op.qubits) >= 2)


def _from_qiskit_ops(qc: Any, qubits: tuple[int, ...]) -> list[Gate]:
    """Gates of a Qiskit circuit on ``len(qubits)`` qubits; Qiskit qubit ``i`` is
    ``qubits[-1 - i]`` (Qiskit's matrices are little-endian, tnml's big-endian)."""
    from qiskit.quantum_info import Operator

    out = []
    for inst in qc.data:
        op = inst.operation
        where = tuple(qubits[len(qubits) - 1 - qc.find_bit(q).index] for q in inst.qubits)
        if op.name == "barrier":
            continue
        if op.name == "cx":
            out.append(Gate(where, matrix=CX, name="cx"))
        elif len(where) == 1:
            matrix = torch.as_tensor(Operator(op).data, dtype=torch.complex128)
            out.append(Gate(where, matrix=matrix, name="u"))
        else:
            raise InvalidInputError(f"unexpected gate {op.name!r} in a synthesised circuit")
    return out


def _synthesise(gate: Gate) -> list[Gate]:
    """Native gates for one non-data gate."""
    k = len(gate.qubits)
    matrix = gate.matrix.detach().cpu().to(torch.complex128).numpy()
    if k == 1:
        return [Gate(gate.qubits, matrix=gate.matrix, name="u")]
    if k == 2:
        return _kak(matrix, gate.qubits)
    # a Gate may be unitary to 1e-8 only, a synthesis is exact: synthesise (and check against)
    # the nearest unitary, its polar factor, which moves the gate by no more than that
    left, _, right = np.linalg.svd(matrix)
    matrix = left @ right
    qiskit = _import_qiskit()
    from qiskit.circuit.library import UnitaryGate

    wrapper = qiskit.QuantumCircuit(k)
    wrapper.append(UnitaryGate(matrix), list(range(k)))
    qc = qiskit.transpile(wrapper, basis_gates=["u", "cx"], optimization_level=3, seed_transpiler=0)
    gates = _from_qiskit_ops(qc, gate.qubits)
    errors = [_synthesis_error(gates, gate.qubits, matrix)]
    if errors[0] <= _SYNTHESIS_ATOL:
        return gates
    # the Shannon decomposition's optimisation A.1 (one CX fewer per level) can leave an error
    # of 2.5e-5 (a 4-qubit gate of a trained classifier): without it, exact, with more CX
    from qiskit.synthesis import qs_decomposition

    if "opt_a1" in inspect.signature(qs_decomposition).parameters:
        with warnings.catch_warnings():  # deprecated in Qiskit 2.5, and still honoured
            warnings.simplefilter("ignore", DeprecationWarning)
            exact = qs_decomposition(matrix, opt_a1=False)
        qc = qiskit.transpile(
            exact, basis_gates=["u", "cx"], optimization_level=1, seed_transpiler=0
        )
        gates = _from_qiskit_ops(qc, gate.qubits)
        errors.append(_synthesis_error(gates, gate.qubits, matrix))
        if errors[-1] <= _SYNTHESIS_ATOL:
            return gates
    raise RuntimeError(
        f"{k}-qubit synthesis of '{gate.name}' reached only {min(errors):.1e} accuracy "
        f"(wanted {_SYNTHESIS_ATOL:g})"
    )


def _unitary_of(gates: list[Gate], qubits: tuple[int, ...]) -> np.ndarray:
    """The ``(2^k, 2^k)`` unitary of ``gates`` on the ``k`` ``qubits``, big-endian."""
    dim = 2 ** len(qubits)
    u = np.eye(dim, dtype=complex).reshape(dim, *(2,) * len(qubits))
    for g in gates:
        m = g.matrix.detach().cpu().numpy().astype(complex)
        axes = tuple(1 + qubits.index(q) for q in g.qubits)
        x = np.moveaxis(u, axes, tuple(range(-len(axes), 0)))
        shape = x.shape
        x = (x.reshape(-1, m.shape[0]) @ m.T).reshape(shape)
        u = np.moveaxis(x, tuple(range(-len(axes), 0)), axes)
    return u.reshape(dim, dim).T


# Magic basis: M G M^dagger is a product A (x) B for every real rotation G of determinant +1.
_MAGIC = np.array([[1, 1j, 0, 0], [0, 0, 1j, 1], [0, 0, 1j, -1], [1, -1j, 0, 0]]) / np.sqrt(2)
_SYNTHESIS_ATOL = 1e-10


def _u3(theta: float, phi: float, lam: float) -> np.ndarray:
    """The one-qubit gate ``U(theta, phi, lambda)`` (OpenQASM 3 convention)."""
    c, s = np.cos(theta / 2), np.sin(theta / 2)
    return np.array(
        [[c, -np.exp(1j * lam) * s], [np.exp(1j * phi) * s, np.exp(1j * (phi + lam)) * c]]
    )


def _magic_gates(qubits: tuple[int, ...]) -> list[Gate]:
    """``M`` on ``(a, b)`` up to a global phase: one CX (control ``b``) between one-qubit gates."""
    a, b = qubits
    pi = np.pi
    return [
        Gate((b,), matrix=torch.as_tensor(_u3(pi / 2, -pi / 2, pi / 2)), name="u"),
        Gate((a,), matrix=torch.as_tensor(_u3(3 * pi / 4, pi / 2, -pi)), name="u"),
        Gate((b, a), matrix=CX, name="cx"),
        Gate((b,), matrix=torch.as_tensor(_u3(pi, -3 * pi / 4, -pi / 4)), name="u"),
        Gate((a,), matrix=torch.as_tensor(_u3(pi / 4, -pi / 2, -pi / 2)), name="u"),
    ]


def _inverse(gates: list[Gate]) -> list[Gate]:
    return [
        Gate(g.qubits, matrix=g.matrix.conj().transpose(0, 1).resolve_conj(), name=g.name)
        for g in gates[::-1]
    ]


def _cz_gates(qubits: tuple[int, ...]) -> list[Gate]:
    """CZ on ``(a, b)`` as H on ``b``, CX (control ``a``), H on ``b``."""
    h = torch.tensor([[1.0, 1.0], [1.0, -1.0]], dtype=torch.float64) / np.sqrt(2)
    a, b = qubits
    return [Gate((b,), matrix=h, name="u"), Gate((a, b), matrix=CX, name="cx"),
            Gate((b,), matrix=h, name="u")]  # fmt: skip


def _rotation_gates(rotation: np.ndarray, qubits: tuple[int, ...]) -> list[Gate]:
    """A real ``(4, 4)`` orthogonal gate: ``M^dagger (A (x) B) M`` (2 CX) for determinant
    +1, times a CZ (3 CX) for -1, or two one-qubit gates for a product."""
    if np.linalg.det(rotation) < 0:
        cz = np.diag([1.0, 1.0, 1.0, -1.0])
        return _cz_gates(qubits) + _rotation_gates(rotation @ cz, qubits)
    local = _operator_schmidt(rotation)
    if local[1] < 1e-12 * local[0]:
        return _split_local(Gate(qubits, matrix=torch.as_tensor(rotation), name="u"))
    product = _MAGIC @ rotation @ _MAGIC.conj().T
    into = _magic_gates(qubits)
    middle = _split_local(Gate(qubits, matrix=torch.as_tensor(product), name="u"))
    return into + middle + _inverse(into)


def _operator_schmidt(matrix: np.ndarray) -> np.ndarray:
    return np.linalg.svd(
        matrix.reshape(2, 2, 2, 2).transpose(0, 2, 1, 3).reshape(4, 4), compute_uv=False
    )


def _kak(matrix: np.ndarray, qubits: tuple[int, ...]) -> list[Gate]:
    """A two-qubit unitary in one-qubit gates and the fewest CX, exact to 1e-10.

    Real gates (every block tnml trains) are synthesised here without Qiskit:
    :func:`_rotation_gates`. Qiskit's KAK decomposer, which loses precision on some real
    rotations (errors near 1e-6 were seen on trained blocks), handles complex gates, and
    real ones it can do with a single CX.
    """
    real = np.abs(matrix.imag).max() < 1e-12
    candidates = []
    if real:
        candidates.append(_rotation_gates(matrix.real, qubits))
    try:
        decomposer = _two_qubit_decomposer()
    except ImportError:
        if not real:
            raise
        decomposer = None
    if decomposer is not None and (not real or decomposer.num_basis_gates(matrix) <= 1):
        candidates.append(_from_qiskit_ops(decomposer(matrix, approximate=False), qubits))
    errors = [_synthesis_error(gates, qubits, matrix) for gates in candidates]
    ranked = sorted(
        range(len(candidates)),
        key=lambda i: (errors[i] > _SYNTHESIS_ATOL, _cx_in(candidates[i]), errors[i]),
    )
    best = ranked[0]
    if errors[best] > _SYNTHESIS_ATOL:
        raise RuntimeError(
            f"two-qubit synthesis reached only {errors[best]:.1e} accuracy (wanted "
            f"{_SYNTHESIS_ATOL:g})"
        )
    return candidates[best]


def _cx_in(gates: list[Gate]) -> int:
    return sum(1 for g in gates if len(g.qubits) == 2)


def _synthesis_error(gates: list[Gate], qubits: tuple[int, ...], matrix: np.ndarray) -> float:
    u = _unitary_of(gates, tuple(qubits))
    overlap = np.vdot(u, matrix)
    if abs(overlap) < 1e-12:
        return float("inf")
    return float(np.abs(u * overlap / abs(overlap) - matrix).max())


def _split_local(gate: Gate) -> list[Gate]:
    """A product ``A (x) B`` on two qubits as two one-qubit gates."""
    m = gate.matrix.detach().cpu().numpy().reshape(2, 2, 2, 2).transpose(0, 2, 1, 3)
    u, s, vh = np.linalg.svd(m.reshape(4, 4))
    a = (u[:, 0] * np.sqrt(s[0])).reshape(2, 2)
    b = (vh[0] * np.sqrt(s[0])).reshape(2, 2)
    return [
        Gate((gate.qubits[0],), matrix=torch.as_tensor(a), name="u"),
        Gate((gate.qubits[1],), matrix=torch.as_tensor(b), name="u"),
    ]


def _merge_one_qubit(ops: list[Operation]) -> list[Operation]:
    """Multiply runs of consecutive non-data one-qubit gates on each qubit into one gate.

    Each product sits where its run began (nothing else touched the qubit in between), so
    a qubit's last operation stays where it was and simulators can discard it early.
    Identities (up to a global phase) are dropped.
    """
    slots: list[Operation | torch.Tensor | None] = []
    open_run: dict[int, int] = {}  # qubit -> slot of its current run of one-qubit gates
    for op in ops:
        if isinstance(op, Gate) and len(op.qubits) == 1 and not op.is_data:
            q = op.qubits[0]
            m = op.matrix.to(torch.complex128)
            if q in open_run:
                previous, _ = slots[open_run[q]]  # type: ignore[misc]
                slots[open_run[q]] = (m @ previous, q)  # type: ignore[call-overload]
            else:
                open_run[q] = len(slots)
                slots.append((m, q))  # type: ignore[arg-type]
            continue
        for q in op.qubits if isinstance(op, Gate) else (op.qubit,):
            open_run.pop(q, None)
        slots.append(op)
    out: list[Operation] = []
    for item in slots:
        if not isinstance(item, tuple):
            out.append(item)
            continue
        matrix, qubit = item
        if _is_identity(matrix):
            continue
        if float(matrix.imag.abs().max()) < 1e-14:
            matrix = matrix.real
        out.append(Gate((qubit,), matrix=matrix, name="u"))
    return out


def _is_identity(matrix: torch.Tensor) -> bool:
    """Whether a one-qubit unitary is the identity up to a global phase."""
    if float(matrix[0, 0].abs()) < 1e-9:
        return False
    phase = matrix[0, 0] / matrix[0, 0].abs()
    return float((matrix - phase * torch.eye(2, dtype=matrix.dtype)).abs().max()) <= _IDENTITY_ATOL


def decompose(circuit: Circuit) -> Circuit:
    """The circuit with every gate synthesised into one-qubit gates and CX.

    Parameters
    ----------
    circuit : Circuit
        Any circuit (bound or not).

    Returns
    -------
    Circuit
        Same qubits, registers, features and labels; gates are data gates, one-qubit gates
        named ``"u"`` and CX gates named ``"cx"``. ``metadata["native"]`` is True and
        ``metadata["two_qubit_gates"]`` the CX count.

    Raises
    ------
    InvalidInputError
        If ``circuit`` is not a Circuit.
    ImportError
        If Qiskit is missing and a gate needs synthesis.
    """
    if not isinstance(circuit, Circuit):
        raise InvalidInputError(f"circuit must be a Circuit, got {type(circuit).__name__}")
    ops: list[Operation] = []
    for op in circuit.ops:
        if isinstance(op, Gate) and not op.is_data:
            if op.name == "cx" and torch.equal(op.matrix.to(torch.complex128), _CX_COMPLEX):
                ops.append(op)
            else:
                ops.extend(_synthesise(op))
        else:
            ops.append(op)
    ops = _merge_one_qubit(ops)
    count = sum(1 for op in ops if isinstance(op, Gate) and len(op.qubits) >= 2)
    return circuit.replaced(ops=ops, metadata={"native": True, "two_qubit_gates": count})
