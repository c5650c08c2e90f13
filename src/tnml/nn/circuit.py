"""A classifier that is a circuit of native gates: data re-uploaded onto a few qubits.

``n_qubits`` qubits on a line start in ``|0...0>``. Feature ``i`` is loaded by a rotation
``RY(scale * pi * x_i)`` on one register qubit, followed by ``blocks_per_feature`` two-qubit
blocks on neighbouring qubits of the line (``"so4"``: 6 angles, 2 CX each). After the last
feature the first ``ceil(log2 L)`` qubits are measured: their value is the label.

Why this is a tensor network. Write ``RY(t) = cos(t/2) I + sin(t/2) (-iY)``: the amplitude
of an outcome is ``sum_s prod_i phi_{s_i}(x_i) <out| C_N P_{s_N} ... C_1 P_{s_1} |0>`` with
``P_0 = I``, ``P_1 = -iY`` on feature ``i``'s qubit and ``C_i`` the blocks after it -- an MPS
classifier of bond ``2**n_qubits`` on the trigonometric feature map (angles scaled by
``scale``), contracted in the Born readout. Its cores are made of gates, so the circuit
needs no more than ``n_qubits`` qubits for any number of features, no reset and no
mid-circuit measurement, and runs on a line of the device's coupling map without a SWAP.

Shapes: input ``(B, N)`` with features in [0, 1]; :meth:`forward` returns log label
probabilities ``(B, L)`` (renormalised over the ``L`` valid labels, as the circuit
simulators read them).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from tnml._validation import check_int
from tnml.exceptions import InvalidInputError
from tnml.tensor.gates import block_matrices, check_block

__all__ = ["LAYOUTS", "CircuitClassifierModule", "circuit_plan"]

LAYOUTS = ("snake", "staircase", "brickwork")


def n_label_qubits(n_classes: int) -> int:
    """Qubits that hold a label among ``n_classes``: ``ceil(log2 n_classes)``, at least 1."""
    return max(1, math.ceil(math.log2(n_classes)))


def blocks_after(n_features: int, blocks_per_feature: float) -> list[int]:
    """Blocks after each feature: ``floor((i + 1) r) - floor(i r)`` for ``r =
    blocks_per_feature``, so a fractional rate spreads ``round(N r)`` blocks evenly."""
    return [
        math.floor((i + 1) * blocks_per_feature + 1e-9) - math.floor(i * blocks_per_feature + 1e-9)
        for i in range(n_features)
    ]


def circuit_plan(
    n_features: int, n_qubits: int, blocks_per_feature: float, layout: str = "snake"
) -> list[tuple[str, int, int, int]]:
    """The operations of the circuit in time order.

    Each entry is ``("data", feature, qubit, -1)`` (a data rotation) or
    ``("block", index, a, a + 1)`` (block ``index`` on neighbouring qubits ``a, a+1``).
    The blocks walk over the line's edges ``(0,1), (1,2), ..., (n-2, n-1)`` forwards
    (``"staircase"``, wrapping around), forwards then backwards (``"snake"``), or even edges
    then odd ones (``"brickwork"``), and each feature is loaded on the first qubit of the
    next block, so every qubit carries data and information spreads along the line.

    Parameters
    ----------
    n_features, n_qubits : int
    blocks_per_feature : float
        Blocks per feature on average (:func:`blocks_after`).
    layout : {"snake", "staircase", "brickwork"}

    Returns
    -------
    list of tuple
    """
    if layout not in LAYOUTS:
        raise InvalidInputError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    edges = list(range(n_qubits - 1))
    if layout == "snake" and n_qubits > 2:
        cycle = edges + edges[::-1][1:-1]
    elif layout == "brickwork":
        cycle = edges[::2] + edges[1::2]
    else:
        cycle = edges
    plan: list[tuple[str, int, int, int]] = []
    count = 0
    for feature, n_blocks in enumerate(blocks_after(n_features, blocks_per_feature)):
        first = cycle[count % len(cycle)]
        plan.append(("data", feature, first, -1))
        for _ in range(n_blocks):
            a = cycle[count % len(cycle)]
            plan.append(("block", count, a, a + 1))
            count += 1
    return plan


def _rotate(psi: Tensor, angles: Tensor, qubit: int) -> Tensor:
    """``RY(angles[b])`` on ``qubit`` of each state ``psi[b]`` (shape ``(B, 2, ..., 2)``)."""
    c = torch.cos(angles / 2).to(psi.dtype)
    s = torch.sin(angles / 2).to(psi.dtype)
    x = psi.movedim(1 + qubit, -1)
    shape = (-1,) + (1,) * (x.ndim - 2)
    c, s = c.reshape(shape), s.reshape(shape)
    zero, one = x[..., 0], x[..., 1]
    out = torch.stack([c * zero - s * one, s * zero + c * one], dim=-1)
    return out.movedim(-1, 1 + qubit)


def _apply_block(psi: Tensor, gate: Tensor, a: int, b: int) -> Tensor:
    """The ``(4, 4)`` gate (big-endian in ``(a, b)``) on qubits ``a, b`` of every state."""
    x = psi.movedim((1 + a, 1 + b), (-2, -1))
    shape = x.shape
    x = (x.reshape(-1, 4) @ gate.transpose(0, 1)).reshape(shape)
    return x.movedim((-2, -1), (1 + a, 1 + b))


class CircuitClassifierModule(nn.Module):
    """Data re-uploading classifier circuit of native two-qubit blocks (see module docstring).

    Parameters
    ----------
    n_features : int
        ``N``, one data rotation each.
    n_classes : int
        ``L >= 2``.
    n_qubits : int, optional
        Register size, at least the ``ceil(log2 L)`` label qubits and 2; default
        ``max(4, label qubits + 2)``.
    blocks_per_feature : float, default=2
        Two-qubit blocks after each data rotation, on average (a fractional rate spreads
        ``round(N * blocks_per_feature)`` blocks evenly); at least one block in all.
    angle_scale : float, default=0.25
        Data rotations are ``RY(angle_scale * pi * x)``. Small angles keep the label a smooth
        function of the pixels: on digits 0.25 trained in a few epochs where 1.0 stayed at
        chance (a full bit flip per saturated pixel).
    block : {"so4", "u4"}, default="so4"
        Block kind: real rotations (6 angles, 2 CX) or general unitaries (15 angles, 3 CX).
    layout : {"snake", "staircase", "brickwork"}, default="snake"
        Order in which blocks walk over the line (``circuit_plan``).
    init_std : float, default=1e-2
        Spread of the initial block angles (blocks start near the identity).
    """

    def __init__(
        self,
        n_features: int,
        n_classes: int,
        n_qubits: int | None = None,
        *,
        blocks_per_feature: float = 2,
        angle_scale: float = 0.25,
        block: str = "so4",
        layout: str = "snake",
        init_std: float = 1e-2,
    ) -> None:
        super().__init__()
        check_int("n_features", n_features, 1)
        check_int("n_classes", n_classes, 2)
        n_label = n_label_qubits(n_classes)
        if n_qubits is None:
            n_qubits = max(4, n_label + 2)
        check_int("n_qubits", n_qubits, 2)
        if n_qubits < n_label:
            raise InvalidInputError(
                f"n_qubits={n_qubits} cannot hold the label of {n_classes} classes: it needs "
                f"{n_label} label qubits"
            )
        if (
            isinstance(blocks_per_feature, bool)
            or not isinstance(blocks_per_feature, (int, float))
            or not math.isfinite(blocks_per_feature)
            or blocks_per_feature <= 0
        ):
            raise InvalidInputError(
                f"blocks_per_feature must be a number > 0, got {blocks_per_feature!r}"
            )
        n_blocks = sum(blocks_after(n_features, blocks_per_feature))
        if n_blocks < 1:
            raise InvalidInputError(
                f"blocks_per_feature={blocks_per_feature} gives no block for {n_features} "
                "feature(s); use a rate of at least 1 / n_features"
            )
        if not (isinstance(angle_scale, (int, float)) and math.isfinite(angle_scale)):
            raise InvalidInputError(f"angle_scale must be a finite number, got {angle_scale!r}")
        if angle_scale <= 0:
            raise InvalidInputError(f"angle_scale must be > 0, got {angle_scale!r}")
        kind = check_block(block)
        self.n_features = n_features
        self.n_classes = n_classes
        self.n_qubits = n_qubits
        self.n_label_qubits = n_label
        self.blocks_per_feature = float(blocks_per_feature)
        self.angle_scale = float(angle_scale)
        self.block = kind.name
        self.layout = layout
        self.init_std = float(init_std)
        self.plan = circuit_plan(n_features, n_qubits, blocks_per_feature, layout)
        self.angles = nn.Parameter(torch.zeros(n_blocks, kind.n_params))
        self.reset_parameters()

    @property
    def n_blocks(self) -> int:
        """Number of two-qubit blocks."""
        return self.angles.shape[0]

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Draw the block angles from ``N(0, init_std^2)`` (blocks near the identity)."""
        with torch.no_grad():
            noise = torch.randn(self.angles.shape, generator=generator, dtype=torch.float64)
            self.angles.copy_(self.init_std * noise)

    def gate_matrices(self, dtype: torch.dtype | None = None) -> Tensor:
        """The blocks' ``(4, 4)`` matrices in plan order, ``(n_blocks, 4, 4)``.

        ``dtype`` (e.g. ``torch.float64``) recomputes them from the angles at that precision
        (a float32 model's blocks are orthogonal only to ~1e-7); default: the angles' dtype.
        """
        angles = self.angles if dtype is None else self.angles.to(dtype)
        return block_matrices(angles, self.block)

    def label_probabilities(self, x: Tensor) -> Tensor:
        """``p(l | x)`` as the label qubits measure it, ``(B, N)`` -> ``(B, L)``."""
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise InvalidInputError(
                f"x must have shape (batch, {self.n_features}), got {tuple(x.shape)}"
            )
        # The state is tiny (2**n_qubits amplitudes) and passes through hundreds of gates: it
        # is simulated in float64 whatever the parameters' dtype (float32 drifted by ~1e-6).
        gates = self.gate_matrices(torch.float64)
        batch = x.shape[0]
        psi = torch.zeros(batch, 2**self.n_qubits, dtype=gates.dtype, device=x.device)
        psi[:, 0] = 1
        psi = psi.reshape(batch, *([2] * self.n_qubits))
        angles = self.angle_scale * math.pi * x.to(torch.float64)
        for kind, index, a, b in self.plan:
            if kind == "data":
                psi = _rotate(psi, angles[:, index], a)
            else:
                psi = _apply_block(psi, gates[index], a, b)
        weight = psi.abs() ** 2 if psi.is_complex() else psi**2
        labels = weight.reshape(batch, 2**self.n_label_qubits, -1).sum(-1)
        valid = labels[:, : self.n_classes]
        probs = valid / valid.sum(1, keepdim=True).clamp_min(torch.finfo(valid.dtype).tiny)
        return probs.to(self.angles.dtype)

    def forward(self, x: Tensor) -> Tensor:
        """Log label probabilities, ``(B, N)`` -> ``(B, L)``."""
        probs = self.label_probabilities(x)
        return torch.log(probs.clamp_min(torch.finfo(probs.dtype).tiny))

    def config(self) -> dict[str, object]:
        """The constructor arguments that rebuild this module (JSON-able)."""
        return {
            "n_features": self.n_features,
            "n_classes": self.n_classes,
            "n_qubits": self.n_qubits,
            "blocks_per_feature": self.blocks_per_feature,
            "angle_scale": self.angle_scale,
            "block": self.block,
            "layout": self.layout,
            "init_std": self.init_std,
        }

    def extra_repr(self) -> str:
        return (
            f"n_features={self.n_features}, n_classes={self.n_classes}, "
            f"n_qubits={self.n_qubits}, blocks={self.n_blocks} ({self.block})"
        )
