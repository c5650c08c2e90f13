"""Round-1 name of the model namespace, kept so that ``from tnml.models import X`` still works.

The modules now live in :mod:`tnml.nn` and the scikit-learn estimators in :mod:`tnml.estimators`;
new code imports from those. Nothing inside tnml imports this package.
"""

from tnml.estimators import (
    CircuitClassifier,
    MPSAnomalyDetector,
    MPSBornMachine,
    MPSClassifier,
    TTNBornMachine,
    TTNClassifier,
    compress_bonds,
)
from tnml.nn import (
    CircuitClassifierModule,
    MPSBornModule,
    MPSClassifierModule,
    TTNBornModule,
    TTNClassifierModule,
    born_logits,
    normalized_logits,
)

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
