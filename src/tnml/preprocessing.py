"""scikit-learn transformers for the preprocessing tensor-network models need.

The same steps ``tnml train`` applies, usable in a :class:`sklearn.pipeline.Pipeline`:

- :class:`ImageDownsampler` -- flattened ``(n, H*W)`` images to ``(n, h*w)`` block means
  (28x28 MNIST to 14x14, 196 sites);
- :class:`UnitScaler` -- min-max scaling to ``[0, 1]``, the range the trigonometric feature map
  needs (constant features to 0, unseen extremes clipped);
- :class:`Binarizer` -- ``[0, 1]`` intensities to the integer 0/1 levels a Born machine models.

Each is a thin face over the one implementation in :mod:`tnml.data` (``downsample``,
``scale_unit``).

Examples
--------
>>> from sklearn.pipeline import make_pipeline
>>> import tnml
>>> from tnml.preprocessing import ImageDownsampler, UnitScaler
>>> model = make_pipeline(ImageDownsampler(4, image_shape=(8, 8)), UnitScaler(),
...                       tnml.MPSClassifier(bond_dim=6, epochs=1))
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator, OneToOneFeatureMixin, TransformerMixin
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted, validate_data

from tnml.data import downsample, scale_unit
from tnml.exceptions import InvalidInputError

__all__ = ["Binarizer", "ImageDownsampler", "UnitScaler", "binarize"]


def _size_pair(value: object, name: str) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, Integral) else tuple(value)  # type: ignore[arg-type]
    if len(pair) != 2 or not all(isinstance(v, Integral) and v >= 1 for v in pair):
        raise InvalidInputError(
            f"{name} must be a positive int or a pair (height, width) of them, got {value!r}"
        )
    return int(pair[0]), int(pair[1])


class ImageDownsampler(TransformerMixin, BaseEstimator):
    """Shrink flattened images by averaging non-overlapping pixel blocks.

    Parameters
    ----------
    size : int or (int, int)
        Output height and width (an int means square); each must divide the input's.
    image_shape : (int, int), optional
        Height and width of the input images. Omitted, the ``n_features`` seen in ``fit``
        must be a square number (square images).

    Attributes
    ----------
    image_shape_ : (int, int)
        The input image shape used.
    n_features_in_ : int
        ``H * W``.

    Notes
    -----
    ``transform`` takes ``(n, H*W)`` (row-major flattened images, as ``load_digits`` and the
    CLI's CSV files hold them) or ``(n, H, W)`` and returns ``(n, h*w)``.
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "size": [Interval(Integral, 1, None, closed="left"), tuple, list],
        "image_shape": [tuple, list, None],
    }

    def __init__(
        self, size: int | tuple[int, int] = 14, *, image_shape: tuple[int, int] | None = None
    ) -> None:
        self.size = size
        self.image_shape = image_shape

    def fit(self, X: Any, y: Any = None) -> ImageDownsampler:
        """Record the image shape; ``X`` is ``(n, H*W)`` or ``(n, H, W)``."""
        self._validate_params()
        X = np.asarray(X) if np.ndim(X) == 3 else validate_data(self, X, reset=True)
        if X.ndim == 3:
            self.image_shape_ = (int(X.shape[1]), int(X.shape[2]))
            self.n_features_in_ = self.image_shape_[0] * self.image_shape_[1]
        elif self.image_shape is not None:
            self.image_shape_ = _size_pair(self.image_shape, "image_shape")
            if self.image_shape_[0] * self.image_shape_[1] != X.shape[1]:
                raise InvalidInputError(
                    f"image_shape={tuple(self.image_shape)} means {np.prod(self.image_shape_)} "
                    f"pixels; X has {X.shape[1]} columns"
                )
        else:
            side = math.isqrt(X.shape[1])
            if side * side != X.shape[1]:
                raise InvalidInputError(
                    f"X has {X.shape[1]} columns, not a square number; pass "
                    "image_shape=(height, width)"
                )
            self.image_shape_ = (side, side)
        self.size_ = _size_pair(self.size, "size")
        downsample(np.zeros((0, *self.image_shape_)), self.size_)  # checks that size divides
        return self

    def transform(self, X: Any) -> np.ndarray:
        """``(n, H*W)`` or ``(n, H, W)`` -> ``(n, h*w)`` block means (float)."""
        check_is_fitted(self)
        if np.ndim(X) == 3:
            images = np.asarray(X)
            if images.shape[1:] != self.image_shape_:
                raise InvalidInputError(
                    f"X holds {images.shape[1]}x{images.shape[2]} images; this downsampler "
                    f"was fitted on {self.image_shape_[0]}x{self.image_shape_[1]}"
                )
        else:
            flat = validate_data(self, X, reset=False)
            images = flat.reshape(len(flat), *self.image_shape_)
        small = downsample(images, self.size_)
        return small.reshape(len(small), -1)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """``pixel_r_c`` for each output pixel (row r, column c of the small image)."""
        check_is_fitted(self)
        h, w = self.size_
        return np.asarray([f"pixel_{r}_{c}" for r in range(h) for c in range(w)], dtype=object)


class UnitScaler(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """Min-max scale each feature to ``[0, 1]`` by its training range.

    Constant features map to 0; values outside the training range are clipped, so the output
    always suits the trigonometric feature map. This is the scaling the estimators apply with
    ``scaling="minmax"``.

    Attributes
    ----------
    data_min_, data_max_ : np.ndarray, shape (n_features,)
        The training range of each feature.
    """

    def fit(self, X: Any, y: Any = None) -> UnitScaler:
        """Record each feature's range; ``X`` is ``(n_samples, n_features)``, finite."""
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=True)
        names = getattr(self, "feature_names_in_", None)
        _, self.data_min_, self.data_max_ = scale_unit(X, feature_names=names)
        return self

    def transform(self, X: Any) -> np.ndarray:
        """``(n, n_features)`` -> the same shape in ``[0, 1]``."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False)
        return scale_unit(X, self.data_min_, self.data_max_)[0]


class Binarizer(OneToOneFeatureMixin, TransformerMixin, BaseEstimator):
    """``[0, 1]`` intensities to integer levels 0/1: 1 where ``X > threshold``.

    Born machines model discrete values; this is how ``tnml train --model mps-born`` turns
    images into binary pixels. Unlike scikit-learn's ``Binarizer`` it returns ``int64``, the
    dtype of levels.

    Parameters
    ----------
    threshold : float
        Values above it become 1.
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "threshold": [Interval(Real, None, None, closed="neither")],
    }

    def __init__(self, threshold: float = 0.5) -> None:
        self.threshold = threshold

    def fit(self, X: Any, y: Any = None) -> Binarizer:
        """Only checks ``X`` (``(n_samples, n_features)``); nothing is learned."""
        self._validate_params()
        validate_data(self, X, reset=True)
        return self

    def transform(self, X: Any) -> np.ndarray:
        """``(n, n_features)`` -> ``(n, n_features)`` int64 in {0, 1}."""
        check_is_fitted(self)
        X = validate_data(self, X, reset=False)
        return binarize(X, self.threshold)

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "n_features_in_")

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = []  # levels are integers whatever came in
        return tags


def binarize(X: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """``X > threshold`` as int64 0/1, same shape as ``X``."""
    return (np.asarray(X) > threshold).astype(np.int64)
