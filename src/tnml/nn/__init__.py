"""PyTorch modules on :mod:`tnml.tensor`: MPS and tree classifiers, Born machines, unitary forms,
native-gate circuit classifiers, tensor-train (MPO) and low-rank linear layers. They compute;
they know nothing of training loops.
"""

from tnml.nn.born import MPSBornModule, TTNBornModule
from tnml.nn.circuit import CircuitClassifierModule
from tnml.nn.lowrank import LowRankLinear
from tnml.nn.mps import MPSClassifierModule, born_logits, normalized_logits
from tnml.nn.tt import TTLinear
from tnml.nn.tt_embedding import TTEmbedding
from tnml.nn.ttn import TTNClassifierModule
from tnml.nn.unitary import (
    UnitaryMPSBornModule,
    UnitaryMPSClassifierModule,
    UnitaryTTNClassifierModule,
)

__all__ = [
    "CircuitClassifierModule",
    "LowRankLinear",
    "MPSBornModule",
    "MPSClassifierModule",
    "TTEmbedding",
    "TTLinear",
    "TTNBornModule",
    "TTNClassifierModule",
    "UnitaryMPSBornModule",
    "UnitaryMPSClassifierModule",
    "UnitaryTTNClassifierModule",
    "born_logits",
    "normalized_logits",
]
