"""Matrix factorisations: the single entry point for every split in ``tnml``.

Every factorisation of a tensor into two pieces (SVD with truncation, QR, LQ, polar) goes
through :func:`split` (matrices) or :func:`split_tensor` (tensors, grouping leading and
trailing indices). The truncation options ``max_bond``, ``cutoff`` and ``cutoff_mode`` are
parsed in exactly one place, :func:`truncation_rank`, so truncation is either right everywhere
or wrong everywhere.

Methods live in the registry :data:`SPLIT_METHODS`; add one with :func:`register_split_method`.
A method is a function ``fn(a, *, max_bond, cutoff, cutoff_mode, absorb, renorm) ->
SplitResult`` that receives already validated options and a tensor ``a`` of shape
``(..., m, n)``.

This module is pure torch: device and dtype always come from the inputs; float32, float64,
complex64 and complex128 are supported.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from tnml.exceptions import InvalidInputError

__all__ = [
    "ABSORB_OPTIONS",
    "CUTOFF_MODES",
    "SPLIT_METHODS",
    "SplitResult",
    "check_truncation_options",
    "gram_root",
    "register_split_method",
    "split",
    "split_tensor",
    "split_tensor_in_metric",
    "truncation_rank",
]

#: The accepted values of ``cutoff_mode``.
CUTOFF_MODES: tuple[str, ...] = ("rel", "abs", "sum2")
#: The accepted values of ``absorb``.
ABSORB_OPTIONS: tuple[str | None, ...] = ("left", "right", "both", None)


@dataclass(frozen=True)
class SplitResult:
    """The two factors of a split, ``a ≈ left @ right``, and what truncation discarded.

    Attributes
    ----------
    left : Tensor, shape (..., m, k)
        Left factor.
    right : Tensor, shape (..., k, n)
        Right factor.
    singular_values : Tensor of shape (..., k) or None
        The kept singular values (real, descending; rescaled when ``renorm=True``) for
        methods that compute them ("svd", "polar_*"), else None. When ``absorb=None`` the
        approximation is ``left @ diag(singular_values) @ right``.
    discarded_weight : Tensor, shape (...)
        Sum of squares of the discarded singular values (absolute, real dtype). For an
        untruncated split it is zero. Without ``renorm`` it equals
        ``||a - approx||_F ** 2``.
    relative_discarded_weight : Tensor, shape (...)
        ``discarded_weight / ||a||_F ** 2`` (0 where ``a`` is zero).
    """

    left: Tensor
    right: Tensor
    singular_values: Tensor | None
    discarded_weight: Tensor
    relative_discarded_weight: Tensor

    @property
    def rank(self) -> int:
        """The size ``k`` of the new bond."""
        return int(self.left.shape[-1])


SplitMethod = Callable[..., SplitResult]

#: Registry of split methods, name -> function. Extend with :func:`register_split_method`.
SPLIT_METHODS: dict[str, SplitMethod] = {}

# Methods that cannot truncate: passing ``max_bond`` or a nonzero ``cutoff`` raises.
_EXACT_METHODS: set[str] = set()


def register_split_method(
    name: str, *, truncates: bool = True
) -> Callable[[SplitMethod], SplitMethod]:
    """Register a split method under ``name`` (a decorator).

    Parameters
    ----------
    name : str
        The name :func:`split` will accept as ``method``.
    truncates : bool, default=True
        Whether the method honours ``max_bond`` / ``cutoff``. For a method registered with
        ``truncates=False``, :func:`split` rejects those options instead of ignoring them.

    Returns
    -------
    Callable
        The decorator, which returns the function unchanged.
    """

    def decorator(fn: SplitMethod) -> SplitMethod:
        SPLIT_METHODS[name] = fn
        if truncates:
            _EXACT_METHODS.discard(name)
        else:
            _EXACT_METHODS.add(name)
        return fn

    return decorator


# --------------------------------------------------------------------------------------------
# option parsing: the one place truncation rules live
# --------------------------------------------------------------------------------------------


def check_truncation_options(max_bond: int | None, cutoff: float, cutoff_mode: str) -> None:
    """Validate ``max_bond``, ``cutoff`` and ``cutoff_mode`` (see :func:`truncation_rank`).

    Callers that sweep (e.g. MPS compression) use it to fail before doing any work.

    Raises
    ------
    InvalidInputError
        ``max_bond`` not None or an int >= 1, ``cutoff`` not a finite float >= 0, or
        ``cutoff_mode`` not one of :data:`CUTOFF_MODES`.
    """
    if max_bond is not None:
        if isinstance(max_bond, bool) or not isinstance(max_bond, int):
            raise InvalidInputError(f"max_bond must be a positive int or None, got {max_bond!r}")
        if max_bond < 1:
            raise InvalidInputError(f"max_bond must be >= 1, got {max_bond}")
    if isinstance(cutoff, bool) or not isinstance(cutoff, (int, float)):
        raise InvalidInputError(f"cutoff must be a non-negative float, got {cutoff!r}")
    if not math.isfinite(cutoff) or cutoff < 0:
        raise InvalidInputError(f"cutoff must be a finite float >= 0, got {cutoff!r}")
    if cutoff_mode not in CUTOFF_MODES:
        raise InvalidInputError(f"cutoff_mode must be one of {CUTOFF_MODES}, got {cutoff_mode!r}")


def _keep_counts(s: Tensor, max_bond: int | None, cutoff: float, cutoff_mode: str) -> Tensor:
    """Vectorised truncation rule: the number of values to keep for each row of ``s``.

    ``s`` has shape (..., k), real, descending along the last axis. Returns an int64 tensor
    of shape (...), each entry in [1, k] (assumes k >= 1). Options must already be checked.
    """
    k = s.shape[-1]
    if cutoff > 0:
        if cutoff_mode == "rel":
            keep = (s > cutoff * s[..., :1]).sum(dim=-1)
        elif cutoff_mode == "abs":
            keep = (s > cutoff).sum(dim=-1)
        else:  # "sum2": drop the largest tail whose weight is <= cutoff * total weight
            s2 = s.square()
            tail = s2.flip(-1).cumsum(dim=-1).flip(-1)  # tail[i] = sum_{j >= i} s_j^2
            keep = (tail > cutoff * tail[..., :1]).sum(dim=-1)
    else:
        keep = torch.full(s.shape[:-1], k, dtype=torch.int64, device=s.device)
    if max_bond is not None:
        keep = keep.clamp(max=max_bond)
    return keep.clamp(min=1)


def truncation_rank(
    s: Tensor, max_bond: int | None = None, cutoff: float = 0.0, cutoff_mode: str = "rel"
) -> int:
    """Number of singular values to keep under the truncation rules.

    This is the one place the truncation options are interpreted.

    Parameters
    ----------
    s : Tensor, shape (k,)
        Singular values, real, non-negative, in descending order.
    max_bond : int or None, default=None
        Keep at most this many (>= 1). None: no limit.
    cutoff : float, default=0.0
        Threshold (>= 0); 0 disables the cutoff (every value is kept, zeros included).
    cutoff_mode : {"rel", "abs", "sum2"}, default="rel"
        "rel": keep ``s_i > cutoff * s_0``. "abs": keep ``s_i > cutoff``. "sum2": discard the
        largest tail whose sum of squares is ``<= cutoff * sum(s ** 2)``.

    Returns
    -------
    int
        The rank to keep, between 1 and k (at least one value is always kept).
    """
    check_truncation_options(max_bond, cutoff, cutoff_mode)
    if not isinstance(s, Tensor) or s.ndim != 1 or s.shape[0] < 1:
        raise InvalidInputError("s must be a non-empty 1-D tensor of singular values")
    if s.is_complex():
        raise InvalidInputError(f"s must be real (singular values), got dtype {s.dtype}")
    return int(_keep_counts(s, max_bond, cutoff, cutoff_mode).item())


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _real_zeros(a: Tensor) -> Tensor:
    """Zeros of shape ``a.shape[:-2]`` in the real dtype of ``a``."""
    return torch.zeros(a.shape[:-2], dtype=a.dtype.to_real(), device=a.device)


def _svd(a: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Thin SVD ``a = U diag(S) Vh`` with a retry on LAPACK/cuSOLVER failure."""
    try:
        return torch.linalg.svd(a, full_matrices=False)
    except torch.linalg.LinAlgError:
        if not bool(torch.isfinite(a).all()):
            raise InvalidInputError(
                "a must be finite: the matrix to split has NaN or inf"
            ) from None
        if a.is_cuda:
            return torch.linalg.svd(a, full_matrices=False, driver="gesvd")
        if a.dtype in (torch.float32, torch.complex64):  # retry in double precision
            hi = torch.float64 if a.dtype == torch.float32 else torch.complex128
            a = a.to(hi)
            try:
                u, s, vh = torch.linalg.svd(a, full_matrices=False)
            except torch.linalg.LinAlgError:
                u, s, vh = _svd_gesvd_cpu(a)
            low = torch.float32 if hi == torch.float64 else torch.complex64
            return u.to(low), s.to(low.to_real()), vh.to(low)
        # LAPACK's divide and conquer (gesdd) can fail to converge on ill-conditioned
        # matrices (seen after 45 Born-machine sweeps at D = 100); QR iteration (gesvd) does not
        return _svd_gesvd_cpu(a)


def _svd_gesvd_cpu(a: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Thin SVD of a CPU matrix (or batch) by LAPACK's gesvd, through SciPy."""
    import scipy.linalg

    flat = a.reshape(-1, *a.shape[-2:]).detach().numpy()
    parts = [scipy.linalg.svd(m, full_matrices=False, lapack_driver="gesvd") for m in flat]
    u, s, vh = (torch.from_numpy(np.stack(x)) for x in zip(*parts, strict=True))
    batch = a.shape[:-2]
    return (
        u.reshape(*batch, *u.shape[-2:]),
        s.reshape(*batch, s.shape[-1]),
        vh.reshape(*batch, *vh.shape[-2:]),
    )


def _absorb(u: Tensor, s: Tensor, vh: Tensor, absorb: str | None) -> tuple[Tensor, Tensor]:
    """Distribute the singular values between the factors."""
    if absorb == "right":
        return u, s.unsqueeze(-1).to(vh.dtype) * vh
    if absorb == "left":
        return u * s.unsqueeze(-2).to(u.dtype), vh
    if absorb == "both":
        r = s.sqrt()
        return u * r.unsqueeze(-2).to(u.dtype), r.unsqueeze(-1).to(vh.dtype) * vh
    return u, vh


def _mh(a: Tensor) -> Tensor:
    """Conjugate transpose of the last two axes."""
    return a.mH


# --------------------------------------------------------------------------------------------
# methods
# --------------------------------------------------------------------------------------------


@register_split_method("svd")
def _split_svd(
    a: Tensor,
    *,
    max_bond: int | None,
    cutoff: float,
    cutoff_mode: str,
    absorb: str | None,
    renorm: bool,
) -> SplitResult:
    """Truncated thin SVD. For batched input the common rank is the largest needed."""
    u, s, vh = _svd(a)
    total = s.square().sum(dim=-1)
    k_full = s.shape[-1]
    if k_full == 0:
        raise InvalidInputError(f"a must have no zero-size dimension, got shape {tuple(a.shape)}")
    if max_bond is None and cutoff == 0:
        k = k_full
    else:
        k = int(_keep_counts(s, max_bond, cutoff, cutoff_mode).max().item())
    discarded = s[..., k:].square().sum(dim=-1)
    u, s, vh = u[..., :k], s[..., :k], vh[..., :k, :]
    if renorm and k < k_full:
        kept = total - discarded
        factor = torch.where(kept > 0, total / kept.clamp(min=torch.finfo(s.dtype).tiny), 1.0)
        s = s * factor.sqrt().unsqueeze(-1)
    left, right = _absorb(u, s, vh, absorb)
    rel = torch.where(total > 0, discarded / total.clamp(min=torch.finfo(s.dtype).tiny), 0.0)
    return SplitResult(left, right, s, discarded, rel)


@register_split_method("qr", truncates=False)
def _split_qr(
    a: Tensor,
    *,
    max_bond: int | None,
    cutoff: float,
    cutoff_mode: str,
    absorb: str | None,
    renorm: bool,
) -> SplitResult:
    """Reduced QR: ``left = Q`` (column isometry, (m, k)), ``right = R`` (k, n), k = min(m, n)."""
    q, r = torch.linalg.qr(a, mode="reduced")
    zero = _real_zeros(a)
    return SplitResult(q, r, None, zero, zero.clone())


@register_split_method("lq", truncates=False)
def _split_lq(
    a: Tensor,
    *,
    max_bond: int | None,
    cutoff: float,
    cutoff_mode: str,
    absorb: str | None,
    renorm: bool,
) -> SplitResult:
    """Reduced LQ: ``left = L`` (m, k), ``right = Q`` (row isometry, (k, n)), k = min(m, n)."""
    q, r = torch.linalg.qr(_mh(a), mode="reduced")
    zero = _real_zeros(a)
    return SplitResult(_mh(r), _mh(q), None, zero, zero.clone())


@register_split_method("polar_right", truncates=False)
def _split_polar_right(
    a: Tensor,
    *,
    max_bond: int | None,
    cutoff: float,
    cutoff_mode: str,
    absorb: str | None,
    renorm: bool,
) -> SplitResult:
    """Right polar decomposition ``a = W @ P``: ``left = W = U Vh`` (m, n), the isometry
    nearest to ``a`` (column isometry when m >= n), ``right = P = Vh^H S Vh`` (n, n),
    Hermitian positive semi-definite."""
    u, s, vh = _svd(a)
    w = u @ vh
    p = _mh(vh) @ (s.unsqueeze(-1).to(vh.dtype) * vh)
    zero = _real_zeros(a)
    return SplitResult(w, p, s, zero, zero.clone())


@register_split_method("polar_left", truncates=False)
def _split_polar_left(
    a: Tensor,
    *,
    max_bond: int | None,
    cutoff: float,
    cutoff_mode: str,
    absorb: str | None,
    renorm: bool,
) -> SplitResult:
    """Left polar decomposition ``a = P @ W``: ``left = P = U S U^H`` (m, m), Hermitian
    positive semi-definite, ``right = W = U Vh`` (m, n), the isometry nearest to ``a`` (row
    isometry when m <= n)."""
    u, s, vh = _svd(a)
    w = u @ vh
    p = (u * s.unsqueeze(-2).to(u.dtype)) @ _mh(u)
    zero = _real_zeros(a)
    return SplitResult(p, w, s, zero, zero.clone())


# --------------------------------------------------------------------------------------------
# entry points
# --------------------------------------------------------------------------------------------


def split(
    a: Tensor,
    method: str = "svd",
    *,
    max_bond: int | None = None,
    cutoff: float = 0.0,
    cutoff_mode: str = "rel",
    absorb: str | None = "right",
    renorm: bool = False,
) -> SplitResult:
    """Factorise a matrix (or a batch of matrices) as ``a ≈ left @ right``.

    Parameters
    ----------
    a : Tensor, shape (..., m, n)
        Float or complex matrix; leading dimensions are batch dimensions.
    method : str, default="svd"
        A key of :data:`SPLIT_METHODS`:

        - "svd": thin SVD, supports truncation and every ``absorb``.
        - "qr": ``left`` is a column isometry Q, ``right`` is R (no truncation).
        - "lq": ``left`` is L, ``right`` is a row isometry Q (no truncation).
        - "polar_right" / "polar_left": ``a = W P`` / ``a = P W`` with W the nearest
          isometry and P Hermitian PSD (no truncation).
    max_bond : int or None, default=None
        Keep at most this many singular values (>= 1). Only for truncating methods.
    cutoff : float, default=0.0
        Singular-value threshold (>= 0, 0 disables), interpreted by ``cutoff_mode``. Only for
        truncating methods. See :func:`truncation_rank`.
    cutoff_mode : {"rel", "abs", "sum2"}, default="rel"
        How ``cutoff`` is read; see :func:`truncation_rank`.
    absorb : {"right", "left", "both", None}, default="right"
        Where the singular values go (method "svd"): into ``right``, into ``left``, their
        square root into each, or nowhere (then ``left = U``, ``right = Vh`` and the values
        are in ``singular_values``). For "qr", "lq" and "polar_*" the factor structure is fixed
        by the method and ``absorb`` is not used; "both" and None are rejected for them
        because they ask for separate singular values.
    renorm : bool, default=False
        If True, rescale the kept singular values so that the Frobenius norm of the
        approximation equals that of ``a`` (reported discarded weights are unaffected).

    Returns
    -------
    SplitResult
        ``left`` (..., m, k), ``right`` (..., k, n), ``singular_values`` (..., k) or None,
        ``discarded_weight`` (...) and ``relative_discarded_weight`` (...). For a batch, the
        new bond ``k`` is the largest rank any member needs under the truncation rules.

    Raises
    ------
    InvalidInputError
        Unknown ``method`` / ``absorb`` / ``cutoff_mode``, ``max_bond < 1``, negative
        ``cutoff``, truncation options with a method that cannot truncate, or ``a`` not a
        float/complex tensor with at least 2 dimensions.
    """
    if method not in SPLIT_METHODS:
        raise InvalidInputError(f"method must be one of {sorted(SPLIT_METHODS)}, got {method!r}")
    if absorb not in ABSORB_OPTIONS:
        raise InvalidInputError(f"absorb must be one of {ABSORB_OPTIONS}, got {absorb!r}")
    check_truncation_options(max_bond, cutoff, cutoff_mode)
    if not isinstance(a, Tensor):
        raise InvalidInputError(f"a must be a torch.Tensor, got {type(a).__name__}")
    if a.ndim < 2:
        raise InvalidInputError(f"a must have at least 2 dimensions (..., m, n), got {a.ndim}")
    if not (a.is_floating_point() or a.is_complex()):
        raise InvalidInputError(f"a must have a float or complex dtype, got {a.dtype}")
    if method in _EXACT_METHODS:
        if max_bond is not None or cutoff != 0:
            raise InvalidInputError(
                f"method {method!r} cannot truncate: max_bond and cutoff must be left unset"
            )
        if absorb not in ("left", "right"):
            raise InvalidInputError(
                f"absorb must be 'left' or 'right' with method {method!r}, got {absorb!r}"
            )
    return SPLIT_METHODS[method](
        a,
        max_bond=max_bond,
        cutoff=cutoff,
        cutoff_mode=cutoff_mode,
        absorb=absorb,
        renorm=bool(renorm),
    )


def split_tensor(t: Tensor, n_left_dims: int, **split_kwargs: object) -> SplitResult:
    """Split a tensor between its first ``n_left_dims`` axes and the rest.

    The tensor is reshaped to a matrix ``(prod(t.shape[:n_left_dims]), prod(rest))``, split
    with :func:`split`, and the factors are reshaped back.

    Parameters
    ----------
    t : Tensor, shape (a_1, ..., a_p, b_1, ..., b_q)
        Float or complex tensor with ``p = n_left_dims`` and ``q >= 1``.
    n_left_dims : int
        Number of leading axes that go to the left factor, ``1 <= n_left_dims < t.ndim``.
    **split_kwargs
        ``method``, ``max_bond``, ``cutoff``, ``cutoff_mode``, ``absorb``, ``renorm``:
        passed to :func:`split`.

    Returns
    -------
    SplitResult
        ``left`` of shape (a_1, ..., a_p, k), ``right`` of shape (k, b_1, ..., b_q),
        ``singular_values`` (k,) or None, and 0-dim discarded weights.
    """
    if not isinstance(t, Tensor):
        raise InvalidInputError(f"t must be a torch.Tensor, got {type(t).__name__}")
    if isinstance(n_left_dims, bool) or not isinstance(n_left_dims, int):
        raise InvalidInputError(f"n_left_dims must be an int, got {n_left_dims!r}")
    if not 1 <= n_left_dims < t.ndim:
        raise InvalidInputError(
            f"n_left_dims must be in [1, {t.ndim - 1}] for a {t.ndim}-dim tensor, got {n_left_dims}"
        )
    left_shape = tuple(t.shape[:n_left_dims])
    right_shape = tuple(t.shape[n_left_dims:])
    m = math.prod(left_shape)
    n = math.prod(right_shape)
    res = split(t.reshape(m, n), **split_kwargs)  # type: ignore[arg-type]
    k = res.left.shape[-1]
    return SplitResult(
        res.left.reshape(*left_shape, k),
        res.right.reshape(k, *right_shape),
        res.singular_values,
        res.discarded_weight,
        res.relative_discarded_weight,
    )


#: Eigenvalues of a Gram matrix below this fraction of the largest are raised to it before
#: its root is taken, so directions the data never visit keep a finite inverse.
GRAM_EIGEN_FLOOR = 1e-8


GRAM_ROOTS = ("eigh", "cholesky")


def gram_root(
    gram: Tensor, floor: float = GRAM_EIGEN_FLOOR, method: str = "eigh"
) -> tuple[Tensor, Tensor]:
    """A root ``R`` of a symmetric positive semi-definite matrix and its inverse.

    Parameters
    ----------
    gram : Tensor, shape (n, n)
        Real symmetric PSD matrix (symmetrised here), e.g. ``X^T X`` for samples ``X``.
    floor : float, default=GRAM_EIGEN_FLOOR
        ``"eigh"``: eigenvalues below ``floor`` times the largest are raised to it;
        ``"cholesky"``: ``floor`` times the largest diagonal entry is added to the diagonal.
    method : {"eigh", "cholesky"}, default="eigh"
        ``"cholesky"``: the lower Cholesky factor, several times faster than the symmetric
        root; falls back to ``"eigh"`` when the factorisation fails. Two roots of one matrix
        differ by an orthogonal factor, which a truncated SVD in the metric does not see, but
        the two floors regularise differently (the ridge moves every eigenvalue, the
        eigenvalue floor only the small ones), so splits in a nearly singular metric differ
        in the directions the floor governs.

    Returns
    -------
    tuple of Tensor
        ``(R, R^{-1})``, both (n, n), with ``R R^T = gram`` (up to the floor).
    """
    if not isinstance(gram, Tensor) or gram.ndim != 2 or gram.shape[0] != gram.shape[1]:
        raise InvalidInputError("gram must be a square matrix (a torch.Tensor of shape (n, n))")
    if method not in GRAM_ROOTS:
        raise InvalidInputError(f"method must be one of {GRAM_ROOTS}, got {method!r}")
    gram = (gram + gram.T) / 2
    if method == "cholesky":
        ridge = floor * max(float(gram.diagonal().max()), 1e-300)
        eye = torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device)
        lower, info = torch.linalg.cholesky_ex(gram + ridge * eye)
        if int(info) == 0:
            return lower, torch.linalg.solve_triangular(lower, eye, upper=False)
    values, vectors = torch.linalg.eigh(gram)
    values = values.clamp_min(floor * max(float(values.max()), 1e-300))
    return vectors * values.sqrt(), (vectors / values.sqrt()).T


def split_tensor_in_metric(
    t: Tensor,
    n_left_dims: int,
    *,
    left_gram: Tensor | None = None,
    right_gram: Tensor | None = None,
    max_bond: int | None = None,
    cutoff: float = 0.0,
    cutoff_mode: str = "rel",
    absorb: str = "right",
    root: str = "eigh",
) -> SplitResult:
    """Split a tensor like :func:`split_tensor`, truncating in a data metric, not in norm.

    A plain truncated SVD keeps what carries most of ``||t||^2``. When ``t`` is only ever
    contracted with particular vectors -- a bond tensor of a classifier with the training
    samples' environments -- that can be a tiny part of the norm: truncating in norm then
    discards what the data see. Here the error is measured as ``sum_i ||x_i^T (t - t') y_i||^2``
    with ``x_i`` on the outer left axes and ``y_i`` on the outer right axes, in the Kronecker
    approximation ``tr(E^T G_L E G_R)`` (``G_L = sum_i x_i x_i^T``, ``G_R = sum_i y_i y_i^T``),
    whose minimiser at each rank is the truncated SVD of ``R_L^T t R_R`` mapped back
    (``G = R R^T``). Axes between the two metric blocks (a label index) are unweighted.

    Parameters
    ----------
    t : Tensor, shape (a_1, ..., a_p, b_1, ..., b_q)
        Real tensor; ``p = n_left_dims``.
    n_left_dims : int
        Leading axes that go to the left factor, ``1 <= n_left_dims < t.ndim``.
    left_gram : Tensor, shape (m, m), optional
        Metric of the leading axes whose sizes multiply to ``m`` (``m`` must divide the left
        size); None: the identity.
    right_gram : Tensor, shape (n, n), optional
        Metric of the trailing axes whose sizes multiply to ``n``; None: the identity.
    max_bond, cutoff, cutoff_mode
        Truncation (see :func:`truncation_rank`), applied to the singular values in the
        metric.
    absorb : {"right", "left"}, default="right"
        ``"right"``: ``left`` is an isometry (orthonormal columns over the left axes) and
        ``right`` holds the rest; ``"left"``: the mirror image.
    root : {"eigh", "cholesky"}, default="eigh"
        How the Grams' roots are taken (:func:`gram_root`): the same split where neither
        floor acts (well-conditioned Grams); ``"cholesky"`` is faster.

    Returns
    -------
    SplitResult
        ``left`` (a_1, ..., a_p, k), ``right`` (k, b_1, ..., b_q), the singular values in the
        metric (k,), and the discarded weight in the metric (absolute and relative to
        ``tr(t^T G_L t G_R)``). With both Grams None this is :func:`split_tensor` with
        ``method="svd"`` up to the gauge of the bond.

    Raises
    ------
    InvalidInputError
        Bad axes, truncation options or ``absorb``, a complex ``t``, or a Gram matrix whose
        size does not divide the outer axes.
    """
    check_truncation_options(max_bond, cutoff, cutoff_mode)
    if absorb not in ("left", "right"):
        raise InvalidInputError(f"absorb must be 'left' or 'right', got {absorb!r}")
    if not isinstance(t, Tensor) or not t.is_floating_point():
        raise InvalidInputError("t must be a real floating-point torch.Tensor")
    if isinstance(n_left_dims, bool) or not isinstance(n_left_dims, int):
        raise InvalidInputError(f"n_left_dims must be an int, got {n_left_dims!r}")
    if not 1 <= n_left_dims < t.ndim:
        raise InvalidInputError(
            f"n_left_dims must be in [1, {t.ndim - 1}] for a {t.ndim}-dim tensor, got {n_left_dims}"
        )
    left_shape, right_shape = tuple(t.shape[:n_left_dims]), tuple(t.shape[n_left_dims:])
    m, n = math.prod(left_shape), math.prod(right_shape)
    p = m if left_gram is None else int(left_gram.shape[0])
    q = n if right_gram is None else int(right_gram.shape[0])
    for name, size, whole in (("left_gram", p, m), ("right_gram", q, n)):
        if size < 1 or whole % size:
            raise InvalidInputError(
                f"{name} must be square with a size dividing {whole}, got size {size}"
            )
    dtype = t.dtype
    # the roots of ill-conditioned Grams need double precision
    work = t.to(torch.float64).reshape(p, m // p, n // q, q)
    roots = [
        gram_root(g.to(device=t.device, dtype=torch.float64), method=root)
        if g is not None
        else None
        for g in (left_gram, right_gram)
    ]
    if roots[0] is not None:
        work = torch.einsum("ap,pxyq->axyq", roots[0][0].T, work)
    if roots[1] is not None:
        work = torch.einsum("pxyq,qb->pxyb", work, roots[1][0])
    u, s, vh = _svd(work.reshape(m, n))
    k = truncation_rank(s, max_bond, cutoff, cutoff_mode)
    total = s.square().sum()
    discarded = s[k:].square().sum()
    u, s, vh = u[:, :k], s[:k], vh[:k]
    # back from the metric: left rows through R_L^{-T}, right columns through R_R^{-1}
    if roots[0] is not None:
        u = torch.einsum("pa,axk->pxk", roots[0][1].T, u.reshape(p, m // p, k)).reshape(m, k)
    if roots[1] is not None:
        vh = torch.einsum("kyq,qb->kyb", vh.reshape(k, n // q, q), roots[1][1]).reshape(k, n)
    if absorb == "right":
        isometry, rest = torch.linalg.qr(u)
        left, right = isometry, (rest * s) @ vh
    else:
        isometry, rest = torch.linalg.qr(vh.T)
        left, right = (u * s) @ rest.T, isometry.T
    relative = discarded / total if float(total) > 0 else torch.zeros_like(total)
    return SplitResult(
        left.to(dtype).reshape(*left_shape, k),
        right.to(dtype).reshape(k, *right_shape),
        s.to(dtype),
        discarded.to(dtype),
        relative.to(dtype),
    )
