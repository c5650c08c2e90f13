"""Tensor-network algebra on ``torch.Tensor``: splits, MPS, canonical forms, contractions.

Pure functions of tensors (device and dtype come from the inputs); no models, no training.
"""

from tnml.tensor.contract import (
    CONTRACTION_PATHS,
    choose_path,
    contract_with_output,
    reduce_pairwise,
    reduce_sequential,
)
from tnml.tensor.decomp import (
    SPLIT_METHODS,
    SplitResult,
    register_split_method,
    split,
    split_tensor,
    truncation_rank,
)
from tnml.tensor.mps import (
    MPS,
    contract_product_states,
    mps_canonicalize,
    mps_entanglement_entropy,
    mps_from_dense,
    mps_log_norm,
    mps_log_overlap,
    mps_schmidt_values,
    mps_to_dense,
    mps_truncate,
    random_mps,
)

__all__ = [
    "CONTRACTION_PATHS",
    "MPS",
    "SPLIT_METHODS",
    "SplitResult",
    "choose_path",
    "contract_product_states",
    "contract_with_output",
    "mps_canonicalize",
    "mps_entanglement_entropy",
    "mps_from_dense",
    "mps_log_norm",
    "mps_log_overlap",
    "mps_schmidt_values",
    "mps_to_dense",
    "mps_truncate",
    "random_mps",
    "reduce_pairwise",
    "reduce_sequential",
    "register_split_method",
    "split",
    "split_tensor",
    "truncation_rank",
]
