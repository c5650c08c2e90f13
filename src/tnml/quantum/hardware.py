"""Hardware-style training: optimise a circuit from shot-estimated label probabilities only.

A device returns counts, not gradients. Each gate ``U_g`` of the circuit (data gates aside)
becomes ``U_g @ prod_j exp(-i theta_gj P_j / 2)`` over the real Pauli strings ``P_j`` on its
qubits (:func:`tnml.tensor.unitary.real_pauli_generators`, which span every small orthogonal
change of the gate), starting at ``theta = 0``. The loss is the cross-entropy of the
shot-estimated probabilities of the true labels, and its gradient is estimated by

- ``"spsa"`` (Spall 1998): two circuit batches per step whatever the number of parameters,
  along a random +-1 direction; or
- ``"parameter_shift"``: the exact shift rule of Pauli rotations,
  ``dp/dtheta = (p(theta + pi/2) - p(theta - pi/2)) / 2``, two batches per parameter (all of
  them, or a random subset per step).

Every probability comes from :func:`tnml.quantum.simulate` with ``shots`` (and ``noise``):
nothing is differentiated through the simulator.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from tnml._validation import check_int
from tnml.exceptions import InvalidInputError
from tnml.quantum.circuit import Circuit, Gate, check_labels
from tnml.quantum.noise import NoiseModel
from tnml.quantum.simulate import feature_rows, simulate
from tnml.tensor.unitary import pauli_rotations, real_pauli_generators

METHODS = ("spsa", "parameter_shift")


class CircuitParameters:
    """The Pauli-rotation angles attached to every non-data gate of a circuit.

    CX gates (named ``"cx"``, as :func:`tnml.quantum.native.decompose` writes them) are
    fixed entanglers and get no angles, so a circuit in native gates keeps its CX count
    while its one-qubit gates are tuned; a block-level circuit (e.g. ``compile(model)``
    of a ``CircuitClassifier``) gets the 6 real rotation angles of each block, which keep
    every block a rotation (2 CX).

    Parameters
    ----------
    circuit : Circuit
        Its gates are the rotations' origin (``theta = 0`` gives it back).

    Attributes
    ----------
    gate_indices : list of int
        Op indices of the trainable gates.
    slices : list of slice
        Where each gate's angles sit in the flat parameter vector.
    n_params : int
    """

    def __init__(self, circuit: Circuit) -> None:
        self.circuit = circuit
        self.gate_indices = [
            i for i in circuit.gate_indices() if getattr(circuit.ops[i], "name", "") != "cx"
        ]
        self._generators: dict[int, Tensor] = {}
        self.slices: list[slice] = []
        start = 0
        for index in self.gate_indices:
            gate = circuit.ops[index]
            assert isinstance(gate, Gate)
            k = len(gate.qubits)
            if k not in self._generators:
                self._generators[k] = real_pauli_generators(k)
            count = self._generators[k].shape[0]
            self.slices.append(slice(start, start + count))
            start += count
        self.n_params = start

    def circuit_at(self, theta: Tensor) -> Circuit:
        """The circuit with every gate ``U_g`` replaced by ``U_g @ R_g(theta_g)``."""
        mapping = {}
        for index, part in zip(self.gate_indices, self.slices, strict=True):
            gate = self.circuit.ops[index]
            angles = theta[part]
            if not bool(torch.any(angles != 0)):
                continue
            rotation = pauli_rotations(angles, self._generators[len(gate.qubits)])
            mapping[index] = gate.matrix @ rotation.to(gate.matrix.dtype)
        return self.circuit.with_matrices(mapping) if mapping else self.circuit


@dataclass
class HardwareFitResult:
    """What :func:`fit_circuit` returns.

    Attributes
    ----------
    circuit : Circuit
        The tuned circuit (gates with the learned rotations folded in).
    theta : Tensor, shape (n_params,)
        The learned angles.
    history : list of dict
        Per step: shot-estimated loss and accuracy on the step's batch, seconds.
    n_circuit_runs : int
        Circuits executed (one per input per parameter setting).
    n_shots : int
        Shots spent in all.
    """

    circuit: Circuit
    theta: Tensor
    history: list[dict[str, float]] = field(default_factory=list)
    n_circuit_runs: int = 0
    n_shots: int = 0


def _loss(probs: Tensor, labels: Tensor, floor: float) -> Tensor:
    """Cross-entropy of estimated probabilities, each clipped below at ``floor``."""
    picked = probs.gather(1, labels[:, None]).squeeze(1)
    return -torch.log(picked.clamp_min(floor)).mean()


def parameter_shift_gradient(
    params: CircuitParameters,
    theta: Tensor,
    X: Tensor,
    labels: Tensor,
    *,
    indices: Any = None,
    shots: int | None = None,
    noise: NoiseModel | None = None,
    seed: int | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Cross-entropy of the true labels and its gradient by the parameter-shift rule.

    ``d p / d theta_j = (p(theta_j + pi/2) - p(theta_j - pi/2)) / 2`` holds exactly for each
    Pauli rotation, with noise or not; with ``shots`` every probability is an estimate.

    Parameters
    ----------
    params : CircuitParameters
    theta : Tensor, shape (n_params,)
    X : Tensor, shape (B, n_features)
    labels : Tensor, shape (B,)
    indices : sequence of int, optional
        The angles to differentiate (the others get 0); all when None.
    shots, noise, seed
        Passed to :func:`tnml.quantum.simulate` (exact probabilities when ``shots`` is None).

    Returns
    -------
    loss : Tensor, shape ()
    grad : Tensor, shape (n_params,)
    probs : Tensor, shape (B, n_labels)
        The (estimated) label probabilities at ``theta``.
    """
    floor = _floor(shots)
    generator = np.random.default_rng(seed)
    n_labels = (
        params.circuit.n_labels or 2 ** params.circuit.registers[params.circuit.label_register]
    )
    theta = torch.as_tensor(theta, dtype=torch.float64)
    if theta.shape != (params.n_params,):
        raise InvalidInputError(
            f"theta must have shape ({params.n_params},), got {tuple(theta.shape)}"
        )
    X = feature_rows(params.circuit, X)  # (B, n_features); one row may come as (n_features,)
    labels = check_labels(labels, X.shape[0], n_labels, name="labels")
    if indices is not None:
        indices = [check_int("an entry of indices", j, 0) for j in indices]
        if any(j >= params.n_params for j in indices):
            raise InvalidInputError(
                f"indices must lie in 0 .. {params.n_params - 1}, got {max(indices)}"
            )

    def raw_at(angles: Tensor) -> Tensor:
        # The shift rule is exact for the raw register distribution, not for its
        # renormalisation over the valid labels; the chain rule below handles that.
        run_seed = int(generator.integers(0, 2**31 - 1))
        return simulate(
            params.circuit_at(angles), X, noise=noise, shots=shots, seed=run_seed,
            valid_only=False,
        )  # fmt: skip

    def true_and_valid(raw: Tensor) -> tuple[Tensor, Tensor]:
        return raw.gather(1, labels[:, None]).squeeze(1), raw[:, :n_labels].sum(1)

    raw = raw_at(theta)
    q, total = true_and_valid(raw)
    total = total.clamp_min(floor)
    centre_probs = raw[:, :n_labels] / total[:, None]
    centre = q / total
    loss = -torch.log(centre.clamp_min(floor)).mean()
    grad = torch.zeros_like(theta)
    chosen = range(params.n_params) if indices is None else indices
    for j in chosen:
        shift = torch.zeros_like(theta)
        shift[j] = math.pi / 2
        q_plus, total_plus = true_and_valid(raw_at(theta + shift))
        q_minus, total_minus = true_and_valid(raw_at(theta - shift))
        dq, dtotal = (q_plus - q_minus) / 2, (total_plus - total_minus) / 2
        dp = (dq - centre * dtotal) / total  # d(q / total)
        grad[j] = (-dp / centre.clamp_min(floor)).mean()
    return loss, grad, centre_probs


def _floor(shots: int | None) -> float:
    """Smallest probability the loss reads: half a shot (estimates can be exactly 0)."""
    return 1.0 / (2 * shots) if shots else 1e-12


def fit_circuit(
    circuit: Circuit,
    X: Any,
    y: Any,
    *,
    method: str = "spsa",
    shots: int | None = 1000,
    noise: NoiseModel | None = None,
    n_steps: int = 50,
    batch_size: int = 32,
    lr: float | None = None,
    perturbation: float = 0.1,
    params_per_step: int | None = None,
    seed: int = 0,
    callback: Callable[[int, dict[str, float]], bool | None] | None = None,
) -> HardwareFitResult:
    """Fine-tune a classifier circuit from shot-estimated label probabilities.

    Parameters
    ----------
    circuit : Circuit
        Unbound classifier circuit (``n_features > 0``, a label register).
    X : array-like, shape (n, n_features)
        Inputs in [0, 1] (already scaled as the circuit's data gates expect).
    y : array-like, shape (n,)
        Class indices ``0 .. n_labels - 1``.
    method : {"spsa", "parameter_shift"}, default="spsa"
    shots : int or None, default=1000
        Shots per circuit run (per input and parameter setting); None uses exact
        probabilities (a check of the optimiser, not something hardware offers).
    noise : NoiseModel, optional
        Noise of the simulated device.
    n_steps : int, default=50
        Optimisation steps; each draws a mini-batch of ``batch_size`` inputs.
    batch_size : int, default=32
    lr : float, optional
        Step size: SPSA's ``a`` (default 0.2, decaying as ``(k + 1 + 5)^-0.602``) or the
        parameter-shift gradient step (default 0.05, constant).
    perturbation : float, default=0.1
        SPSA's ``c`` (decaying as ``(k + 1)^-0.101``).
    params_per_step : int, optional
        Parameter shift only: differentiate this many randomly chosen angles per step
        (all when None).
    seed : int, default=0
        Seeds the batches, directions and the shot sampling.
    callback : callable, optional
        ``callback(step, metrics)``; returning True stops.

    Returns
    -------
    HardwareFitResult
    """
    if method not in METHODS:
        raise InvalidInputError(f"method must be one of {METHODS}, got {method!r}")
    if shots is not None:
        check_int("shots", shots, 1)
    check_int("n_steps", n_steps, 1)
    check_int("seed", seed, 0)
    if lr is not None and not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise InvalidInputError(f"lr must be a finite number > 0 (or None), got {lr!r}")
    if not (
        isinstance(perturbation, (int, float)) and math.isfinite(perturbation) and perturbation > 0
    ):
        raise InvalidInputError(f"perturbation must be a finite number > 0, got {perturbation!r}")
    if params_per_step is not None:
        check_int("params_per_step", params_per_step, 1)
    check_int("batch_size", batch_size, 1)
    if circuit.n_features == 0 or circuit.label_register not in circuit.registers:
        raise InvalidInputError("circuit must be a classifier circuit (inputs and a label)")
    X_all = torch.as_tensor(np.asarray(X, dtype=np.float64))
    if X_all.ndim != 2 or X_all.shape[1] != circuit.n_features:
        raise InvalidInputError(
            f"X must have shape (n, {circuit.n_features}), got {tuple(X_all.shape)}"
        )
    n_labels = circuit.n_labels or 2 ** circuit.registers[circuit.label_register]
    labels_all = check_labels(y, X_all.shape[0], n_labels)
    params = CircuitParameters(circuit)
    theta = torch.zeros(params.n_params, dtype=torch.float64)
    rng = np.random.default_rng(seed)
    result = HardwareFitResult(circuit=circuit, theta=theta)
    floor = _floor(shots)
    step_size = lr if lr is not None else (0.2 if method == "spsa" else 0.05)

    def estimate(angles: Tensor, xb: Tensor) -> Tensor:
        result.n_circuit_runs += xb.shape[0]
        result.n_shots += xb.shape[0] * (shots or 0)
        run_seed = int(rng.integers(0, 2**31 - 1))
        return simulate(params.circuit_at(angles), xb, noise=noise, shots=shots, seed=run_seed)

    for step in range(n_steps):
        start = time.perf_counter()
        batch = rng.choice(X_all.shape[0], size=min(batch_size, X_all.shape[0]), replace=False)
        xb, yb = X_all[batch], labels_all[batch]
        if method == "spsa":
            a_k = step_size / (step + 1 + 5) ** 0.602
            c_k = perturbation / (step + 1) ** 0.101
            delta = torch.as_tensor(rng.choice([-1.0, 1.0], size=params.n_params))
            plus = estimate(theta + c_k * delta, xb)
            minus = estimate(theta - c_k * delta, xb)
            loss_plus, loss_minus = _loss(plus, yb, floor), _loss(minus, yb, floor)
            grad = (loss_plus - loss_minus) / (2 * c_k) * delta
            loss = 0.5 * (loss_plus + loss_minus)
            accuracy = 0.5 * float(
                (plus.argmax(1) == yb).double().mean() + (minus.argmax(1) == yb).double().mean()
            )
        else:
            chosen = (
                None
                if params_per_step is None
                else rng.choice(
                    params.n_params, size=min(params_per_step, params.n_params), replace=False
                )
            )
            n_settings = 1 + 2 * (params.n_params if chosen is None else len(chosen))
            result.n_circuit_runs += n_settings * xb.shape[0]
            result.n_shots += n_settings * xb.shape[0] * (shots or 0)
            loss, grad, centre = parameter_shift_gradient(
                params,
                theta,
                xb,
                yb,
                indices=chosen,
                shots=shots,
                noise=noise,
                seed=int(rng.integers(0, 2**31 - 1)),
            )
            accuracy = float((centre.argmax(1) == yb).double().mean())
            a_k = step_size
        theta = theta - a_k * grad
        metrics = {
            "step": float(step + 1),
            "loss": float(loss),
            "accuracy": accuracy,
            "seconds": time.perf_counter() - start,
        }
        result.history.append(metrics)
        if callback is not None and callback(step, metrics):
            break
    result.theta = theta
    result.circuit = params.circuit_at(theta)
    return result
