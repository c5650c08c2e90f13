"""
First classifier: digits, the scikit-learn and PyTorch faces, save and load
===========================================================================

A matrix product state (MPS) classifier after Stoudenmire & Schwab (2016) on scikit-learn's
8x8 handwritten digits, which ship with scikit-learn (no download). You will

1. train :class:`tnml.MPSClassifier` like any scikit-learn estimator and read its accuracy;
2. use the same model as a plain ``torch.nn.Module`` inside your own training loop;
3. save it to one file and load it back, predicting identically.

Every number and figure on this page comes from running this script when the documentation
was built.
"""

# %%
# The data
# --------
# 1,797 images of 8x8 pixels with values 0..16. An MPS classifier reads features in
# ``[0, 1]``: each pixel ``x`` becomes the two-vector ``[cos(pi x / 2), sin(pi x / 2)]``, one
# site of the chain per pixel, so the chain has 64 sites.
import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.metrics import confusion_matrix
from sklearn.model_selection import train_test_split

import tnml

X, y = load_digits(return_X_y=True)
X_train, X_test, y_train, y_test = train_test_split(
    X / 16, y, test_size=0.25, stratify=y, random_state=0
)
print(X_train.shape, X_test.shape)

# %%
# The scikit-learn face
# ---------------------
# ``bond_dim`` is the bond dimension ``D``: the size of the matrices in the chain, which
# bounds how much the chain can correlate the pixels on either side of any cut. Training is
# mini-batch Adam on the cross-entropy with 10% of the training set held out for validation;
# the model of the best validation epoch is kept.
clf = tnml.MPSClassifier(bond_dim=10, epochs=10, random_state=0)
clf.fit(X_train, y_train)
accuracy = clf.score(X_test, y_test)
print(f"test accuracy: {accuracy:.4f}")

# %%
# ``history_`` holds one record per epoch; ``best_epoch_`` is the epoch of the lowest
# validation loss, whose model was kept. The test set above was used for nothing but the
# final score.
epochs = [record["epoch"] for record in clf.history_]
fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(epochs, [r["train_loss"] for r in clf.history_], label="training loss")
ax.plot(epochs, [r["val_loss"] for r in clf.history_], label="validation loss")
ax.axvline(clf.best_epoch_, color="grey", linestyle=":", label="kept")
ax.set_xlabel("epoch")
ax.set_ylabel("cross-entropy")
ax.legend()
ax.set_title(f"MPS classifier, D = 10: test accuracy {accuracy:.3f}")
fig.tight_layout()

# %%
# The errors it makes, as a confusion matrix (rows: true digit, columns: predicted):
fig, ax = plt.subplots(figsize=(4.5, 4))
ax.imshow(confusion_matrix(y_test, clf.predict(X_test)), cmap="Blues")
ax.set_xlabel("predicted")
ax.set_ylabel("true")
ax.set_xticks(range(10))
ax.set_yticks(range(10))
fig.tight_layout()

# %%
# It is a scikit-learn estimator, so it fits in pipelines, grid searches and
# ``cross_val_score``, and ``predict_proba`` gives class probabilities:
print(clf.predict_proba(X_test[:3]).round(3))

# %%
# The PyTorch face
# ----------------
# ``clf.module_`` is the fitted network, a ``torch.nn.Module`` mapping a batch of features
# ``(batch, 64)`` to logits ``(batch, 10)``. The same class,
# :class:`tnml.nn.MPSClassifierModule`, can be built directly and trained by any PyTorch
# loop; here, ten steps of plain Adam on a fresh module.
module = tnml.nn.MPSClassifierModule(n_features=64, n_classes=10, bond_dim=10)
optimizer = torch.optim.Adam(module.parameters(), lr=1e-2)
inputs = torch.tensor(X_train, dtype=torch.float32)
targets = torch.tensor(y_train)
torch.manual_seed(0)
for step in range(10):
    batch = torch.randint(len(inputs), (64,))
    loss = torch.nn.functional.cross_entropy(module(inputs[batch]), targets[batch])
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if step % 3 == 0:
        print(f"step {step}: loss {loss.item():.3f}")

# %%
# The logits of the fitted module are the estimator's: ``predict_proba`` is their softmax.
with torch.no_grad():
    logits = clf.module_(torch.tensor(X_test[:3], dtype=torch.float32))
print(torch.softmax(logits, dim=1).numpy().round(3))

# %%
# Save and load
# -------------
# :func:`tnml.io.save` writes one ``safetensors`` file (the tensors) with a JSON header (the
# parameters, the classes, the training history); no pickle, so loading a file cannot run
# code. The write goes to a temporary name first, so a crash never leaves half a file.
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

path = Path(tempfile.mkdtemp()) / "digits.tnml"
tnml.io.save(clf, path)
loaded = tnml.io.load(path)
same = np.array_equal(loaded.predict(X_test), clf.predict(X_test))
print(f"{path.stat().st_size / 1024:.0f} KiB on disk; identical predictions: {same}")

# %%
# The same model from the command line: ``tnml train digits --out digits.tnml`` trains
# it, ``tnml evaluate digits.tnml digits`` scores it and ``tnml info digits.tnml`` shows what
# the file holds (see :doc:`/cli`).
