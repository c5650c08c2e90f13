"""Tensor-network models: PyTorch modules and the scikit-learn estimators built on them."""

from tnml.models.anomaly import MPSAnomalyDetector
from tnml.models.born_machine import MPSBornMachine, TTNBornMachine
from tnml.models.born_module import MPSBornModule, TTNBornModule
from tnml.models.circuit_classifier import CircuitClassifier
from tnml.models.circuit_module import CircuitClassifierModule
from tnml.models.mps_classifier import MPSClassifier, compress_bonds
from tnml.models.mps_module import MPSClassifierModule, born_logits, normalized_logits
from tnml.models.ttn_classifier import TTNClassifier
from tnml.models.ttn_module import TTNClassifierModule

__all__ = [
    "CircuitClassifier",
    "CircuitClassifierModule",
    "MPSAnomalyDetector",
    "MPSBornMachine",
    "MPSBornModule",
    "MPSClassifier",
    "MPSClassifierModule",
    "TTNBornMachine",
    "TTNBornModule",
    "TTNClassifier",
    "TTNClassifierModule",
    "born_logits",
    "compress_bonds",
    "normalized_logits",
]
