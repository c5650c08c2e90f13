"""Explanations of tensor-network models: read-only functions over fitted models.

- :func:`entanglement_entropy`: von Neumann and Renyi-2 entropy with the Schmidt spectrum at
  every bond of a chain or every edge of a tree (an :class:`EntropyProfile`).
- :func:`marginals`: single-feature marginal probabilities, shape (N, d).
- :func:`mutual_information`: ``I(i:j) = S_i + S_j - S_ij`` for all pairs, shape (N, N).
- :func:`feature_importance`: the change in a classifier's class probability when a feature
  is marginalised out, for every feature of every sample.

The first three accept a :class:`tnml.tensor.MPS` or :class:`~tnml.tensor.ttn.TTN`, a model
with ``to_mps()`` or ``to_ttn()`` (a Born machine, an :class:`~tnml.nn.MPSClassifierModule`
or :class:`~tnml.nn.TTNClassifierModule`) or a fitted estimator (``tnml.MPSClassifier``,
``tnml.TTNClassifier``, ``tnml.MPSBornMachine``, ``tnml.TTNBornMachine``); the algebra lives in
:mod:`tnml.tensor.rdm`, :mod:`tnml.tensor.ttn_rdm`, :mod:`tnml.tensor.mps` and
:mod:`tnml.tensor.ttn`. :func:`feature_importance` takes MPS classifiers. Figures of these
results are in :mod:`tnml.plot`.
"""

from tnml.explain.entropy import EntropyProfile, entanglement_entropy, tree_edges
from tnml.explain.importance import MARGINALIZATIONS, branch_amplitudes, feature_importance
from tnml.explain.information import marginals, mutual_information

__all__ = [
    "MARGINALIZATIONS",
    "EntropyProfile",
    "branch_amplitudes",
    "entanglement_entropy",
    "feature_importance",
    "marginals",
    "mutual_information",
    "tree_edges",
]
