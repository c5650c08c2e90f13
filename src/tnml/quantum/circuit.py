"""A small gate-level circuit: unitaries on qubit subsets, data-encoding gates, resets, measures.

A :class:`Circuit` is a flat list of operations on ``num_qubits`` qubits that all start in
``|0>``, plus named classical registers that :class:`Measure` operations write into. It does
not depend on how it is run: :mod:`tnml.quantum.simulate` runs it exactly in torch and
:mod:`tnml.quantum.export` turns it into Qiskit or OpenQASM 3.

Conventions
-----------
* A :class:`Gate` on ``qubits = (a, b, ...)`` has a matrix whose row/column index is
  big-endian in that order: ``qubits[0]`` is the most significant bit, as in the Kronecker
  product ``A (x) B`` acting on ``(a, b)``.
* A *data gate* (``feature=j``) is ``RY(scale * pi * x[j])`` on one qubit (``scale`` 1 by
  default), so ``|0>`` becomes ``cos(pi x/2)|0> + sin(pi x/2)|1>``: the ``trig`` feature map
  of :mod:`tnml.features`. A data gate may act on a qubit in any state (circuits that
  re-upload data rotate register qubits). :meth:`Circuit.bind` replaces every data gate by a
  fixed ``RY`` gate for one input.
* A register's value is ``sum_b bit_b * 2**b`` (bit 0 least significant, as in Qiskit).
  Bits that no :class:`Measure` writes stay 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from numbers import Integral, Real

import numpy as np
import torch
from numpy.typing import ArrayLike
from torch import Tensor

from tnml._validation import check_int
from tnml.exceptions import InvalidInputError

__all__ = [
    "UNITARY_ATOL",
    "Circuit",
    "Gate",
    "Measure",
    "Operation",
    "Reset",
    "check_features",
    "ry_matrix",
]

UNITARY_ATOL = 1e-8
"""Largest entry of ``U^dagger U - I`` a gate matrix may have."""

# Feature values this far outside [0, 1] are taken as rounding noise (as in tnml.features).
_RANGE_TOLERANCE = 1e-6


def ry_matrix(angle: float) -> Tensor:
    """Return ``RY(angle) = [[cos(a/2), -sin(a/2)], [sin(a/2), cos(a/2)]]`` as float64.

    Parameters
    ----------
    angle : float
        Rotation angle in radians.

    Returns
    -------
    Tensor
        Real matrix of shape ``(2, 2)``.

    Examples
    --------
    >>> ry_matrix(math.pi) @ torch.tensor([1.0, 0.0], dtype=torch.float64)
    tensor([6.1232e-17, 1.0000e+00], dtype=torch.float64)
    """
    c, s = math.cos(angle / 2), math.sin(angle / 2)
    return torch.tensor([[c, -s], [s, c]], dtype=torch.float64)


def _as_matrix(matrix: object) -> Tensor:
    """CPU float64 or complex128, contiguous (some torch ops, e.g. kron on complex
    tensors, fail on strided views such as a QR factor)."""
    m = torch.as_tensor(matrix)
    dtype = torch.complex128 if m.is_complex() else torch.float64
    return m.to(device="cpu", dtype=dtype).contiguous()


def check_index(name: str, value: object) -> int:
    """``value`` as an int ``>= 0`` (numpy integers accepted; not a bool, a float or a
    string), else InvalidInputError naming ``name``: a qubit, bit or feature index."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 0:
        raise InvalidInputError(f"{name} must be an integer >= 0, got {value!r}")
    return int(value)


@dataclass(frozen=True, eq=False)
class Gate:
    """A unitary on ``qubits``, or a data gate ``RY(scale * pi * x[feature])`` on one qubit.

    Equality is identity (the matrix is a tensor); compare fields explicitly if needed.

    Attributes
    ----------
    qubits : tuple of int
        The qubits acted on, distinct; ``qubits[0]`` is the most significant bit of the
        matrix index.
    matrix : Tensor or None
        ``(2**k, 2**k)`` unitary for ``k = len(qubits)``, stored as a CPU float64 or
        complex128 tensor; ``None`` for a data gate.
    feature : int or None
        For a data gate, the input feature that sets the angle; else ``None``.
    name : str
        Label used in reports and exports.
    angle : float or None
        Set by :meth:`Circuit.bind` on the ``RY`` gate that replaces a data gate, so exports
        can write a native ``ry(angle)``; a gate with an angle counts as a (bound) data gate.
        Only on one qubit, finite, and with ``matrix`` equal to ``RY(angle)``.
    scale : float
        For a data gate, the factor of its angle ``scale * pi * x[feature]`` (finite); 1 by
        default.
    """

    qubits: tuple[int, ...]
    matrix: Tensor | None = None
    feature: int | None = None
    name: str = "u"
    angle: float | None = None
    scale: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.qubits, Integral):
            raise InvalidInputError(f"Gate qubits must be a tuple, got {self.qubits!r}")
        qubits = tuple(check_index("Gate qubit", q) for q in self.qubits)
        if not qubits or len(set(qubits)) != len(qubits):
            raise InvalidInputError(f"Gate qubits must be distinct and non-empty, got {qubits}")
        object.__setattr__(self, "qubits", qubits)
        if not isinstance(self.name, str):
            raise InvalidInputError(f"Gate name must be a str, got {self.name!r}")
        if (self.matrix is None) == (self.feature is None):
            raise InvalidInputError("a Gate needs exactly one of matrix= and feature=")
        scale = self.scale
        if isinstance(scale, bool) or not isinstance(scale, Real) or not math.isfinite(scale):
            raise InvalidInputError(f"Gate scale must be a finite number, got {scale!r}")
        object.__setattr__(self, "scale", float(scale))
        if self.feature is not None:
            object.__setattr__(self, "feature", check_index("Gate feature", self.feature))
            if len(qubits) != 1:
                raise InvalidInputError(f"a data gate acts on one qubit, got qubits {qubits}")
            return
        single = getattr(self.matrix, "dtype", None) in (torch.float32, torch.complex64)
        matrix = _as_matrix(self.matrix)
        dim = 2 ** len(qubits)
        if matrix.shape != (dim, dim):
            raise InvalidInputError(
                f"Gate matrix for {len(qubits)} qubit(s) must have shape ({dim}, {dim}), "
                f"got {tuple(matrix.shape)}"
            )
        with torch.no_grad():
            error = (matrix.mH @ matrix - torch.eye(dim, dtype=matrix.dtype)).abs().max()
        if not bool(error <= UNITARY_ATOL):
            raise InvalidInputError(
                f"Gate matrix '{self.name}' on qubits {qubits} is not unitary: "
                f"max |U^dagger U - I| = {float(error):.2e} > {UNITARY_ATOL:g}"
                + ("; build it in float64 (single precision is not enough)" if single else "")
            )
        if self.angle is not None:
            angle = self.angle
            if isinstance(angle, bool) or not isinstance(angle, Real) or not math.isfinite(angle):
                raise InvalidInputError(f"Gate angle must be a finite number, got {angle!r}")
            # exports write ry(angle) for such a gate: the angle must be what the matrix does
            one_qubit = len(qubits) == 1
            ry = ry_matrix(float(angle)).to(matrix.dtype)
            if not one_qubit or not float((matrix - ry).abs().max()) <= UNITARY_ATOL:
                raise InvalidInputError(
                    f"Gate angle marks a bound data gate RY(angle) on one qubit; gate "
                    f"'{self.name}' on qubits {qubits} is not RY({float(angle):.6g})"
                )
            object.__setattr__(self, "angle", float(angle))
        object.__setattr__(self, "matrix", matrix)

    @property
    def is_data(self) -> bool:
        """Whether this is a data gate, unbound (``feature`` set) or bound (``angle`` set)."""
        return self.feature is not None or self.angle is not None


@dataclass(frozen=True)
class Measure:
    """Measure ``qubit`` in the computational basis into bit ``bit`` of ``register``."""

    qubit: int
    register: str
    bit: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "qubit", check_index("Measure qubit", self.qubit))
        object.__setattr__(self, "bit", check_index("Measure bit", self.bit))
        if not isinstance(self.register, str):
            raise InvalidInputError(f"Measure register must be a str, got {self.register!r}")


@dataclass(frozen=True)
class Reset:
    """Reset ``qubit`` to ``|0>`` (discarding whatever it held)."""

    qubit: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "qubit", check_index("Reset qubit", self.qubit))


Operation = Gate | Measure | Reset


def _op_qubits(op: Operation) -> tuple[int, ...]:
    return op.qubits if isinstance(op, Gate) else (op.qubit,)


def check_labels(y: object, n: int, n_labels: int, *, name: str = "y") -> Tensor:
    """Check class indices for a circuit's label register and return them as int64.

    Parameters
    ----------
    y : array-like or Tensor, shape (n,)
        Integer class indices in ``0 .. n_labels - 1`` (an estimator's labels go through
        its ``classes_`` first: ``np.searchsorted(model.classes_, y)``).
    n : int
        Number of inputs.
    n_labels : int
        Labels the register encodes.
    name : str, default="y"

    Returns
    -------
    Tensor
        Shape ``(n,)``, int64, on the CPU.
    """
    values = y.detach().cpu().numpy() if isinstance(y, Tensor) else np.asarray(y)
    if values.size and (values.dtype.kind not in "iuf" or np.any(values != np.round(values))):
        raise InvalidInputError(
            f"{name} must hold integer class indices 0 .. {n_labels - 1}, got dtype "
            f"{values.dtype} ({values.flat[0]!r} ...); map an estimator's labels through its "
            "classes_"
        )
    if values.shape != (n,):
        raise InvalidInputError(f"{name} must have shape ({n},), got {values.shape}")
    labels = torch.as_tensor(values.astype(np.int64), dtype=torch.long)
    if labels.numel() and (labels.min() < 0 or labels.max() >= n_labels):
        raise InvalidInputError(
            f"{name} must hold class indices in 0 .. {n_labels - 1}, found "
            f"{int(labels.min())} .. {int(labels.max())}"
        )
    return labels


def check_features(x: object, n_features: int, *, name: str = "X") -> Tensor:
    """Check feature rows for a circuit and return them as a float64 tensor.

    Parameters
    ----------
    x : array-like or Tensor
        One row ``(n_features,)`` or rows ``(n, n_features)`` of values in ``[0, 1]``.
        Values within 1e-6 of the range are clamped into it.
    n_features : int
        Number of features the circuit reads.
    name : str, default="X"
        Argument name used in error messages.

    Returns
    -------
    Tensor
        Shape ``(n, n_features)``, float64, on the CPU, detached.
    """
    if isinstance(x, Tensor):
        kind = "b" if x.dtype == torch.bool else "c" if x.is_complex() else "f"
        t, dtype = x.detach().cpu(), x.dtype
    else:
        try:
            arr = np.asarray(x)
        except ValueError as err:  # ragged nested sequences
            raise InvalidInputError(f"{name} must be a rectangular array: {err}") from err
        kind, t, dtype = arr.dtype.kind, arr, arr.dtype
    if kind not in "iuf":
        raise InvalidInputError(f"{name} must hold real numbers, got dtype {dtype}")
    t = torch.as_tensor(t).to(torch.float64)
    if t.ndim == 1:
        t = t.unsqueeze(0)
    if t.ndim != 2 or t.shape[1] != n_features:
        raise InvalidInputError(
            f"{name} must have shape (n_features,) or (n, n_features) with n_features="
            f"{n_features}, got {tuple(t.shape)}"
        )
    if t.numel() and not torch.isfinite(t).all():
        raise InvalidInputError(f"{name} holds NaN or infinite values; expected values in [0, 1]")
    if t.numel() and (t.min() < -_RANGE_TOLERANCE or t.max() > 1 + _RANGE_TOLERANCE):
        raise InvalidInputError(
            f"{name} must hold values in [0, 1], got values in "
            f"[{float(t.min()):.4g}, {float(t.max()):.4g}]; scale the features first"
        )
    return t.clamp(0.0, 1.0)


@dataclass(frozen=True)
class _Checked:
    """Validated constructor arguments of a Circuit (kept together so copies are cheap)."""

    num_qubits: int
    ops: tuple[Operation, ...]
    registers: dict[str, int]
    n_features: int
    n_labels: int | None
    label_register: str
    metadata: dict[str, object] = field(default_factory=dict)


class Circuit:
    """A circuit on ``num_qubits`` qubits (all starting in ``|0>``) with classical registers.

    Parameters
    ----------
    num_qubits : int
        Number of qubits, ``>= 1``.
    ops : sequence of Gate, Measure, Reset
        The operations in time order.
    registers : mapping of str to int
        Classical registers, name to size in bits, in the order exports list them.
    n_features : int, default=0
        Number of input features; data gates read features ``0 .. n_features - 1``.
    n_labels : int, optional
        Number of class labels read from ``label_register``; at most ``2**size``. ``None``
        means all ``2**size`` register values.
    label_register : str, default="label"
        Register that holds the predicted label (a circuit without one, e.g. a generative
        circuit, is allowed; simulating labels then fails).
    metadata : mapping, optional
        Free-form information about where the circuit came from; copied.

    Raises
    ------
    InvalidInputError
        If a qubit, feature, register or bit is out of range, a (register, bit) is measured
        twice, or ``n_labels`` does not fit the label register.

    Examples
    --------
    >>> h = torch.tensor([[1.0, 1.0], [1.0, -1.0]], dtype=torch.float64) / 2**0.5
    >>> c = Circuit(1, [Gate((0,), h, name="h"), Measure(0, "label", 0)], {"label": 1})
    >>> c.count_ops()
    {'u1': 1, 'measure': 1}
    """

    def __init__(
        self,
        num_qubits: int,
        ops: Sequence[Operation],
        registers: Mapping[str, int],
        *,
        n_features: int = 0,
        n_labels: int | None = None,
        label_register: str = "label",
        metadata: Mapping[str, object] | None = None,
    ) -> None:
        self._c = _check_circuit(
            num_qubits, ops, registers, n_features, n_labels, label_register, metadata
        )

    @classmethod
    def _from_checked(cls, checked: _Checked) -> Circuit:
        new = cls.__new__(cls)
        new._c = checked
        return new

    @property
    def num_qubits(self) -> int:
        """Number of qubits."""
        return self._c.num_qubits

    @property
    def ops(self) -> tuple[Operation, ...]:
        """The operations in time order."""
        return self._c.ops

    @property
    def registers(self) -> dict[str, int]:
        """Classical registers, name to size (a copy)."""
        return dict(self._c.registers)

    @property
    def n_features(self) -> int:
        """Number of input features the data gates read."""
        return self._c.n_features

    @property
    def n_labels(self) -> int | None:
        """Number of class labels, or ``None`` for all values of the label register."""
        return self._c.n_labels

    @property
    def label_register(self) -> str:
        """Name of the register holding the label."""
        return self._c.label_register

    @property
    def metadata(self) -> dict[str, object]:
        """Free-form information about the circuit (a copy)."""
        return dict(self._c.metadata)

    @property
    def is_bound(self) -> bool:
        """Whether the circuit has no unbound data gates."""
        return not any(isinstance(op, Gate) and op.feature is not None for op in self.ops)

    def bind(self, x: ArrayLike | Tensor | None) -> Circuit:
        """Return a copy with every data gate replaced by ``RY(scale * pi * x[feature])``.

        Parameters
        ----------
        x : array-like of shape (n_features,)
            One input, values in ``[0, 1]``; may be ``None`` when ``n_features == 0``.

        Returns
        -------
        Circuit
            A bound circuit, reading no features (``n_features == 0``); op indices are
            unchanged. The new gates are named ``"ry"`` and keep their angle in
            ``Gate.angle``.

        Raises
        ------
        InvalidInputError
            If ``x`` has the wrong length or holds NaN or values outside ``[0, 1]``.
        """
        if x is None:
            x = np.zeros(0)
        row = check_features(x, self.n_features, name="x")
        if row.shape[0] != 1:
            raise InvalidInputError(
                f"x must be one input of shape ({self.n_features},), got {row.shape[0]} rows"
            )
        ops = tuple(_bind_op(op, row[0]) for op in self.ops)
        # it reads no features any more: an X given to it later is refused, not ignored
        return Circuit._from_checked(replace(self._c, ops=ops, n_features=0))

    def with_matrices(self, mapping: Mapping[int, Tensor]) -> Circuit:
        """Return a copy whose gates at the given op indices get new matrices.

        Parameters
        ----------
        mapping : mapping of int to Tensor
            Op index (see :meth:`gate_indices`) to a new unitary of the same shape.

        Returns
        -------
        Circuit
            The copy; names are kept.

        Raises
        ------
        InvalidInputError
            If an index is not a non-data gate or a matrix has the wrong shape or is not
            unitary.
        """
        ops = list(self.ops)
        allowed = set(self.gate_indices())
        for index, matrix in mapping.items():
            if index not in allowed:
                raise InvalidInputError(
                    f"with_matrices: op index {index!r} is not a non-data gate of this circuit"
                )
            old = ops[index]
            ops[index] = Gate(old.qubits, matrix=matrix, name=old.name)
        return Circuit._from_checked(replace(self._c, ops=tuple(ops)))

    def replaced(
        self,
        *,
        ops: Sequence[Operation] | None = None,
        num_qubits: int | None = None,
        metadata: Mapping[str, object] | None = None,
    ) -> Circuit:
        """A copy with other operations and/or qubit count, and ``metadata`` merged in.

        Registers, features and labels are kept; the new circuit is checked as any other.
        """
        return Circuit(
            self.num_qubits if num_qubits is None else num_qubits,
            self.ops if ops is None else ops,
            self._c.registers,
            n_features=self.n_features,
            n_labels=self.n_labels,
            label_register=self.label_register,
            metadata={**self._c.metadata, **(metadata or {})},
        )

    def gate_indices(self) -> list[int]:
        """Op indices of the gates that are not data gates (bound or not).

        The list is the same before and after :meth:`bind`.
        """
        return [i for i, op in enumerate(self.ops) if isinstance(op, Gate) and not op.is_data]

    def count_ops(self) -> dict[str, int]:
        """Count operations by kind: ``"data"``, ``"u{k}"`` (k-qubit), ``"reset"``, ``"measure"``.

        Bound data gates count as ``"data"`` so the counts do not change with :meth:`bind`.
        """
        counts: dict[str, int] = {}
        for op in self.ops:
            if isinstance(op, Gate):
                key = "data" if op.is_data else f"u{len(op.qubits)}"
            else:
                key = "measure" if isinstance(op, Measure) else "reset"
            counts[key] = counts.get(key, 0) + 1
        return counts

    def depth(self) -> int:
        """Number of layers when each op is placed as early as its qubits allow."""
        level = [0] * self.num_qubits
        for op in self.ops:
            qubits = _op_qubits(op)
            top = max(level[q] for q in qubits) + 1
            for q in qubits:
                level[q] = top
        return max(level, default=0)

    def __repr__(self) -> str:
        counts = ", ".join(f"{k}={v}" for k, v in self.count_ops().items())
        regs = ", ".join(f"{k}[{v}]" for k, v in self._c.registers.items())
        return (
            f"Circuit(num_qubits={self.num_qubits}, n_features={self.n_features}, "
            f"n_labels={self.n_labels}, ops: {counts or 'none'}, registers: {regs or 'none'})"
        )


def classifier_circuit(
    num_qubits: int,
    ops: list[Operation],
    label_qubits: Sequence[int],
    *,
    n_features: int,
    n_classes: int,
    metadata: dict,
) -> Circuit:
    """``ops`` followed by the label readout: ``label_qubits[0]`` is measured into the most
    significant bit of register ``"label"`` (the class index in binary)."""
    n_label = len(label_qubits)
    readout = [Measure(label_qubits[n_label - 1 - bit], "label", bit) for bit in range(n_label)]
    return Circuit(
        num_qubits,
        [*ops, *readout],
        {"label": n_label},
        n_features=n_features,
        n_labels=n_classes,
        metadata=metadata,
    )


def _bind_op(op: Operation, row: Tensor) -> Operation:
    if not isinstance(op, Gate) or op.feature is None:
        return op
    angle = op.scale * math.pi * float(row[op.feature])
    return Gate(op.qubits, matrix=ry_matrix(angle), name="ry", angle=angle)


def _check_registers(registers: Mapping[str, int]) -> dict[str, int]:
    if not isinstance(registers, Mapping):
        raise InvalidInputError(
            f"registers must be a mapping of name to size, got {type(registers).__name__}"
        )
    out = {}
    for name, size in registers.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise InvalidInputError(f"register names must be identifiers, got {name!r}")
        out[name] = check_int(f"size of register {name!r}", size, 1)
    return out


def _check_op(op: object, index: int, num_qubits: int, n_features: int, regs: dict) -> None:
    if not isinstance(op, (Gate, Measure, Reset)):
        raise InvalidInputError(
            f"ops[{index}] must be a Gate, Measure or Reset, got {type(op).__name__}"
        )
    for q in _op_qubits(op):
        if q >= num_qubits:
            raise InvalidInputError(
                f"ops[{index}] acts on qubit {q!r}; qubits must lie in [0, {num_qubits})"
            )
    if isinstance(op, Gate) and op.feature is not None and op.feature >= n_features:
        raise InvalidInputError(
            f"ops[{index}] reads feature {op.feature}; features must lie in [0, {n_features})"
        )
    if isinstance(op, Measure):
        if op.register not in regs:
            raise InvalidInputError(
                f"ops[{index}] measures into unknown register {op.register!r}; "
                f"registers are {list(regs)}"
            )
        if op.bit >= regs[op.register]:
            raise InvalidInputError(
                f"ops[{index}] writes bit {op.bit} of register {op.register!r}, which has "
                f"{regs[op.register]} bit(s)"
            )


def _check_circuit(
    num_qubits: int,
    ops: Sequence[Operation],
    registers: Mapping[str, int],
    n_features: int,
    n_labels: int | None,
    label_register: str,
    metadata: Mapping[str, object] | None,
) -> _Checked:
    num_qubits = check_int("num_qubits", num_qubits, 1)
    n_features = check_int("n_features", n_features, 0)
    regs = _check_registers(registers)
    if isinstance(ops, (str, bytes)) or not isinstance(ops, Iterable):
        raise InvalidInputError(f"ops must be a sequence of operations, got {type(ops).__name__}")
    ops = tuple(ops)
    written: set[tuple[str, int]] = set()
    for index, op in enumerate(ops):
        _check_op(op, index, num_qubits, n_features, regs)
        if isinstance(op, Measure):
            if (op.register, op.bit) in written:
                raise InvalidInputError(
                    f"ops[{index}] writes bit {op.bit} of register {op.register!r} a second "
                    "time; each register bit may be measured once"
                )
            written.add((op.register, op.bit))
    if not isinstance(label_register, str):
        raise InvalidInputError(f"label_register must be a str, got {label_register!r}")
    if n_labels is not None:
        check_int("n_labels", n_labels, 1)
        if label_register not in regs:
            raise InvalidInputError(
                f"n_labels is given but the circuit has no label register {label_register!r}"
            )
        if n_labels > 2 ** regs[label_register]:
            raise InvalidInputError(
                f"n_labels={n_labels} does not fit the {regs[label_register]}-bit register "
                f"{label_register!r} (at most {2 ** regs[label_register]})"
            )
    if metadata is not None and not isinstance(metadata, Mapping):
        raise InvalidInputError(f"metadata must be a mapping, got {type(metadata).__name__}")
    return _Checked(
        num_qubits, tuple(ops), regs, n_features, n_labels, label_register, dict(metadata or {})
    )
