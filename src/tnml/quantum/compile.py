"""Compile unitary tensor-network models into gate-level circuits.

Two schedules place the same gates on qubits (Huggins, Patel, Whaley & Stoudenmire 2019):

- ``"full"``: one qubit per input feature; a discarded qubit is left alone for the rest of
  the circuit. An MPS classifier also needs its ``V`` initial bond qubits (``N + V`` in all);
  a tree needs exactly ``N``.
- ``"efficient"``: a discarded qubit is reset and reused for the next input. An MPS of bond
  dimension ``2^V`` needs ``V + 1`` qubits whatever ``N``; a tree with ``V`` qubits per
  bond needs about ``V * (log2 N + 1)`` (its subtrees are evaluated depth first).

Classifier circuits measure the label into the register ``"label"`` (bit ``b`` is the
``b``-th least significant bit of the class index, as in Qiskit). Generative circuits (MPS and
tree Born machines) emit one measured qubit per feature into the register ``"sample"`` (bit
``j`` is feature ``j``).
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted
from torch import Tensor

from tnml.estimators.born_machine import MPSBornMachine, TTNBornMachine
from tnml.exceptions import InvalidInputError
from tnml.nn.circuit import CircuitClassifierModule
from tnml.nn.unitary import UnitaryMPSClassifierModule, UnitaryTTNClassifierModule
from tnml.quantum.circuit import Circuit, Gate, Measure, Operation, Reset, classifier_circuit
from tnml.tensor.mps import MPS, mps_right_canonicalize
from tnml.tensor.ttn import TTN, ttn_canonicalize
from tnml.tensor.unitary import complete_rows_at, nearest_orthonormal_rows

SCHEDULES = ("full", "efficient")


def _check_schedule(schedule: object) -> str:
    if schedule not in SCHEDULES:
        raise InvalidInputError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    return str(schedule)


class _Qubits:
    """Hands out physical qubits: fresh ones in the full schedule, reset ones reused in the
    efficient schedule."""

    def __init__(self, reuse: bool) -> None:
        self.reuse = reuse
        self.count = 0
        self.free: list[int] = []

    def take(self) -> int:
        if self.reuse and self.free:
            return self.free.pop(0)
        self.count += 1
        return self.count - 1

    def discard(self, qubit: int, ops: list[Operation]) -> None:
        if self.reuse:
            ops.append(Reset(qubit))
            self.free.append(qubit)
            self.free.sort()


def _classifier_circuit(
    module: UnitaryMPSClassifierModule | UnitaryTTNClassifierModule,
    final: list[int],
    qubits: _Qubits,
    ops: list[Operation],
    model: str,
    schedule: str,
) -> Circuit:
    """Measure the label on the first qubits of ``final`` and wrap ``ops`` in a Circuit."""
    return classifier_circuit(
        qubits.count,
        ops,
        final[: module.n_label_qubits],
        n_features=module.n_features,
        n_classes=module.n_classes,
        metadata={"model": model, "schedule": schedule, "n_bond_qubits": module.n_bond_qubits},
    )


def _gate_matrices(unitaries: Tensor) -> Tensor:
    """The gates in float64, made orthogonal to rounding (a float32 model's gates are
    orthogonal only to ~1e-7; the nearest orthogonal matrix moves them by as much)."""
    gates = unitaries.detach().to("cpu", torch.float64)
    return torch.stack(
        [nearest_orthonormal_rows(g) for g in gates.reshape(-1, *gates.shape[-2:])]
    ).reshape(gates.shape)


def compile_mps_classifier(module: UnitaryMPSClassifierModule, schedule: str = "full") -> Circuit:
    """The circuit of a unitary MPS classifier module (see the module docstring)."""
    schedule = _check_schedule(schedule)
    qubits = _Qubits(reuse=schedule == "efficient")
    gates = _gate_matrices(module.unitaries())
    bond = [qubits.take() for _ in range(module.n_bond_qubits)]
    ops: list[Operation] = []
    for site in range(module.n_features):
        data = qubits.take()
        ops.append(Gate((data,), feature=site, name="ry"))
        ops.append(Gate((*bond, data), gates[site], name=f"mps{site}"))
        discarded, bond = bond[0], [*bond[1:], data]
        if site < module.n_features - 1:
            qubits.discard(discarded, ops)
    return _classifier_circuit(module, bond, qubits, ops, "mps-classifier", schedule)


def compile_ttn_classifier(module: UnitaryTTNClassifierModule, schedule: str = "full") -> Circuit:
    """The circuit of a unitary tree classifier module (see the module docstring)."""
    schedule = _check_schedule(schedule)
    efficient = schedule == "efficient"
    qubits = _Qubits(reuse=efficient)
    gates = [[_gate_matrices(u) for u in row] for row in module.unitaries()]
    tree = module.tree
    if not efficient:
        qubits.count = tree.n_leaves  # feature i on qubit i
    ops: list[Operation] = []

    def emit(level: int, entry: int) -> list[int]:
        """Qubits holding entry ``entry`` of ``level`` after its subtree's gates."""
        if level == 0:
            qubit = qubits.take() if efficient else entry
            ops.append(Gate((qubit,), feature=entry, name="ry"))
            return [qubit]
        pairs = tree.pairs[level - 1]
        if entry >= len(pairs):  # carried up unchanged
            return emit(level - 1, tree.carried[level - 1][entry - len(pairs)])
        left = emit(level - 1, pairs[entry][0])
        right = emit(level - 1, pairs[entry][1])
        kept = module.gate_sizes[level - 1][entry][2]
        ops.append(Gate((*left, *right), gates[level - 1][entry], name=f"node{level - 1}_{entry}"))
        for qubit in (left + right)[kept:]:
            qubits.discard(qubit, ops)
        return (left + right)[:kept]

    root = emit(tree.depth, 0)
    return _classifier_circuit(module, root, qubits, ops, "ttn-classifier", schedule)


def born_gates(mps: MPS) -> tuple[list[Tensor], int]:
    """Sequential state-preparation gates of a qubit MPS (Schoen et al. 2005).

    The MPS is brought to right-canonical, normalised form (exact), every bond padded to
    ``D = 2^V``; gate ``i`` acts on (``V`` bond qubits, one fresh qubit in ``|0>``) and maps
    ``|l>|0>`` to ``sum_{s, r} B_i[l, s, r] |s>|r>``: its first qubit then holds feature
    ``i`` (measured), the other ``V`` the next bond.

    Parameters
    ----------
    mps : MPS
        Physical dimension 2 at every site.

    Returns
    -------
    gates : list of Tensor, each (2D, 2D), float64, orthogonal
    n_bond_qubits : int
    """
    if any(d != 2 for d in mps.phys_dims):
        raise InvalidInputError(
            f"a generative circuit emits one qubit per feature: every site needs 2 levels, "
            f"got physical dimensions {sorted(set(mps.phys_dims))}"
        )
    if mps.dtype.is_complex:
        raise InvalidInputError("complex MPS are not supported by the circuit compiler")
    if not all(bool(torch.isfinite(c).all()) for c in mps.cores):
        raise InvalidInputError("the MPS holds NaN or infinity: there is no state to prepare")
    canonical = mps_right_canonicalize(
        MPS([c.detach().to("cpu", torch.float64) for c in mps.cores])
    )
    cores = list(canonical.cores)
    norm = torch.linalg.vector_norm(cores[0])
    if not float(norm) > 0:
        raise InvalidInputError("the MPS is the zero vector: there is no state to prepare")
    cores[0] = cores[0] / norm
    n_bond = max(1, max(max(c.shape[0], c.shape[2]) for c in cores) - 1).bit_length()
    dim = 2**n_bond
    gates = []
    for core in cores:
        left, _, right = core.shape
        padded = torch.zeros(left, 2, dim, dtype=torch.float64)
        padded[:, :, :right] = core
        # Column (l, fresh = 0) of the gate is B[l, :, :] flattened over (s, r).
        rows = padded.reshape(left, 2 * dim)
        gate = complete_rows_at(rows, [2 * l for l in range(left)], 2 * dim).T.contiguous()
        gates.append(gate)
    return gates, n_bond


def compile_born_mps(mps: MPS, schedule: str = "full") -> Circuit:
    """A circuit whose measured register ``"sample"`` follows the Born machine ``|psi|^2``."""
    schedule = _check_schedule(schedule)
    gates, n_bond = born_gates(mps)
    qubits = _Qubits(reuse=schedule == "efficient")
    bond = [qubits.take() for _ in range(n_bond)]
    ops: list[Operation] = []
    n_sites = len(gates)
    for site, gate in enumerate(gates):
        fresh = qubits.take()
        ops.append(Gate((*bond, fresh), gate, name=f"born{site}"))
        emitted, bond = bond[0], [*bond[1:], fresh]
        ops.append(Measure(emitted, "sample", site))
        if site < n_sites - 1:
            qubits.discard(emitted, ops)
    return Circuit(
        qubits.count,
        ops,
        {"sample": n_sites},
        metadata={"model": "mps-born-machine", "schedule": schedule, "n_bond_qubits": n_bond},
    )


def _width(dim: int) -> int:
    """Qubits that hold a bond of dimension ``dim``."""
    return max(1, (dim - 1).bit_length())


def compile_born_ttn(ttn: TTN, schedule: str = "full") -> Circuit:
    """A circuit whose register ``"sample"`` follows the tree Born machine ``|psi|^2``.

    The tree is brought to canonical form towards the root (exact, normalised): the root
    tensor is a state of its children's bonds and every other node ``T[a, b, p]`` an isometry
    from its parent bond to its children. Read top-down, each node is a gate on the parent's
    qubits plus fresh ``|0>`` qubits mapping ``|p>|0>`` to ``sum_{a,b} T[a, b, p] |a>|b>``
    (left child's qubits first); every leaf's qubit is measured into bit ``j`` of
    ``"sample"``. Full-width: one qubit per feature. Efficient: subtrees are prepared depth
    first and measured leaf qubits are reset and reused (about ``V * log2 N`` qubits).
    """
    schedule = _check_schedule(schedule)
    canonical = ttn_canonicalize(
        TTN(
            ttn.layout,
            [[t.detach().to("cpu", torch.float64) for t in row] for row in ttn.tensors],
        )
    )
    layout = canonical.layout
    tensors = canonical.tensors
    leaf_dims = {
        tensors[layer][k].shape[side]
        for layer, row in enumerate(tensors)
        for k in range(len(row))
        for side, child in enumerate(layout.children((layer, k)))
        if isinstance(child, int)
    }
    if leaf_dims != {2}:
        raise InvalidInputError(
            "a generative circuit emits one qubit per feature: every leaf needs 2 levels, got "
            f"{sorted(leaf_dims)}"
        )
    qubits = _Qubits(reuse=schedule == "efficient")
    ops: list[Operation] = []

    def emit(ref: object, lines: list[int]) -> None:
        """Prepare the subtree below ``ref``, whose parent bond state sits on ``lines``."""
        if isinstance(ref, int):  # a leaf: its qubit holds the feature
            ops.append(Measure(lines[0], "sample", ref))
            qubits.discard(lines[0], ops)
            return
        layer, k = ref
        node = tensors[layer][k]
        da, db, dp = node.shape
        wa, wb = _width(da), _width(db)
        all_lines = [*lines, *(qubits.take() for _ in range(wa + wb - len(lines)))]
        padded = torch.zeros(2**wa, 2**wb, dp, dtype=torch.float64)
        padded[:da, :db] = node
        columns = padded.reshape(2 ** (wa + wb), dp).T  # orthonormal rows, one per p
        stride = 2 ** (wa + wb - len(lines))  # column (p, fresh qubits at 0) of the gate
        gate = complete_rows_at(
            columns, [p * stride for p in range(dp)], 2 ** (wa + wb)
        ).T.contiguous()
        ops.append(Gate(tuple(all_lines), gate, name=f"node{layer}_{k}"))
        left, right = layout.children(ref)
        emit(left, all_lines[:wa])
        emit(right, all_lines[wa:])

    emit(layout.root, [])
    return Circuit(
        qubits.count,
        ops,
        {"sample": layout.n_leaves},
        metadata={"model": "ttn-born-machine", "schedule": schedule},
    )


GATES = ("dense", "native")


def compile(
    model: Any,
    schedule: str = "full",
    *,
    gates: str = "dense",
    layers: int | None = None,
    target: Any = None,
    max_two_qubit_gates: int | None = None,
    min_fidelity: float = 0.99,
    protocol: str = "iterative",
    block: str = "so4",
    product_threshold: float = 0.0,
    window: int | None = None,
    callback: Any = None,
) -> Circuit:
    """Turn a fitted model into a gate-level :class:`~tnml.quantum.circuit.Circuit`.

    Parameters
    ----------
    model : fitted estimator or module
        ``tnml.MPSClassifier(unitary=True)`` / ``tnml.TTNClassifier(unitary=True)`` (or their
        modules), a fitted ``tnml.CircuitClassifier``, or a fitted ``tnml.MPSBornMachine`` /
        ``tnml.TTNBornMachine`` on binary data (or an MPS / TTN with physical dimension 2),
        whose exact canonical form is a state-preparation circuit.
    schedule : {"full", "efficient"}, default="full"
        One qubit per input (``"full"``) or qubits reset and reused (``"efficient"``).
    gates : {"dense", "native"}, default="dense"
        ``"dense"``: one gate per tensor (on ``log2 D + 1`` qubits for an MPS), exact.
        ``"native"``: one-qubit gates and CX only, placed and routed on ``target``
        (:mod:`tnml.quantum.compile_native`): a Born machine becomes staircase layers of
        two-qubit blocks that approximate it (``metadata["fidelity"]``), other models keep
        their gates, synthesised exactly.
    layers : int, optional
        ``gates="native"``, Born machines: number of staircase layers (default: the most
        that fit ``max_two_qubit_gates``, else as many as reach ``min_fidelity``, at most 8).
    target : str, DeviceTarget, Qiskit Target / backend / CouplingMap, or pairs, optional
        ``gates="native"``: the device (``"line"``, ``"heavy-hex"``, ``"all-to-all"``; see
        :func:`tnml.quantum.targets.resolve_target`). Every CX then acts on a coupled pair of
        its physical qubits (``metadata["physical_qubits"]``).
    max_two_qubit_gates : int, optional
        ``gates="native"``: largest CX count after routing. Born machines get the most layers
        that fit; other models must fit as they are.
    min_fidelity : float, default=0.99
        Born machines without ``layers`` or a budget: stop adding layers at this fidelity.
    protocol : {"iterative", "analytic", "optimized"}, default="iterative"
        Born machines: how the layers are found (:func:`tnml.quantum.synthesis.synthesize_state`).
    block : {"so4", "u4"}, default="so4"
        Born machines: two-qubit block kind (2 or 3 CX).
    product_threshold : float, default=0.0
        Born machines: features whose one-site state is pure to within this (the smaller
        eigenvalue of its density matrix) get a one-qubit rotation and no two-qubit gate, so
        each layer is shorter (``tnml.quantum.synthesis.product_sites``); the fidelity
        reported includes what they cost. 0 keeps every feature in the staircase.
    window : int, optional
        Born machines: brick layers in windows of this many qubits instead of staircase
        layers (``layers`` then counts brick layers per window; see
        :func:`tnml.quantum.synthesis.synthesize_state`; ``>= 3``, and at least two layers
        for an odd window). Deep circuits stay exactly optimised, and the qubit-efficient
        schedule needs at most ``window`` qubits.
    callback : callable, optional
        Born machines: called with a dict (``layers``, ``fidelity``, ...) after each layer.

    Returns
    -------
    Circuit
        Classifiers: data gates read feature ``j`` (scaled into [0, 1] as the estimator does),
        label in register ``"label"``. Born machines: no inputs, register ``"sample"``.
        Native circuits carry ``metadata["two_qubit_gates"]`` and ``["depth"]``.

    Raises
    ------
    InvalidInputError
        A model that is not a circuit (e.g. a non-unitary classifier: train it with
        ``unitary=True``, convert it with :func:`tnml.quantum.to_unitary`, or train a
        ``CircuitClassifier``), an unknown schedule, gate set or target, device options with
        ``gates="dense"``, an option of Born machines' native compiles (``layers``,
        ``min_fidelity``, ``protocol``, ``block``, ``product_threshold``, ``window``) given
        for any other compile, or a budget too small for the model.
    """
    from tnml.quantum import compile_native as native

    _check_schedule(schedule)
    if gates not in GATES:
        raise InvalidInputError(f"gates must be one of {GATES}, got {gates!r}")
    if gates == "dense":
        for name, value in (
            ("target", target),
            ("max_two_qubit_gates", max_two_qubit_gates),
        ):
            if value is not None:
                raise InvalidInputError(f"{name}= needs gates='native' (got gates='dense')")
    module = model
    if isinstance(model, BaseEstimator):
        check_is_fitted(model)
        if isinstance(model, MPSBornMachine):
            module = model.to_mps()
        elif isinstance(model, TTNBornMachine):
            module = model.to_ttn()
        else:
            module = getattr(model, "module_", None)
    if not (isinstance(module, MPS) and gates == "native"):
        # (a callback is a progress hook: with no layers to report it has nothing to do)
        given = {
            "layers": layers,
            "min_fidelity": min_fidelity,
            "protocol": protocol,
            "block": block,
            "product_threshold": product_threshold,
            "window": window,
        }
        defaults = inspect.signature(compile).parameters
        for name, value in given.items():
            default = defaults[name].default
            if value is not default and value != default:
                raise InvalidInputError(
                    f"{name}= applies to gates='native' compiles of MPS Born machines; it "
                    f"would be ignored here (gates={gates!r}, {type(model).__name__})"
                )
    if isinstance(module, MPS) and gates == "native":
        return native.compile_born_native(
            module,
            schedule,
            layers=layers,
            target=target,
            max_two_qubit_gates=max_two_qubit_gates,
            min_fidelity=min_fidelity,
            protocol=protocol,
            block=block,
            product_threshold=product_threshold,
            window=window,
            callback=callback,
        )
    if isinstance(module, TTN) and gates == "native":
        raise InvalidInputError(
            "gates='native' compiles MPS Born machines; a tree Born machine compiles with "
            "gates='dense' only"
        )
    circuit = _dense_circuit(module, schedule)
    if circuit is None:
        raise InvalidInputError(
            f"cannot compile {type(model).__name__}: expected a unitary classifier "
            "(MPSClassifier/TTNClassifier with unitary=True, or tnml.quantum.to_unitary of a "
            "fitted classifier), a fitted CircuitClassifier, a fitted MPSBornMachine or "
            "TTNBornMachine on binary data, or a qubit MPS or TTN"
        )
    if gates == "dense":
        return circuit
    device = native.resolve_target(target, circuit.num_qubits)
    compiled = native.finish_native(circuit, device)
    count = compiled.metadata["two_qubit_gates"]
    if max_two_qubit_gates is not None and count > native._check_budget(max_two_qubit_gates):
        raise InvalidInputError(
            f"max_two_qubit_gates={max_two_qubit_gates} is too small: this model's circuit "
            f"needs {count} CX after routing (a CircuitClassifier with fewer "
            "blocks_per_feature fits a smaller budget)"
        )
    return compiled


def _dense_circuit(module: Any, schedule: str) -> Circuit | None:
    """The model's own circuit (one gate per tensor or block), or None for other objects."""
    from tnml.quantum.compile_native import circuit_classifier_circuit

    if isinstance(module, UnitaryMPSClassifierModule):
        return compile_mps_classifier(module, schedule)
    if isinstance(module, UnitaryTTNClassifierModule):
        return compile_ttn_classifier(module, schedule)
    if isinstance(module, CircuitClassifierModule):
        return circuit_classifier_circuit(module)
    if isinstance(module, MPS):
        return compile_born_mps(module, schedule)
    if isinstance(module, TTN):
        return compile_born_ttn(module, schedule)
    return None
