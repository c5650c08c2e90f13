"""tnml: machine learning with tensor networks, from a classical computer onto a quantum circuit.

The estimators are exported here. The layers, each importing only those before it (see
docs/ARCHITECTURE.md): ``tnml.tensor`` (algebra), ``tnml.features`` (feature maps),
``tnml.data`` and ``tnml.preprocessing``, ``tnml.nn`` (torch modules), ``tnml.train`` (training
loop and update rules), ``tnml.estimators`` (scikit-learn faces), ``tnml.quantum``,
``tnml.explain``, ``tnml.compression`` (:func:`compress`) and ``tnml.structure``
(``tnml.structure.learn``), ``tnml.io`` and ``tnml.plot``,
``tnml.cli``. ``tnml.models`` is the round-1 name of ``nn`` + ``estimators``, kept as an alias.
"""

from tnml import compression, estimators, explain, io, models, nn, preprocessing, structure
from tnml._version import __version__
from tnml.compression import compress
from tnml.estimators import (
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
    "compress",
    "compression",
    "estimators",
    "explain",
    "io",
    "models",
    "nn",
    "preprocessing",
    "structure",
]
