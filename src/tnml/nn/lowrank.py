"""Low-rank linear layers: ``W = U V`` with ``U`` (out x r) and ``V`` (r x in), the plain
truncated-SVD baseline against which every tensor-train compression is measured."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from tnml._validation import check_int
from tnml.exceptions import InvalidInputError
from tnml.nn.factorized import FactorizedLinear

__all__ = ["LowRankLinear"]


class LowRankLinear(FactorizedLinear):
    """A linear layer ``y = (x V^T) U^T + b`` of rank ``rank``.

    Parameters
    ----------
    in_features, out_features : int
    rank : int
        Inner dimension ``r`` (capped at ``min(in_features, out_features)``).
    bias : bool, default=True
    device, dtype : optional

    Attributes
    ----------
    first : Tensor of shape (rank, in_features)
        ``V``, applied first.
    second : Tensor of shape (out_features, rank)
        ``U``.
    bias : Tensor of shape (out_features,) or None

    Notes
    -----
    Initialised so that the entries of ``U V`` have ``nn.Linear``'s variance ``1 / (3 in)``.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        rank: int,
        *,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        factory = {"device": device, "dtype": dtype or torch.get_default_dtype()}
        super().__init__(in_features, out_features)
        self.rank = min(check_int("rank", rank, 1), in_features, out_features)
        std = (3 * in_features * self.rank) ** -0.25  # Var(UV) = r std^4 = 1 / (3 in)
        self.first = nn.Parameter(torch.randn(self.rank, in_features, **factory) * std)
        self.second = nn.Parameter(torch.randn(out_features, self.rank, **factory) * std)
        self._init_bias(bias, factory)

    @classmethod
    def from_linear(
        cls, linear: nn.Linear, rank: int | None = None, cutoff: float = 0.0
    ) -> LowRankLinear:
        """The truncated SVD of ``linear.weight``: at most ``rank`` singular values above
        ``cutoff`` times the largest (None keeps all, reproducing ``linear``). The singular
        values are split evenly (``sqrt``) between the two factors. The bias is copied."""
        if not isinstance(linear, nn.Linear):
            raise InvalidInputError(
                f"linear must be a torch.nn.Linear, got {type(linear).__name__}"
            )
        if not 0.0 <= cutoff < 1.0:
            raise InvalidInputError(f"cutoff must be in [0, 1), got {cutoff!r}")
        weight = linear.weight.detach()
        u, s, vh = torch.linalg.svd(weight.double(), full_matrices=False)
        keep = int((s > cutoff * s[0]).sum()) if len(s) and s[0] > 0 else 1
        if rank is not None:
            keep = min(keep, check_int("rank", rank, 1))
        keep = max(keep, 1)
        root = s[:keep].sqrt()
        layer = cls(
            linear.in_features,
            linear.out_features,
            keep,
            bias=linear.bias is not None,
            device=weight.device,
            dtype=weight.dtype,
        )
        with torch.no_grad():
            layer.first.copy_(root[:, None] * vh[:keep])
            layer.second.copy_(u[:, :keep] * root)
            if linear.bias is not None:
                layer.bias.copy_(linear.bias)
        return layer

    def weight(self) -> Tensor:
        """The dense weight ``U V``, shape ``(out_features, in_features)`` (differentiable)."""
        return self.second @ self.first

    def flops(self, batch: int) -> int:
        """Multiply-adds of the forward for ``batch`` inputs."""
        return batch * self.rank * (self.in_features + self.out_features)

    def forward(self, x: Tensor) -> Tensor:
        """``(..., in_features)`` -> ``(..., out_features)``."""
        self._check_input(x)
        return nn.functional.linear(nn.functional.linear(x, self.first), self.second, self.bias)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"rank={self.rank}, bias={self.bias is not None}"
        )
