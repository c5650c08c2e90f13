"""Scoring classifier circuits: inputs from a fitted estimator, accuracy, noise studies."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.utils.validation import check_is_fitted

from tnml.estimators.base import checked_data
from tnml.exceptions import InvalidInputError
from tnml.quantum.circuit import Circuit, check_labels
from tnml.quantum.noise import NoiseModel
from tnml.quantum.simulate import simulate

NOISE_CHANNELS = ("depolarizing", "depolarizing_2q", "amplitude_damping", "dephasing", "readout")


def circuit_inputs(model: Any, X: Any) -> np.ndarray:
    """``X`` scaled into [0, 1] exactly as the fitted classifier ``model`` scales it.

    Parameters
    ----------
    model : fitted MPSClassifier or TTNClassifier
    X : array-like, shape (n, n_features)

    Returns
    -------
    np.ndarray, shape (n, n_features), float64: what the circuit's data gates read.
    """
    check_is_fitted(model)
    X = checked_data(model, X, dtype=[np.float64, np.float32], reset=False)
    return np.asarray(model._to_unit(X), dtype=np.float64)


def noise_model(channel: str, level: float) -> NoiseModel:
    """A :class:`NoiseModel` with one channel at strength ``level`` (every gate / readout).

    ``"depolarizing"`` acts after every gate, ``"depolarizing_2q"`` after two-qubit gates
    only (one-qubit gates are an order of magnitude better on today's devices).
    """
    if channel not in NOISE_CHANNELS:
        raise InvalidInputError(f"channel must be one of {NOISE_CHANNELS}, got {channel!r}")
    if channel == "depolarizing":
        return NoiseModel.depolarizing(level)
    if channel == "depolarizing_2q":
        return NoiseModel(depolarizing_2q=level)
    if channel == "readout":
        return NoiseModel(readout_error=level)
    return NoiseModel(**{channel: level})


def circuit_accuracy(
    circuit: Circuit,
    X: Any,
    y: Any,
    *,
    noise: NoiseModel | None = None,
    shots: int | None = None,
    seed: int | None = None,
) -> float:
    """Fraction of inputs whose most probable label (exact or from ``shots``) is ``y``.

    ``X`` (n, n_features) in [0, 1]; ``y`` (n,) class indices of the label register
    (integers ``0 .. n_labels - 1``; an estimator's labels go through its ``classes_``).
    """
    probs = simulate(circuit, X, noise=noise, shots=shots, seed=seed).numpy()
    labels = check_labels(y, probs.shape[0], probs.shape[1]).numpy()
    return float(np.mean(probs.argmax(axis=1) == labels))


def noise_study(
    circuit: Circuit,
    X: Any,
    y: Any,
    levels: Any,
    *,
    channel: str = "depolarizing",
    shots: int | None = None,
    seed: int | None = 0,
    native: bool = True,
) -> list[dict[str, float]]:
    """Accuracy of a classifier circuit at each noise strength.

    Noise acts after every gate of the circuit as it runs: with ``native`` (the default) the
    circuit is first synthesised into one-qubit gates and CX
    (:func:`tnml.quantum.native.decompose`; a no-op for a circuit compiled with
    ``gates="native"``), so a dense ``k``-qubit gate is charged as its ``O(4**k)`` CX.

    Parameters
    ----------
    circuit : Circuit
    X : array-like, shape (n, n_features)
        Inputs in [0, 1] (see :func:`circuit_inputs`).
    y : array-like, shape (n,)
        Class indices.
    levels : sequence of float
        Strengths of ``channel`` per gate (per measured bit for "readout").
    channel : {"depolarizing", "amplitude_damping", "dephasing", "readout"}
    shots : int, optional
        Exact probabilities when None.
    native : bool, default=True
        Charge noise per native gate (see above); False charges one error per gate of the
        circuit as given, whatever its width.

    Returns
    -------
    list of dict
        ``{"level", "accuracy"}`` per level, plus one ``level = 0`` row first (noiseless).
    """
    try:
        array = np.atleast_1d(np.asarray(levels, dtype=np.float64))
    except (TypeError, ValueError) as err:
        raise InvalidInputError(f"levels must be a sequence of numbers: {err}") from err
    if array.ndim != 1:
        raise InvalidInputError(f"levels must be one sequence of numbers, got shape {array.shape}")
    values = [float(v) for v in array]
    if native and not circuit.metadata.get("native"):
        from tnml.quantum.native import decompose

        circuit = decompose(circuit)
    rows = [{"level": 0.0, "accuracy": circuit_accuracy(circuit, X, y, shots=shots, seed=seed)}]
    for level in values:
        noise = noise_model(channel, level)
        accuracy = circuit_accuracy(circuit, X, y, noise=noise, shots=shots, seed=seed)
        rows.append({"level": level, "accuracy": accuracy})
    return rows
