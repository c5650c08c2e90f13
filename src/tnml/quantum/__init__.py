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
* :mod:`tnml.quantum.compile` -- :func:`compile`: a unitary classifier (``unitary=True``) or
  a Born machine as a circuit, full-width or qubit-efficient.
* :mod:`tnml.quantum.convert` -- :func:`to_unitary`: a trained MPS classifier made unitary,
  with a report of what it lost.
* :mod:`tnml.quantum.hardware` -- :func:`fit_circuit`: training from shot estimates only
  (SPSA, parameter shift).
* :mod:`tnml.quantum.evaluate` -- :func:`circuit_inputs`, :func:`circuit_accuracy`,
  :func:`noise_study`.
"""

from tnml.quantum.circuit import Circuit, Gate, Measure, Operation, Reset, ry_matrix
from tnml.quantum.compile import SCHEDULES, compile
from tnml.quantum.convert import ConversionReport, to_unitary
from tnml.quantum.evaluate import circuit_accuracy, circuit_inputs, noise_model, noise_study
from tnml.quantum.export import run_aer, to_qasm3, to_qiskit, transpile_report
from tnml.quantum.hardware import (
    CircuitParameters,
    HardwareFitResult,
    fit_circuit,
    parameter_shift_gradient,
)
from tnml.quantum.noise import NoiseModel
from tnml.quantum.simulate import register_probabilities, sample, simulate

__all__ = [
    "SCHEDULES",
    "Circuit",
    "CircuitParameters",
    "ConversionReport",
    "Gate",
    "HardwareFitResult",
    "Measure",
    "NoiseModel",
    "Operation",
    "Reset",
    "circuit_accuracy",
    "circuit_inputs",
    "compile",
    "fit_circuit",
    "noise_model",
    "noise_study",
    "parameter_shift_gradient",
    "register_probabilities",
    "run_aer",
    "ry_matrix",
    "sample",
    "simulate",
    "to_qasm3",
    "to_qiskit",
    "to_unitary",
    "transpile_report",
]
