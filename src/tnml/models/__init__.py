"""Tensor-network models: PyTorch modules and the scikit-learn estimators built on them."""

from tnml.models.anomaly import MPSAnomalyDetector
from tnml.models.born_machine import MPSBornMachine
from tnml.models.born_module import MPSBornModule
from tnml.models.mps_classifier import MPSClassifier, compress_bonds
from tnml.models.mps_module import MPSClassifierModule, born_logits, normalized_logits

__all__ = [
    "MPSAnomalyDetector",
    "MPSBornMachine",
    "MPSBornModule",
    "MPSClassifier",
    "MPSClassifierModule",
    "born_logits",
    "compress_bonds",
    "normalized_logits",
]
