"""Data augmentation for training on images: random small affine distortions, batched.

A training loop calls an augmentation on each mini-batch of flattened images, ``(B, H*W)``
floats in ``[0, 1]``, with its own ``torch.Generator``, and trains on what comes back; the
validation and test data are never touched. Shifting digits by a pixel or two is the classic
way to make a pixel-wise model (an MPS, an MLP) see that a digit moved is the same digit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from numbers import Integral, Real

import torch
import torch.nn.functional as F
from torch import Tensor

from tnml.exceptions import InvalidInputError

__all__ = ["Augment", "RandomAffine", "affine_images"]

#: ``augment(X_batch, generator) -> X_batch``: distorts a training mini-batch, drawing its
#: randomness from ``generator`` (e.g. :class:`RandomAffine`).
Augment = Callable[[Tensor, torch.Generator], Tensor]


def _check_image_shape(image_shape: object) -> tuple[int, int]:
    if (
        not isinstance(image_shape, Sequence)
        or len(image_shape) != 2
        or not all(isinstance(s, Integral) and not isinstance(s, bool) for s in image_shape)
        or min(image_shape) < 2
    ):
        raise InvalidInputError(
            f"image_shape must be (height, width), two integers >= 2, got {image_shape!r}"
        )
    return int(image_shape[0]), int(image_shape[1])


def affine_images(
    X: Tensor,
    image_shape: tuple[int, int],
    shifts: Tensor,
    angles: Tensor | None = None,
    scales: Tensor | None = None,
) -> Tensor:
    """Move, rotate and zoom flattened images, each by its own amount (bilinear, zero fill).

    Parameters
    ----------
    X : Tensor, shape (B, H*W)
        Row-major flattened images.
    image_shape : (H, W)
    shifts : Tensor, shape (B, 2)
        ``(down, right)`` displacement of each image's content, in pixels (any real value).
    angles : Tensor, shape (B,), optional
        Counter-clockwise rotation about the image centre, in degrees.
    scales : Tensor, shape (B,), optional
        Zoom factor (> 1 enlarges the content).

    Returns
    -------
    Tensor, shape (B, H*W)
        Pixels that come from outside the image are 0 (the MNIST background). An integer
        shift is an exact translation.
    """
    h, w = _check_image_shape(image_shape)
    if X.ndim != 2 or X.shape[1] != h * w:
        raise InvalidInputError(
            f"X must have shape (batch, {h * w}) for image_shape {(h, w)}, got {tuple(X.shape)}"
        )
    b = X.shape[0]
    if tuple(shifts.shape) != (b, 2):
        raise InvalidInputError(f"shifts must have shape ({b}, 2), got {tuple(shifts.shape)}")
    dtype, device = X.dtype, X.device
    shifts = shifts.to(device, dtype)
    radians = (
        torch.zeros(b, dtype=dtype, device=device)
        if angles is None
        else angles.to(device, dtype) * (math.pi / 180)
    )
    zoom = torch.ones(b, dtype=dtype, device=device) if scales is None else scales.to(device, dtype)
    # affine_grid maps each output pixel's normalised (x, y) in [-1, 1] to the input position it
    # reads: input = R(-angle) / zoom applied to (output - shift), in pixel units made
    # isotropic, since x and y are normalised by different widths.
    cos, sin = torch.cos(radians) / zoom, torch.sin(radians) / zoom
    sx, sy = 2 * shifts[:, 1] / w, 2 * shifts[:, 0] / h
    aspect = h / w
    theta = torch.empty(b, 2, 3, dtype=dtype, device=device)
    # the image's y axis points down, so a counter-clockwise rotation on screen is clockwise
    # in (x, y) with y down: the matrix below is that rotation's inverse
    theta[:, 0, 0] = cos
    theta[:, 0, 1] = -sin * aspect
    theta[:, 1, 0] = sin / aspect
    theta[:, 1, 1] = cos
    theta[:, 0, 2] = -(cos * sx - sin * aspect * sy)
    theta[:, 1, 2] = -(sin / aspect * sx + cos * sy)
    grid = F.affine_grid(theta, [b, 1, h, w], align_corners=False)
    images = X.reshape(b, 1, h, w)
    moved = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return moved.reshape(b, h * w)


class RandomAffine:
    """Random shift (and optionally rotation and zoom) of each image in a batch.

    Parameters
    ----------
    image_shape : (H, W)
        Shape of the images the flattened features come from (the features are row-major).
    max_shift : float, default=1.0
        Each image moves by a displacement drawn uniformly from ``[-max_shift, max_shift]``
        pixels, independently down and right (sub-pixel moves are bilinear).
    max_rotation : float, default=0.0
        Rotation drawn uniformly from ``[-max_rotation, max_rotation]`` degrees.
    max_scale : float, default=0.0
        Zoom drawn uniformly from ``[1 - max_scale, 1 + max_scale]``.

    Calling it, ``augment(X, generator)`` with ``X`` of shape (B, H*W), returns the distorted
    batch, same shape, dtype and device; the random numbers come from ``generator`` (a CPU
    ``torch.Generator``), so a seeded training run is reproducible and resumable.
    """

    def __init__(
        self,
        image_shape: tuple[int, int],
        max_shift: float = 1.0,
        max_rotation: float = 0.0,
        max_scale: float = 0.0,
    ) -> None:
        self.image_shape = _check_image_shape(image_shape)
        for name, value, upper in (
            ("max_shift", max_shift, min(self.image_shape)),
            ("max_rotation", max_rotation, 180.0),
            ("max_scale", max_scale, 1.0),
        ):
            if not isinstance(value, Real) or isinstance(value, bool) or not 0 <= value < upper:
                raise InvalidInputError(f"{name} must be a number in [0, {upper}), got {value!r}")
        self.max_shift = float(max_shift)
        self.max_rotation = float(max_rotation)
        self.max_scale = float(max_scale)

    def __repr__(self) -> str:
        return (
            f"RandomAffine(image_shape={self.image_shape}, max_shift={self.max_shift}, "
            f"max_rotation={self.max_rotation}, max_scale={self.max_scale})"
        )

    def check_features(self, n_features: int) -> None:
        """Raise when ``n_features`` is not ``H * W``."""
        h, w = self.image_shape
        if n_features != h * w:
            raise InvalidInputError(
                f"augment works on {h}x{w} images ({h * w} features) but the data have "
                f"{n_features} features"
            )

    def __call__(self, X: Tensor, generator: torch.Generator) -> Tensor:
        b = X.shape[0]

        def uniform(*shape: int, bound: float) -> Tensor:
            return (2 * torch.rand(*shape, generator=generator, dtype=torch.float64) - 1) * bound

        shifts = uniform(b, 2, bound=self.max_shift)
        angles = uniform(b, bound=self.max_rotation) if self.max_rotation else None
        scales = 1 + uniform(b, bound=self.max_scale) if self.max_scale else None
        return affine_images(X, self.image_shape, shifts, angles, scales)
