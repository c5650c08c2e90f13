"""Unitary MPS and tree classifiers: tensor networks that are quantum circuits as they train.

Every tensor is a real orthogonal gate ``U = base @ expm(A - A^T)`` (:mod:`tnml.tensor.unitary`)
on a few qubits, so gradient steps on ``A`` never leave the set of circuits. The forward pass
is the exact classical evaluation of the circuit (:mod:`tnml.tensor.channel`): discarded qubits
are traced out, and the label is what the label qubits measure (Huggins, Patel, Whaley &
Stoudenmire 2019). ``tnml.quantum.compile`` turns a module into a gate-level circuit whose
simulation gives the same probabilities.

Shapes: input ``x`` ``(B, N)`` with features in [0, 1]; each becomes the qubit state
``[cos(pi x/2), sin(pi x/2)]``. ``forward`` returns the log of the label probabilities,
``(B, L)``, which cross-entropy training uses as logits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from tnml._validation import check_int
from tnml.exceptions import InvalidInputError
from tnml.features import embed
from tnml.nn.ttn import resolve_layout
from tnml.tensor.born import mps_log_prob
from tnml.tensor.channel import (
    label_distribution,
    mps_channel_density,
    tree_channel_density,
    tree_gate_sizes,
)
from tnml.tensor.mps import MPS, mps_canonicalize
from tnml.tensor.ttn import TreeLayout, tree_layout_1d, tree_layout_2d
from tnml.tensor.unitary import complete_rows, n_qubits_of, orthogonal

UNITARY_INITS = ("identity", "random")


def n_label_qubits(n_classes: int) -> int:
    """Qubits that hold a label among ``n_classes``: ``ceil(log2 n_classes)``, at least 1."""
    return max(1, math.ceil(math.log2(n_classes)))


def _check_common(n_features: int, n_classes: int, bond_dim: int, init: str) -> tuple[int, int]:
    check_int("n_features", n_features, minimum=1)
    check_int("n_classes", n_classes, minimum=2)
    n_bond = n_qubits_of(bond_dim, "bond_dim")
    n_label = n_label_qubits(n_classes)
    if n_bond < n_label:
        raise InvalidInputError(
            f"bond_dim={bond_dim} gives {n_bond} bond qubit(s) but {n_classes} classes need "
            f"{n_label} label qubits: use bond_dim >= {2**n_label}"
        )
    if init not in UNITARY_INITS:
        raise InvalidInputError(f"init must be one of {UNITARY_INITS}, got {init!r}")
    return n_bond, n_label


def _initial_gates(
    count: int, dim: int, init: str, init_std: float, generator: torch.Generator | None
) -> tuple[Tensor, Tensor]:
    """``(base, A)`` for ``count`` gates of size ``dim``: identity or Haar-random bases and
    ``N(0, init_std^2)`` generators."""
    noise = init_std * torch.randn(count, dim, dim, generator=generator, dtype=torch.float64)
    if init == "identity":
        base = torch.eye(dim, dtype=torch.float64).expand(count, dim, dim).clone()
    else:
        gauss = torch.randn(count, dim, dim, generator=generator, dtype=torch.float64)
        q, r = torch.linalg.qr(gauss)
        base = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1))[:, None, :]
    return base, noise


def _qubit_states(x: Tensor, n_features: int) -> Tensor:
    if x.ndim != 2 or x.shape[1] != n_features:
        raise InvalidInputError(f"x must have shape (batch, {n_features}), got {tuple(x.shape)}")
    return embed(x, "trig", 2)


class _UnitaryClassifier(nn.Module):
    """What the unitary classifiers share: the readout of their label qubits."""

    n_features: int
    n_classes: int
    bond_dim: int
    n_bond_qubits: int
    n_label_qubits: int
    init: str
    init_std: float

    def _density(self, phi: Tensor) -> Tensor:
        """Density of the qubits left at the end, ``(B, N, 2)`` -> ``(B, n, n)``."""
        raise NotImplementedError

    def label_probabilities(self, x: Tensor) -> Tensor:
        """``p(l | x)`` as the circuit measures it, ``(B, N)`` -> ``(B, L)``."""
        rho = self._density(_qubit_states(x, self.n_features))
        return label_distribution(rho, self.n_label_qubits, self.n_classes)

    def forward(self, x: Tensor) -> Tensor:
        """Log label probabilities, ``(B, N)`` -> ``(B, L)``."""
        probs = self.label_probabilities(x)
        return torch.log(probs.clamp_min(torch.finfo(probs.dtype).tiny))

    def config(self) -> dict[str, object]:
        """The constructor arguments that rebuild this module's architecture (JSON-able)."""
        return {
            "n_features": self.n_features,
            "n_classes": self.n_classes,
            "bond_dim": self.bond_dim,
            "init": self.init,
            "init_std": self.init_std,
        }

    def extra_repr(self) -> str:
        return (
            f"n_features={self.n_features}, n_classes={self.n_classes}, "
            f"bond_dim={self.bond_dim} ({self.n_bond_qubits} bond qubits)"
        )


class UnitaryMPSClassifierModule(_UnitaryClassifier):
    """The qubit-efficient MPS classifier circuit as a module.

    ``V = log2(bond_dim)`` bond qubits start in ``|0...0>``; step ``i`` brings in the qubit of
    feature ``i``, applies the orthogonal gate ``U_i`` on the ``V + 1`` qubits and discards
    the first. After the last step the first ``ceil(log2 L)`` bond qubits are measured: their
    value is the label.

    Parameters
    ----------
    n_features : int
        ``N``, one step (gate) per feature.
    n_classes : int
        ``L >= 2``.
    bond_dim : int, default=2
        ``D = 2^V``, a power of two with ``V >= ceil(log2 L)``.
    init : {"identity", "random"}, default="identity"
        Gate bases: the identity (each step then shifts the bond and the label starts as the
        measurement of a late feature qubit) or Haar-random orthogonal matrices.
    init_std : float, default=0.1
        Standard deviation of the generators ``A`` at initialisation.

    Attributes
    ----------
    base : Tensor, shape (N, 2D, 2D)
        Buffer of fixed orthogonal matrices.
    generators : Parameter, shape (N, 2D, 2D)
        ``A``: the gates are ``base @ expm(A - A^T)``.
    """

    def __init__(
        self,
        n_features: int,
        n_classes: int,
        bond_dim: int = 2,
        *,
        init: str = "identity",
        init_std: float = 0.1,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.n_bond_qubits, self.n_label_qubits = _check_common(
            n_features, n_classes, bond_dim, init
        )
        self.n_features = n_features
        self.n_classes = n_classes
        self.bond_dim = int(bond_dim)
        self.init = init
        self.init_std = float(init_std)
        dim = 2 * bond_dim
        factory = {"device": device, "dtype": dtype}
        self.register_buffer("base", torch.empty(n_features, dim, dim, **factory))
        self.generators = nn.Parameter(torch.empty(n_features, dim, dim, **factory))
        self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Draw the bases and generators anew (see ``init`` and ``init_std``)."""
        base, noise = _initial_gates(
            self.n_features, 2 * self.bond_dim, self.init, self.init_std, generator
        )
        with torch.no_grad():
            self.base.copy_(base)
            self.generators.copy_(noise)

    def unitaries(self) -> Tensor:
        """The gates, shape (N, 2D, 2D), orthogonal."""
        return orthogonal(self.base, self.generators)

    def _density(self, phi: Tensor) -> Tensor:
        return mps_channel_density(self.unitaries(), phi)


class UnitaryTTNClassifierModule(_UnitaryClassifier):
    """The tree classifier circuit (Huggins et al. 2019) as a module.

    Leaves are the feature qubits. Node ``(l, k)`` of the binary tree applies an orthogonal
    gate to the qubits of its two children (left first), keeps the first
    ``min(V, w_left + w_right)`` of them and discards the rest; the root's first
    ``ceil(log2 L)`` qubits are measured for the label. With ``bond_dim=2`` every gate acts on
    two qubits and keeps one.

    Parameters
    ----------
    n_features : int
        ``N >= 2`` leaves.
    n_classes : int
    bond_dim : int, default=2
        ``2^V``: a node keeps at most ``V`` qubits.
    layout : "1d", "image" or (int, int), default="1d"
        Neighbouring features are paired in order ("1d") or as pixels of a
        ``height x width`` image (alternating rows and columns; "image" for a square).
    init, init_std
        As in :class:`UnitaryMPSClassifierModule`.

    Attributes
    ----------
    tree : TreeLayout
    gate_sizes : list of list of (int, int, int)
        ``(w_left, w_right, w_kept)`` of every node.
    generators : ParameterList
        One stacked parameter ``(G, n, n)`` per gate size ``n`` (nodes in ``node_slots``).
    """

    def __init__(
        self,
        n_features: int,
        n_classes: int,
        bond_dim: int = 2,
        *,
        layout: str | Sequence[int] = "1d",
        init: str = "identity",
        init_std: float = 0.1,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        check_int("n_features", n_features, minimum=2)
        self.n_bond_qubits, self.n_label_qubits = _check_common(
            n_features, n_classes, bond_dim, init
        )
        spec = resolve_layout(layout, n_features)
        self.n_features = n_features
        self.n_classes = n_classes
        self.bond_dim = int(bond_dim)
        self.layout = spec
        self.init = init
        self.init_std = float(init_std)
        self.tree: TreeLayout = (
            tree_layout_1d(n_features) if spec == "1d" else tree_layout_2d(*spec)
        )
        self.gate_sizes = tree_gate_sizes(self.tree, self.n_bond_qubits)
        if self.gate_sizes[-1][0][2] < self.n_label_qubits:
            raise InvalidInputError(
                f"{n_features} features cannot carry {self.n_label_qubits} label qubits"
            )
        # Nodes whose gates have the same size share one stacked parameter.
        dims = sorted({wl + wr for row in self.gate_sizes for wl, wr, _ in row})
        self.node_slots: list[list[tuple[int, int]]] = []
        counts = dict.fromkeys(dims, 0)
        for row in self.gate_sizes:
            slots = []
            for wl, wr, _ in row:
                slots.append((dims.index(wl + wr), counts[wl + wr]))
                counts[wl + wr] += 1
            self.node_slots.append(slots)
        factory = {"device": device, "dtype": dtype}
        self.generators = nn.ParameterList(
            nn.Parameter(torch.empty(counts[w], 2**w, 2**w, **factory)) for w in dims
        )
        for i, w in enumerate(dims):
            self.register_buffer(f"base_{i}", torch.empty(counts[w], 2**w, 2**w, **factory))
        self.reset_parameters()

    def bases(self) -> list[Tensor]:
        """The fixed orthogonal parts, one stacked buffer per gate size."""
        return [getattr(self, f"base_{i}") for i in range(len(self.generators))]

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Draw the bases and generators anew (see ``init`` and ``init_std``)."""
        with torch.no_grad():
            for base, gen in zip(self.bases(), self.generators, strict=True):
                b, a = _initial_gates(
                    gen.shape[0], gen.shape[1], self.init, self.init_std, generator
                )
                base.copy_(b)
                gen.copy_(a)

    def unitaries(self) -> list[list[Tensor]]:
        """Every node's gate, ``[layer][k]`` of shape ``(2^(wl + wr), 2^(wl + wr))``."""
        stacks = [
            orthogonal(base, gen) for base, gen in zip(self.bases(), self.generators, strict=True)
        ]
        return [[stacks[g][s] for g, s in row] for row in self.node_slots]

    def _density(self, phi: Tensor) -> Tensor:
        return tree_channel_density(self.tree, self.unitaries(), self.n_bond_qubits, phi)

    def config(self) -> dict[str, object]:
        """The constructor arguments that rebuild this module's architecture (JSON-able)."""
        return {**super().config(), "layout": self.layout}

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, layout={self.layout}"


def qubit_born_bonds(n_sites: int, bond_dim: int) -> list[int]:
    """Bond dimensions ``D_0 .. D_N`` of a qubit MPS in right-canonical form:
    ``min(bond_dim, 2^i, 2^(N - i))`` (``D_0 = D_N = 1``)."""
    return [min(bond_dim, 2 ** min(i, n_sites - i)) for i in range(n_sites + 1)]


class UnitaryMPSBornModule(nn.Module):
    """A qubit Born machine whose cores are isometries: a state-preparation circuit.

    Core ``i`` is ``B_i[l, s, r]``, the first ``D_i`` rows of an orthogonal gate
    ``base_i @ expm(A_i - A_i^T)`` of size ``2 D_{i+1}`` read as ``(l) -> (s, r)``: every core
    is right-canonical by construction, so ``psi`` has unit norm at every training step and
    ``p(x) = psi(x)^2`` needs no partition function. Bonds are
    ``qubit_born_bonds`` (``bond_dim`` at most, exact ranks near the ends).
    ``tnml.quantum.compile`` turns it into a circuit that emits one measured qubit per site.

    .. rubric:: Shape

    Input ``(B, N)`` int64 in {0, 1}; output ``(B,)`` log-probabilities.

    Parameters
    ----------
    n_sites : int
        ``N >= 2`` binary features.
    bond_dim : int, default=4
        A power of two ``2^V``: the circuit has ``V + 1`` qubits when qubit-efficient.
    init : {"random", "identity"}, default="random"
        Haar-random gate bases (a random normalised MPS) or identities (the state
        ``|0...0>``, whose likelihood of other data is zero: only for warm starts).
    init_std : float, default=1e-2
        Spread of the generators at initialisation.
    """

    def __init__(
        self,
        n_sites: int,
        bond_dim: int = 4,
        *,
        init: str = "random",
        init_std: float = 1e-2,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        check_int("n_sites", n_sites, minimum=2)
        n_qubits_of(bond_dim, "bond_dim")
        if init not in UNITARY_INITS:
            raise InvalidInputError(f"init must be one of {UNITARY_INITS}, got {init!r}")
        self.n_sites = n_sites
        self.bond_dim = int(bond_dim)
        self.init = init
        self.init_std = float(init_std)
        self.edges = qubit_born_bonds(n_sites, self.bond_dim)
        self.phys_dims = [2] * n_sites
        self.bond_dims = self.edges[1:-1]
        factory = {"device": device, "dtype": dtype}
        sizes = [2 * self.edges[i + 1] for i in range(n_sites)]
        self.generators = nn.ParameterList(
            nn.Parameter(torch.empty(n, n, **factory)) for n in sizes
        )
        for i, n in enumerate(sizes):
            self.register_buffer(f"base_{i}", torch.empty(n, n, **factory))
        self.reset_parameters()

    def bases(self) -> list[Tensor]:
        return [getattr(self, f"base_{i}") for i in range(self.n_sites)]

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Draw the bases and generators anew (see ``init`` and ``init_std``)."""
        with torch.no_grad():
            for base, gen in zip(self.bases(), self.generators, strict=True):
                b, a = _initial_gates(1, gen.shape[0], self.init, self.init_std, generator)
                base.copy_(b[0])
                gen.copy_(a[0])

    def cores(self) -> list[Tensor]:
        """The right-canonical cores ``(D_i, 2, D_{i+1})``."""
        out = []
        for i, (base, gen) in enumerate(zip(self.bases(), self.generators, strict=True)):
            rows = orthogonal(base, gen)[: self.edges[i]]
            out.append(rows.reshape(self.edges[i], 2, self.edges[i + 1]))
        return out

    def forward(self, x: Tensor) -> Tensor:
        """Log-probabilities, ``(B, N)`` -> ``(B,)``."""
        return mps_log_prob(MPS(self.cores()), x)

    def to_mps(self) -> MPS:
        """The state as a normalised, right-canonical :class:`~tnml.tensor.MPS` (a copy)."""
        return MPS([c.detach().clone() for c in self.cores()])

    @classmethod
    def from_mps(cls, mps: MPS, bond_dim: int, **kwargs: object) -> UnitaryMPSBornModule:
        """The module whose state is ``mps`` (exactly: it is brought to right-canonical form,
        normalised, and each core completed to an orthogonal gate; generators zero).

        Raises
        ------
        InvalidInputError
            A site with other than 2 values, or a bond of the canonical form larger than
            ``bond_dim``.
        """
        if any(d != 2 for d in mps.phys_dims):
            raise InvalidInputError("a qubit Born machine needs 2 values per feature")
        plain = MPS([c.detach().to("cpu", torch.float64) for c in mps.cores])
        # left then right sweep: every bond shrinks to at most 2^min(i, N - i)
        canonical = mps_canonicalize(mps_canonicalize(plain, mps.n_sites - 1), 0)
        kwargs.setdefault("dtype", mps.dtype)
        module = cls(mps.n_sites, bond_dim, init_std=0.0, **kwargs)
        cores = list(canonical.cores)
        cores[0] = cores[0] / torch.linalg.vector_norm(cores[0])
        with torch.no_grad():
            for i, core in enumerate(cores):
                left, _, right = core.shape
                dl, dr = module.edges[i], module.edges[i + 1]
                if left > dl or right > dr:
                    raise InvalidInputError(
                        f"the MPS has bond {max(left, right)} near site {i}, more than "
                        f"bond_dim={bond_dim} allows there ({max(dl, dr)})"
                    )
                padded = torch.zeros(left, 2, dr, dtype=torch.float64)
                padded[:, :, :right] = core
                full = complete_rows(padded.reshape(left, 2 * dr))
                module.bases()[i].copy_(full)
                module.generators[i].zero_()
        return module

    def config(self) -> dict[str, object]:
        """The constructor arguments that rebuild this module's architecture (for saving)."""
        return {
            "n_sites": self.n_sites,
            "bond_dim": self.bond_dim,
            "init": self.init,
            "init_std": self.init_std,
        }

    def extra_repr(self) -> str:
        return f"n_sites={self.n_sites}, bond_dim={self.bond_dim} (isometric cores)"
