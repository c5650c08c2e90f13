"""PyTorch modules on :mod:`tnml.tensor`: MPS and tree classifiers, Born machines, unitary forms,
native-gate circuit classifiers, and tensor-train (MPO) linear layers. They compute; they know
nothing of training loops.
"""

from tnml.nn.born import MPSBornModule, TTNBornModule
from tnml.nn.circuit import CircuitClassifierModule
from tnml.nn.mps import MPSClassifierModule, born_logits, normalized_logits
from tnml.nn.tt import TTLinear
from tnml.nn.ttn import TTNClassifierModule
from tnml.nn.unitary import (
    UnitaryMPSBornModule,
    UnitaryMPSClassifierModule,
    UnitaryTTNClassifierModule,
)

__all__ = [
    "CircuitClassifierModule",
    "MPSBornModule",
    "MPSClassifierModule",
    "TTLinear",
    "TTNBornModule",
    "TTNClassifierModule",
    "UnitaryMPSBornModule",
    "UnitaryMPSClassifierModule",
    "UnitaryTTNClassifierModule",
    "born_logits",
    "normalized_logits",
]
