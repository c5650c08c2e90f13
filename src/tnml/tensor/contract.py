"""Contraction of a uniform-bond MPS with a batch of product states.

This is the hot path of every MPS classifier: ``f_l(x) = <W_l | Phi(x)>`` where ``Phi(x)`` is a
product state. The chain is cut at the site that carries the output (label) index; the sites on
its left form one chain and the sites on its right, read backwards with their bond legs swapped,
form a second chain. Both chains are reduced at once (a leading chain axis of size 2), so the
cost in Python calls does not depend on which side is longer.

Two reductions are offered and give the same result:

* ``"sequential"`` pushes a boundary vector through the chain one site at a time: cost
  ``2 B N d D**2`` flops and about ``3 N`` small kernel calls; the fastest on CPU.
* ``"pairwise"`` builds all per-site transfer matrices with one einsum and multiplies them in a
  balanced binary tree: cost ``2 B N D**3`` flops but only ``log2(N)`` levels, meant for
  devices where a kernel launch costs more than the arithmetic (GPUs).

Every intermediate is renormalised and its log-norm accumulated, so the result is returned as a
mantissa with unit norm per sample and a log-scale; nothing over- or underflows in float32 for
hundreds of sites.
"""

from __future__ import annotations

import torch
from torch import Tensor

from tnml.exceptions import InvalidInputError

CONTRACTION_PATHS = ("auto", "sequential", "pairwise")

# The sequential path renormalises its environment vectors every RENORM_INTERVAL sites, not
# every site (that cost 35% of a D=10 training step). Over 8 sites the growth factor of a
# trained model's environments stayed within [0.84, 17] (digits, all 1,797 images; per site
# [0.62, 1.73]), against float32's range of 1e-38..3e38.
RENORM_INTERVAL = 8

# "auto": on CPU the sequential path was faster at every bond dimension measured (10 to 128,
# benchmarks/bench_training_step.py): the pairwise path's thousands of tiny batched GEMMs
# cost more than its saved Python steps. On CUDA, where each kernel launch costs ~10 us,
# the log-depth pairwise path is chosen up to this bond dimension (not yet measured on a GPU).
PAIRWISE_MAX_BOND_CUDA = 32

_TINY = 1e-30


def choose_path(bond_dim: int, path: str = "auto", device_type: str = "cpu") -> str:
    """Return the concrete contraction path for ``path`` ("auto" picks by device and bond)."""
    if path not in CONTRACTION_PATHS:
        raise InvalidInputError(f"contraction must be one of {CONTRACTION_PATHS}, got {path!r}")
    if path != "auto":
        return path
    if device_type == "cuda" and bond_dim <= PAIRWISE_MAX_BOND_CUDA:
        return "pairwise"
    return "sequential"


def _identity_pad(n_pad: int, bond_dim: int, phys_dim: int, like: Tensor) -> Tensor:
    """Cores (n_pad, D, d, D) that act as the identity on the bond when fed phi = e_0."""
    pad = like.new_zeros(n_pad, bond_dim, phys_dim, bond_dim)
    pad[:, :, 0, :] = torch.eye(bond_dim, dtype=like.dtype, device=like.device)
    return pad


def split_chains(cores: Tensor, phi: Tensor, output_site: int) -> tuple[Tensor, Tensor, Tensor]:
    """Arrange the sites left and right of ``output_site`` as two equal-length chains.

    Parameters
    ----------
    cores : Tensor, shape (N - 1, D, d, D)
        The cores of every site except the output site, in site order.
    phi : Tensor, shape (B, N, d)
        Local feature vectors of the product states, one per site (output site included).
    output_site : int
        Position of the core that carries the output index, ``0 <= output_site < N``.

    Returns
    -------
    chain_cores : Tensor, shape (2, n, D, d, D)
        Chain 0: sites ``0 .. output_site - 1``; chain 1: sites ``N - 1 .. output_site + 1``
        with bond legs swapped, so both chains are read left to right towards the output site.
        The shorter chain is padded at its outer end with identity cores.
    chain_phi : Tensor, shape (2, B, n, d)
        The matching feature vectors (``e_0`` on padding sites).
    phi_out : Tensor, shape (B, d)
        The feature vector at the output site.
    """
    n_sites = phi.shape[1]
    n_left = output_site
    n_right = n_sites - 1 - output_site
    n = max(n_left, n_right)
    bond_dim, phys_dim = cores.shape[1], cores.shape[2]
    batch = phi.shape[0]

    left_cores = cores[:n_left]
    right_cores = cores[n_left:].flip(0).transpose(1, 3)
    left_phi = phi[:, :n_left]
    right_phi = phi[:, output_site + 1 :].flip(1)

    def pad(chain: Tensor, chain_phi: Tensor) -> tuple[Tensor, Tensor]:
        missing = n - chain.shape[0]
        if missing == 0:
            return chain, chain_phi
        e0 = phi.new_zeros(batch, missing, phys_dim)
        e0[:, :, 0] = 1.0
        return (
            torch.cat([_identity_pad(missing, bond_dim, phys_dim, cores), chain], 0),
            torch.cat([e0, chain_phi], 1),
        )

    left_cores, left_phi = pad(left_cores, left_phi)
    right_cores, right_phi = pad(right_cores, right_phi)
    chain_cores = torch.stack([left_cores, right_cores])
    chain_phi = torch.stack([left_phi, right_phi])
    return chain_cores, chain_phi, phi[:, output_site]


def reduce_sequential(chain_cores: Tensor, chain_phi: Tensor) -> tuple[Tensor, Tensor]:
    """Push the boundary vector ``e_0`` through each chain, one site at a time.

    Parameters
    ----------
    chain_cores : Tensor, shape (C, n, D, d, D)
    chain_phi : Tensor, shape (C, B, n, d)

    Returns
    -------
    env : Tensor, shape (C, B, D)
        Unit-norm environment vector of each chain and sample.
    log_scale : Tensor, shape (C, B)
        Natural log of the norm that was divided out.
    """
    n_chains, n, bond_dim, phys_dim, _ = chain_cores.shape
    batch = chain_phi.shape[1]
    env = chain_phi.new_zeros(n_chains, batch, bond_dim)
    env[:, :, 0] = 1.0
    # Unbind once: indexing the stacked tensor inside the loop would make every backward step
    # zero-fill a gradient the size of all the cores (quadratic in the chain length).
    cores = chain_cores.reshape(n_chains, n, bond_dim, phys_dim * bond_dim).unbind(1)
    phis = chain_phi.unsqueeze(-1).unbind(2)  # n x (C, B, d, 1)
    norms = []
    for i, (core, phi) in enumerate(zip(cores, phis, strict=True)):
        # One GEMM per chain, (B, D) @ (D, d*D); the d-contraction as multiply-and-sum, which
        # is cheaper than a bmm over C*B tiny (1 x d) @ (d x D) products.
        moved = torch.bmm(env, core).view(n_chains, batch, phys_dim, bond_dim)
        env = (moved * phi).sum(dim=2)
        if (i + 1) % RENORM_INTERVAL == 0 or i == n - 1:
            norm = torch.linalg.vector_norm(env, dim=-1, keepdim=True).clamp_min(_TINY)
            env = env / norm
            norms.append(norm)
    if not norms:
        return env, chain_phi.new_zeros(n_chains, batch)
    return env, torch.log(torch.cat(norms, dim=-1)).sum(dim=-1)


def reduce_pairwise(chain_cores: Tensor, chain_phi: Tensor) -> tuple[Tensor, Tensor]:
    """Multiply each chain's transfer matrices in a balanced binary tree (log2(n) steps).

    The chain is padded with identity matrices to a power of two, so every level pairs
    neighbours by a reshape. Same parameters and returns as :func:`reduce_sequential`.
    """
    n_chains, n, bond_dim, phys_dim, _ = chain_cores.shape
    batch = chain_phi.shape[1]
    if n == 0:
        env = chain_phi.new_zeros(n_chains, batch, bond_dim)
        env[:, :, 0] = 1.0
        return env, chain_phi.new_zeros(n_chains, batch)
    padded = 1 << (n - 1).bit_length()
    if padded > n:
        # identity sites at the outer end of each chain (fed phi = e_0)
        chain_cores = torch.cat(
            [_identity_pad(padded - n, bond_dim, phys_dim, chain_cores).expand(
                n_chains, -1, -1, -1, -1), chain_cores], dim=1
        )  # fmt: skip
        e0 = chain_phi.new_zeros(n_chains, batch, padded - n, phys_dim)
        e0[..., 0] = 1.0
        chain_phi = torch.cat([e0, chain_phi], dim=2)
    # Transfer matrices of every site of every chain at once: (C, B, n, D, D).
    mats = torch.einsum("cbns,cnlsr->cbnlr", chain_phi, chain_cores)
    log_norms = []
    while mats.shape[2] > 1:
        left, right = mats.unflatten(2, (-1, 2)).unbind(3)
        mats = torch.matmul(left, right)
        norm = torch.linalg.matrix_norm(mats, keepdim=True).clamp_min(_TINY)
        mats = mats / norm
        log_norms.append(norm.flatten(2))
    env = mats[:, :, 0, 0, :]  # row e_0 of the chain product
    norm = torch.linalg.vector_norm(env, dim=-1, keepdim=True).clamp_min(_TINY)
    log_norms.append(norm)
    log_scale = torch.cat(log_norms, dim=-1).log().sum(dim=-1)
    return env / norm, log_scale


def contract_with_output(
    cores: Tensor,
    output_core: Tensor,
    phi: Tensor,
    output_site: int,
    path: str = "auto",
) -> tuple[Tensor, Tensor]:
    """Contract an MPS with one output (label) index against a batch of product states.

    The MPS has open boundaries closed by the basis vector ``e_0`` on both ends, every internal
    bond of dimension ``D``, and its output index on ``output_site``.

    Parameters
    ----------
    cores : Tensor, shape (N - 1, D, d, D)
        Cores of the sites without the output index, in site order.
    output_core : Tensor, shape (D, d, L, D)
        Core of ``output_site``; ``L`` is the size of the output index (number of classes).
    phi : Tensor, shape (B, N, d)
        Local feature vectors of ``B`` product states.
    output_site : int
        Site carrying the output index.
    path : {"auto", "sequential", "pairwise"}
        How to reduce the chains; all give the same result up to rounding.

    Returns
    -------
    mantissa : Tensor, shape (B, L)
        ``f(x) / exp(log_scale)``; its norm is of order one.
    log_scale : Tensor, shape (B,)
        So that ``f(x) = mantissa * exp(log_scale)[:, None]``.
    """
    n_sites = phi.shape[1]
    if not 0 <= output_site < n_sites:
        raise InvalidInputError(f"output_site must lie in [0, {n_sites}), got {output_site}")
    if cores.shape[0] != n_sites - 1:
        raise InvalidInputError(
            f"cores must hold N - 1 = {n_sites - 1} sites for phi with N = {n_sites} sites, "
            f"got {cores.shape[0]}"
        )
    chain_cores, chain_phi, phi_out = split_chains(cores, phi, output_site)
    reduce = (
        reduce_pairwise if choose_path(cores.shape[1], path) == "pairwise" else reduce_sequential
    )
    env, log_scale = reduce(chain_cores, chain_phi)
    mantissa = torch.einsum("bl,bs,lsor,br->bo", env[0], phi_out, output_core, env[1])
    return mantissa, log_scale.sum(dim=0)
