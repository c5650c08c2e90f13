"""The scikit-learn faces of tnml (exported at the package top as ``tnml.MPSClassifier``, ...).

Each estimator validates its data, trains its :mod:`tnml.nn` module with :mod:`tnml.train` and
keeps the fitted module at ``.module_``.
"""

from tnml.estimators.anomaly import MPSAnomalyDetector
from tnml.estimators.born_machine import MPSBornMachine, TTNBornMachine
from tnml.estimators.circuit_classifier import CircuitClassifier
from tnml.estimators.mps_classifier import MPSClassifier, compress_bonds
from tnml.estimators.ttn_classifier import TTNClassifier

__all__ = [
    "CircuitClassifier",
    "MPSAnomalyDetector",
    "MPSBornMachine",
    "MPSClassifier",
    "TTNBornMachine",
    "TTNClassifier",
    "compress_bonds",
]
