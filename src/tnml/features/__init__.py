"""Local feature maps ``x -> phi(x)``: each feature in ``[0, 1]`` becomes a vector in R^d.

Pure torch functions (``(..., F) -> (..., F, d)``), a name registry, the :func:`embed` entry
point that models call, and a thin scikit-learn transformer.
"""

from __future__ import annotations

from tnml.features.maps import (
    FEATURE_MAPS,
    FeatureMap,
    embed,
    get_feature_map,
    linear,
    one_hot,
    trig,
)

__all__ = [
    "FEATURE_MAPS",
    "FeatureMap",
    "embed",
    "get_feature_map",
    "linear",
    "one_hot",
    "trig",
]
