"""Tensor-network classifiers and generators as gate-level quantum circuits.

* :mod:`tnml.quantum.circuit` -- :class:`Circuit` and its operations (:class:`Gate`,
  :class:`Measure`, :class:`Reset`), independent of how the circuit is run.
* :mod:`tnml.quantum.noise` -- :class:`NoiseModel`: depolarising, amplitude damping,
  dephasing and readout error, matching Qiskit Aer's standard errors.
* :mod:`tnml.quantum.simulate` -- exact batched simulation in torch (:func:`simulate`,
  :func:`register_probabilities`) and trajectory sampling (:func:`sample`), as products of
  small density-matrix factors, so wide circuits are cheap.
* :mod:`tnml.quantum.export` -- Qiskit and OpenQASM 3 export and a Qiskit Aer runner; needs
  the optional extra ``pip install 'tnml[quantum]'``.
* :mod:`tnml.quantum.compile` -- :func:`compile`: a unitary classifier (``unitary=True``), a
  ``CircuitClassifier`` or a Born machine as a circuit, full-width or qubit-efficient, with
  dense gates (one per tensor) or native ones (``gates="native"``: one-qubit gates and CX on
  a device, :mod:`tnml.quantum.compile_native`).
* :mod:`tnml.quantum.synthesis` -- :func:`synthesize_state`: an MPS as staircase layers of
  two-qubit blocks (Ran's analytic layers, iterative re-optimisation, deep sweeps).
* :mod:`tnml.quantum.native` -- :func:`decompose`: every gate as one-qubit gates and CX.
* :mod:`tnml.quantum.targets`, :mod:`tnml.quantum.routing` -- device coupling maps
  (:func:`resolve_target`: line, heavy-hex, Qiskit targets) and :func:`route`.
* :mod:`tnml.quantum.convert` -- :func:`to_unitary`: a trained MPS classifier made unitary,
  with a report of what it lost.
* :mod:`tnml.quantum.hardware` -- :func:`fit_circuit`: training from shot estimates only
  (SPSA, parameter shift).
* :mod:`tnml.quantum.evaluate` -- :func:`circuit_inputs`, :func:`circuit_accuracy`,
  :func:`noise_study`.
"""

from tnml.quantum.circuit import Circuit, Gate, Measure, Operation, Reset, ry_matrix
from tnml.quantum.compile import GATES, SCHEDULES, compile
from tnml.quantum.convert import ConversionReport, to_unitary
from tnml.quantum.evaluate import circuit_accuracy, circuit_inputs, noise_model, noise_study
from tnml.quantum.export import run_aer, to_qasm3, to_qiskit, transpile_report
from tnml.quantum.hardware import (
    CircuitParameters,
    HardwareFitResult,
    fit_circuit,
    parameter_shift_gradient,
)
from tnml.quantum.native import decompose, two_qubit_count
from tnml.quantum.noise import NoiseModel
from tnml.quantum.routing import route
from tnml.quantum.simulate import register_probabilities, sample, simulate
from tnml.quantum.synthesis import StateCircuit, synthesize_state, window_pairs
from tnml.quantum.targets import TARGET_NAMES, DeviceTarget, heavy_hex_target, resolve_target

__all__ = [
    "GATES",
    "SCHEDULES",
    "TARGET_NAMES",
    "Circuit",
    "CircuitParameters",
    "ConversionReport",
    "DeviceTarget",
    "Gate",
    "HardwareFitResult",
    "Measure",
    "NoiseModel",
    "Operation",
    "Reset",
    "StateCircuit",
    "circuit_accuracy",
    "circuit_inputs",
    "compile",
    "decompose",
    "fit_circuit",
    "heavy_hex_target",
    "noise_model",
    "noise_study",
    "parameter_shift_gradient",
    "register_probabilities",
    "resolve_target",
    "route",
    "run_aer",
    "ry_matrix",
    "sample",
    "simulate",
    "synthesize_state",
    "to_qasm3",
    "to_qiskit",
    "to_unitary",
    "transpile_report",
    "two_qubit_count",
    "window_pairs",
]
