"""Contraction of a uniform-bond MPS with a batch of product states.

This is the hot path of every MPS classifier: ``f_l(x) = <W_l | Phi(x)>`` where ``Phi(x)`` is a
product state. The chain is cut at the site that carries the output (label) index; the sites on
its left form one chain and the sites on its right, read backwards with their bond legs swapped,
form a second chain. Both chains are reduced at once (a leading chain axis of size 2), so the
cost in Python calls does not depend on which side is longer.

Two reductions are offered and give the same result:

* ``"sequential"`` pushes a boundary vector through the chain one site at a time: cost
  ``2 B N d D**2`` flops and about ``3 N`` small kernel calls each way, with a hand-written
  backward pass; the fastest on CPU.
* ``"pairwise"`` builds all per-site transfer matrices with one einsum and multiplies them in a
  balanced binary tree: cost ``2 B N D**3`` flops but only ``log2(N)`` levels, meant for
  devices where a kernel launch costs more than the arithmetic (GPUs).

Every intermediate is renormalised and its log-norm accumulated, so the result is returned as a
mantissa with unit norm per sample and a log-scale; nothing over- or underflows in float32 for
hundreds of sites.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from tnml.exceptions import InvalidInputError
from tnml.tensor._util import _as_log_scale, _tiny, validate_mps_cores

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


def _chain_length(n_sites: int, output_site: int) -> int:
    """Length of both chains once the shorter one is padded: the longer side's site count."""
    return max(output_site, n_sites - 1 - output_site)


def _chain_phi(phi: Tensor, output_site: int) -> Tensor:
    """Feature vectors of both chains, ``(B, N, d)`` -> ``(2, B, n, d)``.

    Chain 0 holds sites ``0 .. output_site - 1``, chain 1 sites ``N - 1 .. output_site + 1``;
    the shorter chain is padded at its outer end with ``e_0``.
    """
    batch, n_sites, phys_dim = phi.shape
    n = _chain_length(n_sites, output_site)

    def pad(chain_phi: Tensor) -> Tensor:
        missing = n - chain_phi.shape[1]
        if missing == 0:
            return chain_phi
        e0 = phi.new_zeros(batch, missing, phys_dim)
        e0[:, :, 0] = 1.0
        return torch.cat([e0, chain_phi], 1)

    return torch.stack([pad(phi[:, :output_site]), pad(phi[:, output_site + 1 :].flip(1))])


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
    n = _chain_length(phi.shape[1], output_site)
    bond_dim, phys_dim = cores.shape[1], cores.shape[2]

    def pad(chain: Tensor) -> Tensor:
        missing = n - chain.shape[0]
        if missing == 0:
            return chain
        return torch.cat([_identity_pad(missing, bond_dim, phys_dim, cores), chain], 0)

    left_cores = pad(cores[:output_site])
    right_cores = pad(cores[output_site:].flip(0).transpose(1, 3))
    chain_cores = torch.stack([left_cores, right_cores])
    return chain_cores, _chain_phi(phi, output_site), phi[:, output_site]


def _renormalised_steps(n: int) -> list[int]:
    """The steps of an ``n``-site chain after which the environment is renormalised."""
    return [t for t in range(n) if (t + 1) % RENORM_INTERVAL == 0 or t == n - 1]


def _right_chain_order(x: Tensor) -> Tensor:
    """Right-chain cores ``(m, D, d, D)`` between site order and step order with the bond legs
    swapped: ``[t, r, s, l] = x[m - 1 - t][l, s, r]``. The map is its own inverse, so the
    step matrices and the gradients going back to the cores share it."""
    return x.flip(0).permute(0, 3, 2, 1)


def _step_matrices(cores: Tensor, output_site: int, n: int) -> Tensor:
    """Both chains' cores as ``(n, 2, D, d * D)`` matrices: one copy of the cores.

    Step ``t`` of a chain maps an environment ``env_a`` to ``moved[s * D + b]``, which the
    feature vector then contracts over ``s``. On the left chain ``a`` is a core's left bond
    (the core as it is stored); on the right chain, read from the right end, ``a`` is its
    right bond (the core transposed). Padding steps act as the identity on ``phi = e_0``.
    """
    n_cores, bond_dim, phys_dim, _ = cores.shape
    n_left = output_site
    n_right = n_cores - n_left
    mats = cores.new_empty(n, 2, bond_dim, phys_dim, bond_dim)
    for chain, n_sites in ((0, n_left), (1, n_right)):
        if n_sites < n:
            mats[: n - n_sites, chain].zero_()
            mats[: n - n_sites, chain, :, 0] = torch.eye(
                bond_dim, dtype=cores.dtype, device=cores.device
            )
    mats[n - n_left :, 0] = cores[:n_left]  # the left chain's cores as they are stored
    mats[n - n_right :, 1] = _right_chain_order(cores[n_left:])
    return mats.view(n, 2, bond_dim, phys_dim * bond_dim)


def _step_gradients_to_cores(grad_mats: Tensor, output_site: int, like: Tensor) -> Tensor:
    """Inverse of :func:`_step_matrices` for gradients: ``(n, 2, D, d * D)`` -> ``like``."""
    n = grad_mats.shape[0]
    n_cores, bond_dim, phys_dim, _ = like.shape
    n_left = output_site
    n_right = n_cores - n_left
    grads = grad_mats.view(n, 2, bond_dim, phys_dim, bond_dim)
    grad_cores = torch.empty_like(like)
    grad_cores[:n_left] = grads[n - n_left :, 0]
    grad_cores[n_left:] = _right_chain_order(grads[n - n_right :, 1])
    return grad_cores


class _SequentialChains(torch.autograd.Function):
    """Both chains pushed one site at a time, with a hand-written backward pass.

    Autograd over the same loop kept several graph nodes per site, and rearranging the cores
    into two chains cost several full passes over them in each direction, each into a fresh
    buffer (on CPU, fresh multi-megabyte buffers cost page faults: up to 15,000 a step at
    D = 128). Here the cores are copied once into step matrices; a site costs one batched GEMM
    and ``d`` small products forward, and two GEMMs and a product backward; the environments
    entering each step are the only per-site state kept, and the backward pass writes each
    step's gradient over its step matrix once that matrix has been used for the last time.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        cores: Tensor,
        chain_phi: Tensor,
        output_site: int,
    ) -> tuple[Tensor, Tensor]:
        n, n_chains, batch, phys_dim = chain_phi.shape
        bond_dim = cores.shape[1]
        mats = _step_matrices(cores.detach(), output_site, n)
        phis = chain_phi.detach().unsqueeze(-1)  # (n, 2, B, d, 1)
        envs = chain_phi.new_empty(n + 1, n_chains, batch, bond_dim)
        envs[0].zero_()
        envs[0, :, :, 0] = 1.0
        moved = chain_phi.new_empty(n_chains, batch, phys_dim, bond_dim)
        flat_moved = moved.view(n_chains, batch, phys_dim * bond_dim)
        steps = set(_renormalised_steps(n))
        norms = chain_phi.new_empty(len(steps), n_chains, batch, 1)
        norm_list = iter(norms.unbind(0))
        # every view the loop needs is made once: at D <= 64 a step's kernels take a few
        # microseconds each, about what making a view costs
        env_list, mat_list = envs.unbind(0), mats.unbind(0)
        moved_s = moved.unbind(2)  # (2, B, D) per physical index
        phi_s = [phis[:, :, :, s].unbind(0) for s in range(phys_dim)]  # (2, B, 1) per step
        for t in range(n):
            torch.bmm(env_list[t], mat_list[t], out=flat_moved)
            # the sum over s as one product and d - 1 fused multiply-adds: half the time of a
            # product over the whole block and a reduction
            env = env_list[t + 1]
            torch.mul(moved_s[0], phi_s[0][t], out=env)
            for s in range(1, phys_dim):
                env.addcmul_(moved_s[s], phi_s[s][t])
            if t in steps:
                norm = next(norm_list)
                torch.linalg.vector_norm(env, dim=-1, keepdim=True, out=norm)
                env.div_(norm.clamp_(min=_TINY))
        ctx.save_for_backward(cores, phis, envs, norms)
        # kept outside save_for_backward: the backward pass overwrites it in place
        ctx.step_matrices = mats
        ctx.output_site = output_site
        ctx.step_matrices_intact = True
        return envs[n].clone(), norms.log().sum(dim=0).squeeze(-1)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad_env: Tensor | None, grad_log: Tensor | None
    ) -> tuple[Tensor | None, Tensor | None, None]:
        cores, phis, envs, norms = ctx.saved_tensors
        n, n_chains, batch, phys_dim = phis.shape[:4]
        bond_dim = envs.shape[-1]
        mats = ctx.step_matrices
        if not ctx.step_matrices_intact:  # a second backward pass (retain_graph=True)
            mats = _step_matrices(cores.detach(), ctx.output_site, n)
        grad_log_norm = grad_log.unsqueeze(-1) if grad_log is not None else None
        want_cores, want_phi = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        grad_phi = envs.new_empty(n, n_chains, batch, phys_dim) if want_phi else None
        env_list, mat_list, phi_list = envs.unbind(0), mats.unbind(0), phis.unbind(0)
        env_t_list, mat_t_list = envs.transpose(2, 3).unbind(0), mats.transpose(2, 3).unbind(0)
        grad_moved = envs.new_empty(n_chains, batch, phys_dim, bond_dim)
        flat_grad_moved = grad_moved.view(n_chains, batch, phys_dim * bond_dim)
        # the gradient in the environment lives in one buffer, seen as (2, B, 1, D) by the
        # product with phi, so no step makes a view or a new tensor for it
        g_buffer = envs.new_empty(n_chains, batch, bond_dim)
        g_row = g_buffer.unsqueeze(-2)
        if grad_env is not None:
            g_buffer.copy_(grad_env)
        else:
            g_buffer.zero_()
        steps = set(_renormalised_steps(n))
        norm_list = iter(norms.unbind(0)[::-1])
        ctx.step_matrices_intact = not want_cores
        for t in range(n - 1, -1, -1):
            if t in steps:
                # env = u / |u| and log_scale += log |u|: back to the gradient in u
                unit = env_list[t + 1]
                radial = (g_buffer * unit).sum(dim=-1, keepdim=True)
                if grad_log_norm is not None:
                    radial = radial - grad_log_norm
                g_buffer.sub_(radial * unit).div_(next(norm_list))
            if grad_phi is not None:
                moved = torch.bmm(env_list[t], mat_list[t]).view_as(grad_moved)
                grad_phi[t] = (moved * g_row).sum(dim=-1)
            torch.mul(g_row, phi_list[t], out=grad_moved)
            torch.bmm(flat_grad_moved, mat_t_list[t], out=g_buffer)
            if want_cores:  # step matrix t is not needed any more: its gradient goes there
                torch.bmm(env_t_list[t], flat_grad_moved, out=mat_list[t])
        grad_cores = None
        if want_cores:
            grad_cores = _step_gradients_to_cores(mats, ctx.output_site, cores)
        return grad_cores, grad_phi, None


def reduce_sequential(cores: Tensor, phi: Tensor, output_site: int) -> tuple[Tensor, Tensor]:
    """Push the boundary vector ``e_0`` through both chains, one site at a time.

    Parameters
    ----------
    cores : Tensor, shape (N - 1, D, d, D)
        Cores of the sites without the output index, in site order.
    phi : Tensor, shape (B, N, d)
        Local feature vectors, output site included.
    output_site : int
        Where the chains meet: chain 0 runs over the sites left of it, chain 1 over the sites
        right of it, read from the right end.

    Returns
    -------
    env : Tensor, shape (2, B, D)
        Unit-norm environment vector of each chain and sample at the output site.
    log_scale : Tensor, shape (2, B)
        Natural log of the norm that was divided out.
    """
    n = _chain_length(phi.shape[1], output_site)
    batch, bond_dim = phi.shape[0], cores.shape[1]
    if n == 0:
        env = phi.new_zeros(2, batch, bond_dim)
        env[:, :, 0] = 1.0
        return env, phi.new_zeros(2, batch)
    if cores.is_complex() or phi.is_complex():
        # the hand-written backward pass is for real tensors; autograd handles the rest
        return reduce_pairwise(cores, phi, output_site)
    chain_phi = _chain_phi(phi, output_site).permute(2, 0, 1, 3).contiguous()  # (n, 2, B, d)
    return _SequentialChains.apply(cores, chain_phi, output_site)


def reduce_pairwise(cores: Tensor, phi: Tensor, output_site: int) -> tuple[Tensor, Tensor]:
    """Multiply each chain's transfer matrices in a balanced binary tree (log2(n) steps).

    The chains of ``split_chains`` are padded with identity matrices to a power of two,
    so every level pairs neighbours by a reshape. Same parameters and returns as
    :func:`reduce_sequential`.
    """
    chain_cores, chain_phi, _ = split_chains(cores, phi, output_site)
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
    reduce = (
        reduce_pairwise if choose_path(cores.shape[1], path) == "pairwise" else reduce_sequential
    )
    env, log_scale = reduce(cores, phi, output_site)
    mantissa = torch.einsum("bl,bs,lsor,br->bo", env[0], phi[:, output_site], output_core, env[1])
    return mantissa, log_scale.sum(dim=0)


def contract_product_states(
    cores: Sequence[Tensor],
    phi: Tensor | Sequence[Tensor],
    log_scale: float | Tensor = 0.0,
) -> tuple[Tensor, Tensor]:
    """Contract an MPS with a batch of product states, in log space.

    For each sample ``b`` the amplitude ``exp(log_scale) * sum_{s} prod_i A_i[:, s_i, :]
    phi[b, i, s_i]`` (``phi`` is not conjugated). Sites are contracted left to right with a
    (B, D) vector ``v <- einsum('bl,lsr,bs->br', v, A_i, phi_i)`` that is divided by its
    norm at every site (the logs accumulate; a zero norm is clamped to the smallest normal
    float), so nothing overflows over hundreds of sites. Differentiable; no loop over
    samples.

    Parameters
    ----------
    cores : sequence of Tensor
        MPS cores of shapes ``(D_i, d_i, D_{i+1})``, N sites.
    phi : Tensor of shape (B, N, d), or a sequence of N tensors of shape (B, d_i)
        Local vectors of each product state (the sequence form allows per-site dims).
    log_scale : float or Tensor, default=0.0
        Log of the MPS's overall scale, added to the result.

    Returns
    -------
    mantissa : Tensor, shape (B,)
        Unit modulus (sign or phase), or 0 where the amplitude vanishes, in the promoted
        dtype of cores and ``phi``.
    log_abs_scale : Tensor, shape (B,)
        Real; the amplitude is ``mantissa * exp(log_abs_scale)``.
    """
    cores = validate_mps_cores(cores)
    n = len(cores)
    ref = cores[0]
    if isinstance(phi, Tensor):
        if phi.ndim != 3 or phi.shape[1] != n:
            raise InvalidInputError(f"phi must have shape (B, N={n}, d), got {tuple(phi.shape)}")
        phis = list(phi.unbind(1))
    elif isinstance(phi, Sequence) and all(isinstance(p, Tensor) for p in phi):
        phis = list(phi)
        if len(phis) != n:
            raise InvalidInputError(f"phi must be a sequence of N={n} tensors, got {len(phis)}")
    else:
        raise InvalidInputError(
            f"phi must be a (B, N, d) tensor or a sequence of (B, d_i) tensors, "
            f"got {type(phi).__name__}"
        )
    batch = phis[0].shape[0] if phis[0].ndim == 2 else -1
    for i, (p, c) in enumerate(zip(phis, cores, strict=True)):
        if p.ndim != 2 or p.shape[0] != batch or p.shape[1] != c.shape[1]:
            raise InvalidInputError(
                f"phi at site {i} must have shape (B, d_{i}={c.shape[1]}) with one B for all "
                f"sites, got {tuple(p.shape)}"
            )
        if not (p.is_floating_point() or p.is_complex()):
            raise InvalidInputError(f"phi must have a float or complex dtype, got {p.dtype}")
        if p.device != ref.device:
            raise InvalidInputError(f"phi is on {p.device} but the cores are on {ref.device}")
    dtype = torch.promote_types(ref.dtype, phis[0].dtype)
    ls = _as_log_scale(log_scale, torch.empty((), dtype=dtype, device=ref.device))
    tiny = _tiny(dtype)
    v = torch.ones((batch, 1), dtype=dtype, device=ref.device)
    acc = torch.zeros((batch,), dtype=dtype.to_real(), device=ref.device)
    for a, p in zip(cores, phis, strict=True):
        dl, d, dr = a.shape
        t = (v @ a.to(dtype).reshape(dl, d * dr)).reshape(batch, d, dr)
        v = torch.einsum("bsr,bs->br", t, p.to(dtype))
        nrm = torch.linalg.vector_norm(v, dim=1).clamp(min=tiny)
        v = v / nrm.unsqueeze(1)
        acc = acc + nrm.log()
    return v[:, 0], acc + ls
