"""Compile models into circuits of native gates for a device (``compile(..., gates="native")``).

* A Born machine (or a qubit MPS) becomes staircase layers of two-qubit blocks found by
  :func:`tnml.quantum.synthesis.synthesize_state`; ``layers`` fixes their number, or the
  largest number whose routed CX count fits ``max_two_qubit_gates`` is taken, or (neither
  given) layers are added until the fidelity reaches ``min_fidelity`` (at most
  ``MAX_DEFAULT_LAYERS``). Full width: one qubit per feature, measured at the end.
  Qubit-efficient: the circuit's sequential order keeps ``layers + 1`` qubits live; each
  feature's qubit is measured as soon as it is final, reset, and reused. With ``window``,
  brick layers in windows of that many qubits replace the staircase
  (:func:`tnml.quantum.window_pairs`); the qubit-efficient circuit then needs at
  most ``window`` qubits whatever the depth.
* A :class:`~tnml.CircuitClassifier` is its circuit (data rotations and blocks on a line).
* Unitary classifiers (``MPSClassifier``/``TTNClassifier(unitary=True)``) keep their gates;
  gates of three or more qubits are synthesised exactly (``O(4**k)`` CX each).

Every circuit is then placed and routed on ``target`` (:func:`tnml.quantum.routing.route`)
and synthesised into one-qubit gates and CX (:func:`tnml.quantum.native.decompose`), so its
``metadata["two_qubit_gates"]`` is the CX count a device runs.
"""

from __future__ import annotations

from typing import Any

import torch

from tnml.exceptions import InvalidInputError
from tnml.nn.circuit import CircuitClassifierModule
from tnml.quantum.circuit import Circuit, Gate, Measure, Operation, Reset, classifier_circuit
from tnml.quantum.native import decompose, two_qubit_count
from tnml.quantum.routing import route
from tnml.quantum.synthesis import (
    StateCircuit,
    min_window_layers,
    product_sites,
    synthesize_state,
    window_pairs,
)
from tnml.quantum.targets import DeviceTarget, resolve_target
from tnml.tensor.circuit_mps import sequential_schedule
from tnml.tensor.mps import MPS, mps_normalize

__all__ = [
    "MAX_DEFAULT_LAYERS",
    "born_layers_circuit",
    "circuit_classifier_circuit",
    "compile_born_native",
    "finish_native",
]

MAX_DEFAULT_LAYERS = 8


def born_layers_circuit(state: StateCircuit, schedule: str = "full") -> Circuit:
    """The logical circuit of a state circuit (staircase or windows), measuring ``"sample"``.

    Parameters
    ----------
    state : StateCircuit
    schedule : {"full", "efficient"}
        ``"full"``: qubit ``j`` holds feature ``j``, all measured at the end.
        ``"efficient"``: gates in the sequential order of
        :func:`~tnml.tensor.circuit_mps.sequential_schedule`; a feature's qubit is measured
        into bit ``j`` once final, then reset and reused (at most ``layers + 1`` qubits for
        staircases, ``window`` for windows).

    Returns
    -------
    Circuit
        Two-qubit gates named ``"block"``; no inputs.
    """
    n = state.n_sites
    pairs, gates = state.pairs, state.gates
    rotations = {j: state.product_rotation(j) for j in state.product}
    ops: list[Operation] = []
    if schedule == "full":
        ops += [Gate((j,), matrix=r, name="product") for j, r in rotations.items()]
        ops += [Gate(p, matrix=g, name="block") for p, g in zip(pairs, gates, strict=True)]
        ops += [Measure(j, "sample", j) for j in range(n)]
        num_qubits = n
    else:
        slot: dict[int, int] = {}
        free: list[int] = []
        count = 0

        def place(q: int) -> int:
            nonlocal count
            if q not in slot:
                if free:
                    slot[q] = free.pop(0)
                else:
                    slot[q], count = count, count + 1
            return slot[q]

        for t, step in enumerate(sequential_schedule(pairs, n)):
            for g in step:
                a, b = pairs[g]
                ops.append(Gate((place(a), place(b)), matrix=gates[g], name="block"))
            physical = place(t)
            if t in rotations:
                ops.append(Gate((physical,), matrix=rotations[t], name="product"))
            ops.append(Measure(physical, "sample", t))
            if t < n - 1:
                ops.append(Reset(physical))
                free.append(physical)
                free.sort()
                del slot[t]
        num_qubits = max(count, 1)
    metadata = {
        "model": "mps-born-machine",
        "schedule": schedule,
        "gates": "native",
        "layers": state.n_layers,
        "window": state.window,
        "block": state.block.name,
        "fidelity": state.fidelity,
        "product_sites": sorted(state.product),
    }
    return Circuit(num_qubits, ops, {"sample": n}, metadata=metadata)


def circuit_classifier_circuit(module: CircuitClassifierModule) -> Circuit:
    """The circuit of a :class:`CircuitClassifierModule`: data rotations, blocks, label.

    Data gates are ``RY(angle_scale * pi * x_j)``; the first ``n_label_qubits`` qubits are
    measured into register ``"label"`` (the first qubit is the most significant bit).
    """
    gates = module.gate_matrices(torch.float64).detach().cpu()
    ops: list[Operation] = []
    for kind, index, a, b in module.plan:
        if kind == "data":
            ops.append(Gate((a,), feature=index, name="ry", scale=module.angle_scale))
        else:
            ops.append(Gate((a, b), matrix=gates[index], name="block"))
    return classifier_circuit(
        module.n_qubits,
        ops,
        range(module.n_label_qubits),
        n_features=module.n_features,
        n_classes=module.n_classes,
        # its layout is the module's own (no schedule to choose), its blocks dense until
        # finish_native synthesises them
        metadata={"model": "circuit-classifier"},
    )


def finish_native(circuit: Circuit, target: DeviceTarget | None) -> Circuit:
    """Route ``circuit`` on ``target`` (when given) and synthesise it into native gates."""
    if target is not None:
        if any(isinstance(op, Gate) and len(op.qubits) > 2 for op in circuit.ops):
            circuit = decompose(circuit)
        circuit = route(circuit, target)
    native = decompose(circuit)
    return native.replaced(metadata={"depth": native.depth()})


def _check_budget(value: object) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInputError(
            f"max_two_qubit_gates must be an integer >= 1 (or None), got {value!r}"
        )
    return value


def compile_born_native(
    mps: MPS,
    schedule: str,
    *,
    layers: int | None,
    target: Any,
    max_two_qubit_gates: int | None,
    min_fidelity: float = 0.99,
    protocol: str = "iterative",
    block: str = "so4",
    max_iter: int = 200,
    product_threshold: float = 0.0,
    window: int | None = None,
    callback: Any = None,
) -> Circuit:
    """A native circuit preparing the Born machine ``mps`` (see the module docstring)."""
    budget = _check_budget(max_two_qubit_gates)
    n = mps.n_sites
    if layers is not None and (isinstance(layers, bool) or not isinstance(layers, int)):
        raise InvalidInputError(f"layers must be an integer >= 1 (or None), got {layers!r}")
    if layers is not None and layers < 1:
        raise InvalidInputError(f"layers must be an integer >= 1 (or None), got {layers!r}")
    if not 0.0 < min_fidelity <= 1.0:
        raise InvalidInputError(f"min_fidelity must lie in (0, 1], got {min_fidelity!r}")
    if window is not None and (
        isinstance(window, bool) or not isinstance(window, int) or window < 3
    ):
        raise InvalidInputError(f"window must be an integer >= 3 (or None), got {window!r}")
    if schedule == "full":
        width = n
    elif window is not None:
        width = min(n, window)
    else:
        width = min(n, (layers or MAX_DEFAULT_LAYERS) + 1)
    device = resolve_target(target, width)
    product, _, _ = product_sites(mps_normalize(mps), product_threshold)
    n_active = n - len(product)
    cx = 2 if block == "so4" else 3
    if window is None:
        first_layer = per_layer = cx * (n_active - 1)
        shape = f"one staircase layer of {n_active} qubits"
    else:
        span = min(window, n_active)
        # brick layers alternate between ceil and floor of (span - 1) / 2 blocks a window
        per_layer = cx * len(window_pairs(n_active, span, 2)) / 2
        fewest = min_window_layers(span)
        first_layer = cx * len(window_pairs(n_active, span, fewest))
        shape = f"{fewest} brick layer(s) in windows of {span} of {n_active} qubits"
        if layers is not None and layers < fewest:
            raise InvalidInputError(
                f"layers must be >= {fewest} for windows of {span} qubits (one brick layer of "
                f"an odd window leaves the last qubit without a gate), got {layers}"
            )
    if budget is not None and budget < first_layer and layers is None:
        raise InvalidInputError(
            f"max_two_qubit_gates={budget} is too small for {shape} ({first_layer} CX before "
            "routing)"
        )
    least = 1 if window is None else fewest
    most = layers or (max(least, int(budget // per_layer)) if budget else MAX_DEFAULT_LAYERS)
    state = synthesize_state(
        mps,
        most,
        protocol=protocol,
        block=block,
        max_iter=max_iter,
        target_fidelity=min_fidelity if (layers is None and budget is None) else None,
        product_threshold=product_threshold,
        window=window,
        callback=callback,
    )
    candidates = [state.stage(k) for k in range(least, state.n_layers + 1)]
    if layers is not None:
        candidates = candidates[-1:]
    chosen: Circuit | None = None
    for state in reversed(candidates):
        circuit = finish_native(born_layers_circuit(state, schedule), device)
        if budget is None or two_qubit_count(circuit) <= budget:
            chosen = circuit
            break
    if chosen is None:
        smallest = finish_native(born_layers_circuit(candidates[0], schedule), device)
        raise InvalidInputError(
            f"max_two_qubit_gates={budget} is too small: {len(candidates[0].layers)} layer(s) "
            f"need {two_qubit_count(smallest)} CX after routing"
        )
    return chosen
