"""
MNIST with an MPS: bond dimension, sweeps and the entanglement profile
======================================================================

The model of Stoudenmire & Schwab (2016): handwritten digits downsampled to 14x14, one MPS
site per pixel (196 sites), the label index on the middle site. You will

1. load MNIST from its standard files and downsample it;
2. train the same chain two ways: mini-batch autodiff at a fixed bond dimension, and the
   paper's two-site sweeps, which grow each bond where the data need it;
3. read the entanglement entropy along the chain: how much each cut of the image has to be
   correlated, and which bonds are larger than they need to be.

MNIST is not bundled with tnml. Download the four IDX files (``train-images-idx3-ubyte.gz``,
``train-labels-idx1-ubyte.gz``, ``t10k-images-idx3-ubyte.gz``, ``t10k-labels-idx1-ubyte.gz``,
for example from the PyTorch mirror ``https://ossci-datasets.s3.amazonaws.com/mnist/``) into
a folder and set ``TNML_MNIST_DIR`` to it. Where that folder is absent (as on a machine
without network access, such as the one that may have built this page), the script says so
and runs the same steps on scikit-learn's 8x8 digits, upsampled to 14x14 so that the chain
has the same length; the printed output tells which data produced the numbers below.
"""

# %%
# Loading and downsampling
# ------------------------
# :func:`tnml.data.load_mnist` reads the IDX files (``.gz`` or not) into float32 images
# scaled to ``[0, 1]``; :func:`tnml.data.downsample` averages pixel blocks (28x28 to 14x14
# averages 2x2 blocks).
# A few thousand images keep this page fast; the full set and longer training are in the
# user guide.
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits

import tnml
from tnml.data import downsample, find_mnist_dir, load_mnist
from tnml.plot import plot_entropy_profile, plot_importance_map

N_TRAIN, N_TEST = 3000, 1000
rng = np.random.default_rng(0)
mnist_dir = find_mnist_dir()
if mnist_dir is not None:
    images, labels = load_mnist(mnist_dir, "train")
    test_images, test_labels = load_mnist(mnist_dir, "test")
    pick, pick_test = rng.choice(len(images), N_TRAIN, False), rng.choice(10_000, N_TEST, False)
    X_train = downsample(images[pick], 14).reshape(N_TRAIN, -1)
    X_test = downsample(test_images[pick_test], 14).reshape(N_TEST, -1)
    y_train, y_test = labels[pick], test_labels[pick_test]
    print(f"MNIST from {mnist_dir.name}/: {N_TRAIN} training and {N_TEST} test images, 14x14")
else:
    digits = load_digits()
    # Nearest-neighbour upsampling 8x8 -> 16x16, cropped to 14x14: a 196-site chain.
    big = digits.images.repeat(2, axis=1).repeat(2, axis=2)[:, 1:15, 1:15] / 16
    order = rng.permutation(len(big))
    X_all, y_all = big.reshape(len(big), -1)[order], digits.target[order]
    X_train, y_train, X_test, y_test = X_all[:1350], y_all[:1350], X_all[1350:], y_all[1350:]
    print("MNIST not found (set TNML_MNIST_DIR): scikit-learn's digits upsampled to 14x14")
print(X_train.shape, X_test.shape)

# %%
# Autodiff at a fixed bond dimension
# ----------------------------------
# Every bond has dimension ``D = 10``; all cores are trained together by Adam on the
# cross-entropy. The contraction renormalises its intermediates and keeps their norms as
# logarithms, so float32 stays finite over the 196 sites.
autodiff = tnml.MPSClassifier(bond_dim=10, epochs=6, random_state=0)
autodiff.fit(X_train, y_train)
print(f"autodiff, D = 10: test accuracy {autodiff.score(X_test, y_test):.4f}")

# %%
# Two-site sweeps that grow the bonds
# -----------------------------------
# The paper's algorithm: start from bond dimension 2, and at each pair of neighbouring sites
# contract the two cores into one bond tensor, take gradient steps on it, and split it back
# by SVD, keeping singular values above ``cutoff`` (relative) up to ``max_bond``. Each bond
# ends as large as the data made it, not as large as it was allowed to be.
sweeps = tnml.MPSClassifier(trainer="sweep", bond_dim=2, max_bond=16, epochs=2, random_state=0)
sweeps.fit(X_train, y_train)
print(f"sweeps, D <= 16: test accuracy {sweeps.score(X_test, y_test):.4f}")

# %%
# The entanglement profile
# ------------------------
# Cut the chain at bond ``b``: the state of the label-independent part splits into
# ``sites 0..b`` and the rest, and the Schmidt values across that cut say how correlated the
# two halves are. :func:`tnml.explain.entanglement_entropy` returns the von Neumann and
# Renyi-2 entropies at every bond with the spectrum; ``log D`` bounds both. Where the entropy
# stays far under ``log D``, the bond could be smaller; where it touches the bound, the
# model would use more.
profile = tnml.explain.entanglement_entropy(sweeps)
fig = plot_entropy_profile(profile, title="Sweeps: entropy along the chain")


# %%
# How much of each bond is used: the number of Schmidt values above 1% of the largest, per
# bond, for both models (14 sites make one pixel row; the grey lines mark the rows). Bonds
# that cut through blank border rows need little; the bonds through the middle of the digit
# use all they have, which is where a larger ``D`` would help. The label index counts on the
# side of the cut that holds it: the autodiff model keeps it on the middle site, while the
# sweeps carry it along as they go and end with it on site
# ``sweeps.module_.output_site``, so there the counts are high right from the first bond.
def used(profile, threshold=0.01):
    return [int((s > threshold * s[0]).sum()) for s in profile.schmidt_values]


fig, ax = plt.subplots(figsize=(7, 3))
for name, model in [("autodiff, D = 10", autodiff), ("sweeps, D <= 16", sweeps)]:
    prof = tnml.explain.entanglement_entropy(model)
    ax.step(prof.bonds, used(prof), where="mid", label=name)
for row in range(1, 14):
    ax.axvline(14 * row - 0.5, color="0.9", zorder=0)
ax.set_xlabel("bond b (between pixels b and b + 1, row by row)")
ax.set_ylabel("Schmidt values > 1%")
ax.legend()
fig.tight_layout()
print("label site of the swept model:", sweeps.module_.output_site)

# %%
# Smaller bonds after training
# ----------------------------
# :func:`tnml.estimators.compress_bonds` brings a trained MPS to canonical form and truncates
# every bond to at most ``D`` by SVD; the discarded weight says what was cut. The accuracy
# that remains shows how much of the bond dimension the classifier needs.
for d in (2, 4, 6):
    small, discarded = tnml.estimators.compress_bonds(autodiff, d)
    accuracy = small.score(X_test, y_test)
    print(f"truncated to D = {d}: discarded weight {discarded:.3f}, test accuracy {accuracy:.4f}")

# %%
# What the model looks at: :func:`tnml.explain.feature_importance` measures how much each
# pixel supports the predicted class, here averaged over the test set.
importance = tnml.explain.feature_importance(autodiff, X_test[:200])
fig = plot_importance_map(np.abs(importance).mean(axis=0), (14, 14))
