"""tnml: machine learning with tensor networks, from a classical computer onto a quantum circuit.

The estimators are exported here; the layers live in ``tnml.tensor`` (algebra),
``tnml.features`` (feature maps), ``tnml.data`` (datasets), ``tnml.models``, ``tnml.train``,
``tnml.io`` and ``tnml.cli``.
"""

from tnml import explain, io
from tnml._version import __version__
from tnml.models import (
    CircuitClassifier,
    MPSAnomalyDetector,
    MPSBornMachine,
    MPSClassifier,
    TTNBornMachine,
    TTNClassifier,
)

__all__ = [
    "CircuitClassifier",
    "MPSAnomalyDetector",
    "MPSBornMachine",
    "MPSClassifier",
    "TTNBornMachine",
    "TTNClassifier",
    "__version__",
    "explain",
    "io",
]
