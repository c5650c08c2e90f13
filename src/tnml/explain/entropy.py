"""Entanglement entropy and Schmidt spectrum at the bonds of a model's tensor network.

A chain (MPS) is described bond by bond; a tree (TTN) edge by edge, an edge being the bond
above a leaf or a tensor node (see :class:`EntropyProfile` for how tree edges are numbered).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import Tensor

from tnml.exceptions import InvalidInputError
from tnml.explain._network import as_network
from tnml.tensor.entropy import schmidt_entropy
from tnml.tensor.mps import mps_canonicalize, mps_schmidt_values
from tnml.tensor.ttn import TTN, NodeRef, ttn_canonicalize, ttn_schmidt_values

__all__ = ["EntropyProfile", "entanglement_entropy", "tree_edges"]


@dataclass(frozen=True)
class EntropyProfile:
    """Entanglement across the bonds of a tensor network (natural log).

    Each entry describes one bond, that is one bipartition of the sites: ``subsystems[k]``
    against the rest.

    - Chain (MPS): bond ``b`` joins sites ``b`` and ``b + 1`` and cuts the chain into sites
      ``0 .. b`` and ``b + 1 .. N - 1``. ``edges`` is None.
    - Tree (TTN): the bonds are the tree's edges, numbered bottom-up: edge ``e < N`` is the
      leg of leaf ``e``, then come the bonds above the tensor nodes ``(layer, k)`` in the
      order of :attr:`TreeLayout.nodes <tnml.tensor.ttn.TreeLayout.nodes>` (layer by layer),
      the root's output leg last and only when it carries a label (``out_dim > 1``). The
      bipartition is the leaves below the edge against the other leaves, the root's output
      leg (a classifier's label) on the side of the other leaves. ``edges[k]`` names the
      edge by the node below it: an int leaf or a ``(layer, k)`` tuple, as taken by
      :func:`tnml.tensor.ttn.ttn_schmidt_values`.

    Attributes
    ----------
    bonds : ndarray of int, shape (K,)
        The bonds described: MPS bond indices, or tree edge numbers (above).
    von_neumann : ndarray of float, shape (K,)
        ``-sum p log p`` with ``p = s^2`` the squared Schmidt values of the normalised state.
    renyi2 : ndarray of float, shape (K,)
        ``-log sum p^2``; never above ``von_neumann``.
    schmidt_values : list of K ndarrays
        The Schmidt spectrum at each bond (real, descending, ``sum s^2 = 1``).
    bond_dims : ndarray of int, shape (K,)
        Dimension of each bond (a leaf edge: its physical dimension); ``log(bond_dims)``
        bounds both entropies.
    edges : tuple of (int or (int, int)) or None
        Trees: the node below each edge (see above). None for a chain.
    subsystems : tuple of tuple of int or None
        The sites on one side of each cut: ``0 .. b`` for MPS bond ``b``; the leaves below
        the edge of a tree (in the tree's contraction order).
    """

    bonds: np.ndarray
    von_neumann: np.ndarray
    renyi2: np.ndarray
    schmidt_values: list[np.ndarray] = field(repr=False)
    bond_dims: np.ndarray
    edges: tuple[NodeRef, ...] | None = None
    subsystems: tuple[tuple[int, ...], ...] | None = field(default=None, repr=False)

    @property
    def max_entropy(self) -> np.ndarray:
        """``log(bond_dims)``, shape (K,): the largest entropy each bond can carry."""
        return np.log(self.bond_dims.astype(np.float64))


def entanglement_entropy(
    model: Any, bonds: int | tuple[int, int] | Sequence[Any] | None = None
) -> EntropyProfile:
    """Von Neumann and Renyi-2 entropy, with the Schmidt spectrum, at the bonds of a model.

    Parameters
    ----------
    model : MPS, TTN, module or fitted estimator
        A :class:`tnml.tensor.MPS` or :class:`~tnml.tensor.ttn.TTN`, a Born machine (anything
        with ``to_mps()``, ``to_ttn()`` or ``mps_``), or a fitted :class:`tnml.MPSClassifier`
        or :class:`tnml.TTNClassifier` (or its module). For an MPS classifier the state is
        its normalised weight MPS ``W`` with the label kept as part of the output site's
        physical index (:meth:`~tnml.nn.MPSClassifierModule.to_mps`): the entropy at bond
        ``b`` is that of the pure state ``W`` cut between sites ``b`` and ``b + 1``, the label
        travelling with the side that holds the output site. For a tree classifier the label
        is the root's output leg and stays with the side of the root (the leaves outside the
        edge); its own edge (all leaves against the label) is included.
    bonds : int, (int, int) or sequence of these, optional
        MPS: bonds in ``[0, N - 2]``. Tree: edge numbers in ``[0, K)`` (an int ``e < N`` is
        leaf ``e``'s leg) or tensor nodes ``(layer, k)``; for a tree a single tuple of two
        ints is one node, so pass several edge numbers as a list. Default all bonds / edges.

    Returns
    -------
    EntropyProfile
        Entropies use the natural log. MPS: cost ``O(N d D^3)`` for all bonds (the
        orthogonality centre is moved along the chain once). Tree: the tree is canonicalised
        once, then the centre is moved to each edge by QR along its path from the root,
        ``O(depth D^4)`` per edge (:func:`tnml.tensor.ttn.ttn_schmidt_values`).

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

    On a tree every leaf's leg and the bond above each node but the root:

    >>> from tnml.tensor.ttn import TTN, tree_layout_1d
    >>> tree = TTN.from_dense(psi, tree_layout_1d(3))
    >>> profile = entanglement_entropy(tree)
    >>> profile.edges, profile.von_neumann.round(4)
    ((0, 1, 2, (0, 0)), array([0.6931, 0.6931, 0.6931, 0.6931]))
    """
    net = as_network(model)
    if net.ttn is not None:
        return _tree_entropy(net.ttn, bonds)
    mps = net.mps
    assert mps is not None
    n = mps.n_sites
    if n < 2:
        raise InvalidInputError("model must have at least 2 sites to have a bond")
    if bonds is None:
        chosen = list(range(n - 1))
    else:
        raw = [bonds] if isinstance(bonds, (int, np.integer)) else list(bonds)  # type: ignore[arg-type]
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
    return _profile(
        chosen,
        values,
        [mps.bond_dims[b] for b in chosen],
        None,
        tuple(tuple(range(b + 1)) for b in chosen),
    )


def _profile(
    chosen: list[int],
    values: list[Tensor],
    dims: list[int],
    edges: tuple[NodeRef, ...] | None,
    subsystems: tuple[tuple[int, ...], ...],
) -> EntropyProfile:
    return EntropyProfile(
        bonds=np.asarray(chosen, dtype=np.int64),
        von_neumann=np.asarray([float(schmidt_entropy(s, "vn")) for s in values]),
        renyi2=np.asarray([float(schmidt_entropy(s, "renyi2")) for s in values]),
        schmidt_values=[s.detach().cpu().numpy() for s in values],
        bond_dims=np.asarray(dims, dtype=np.int64),
        edges=edges,
        subsystems=subsystems,
    )


def tree_edges(ttn: TTN) -> tuple[NodeRef, ...]:
    """The edges of a tree, bottom-up, each named by the node below it.

    Leaves ``0 .. N-1``, then the tensor nodes ``(layer, k)`` layer by layer without the
    root, then the root when its output leg carries a label (``out_dim > 1``).
    """
    layout = ttn.layout
    nodes: list[NodeRef] = [n for n in layout.nodes if n != layout.root]
    if ttn.out_dim > 1:
        nodes.append(layout.root)
    return (*range(layout.n_leaves), *nodes)


def _tree_entropy(ttn: TTN, bonds: Any) -> EntropyProfile:
    edges = tree_edges(ttn)
    number = {e: i for i, e in enumerate(edges)}
    last = len(edges) - 1

    def parse(b: Any) -> int:
        if isinstance(b, (int, np.integer)) and not isinstance(b, bool) and 0 <= b <= last:
            return int(b)
        if isinstance(b, (tuple, list)) and len(b) == 2:
            key = tuple(int(v) if isinstance(v, (int, np.integer)) else v for v in b)
            if key in number:
                return number[key]  # type: ignore[index]
        raise InvalidInputError(
            f"bonds must be tree edge numbers in [0, {last}] or tensor nodes (layer, k) of "
            f"the tree (layer sizes {ttn.layout.layer_sizes}"
            f"{'' if ttn.out_dim > 1 else ', the root excluded'}), got {b!r}"
        )

    if bonds is None:
        chosen = list(range(len(edges)))
    elif isinstance(bonds, (int, np.integer)) or (
        isinstance(bonds, tuple)
        and len(bonds) == 2
        and all(isinstance(v, (int, np.integer)) for v in bonds)
    ):
        chosen = [parse(bonds)]
    else:
        chosen = [parse(b) for b in bonds]
    if not chosen:
        raise InvalidInputError("bonds must name at least one bond")
    canon = ttn_canonicalize(ttn)
    if not bool(canon.tensors[-1][0].abs().sum() > 0):
        raise InvalidInputError("model must not be the zero state to have an entropy")
    spectra = {e: ttn_schmidt_values(canon, edges[e]) for e in sorted(set(chosen))}
    values = [spectra[e] for e in chosen]
    layout = ttn.layout
    dims = []
    for e in chosen:
        edge = edges[e]
        if isinstance(edge, int):
            dims.append(ttn.phys_dims[edge])
        else:
            dims.append(int(ttn.tensors[edge[0]][edge[1]].shape[2]))
    return _profile(
        chosen,
        values,
        dims,
        tuple(edges[e] for e in chosen),
        tuple(layout.leaves_below(edges[e]) for e in chosen),
    )
