"""Tensor-network models: PyTorch modules and the scikit-learn estimators built on them."""

from tnml.models.mps_classifier import MPSClassifier, compress_bonds
from tnml.models.mps_module import MPSClassifierModule, born_logits, normalized_logits

__all__ = [
    "MPSClassifier",
    "MPSClassifierModule",
    "born_logits",
    "compress_bonds",
    "normalized_logits",
]
