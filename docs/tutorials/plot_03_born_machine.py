"""
A Born machine: exact likelihoods, sampling, inpainting and anomaly scores
==========================================================================

A generative MPS (Han et al. 2018): the network defines a wave function ``psi(x)`` over
binary images and the model is ``p(x) = psi(x)^2 / Z``. Because the normalisation ``Z`` is
one contraction, everything a density model is asked for is exact: the log-likelihood of any
image, the marginal of any set of pixels, and independent samples drawn pixel by pixel from
their exact conditionals, also conditioned on pixels you already know (inpainting). You will

1. fit :class:`tnml.MPSBornMachine` on binarised 8x8 digits and read its likelihood;
2. draw samples, and fill in the hidden half of test images;
3. detect anomalies with :class:`tnml.MPSAnomalyDetector`: a Born machine fitted on one
   digit only, scoring every other digit by its log-likelihood.
"""

# %%
# Binary images
# -------------
# A Born machine over discrete features: here each pixel is 0 or 1 (above half the maximum
# ink). Training and test sets are split before anything is fitted.
import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

import tnml

digits = load_digits()
X = (digits.data > 8).astype(int)
X_train, X_test, y_train, y_test = train_test_split(
    X, digits.target, test_size=0.25, stratify=digits.target, random_state=0
)

# %%
# Fitting by two-site sweeps
# --------------------------
# The default trainer is the sweep of Han et al.: two neighbouring cores are merged, moved
# along the gradient of the negative log-likelihood and split again by SVD, so each bond
# grows (up to ``bond_dim``) where the data need it. The likelihood is exact, so the
# training and test negative log-likelihoods (NLL, in nats per image) can be compared with
# any other density model. The entropy of a uniform model on 64 binary pixels is
# ``64 log 2 = 44.4`` nats.
born = tnml.MPSBornMachine(bond_dim=16, epochs=4, random_state=0).fit(X_train)
print(f"training NLL {-born.score(X_train):.2f} nats, test NLL {-born.score(X_test):.2f} nats")
print(f"uniform model: {64 * np.log(2):.2f} nats")

# %%
# Exact samples
# -------------
# ``sample`` brings the network to canonical form and draws each pixel from its exact
# conditional given those drawn so far: the samples are independent, with no Markov chain
# and no burn-in.
samples = born.sample(32, random_state=0)
fig, axes = plt.subplots(4, 8, figsize=(6, 3))
for ax, image in zip(axes.flat, samples, strict=True):
    ax.imshow(image.reshape(8, 8), cmap="gray_r")
    ax.axis("off")
fig.suptitle("32 independent samples of the Born machine")

# %%
# Inpainting
# ----------
# Hide the bottom half of a test image and sample the hidden pixels from their exact
# conditional distribution given the visible top half (``evidence`` maps feature index to
# observed value). Each row: the original, then three completions.
rows = []
for image in X_test[:5]:
    evidence = {j: int(image[j]) for j in range(32)}  # the top four pixel rows
    rows.append([image, *born.sample(3, evidence=evidence, random_state=1)])
fig, axes = plt.subplots(5, 4, figsize=(4, 5))
for r, row in enumerate(rows):
    for c, image in enumerate(row):
        shown = image.reshape(8, 8).astype(float)
        if c > 0:
            shown[4:] *= 0.6  # the sampled half, drawn lighter
        axes[r, c].imshow(shown, cmap="gray_r", vmin=0, vmax=1)
        axes[r, c].axis("off")
axes[0, 0].set_title("original")
axes[0, 2].set_title("bottom half sampled")
fig.tight_layout()

# %%
# Marginals of any subset of pixels are one contraction too: the probability that the two
# centre pixels of the top row are both ink.
print(np.exp(born.marginal_log_prob([3, 4], [[1, 1]])))

# %%
# Anomaly detection
# -----------------
# :class:`tnml.MPSAnomalyDetector` is a Born machine fitted on normal data only, here the
# zeros of the training set. Its ``score_samples`` is the log-likelihood; ``predict`` marks
# the lowest-scoring ``contamination`` fraction as outliers (-1), the scikit-learn
# convention. How well the score separates zeros from every other test digit is measured by
# the area under the ROC curve.
detector = tnml.MPSAnomalyDetector(bond_dim=8, epochs=4, random_state=0)
detector.fit(X_train[y_train == 0])
scores = detector.score_samples(X_test)
is_zero = y_test == 0
print(f"AUROC, zeros against all other digits: {roc_auc_score(is_zero, scores):.3f}")

fig, ax = plt.subplots(figsize=(6, 3))
bins = np.linspace(scores.min(), scores.max(), 40)
ax.hist(scores[is_zero], bins=bins, alpha=0.7, label="test zeros (normal)")
ax.hist(scores[~is_zero], bins=bins, alpha=0.7, label="other digits")
ax.set_xlabel("log-likelihood under the zeros' Born machine")
ax.legend()
fig.tight_layout()
