"""Tensor-train embedding tables: ``TTEmbedding`` (the TT-matrix format of
:class:`~tnml.nn.TTLinear` applied to an embedding table, as in Khrulkov et al. 2019,
"Tensorized embedding layers").

The table ``E`` (V x D) is padded to ``V' = v_1 ... v_k >= V`` rows and stored as cores
``G_j`` of shape ``(r_{j-1}, v_j, d_j, r_j)``:

    E[(i_1 .. i_k), (e_1 .. e_k)] = G_1[:, i_1, e_1, :] ... G_k[:, i_k, e_k, :].

A lookup never builds ``E``: the digits of each index pick one slice per core and the slices
are multiplied, ``sum_j (d_1 .. d_{j-1}) r_{j-1} d_j r_j`` multiply-adds per index.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from tnml._validation import check_int
from tnml.exceptions import InvalidInputError
from tnml.nn.tt import factorize, tt_svd_matrix

__all__ = ["TTEmbedding"]


def _vocab_modes(num: int, k: int) -> list[int]:
    """``k`` near-equal factors whose product is the smallest ``>= num`` of that form."""
    base = max(2, math.ceil(num ** (1 / k)))
    modes = [base] * k
    for j in range(k):  # shrink factors while the product still covers num
        while modes[j] > 1 and math.prod(modes) // modes[j] * (modes[j] - 1) >= num:
            modes[j] -= 1
    return sorted(modes, reverse=True)


class TTEmbedding(nn.Module):
    """An embedding table of ``num_embeddings`` rows of size ``embedding_dim`` as a tensor
    train.

    Parameters
    ----------
    num_embeddings, embedding_dim : int
    max_bond : int
        Largest TT-rank.
    vocab_modes : sequence of int, optional
        Factors whose product is at least ``num_embeddings`` (rows past it are padding never
        looked up); default near-equal factors, ``n_cores`` of them.
    dim_modes : sequence of int, optional
        Factorisation of ``embedding_dim`` (same length); default ``tnml.nn.tt.factorize``.
    n_cores : int, default=3
    ranks : sequence of int, optional
        The inner ranks exactly (rebuilding a saved layer).
    device, dtype : optional

    Notes
    -----
    Initialised so that the table's entries have variance 1, as ``nn.Embedding``'s ``N(0, 1)``.
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        max_bond: int = 8,
        *,
        vocab_modes: Sequence[int] | None = None,
        dim_modes: Sequence[int] | None = None,
        n_cores: int = 3,
        ranks: Sequence[int] | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.num_embeddings = check_int("num_embeddings", num_embeddings, 1)
        self.embedding_dim = check_int("embedding_dim", embedding_dim, 1)
        k = check_int("n_cores", n_cores, 1) if vocab_modes is None else len(vocab_modes)
        if vocab_modes is None:
            vocab_modes = _vocab_modes(num_embeddings, k)
        self.vocab_modes = [check_int("vocab_modes[i]", v, 1) for v in vocab_modes]
        if math.prod(self.vocab_modes) < num_embeddings:
            raise InvalidInputError(
                f"vocab_modes must multiply to at least num_embeddings={num_embeddings}, got "
                f"{self.vocab_modes}"
            )
        self.dim_modes = (
            factorize(embedding_dim, k)
            if dim_modes is None
            else [check_int("dim_modes[i]", d, 1) for d in dim_modes]
        )
        if len(self.dim_modes) != k or math.prod(self.dim_modes) != embedding_dim:
            raise InvalidInputError(
                f"dim_modes must be {k} positive ints whose product is {embedding_dim}, got "
                f"{self.dim_modes}"
            )
        sizes = [v * d for v, d in zip(self.vocab_modes, self.dim_modes, strict=True)]
        if ranks is None:
            max_bond = check_int("max_bond", max_bond, 1)
            full = [
                min(max_bond, math.prod(sizes[:j]), math.prod(sizes[j:])) if 0 < j < k else 1
                for j in range(k + 1)
            ]
        else:
            full = [1, *(check_int("ranks[i]", r, 1) for r in ranks), 1]
            if len(full) != k + 1:
                raise InvalidInputError(f"ranks must hold {k - 1} ints, got {len(full) - 2}")
        factory = {"device": device, "dtype": dtype or torch.get_default_dtype()}
        # Var(E) = prod(r_1 .. r_{k-1}) std^(2k) = 1
        std = math.exp(-sum(math.log(r) for r in full[1:-1]) / (2 * k))
        self.cores = nn.ParameterList(
            nn.Parameter(torch.randn(full[j], v, d, full[j + 1], **factory) * std)
            for j, (v, d) in enumerate(zip(self.vocab_modes, self.dim_modes, strict=True))
        )

    @property
    def ranks(self) -> list[int]:
        """The inner TT-ranks."""
        return [core.shape[0] for core in self.cores[1:]]

    @classmethod
    def from_embedding(
        cls,
        embedding: nn.Embedding,
        max_bond: int | None = None,
        cutoff: float = 0.0,
        *,
        vocab_modes: Sequence[int] | None = None,
        dim_modes: Sequence[int] | None = None,
        n_cores: int = 3,
    ) -> TTEmbedding:
        """The TT-SVD of ``embedding.weight`` (zero-padded to ``prod(vocab_modes)`` rows),
        keeping at most ``max_bond`` singular values above ``cutoff`` times the largest; None
        keeps all, reproducing the table to float precision."""
        if not isinstance(embedding, nn.Embedding):
            raise InvalidInputError(
                f"embedding must be a torch.nn.Embedding, got {type(embedding).__name__}"
            )
        table = embedding.weight.detach()
        layer = cls(
            embedding.num_embeddings,
            embedding.embedding_dim,
            max_bond or 1,
            vocab_modes=vocab_modes,
            dim_modes=dim_modes,
            n_cores=n_cores,
            device=table.device,
            dtype=table.dtype,
        )
        padded = table.new_zeros(math.prod(layer.vocab_modes), table.shape[1])
        padded[: table.shape[0]] = table
        cores = tt_svd_matrix(padded, layer.vocab_modes, layer.dim_modes, max_bond, cutoff)
        layer.cores = nn.ParameterList(nn.Parameter(core) for core in cores)
        return layer

    def weight(self) -> Tensor:
        """The table ``(num_embeddings, embedding_dim)`` (differentiable)."""
        return self(torch.arange(self.num_embeddings, device=self.cores[0].device))

    def to_embedding(self) -> nn.Embedding:
        """An ``nn.Embedding`` holding the dense table."""
        p = self.cores[0]
        embedding = nn.Embedding(
            self.num_embeddings, self.embedding_dim, device=p.device, dtype=p.dtype
        )
        with torch.no_grad():
            embedding.weight.copy_(self.weight())
        return embedding

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, indices: Tensor) -> Tensor:
        """Integer ``indices`` of any shape -> ``(*indices.shape, embedding_dim)``."""
        if indices.is_floating_point() or indices.is_complex():
            raise InvalidInputError(f"indices must be integers, got {indices.dtype}")
        flat = indices.reshape(-1).long()
        if flat.numel() and (int(flat.min()) < 0 or int(flat.max()) >= self.num_embeddings):
            raise InvalidInputError(
                f"indices must lie in [0, {self.num_embeddings}), got "
                f"[{int(flat.min())}, {int(flat.max())}]"
            )
        # mixed-radix digits, most significant first: index = ((i_1 v_2 + i_2) v_3 + i_3) ...
        digits, rest = [], flat
        for v in reversed(self.vocab_modes):
            digits.append(rest % v)
            rest = rest // v
        digits.reverse()
        t = None
        for core, digit in zip(self.cores, digits, strict=True):
            piece = core.permute(1, 0, 2, 3)[digit]  # (N, r, d, q)
            n, r, d, q = piece.shape
            if t is None:
                t = piece.reshape(n, d, q)
            else:  # (N, D_done, r) @ (N, r, d q) -> (N, D_done d, q)
                t = torch.bmm(t, piece.reshape(n, r, d * q)).reshape(n, -1, q)
        return t.reshape(*indices.shape, self.embedding_dim)

    def extra_repr(self) -> str:
        return (
            f"num_embeddings={self.num_embeddings}, embedding_dim={self.embedding_dim}, "
            f"vocab_modes={self.vocab_modes}, dim_modes={self.dim_modes}, ranks={self.ranks}"
        )
