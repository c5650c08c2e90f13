"""``MPSBornModule``: the PyTorch module of the MPS Born machine.

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
from tnml.tensor.born import mps_log_prob
from tnml.tensor.mps import MPS, mps_canonicalize


class MPSBornModule(nn.Module):
    r"""Matrix-product-state Born machine over N discrete sites.

    Args:
        phys_dims: number of values ``d_i`` of every site (length N >= 2).
        bond_dims: the N - 1 internal bond dimensions (a single int: the same for all; the
            bonds near the ends are capped at the exact ranks ``prod d`` of their side).
        init_std: standard deviation of the noise added to the identity-like start.

    Shape:
        - Input: ``(B, N)`` int64 values with ``0 <= x_i < d_i``.
        - Output: ``(B,)`` log-probabilities (natural log).

    Attributes:
        cores: ``nn.ParameterList`` of N tensors of shapes ``(D_i, d_i, D_{i+1})`` with
            ``D_0 = D_N = 1``; initialised to the identity on every physical slice (so every
            input starts with the same amplitude: the uniform distribution) plus
            ``N(0, init_std^2)`` noise.

    Examples:
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
