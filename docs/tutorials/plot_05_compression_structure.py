"""
Compressing a network with TT layers, and learning a structure from data
========================================================================

Tensor networks inside neural networks, and networks whose shape comes from the data:

1. a tensor-train (TT, also called MPO) linear layer (Novikov et al. 2015) and its plain
   low-rank (SVD) baseline;
2. :func:`tnml.compress`: replace a trained model's Linear layers under one parameter budget
   and heal it by distillation, with the SVD baseline at the same budget beside it;
3. :func:`tnml.structure.learn` (Hashemizadeh et al. 2020): grow a tensor network's graph
   and ranks from a tensor, here a synthetic one whose structure is known and a photograph.
"""

# %%
# A TT linear layer
# -----------------
# A weight matrix of shape ``(out, in)`` with ``in = i_1 i_2 ... i_k`` and
# ``out = o_1 ... o_k`` becomes a chain of ``k`` cores of shape ``(r, o_j, i_j, r')``. The
# forward pass contracts the input with the cores in the cheapest order and never builds the
# dense weight where that costs more. ``from_linear`` factorises a trained layer by TT-SVD;
# ``to_linear`` goes back.
import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.datasets import load_digits, load_sample_image
from sklearn.model_selection import train_test_split

import tnml
from tnml.nn import LowRankLinear, TTLinear
from tnml.plot import plot_network_graph, plot_structure_path
from tnml.tensor import TensorNetwork

torch.manual_seed(0)
dense = torch.nn.Linear(1024, 1024)
tt = TTLinear.from_linear(dense, max_bond=16)
low_rank = LowRankLinear.from_linear(dense, rank=16)
x = torch.randn(8, 1024)
for name, layer in [("dense", dense), ("TT, bond 16", tt), ("low rank 16", low_rank)]:
    n_params = sum(p.numel() for p in layer.parameters())
    error = (layer(x) - dense(x)).norm() / dense(x).norm()
    print(f"{name:>12}: {n_params:>9,} parameters, relative output error {error:.3f}")

# %%
# A random matrix has no structure to find, so both factorisations lose most of it: the
# point of compression is a trained model, whose weights do.
#
# Compressing a trained model
# ---------------------------
# A small network for the 8x8 digits, trained in a few seconds:
digits = load_digits()
X = torch.tensor(digits.data / 16, dtype=torch.float32)
y = torch.tensor(digits.target)
train, test = train_test_split(np.arange(len(y)), test_size=0.3, random_state=0)
model = torch.nn.Sequential(
    torch.nn.Linear(64, 256),
    torch.nn.ReLU(),
    torch.nn.Linear(256, 256),
    torch.nn.ReLU(),
    torch.nn.Linear(256, 10),
)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
for _epoch in range(30):
    for batch in torch.randperm(len(train)).split(64):
        loss = torch.nn.functional.cross_entropy(model(X[train[batch]]), y[train[batch]])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def accuracy(net: torch.nn.Module) -> float:
    with torch.no_grad():
        return (net(X[test]).argmax(1) == y[test]).float().mean().item()


print(f"trained: test accuracy {accuracy(model):.4f}")

# %%
# :func:`tnml.compress` replaces the Linear layers (all of them, or those whose names match
# ``layers``) so that they hold ``ratio`` times fewer parameters, spending the budget where
# each layer's output error falls most, then heals the copy by distillation: it is trained
# to reproduce the original's outputs and hidden states on the data you give (the training
# inputs here, no labels needed). ``metric`` is any score of a model; it is reported before
# replacement, after it and after healing. ``method="svd"`` is the low-rank baseline at the
# same budget and with the same healing: every TT result has its baseline beside it.
heal_data = list(X[train].split(64))
results = {}
for method in ("mpo", "svd"):
    small, report = tnml.compress(
        model, ratio=8.0, method=method, heal_data=heal_data, heal_steps=200, metric=accuracy
    )
    results[method] = report
    print(report)
    print()

# %%
# Read the two reports side by side before choosing. On this small network the low-rank
# baseline keeps more accuracy at the same budget and runs faster; the TT layers start
# further from the original (see "after replacement") and heal more per step. On a sentence
# encoder (all-MiniLM-L6-v2, the project's ``benchmarks/RESULTS.md``) TT was ahead at 2x
# compression; at 4x and 8x, healed for ten minutes, it led on held-out cosine, and on the
# other scores the two were within a few hundredths, less than two draws of the healing data
# moved them. Which wins depends on the model and the budget, which is why every report has
# its baseline.
fig, ax = plt.subplots(figsize=(5.5, 3.2))
stages = ["before", "replaced", "healed"]
for method, report in results.items():
    values = [report.metric_before, report.metric_truncated, report.metric_after]
    shrink = report.params_before / report.params_after
    ax.plot(stages, values, "o-", label=f"{method}: {shrink:.1f}x fewer parameters")
ax.set_ylabel("test accuracy")
ax.set_title("Linear layers compressed 8x")
ax.legend()
fig.tight_layout()

# %%
# Learning a structure: a known ring
# ----------------------------------
# :func:`tnml.structure.learn` starts from a network with an edge of rank one between every
# pair of modes and, step by step, raises the rank of the edge that lowers the error most
# per added parameter, refitting the cores by alternating least squares, until a target
# relative error (``rse``) or a parameter budget (``max_params``). Given a tensor that *is*
# a ring (tensor ring ranks 2, 3, 4, 3, 2), it should find the ring.
seed = torch.Generator().manual_seed(0)
truth = TensorNetwork.ring((6, 6, 6, 6, 6), (2, 3, 4, 3, 2), generator=seed)
found = tnml.structure.learn(truth.to_dense().numpy(), rse=1e-6, random_state=0)
print("true ring edges:", truth.edges)
print("learned edges:  ", found.edges)
print(f"parameters: learned {found.n_params}, true {truth.n_params}; error {found.rse:.1e}")
fig = plot_network_graph(found, title="Learned from a ring tensor")

# %%
# Learning a structure: a photograph
# ----------------------------------
# A photograph as a higher-order tensor: scikit-learn's ``china.jpg`` downsampled to
# 64x64x3 and each side split into 8x8, an order-5 tensor ``8 x 8 x 8 x 8 x 3`` (the
# ``tnml structure`` command chooses such a reshaping for any image or video and writes it in
# its report). The search stops at 10% relative error.
image = load_sample_image("china.jpg").astype(np.float64) / 255
small_image = image[:384, :384].reshape(64, 6, 64, 6, 3).mean(axis=(1, 3))  # 6x6 block means
tensor = small_image.reshape(8, 8, 8, 8, 3)
net = tnml.structure.learn(tensor, rse=0.1, random_state=0)
ratio = tensor.size / net.n_params
print(f"{net.n_params} parameters for {tensor.size} entries ({ratio:.1f}x), error {net.rse:.3f}")
print("edges (mode pair: rank):", net.edges)

# %%
# The path of the search: error against parameters at every accepted step.
fig = plot_structure_path(net.path, title="Greedy search on the photograph")

# %%
# The reconstruction, beside the original:
restored = net.to_dense().numpy().reshape(64, 64, 3).clip(0, 1)
fig, axes = plt.subplots(1, 2, figsize=(6, 3))
axes[0].imshow(small_image)
axes[0].set_title("original, 12,288 entries")
axes[1].imshow(restored)
axes[1].set_title(f"learned network, {net.n_params} parameters")
for ax in axes:
    ax.axis("off")
fig.tight_layout()
