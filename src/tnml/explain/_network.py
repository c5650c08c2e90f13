"""The one place that turns a model into the tensor network the explanations read.

Every function of :mod:`tnml.explain` calls :func:`as_network` first; supporting a new kind of
model (a tree tensor network, say) means adding a branch here and a matching branch in the
functions that dispatch on :class:`Network`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from tnml.exceptions import InvalidInputError
from tnml.models.mps_module import MPSClassifierModule
from tnml.tensor.mps import MPS

_ACCEPTED = (
    "a tnml.tensor.MPS, an object with a to_mps() method (e.g. an MPSClassifierModule), or a "
    "fitted estimator with to_mps(), mps_ or module_.to_mps() (e.g. tnml.MPSClassifier)"
)


@dataclass(frozen=True)
class Network:
    """A model's tensor network, as the explanations read it.

    Attributes
    ----------
    mps : MPS
        The state in float64 (complex128 for complex cores), a copy independent of the model.
    traced_dims : tuple of int or None
        For a classifier, the size of the label part of each site's physical index (``L`` at
        the output site, 1 elsewhere; see :mod:`tnml.tensor.rdm`); None when nothing is traced.
    label_site : int or None
        Site whose physical index carries the label (classifiers only).
    """

    mps: MPS
    traced_dims: tuple[int, ...] | None = None
    label_site: int | None = None


def _source(model: Any) -> Any:
    """The object whose ``to_mps()`` (or itself, if an MPS) gives the network."""
    if isinstance(model, MPS):
        return model
    if isinstance(model, BaseEstimator):
        check_is_fitted(model)
        if callable(getattr(model, "to_mps", None)):
            return model
        if isinstance(getattr(model, "mps_", None), MPS):
            return model.mps_
        module = getattr(model, "module_", None)
        if callable(getattr(module, "to_mps", None)):
            return module
        raise InvalidInputError(
            f"model must be {_ACCEPTED}; the fitted {type(model).__name__} has none of these"
        )
    if callable(getattr(model, "to_mps", None)):
        return model
    raise InvalidInputError(f"model must be {_ACCEPTED}, got {type(model).__name__}")


def as_network(model: Any) -> Network:
    """The float64 MPS of ``model`` and how to read its physical indices.

    Parameters
    ----------
    model : MPS, module, or fitted estimator
        See the accepted kinds in the error message; estimators are checked to be fitted.

    Returns
    -------
    Network
        For an :class:`~tnml.models.MPSClassifierModule` (or an estimator holding one) the
        MPS of :meth:`~tnml.models.MPSClassifierModule.to_mps`, whose output site carries the
        combined index ``s * L + l``, with ``traced_dims`` marking the label.
    """
    source = _source(model)
    mps = source if isinstance(source, MPS) else source.to_mps()
    if not isinstance(mps, MPS):
        raise InvalidInputError(
            f"{type(source).__name__}.to_mps() must return a tnml.tensor.MPS, "
            f"got {type(mps).__name__}"
        )
    dtype = torch.complex128 if mps.dtype.is_complex else torch.float64
    copy = MPS([core.detach().to(dtype) for core in mps.cores], mps.log_scale.detach())
    if isinstance(source, MPSClassifierModule):
        traced = [1] * copy.n_sites
        traced[source.output_site] = source.n_classes
        return Network(copy, tuple(traced), source.output_site)
    return Network(copy)
