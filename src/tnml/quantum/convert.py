"""Turn a trained (non-isometric) MPS or tree classifier into a unitary one, and say what it
cost.

MPS: the label index is moved to the last site (SVD splits, exact), the chain is brought to
left-canonical form (exact), and every core ``A_i[l, s, r]`` becomes the first rows of an
orthogonal gate of the MPS channel (:mod:`tnml.tensor.channel`). Tree: the network is brought
to canonical form towards the root (QR, exact), so every node ``T[a, b, p]`` is an isometry
from its parent bond to its children, and its rows become the rows of the node's gate that
keep the discarded qubits at ``|0>``. Either way, post-selecting every discarded qubit on
``|0>`` would reproduce the classifier's amplitudes ``f_l(x)`` exactly. Two things change
the predictions and are reported:

- the circuit traces discarded qubits out instead of post-selecting them, so the branches
  where a discarded qubit reads ``|1>`` mix into the label distribution;
- the last core / the root (which holds the label and the norm) is replaced by its nearest
  matrix with orthonormal rows (polar factor), which drops its singular values.

The converted model is a starting point: fine-tune it with ``warm_start`` (classically) or
:func:`tnml.quantum.fit_circuit` (with shots).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted

from tnml.exceptions import InvalidInputError
from tnml.nn.mps import MPSClassifierModule
from tnml.nn.ttn import TTNClassifierModule
from tnml.nn.unitary import (
    UnitaryMPSClassifierModule,
    UnitaryTTNClassifierModule,
    n_label_qubits,
)
from tnml.tensor.ttn import TTN, ttn_canonicalize
from tnml.tensor.unitary import complete_rows, complete_rows_at, nearest_orthonormal_rows
from tnml.train.sweep import LabelledMPS, move_label


@dataclass
class ConversionReport:
    """How far the converted (unitary) classifier is from the original, on the data given.

    Attributes
    ----------
    bond_dim : int
        ``2^V`` of the converted model (the largest bond, rounded up to a power of two).
    last_core_fidelity : float
        ``(sum of singular values)^2 / (L * sum of squared singular values)`` of the last core
        (the root of a tree) as a map to the labels: 1 when it already had orthonormal rows.
    mean_fidelity : float or None
        Mean over samples of the classical fidelity ``(sum_l sqrt(p_l q_l))^2`` between the
        original's and the converted model's label distributions.
    agreement : float or None
        Fraction of samples with the same predicted class.
    accuracy_before, accuracy_after : float or None
        With labels ``y``.
    """

    bond_dim: int
    last_core_fidelity: float
    mean_fidelity: float | None = None
    agreement: float | None = None
    accuracy_before: float | None = None
    accuracy_after: float | None = None


def _tree_gates(module: Any, unitary: UnitaryTTNClassifierModule) -> tuple[list, float]:
    """Gates ``[layer][k]`` of the tree channel from the canonical form of ``module``'s tree."""
    plain = module.to_ttn()
    ttn = ttn_canonicalize(
        TTN(plain.layout, [[t.to("cpu", torch.float64) for t in row] for row in plain.tensors])
    )
    n_label = unitary.n_label_qubits
    gates: list[list[torch.Tensor]] = []
    last_fidelity = 1.0
    for layer, row in enumerate(ttn.tensors):
        out = []
        for k, node in enumerate(row):
            wl, wr, wk = unitary.gate_sizes[layer][k]
            node = node.detach().to("cpu", torch.float64)
            da, db, dp = node.shape
            padded = torch.zeros(2**wl, 2**wr, dp, dtype=torch.float64)
            padded[:da, :db] = node
            rows = padded.reshape(2 ** (wl + wr), dp).T  # (Dp, 2^(wl + wr))
            discarded = 2 ** (wl + wr - wk)
            if (layer, k) == ttn.layout.root:
                s = torch.linalg.svdvals(rows)
                last_fidelity = float(s.sum() ** 2 / (dp * (s**2).sum()))
                rows = nearest_orthonormal_rows(rows)
                kept = [l * 2 ** (wk - n_label) for l in range(dp)]
            else:
                kept = list(range(dp))
            out.append(complete_rows_at(rows, [p * discarded for p in kept], 2 ** (wl + wr)))
        gates.append(out)
    return gates, last_fidelity


def _channel_gates(cores: list[torch.Tensor], n_classes: int, bond: int) -> torch.Tensor:
    """Orthogonal gates ``(N, 2D, 2D)`` from left-canonical cores; the last holds the label."""
    n_label = n_label_qubits(n_classes)
    gates = []
    for i, core in enumerate(cores):
        last = i == len(cores) - 1
        dl = core.shape[0]
        padded = torch.zeros(
            bond, 2, core.shape[-1] if not last else n_classes, dtype=torch.float64
        )
        padded[:dl] = core.reshape(dl, 2, -1)
        rows = padded.reshape(2 * bond, -1).T  # (Dr, 2D): T[j, (l, s)]
        if last:
            stride = bond // 2**n_label  # label l sits on bond state l * stride
            rows = nearest_orthonormal_rows(rows)
            gate = complete_rows_at(rows, [l * stride for l in range(n_classes)], 2 * bond)
        else:
            gate = complete_rows(rows)
        gates.append(gate)
    return torch.stack(gates)


def to_unitary(model: Any, X: Any = None, y: Any = None) -> tuple[Any, ConversionReport]:
    """A unitary copy of a fitted MPS or tree classifier (``unitary=True``) and what it lost.

    Parameters
    ----------
    model : MPSClassifier or TTNClassifier
        Fitted, ``feature_map="trig"``, ``feature_dim=2`` (one qubit per feature).
    X : array-like, shape (n, n_features), optional
        Data to measure the change of the predictions on.
    y : array-like, shape (n,), optional
        Labels, for the accuracies.

    Returns
    -------
    converted : same class as ``model``
        ``unitary=True``, ``bond_dim = 2^ceil(log2 of the largest bond)`` (at least enough
        qubits for the labels), its module's gates the completed isometries (generators
        zero), same classes and scaling. Fine-tune it with ``warm_start=True`` and ``fit``.
    report : ConversionReport
    """
    check_is_fitted(model)
    module = model.module_
    if not isinstance(module, (MPSClassifierModule, TTNClassifierModule)):
        raise InvalidInputError(
            "to_unitary converts a plain MPSClassifier or TTNClassifier; got a module "
            f"{type(module).__name__}"
        )
    if model.feature_map != "trig" or model.feature_dim != 2:
        raise InvalidInputError(
            "to_unitary needs the qubit map (feature_map='trig', feature_dim=2), got "
            f"{model.feature_map!r}, {model.feature_dim}"
        )
    n_classes = module.n_classes
    if isinstance(module, MPSClassifierModule):
        labelled = LabelledMPS.from_module(module)
        labelled = LabelledMPS(
            [c.to("cpu", torch.float64) for c in labelled.cores],
            labelled.label_site,
            n_classes=n_classes,
        )
        moved = move_label(labelled, labelled.n_sites - 1)
        cores = [*moved.cores[:-1], moved.label_core[..., 0]]  # last: (Dl, d, L)
        widest = max([c.shape[0] for c in cores] + [c.shape[-1] for c in cores[:-1]])
        bond = _qubit_bond(widest, n_classes)
        s = torch.linalg.svdvals(cores[-1].reshape(-1, n_classes))
        last_fidelity = float(s.sum() ** 2 / (n_classes * (s**2).sum()))
        unitary = UnitaryMPSClassifierModule(
            module.n_features, n_classes, bond, init_std=0.0, dtype=torch.float64
        )
        with torch.no_grad():
            unitary.base.copy_(_channel_gates(cores, n_classes, bond))
    else:
        if module.n_features < 2:
            raise InvalidInputError("to_unitary needs a tree over at least 2 features")
        widest = max(max(t.shape[0], t.shape[1]) for row in module.to_ttn().tensors for t in row)
        bond = _qubit_bond(widest, n_classes)
        unitary = UnitaryTTNClassifierModule(
            module.n_features, n_classes, bond, layout=module.layout, init_std=0.0,
            dtype=torch.float64,
        )  # fmt: skip
        gates, last_fidelity = _tree_gates(module, unitary)
        with torch.no_grad():
            for layer, row in enumerate(unitary.node_slots):
                for k, (group, slot) in enumerate(row):
                    unitary.bases()[group][slot].copy_(gates[layer][k])
    with torch.no_grad():
        for generator in unitary.parameters():
            generator.zero_()
    param = next(module.parameters())
    converted = copy.copy(model)
    converted.set_params(unitary=True, bond_dim=bond)
    # options a unitary model does not take go back to their defaults (fit refuses others),
    # so the converted estimator can be fine-tuned with warm_start
    unitary_defaults = {"readout": "normalized", "output_site": None, "contraction": "auto"}
    converted.set_params(**{k: v for k, v in unitary_defaults.items() if k in model.get_params()})
    converted.module_ = unitary.to(param.device, param.dtype)
    report = ConversionReport(bond_dim=bond, last_core_fidelity=last_fidelity)
    if X is not None:
        before = model.predict_proba(X)
        after = converted.predict_proba(X)
        report.mean_fidelity = float(np.mean(np.sum(np.sqrt(before * after), axis=1) ** 2))
        report.agreement = float(np.mean(before.argmax(1) == after.argmax(1)))
        if y is not None:
            report.accuracy_before = float(model.score(X, y))
            report.accuracy_after = float(converted.score(X, y))
    return converted, report


def _qubit_bond(widest: int, n_classes: int) -> int:
    """The smallest ``2^V >= widest`` with at least ``ceil(log2 L)`` qubits."""
    return 2 ** max(1, math.ceil(math.log2(max(widest, 2))), n_label_qubits(n_classes))
