"""The one place that turns a model into the tensor network the explanations read.

Every function of :mod:`tnml.explain` calls :func:`as_network` first and dispatches on the
:class:`Network` it returns: a chain (``net.mps``) goes to :mod:`tnml.tensor.rdm`, a tree
(``net.ttn``) to :mod:`tnml.tensor.ttn_rdm`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from tnml.exceptions import InvalidInputError
from tnml.nn.mps import MPSClassifierModule
from tnml.nn.ttn import TTNClassifierModule
from tnml.tensor.mps import MPS
from tnml.tensor.ttn import TTN

_ACCEPTED = (
    "a tnml.tensor.MPS or TTN, an object with a to_mps() or to_ttn() method (e.g. an "
    "MPSClassifierModule, a TTNBornModule), or a fitted estimator with to_mps(), to_ttn(), "
    "mps_ or module_.to_mps() / module_.to_ttn() (e.g. tnml.MPSClassifier, tnml.TTNClassifier)"
)


@dataclass(frozen=True)
class Network:
    """A model's tensor network, as the explanations read it: a chain or a tree.

    Attributes
    ----------
    mps : MPS or None
        A chain, in float64 (complex128 for complex cores), a copy independent of the model;
        None for a tree.
    traced_dims : tuple of int or None
        For an MPS classifier, the size of the label part of each site's physical index
        (``L`` at the output site, 1 elsewhere; see :mod:`tnml.tensor.rdm`); None when nothing
        is traced.
    label_site : int or None
        Site whose physical index carries the label (MPS classifiers only).
    ttn : TTN or None
        A tree, in float64 (complex128), a copy independent of the model (not flagged
        canonical, so it is re-canonicalised in double precision); None for a chain. A
        classifier's label is the root's output leg (``out_dim = L``), which the density
        matrices of :mod:`tnml.tensor.ttn_rdm` trace out.
    """

    mps: MPS | None = None
    traced_dims: tuple[int, ...] | None = None
    label_site: int | None = None
    ttn: TTN | None = None

    @property
    def is_tree(self) -> bool:
        """True for a tree tensor network (``ttn`` set)."""
        return self.ttn is not None

    @property
    def n_sites(self) -> int:
        """Number of sites (leaves of a tree)."""
        return self.ttn.n_leaves if self.ttn is not None else self.mps.n_sites  # type: ignore[union-attr]


def _has(obj: Any, method: str) -> bool:
    return callable(getattr(obj, method, None))


def _source(model: Any) -> Any:
    """The object whose ``to_mps()`` / ``to_ttn()`` (or itself, if an MPS or TTN) gives the
    network."""
    if isinstance(model, (MPS, TTN)):
        return model
    if isinstance(model, BaseEstimator):
        check_is_fitted(model)
        if _has(model, "to_mps") or _has(model, "to_ttn"):
            return model
        if isinstance(getattr(model, "mps_", None), MPS):
            return model.mps_
        module = getattr(model, "module_", None)
        if _has(module, "to_mps") or _has(module, "to_ttn"):
            return module
        raise InvalidInputError(
            f"model must be {_ACCEPTED}; the fitted {type(model).__name__} has none of these"
        )
    if _has(model, "to_mps") or _has(model, "to_ttn"):
        return model
    raise InvalidInputError(f"model must be {_ACCEPTED}, got {type(model).__name__}")


def _double(dtype: torch.dtype) -> torch.dtype:
    return torch.complex128 if dtype.is_complex else torch.float64


def _tree_network(source: Any, ttn: TTN) -> Network:
    dtype = _double(ttn.dtype)
    copy = TTN(
        ttn.layout,
        [[t.detach().to(dtype) for t in row] for row in ttn.tensors],
        ttn.log_scale.detach(),
    )
    if isinstance(source, TTNClassifierModule) and source.n_features == 1:
        # the tree's second leaf is a constant input e_0: project it out, leaving one site
        # whose physical index carries (feature s, label l) as s * L + l, like to_mps()
        root = copy.tensors[-1][0][:, 0, :]  # (d, L)
        core = root.reshape(1, -1, 1)
        return Network(MPS([core], copy.log_scale), (root.shape[1],), 0)
    return Network(ttn=copy)


def as_network(model: Any) -> Network:
    """The float64 chain or tree of ``model`` and how to read its physical indices.

    Parameters
    ----------
    model : MPS, TTN, module, or fitted estimator
        See the accepted kinds in the error message; estimators are checked to be fitted.
        ``to_mps()`` is preferred when an object has both methods.

    Returns
    -------
    Network
        For an :class:`~tnml.nn.MPSClassifierModule` (or an estimator holding one) the
        MPS of :meth:`~tnml.nn.MPSClassifierModule.to_mps`, whose output site carries the
        combined index ``s * L + l``, with ``traced_dims`` marking the label. For a tree
        (a :class:`~tnml.tensor.ttn.TTN`, a ``TTNBornMachine`` / ``TTNBornModule``, a
        ``TTNClassifier`` / ``TTNClassifierModule``) the TTN of ``to_ttn()`` in ``ttn``; the
        label of a classifier is the root's output leg. A one-feature
        :class:`~tnml.nn.TTNClassifierModule` (two leaves, the second always fed ``e_0``)
        becomes a one-site chain with the label traced, like an MPS classifier.
    """
    source = _source(model)
    if isinstance(source, TTN):
        return _tree_network(source, source)
    if not isinstance(source, MPS) and not _has(source, "to_mps"):
        ttn = source.to_ttn()
        if not isinstance(ttn, TTN):
            raise InvalidInputError(
                f"{type(source).__name__}.to_ttn() must return a tnml.tensor.TTN, "
                f"got {type(ttn).__name__}"
            )
        return _tree_network(source, ttn)
    mps = source if isinstance(source, MPS) else source.to_mps()
    if not isinstance(mps, MPS):
        raise InvalidInputError(
            f"{type(source).__name__}.to_mps() must return a tnml.tensor.MPS, "
            f"got {type(mps).__name__}"
        )
    dtype = _double(mps.dtype)
    copy = MPS([core.detach().to(dtype) for core in mps.cores], mps.log_scale.detach())
    if isinstance(source, MPSClassifierModule):
        traced = [1] * copy.n_sites
        traced[source.output_site] = source.n_classes
        return Network(copy, tuple(traced), source.output_site)
    return Network(copy)
