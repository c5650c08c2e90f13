"""Matrix product states: the :class:`MPS` container and its algebra.

Conventions
-----------
- A core has shape ``(D_left, d, D_right)``; ``cores[0]`` has ``D_left = 1`` and
  ``cores[-1]`` has ``D_right = 1``. Sites are ``0 .. N-1``; physical dims may differ per site.
  Bond ``b`` (``0 <= b <= N-2``) joins sites ``b`` and ``b + 1``.
- An MPS represents ``exp(log_scale) * contraction(cores)``. ``log_scale`` is a real 0-dim
  tensor (the real dtype of the cores). Functions that could overflow over hundreds of sites
  (norms, overlaps, product-state contraction) accumulate logs of per-step norms and never
  form the raw product.
- Canonical form. ``mps.center = c`` (an int) asserts that cores ``< c`` are left isometries
  (``sum_{l,s} conj(A[l,s,r]) A[l,s,r'] = delta_{r r'}``), cores ``> c`` are right isometries
  (``sum_{s,r} A[l,s,r] conj(A[l',s,r]) = delta_{l l'}``), so the 2-norm of the state is
  ``exp(log_scale) * ||cores[c]||``. Every function here that sets ``center`` establishes
  both and also gives ``cores[c]`` unit Frobenius norm (or zero for the zero state); a
  trainer that moves the centre may leave the norm on ``cores[c]``. Every function that
  breaks the isometries sets ``center = None``. If you replace cores by hand, set
  ``center = None``.
- The algebra is module-level functions (``mps_*``; the contraction with product states is
  :func:`tnml.tensor.contract_product_states`);
  :class:`MPS` has them as methods (``psi.norm()`` is ``mps_norm(psi)``). Operations return a new
  :class:`MPS` (sharing unchanged core tensors, which are never modified in place); each
  in-place twin has the method's name plus ``_`` and replaces ``self``'s cores list entries.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch import Tensor

from tnml.exceptions import InvalidInputError
from tnml.tensor._util import (
    _as_log_scale,
    _safe_norm,
    _tiny,
    check_int_range,
    validate_mps_cores,
)
from tnml.tensor.contract import contract_product_states
from tnml.tensor.decomp import check_truncation_options, split_tensor
from tnml.tensor.entropy import check_entropy_kind, schmidt_entropy

__all__ = [
    "MPS",
    "mps_canonicalize",
    "mps_entanglement_entropy",
    "mps_from_dense",
    "mps_left_canonicalize",
    "mps_log_norm",
    "mps_log_overlap",
    "mps_norm",
    "mps_normalize",
    "mps_overlap",
    "mps_right_canonicalize",
    "mps_schmidt_values",
    "mps_to_dense",
    "mps_truncate",
    "random_mps",
]


# --------------------------------------------------------------------------------------------
# validation helpers
# --------------------------------------------------------------------------------------------


def _check_mps(name: str, value: object) -> MPS:
    if not isinstance(value, MPS):
        raise InvalidInputError(f"{name} must be an MPS, got {type(value).__name__}")
    return value


def _result(
    mps: MPS, cores: list[Tensor], log_scale: Tensor, center: int | None, inplace: bool
) -> MPS:
    """Write the outcome of an operation into ``mps`` (in place) or a shallow copy of it (of
    its class, keeping a subclass's other attributes)."""
    out = mps if inplace else copy.copy(mps)
    out.cores = cores
    out.log_scale = log_scale
    out.center = center
    return out


# --------------------------------------------------------------------------------------------
# construction and dense conversion
# --------------------------------------------------------------------------------------------


def random_mps(
    n_sites: int,
    phys_dim: int | Sequence[int],
    bond_dim: int,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str | None = None,
    normalize: bool = True,
) -> MPS:
    """A random MPS with i.i.d. Gaussian core entries.

    Parameters
    ----------
    n_sites : int
        Number of sites N >= 1.
    phys_dim : int or sequence of int
        Physical dimension d (all sites) or one per site (length N).
    bond_dim : int
        Largest bond dimension D >= 1. Bond ``b`` gets
        ``min(D, d_0 ... d_b, d_{b+1} ... d_{N-1})``, the largest useful size.
    generator : torch.Generator, optional
        Source of randomness (the same seed gives the same MPS). Entries are drawn on the
        generator's device, then moved to ``device``.
    dtype : torch.dtype, default=torch.float64
        Float or complex dtype of the cores (complex entries have unit total variance).
    device : torch.device or str, optional
        Device of the cores.
    normalize : bool, default=True
        If True, set ``log_scale`` so the state has 2-norm 1 (cores are unchanged).

    Returns
    -------
    MPS
        Cores of shape ``(D_b, d_b, D_{b+1})``, each drawn with standard deviation
        ``1 / sqrt(D_b * d_b)``; ``center`` is None.
    """
    n = check_int_range("n_sites", n_sites, 1, 2**62)
    if isinstance(phys_dim, int) and not isinstance(phys_dim, bool):
        dims = [phys_dim] * n
    elif isinstance(phys_dim, Sequence) and all(
        isinstance(x, int) and not isinstance(x, bool) for x in phys_dim
    ):
        dims = list(phys_dim)
        if len(dims) != n:
            raise InvalidInputError(
                f"phys_dim must be an int or a sequence of n_sites={n} ints, got {len(dims)}"
            )
    else:
        raise InvalidInputError(f"phys_dim must be an int or a sequence of ints, got {phys_dim!r}")
    if any(x < 1 for x in dims):
        raise InvalidInputError(f"phys_dim must be >= 1 at every site, got {dims}")
    check_int_range("bond_dim", bond_dim, 1, 2**62)
    if not isinstance(dtype, torch.dtype) or not (dtype.is_floating_point or dtype.is_complex):
        raise InvalidInputError(f"dtype must be a float or complex torch.dtype, got {dtype!r}")

    # bonds[b] is the dim between site b-1 and b; capped by the dims on either side
    bonds = [1] * (n + 1)
    left = 1
    for b in range(1, n):
        left = min(left * dims[b - 1], bond_dim)
        bonds[b] = left
    right = 1
    for b in range(n - 1, 0, -1):
        right = min(right * dims[b], bond_dim)
        bonds[b] = min(bonds[b], right)

    gen_device = generator.device if generator is not None else device
    cores = []
    for i in range(n):
        shape = (bonds[i], dims[i], bonds[i + 1])
        c = torch.randn(shape, generator=generator, dtype=dtype, device=gen_device)
        cores.append((c / math.sqrt(bonds[i] * dims[i])).to(device))
    out = MPS(cores)
    if normalize:
        mps_normalize(out, inplace=True)
    return out


def mps_from_dense(
    psi: Tensor,
    max_bond: int | None = None,
    cutoff: float = 0.0,
    cutoff_mode: str = "rel",
) -> MPS:
    """Build an MPS from a dense tensor by successive SVDs (left to right).

    Parameters
    ----------
    psi : Tensor, shape (d_0, d_1, ..., d_{N-1})
        Float or complex dense tensor, N >= 1.
    max_bond, cutoff, cutoff_mode
        Truncation of each SVD, see :func:`tnml.tensor.decomp.truncation_rank`. Cutoffs apply
        to the singular values of ``psi / ||psi||``.

    Returns
    -------
    MPS
        Left-canonical with ``center = N - 1``: ``log_scale = log ||psi||`` plus the log of
        the norm of what survives truncation (so without truncation ``to_dense()`` gives
        ``psi`` back). Same dtype and device as ``psi``.
    """
    if not isinstance(psi, Tensor):
        raise InvalidInputError(f"psi must be a torch.Tensor, got {type(psi).__name__}")
    if psi.ndim < 1 or psi.numel() == 0:
        raise InvalidInputError(
            f"psi must have at least one non-empty dimension, got shape {tuple(psi.shape)}"
        )
    if not (psi.is_floating_point() or psi.is_complex()):
        raise InvalidInputError(f"psi must have a float or complex dtype, got {psi.dtype}")
    check_truncation_options(max_bond, cutoff, cutoff_mode)
    dims = tuple(psi.shape)
    nrm = _safe_norm(psi)
    log_scale = nrm.log().to(psi.dtype.to_real())
    rest = (psi / nrm).reshape(1, *dims)
    cores = []
    for _ in range(len(dims) - 1):
        res = split_tensor(
            rest,
            2,
            method="svd",
            max_bond=max_bond,
            cutoff=cutoff,
            cutoff_mode=cutoff_mode,
            absorb="right",
        )
        cores.append(res.left)
        rest = res.right
    last = rest.reshape(rest.shape[0], dims[-1], 1)
    n_last = _safe_norm(last)
    cores.append(last / n_last)
    out = MPS(cores, log_scale + n_last.log())
    out.center = len(dims) - 1
    return out


def mps_to_dense(mps: MPS) -> Tensor:
    """Contract the MPS into a dense tensor (including ``exp(log_scale)``).

    Parameters
    ----------
    mps : MPS
        N sites with physical dims ``(d_0, ..., d_{N-1})``.

    Returns
    -------
    Tensor, shape (d_0, ..., d_{N-1})
        Same dtype and device as the cores. Exponential in N: only for small states.
    """
    out = mps.cores[0]
    for c in mps.cores[1:]:
        out = torch.tensordot(out, c, dims=([out.ndim - 1], [0]))
    out = out.reshape(mps.phys_dims)
    return out * mps.log_scale.exp().to(out.dtype)


# --------------------------------------------------------------------------------------------
# canonical forms
# --------------------------------------------------------------------------------------------


def _sweep_right(cores: list[Tensor], start: int, stop: int) -> Tensor:
    """Left-orthogonalise ``cores[start:stop]`` in place (QR), pushing R into the next core.

    Each R is divided by its Frobenius norm before it is pushed; returns the sum of the
    logs of those norms (a real 0-dim tensor).
    """
    acc = torch.zeros((), dtype=cores[0].dtype.to_real(), device=cores[0].device)
    for i in range(start, stop):
        res = split_tensor(cores[i], 2, method="qr")  # (Dl, d, k), (k, Dr)
        n = _safe_norm(res.right)
        cores[i] = res.left
        cores[i + 1] = torch.tensordot(res.right / n, cores[i + 1], dims=([1], [0]))
        acc = acc + n.log()
    return acc


def _sweep_left(cores: list[Tensor], start: int, stop: int) -> Tensor:
    """Right-orthogonalise ``cores[stop+1 .. start]`` in place (LQ), going right to left.

    Each L is divided by its Frobenius norm before it is pushed into the core on its left;
    returns the sum of the logs of those norms.
    """
    acc = torch.zeros((), dtype=cores[0].dtype.to_real(), device=cores[0].device)
    for i in range(start, stop, -1):
        res = split_tensor(cores[i], 1, method="lq")  # (Dl, k), (k, d, Dr)
        n = _safe_norm(res.left)
        cores[i] = res.right
        cores[i - 1] = torch.tensordot(cores[i - 1], res.left / n, dims=([2], [0]))
        acc = acc + n.log()
    return acc


def _normalize_core(cores: list[Tensor], site: int) -> Tensor:
    """Divide ``cores[site]`` by its norm in place; return the log of that norm (0 if zero)."""
    n = _safe_norm(cores[site])
    cores[site] = cores[site] / n
    return n.log()


def mps_left_canonicalize(mps: MPS, upto: int | None = None, *, inplace: bool = False) -> MPS:
    """Make cores ``0 .. upto-1`` left isometries by QR sweeps from the left.

    Each R factor is divided by its norm (the log of which is added to ``log_scale``) and
    absorbed into the next core, so the represented tensor is unchanged and long chains stay
    finite. If sites ``> upto`` are known to be right isometries (``center <= upto``) or
    ``upto = N - 1``, the result has ``center = upto`` with a unit-norm centre core; otherwise
    ``center`` becomes None. When the MPS already has ``center > upto`` nothing is done.

    Parameters
    ----------
    mps : MPS
        The state.
    upto : int, optional
        Site that receives the last R, ``0 <= upto <= N - 1``; default ``N - 1``.
    inplace : bool, default=False
        Modify ``mps`` instead of returning a new MPS.

    Returns
    -------
    MPS
        The left-canonicalised state (``mps`` itself when ``inplace``).
    """
    n = mps.n_sites
    upto = n - 1 if upto is None else check_int_range("upto", upto, 0, n - 1)
    cores, log_scale, old = list(mps.cores), mps.log_scale, mps.center
    if old is not None and old > upto:
        return _result(mps, cores, log_scale, old, inplace)
    start = 0 if old is None else old
    log_scale = log_scale + _sweep_right(cores, start, upto)
    center = upto if (old is not None or upto == n - 1) else None
    if center is not None:
        log_scale = log_scale + _normalize_core(cores, center)
    return _result(mps, cores, log_scale, center, inplace)


def mps_right_canonicalize(mps: MPS, downto: int | None = None, *, inplace: bool = False) -> MPS:
    """Make cores ``downto+1 .. N-1`` right isometries by LQ sweeps from the right.

    Each L factor is divided by its norm (the log of which is added to ``log_scale``) and
    absorbed into the core on its left, so the represented tensor is unchanged. If sites
    ``< downto`` are known to be left isometries (``center >= downto``) or ``downto = 0``,
    the result has ``center = downto`` with a unit-norm centre core; otherwise ``center``
    becomes None. When the MPS already has ``center < downto`` nothing is done.

    Parameters
    ----------
    mps : MPS
        The state.
    downto : int, optional
        Site that receives the last L, ``0 <= downto <= N - 1``; default 0.
    inplace : bool, default=False
        Modify ``mps`` instead of returning a new MPS.

    Returns
    -------
    MPS
        The right-canonicalised state (``mps`` itself when ``inplace``).
    """
    n = mps.n_sites
    downto = 0 if downto is None else check_int_range("downto", downto, 0, n - 1)
    cores, log_scale, old = list(mps.cores), mps.log_scale, mps.center
    if old is not None and old < downto:
        return _result(mps, cores, log_scale, old, inplace)
    start = n - 1 if old is None else old
    log_scale = log_scale + _sweep_left(cores, start, downto)
    center = downto if (old is not None or downto == 0) else None
    if center is not None:
        log_scale = log_scale + _normalize_core(cores, center)
    return _result(mps, cores, log_scale, center, inplace)


def mps_canonicalize(mps: MPS, center: int, *, inplace: bool = False) -> MPS:
    """Bring the MPS to mixed canonical form with orthogonality centre ``center``.

    Afterwards cores ``< center`` are left isometries, cores ``> center`` right isometries,
    ``cores[center]`` has unit Frobenius norm (zero for the zero state) and
    ``exp(log_scale)`` is the 2-norm of the state; the represented tensor is unchanged. QR/LQ
    factors are divided by their norms as they are pushed along (logs go to ``log_scale``).
    When ``mps.center`` is known only the sites between the old and new centre are swept.

    Parameters
    ----------
    mps : MPS
        The state.
    center : int
        Orthogonality centre, ``0 <= center <= N - 1``.
    inplace : bool, default=False
        Modify ``mps`` instead of returning a new MPS.

    Returns
    -------
    MPS
        The canonicalised state with ``.center == center`` (``mps`` itself when ``inplace``).
    """
    n = mps.n_sites
    center = check_int_range("center", center, 0, n - 1)
    cores, log_scale, old = list(mps.cores), mps.log_scale, mps.center
    if old is None:
        log_scale = log_scale + _sweep_right(cores, 0, center)
        log_scale = log_scale + _sweep_left(cores, n - 1, center)
    elif old < center:
        log_scale = log_scale + _sweep_right(cores, old, center)
    elif old > center:
        log_scale = log_scale + _sweep_left(cores, old, center)
    log_scale = log_scale + _normalize_core(cores, center)
    return _result(mps, cores, log_scale, center, inplace)


# --------------------------------------------------------------------------------------------
# norms and overlaps
# --------------------------------------------------------------------------------------------


def mps_log_norm(mps: MPS) -> Tensor:
    """Natural log of the 2-norm of the state, without overflow.

    With a known ``center`` this is ``log_scale + log ||cores[center]||``. Otherwise a
    left-to-right transfer-matrix sweep ``E <- sum_s A_s^H E A_s`` is done, dividing ``E`` by
    its Frobenius norm at every site and accumulating the logs (cost O(N d D^3)).

    Parameters
    ----------
    mps : MPS
        The state.

    Returns
    -------
    Tensor, shape ()
        Real (the cores' real dtype); ``-inf`` for the zero state.
    """
    if mps.center is not None:
        return mps.log_scale + torch.linalg.vector_norm(mps.cores[mps.center]).log()
    tiny = _tiny(mps.dtype)
    env = torch.ones((1, 1), dtype=mps.dtype, device=mps.device)
    acc = torch.zeros((), dtype=mps.dtype.to_real(), device=mps.device)
    for a in mps.cores:
        t = torch.tensordot(env, a, dims=([1], [0]))  # (Dl', d, Dr)
        env = torch.tensordot(a.conj(), t, dims=([0, 1], [0, 1]))  # (Dr, Dr)
        nrm = torch.linalg.vector_norm(env).clamp(min=tiny)
        env = env / nrm
        acc = acc + nrm.log()
    value = env.reshape(()).real.clamp(min=0)
    return mps.log_scale + 0.5 * (acc + value.log())


def mps_norm(mps: MPS) -> Tensor:
    """The 2-norm of the state, ``exp(log_norm())`` (may overflow: prefer ``log_norm``).

    Parameters
    ----------
    mps : MPS
        The state.

    Returns
    -------
    Tensor, shape ()
        Real.
    """
    return mps_log_norm(mps).exp()


def mps_normalize(mps: MPS, *, inplace: bool = False) -> MPS:
    """Rescale the state to 2-norm 1 by adjusting ``log_scale`` (cores are unchanged).

    Parameters
    ----------
    mps : MPS
        The state; must not be zero.
    inplace : bool, default=False
        Modify ``mps`` instead of returning a new MPS.

    Returns
    -------
    MPS
        The normalised state (``mps`` itself when ``inplace``); ``center`` is kept.

    Raises
    ------
    InvalidInputError
        If the state is zero or its norm is not finite.
    """
    ln = mps_log_norm(mps)
    if not bool(torch.isfinite(ln)):
        raise InvalidInputError(f"mps must have a finite nonzero norm to normalize, log_norm={ln}")
    return _result(mps, list(mps.cores), mps.log_scale - ln, mps.center, inplace)


def mps_log_overlap(mps: MPS, other: MPS) -> tuple[Tensor, Tensor]:
    """``<mps|other>`` (``mps`` conjugated) as a phase and the log of its magnitude.

    A left-to-right sweep of the mixed transfer matrix, divided by its Frobenius norm at
    each site with the logs accumulated, so it does not overflow over long chains.

    Parameters
    ----------
    mps : MPS
        The bra (conjugated).
    other : MPS
        The ket; same number of sites, physical dims and device.

    Returns
    -------
    phase : Tensor, shape ()
        Sign (real) or unit-modulus phase (complex) of the overlap, in the promoted dtype of
        the two states; 0 if the overlap is exactly 0.
    log_abs : Tensor, shape ()
        Natural log of ``|<mps|other>|`` (real; ``-inf`` when it is 0).
    """
    other = _check_mps("other", other)
    if mps.phys_dims != other.phys_dims:
        raise InvalidInputError(
            f"other must have the same physical dims as mps: {other.phys_dims} vs {mps.phys_dims}"
        )
    if mps.device != other.device:
        raise InvalidInputError(f"other is on {other.device} but mps is on {mps.device}")
    dtype = torch.promote_types(mps.dtype, other.dtype)
    tiny = _tiny(dtype)
    env = torch.ones((1, 1), dtype=dtype, device=mps.device)
    acc = torch.zeros((), dtype=dtype.to_real(), device=mps.device)
    for a, b in zip(mps.cores, other.cores, strict=True):
        t = torch.tensordot(env, b.to(dtype), dims=([1], [0]))  # (Da, d, Db')
        env = torch.tensordot(a.to(dtype).conj(), t, dims=([0, 1], [0, 1]))  # (Da', Db')
        nrm = torch.linalg.vector_norm(env).clamp(min=tiny)
        env = env / nrm
        acc = acc + nrm.log()
    value = env.reshape(())
    mag = value.abs()
    phase = value / mag.clamp(min=tiny)
    log_abs = acc + mag.log() + mps.log_scale.to(acc.dtype) + other.log_scale.to(acc.dtype)
    return phase, log_abs


def mps_overlap(mps: MPS, other: MPS) -> Tensor:
    """``<mps|other> = sum conj(mps) * other`` (may overflow: prefer ``log_overlap``).

    Parameters
    ----------
    mps : MPS
        The bra (conjugated).
    other : MPS
        The ket; same number of sites, physical dims and device.

    Returns
    -------
    Tensor, shape ()
        In the promoted dtype of the two states.
    """
    phase, log_abs = mps_log_overlap(mps, other)
    return phase * log_abs.exp().to(phase.dtype)


# --------------------------------------------------------------------------------------------
# compression and entanglement
# --------------------------------------------------------------------------------------------


def mps_truncate(
    mps: MPS,
    max_bond: int | None = None,
    cutoff: float = 0.0,
    cutoff_mode: str = "rel",
    *,
    renorm: bool = False,
    inplace: bool = False,
) -> tuple[MPS, Tensor]:
    """Compress the bonds by SVD: right-canonicalise, then truncate left to right.

    After canonicalisation with centre 0 (a unit-norm centre core), each core is split by
    SVD across its right bond, the singular values are absorbed to the right, and the next
    site becomes the centre, so every truncation is optimal for the current canonical form.
    Cutoffs therefore apply to the Schmidt values of the normalised state.

    Parameters
    ----------
    mps : MPS
        The state.
    max_bond, cutoff, cutoff_mode
        Truncation rules, see :func:`tnml.tensor.decomp.truncation_rank`.
    renorm : bool, default=False
        If False the result approximates ``mps`` (its norm drops by the discarded weight);
        if True the result is rescaled to the norm of ``mps``.
    inplace : bool, default=False
        Modify ``mps`` instead of returning a new MPS.

    Returns
    -------
    mps : MPS
        Compressed state, left-canonical with ``center = N - 1`` and a unit-norm last core.
    discarded_weight : Tensor, shape ()
        Sum of the squared discarded singular values over all bonds, relative to the squared
        norm of ``mps``. The per-bond errors are mutually orthogonal, so without ``renorm``
        it equals ``||psi - psi_trunc||^2 / ||psi||^2``.
    """
    check_truncation_options(max_bond, cutoff, cutoff_mode)
    canon = mps_canonicalize(mps, 0)
    cores, log_scale = canon.cores, canon.log_scale
    total = torch.zeros((), dtype=mps.dtype.to_real(), device=mps.device)
    for i in range(mps.n_sites - 1):
        res = split_tensor(
            cores[i],
            2,
            method="svd",
            max_bond=max_bond,
            cutoff=cutoff,
            cutoff_mode=cutoff_mode,
            absorb="right",
        )
        cores[i] = res.left
        cores[i + 1] = torch.tensordot(res.right, cores[i + 1], dims=([1], [0]))
        total = total + res.discarded_weight
    log_norm_left = _normalize_core(cores, mps.n_sites - 1)
    if not renorm:
        log_scale = log_scale + log_norm_left
    return _result(mps, cores, log_scale, mps.n_sites - 1, inplace), total


def mps_schmidt_values(mps: MPS, bond: int) -> Tensor:
    """Schmidt (singular) values across a bond of the normalised state.

    The state is canonicalised with centre ``bond`` and the centre core, reshaped to
    ``(D_left * d, D_right)``, is split by SVD.

    Parameters
    ----------
    mps : MPS
        The state, N >= 2 sites.
    bond : int
        Bond between sites ``bond`` and ``bond + 1``, ``0 <= bond <= N - 2``.

    Returns
    -------
    Tensor, shape (k,)
        Real, descending, with ``sum(s ** 2) = 1`` (all zero for the zero state);
        ``k = min(D_left * d, D_right)`` of the canonical centre core.
    """
    if mps.n_sites < 2:
        raise InvalidInputError("mps must have at least 2 sites to have a bond")
    bond = check_int_range("bond", bond, 0, mps.n_sites - 2)
    canon = mps_canonicalize(mps, bond)
    s = split_tensor(canon.cores[bond], 2, method="svd", absorb=None).singular_values
    assert s is not None
    return s


def mps_entanglement_entropy(mps: MPS, bond: int, kind: str = "vn") -> Tensor:
    """Entanglement entropy across a bond (natural log).

    With ``p_i = s_i ** 2`` the squared Schmidt values of the normalised state:
    "vn" (von Neumann) ``-sum p_i log p_i``; "renyi2" ``-log sum p_i ** 2``.

    Parameters
    ----------
    mps : MPS
        The state, N >= 2 sites, not zero.
    bond : int
        Bond between sites ``bond`` and ``bond + 1``, ``0 <= bond <= N - 2``.
    kind : {"vn", "renyi2"}, default="vn"
        Which entropy.

    Returns
    -------
    Tensor, shape ()
        Real, between 0 and ``log k``.
    """
    check_entropy_kind(kind)
    s = mps_schmidt_values(mps, bond)
    if not bool(s.square().sum() > 0):
        raise InvalidInputError("mps must not be the zero state to have an entanglement entropy")
    return schmidt_entropy(s, kind)


# --------------------------------------------------------------------------------------------
# the container
# --------------------------------------------------------------------------------------------


def _short(values: tuple[int, ...], edge: int = 4) -> str:
    if len(values) <= 2 * edge + 1:
        return str(values)
    head = ", ".join(map(str, values[:edge]))
    tail = ", ".join(map(str, values[-edge:]))
    return f"({head}, ..., {tail})"


class MPS:
    """A matrix product state ``exp(log_scale) * A_0 A_1 ⋯ A_{N-1}``.

    Parameters
    ----------
    cores : sequence of Tensor
        Cores of shape ``(D_i, d_i, D_{i+1})`` with ``D_0 = D_N = 1``, one float or complex
        dtype and one device. The list is copied; the tensors are not.
    log_scale : float or Tensor, default=0.0
        Real scalar; the state is multiplied by ``exp(log_scale)``.

    Attributes
    ----------
    cores : list of Tensor
        The cores (see the module docstring for the canonical-form conventions).
    log_scale : Tensor, shape ()
        Real dtype of the cores, on their device.
    center : int or None
        Orthogonality centre when known (set by canonicalising operations), else None. If
        you replace cores by hand, set it to None.

    Raises
    ------
    InvalidInputError
        A core that is not 3-dim, mismatched neighbouring bonds, boundary bonds other than 1,
        mixed dtypes or devices (the message names the core index).

    Examples
    --------
    >>> import torch
    >>> from tnml.tensor.mps import MPS
    >>> psi = MPS.random(6, 2, 4, generator=torch.Generator().manual_seed(0))
    >>> psi.bond_dims
    (2, 4, 4, 4, 2)
    >>> round(float(psi.norm()), 6)
    1.0
    """

    cores: list[Tensor]
    log_scale: Tensor
    center: int | None

    def __init__(self, cores: Sequence[Tensor], log_scale: float | Tensor = 0.0) -> None:
        self.cores = validate_mps_cores(cores)
        self.log_scale = _as_log_scale(log_scale, self.cores[0])
        self.center = None

    # ---- the algebra of this module as methods (``psi.norm()`` is ``mps_norm(psi)``) --------

    random = staticmethod(random_mps)
    from_dense = staticmethod(mps_from_dense)
    to_dense = mps_to_dense

    def copy(self) -> MPS:
        """A new MPS with the same core tensors, ``log_scale`` and ``center``."""
        return _result(self, list(self.cores), self.log_scale, self.center, inplace=False)

    # ---- properties ------------------------------------------------------------------------

    @property
    def n_sites(self) -> int:
        """Number of sites N."""
        return len(self.cores)

    @property
    def phys_dims(self) -> tuple[int, ...]:
        """Physical dimension of each site, length N."""
        return tuple(int(c.shape[1]) for c in self.cores)

    @property
    def bond_dims(self) -> tuple[int, ...]:
        """The N - 1 internal bond dimensions (bond ``b`` joins sites ``b`` and ``b + 1``)."""
        return tuple(int(c.shape[2]) for c in self.cores[:-1])

    @property
    def max_bond_dim(self) -> int:
        """Largest internal bond dimension (1 for a single site)."""
        return max(self.bond_dims, default=1)

    @property
    def dtype(self) -> torch.dtype:
        """Dtype of the cores."""
        return self.cores[0].dtype

    @property
    def device(self) -> torch.device:
        """Device of the cores."""
        return self.cores[0].device

    left_canonicalize = mps_left_canonicalize
    right_canonicalize = mps_right_canonicalize
    canonicalize = mps_canonicalize
    log_norm = mps_log_norm
    norm = mps_norm
    normalize = mps_normalize
    log_overlap = mps_log_overlap
    overlap = mps_overlap
    truncate = mps_truncate
    schmidt_values = mps_schmidt_values
    entanglement_entropy = mps_entanglement_entropy

    # ---- in place: the method's name plus ``_``, returning ``self`` ------------------------

    def left_canonicalize_(self, upto: int | None = None) -> MPS:
        """In-place :meth:`left_canonicalize`; returns ``self``."""
        return mps_left_canonicalize(self, upto, inplace=True)

    def right_canonicalize_(self, downto: int | None = None) -> MPS:
        """In-place :meth:`right_canonicalize`; returns ``self``."""
        return mps_right_canonicalize(self, downto, inplace=True)

    def canonicalize_(self, center: int) -> MPS:
        """In-place :meth:`canonicalize`; returns ``self``."""
        return mps_canonicalize(self, center, inplace=True)

    def normalize_(self) -> MPS:
        """In-place :meth:`normalize`; returns ``self``."""
        return mps_normalize(self, inplace=True)

    def truncate_(
        self,
        max_bond: int | None = None,
        cutoff: float = 0.0,
        cutoff_mode: str = "rel",
        *,
        renorm: bool = False,
    ) -> tuple[MPS, Tensor]:
        """In-place :meth:`truncate`; returns ``(self, discarded_weight)``."""
        return mps_truncate(self, max_bond, cutoff, cutoff_mode, renorm=renorm, inplace=True)

    # ---- contraction -----------------------------------------------------------------------

    def contract_product_states(self, phi: Tensor | Sequence[Tensor]) -> tuple[Tensor, Tensor]:
        """Amplitudes on a batch of product states; see :func:`contract_product_states`.

        Parameters
        ----------
        phi : Tensor of shape (B, N, d), or a sequence of N tensors of shape (B, d_i)
            Local vectors of each product state (not conjugated).

        Returns
        -------
        mantissa : Tensor, shape (B,)
            Sign or phase (0 where the amplitude vanishes).
        log_abs_scale : Tensor, shape (B,)
            Real; amplitude = ``mantissa * exp(log_abs_scale)`` (includes ``log_scale``).
        """
        return contract_product_states(self.cores, phi, self.log_scale)

    def __repr__(self) -> str:
        center = "" if self.center is None else f", center={self.center}"
        return (
            f"{type(self).__name__}(n_sites={self.n_sites}, phys_dims={_short(self.phys_dims)}, "
            f"bond_dims={_short(self.bond_dims)}, dtype={self.dtype}{center})"
        )
