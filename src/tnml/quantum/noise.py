"""Gate and readout noise, defined so that Qiskit Aer's standard errors give the same channels.

After every :class:`~tnml.quantum.circuit.Gate` (data gates included), in this order:

1. depolarising on the gate's ``k`` qubits, ``rho -> (1 - p) rho + p Tr_G(rho) (x) I / 2**k``
   with ``p = depolarizing_1q`` for ``k = 1`` and ``depolarizing_2q`` for ``k >= 2``
   (Aer's ``depolarizing_error(p, k)``);
2. amplitude damping with ``gamma`` on each of the gate's qubits (``amplitude_damping_error``);
3. dephasing with ``lambda`` on each of the gate's qubits (``phase_damping_error``).

Resets and measurements are noiseless; readout error flips each measured bit
(``0 -> 1`` with ``p01``, ``1 -> 0`` with ``p10``) after the measurement.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real

import torch
from torch import Tensor

from tnml.exceptions import InvalidInputError

__all__ = ["NoiseModel", "amplitude_damping_kraus", "dephasing_kraus"]


def _check_probability(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not 0.0 <= value <= 1.0:
        raise InvalidInputError(f"{name} must be a probability in [0, 1], got {value!r}")
    return float(value)


@dataclass(frozen=True)
class NoiseModel:
    """Noise channels applied after every gate, plus readout error on measured bits.

    Parameters
    ----------
    depolarizing_1q : float, default=0.0
        Depolarising probability after every 1-qubit gate.
    depolarizing_2q : float, default=0.0
        ``k``-qubit depolarising probability after every gate on ``k >= 2`` qubits.
    amplitude_damping : float, default=0.0
        Damping rate ``gamma`` applied to each qubit of every gate.
    dephasing : float, default=0.0
        Phase-damping ``lambda`` applied to each qubit of every gate; Kraus operators
        ``[[1, 0], [0, sqrt(1 - lambda)]]`` and ``[[0, 0], [0, sqrt(lambda)]]``.
    readout_error : float or (float, float), default=0.0
        ``(p(read 1 | 0), p(read 0 | 1))``; a single float sets both.

    Raises
    ------
    InvalidInputError
        If a parameter is not a probability in ``[0, 1]``.

    Examples
    --------
    >>> NoiseModel.depolarizing(0.01).is_noiseless()
    False
    >>> NoiseModel(readout_error=0.02).readout_probabilities
    (0.02, 0.02)
    """

    depolarizing_1q: float = 0.0
    depolarizing_2q: float = 0.0
    amplitude_damping: float = 0.0
    dephasing: float = 0.0
    readout_error: float | tuple[float, float] = 0.0

    def __post_init__(self) -> None:
        for name in ("depolarizing_1q", "depolarizing_2q", "amplitude_damping", "dephasing"):
            object.__setattr__(self, name, _check_probability(name, getattr(self, name)))
        readout = self.readout_error
        if isinstance(readout, (tuple, list)):
            if len(readout) != 2:
                raise InvalidInputError(
                    f"readout_error must be a float or a pair (p01, p10), got {readout!r}"
                )
            readout = tuple(_check_probability("readout_error", p) for p in readout)
        else:
            readout = _check_probability("readout_error", readout)
        object.__setattr__(self, "readout_error", readout)

    @classmethod
    def depolarizing(cls, p: float) -> NoiseModel:
        """Depolarising noise with probability ``p`` after every gate, 1- and multi-qubit."""
        return cls(depolarizing_1q=p, depolarizing_2q=p)

    @property
    def readout_probabilities(self) -> tuple[float, float]:
        """``(p(read 1 | 0), p(read 0 | 1))``."""
        r = self.readout_error
        return (r, r) if isinstance(r, float) else r

    def has_gate_noise(self) -> bool:
        """Whether any channel acts after gates."""
        return any(
            (self.depolarizing_1q, self.depolarizing_2q, self.amplitude_damping, self.dephasing)
        )

    def has_readout_error(self) -> bool:
        """Whether measured bits can flip."""
        return any(self.readout_probabilities)

    def is_noiseless(self) -> bool:
        """Whether every probability is zero."""
        return not (self.has_gate_noise() or self.has_readout_error())

    def confusion_matrix(self, dtype: torch.dtype = torch.float64) -> Tensor:
        """Readout channel ``M[read, true]`` of shape ``(2, 2)``; columns sum to one."""
        p01, p10 = self.readout_probabilities
        return torch.tensor([[1 - p01, p10], [p01, 1 - p10]], dtype=dtype)


def amplitude_damping_kraus(gamma: float, dtype: torch.dtype = torch.float64) -> list[Tensor]:
    """Kraus operators ``[[1, 0], [0, sqrt(1-g)]]`` and ``[[0, sqrt(g)], [0, 0]]``."""
    return [
        torch.tensor([[1.0, 0.0], [0.0, math.sqrt(1 - gamma)]], dtype=dtype),
        torch.tensor([[0.0, math.sqrt(gamma)], [0.0, 0.0]], dtype=dtype),
    ]


def dephasing_kraus(lam: float, dtype: torch.dtype = torch.float64) -> list[Tensor]:
    """Kraus operators ``[[1, 0], [0, sqrt(1-l)]]`` and ``[[0, 0], [0, sqrt(l)]]``."""
    return [
        torch.tensor([[1.0, 0.0], [0.0, math.sqrt(1 - lam)]], dtype=dtype),
        torch.tensor([[0.0, 0.0], [0.0, math.sqrt(lam)]], dtype=dtype),
    ]
