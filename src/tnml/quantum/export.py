"""Export circuits to Qiskit and OpenQASM 3, and run them on Qiskit Aer as an independent check.

Qiskit and Qiskit Aer are optional (``pip install 'tnml[quantum]'``) and imported inside
the functions that need them.

Bit order: a :class:`~tnml.quantum.circuit.Gate` matrix is big-endian in ``gate.qubits``
while Qiskit's is little-endian in its qubit arguments, so gates are applied to
``reversed(gate.qubits)``. Registers have the same names, sizes, order and bit weights
(bit ``b`` weighs ``2**b``) in both.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from numpy.typing import ArrayLike
from torch import Tensor

from tnml._validation import check_int
from tnml.exceptions import InvalidInputError
from tnml.quantum.circuit import Circuit, Gate, Measure, Reset
from tnml.quantum.noise import NoiseModel
from tnml.quantum.simulate import apply_readout, feature_rows, valid_label_probabilities

if TYPE_CHECKING:
    import qiskit

__all__ = ["run_aer", "to_qasm3", "to_qiskit", "transpile_report"]

DEFAULT_BASIS = ("rz", "sx", "x", "cx")
# Qubit limits of the Aer methods run_aer picks with method="auto".
_DENSITY_MATRIX_MAX_QUBITS = 12
_STATEVECTOR_MAX_QUBITS = 24
_METHODS = ("auto", "density_matrix", "statevector", "matrix_product_state")


def _import_qiskit() -> Any:
    try:
        import qiskit
        import qiskit.qasm3  # a submodule: makes qiskit.qasm3 resolve
    except ImportError as err:
        raise ImportError("tnml.quantum.export needs qiskit: pip install 'tnml[quantum]'") from err
    return qiskit


def _import_aer() -> Any:
    try:
        import qiskit_aer
        import qiskit_aer.library
        import qiskit_aer.noise
    except ImportError as err:
        raise ImportError("run_aer needs qiskit: pip install 'tnml[quantum]'") from err
    return qiskit_aer


def _check_bound(circuit: Circuit) -> None:
    if not isinstance(circuit, Circuit):
        raise InvalidInputError(f"circuit must be a Circuit, got {type(circuit).__name__}")
    if not circuit.is_bound:
        raise InvalidInputError(
            "the circuit has unbound data gates; bind(x) first to export it for one input"
        )


def _physical_map(circuit: Circuit) -> tuple[int, list[int]]:
    """Device size and the physical qubit of each circuit qubit of a routed circuit."""
    meta = circuit.metadata
    if "physical_qubits" not in meta or "device_qubits" not in meta:
        raise InvalidInputError(
            "physical=True needs a routed circuit (compile with gates='native' and a target)"
        )
    return int(meta["device_qubits"]), [int(q) for q in meta["physical_qubits"]]


def _build(
    circuit: Circuit,
    *,
    measure: Callable[[Any, Measure], None] | None,
    after_gate: Callable[[Any, Gate], None] | None = None,
    physical: bool = False,
) -> qiskit.QuantumCircuit:
    """Translate a circuit; ``measure(qc, op)`` emits each Measure (None drops them).

    With ``physical``, qubit ``q`` of a routed circuit becomes the device's qubit
    ``metadata["physical_qubits"][q]`` in a register of the device's size.
    """
    qiskit = _import_qiskit()
    from qiskit.circuit.library import UnitaryGate

    if physical:
        size, where = _physical_map(circuit)
        circuit = _relabelled(circuit, where, size)
    qreg = qiskit.QuantumRegister(circuit.num_qubits, "q")
    cregs = [qiskit.ClassicalRegister(size, name) for name, size in circuit.registers.items()]
    qc = qiskit.QuantumCircuit(qreg, *cregs, name=str(circuit.metadata.get("name", "tnml")))
    # Unbound data gates become ry(pi * x[j]) with x a parameter vector (QASM 3 `input`s).
    inputs = None
    if not circuit.is_bound:
        inputs = qiskit.circuit.ParameterVector("x", circuit.n_features)
    for op in circuit.ops:
        if isinstance(op, Gate):
            if op.angle is not None:
                qc.ry(op.angle, op.qubits[0])
            elif op.feature is not None:
                qc.ry(op.scale * math.pi * inputs[op.feature], op.qubits[0])
            else:
                matrix = op.matrix.detach().numpy()
                qc.append(UnitaryGate(matrix, label=op.name), list(reversed(op.qubits)))
            if after_gate is not None:
                after_gate(qc, op)
        elif isinstance(op, Reset):
            qc.reset(op.qubit)
        elif measure is not None:
            measure(qc, op)
    return qc


def _plain_measure(qc: Any, op: Measure) -> None:
    qc.measure(op.qubit, qc.cregs[_register_index(qc, op.register)][op.bit])


def _register_index(qc: Any, name: str) -> int:
    return [creg.name for creg in qc.cregs].index(name)


def _relabelled(circuit: Circuit, where: list[int], size: int) -> Circuit:
    from tnml.quantum.routing import _relabel

    mapping = dict(enumerate(where))
    return circuit.replaced(ops=[_relabel(op, mapping) for op in circuit.ops], num_qubits=size)


def to_qiskit(
    circuit: Circuit, *, measure: bool = True, physical: bool = False
) -> qiskit.QuantumCircuit:
    """Translate a bound circuit to a ``qiskit.QuantumCircuit``.

    Parameters
    ----------
    circuit : Circuit
        A bound circuit (see :meth:`Circuit.bind`), or an unbound one: its data gates then
        read the parameter vector ``x`` as ``ry(scale * pi * x[j])`` (bind it with
        ``assign_parameters``; it exports to OpenQASM 3 as ``input`` values).
    measure : bool, default=True
        Emit the measurements; ``False`` drops them (e.g. to read exact probabilities).
    physical : bool, default=False
        For a circuit routed on a device (``compile(..., gates="native", target=...)``):
        use the device's qubit numbers (register of the device's size) instead of the
        circuit's compact ones, so the program runs as it is on that device.

    Returns
    -------
    qiskit.QuantumCircuit
        One quantum register ``q`` and one classical register per circuit register (same
        names, sizes and order). Bound data gates become ``ry``, other gates ``UnitaryGate``
        labelled with the gate name.

    Raises
    ------
    InvalidInputError
        If ``circuit`` is not a Circuit.
    ImportError
        If qiskit is not installed.
    """
    if not isinstance(circuit, Circuit):
        raise InvalidInputError(f"circuit must be a Circuit, got {type(circuit).__name__}")
    return _build(circuit, measure=_plain_measure if measure else None, physical=physical)


def _transpile(
    circuit: Circuit,
    basis_gates: Sequence[str],
    optimization_level: int,
    seed: int | None,
    physical: bool = False,
) -> Any:
    qiskit = _import_qiskit()
    from qiskit.transpiler.exceptions import TranspilerError

    if isinstance(basis_gates, str) or not all(isinstance(g, str) for g in basis_gates):
        raise InvalidInputError(
            f"basis_gates must be a sequence of gate names, got {basis_gates!r}"
        )
    if optimization_level not in (0, 1, 2, 3):
        raise InvalidInputError(
            f"optimization_level must be 0, 1, 2 or 3, got {optimization_level!r}"
        )
    try:
        return qiskit.transpile(
            to_qiskit(circuit, physical=physical),
            basis_gates=list(basis_gates),
            optimization_level=optimization_level,
            seed_transpiler=seed,
        )
    except (TranspilerError, ValueError) as err:  # unknown gate names raise ValueError
        raise InvalidInputError(
            f"cannot translate the circuit to basis_gates={list(basis_gates)}: {err}"
        ) from err


def to_qasm3(
    circuit: Circuit,
    *,
    basis_gates: Sequence[str] = DEFAULT_BASIS,
    optimization_level: int = 1,
    seed: int | None = 0,
    physical: bool = False,
) -> str:
    """OpenQASM 3 text of a circuit, transpiled to ``basis_gates``.

    An unbound circuit's inputs become ``input float[64] _x_j_`` declarations (Qiskit's name
    for its parameter ``x[j]``; angles ``scale * pi * x_j``), so one program serves every
    input. Register names that are OpenQASM keywords (``input``, ``measure``, ...) come out
    renamed by Qiskit's exporter (``input_0``).

    Arbitrary unitaries have no OpenQASM 3 spelling, so the circuit is first transpiled;
    mid-circuit measurements and resets are kept.

    Parameters
    ----------
    circuit : Circuit
        Bound or unbound.
    basis_gates : sequence of str, default=("rz", "sx", "x", "cx")
        Target gate set.
    optimization_level : int, default=1
        Qiskit transpiler optimisation level, 0 to 3.
    seed : int, optional
        Transpiler seed, for reproducible output.
    physical : bool, default=False
        Write the device's qubit numbers (see :func:`to_qiskit`). The transpiler is given no
        coupling map, so it never moves a gate to other qubits: a routed circuit's CX stay on
        the coupled pairs it was routed to.

    Returns
    -------
    str
        The program, starting with ``OPENQASM 3.0;``.
    """
    qiskit = _import_qiskit()
    transpiled = _transpile(circuit, basis_gates, optimization_level, seed, physical)
    return qiskit.qasm3.dumps(transpiled)


def transpile_report(
    circuit: Circuit,
    *,
    basis_gates: Sequence[str] = DEFAULT_BASIS,
    optimization_level: int = 1,
    seed: int | None = 0,
    physical: bool = False,
) -> dict[str, object]:
    """Size of the circuit once transpiled to ``basis_gates``.

    Parameters
    ----------
    circuit : Circuit
        Bound or not; an unbound circuit is bound with ``x = 0.5`` everywhere (gate counts do
        not depend on the angles).
    basis_gates, optimization_level, seed, physical
        As in :func:`to_qasm3`.

    Returns
    -------
    dict
        ``num_qubits``, ``depth``, ``size`` (instructions, measurements and resets included),
        ``counts`` (instruction name to number), ``two_qubit_gates``, ``two_qubit_pairs``
        (the distinct qubit pairs they act on) and ``basis_gates``.
    """
    if isinstance(circuit, Circuit) and not circuit.is_bound:
        circuit = circuit.bind(np.full(circuit.n_features, 0.5))
    _check_bound(circuit)
    transpiled = _transpile(circuit, basis_gates, optimization_level, seed, physical)
    pairs = [
        tuple(sorted(transpiled.find_bit(q).index for q in inst.qubits))
        for inst in transpiled.data
        if inst.operation.num_qubits >= 2 and inst.operation.name != "barrier"
    ]
    return {
        "num_qubits": transpiled.num_qubits,
        "depth": transpiled.depth(),
        "size": transpiled.size(),
        "counts": {str(k): int(v) for k, v in transpiled.count_ops().items()},
        "two_qubit_gates": len(pairs),
        "two_qubit_pairs": sorted(set(pairs)),
        "basis_gates": list(basis_gates),
    }


def _noise_hook(noise: NoiseModel | None) -> Callable[[Any, Gate], None] | None:
    """Append Aer's own error channels after each gate, in the order of :mod:`noise`."""
    if noise is None or not noise.has_gate_noise():
        return None
    errors = _import_aer().noise

    def hook(qc: Any, gate: Gate) -> None:
        k = len(gate.qubits)
        p = noise.depolarizing_1q if k == 1 else noise.depolarizing_2q
        if p:
            qc.append(errors.depolarizing_error(p, k), list(reversed(gate.qubits)))
        for strength, make in (
            (noise.amplitude_damping, errors.amplitude_damping_error),
            (noise.dephasing, errors.phase_damping_error),
        ):
            if strength:
                for q in gate.qubits:
                    qc.append(make(strength), [q])

    return hook


def _exact_measure_hook(label: str) -> Callable[[Any, Measure], None]:
    """Drop label measures; other measures become non-selective (complete dephasing)."""
    errors = _import_aer().noise

    def hook(qc: Any, op: Measure) -> None:
        if op.register != label:
            qc.append(errors.phase_damping_error(1.0), [op.qubit])

    return hook


def _label_qubits(circuit: Circuit) -> dict[int, int]:
    """Label bit to measured qubit; raise if a label qubit is used after its measurement."""
    label = circuit.label_register
    out: dict[int, int] = {}
    for t, op in enumerate(circuit.ops):
        if isinstance(op, Measure) and op.register == label:
            later = circuit.ops[t + 1 :]
            if any(op.qubit in (o.qubits if isinstance(o, Gate) else (o.qubit,)) for o in later):
                raise InvalidInputError(
                    f"run_aer with shots=None needs every {label!r} measurement to be the last "
                    f"operation on its qubit; qubit {op.qubit} is used again; pass shots="
                )
            out[op.bit] = op.qubit
    return out


def _auto_method(circuit: Circuit, noise: NoiseModel | None, exact: bool, method: str) -> str:
    if method not in _METHODS:
        raise InvalidInputError(f"method must be one of {list(_METHODS)}, got {method!r}")
    n = circuit.num_qubits
    gate_noise = noise is not None and noise.has_gate_noise()
    mixed = (
        gate_noise
        or any(isinstance(op, Reset) for op in circuit.ops)
        or any(
            isinstance(op, Measure) and op.register != circuit.label_register for op in circuit.ops
        )
    )
    if exact and mixed and method not in ("auto", "density_matrix"):
        raise InvalidInputError(
            f"exact probabilities of a circuit with resets, noise or mid-circuit measurements "
            f"need method='density_matrix' (Aer's {method} samples them); pass shots="
        )
    if method != "auto":
        return method
    if exact and mixed and n > _DENSITY_MATRIX_MAX_QUBITS:
        raise InvalidInputError(
            f"exact probabilities of a {n}-qubit circuit with resets, noise or mid-circuit "
            f"measurements need Aer's density_matrix method, used up to "
            f"{_DENSITY_MATRIX_MAX_QUBITS} qubits; pass method='density_matrix' or shots="
        )
    # Aer 0.18 statevector/MPS reject circuits mixing non-unitary errors with 3-qubit
    # depolarising errors ("Kraus is empty"), so noisy shot runs also use density_matrix.
    if (exact and mixed) or (gate_noise and n <= _DENSITY_MATRIX_MAX_QUBITS):
        return "density_matrix"
    return "statevector" if n <= _STATEVECTOR_MAX_QUBITS else "matrix_product_state"


def _exact_circuit(bound: Circuit, noise: NoiseModel | None, label_qubits: dict[int, int]) -> Any:
    """The circuit with label measures replaced by ``save_probabilities`` of label qubits."""
    aer = _import_aer()
    qc = _build(
        bound, measure=_exact_measure_hook(bound.label_register), after_gate=_noise_hook(noise)
    )
    if label_qubits:
        # Aer's first qubit is the least significant bit of the saved distribution.
        qubits = [label_qubits[b] for b in sorted(label_qubits)]
        qc.append(aer.library.SaveProbabilities(len(qubits), label="probs"), qubits)
    return qc


def _exact_vector(data: dict, label_qubits: dict[int, int], size: int) -> np.ndarray:
    """Register distribution from saved probabilities; unmeasured bits are 0."""
    out = np.zeros(2**size)
    if not label_qubits:
        out[0] = 1.0
        return out
    probs = np.asarray(data["probs"], dtype=np.float64)
    index = np.zeros(len(probs), dtype=np.int64)
    for i, bit in enumerate(sorted(label_qubits)):
        index |= ((np.arange(len(probs)) >> i) & 1) << bit
    np.add.at(out, index, probs)
    return out


def _count_vector(counts: dict[str, int], position: int, size: int) -> np.ndarray:
    """Counts of the register at ``position`` among the space-separated registers of a key."""
    out = np.zeros(2**size)
    for key, n in counts.items():
        out[int(key.split()[position], 2)] += n
    return out


def _readout_model(aer: Any, noise: NoiseModel | None) -> Any:
    if noise is None or not noise.has_readout_error():
        return None
    p01, p10 = noise.readout_probabilities
    model = aer.noise.NoiseModel()
    model.add_all_qubit_readout_error(aer.noise.ReadoutError([[1 - p01, p01], [p10, 1 - p10]]))
    return model


def run_aer(
    circuit: Circuit,
    X: ArrayLike | Tensor | None = None,
    *,
    noise: NoiseModel | None = None,
    shots: int | None = None,
    method: str = "auto",
    seed: int | None = None,
) -> Tensor:
    """Label probabilities computed by Qiskit Aer on the exported circuit.

    Each input is bound and exported as in :func:`to_qiskit`; gate noise is appended as
    Aer's ``depolarizing_error``, ``amplitude_damping_error`` and ``phase_damping_error``
    after every gate, and readout error is Aer's ``ReadoutError``. The renormalisation over
    valid labels is that of :func:`~tnml.quantum.simulate.simulate`.

    With ``shots=None`` the label measurements are replaced by Aer's ``save_probabilities``
    on the label qubits (each must not be used after its measurement), other measurements
    by complete dephasing, and readout error is applied to the result analytically. Aer's
    statevector and matrix-product-state methods sample resets, noise and measurements
    instead of averaging them, so such circuits run exactly only with ``density_matrix``.

    Parameters
    ----------
    circuit : Circuit
        A circuit with a label register, bound or not.
    X : array-like or Tensor, optional
        Inputs ``(n, n_features)`` or ``(n_features,)``; ``None`` without features.
    noise : NoiseModel, optional
        Gate noise and readout error.
    shots : int, optional
        Shots per input; ``None`` for exact probabilities.
    method : {"auto", "density_matrix", "statevector", "matrix_product_state"}
        Aer simulation method. ``"auto"`` uses ``density_matrix`` (up to 12 qubits) for
        gate noise, and for exact runs of circuits with resets or mid-circuit measurements
        (refused beyond 12 qubits); otherwise ``statevector`` up to 24 qubits and
        ``matrix_product_state`` beyond.
    seed : int, optional
        ``seed_simulator`` for shot runs.

    Returns
    -------
    Tensor
        Label probabilities ``(n, n_labels)``, float64.

    Raises
    ------
    InvalidInputError
        For bad arguments, or an exact run that Aer cannot do exactly.
    RuntimeError
        If Aer reports a failed simulation.
    """
    if not isinstance(circuit, Circuit):
        raise InvalidInputError(f"circuit must be a tnml Circuit, got {type(circuit).__name__}")
    aer = _import_aer()
    if circuit.label_register not in circuit.registers:
        raise InvalidInputError(f"run_aer needs the label register {circuit.label_register!r}")
    if not isinstance(noise, (NoiseModel, type(None))):
        raise InvalidInputError(f"noise must be a NoiseModel or None, got {type(noise).__name__}")
    exact = shots is None
    shots = 1 if exact else check_int("shots", shots, 1)
    method = _auto_method(circuit, noise, exact, method)
    rows = feature_rows(circuit, X).numpy()
    size = circuit.registers[circuit.label_register]
    label_qubits = _label_qubits(circuit) if exact else {}
    circuits = [
        _exact_circuit(circuit.bind(row), noise, label_qubits)
        if exact
        else _build(circuit.bind(row), measure=_plain_measure, after_gate=_noise_hook(noise))
        for row in rows
    ]
    readout = None if exact else _readout_model(aer, noise)
    simulator = aer.AerSimulator(method=method, noise_model=readout, seed_simulator=seed)
    result = simulator.run(circuits, shots=shots).result()
    if not result.success:
        raise RuntimeError(f"Qiskit Aer ({method}) failed: {result.status}")
    # Qiskit count keys list the registers last first.
    position = list(reversed(circuit.registers)).index(circuit.label_register)
    probs = np.stack(
        [
            _exact_vector(result.data(i), label_qubits, size)
            if exact
            else _count_vector(result.get_counts(i), position, size)
            for i in range(len(circuits))
        ]
    )
    probs_t = torch.as_tensor(probs, dtype=torch.float64)
    if exact:
        probs_t = apply_readout(probs_t, sorted(label_qubits), size, noise)
    return valid_label_probabilities(probs_t, circuit.n_labels or 2**size)
