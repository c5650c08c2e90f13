"""``MPSBornModule`` and ``TTNBornModule``: the PyTorch modules of the Born machines.

``p(x) = psi(x)^2 / <psi|psi>`` over discrete inputs ``x`` (site ``i`` takes values
``0 .. d_i - 1``), with ``psi`` a matrix product state whose cores are the parameters. The
module holds them; the mathematics is :mod:`tnml.tensor.born`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from tnml._validation import check_int
from tnml.exceptions import InvalidInputError
from tnml.nn.ttn import (
    node_shapes,
    resolve_layout,
    stacked_node_parameters,
    unstacked_node_tensors,
)
from tnml.tensor.born import mps_log_prob
from tnml.tensor.mps import MPS, mps_canonicalize
from tnml.tensor.ttn import (
    TTN,
    NodeGroup,
    tree_layout_1d,
    tree_layout_2d,
    tree_log_amplitudes,
    tree_log_norm,
    ttn_canonicalize,
)


class MPSBornModule(nn.Module):
    r"""Matrix-product-state Born machine over N discrete sites.

    .. rubric:: Shape

    - Input: ``(B, N)`` int64 values with ``0 <= x_i < d_i``.
    - Output: ``(B,)`` log-probabilities (natural log).

    Parameters
    ----------
    phys_dims
        Number of values ``d_i`` of every site (length N >= 2).
    bond_dims
        The N - 1 internal bond dimensions (a single int: the same for all; the
        bonds near the ends are capped at the exact ranks ``prod d`` of their side).
    init_std
        Standard deviation of the noise added to the identity-like start.

    Attributes
    ----------
    cores
        ``nn.ParameterList`` of N tensors of shapes ``(D_i, d_i, D_{i+1})`` with
        ``D_0 = D_N = 1``; initialised to the identity on every physical slice (so every
        input starts with the same amplitude: the uniform distribution) plus
        ``N(0, init_std^2)`` noise.

    Examples
    --------
    >>> module = MPSBornModule([2] * 8, 4)
    >>> module(torch.zeros(3, 8, dtype=torch.long)).shape
    torch.Size([3])
    """

    def __init__(
        self,
        phys_dims: Sequence[int],
        bond_dims: int | Sequence[int],
        *,
        init_std: float = 1e-2,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        phys_dims = [check_int("phys_dims[i]", d, minimum=2) for d in phys_dims]
        n = len(phys_dims)
        if n < 2:
            raise InvalidInputError(f"a Born machine needs at least 2 sites, got {n}")
        if isinstance(bond_dims, int):
            check_int("bond_dims", bond_dims, minimum=1)
            bond_dims = _capped_bonds(phys_dims, bond_dims)
        bond_dims = [check_int("bond_dims[i]", b, minimum=1) for b in bond_dims]
        if len(bond_dims) != n - 1:
            raise InvalidInputError(
                f"bond_dims must list N - 1 = {n - 1} bonds, got {len(bond_dims)}"
            )
        self.phys_dims = phys_dims
        self.bond_dims = bond_dims
        self.init_std = float(init_std)
        edges = [1, *bond_dims, 1]
        self.cores = nn.ParameterList(
            nn.Parameter(torch.empty(edges[i], d, edges[i + 1], device=device, dtype=dtype))
            for i, d in enumerate(phys_dims)
        )
        self.reset_parameters()

    @property
    def n_sites(self) -> int:
        return len(self.phys_dims)

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Identity on every physical slice plus ``N(0, init_std^2)`` noise."""
        with torch.no_grad():
            for core in self.cores:
                dl, d, dr = core.shape
                eye = torch.eye(dl, dr, dtype=core.dtype, device=core.device)
                noise = torch.randn(core.shape, generator=generator, dtype=core.dtype)
                core.copy_(eye.unsqueeze(1).expand(dl, d, dr) + self.init_std * noise)

    def forward(self, x: Tensor) -> Tensor:
        return mps_log_prob(MPS(list(self.cores)), x)

    def to_mps(self) -> MPS:
        """The weights as a normalised, right-canonical :class:`~tnml.tensor.MPS` (a copy)."""
        state = mps_canonicalize(MPS([c.detach().clone() for c in self.cores]), 0)
        state.log_scale = torch.zeros_like(state.log_scale)
        return state

    @classmethod
    def from_mps(cls, mps: MPS, **kwargs: object) -> MPSBornModule:
        """The module whose weights are the cores of ``mps`` (its scale is dropped:
        probabilities do not depend on it)."""
        kwargs.setdefault("dtype", mps.dtype)
        kwargs.setdefault("device", mps.device)
        module = cls(list(mps.phys_dims), list(mps.bond_dims), **kwargs)
        with torch.no_grad():
            for param, core in zip(module.cores, mps.cores, strict=True):
                param.copy_(core)
        return module

    def config(self) -> dict[str, object]:
        """The constructor arguments that rebuild this module's architecture (for saving)."""
        return {
            "phys_dims": list(self.phys_dims),
            "bond_dims": list(self.bond_dims),
            "init_std": self.init_std,
        }

    def extra_repr(self) -> str:
        return (
            f"n_sites={self.n_sites}, phys_dims≤{max(self.phys_dims)}, "
            f"max_bond={max(self.bond_dims)}"
        )


def _capped_bonds(phys_dims: Sequence[int], bond_dim: int) -> list[int]:
    """``bond_dim`` at every bond, capped by the dimension of the smaller side."""
    n = len(phys_dims)
    bonds = []
    left = 1
    rights = [1] * (n + 1)
    for i in range(n - 1, -1, -1):
        rights[i] = min(rights[i + 1] * phys_dims[i], bond_dim)
    for i in range(n - 1):
        left = min(left * phys_dims[i], bond_dim)
        bonds.append(min(left, rights[i + 1], bond_dim))
    return bonds


class TTNBornModule(nn.Module):
    r"""Tree-tensor-network Born machine over N discrete leaves with ``d`` values each.

    ``p(x) = psi(x)^2 / <psi|psi>`` with ``psi`` a binary tree whose root has output
    dimension 1; the mathematics is :mod:`tnml.tensor.ttn_born` and :mod:`tnml.tensor.ttn`.

    .. rubric:: Shape

    - Input: ``(B, N)`` int64 values in ``[0, d)``.
    - Output: ``(B,)`` log-probabilities.

    Parameters
    ----------
    n_features
        Number of leaves ``N >= 2``.
    phys_dim
        Values per leaf ``d >= 2``.
    bond_dim
        Largest bond ``D``; the bond above a node is ``min(D, D_left * D_right)``.
    layout
        ``"1d"``, ``"image"`` (square) or ``(height, width)`` (2D patches), as in
        :class:`~tnml.nn.TTNClassifierModule`.
    init_std
        Noise added to the "folded copy" start of the non-root tensors.

    Attributes
    ----------
    tree
        The :class:`~tnml.tensor.ttn.TreeLayout`.
    nodes
        One parameter per layer and node shape, ``(K, Da, Db, Dp)`` (``node_groups``
        lists which nodes); the root tensor is ``(Da, Db, 1)``.

    Examples
    --------
    >>> module = TTNBornModule(16, 2, 4, layout=(4, 4))
    >>> module(torch.zeros(3, 16, dtype=torch.long)).shape
    torch.Size([3])
    """

    def __init__(
        self,
        n_features: int,
        phys_dim: int = 2,
        bond_dim: int = 16,
        *,
        layout: object = "1d",
        init_std: float = 1e-2,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        check_int("n_features", n_features, minimum=2)
        check_int("phys_dim", phys_dim, minimum=2)
        check_int("bond_dim", bond_dim, minimum=1)
        self.n_features = n_features
        self.phys_dim = phys_dim
        self.bond_dim = bond_dim
        self.layout = resolve_layout(layout, n_features)
        self.init_std = float(init_std)
        self.tree = (
            tree_layout_1d(n_features) if self.layout == "1d" else tree_layout_2d(*self.layout)
        )
        shapes = node_shapes(self.tree, phys_dim, bond_dim, 1, cap_by_complement=True)
        self.nodes, self.node_groups = stacked_node_parameters(shapes, device, dtype)
        self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """The folded copy ``T[a, b, p] = delta(p, (a Db + b) mod Dp)`` plus noise; the root
        (a (Da, Db, 1) vector) all ones plus noise, so every input starts with a similar
        amplitude."""
        with torch.no_grad():
            for param in self.nodes:
                _, da, db, dp = param.shape
                noise = torch.randn(param.shape, generator=generator, dtype=param.dtype)
                fold = torch.zeros(da * db, dp, dtype=param.dtype)
                ab = torch.arange(da * db)
                fold[ab, ab % dp] = 1.0
                param.copy_(fold.reshape(1, da, db, dp) + self.init_std * noise)

    def groups(self) -> list[list[NodeGroup]]:
        """Per layer, ``(node indices, stacked parameter (K, Da, Db, Dp))``."""
        return [[(idx, self.nodes[i]) for idx, i in layer] for layer in self.node_groups]

    def forward(self, x: Tensor) -> Tensor:
        groups = self.groups()
        mantissa, log_abs = tree_log_amplitudes(self.tree, groups, x)
        log_abs = torch.where(mantissa[:, 0] == 0, torch.full_like(log_abs, -torch.inf), log_abs)
        return 2.0 * (log_abs - tree_log_norm(self.tree, groups))

    def to_ttn(self) -> TTN:
        """The weights as a normalised, canonical :class:`~tnml.tensor.ttn.TTN` (a copy)."""
        tensors = unstacked_node_tensors(self.nodes, self.node_groups)
        state = ttn_canonicalize(TTN(self.tree, tensors))
        state.log_scale = torch.zeros_like(state.log_scale)
        return state

    def load_ttn(self, ttn: TTN) -> None:
        """Set the weights to the tensors of ``ttn`` (same tree and node shapes); the state
        is taken up to scale, as the Born machine normalises it."""
        if ttn.layout != self.tree:
            raise InvalidInputError("ttn has another tree than this module")
        with torch.no_grad():
            for layer, groups in enumerate(self.node_groups):
                for idx, i in groups:
                    stacked = torch.stack([ttn.tensors[layer][k] for k in idx])
                    if stacked.shape != self.nodes[i].shape:
                        raise InvalidInputError(
                            f"ttn's layer {layer} tensors have shape {tuple(stacked.shape[1:])}, "
                            f"this module's {tuple(self.nodes[i].shape[1:])}"
                        )
                    self.nodes[i].copy_(stacked)

    def config(self) -> dict[str, object]:
        """The constructor arguments that rebuild this module's architecture (JSON-able)."""
        return {
            "n_features": self.n_features,
            "phys_dim": self.phys_dim,
            "bond_dim": self.bond_dim,
            "layout": self.layout,
            "init_std": self.init_std,
        }

    def extra_repr(self) -> str:
        return (
            f"n_features={self.n_features}, phys_dim={self.phys_dim}, "
            f"bond_dim={self.bond_dim}, layout={self.layout}"
        )
