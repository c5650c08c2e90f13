"""Single-feature marginals and mutual information between the features of a model."""

from __future__ import annotations

from typing import Any

import numpy as np

from tnml.explain._network import as_network
from tnml.tensor.rdm import mps_mutual_information, mps_one_site_rdms
from tnml.tensor.ttn_rdm import ttn_mutual_information, ttn_one_site_rdms

__all__ = ["marginals", "mutual_information"]


def marginals(model: Any) -> np.ndarray:
    """Single-feature marginal probabilities: the diagonals of the one-site density matrices.

    Parameters
    ----------
    model : MPS, TTN, module or fitted estimator
        A :class:`tnml.tensor.MPS` or :class:`~tnml.tensor.ttn.TTN`, or a Born machine
        (anything with ``to_mps()``, ``to_ttn()`` or ``mps_``, e.g. :class:`tnml.MPSBornMachine`,
        :class:`tnml.TTNBornMachine`): ``p(x_i = s)`` of the distribution ``|psi(x)|^2 / Z``
        over basis states, exact. A fitted :class:`tnml.MPSClassifier` or
        :class:`tnml.TTNClassifier` (or its module): the same for its normalised weight
        state ``W`` with the label traced out, i.e. of the mixture
        ``sum_l |W_l><W_l| / sum_l <W_l|W_l>`` (for a tree the label is the root's output
        leg).

    Returns
    -------
    ndarray of float64, shape (N, d)
        Row ``i`` is the distribution of site ``i`` over its ``d`` basis states (rows sum to
        one; with unequal physical dimensions the smaller sites are padded with zeros). Cost
        ``O(N d D^3)`` for a chain, ``O(N D^4)`` for a tree
        (:func:`tnml.tensor.ttn_rdm.ttn_one_site_rdms`).

    Examples
    --------
    >>> import torch
    >>> from tnml.tensor import MPS
    >>> psi = torch.zeros(2, 2, 2, dtype=torch.float64)
    >>> psi[0, 0, 0] = psi[1, 1, 1] = 2 ** -0.5  # the GHZ state
    >>> marginals(MPS.from_dense(psi))
    array([[0.5, 0.5],
           [0.5, 0.5],
           [0.5, 0.5]])
    """
    net = as_network(model)
    if net.ttn is not None:
        rho = ttn_one_site_rdms(net.ttn)
    else:
        rho = mps_one_site_rdms(net.mps, traced_dims=net.traced_dims)
    p = rho.diagonal(dim1=-2, dim2=-1).real.clamp_min(0)
    return p.cpu().numpy()


def mutual_information(model: Any, kind: str = "vn") -> np.ndarray:
    """Mutual information ``I(i:j) = S_i + S_j - S_ij`` between every pair of sites.

    ``S_i`` and ``S_ij`` are the entropies (natural log) of the one- and two-site reduced
    density matrices of the model's normalised state; for a classifier, of its weight state
    with the label traced out (as in :func:`marginals`).

    Parameters
    ----------
    model : MPS, module or fitted estimator
        See :func:`marginals`.
    kind : {"vn", "renyi2"}, default="vn"
        Von Neumann (``I >= 0``, at most ``2 log d``) or Renyi-2 entropies.

    Returns
    -------
    ndarray of float64, shape (N, N)
        Symmetric; the diagonal is 0 by convention (the usual choice in the literature).
        Computed by :func:`tnml.tensor.rdm.mps_mutual_information`, which carries the open
        environments of all left sites through the chain together: ``O(N^2 d^3 D^3)`` in
        ``O(N)`` batched steps, not ``N^2`` separate contractions. For a tree,
        :func:`tnml.tensor.ttn_rdm.ttn_mutual_information`: the pairs meet at their lowest
        common ancestor, where the open-leaf maps of its two subtrees are joined with the
        node's outside density, ``O(N log N d^2 D^4 + N^2 d^4 D^2)`` in ``N - 1`` batched
        steps.

    Examples
    --------
    >>> import torch
    >>> from tnml.tensor import MPS
    >>> psi = torch.zeros(2, 2, 2, dtype=torch.float64)
    >>> psi[0, 0, 0] = psi[1, 1, 1] = 2 ** -0.5  # GHZ: every pair shares log 2
    >>> mutual_information(MPS.from_dense(psi)).round(4)
    array([[0.    , 0.6931, 0.6931],
           [0.6931, 0.    , 0.6931],
           [0.6931, 0.6931, 0.    ]])
    """
    net = as_network(model)
    if net.ttn is not None:
        mi = ttn_mutual_information(net.ttn, kind)
    else:
        mi = mps_mutual_information(net.mps, kind, traced_dims=net.traced_dims)
    return mi.cpu().numpy()
