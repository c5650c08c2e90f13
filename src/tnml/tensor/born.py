"""Born-rule probabilities of an MPS over discrete inputs: ``p(x) = |psi(x)|^2 / <psi|psi>``.

An input is a row of integers ``x = (x_0, ..., x_{N-1})`` with ``0 <= x_i < d_i`` (a binary
pixel, a category, a quantised level), so ``psi(x)`` is the MPS contracted with the basis
product state ``e_{x_0} (x) ... (x) e_{x_{N-1}}``. Everything here is exact: log-probabilities,
marginals of any subset of sites, and independent samples drawn site by site from the exact
conditionals (Han et al., "Unsupervised generative modeling using matrix product states",
2018), optionally conditioned on observed sites (``evidence``) for inpainting.

Logs are natural; long chains stay finite because every environment is renormalised as it
is built and the logs of the factors are accumulated.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from tnml.exceptions import InvalidInputError
from tnml.tensor.contract import contract_product_states
from tnml.tensor.mps import MPS, mps_canonicalize, mps_log_norm

__all__ = [
    "Evidence",
    "check_basis_inputs",
    "check_evidence",
    "check_indices",
    "mps_log_amplitudes",
    "mps_log_density",
    "mps_log_prob",
    "mps_marginal_log_prob",
    "mps_sample",
    "normalise_by_trace",
    "one_hot_inputs",
]

# Observed values per site: an int (the same for every sample) or a 1-D tensor of length n.
Evidence = Mapping[int, "int | Tensor"]


def _check_mps(mps: object) -> MPS:
    if not isinstance(mps, MPS):
        raise InvalidInputError(f"mps must be a tnml.tensor.MPS, got {type(mps).__name__}")
    if mps.dtype.is_complex:
        raise InvalidInputError("Born-machine functions take a real MPS, got a complex one")
    return mps


def check_basis_inputs(
    indices: object,
    phys_dims: Sequence[int],
    name: str = "indices",
    device: torch.device | None = None,
) -> Tensor:
    """Validate basis inputs of a network whose sites take ``phys_dims`` values.

    Returns ``indices`` as an int64 tensor of shape (B, N) (on ``device`` when given) after
    checking the shape, the integer dtype and ``0 <= indices[:, i] < d_i``; raises
    :class:`InvalidInputError` naming ``name`` and the first bad entry otherwise.
    """
    n = len(phys_dims)
    if not isinstance(indices, Tensor):
        raise InvalidInputError(f"{name} must be a torch.Tensor, got {type(indices).__name__}")
    if indices.ndim != 2 or indices.shape[1] != n:
        raise InvalidInputError(f"{name} must have shape (B, N={n}), got {tuple(indices.shape)}")
    if indices.is_floating_point() or indices.is_complex() or indices.dtype == torch.bool:
        raise InvalidInputError(f"{name} must hold integers, got dtype {indices.dtype}")
    indices = indices.to(device=device if device is not None else indices.device, dtype=torch.long)
    if indices.numel():
        dims = torch.tensor(list(phys_dims), device=indices.device)
        bad = (indices < 0) | (indices >= dims)
        if bool(bad.any()):
            row, site = (int(v) for v in bad.nonzero()[0])
            raise InvalidInputError(
                f"{name}[{row}, {site}] = {int(indices[row, site])} is outside "
                f"[0, {phys_dims[site]}) (the dimension of site {site})"
            )
    return indices


def check_indices(mps: MPS, indices: object, name: str = "indices") -> Tensor:
    """``check_basis_inputs`` for the sites of ``mps``, moved to its device."""
    return check_basis_inputs(indices, mps.phys_dims, name, mps.device)


def one_hot_inputs(mps: MPS, indices: Tensor) -> list[Tensor]:
    """The basis product states of ``indices`` as per-site one-hot vectors.

    Parameters
    ----------
    mps : MPS
        Gives the site dimensions ``d_i``, dtype and device.
    indices : Tensor, shape (B, N), integers with ``0 <= x_i < d_i``

    Returns
    -------
    list of N Tensors, shapes (B, d_i)
        In the MPS's dtype, for :func:`tnml.tensor.contract_product_states`.
    """
    indices = check_indices(mps, indices)
    return [
        torch.nn.functional.one_hot(indices[:, i], d).to(mps.dtype)
        for i, d in enumerate(mps.phys_dims)
    ]


def mps_log_amplitudes(mps: MPS, indices: Tensor) -> tuple[Tensor, Tensor]:
    """``psi(x)`` for a batch of basis inputs, as a sign and the log of its magnitude.

    Parameters
    ----------
    mps : MPS
        Real MPS over N sites.
    indices : Tensor, shape (B, N), integers with ``0 <= x_i < d_i``

    Returns
    -------
    sign : Tensor, shape (B,)
        -1, 0 or +1 (0 where the amplitude vanishes).
    log_abs : Tensor, shape (B,)
        ``log |psi(x)|`` (the MPS's ``log_scale`` included). Differentiable in the cores.
    """
    mps = _check_mps(mps)
    sign, log_abs = contract_product_states(mps.cores, one_hot_inputs(mps, indices), mps.log_scale)
    return sign, log_abs


def mps_log_density(mps: MPS, phi: Tensor | Sequence[Tensor]) -> Tensor:
    """``log(psi(Phi)^2 / <psi|psi>)`` for a batch of product states ``Phi = (x)_i phi_i``.

    With ``phi`` the one-hot vectors of basis inputs this is the Born log-probability
    (:func:`mps_log_prob`). With ``phi_i = M^{-1/2} f(x_i)`` for a feature map ``f`` whose
    metric is ``M = int f f^T dx`` it is the log-density of a continuous Born machine over
    ``x`` in ``[0, 1]^N`` (the whitening makes ``<psi|psi>`` its normaliser).

    Parameters
    ----------
    mps : MPS
        Real MPS over N sites (any scale: the norm is divided out).
    phi : Tensor of shape (B, N, d), or a sequence of N tensors of shape (B, d_i)

    Returns
    -------
    Tensor, shape (B,)
        Natural logs, ``-inf`` where the amplitude vanishes. Differentiable in the cores.
    """
    mps = _check_mps(mps)
    sign, log_abs = contract_product_states(mps.cores, phi, mps.log_scale)
    log_abs = torch.where(sign == 0, torch.full_like(log_abs, -torch.inf), log_abs)
    return 2.0 * (log_abs - mps_log_norm(mps))


def mps_log_prob(mps: MPS, indices: Tensor) -> Tensor:
    """Born-rule log-probabilities ``log(psi(x)^2 / <psi|psi>)`` of basis inputs.

    Parameters
    ----------
    mps : MPS
        Real MPS over N sites (any scale: the norm is divided out).
    indices : Tensor, shape (B, N), integers with ``0 <= x_i < d_i``

    Returns
    -------
    Tensor, shape (B,)
        Natural logs, ``-inf`` where ``psi(x) = 0``. Differentiable in the cores (the
        gradient of the mean is the NLL gradient of Born-machine training).
    """
    mps = _check_mps(mps)
    return mps_log_density(mps, one_hot_inputs(mps, indices))


def check_evidence(
    evidence: Evidence | None, phys_dims: Sequence[int], n: int, device: torch.device | None = None
) -> dict[int, Tensor]:
    """Validate observed values: ``{site: value}`` -> ``{site: int64 tensor (n,) or (1,)}``.

    Parameters
    ----------
    evidence : mapping or None
        Site index -> an int shared by all ``n`` samples, or ``n`` integers.
    phys_dims : sequence of int
        Number of values of every site.
    n : int
        Number of samples.

    Raises
    ------
    InvalidInputError
        A site out of range, a non-integer value, a value outside ``[0, d_site)`` or a
        column of the wrong length (the message names the site).
    """
    if evidence is None:
        return {}
    if not isinstance(evidence, Mapping):
        raise InvalidInputError(
            f"evidence must be a mapping {{site: value}}, got {type(evidence).__name__}"
        )
    n_sites = len(phys_dims)
    columns: dict[int, Tensor] = {}
    for site, value in evidence.items():
        if isinstance(site, bool) or not isinstance(site, int) or not 0 <= site < n_sites:
            raise InvalidInputError(
                f"evidence keys must be site indices in [0, {n_sites}), got {site!r}"
            )
        column = torch.as_tensor(value, device=device)
        if column.is_floating_point() or column.is_complex() or column.dtype == torch.bool:
            raise InvalidInputError(
                f"evidence[{site}] must be an int or integer tensor, got dtype {column.dtype}"
            )
        column = column.reshape(-1).long()
        if column.shape[0] not in (1, n):
            raise InvalidInputError(
                f"evidence[{site}] must be one value or n_samples={n} values, got {column.shape[0]}"
            )
        d = phys_dims[site]
        if bool(((column < 0) | (column >= d)).any()):
            raise InvalidInputError(f"evidence[{site}] must lie in [0, {d}), got {column.tolist()}")
        columns[site] = column
    return columns


def normalise_by_trace(env: Tensor) -> tuple[Tensor, Tensor]:
    """Divide each PSD matrix of a batch (b, D, D) by its trace.

    Returns the normalised batch and the log of the traces (b,). A matrix whose trace is not
    above the smallest normal float is the zero matrix up to rounding (its evidence has
    probability zero): it becomes exactly zero, with log trace ``-inf``, instead of being
    blown up by a division by rounding noise.
    """
    trace = env.diagonal(dim1=1, dim2=2).sum(-1)
    positive = trace > torch.finfo(env.dtype).tiny
    safe = torch.where(positive, trace, torch.ones_like(trace))
    env = torch.where(positive.reshape(-1, 1, 1), env / safe.reshape(-1, 1, 1), 0.0)
    return env, torch.where(positive, safe.log(), torch.full_like(safe, -torch.inf))


def _right_environments(
    cores: Sequence[Tensor], columns: Mapping[int, Tensor]
) -> list[Tensor | None]:
    """Right environments of a right-canonical MPS with some sites fixed by evidence.

    ``envs[k]`` (shape (b, D_k, D_k), b = 1 or n) is ``sum`` over the free sites ``>= k`` of
    ``A[x] ... A[x]^T`` with observed sites fixed, divided by its trace. Right of the last
    observed site the cores are right isometries and the environment is the identity, stored
    as None. ``envs[N]`` is None.
    """
    n_sites = len(cores)
    envs: list[Tensor | None] = [None] * (n_sites + 1)
    last = max(columns, default=-1)
    for k in range(last, -1, -1):
        core = cores[k]
        right = envs[k + 1]
        if k in columns:
            slices = core.permute(1, 0, 2)[columns[k]]  # (b, Dl, Dr)
            if right is None:
                env = slices @ slices.transpose(1, 2)
            else:
                env = slices @ right @ slices.transpose(1, 2)
        else:
            # a free site left of an observed one: right is set; sum_s A_s R A_s^T
            t = torch.einsum("lsr,brq->blsq", core, right)
            env = torch.einsum("blsq,msq->blm", t, core)
        envs[k], _ = normalise_by_trace(env)
    return envs


def mps_sample(
    mps: MPS,
    n_samples: int,
    *,
    evidence: Evidence | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Exact, independent samples from ``p(x) = psi(x)^2 / <psi|psi>``, optionally conditioned.

    The MPS is brought to right-canonical form; site ``k`` is then drawn from
    ``p(x_k | x_<k, evidence)`` computed from the sampled prefix (a (n, D) vector) and the
    right environment of the evidence to its right (the identity where there is none), so
    every sample is an exact draw from the conditional distribution, with no Markov chain.

    Parameters
    ----------
    mps : MPS
        Real MPS over N sites, not the zero state.
    n_samples : int
        Number of samples ``n >= 1``.
    evidence : mapping {site: value}, optional
        Observed sites and their values: an int shared by all samples or a length-``n``
        integer tensor (one value per sample, e.g. the visible pixels of ``n`` images to
        inpaint). Observed sites are copied into the output.
    generator : torch.Generator, optional
        Source of randomness (on the MPS's device), for reproducible draws.

    Returns
    -------
    Tensor, shape (n, N), int64
        The samples.

    Raises
    ------
    InvalidInputError
        Bad ``n_samples`` or ``evidence`` (site out of range, value outside ``[0, d_i)``, wrong
        length), or evidence of probability zero.

    Cost: O(n N d D^2) without evidence; per-sample evidence adds O(n N d D^3) for the right
    environments.
    """
    mps = _check_mps(mps)
    if isinstance(n_samples, bool) or not isinstance(n_samples, int) or n_samples < 1:
        raise InvalidInputError(f"n_samples must be an int >= 1, got {n_samples!r}")
    columns = check_evidence(evidence, mps.phys_dims, n_samples, mps.device)
    with torch.no_grad():
        canon = mps_canonicalize(mps, 0)
        cores = canon.cores
        envs = _right_environments(cores, columns)
        out = torch.empty((n_samples, mps.n_sites), dtype=torch.long, device=mps.device)
        left = torch.ones((n_samples, 1), dtype=mps.dtype, device=mps.device)
        tiny = torch.finfo(mps.dtype).tiny
        for k, core in enumerate(cores):
            dl, d, dr = core.shape
            branches = (left @ core.reshape(dl, d * dr)).reshape(n_samples, d, dr)
            if k in columns:
                choice = columns[k].expand(n_samples)
            else:
                right = envs[k + 1]
                if right is None:
                    weights = branches.square().sum(-1)
                else:
                    weights = torch.einsum(
                        "bsr,brq,bsq->bs", branches, right.expand(n_samples, dr, dr), branches
                    )
                weights = weights.clamp_min(0)
                total = weights.sum(-1, keepdim=True)
                if bool((total <= tiny).any()):
                    rows = torch.nonzero(total[:, 0] <= tiny)[:10, 0].tolist()
                    raise InvalidInputError(
                        f"the evidence of samples {rows} has probability zero under this "
                        "model; nothing can be sampled conditioned on it"
                    )
                choice = torch.multinomial(weights / total, 1, generator=generator).squeeze(1)
            out[:, k] = choice
            left = branches[torch.arange(n_samples, device=mps.device), choice]
            norm = torch.linalg.vector_norm(left, dim=1, keepdim=True)
            if k in columns and bool((norm <= tiny).any()):
                raise InvalidInputError(
                    "the evidence has probability zero under this model; "
                    "nothing can be sampled conditioned on it"
                )
            left = left / norm.clamp_min(tiny)
    return out


def mps_marginal_log_prob(mps: MPS, sites: Sequence[int], values: Tensor) -> Tensor:
    """Log of the marginal probability ``p(x_S = v)`` of a subset ``S`` of sites.

    The MPS is brought to canonical form with its centre on the first site of ``S``, so the
    sites left of it and right of the last site of ``S`` contract to identities; between
    them a per-sample (D, D) environment is carried: the observed site's slice on both sides,
    a sum over the values of a free site. Renormalised as it goes (logs accumulated).

    Parameters
    ----------
    mps : MPS
        Real MPS over N sites, not the zero state.
    sites : sequence of int
        Distinct site indices ``S`` (any order), at least one.
    values : Tensor, shape (B, len(sites)), integers
        ``values[b, j]`` is the observed value of site ``sites[j]``.

    Returns
    -------
    Tensor, shape (B,)
        Natural logs of the marginal probabilities (``-inf`` where zero).
    """
    mps = _check_mps(mps)
    sites = [int(s) for s in sites]
    if not sites or len(set(sites)) != len(sites):
        raise InvalidInputError(f"sites must be distinct site indices, got {sites}")
    for s in sites:
        if not 0 <= s < mps.n_sites:
            raise InvalidInputError(f"sites must lie in [0, {mps.n_sites}), got {s}")
    if not isinstance(values, Tensor) or values.ndim != 2 or values.shape[1] != len(sites):
        shape = tuple(values.shape) if isinstance(values, Tensor) else type(values).__name__
        raise InvalidInputError(f"values must have shape (B, {len(sites)}), got {shape}")
    full = torch.zeros((values.shape[0], mps.n_sites), dtype=torch.long, device=mps.device)
    full[:, sites] = values.to(device=mps.device, dtype=torch.long)
    check_indices(mps, full, name="values")  # range check per site
    observed = dict(zip(sites, full[:, sites].unbind(1), strict=True))
    first, last = min(sites), max(sites)
    batch = values.shape[0]
    with torch.no_grad():
        canon = mps_canonicalize(mps, first)
        dtype = canon.dtype
        dim = canon.cores[first].shape[0]
        env = torch.eye(dim, dtype=dtype, device=mps.device).expand(batch, dim, dim)
        acc = torch.zeros(batch, dtype=dtype, device=mps.device)
        for k in range(first, last + 1):
            core = canon.cores[k]
            if k in observed:
                slices = core.permute(1, 0, 2)[observed[k]]  # (B, Dl, Dr)
                env = slices.transpose(1, 2) @ env @ slices
            else:
                t = torch.einsum("blm,msr->blsr", env, core)
                env = torch.einsum("lsq,blsr->bqr", core, t)
            env, log_trace = normalise_by_trace(env)
            acc = acc + log_trace
    return acc
