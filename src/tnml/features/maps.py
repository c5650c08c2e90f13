"""Local feature maps ``x -> phi(x)`` that turn each input feature into a small vector.

A tensor-network model sees an input ``x = (x_1, ..., x_F)`` as the product state
``phi(x_1) (x) ... (x) phi(x_F)``; the functions here build the local vectors ``phi(x_j)``
for a whole batch at once. Every map takes a tensor of shape ``(..., F)`` and returns one of
shape ``(..., F, d)``; dtype and device follow the input.

* :func:`trig` -- ``[cos(pi x / 2), sin(pi x / 2)]``, the qubit encoding
  ``cos(pi x/2)|0> + sin(pi x/2)|1>`` (Stoudenmire & Schwab 2016), and its ``d``-level
  generalisation. Unit norm for every ``x``.
* :func:`linear` -- ``[1 - x, x]``.
* :func:`one_hot` -- indicator vectors for integer category codes.

Models call :func:`embed`, which checks the input once and dispatches by name through
:data:`FEATURE_MAPS`. :class:`FeatureMap` wraps :func:`embed` as a scikit-learn transformer.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from numbers import Integral

import numpy as np
import torch
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import Tensor

from tnml.exceptions import InvalidInputError

__all__ = [
    "FEATURE_MAPS",
    "FeatureMap",
    "embed",
    "get_feature_map",
    "linear",
    "one_hot",
    "trig",
]

# Values this far outside [0, 1] are taken as rounding noise (e.g. from a float32 min-max
# scaling) and clamped; anything further out is an error.
RANGE_TOLERANCE = 1e-6


def _check_dim(dim: object, *, minimum: int = 2) -> int:
    if isinstance(dim, bool) or not isinstance(dim, Integral) or dim < minimum:
        raise InvalidInputError(f"dim must be an integer >= {minimum}, got {dim!r}")
    return int(dim)


def _check_tensor(x: object, name: str = "X") -> Tensor:
    if not isinstance(x, Tensor):
        raise InvalidInputError(
            f"{name} must be a torch.Tensor of shape (..., n_features), got "
            f"{type(x).__name__}; convert with torch.as_tensor({name})"
        )
    if x.ndim == 0:
        raise InvalidInputError(
            f"{name} must have shape (..., n_features) with at least one axis, got a 0-d tensor"
        )
    return x


def trig(x: Tensor, dim: int = 2) -> Tensor:
    """Trigonometric feature map: the qubit encoding and its ``dim``-level generalisation.

    For ``dim=2``, ``phi(x) = [cos(pi x / 2), sin(pi x / 2)]``. For ``dim > 2``,

    ``phi_s(x) = sqrt(binom(dim - 1, s)) cos(pi x / 2)**(dim - 1 - s) sin(pi x / 2)**s``

    for ``s = 0, ..., dim - 1`` (Stoudenmire & Schwab 2016), which has unit norm for every
    ``x`` and reduces to the ``dim=2`` map.

    .. rubric:: Shape

    - Input: ``(*, F)``
    - Output: ``(*, F, dim)``

    Parameters
    ----------
    x : Tensor
        Feature values, expected in ``[0, 1]`` (not checked here; see :func:`embed`).
    dim : int, default=2
        Local dimension ``d`` of the output vectors, ``>= 2``.

    Returns
    -------
    Tensor
        The local feature vectors, same dtype and device as ``x``.

    Examples
    --------
    >>> import torch
    >>> trig(torch.tensor([[0.0, 0.5]]))
    tensor([[[1.0000, 0.0000],
             [0.7071, 0.7071]]])
    >>> trig(torch.rand(5, 3), dim=4).norm(dim=-1).allclose(torch.ones(5, 3))
    True
    """
    dim = _check_dim(dim)
    angle = (math.pi / 2) * x
    cos, sin = torch.cos(angle), torch.sin(angle)
    if dim == 2:
        return torch.stack((cos, sin), dim=-1)
    s = torch.arange(dim, dtype=x.dtype, device=x.device)
    coeff = torch.tensor(
        [math.sqrt(math.comb(dim - 1, k)) for k in range(dim)], dtype=x.dtype, device=x.device
    )
    # pow(0, 0) = 1, so x = 0 and x = 1 give exact basis vectors.
    return coeff * cos.unsqueeze(-1).pow(dim - 1 - s) * sin.unsqueeze(-1).pow(s)


def linear(x: Tensor, dim: int = 2) -> Tensor:
    """Linear feature map ``phi(x) = [1 - x, x]``.

    .. rubric:: Shape

    - Input: ``(*, F)``
    - Output: ``(*, F, 2)``

    Parameters
    ----------
    x : Tensor
        Feature values, expected in ``[0, 1]`` (not checked here; see :func:`embed`).
    dim : int, default=2
        Must be 2; the argument exists so every map has the same signature.

    Returns
    -------
    Tensor
        The local feature vectors, same dtype and device as ``x``.

    Examples
    --------
    >>> import torch
    >>> linear(torch.tensor([0.25]))
    tensor([[0.7500, 0.2500]])
    """
    if dim != 2:
        raise InvalidInputError(f"dim must be 2 for the 'linear' feature map, got {dim!r}")
    return torch.stack((1 - x, x), dim=-1)


def one_hot(x: Tensor, n_categories: int, *, dtype: torch.dtype | None = None) -> Tensor:
    """One-hot feature map for categorical features given as integer codes.

    .. rubric:: Shape

    - Input: ``(*, F)``
    - Output: ``(*, F, n_categories)``

    Parameters
    ----------
    x : Tensor
        Category codes in ``[0, n_categories)``. An integer tensor, or a floating tensor whose
        values are all whole numbers.
    n_categories : int
        Number of categories, the local dimension of the output, ``>= 1``.
    dtype : torch.dtype, optional
        Output dtype; default ``torch.get_default_dtype()``.

    Returns
    -------
    Tensor
        Indicator vectors on the device of ``x``.

    Examples
    --------
    >>> import torch
    >>> one_hot(torch.tensor([[0, 2]]), 3)
    tensor([[[1., 0., 0.],
             [0., 0., 1.]]])
    """
    n_categories = _check_dim(n_categories, minimum=1)
    x = _check_tensor(x)
    if x.is_floating_point():
        if not torch.isfinite(x).all() or not (x == x.round()).all():
            raise InvalidInputError(
                "X must hold integer category codes for one_hot; got non-integral or "
                "non-finite values"
            )
        x = x.long()
    elif x.dtype == torch.bool or x.is_complex():
        raise InvalidInputError(f"X must hold integer category codes for one_hot, got {x.dtype}")
    if x.numel() > 0:
        lo, hi = int(x.min()), int(x.max())
        if lo < 0 or hi >= n_categories:
            raise InvalidInputError(
                f"X holds category codes in [{lo}, {hi}]; with n_categories={n_categories} "
                f"codes must lie in [0, {n_categories - 1}]"
            )
    out_dtype = torch.get_default_dtype() if dtype is None else dtype
    return torch.nn.functional.one_hot(x.long(), n_categories).to(out_dtype)


FEATURE_MAPS: dict[str, Callable[..., Tensor]] = {"trig": trig, "linear": linear}
"""Feature maps for values in ``[0, 1]``, by name. Each is ``f(x, dim) -> phi``."""


def get_feature_map(name: str) -> Callable[..., Tensor]:
    """Return the feature map registered under ``name`` in :data:`FEATURE_MAPS`.

    Raises
    ------
    InvalidInputError
        If ``name`` is not a registered map; the message lists the valid names.
    """
    try:
        return FEATURE_MAPS[name]
    except (KeyError, TypeError):
        valid = ", ".join(repr(k) for k in FEATURE_MAPS)
        raise InvalidInputError(f"feature_map must be one of {valid}, got {name!r}") from None


def _first_index(mask: Tensor) -> tuple[int, ...]:
    return tuple(int(i) for i in torch.nonzero(mask)[0])


def _check_unit_range(x: Tensor, name: str) -> Tensor:
    if not x.is_floating_point():
        raise InvalidInputError(
            f"{name} must be a floating-point tensor, got {x.dtype}; convert with {name}.float()"
        )
    if x.numel() == 0:
        return x
    values = x.detach()
    finite = torch.isfinite(values)
    if not bool(finite.all()):
        bad = _first_index(~finite)
        kind = "NaN" if bool(torch.isnan(values[bad])) else "inf"
        raise InvalidInputError(
            f"{name} contains {kind} at index {bad}; clean or impute the data first"
        )
    lo, hi = (float(v) for v in torch.aminmax(values))
    if lo < -RANGE_TOLERANCE or hi > 1 + RANGE_TOLERANCE:
        raise InvalidInputError(
            f"{name} has values in [{lo:.6g}, {hi:.6g}] but values must lie in [0, 1]; "
            "scale the data first (e.g. tnml.data.scale_unit or sklearn's MinMaxScaler)"
        )
    return x.clamp(0.0, 1.0)


def embed(
    x: Tensor,
    feature_map: str | Callable[..., Tensor] = "trig",
    dim: int = 2,
    check: bool = True,
) -> Tensor:
    """Embed a batch of inputs as local feature vectors: the entry point models call.

    .. rubric:: Shape

    - Input: ``(*, F)``
    - Output: ``(*, F, dim)``

    Parameters
    ----------
    x : Tensor
        Floating-point feature values in ``[0, 1]``.
    feature_map : str or callable, default="trig"
        A name in :data:`FEATURE_MAPS` (``"trig"``, ``"linear"``) or a callable
        ``f(x, dim) -> Tensor`` with the same contract.
    dim : int, default=2
        Local dimension ``d`` of the output vectors.
    check : bool, default=True
        Check that ``x`` is finite and inside ``[0, 1]`` (values up to ``1e-6`` outside are
        clamped as rounding noise). Pass ``False`` in hot loops over data already checked.

    Returns
    -------
    Tensor
        The local feature vectors, same dtype and device as ``x``.

    Raises
    ------
    InvalidInputError
        If ``x`` is not a floating tensor, holds NaN or inf, or lies outside ``[0, 1]``;
        or if ``feature_map`` or ``dim`` is invalid.

    Examples
    --------
    >>> import torch
    >>> embed(torch.rand(32, 64)).shape
    torch.Size([32, 64, 2])
    """
    fmap = feature_map if callable(feature_map) else get_feature_map(feature_map)
    x = _check_tensor(x)
    if check:
        x = _check_unit_range(x, "X")
    return fmap(x, dim)


class FeatureMap(TransformerMixin, BaseEstimator):
    """Scikit-learn transformer that applies :func:`embed` to a 2D array.

    .. rubric:: Shape

    - Input: ``(n_samples, F)`` with values in ``[0, 1]``
    - Output: ``(n_samples, F, dim)``, a NumPy array of the input's float dtype

    Parameters
    ----------
    feature_map : {"trig", "linear"}, default="trig"
        Name of the local feature map.
    dim : int, default=2
        Local dimension ``d`` of the output vectors.

    Attributes
    ----------
    n_features_in_ : int
        Number of features seen in :meth:`fit`.

    Examples
    --------
    >>> import numpy as np
    >>> FeatureMap(dim=3).fit_transform(np.full((4, 5), 0.5)).shape
    (4, 5, 3)
    """

    def __init__(self, feature_map: str = "trig", dim: int = 2) -> None:
        self.feature_map = feature_map
        self.dim = dim

    def _check_params(self) -> None:
        get_feature_map(self.feature_map)
        _check_dim(self.dim)
        if self.feature_map == "linear" and self.dim != 2:
            raise InvalidInputError(f"dim must be 2 for the 'linear' feature map, got {self.dim!r}")

    def fit(self, X: np.ndarray, y: object = None) -> FeatureMap:
        """Check the parameters and record ``n_features_in_``; nothing is learned."""
        self._check_params()
        validate_data(self, X, ensure_all_finite=False, dtype=(np.float64, np.float32))
        return self

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Return ``embed(X, feature_map, dim)`` as a NumPy array of shape ``(n, F, dim)``."""
        check_is_fitted(self)
        X = validate_data(
            self, X, reset=False, ensure_all_finite=False, dtype=(np.float64, np.float32)
        )
        return embed(torch.from_numpy(np.ascontiguousarray(X)), self.feature_map, self.dim).numpy()
