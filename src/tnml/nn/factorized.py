"""What every factorised replacement of ``nn.Linear`` shares: the dense layer it stands for
(``to_linear``), its parameter count and its input check."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from tnml._validation import check_int
from tnml.exceptions import InvalidInputError

__all__ = ["FactorizedLinear"]


class FactorizedLinear(nn.Module):
    """Base of :class:`~tnml.nn.TTLinear` and :class:`~tnml.nn.LowRankLinear`: holds
    ``in_features``, ``out_features`` and ``bias`` (Parameter or None, initialised as
    ``nn.Linear``'s, by ``_init_bias``); subclasses hold the factors and define ``weight()``,
    the dense ``(out_features, in_features)`` matrix they represent."""

    def __init__(self, in_features: int, out_features: int) -> None:
        super().__init__()
        self.in_features = check_int("in_features", in_features, 1)
        self.out_features = check_int("out_features", out_features, 1)

    def _init_bias(self, bias: bool, factory: dict) -> None:
        """The bias as ``nn.Linear`` initialises it (drawn after the factors)."""
        if bias:
            bound = 1 / math.sqrt(self.in_features)
            self.bias = nn.Parameter(
                torch.empty(self.out_features, **factory).uniform_(-bound, bound)
            )
        else:
            self.register_parameter("bias", None)

    def weight(self) -> Tensor:
        raise NotImplementedError

    def to_linear(self) -> nn.Linear:
        """An ``nn.Linear`` with the dense weight (and bias) of this layer."""
        p = next(self.parameters())
        linear = nn.Linear(
            self.in_features,
            self.out_features,
            bias=self.bias is not None,
            device=p.device,
            dtype=p.dtype,
        )
        with torch.no_grad():
            linear.weight.copy_(self.weight())
            if self.bias is not None:
                linear.bias.copy_(self.bias)
        return linear

    def parameter_count(self) -> int:
        """Parameters of the factors (and the bias)."""
        return sum(p.numel() for p in self.parameters())

    def _check_input(self, x: Tensor) -> None:
        if x.shape[-1] != self.in_features:
            raise InvalidInputError(
                f"{type(self).__name__} expects inputs with {self.in_features} features, got "
                f"shape {tuple(x.shape)}"
            )
