"""Compression of trained networks: Linear layers replaced by tensor-train (MPO) or low-rank
(SVD) layers under one parameter budget, allocated from each layer's sensitivity and healed by
distillation against the original (:func:`compress`); saving and loading the result."""

from tnml.compression.api import CompressionReport, LayerReport, compress
from tnml.compression.heal import HealResult
from tnml.compression.store import load_compressed, save_compressed

__all__ = [
    "CompressionReport",
    "HealResult",
    "LayerReport",
    "compress",
    "load_compressed",
    "save_compressed",
]
