"""
From a trained network to a circuit on a device
===============================================

The promise of Huggins et al. (2019): a tensor network trained on a classical computer is a
quantum circuit, so the same model runs on a small, noisy quantum processor. This tutorial
goes the whole way with a classifier and a generative model:

1. train a classifier **in circuit form** (every tensor an orthogonal gate) and compile it,
   full width or with qubits reset and reused; check the circuit against the model and
   against Qiskit Aer;
2. compile it to **native gates** (one-qubit gates and CX) on a device's coupling map within
   a CX budget, and write OpenQASM 3 with the device's qubit numbers;
3. measure what **noise** does to its accuracy;
4. **fine-tune** it the way hardware would: from shot estimates only, with SPSA;
5. turn a **Born machine** into layers of two-qubit gates and see the fidelity per layer.

You need the ``quantum`` extra for the Qiskit steps: ``pip install ".[quantum]"`` in your
clone of tnml (see :doc:`/getting_started`). Everything else runs on tnml's own simulator.
"""

# %%
# The task: zeros against ones
# ----------------------------
# A two-class problem on scikit-learn's 8x8 digits keeps the circuits small. Pixels scaled to
# ``[0, 1]`` are what the gates read: feature ``x`` enters a qubit as the state
# ``cos(pi x / 2)|0> + sin(pi x / 2)|1>``.
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import tnml
from tnml import quantum

digits = load_digits()
keep = digits.target < 2
X_train, X_test, y_train, y_test = train_test_split(
    digits.data[keep] / 16, digits.target[keep], test_size=0.3, random_state=0
)

# %%
# 1. A classifier in circuit form
# -------------------------------
# ``unitary=True`` trains a tree tensor network whose every node is an orthogonal two-qubit
# gate (bond dimension 2: one qubit per bond). At the root one qubit is measured: its
# outcome is the label. The forward pass during training *is* the exact density-matrix
# simulation of that circuit, so what is trained is what will run.
clf = tnml.TTNClassifier(bond_dim=2, unitary=True, layout="image", epochs=10, random_state=0)
clf.fit(X_train, y_train)
print(f"test accuracy of the trained model: {clf.score(X_test, y_test):.4f}")

# %%
# :func:`tnml.quantum.compile` turns it into a :class:`~tnml.quantum.Circuit`. The
# ``"full"`` schedule gives every pixel its own qubit (64 qubits); ``"efficient"`` (the
# :term:`qubit-efficient schedule`) measures and resets each qubit a gate has finished
# with and reuses it for the next pixels, so the tree needs only ``log2(64) + 1 = 7``
# qubits.
full = quantum.compile(clf, schedule="full")
efficient = quantum.compile(clf, schedule="efficient")
print(f"full width: {full.num_qubits} qubits; qubit-efficient: {efficient.num_qubits} qubits")

# %%
# The circuit's inputs are the scaled features (:func:`tnml.quantum.circuit_inputs` applies
# the estimator's scaling). :func:`tnml.quantum.simulate` gives the exact label
# probabilities, and they are the model's own:
inputs = quantum.circuit_inputs(clf, X_test)
p_circuit = quantum.simulate(efficient, inputs).numpy()
print("largest difference to predict_proba:", np.abs(p_circuit - clf.predict_proba(X_test)).max())

# %%
# The same circuit in Qiskit: :func:`tnml.quantum.to_qiskit` builds a ``QuantumCircuit`` for
# one bound input, and :func:`tnml.quantum.run_aer` runs the exported circuit on Qiskit Aer,
# an independent simulator.
p_aer = quantum.run_aer(efficient, inputs[:5]).numpy()
print("Aer against tnml, 5 test images:", np.abs(p_aer - p_circuit[:5]).max())
qc = quantum.to_qiskit(efficient.bind(inputs[0]))
print(f"Qiskit circuit: {qc.num_qubits} qubits, {qc.size()} operations")

# %%
# 2. Native gates on a device
# ---------------------------
# A real device runs one-qubit gates and CX between coupled qubits only (its
# :term:`native gates` on its :term:`coupling map`). With
# ``gates="native"`` every gate is synthesised into those (a real two-qubit rotation costs
# exactly 2 CX), placed on the device's coupling map and routed with SWAPs where the
# circuit's pairs are not neighbours. ``target`` names a layout (``"line"``,
# ``"heavy-hex"`` as on IBM devices, ``"all-to-all"``) or takes a Qiskit ``Target`` or
# backend; ``max_two_qubit_gates`` refuses a circuit that would exceed a CX budget.
native = quantum.compile(
    clf, schedule="efficient", gates="native", target="heavy-hex", max_two_qubit_gates=1000
)
meta = native.metadata
print(f"{meta['two_qubit_gates']} CX, depth {meta['depth']} (one-qubit rotations and CX)")
print("physical qubits:", meta["physical_qubits"])
p_native = quantum.simulate(native, inputs).numpy()
print("native circuit against the model:", np.abs(p_native - clf.predict_proba(X_test)).max())

# %%
# ``metadata["depth"]`` counts layers of tnml's native gates, where a one-qubit gate is one
# arbitrary rotation. Transpiled to IBM's basis ``rz, sx, x, cx`` (what
# :func:`tnml.quantum.transpile_report` and ``tnml compile`` report) a rotation becomes up to
# five basis gates, so that depth is larger:
report = quantum.transpile_report(native, physical=True)
print(f"transpiled to rz/sx/x/cx: depth {report['depth']}, gates {report['counts']}")

# %%
# OpenQASM 3 for the device, written to a file. ``"heavy-hex"`` is the 127-qubit heavy-hex
# lattice of IBM's Eagle processors, so the program declares ``qubit[127]`` and uses the
# device's own qubit numbers (``physical=True``): every ``cx`` acts on a coupled pair. Each
# pixel is an ``input float[64]`` (a 64-bit float) that the job binds when it is submitted.
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

qasm = quantum.to_qasm3(native, physical=True)
qasm_path = Path(tempfile.mkdtemp()) / "zeros_ones.qasm"
qasm_path.write_text(qasm)
print(f"wrote {qasm_path.name}: {qasm_path.stat().st_size:,} bytes")
lines = qasm.splitlines()
n_inputs = sum(line.startswith("input") for line in lines)
body = [line for line in lines if not line.startswith("input")]
print("\n".join(lines[:4]))
print(f"... {n_inputs} input declarations in all, then the gates:")
print("\n".join(body[2:12]))
print(f"... {len(lines)} lines")

# %%
# 3. Noise
# --------
# :func:`tnml.quantum.noise_study` simulates the circuit with a noise channel after every
# native gate (depolarising by default: each one- or two-qubit gate is followed by the
# depolarising channel of strength ``p``) and measures the accuracy at each strength.
# Today's devices have two-qubit error rates around ``1e-3 .. 1e-2``.
#
# Depolarising noise pulls the label qubit towards the maximally mixed state, so both label
# probabilities drift towards 1/2. The exact accuracy only needs the right label to stay
# above 1/2; a device, though, estimates the probabilities from a finite number of shots, so
# the margin ``p(correct) - 1/2`` is what decides how many shots a prediction costs. Both
# are plotted: the exact accuracy, the accuracy from 100 shots per image, and the mean
# probability of the correct label.
levels = [1e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1]
exact = quantum.noise_study(native, inputs, y_test, levels)  # rows for 0 and each level
shots = quantum.noise_study(native, inputs, y_test, levels, shots=100, seed=0)
p_correct = []
for level in levels:
    probs = quantum.simulate(native, inputs, noise=quantum.NoiseModel.depolarizing(level))
    p_correct.append(float(probs.numpy()[np.arange(len(y_test)), y_test].mean()))

fig, ax = plt.subplots(figsize=(6, 3.4))
for rows, marker, label in [(exact, "o-", "accuracy, exact"), (shots, "s-", "accuracy, 100 shots")]:
    ax.semilogx(levels, [r["accuracy"] for r in rows if r["level"] > 0], marker, label=label)
ax.semilogx(levels, p_correct, "^-", label="mean p(correct label)")
ax.axhline(0.5, color="grey", linestyle=":", label="chance")
ax.set_xlabel("depolarising strength per native gate")
ax.set_title(f"{meta['two_qubit_gates']} CX on heavy-hex")
ax.legend(fontsize=8)
fig.tight_layout()
for level, margin in zip(levels, p_correct, strict=True):
    print(f"p = {level:g}: mean probability of the correct label {margin:.3f}")

# %%
# 4. Fine-tuning from shots
# -------------------------
# On hardware there are no gradients by backpropagation, only label frequencies from a
# finite number of shots. :func:`tnml.quantum.fit_circuit` optimises the circuit's gate
# angles from such estimates alone: :term:`SPSA` (two circuit evaluations per step, whatever
# the number of angles) or the parameter-shift rule (exact gradients from shifted circuits).
# Here a model trained for one epoch only is fine-tuned with 1,000 shots per circuit under
# depolarising noise of ``1e-3``.
weak = tnml.TTNClassifier(bond_dim=2, unitary=True, layout="image", epochs=1, random_state=1)
weak.fit(X_train, y_train)
circuit = quantum.compile(weak, schedule="efficient")
train_inputs = quantum.circuit_inputs(weak, X_train)
noise = quantum.NoiseModel.depolarizing(1e-3)
result = quantum.fit_circuit(
    circuit, train_inputs, y_train, method="spsa", shots=1000, noise=noise, n_steps=30, seed=0
)
before = quantum.circuit_accuracy(circuit, inputs, y_test)
after = quantum.circuit_accuracy(result.circuit, inputs, y_test)
print(f"test accuracy from exact simulation: before {before:.3f}, after {after:.3f}")

# %%
# 5. A Born machine as layers of two-qubit gates
# ----------------------------------------------
# A Born machine's MPS is a state; with ``gates="native"`` it becomes ``L`` staircase layers of
# two-qubit rotations (:term:`staircase layer`, Ran 2020). Each layer is found analytically:
# truncate the MPS to bond dimension 2, which a staircase of two-qubit gates prepares exactly, and
# apply that staircase's inverse (the *disentangler*) to the MPS, which leaves a less entangled
# state for the next layer. All layers are then optimised together (Rudolph et al.). The
# :term:`fidelity` ``|<psi|C|0>|^2`` to the trained model says how well ``L`` layers do; the
# ``callback`` reports it after each layer is added, for Ran's analytic layers alone and after the
# joint optimisation. With qubits reset and reused, the 64 pixels are drawn on ``L + 1`` qubits;
# the reuse costs extra routing on heavy-hex, printed below. A bond-8 MPS over 64 pixels holds far
# more entanglement than a few layers of two-qubit gates can make, and the numbers say so.
born = tnml.MPSBornMachine(bond_dim=8, epochs=3, random_state=0)
born.fit((digits.data > 8).astype(int))
progress = []
state = quantum.compile(
    born,
    schedule="efficient",
    gates="native",
    target="heavy-hex",
    layers=4,
    callback=progress.append,
)
for row in progress:
    print(
        f"{row['layers']} layers: fidelity {row['fidelity']:.3f} "
        f"(analytic layers only: {row['fidelity_analytic']:.3f})"
    )
wide = quantum.compile(born, gates="native", target="heavy-hex", layers=4)
print(
    f"full width: {wide.metadata['two_qubit_gates']} CX on {wide.num_qubits} qubits; "
    f"qubit-efficient: {state.metadata['two_qubit_gates']} CX on {state.num_qubits} qubits"
)

fig, ax = plt.subplots(figsize=(5.5, 3.2))
layers = [row["layers"] for row in progress]
ax.plot(layers, [row["fidelity"] for row in progress], "o-", label="optimised together")
ax.plot(layers, [row["fidelity_analytic"] for row in progress], "s--", label="analytic (Ran)")
ax.set_xlabel("staircase layers")
ax.set_ylabel("fidelity to the Born machine")
ax.set_xticks(layers)
ax.legend()
fig.tight_layout()

# %%
# Samples of the circuit follow ``|<x|C|0>|^2``: with a fidelity below one they are samples
# of the circuit's state, not exactly of the Born machine. :func:`tnml.quantum.sample`
# draws them shot by shot.
images = quantum.sample(state, 16, seed=0).numpy()
fig, axes = plt.subplots(2, 8, figsize=(6, 1.8))
for ax, image in zip(axes.flat, images, strict=True):
    ax.imshow(image.reshape(8, 8), cmap="gray_r")
    ax.axis("off")
fig.suptitle(f"Shots of the {layers[-1]}-layer circuit")

# %%
# From the command line
# ---------------------
# The command line trains on all ten digits. Ten classes need four label qubits, so a
# unitary tree needs bond dimension 16 (four qubits per bond, gates on eight qubits): exact,
# but far too many CX for a device. The native route for ten classes is
# :class:`tnml.CircuitClassifier`, a classifier built from two-qubit blocks on a line of
# qubits (about 3 s per epoch on two CPU cores; more epochs and blocks per feature raise its
# accuracy, at more CX):
#
# .. code-block:: bash
#
#    tnml train digits --model circuit --n-qubits 8 --epochs 5 --out circuit.tnml
#    tnml compile circuit.tnml --native --target heavy-hex --max-2q 2000 --out circuit.qasm
#    tnml noise-study circuit.tnml --levels 1e-3,1e-2 --n-samples 100 --out noise/
#
# ``tnml compile`` prints the qubits it placed the circuit on, the CX count and the depth.
# The noise study keeps an 8-qubit density matrix per test image through every gate, about
# 0.7 s per image and noise level on two CPU cores; ``--n-samples`` scores the first images
# only.
# See :doc:`/cli` for every option.
