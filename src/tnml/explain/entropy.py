"""Entanglement entropy and Schmidt spectrum at the bonds of a model's tensor network."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tnml.exceptions import InvalidInputError
from tnml.explain._network import as_network
from tnml.tensor.mps import mps_canonicalize, mps_schmidt_values
from tnml.tensor.rdm import schmidt_entropy

__all__ = ["EntropyProfile", "entanglement_entropy"]


@dataclass(frozen=True)
class EntropyProfile:
    """Entanglement across the bonds of a tensor network (natural log).

    Attributes
    ----------
    bonds : ndarray of int, shape (K,)
        The bonds described; bond ``b`` of an MPS joins sites ``b`` and ``b + 1`` and cuts the
        chain into sites ``0 .. b`` and ``b + 1 .. N - 1``.
    von_neumann : ndarray of float, shape (K,)
        ``-sum p log p`` with ``p = s^2`` the squared Schmidt values of the normalised state.
    renyi2 : ndarray of float, shape (K,)
        ``-log sum p^2``; never above ``von_neumann``.
    schmidt_values : list of K ndarrays
        The Schmidt spectrum at each bond (real, descending, ``sum s^2 = 1``).
    bond_dims : ndarray of int, shape (K,)
        Dimension of each bond; ``log(bond_dims)`` bounds both entropies.
    """

    bonds: np.ndarray
    von_neumann: np.ndarray
    renyi2: np.ndarray
    schmidt_values: list[np.ndarray] = field(repr=False)
    bond_dims: np.ndarray

    @property
    def max_entropy(self) -> np.ndarray:
        """``log(bond_dims)``, shape (K,): the largest entropy each bond can carry."""
        return np.log(self.bond_dims.astype(np.float64))


def entanglement_entropy(model: Any, bonds: int | Sequence[int] | None = None) -> EntropyProfile:
    """Von Neumann and Renyi-2 entropy, with the Schmidt spectrum, at the bonds of a model.

    Parameters
    ----------
    model : MPS, module or fitted estimator
        A :class:`tnml.tensor.MPS`, a Born machine (anything with ``to_mps()`` or ``mps_``) or
        a fitted :class:`tnml.MPSClassifier` (or its module). For a classifier the state is
        its normalised weight MPS ``W`` with the label kept as part of the output site's
        physical index (:meth:`~tnml.models.MPSClassifierModule.to_mps`): the entropy at bond
        ``b`` is that of the pure state ``W`` cut between sites ``b`` and ``b + 1``, the label
        travelling with the side that holds the output site.
    bonds : int or sequence of int, optional
        Bonds to describe, each in ``[0, N - 2]``; default all ``N - 1`` of them.

    Returns
    -------
    EntropyProfile
        Entropies use the natural log. Cost ``O(N d D^3)`` for all bonds: the orthogonality
        centre is moved along the chain once (the bonds are visited in increasing order).

    Raises
    ------
    InvalidInputError
        A model of another kind, an unfitted estimator, a chain of one site, a bond out of
        range, or the zero state.

    Examples
    --------
    >>> import torch
    >>> from tnml.tensor import MPS
    >>> psi = torch.zeros(2, 2, 2, dtype=torch.float64)
    >>> psi[0, 0, 0] = psi[1, 1, 1] = 2 ** -0.5  # the GHZ state
    >>> profile = entanglement_entropy(MPS.from_dense(psi))
    >>> profile.von_neumann.round(4), profile.bond_dims
    (array([0.6931, 0.6931]), array([2, 2]))
    """
    net = as_network(model)
    mps = net.mps
    n = mps.n_sites
    if n < 2:
        raise InvalidInputError("model must have at least 2 sites to have a bond")
    if bonds is None:
        chosen = list(range(n - 1))
    else:
        raw = [bonds] if isinstance(bonds, (int, np.integer)) else list(bonds)
        chosen = []
        for b in raw:
            if isinstance(b, bool) or not isinstance(b, (int, np.integer)) or not 0 <= b <= n - 2:
                raise InvalidInputError(f"bonds must be ints in [0, {n - 2}], got {b!r}")
            chosen.append(int(b))
    if not chosen:
        raise InvalidInputError("bonds must name at least one bond")
    order = sorted(set(chosen))
    canon = mps_canonicalize(mps, order[0])
    spectra = {}
    for b in order:
        canon = mps_canonicalize(canon, b)  # sweeps only from the previous bond
        s = mps_schmidt_values(canon, b)
        if not bool(s.square().sum() > 0):
            raise InvalidInputError("model must not be the zero state to have an entropy")
        spectra[b] = s
    values = [spectra[b] for b in chosen]
    return EntropyProfile(
        bonds=np.asarray(chosen, dtype=np.int64),
        von_neumann=np.asarray([float(schmidt_entropy(s, "vn")) for s in values]),
        renyi2=np.asarray([float(schmidt_entropy(s, "renyi2")) for s in values]),
        schmidt_values=[s.detach().cpu().numpy() for s in values],
        bond_dims=np.asarray([mps.bond_dims[b] for b in chosen], dtype=np.int64),
    )
