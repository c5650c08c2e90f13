"""Tensor-network algebra on ``torch.Tensor``: splits, MPS, canonical forms, contractions.

Pure functions of tensors (device and dtype come from the inputs); no models, no training.
"""

from tnml.tensor.born import (
    check_indices,
    mps_log_amplitudes,
    mps_log_prob,
    mps_marginal_log_prob,
    mps_sample,
)
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
from tnml.tensor.rdm import (
    ENTROPY_KINDS,
    density_matrix_entropy,
    mps_mutual_information,
    mps_one_site_rdms,
    mps_pair_entropies,
    mps_two_site_rdms,
    probability_entropy,
    schmidt_entropy,
)

__all__ = [
    "CONTRACTION_PATHS",
    "ENTROPY_KINDS",
    "MPS",
    "SPLIT_METHODS",
    "SplitResult",
    "check_indices",
    "choose_path",
    "contract_product_states",
    "contract_with_output",
    "density_matrix_entropy",
    "mps_canonicalize",
    "mps_entanglement_entropy",
    "mps_from_dense",
    "mps_log_amplitudes",
    "mps_log_norm",
    "mps_log_overlap",
    "mps_log_prob",
    "mps_marginal_log_prob",
    "mps_mutual_information",
    "mps_one_site_rdms",
    "mps_pair_entropies",
    "mps_sample",
    "mps_schmidt_values",
    "mps_to_dense",
    "mps_truncate",
    "mps_two_site_rdms",
    "probability_entropy",
    "random_mps",
    "reduce_pairwise",
    "reduce_sequential",
    "register_split_method",
    "schmidt_entropy",
    "split",
    "split_tensor",
    "truncation_rank",
]
