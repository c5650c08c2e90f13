"""Tests for tnml.tensor.decomp: split, split_tensor, truncation_rank and the method registry."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tnml.exceptions import InvalidInputError
from tnml.tensor.decomp import (
    SPLIT_METHODS,
    SplitResult,
    gram_root,
    register_split_method,
    split,
    split_tensor,
    split_tensor_in_metric,
    truncation_rank,
)

DTYPES = [torch.float64, torch.complex128]
SETTINGS = settings(max_examples=25, deadline=None)


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Small linear algebra is far slower with OpenMP threads on a busy shared machine."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _matrix(m: int, n: int, dtype: torch.dtype, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(m, n, generator=g, dtype=dtype)


def _eye(k: int, like: torch.Tensor) -> torch.Tensor:
    return torch.eye(k, dtype=like.dtype)


matrices = st.builds(
    _matrix,
    st.integers(1, 7),
    st.integers(1, 7),
    st.sampled_from(DTYPES),
    st.integers(0, 2**31 - 1),
)


# ---- exact reconstruction ----------------------------------------------------------------


@SETTINGS
@given(a=matrices, absorb=st.sampled_from(["left", "right", "both", None]))
def test_svd_reconstructs_without_truncation(a: torch.Tensor, absorb: str | None) -> None:
    res = split(a, "svd", absorb=absorb)
    k = min(a.shape)
    assert res.left.shape == (a.shape[0], k) and res.right.shape == (k, a.shape[1])
    assert res.singular_values is not None
    approx = res.left @ res.right
    if absorb is None:
        approx = (res.left * res.singular_values.to(a.dtype)) @ res.right
    torch.testing.assert_close(approx, a, rtol=1e-10, atol=1e-10)
    assert float(res.discarded_weight) == 0.0
    assert res.left.dtype == a.dtype and res.right.dtype == a.dtype
    # independent truth for the spectrum: numpy's SVD
    np.testing.assert_allclose(
        res.singular_values.numpy(), np.linalg.svd(a.numpy(), compute_uv=False), atol=1e-10
    )


@SETTINGS
@given(a=matrices)
def test_qr_and_lq_reconstruct_with_isometries(a: torch.Tensor) -> None:
    k = min(a.shape)
    q = split(a, "qr")
    torch.testing.assert_close(q.left @ q.right, a, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(q.left.mH @ q.left, _eye(k, a), rtol=0, atol=1e-10)
    assert q.singular_values is None and float(q.discarded_weight) == 0.0
    lq = split(a, "lq")
    torch.testing.assert_close(lq.left @ lq.right, a, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(lq.right @ lq.right.mH, _eye(k, a), rtol=0, atol=1e-10)
    # L is lower triangular
    torch.testing.assert_close(lq.left, torch.tril(lq.left))


@SETTINGS
@given(a=matrices)
def test_polar_methods(a: torch.Tensor) -> None:
    m, n = a.shape
    pr = split(a, "polar_right")
    torch.testing.assert_close(pr.left @ pr.right, a, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(pr.right, pr.right.mH, rtol=0, atol=1e-10)  # Hermitian
    assert float(torch.linalg.eigvalsh(pr.right).min()) > -1e-10  # PSD
    if m >= n:
        torch.testing.assert_close(pr.left.mH @ pr.left, _eye(n, a), rtol=0, atol=1e-10)
    pl = split(a, "polar_left")
    torch.testing.assert_close(pl.left @ pl.right, a, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(pl.left, pl.left.mH, rtol=0, atol=1e-10)
    if m <= n:
        torch.testing.assert_close(pl.right @ pl.right.mH, _eye(m, a), rtol=0, atol=1e-10)


# ---- truncation --------------------------------------------------------------------------


@SETTINGS
@given(
    a=matrices,
    max_bond=st.one_of(st.none(), st.integers(1, 7)),
    cutoff=st.sampled_from([0.0, 1e-3, 0.05, 0.3, 0.9]),
    mode=st.sampled_from(["rel", "abs", "sum2"]),
    absorb=st.sampled_from(["left", "right", "both"]),
)
def test_truncation_error_equals_discarded_weight(
    a: torch.Tensor, max_bond: int | None, cutoff: float, mode: str, absorb: str
) -> None:
    res = split(a, max_bond=max_bond, cutoff=cutoff, cutoff_mode=mode, absorb=absorb)
    err2 = torch.linalg.matrix_norm(a - res.left @ res.right).square()
    total = torch.linalg.matrix_norm(a).square()
    torch.testing.assert_close(err2, res.discarded_weight, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(
        res.relative_discarded_weight, res.discarded_weight / total, rtol=1e-12, atol=0
    )
    # Eckart-Young: the kept rank, and the error is the tail of the exact spectrum
    s = np.linalg.svd(a.numpy(), compute_uv=False)
    k = res.rank
    assert 1 <= k <= len(s)
    if max_bond is not None:
        assert k <= max_bond
    np.testing.assert_allclose(float(err2), float(np.sum(s[k:] ** 2)), rtol=1e-9, atol=1e-12)


@SETTINGS
@given(a=matrices, max_bond=st.integers(1, 3))
def test_renorm_preserves_norm(a: torch.Tensor, max_bond: int) -> None:
    res = split(a, max_bond=max_bond, renorm=True)
    torch.testing.assert_close(
        torch.linalg.matrix_norm(res.left @ res.right),
        torch.linalg.matrix_norm(a),
        rtol=1e-10,
        atol=0,
    )
    plain = split(a, max_bond=max_bond)
    torch.testing.assert_close(res.discarded_weight, plain.discarded_weight)


def test_truncation_rank_hand_built_spectra() -> None:
    s = torch.tensor([10.0, 5.0, 1.0, 0.5, 0.01], dtype=torch.float64)
    # cutoff 0 disables the cutoff
    assert truncation_rank(s) == 5
    assert truncation_rank(s, max_bond=3) == 3
    # rel: keep s_i > cutoff * s_0
    assert truncation_rank(s, cutoff=0.08, cutoff_mode="rel") == 3  # > 0.8
    assert truncation_rank(s, cutoff=0.04, cutoff_mode="rel") == 4  # > 0.4
    assert truncation_rank(s, cutoff=0.6, cutoff_mode="rel") == 1  # only 10
    # abs: keep s_i > cutoff
    assert truncation_rank(s, cutoff=0.7, cutoff_mode="abs") == 3
    assert truncation_rank(s, cutoff=0.001, cutoff_mode="abs") == 5
    assert truncation_rank(s, cutoff=100.0, cutoff_mode="abs") == 1  # always keep one
    # sum2: squares 4, 3, 2, 1 (total 10); tails 10, 6, 3, 1
    s2 = torch.tensor([4.0, 3.0, 2.0, 1.0], dtype=torch.float64).sqrt()
    assert truncation_rank(s2, cutoff=0.05, cutoff_mode="sum2") == 4  # 1 > 0.5
    assert truncation_rank(s2, cutoff=0.15, cutoff_mode="sum2") == 3  # drop tail 1 <= 1.5
    assert truncation_rank(s2, cutoff=0.35, cutoff_mode="sum2") == 2  # drop tail 3 <= 3.5
    assert truncation_rank(s2, cutoff=0.65, cutoff_mode="sum2") == 1
    assert truncation_rank(s2, cutoff=1.0, cutoff_mode="sum2") == 1  # at least one
    # max_bond and cutoff together: the stricter wins
    assert truncation_rank(s, max_bond=2, cutoff=0.04) == 2
    assert truncation_rank(s, max_bond=4, cutoff=0.6) == 1
    # a zero spectrum keeps one value
    assert truncation_rank(torch.zeros(3), cutoff=0.1) == 1


def test_truncation_in_split_matches_truncation_rank() -> None:
    u, _ = torch.linalg.qr(torch.randn(6, 6, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(5, 5, dtype=torch.float64))
    s = torch.tensor([3.0, 2.0, 1.0, 1e-3, 1e-9], dtype=torch.float64)
    a = u[:, :5] @ torch.diag(s) @ v.T
    for mode, cutoff in [("rel", 1e-2), ("abs", 0.5), ("sum2", 1e-4)]:
        res = split(a, cutoff=cutoff, cutoff_mode=mode)
        assert res.rank == truncation_rank(s, cutoff=cutoff, cutoff_mode=mode)
        torch.testing.assert_close(res.singular_values, s[: res.rank])


# ---- shapes, batches, dtypes -------------------------------------------------------------


@SETTINGS
@given(
    shape=st.lists(st.integers(1, 3), min_size=2, max_size=5),
    data=st.data(),
    dtype=st.sampled_from(DTYPES),
)
def test_split_tensor_shapes_and_reconstruction(
    shape: list[int], data: st.DataObject, dtype: torch.dtype
) -> None:
    n_left = data.draw(st.integers(1, len(shape) - 1))
    method = data.draw(st.sampled_from(["svd", "qr", "lq"]))
    t = torch.randn(*shape, dtype=dtype, generator=torch.Generator().manual_seed(len(shape)))
    res = split_tensor(t, n_left, method=method)
    k = res.rank
    assert res.left.shape == (*shape[:n_left], k)
    assert res.right.shape == (k, *shape[n_left:])
    back = torch.tensordot(res.left, res.right, dims=([n_left], [0]))
    torch.testing.assert_close(back, t, rtol=1e-10, atol=1e-10)


def test_batched_svd_uses_common_rank() -> None:
    g = torch.Generator().manual_seed(1)
    a = torch.randn(3, 5, 4, generator=g, dtype=torch.float64)
    res = split(a)
    torch.testing.assert_close(res.left @ res.right, a)
    cut = split(a, max_bond=2)
    assert cut.left.shape == (3, 5, 2) and cut.right.shape == (3, 2, 4)
    assert cut.discarded_weight.shape == (3,)
    err = torch.linalg.matrix_norm(a - cut.left @ cut.right).square()
    torch.testing.assert_close(err, cut.discarded_weight)
    q = split(a, "qr")
    torch.testing.assert_close(q.left @ q.right, a)


@pytest.mark.parametrize("dtype", [torch.float32, torch.complex64])
def test_single_precision_dtypes_are_kept(dtype: torch.dtype) -> None:
    a = torch.randn(4, 3, dtype=dtype)
    for method in ["svd", "qr", "lq"]:
        res = split(a, method)
        assert res.left.dtype == dtype and res.right.dtype == dtype
        assert res.discarded_weight.dtype == torch.float32
        torch.testing.assert_close(res.left @ res.right, a, rtol=1e-5, atol=1e-5)


def test_register_split_method() -> None:
    @register_split_method("_test_identity", truncates=False)
    def _identity(a: torch.Tensor, **_: object) -> SplitResult:
        eye = torch.eye(a.shape[-2], dtype=a.dtype)
        zero = torch.zeros((), dtype=a.dtype.to_real())
        return SplitResult(eye, a, None, zero, zero)

    try:
        a = torch.randn(3, 2, dtype=torch.float64)
        res = split(a, "_test_identity")
        torch.testing.assert_close(res.left @ res.right, a)
        with pytest.raises(InvalidInputError, match="cannot truncate"):
            split(a, "_test_identity", max_bond=1)
    finally:
        del SPLIT_METHODS["_test_identity"]


# ---- bad arguments -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "nope"}, "method"),
        ({"cutoff": -1e-3}, "cutoff"),
        ({"cutoff": float("nan")}, "cutoff"),
        ({"max_bond": 0}, "max_bond"),
        ({"max_bond": 2.5}, "max_bond"),
        ({"cutoff_mode": "rsum2"}, "cutoff_mode"),
        ({"absorb": "middle"}, "absorb"),
        ({"method": "qr", "max_bond": 2}, "cannot truncate"),
        ({"method": "lq", "cutoff": 0.1}, "cannot truncate"),
        ({"method": "qr", "absorb": None}, "absorb"),
        ({"method": "qr", "absorb": "both"}, "absorb"),
    ],
)
def test_split_bad_arguments(kwargs: dict[str, object], match: str) -> None:
    a = torch.randn(3, 4, dtype=torch.float64)
    with pytest.raises(InvalidInputError, match=match):
        split(a, **kwargs)  # type: ignore[arg-type]


def test_bad_inputs() -> None:
    with pytest.raises(InvalidInputError, match="a must have at least 2"):
        split(torch.randn(3))
    with pytest.raises(InvalidInputError, match="dtype"):
        split(torch.ones(2, 2, dtype=torch.int64))
    with pytest.raises(InvalidInputError, match=r"a must be a torch\.Tensor"):
        split([[1.0, 2.0]])  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="n_left_dims"):
        split_tensor(torch.randn(2, 3, 4), 3)
    with pytest.raises(InvalidInputError, match="n_left_dims"):
        split_tensor(torch.randn(2, 3, 4), 0)
    with pytest.raises(InvalidInputError, match="s must be"):
        truncation_rank(torch.ones(2, 2))
    with pytest.raises(InvalidInputError, match="max_bond"):
        truncation_rank(torch.ones(2), max_bond=0)
    # a ValueError, as callers of a scientific library expect
    with pytest.raises(ValueError, match="cutoff"):
        truncation_rank(torch.ones(2), cutoff=-1.0)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_svd_falls_back_to_gesvd_when_gesdd_does_not_converge(monkeypatch, dtype):
    from tnml.tensor import decomp

    a = torch.randn(2, 7, 5, generator=torch.Generator().manual_seed(0), dtype=dtype)
    original = torch.linalg.svd

    def failing_svd(x, *args, **kwargs):
        raise torch.linalg.LinAlgError("linalg.svd: The algorithm failed to converge")

    monkeypatch.setattr(torch.linalg, "svd", failing_svd)
    u, s, vh = decomp._svd(a)
    monkeypatch.setattr(torch.linalg, "svd", original)
    assert u.dtype == vh.dtype == dtype and u.shape == (2, 7, 5) and vh.shape == (2, 5, 5)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    torch.testing.assert_close(u @ torch.diag_embed(s) @ vh, a, atol=tol, rtol=tol)
    torch.testing.assert_close(s, original(a.double()).S.to(dtype), atol=tol, rtol=tol)


# --------------------------------------------------------------------------------------------
# split_tensor_in_metric
# --------------------------------------------------------------------------------------------


def _random_gram(n: int, generator: torch.Generator, rank: int | None = None) -> torch.Tensor:
    x = torch.randn(rank or 3 * n, n, generator=generator, dtype=torch.float64)
    x = x * torch.logspace(0, -3, n, dtype=torch.float64)  # ill-conditioned, as data are
    return x.T @ x


def _metric_error(t, approx, gl, gr) -> float:
    """``tr(E^T G_L E G_R)`` over the outer axes, the middle axes unweighted, by einsum."""
    p, q = gl.shape[0], gr.shape[0]
    e = (t - approx).reshape(p, -1, q)
    return float(torch.einsum("axq,ab,bxr,qr->", e, gl, e, gr))


@pytest.mark.parametrize("absorb", ["right", "left"])
def test_split_in_metric_reconstructs_exactly_and_leaves_an_isometry(absorb):
    g = torch.Generator().manual_seed(0)
    t = torch.randn(3, 2, 4, 2, 5, generator=g, dtype=torch.float64)  # (Dl, d, L, d, Dr)
    n_left = 2 if absorb == "right" else 3
    res = split_tensor_in_metric(
        t, n_left, left_gram=_random_gram(6, g), right_gram=_random_gram(10, g), absorb=absorb
    )
    approx = torch.tensordot(res.left, res.right, dims=1)
    torch.testing.assert_close(approx, t, rtol=0, atol=1e-9)
    k = res.rank
    if absorb == "right":
        m = res.left.reshape(-1, k)
        torch.testing.assert_close(m.T @ m, torch.eye(k, dtype=m.dtype), rtol=0, atol=1e-12)
    else:
        m = res.right.reshape(k, -1)
        torch.testing.assert_close(m @ m.T, torch.eye(k, dtype=m.dtype), rtol=0, atol=1e-12)
    assert float(res.discarded_weight) == pytest.approx(0.0, abs=1e-12)


def test_split_in_metric_without_metrics_is_the_plain_truncated_svd():
    g = torch.Generator().manual_seed(1)
    t = torch.randn(4, 3, 6, generator=g, dtype=torch.float64)
    ours = split_tensor_in_metric(t, 2, max_bond=3)
    plain = split_tensor(t, 2, method="svd", max_bond=3)
    torch.testing.assert_close(
        torch.tensordot(ours.left, ours.right, dims=1),
        torch.tensordot(plain.left, plain.right, dims=1),
        rtol=0,
        atol=1e-12,
    )
    torch.testing.assert_close(ours.singular_values, plain.singular_values)
    torch.testing.assert_close(ours.discarded_weight, plain.discarded_weight)


@pytest.mark.parametrize("seed", range(5))
def test_split_in_metric_is_the_best_truncation_in_its_metric(seed):
    """Eckart-Young in the metric: no other rank-k tensor (the plain SVD's, random ones near
    the optimum) has a smaller ``tr(E^T G_L E G_R)``, and the reported discarded weight is
    that error."""
    g = torch.Generator().manual_seed(seed)
    t = torch.randn(3, 2, 3, 2, 4, generator=g, dtype=torch.float64)
    gl, gr = _random_gram(6, g), _random_gram(8, g)
    k = 3
    ours = split_tensor_in_metric(t, 2, left_gram=gl, right_gram=gr, max_bond=k)
    assert ours.rank == k
    best = _metric_error(t, torch.tensordot(ours.left, ours.right, dims=1), gl, gr)
    assert float(ours.discarded_weight) == pytest.approx(best, rel=1e-8)
    total = _metric_error(t, torch.zeros_like(t), gl, gr)
    assert float(ours.relative_discarded_weight) == pytest.approx(best / total, rel=1e-8)
    plain = split_tensor(t, 2, method="svd", max_bond=k)
    assert best <= _metric_error(t, torch.tensordot(plain.left, plain.right, dims=1), gl, gr)
    for _ in range(10):
        left = ours.left + 1e-2 * torch.randn(ours.left.shape, generator=g, dtype=torch.float64)
        right = ours.right + 1e-2 * torch.randn(ours.right.shape, generator=g, dtype=torch.float64)
        assert best <= _metric_error(t, torch.tensordot(left, right, dims=1), gl, gr) + 1e-12


def test_split_in_metric_handles_a_metric_the_data_do_not_span():
    """Fewer samples than dimensions: the Gram is singular, the split still exact untruncated
    and no worse than the plain SVD truncated."""
    g = torch.Generator().manual_seed(5)
    t = torch.randn(4, 3, 5, generator=g, dtype=torch.float64)
    gl, gr = _random_gram(4, g, rank=2), _random_gram(5, g, rank=3)
    full = split_tensor_in_metric(t, 1, left_gram=gl, right_gram=gr)
    torch.testing.assert_close(torch.tensordot(full.left, full.right, dims=1), t, atol=1e-8, rtol=0)
    ours = split_tensor_in_metric(t, 1, left_gram=gl, right_gram=gr, max_bond=2)
    plain = split_tensor(t, 1, method="svd", max_bond=2)
    ours_error = _metric_error(t, torch.tensordot(ours.left, ours.right, dims=1), gl, gr)
    plain_error = _metric_error(t, torch.tensordot(plain.left, plain.right, dims=1), gl, gr)
    assert ours_error <= plain_error * (1 + 1e-6)
    assert torch.isfinite(ours.left).all() and torch.isfinite(ours.right).all()


def test_split_in_metric_rejects_bad_input():
    t = torch.randn(2, 3, 4, dtype=torch.float64)
    with pytest.raises(InvalidInputError, match="left_gram"):
        split_tensor_in_metric(t, 1, left_gram=torch.eye(4, dtype=torch.float64))
    with pytest.raises(InvalidInputError, match="absorb"):
        split_tensor_in_metric(t, 1, absorb="both")
    with pytest.raises(InvalidInputError, match="real"):
        split_tensor_in_metric(t.to(torch.complex128), 1)
    with pytest.raises(InvalidInputError, match="gram must be a square"):
        gram_root(torch.ones(2, 3))


@pytest.mark.parametrize("rank", [None, 3])
def test_cholesky_root_is_a_root_and_gives_the_same_split(rank):
    """``R R^T`` is the Gram (plus the ridge), ``R^{-1}`` its inverse, and splitting with it
    truncates exactly as with the symmetric root (roots differ by an orthogonal factor);
    a singular Gram (``rank`` 3 of 6) still gives an exact untruncated split."""
    g = torch.Generator().manual_seed(7)
    gram = _random_gram(6, g, rank=rank) if rank else _random_gram(6, g)
    root, inverse = gram_root(gram, method="cholesky")
    ridge = 1e-8 * float(gram.diagonal().max())
    torch.testing.assert_close(root @ root.T, gram + ridge * torch.eye(6, dtype=gram.dtype))
    torch.testing.assert_close(inverse @ root, torch.eye(6, dtype=gram.dtype))
    t = torch.randn(3, 2, 4, 2, generator=g, dtype=torch.float64)
    gr = _random_gram(8, g)
    full = split_tensor_in_metric(t, 2, left_gram=gram, right_gram=gr, root="cholesky")
    torch.testing.assert_close(torch.tensordot(full.left, full.right, dims=1), t, atol=1e-8, rtol=0)
    if rank is None:  # well-conditioned metrics, where neither root's floor acts
        x, y = (torch.randn(24, n, generator=g, dtype=torch.float64) for n in (6, 8))
        gl, gr = x.T @ x, y.T @ y
        fast = split_tensor_in_metric(
            t, 2, left_gram=gl, right_gram=gr, max_bond=2, root="cholesky"
        )
        slow = split_tensor_in_metric(t, 2, left_gram=gl, right_gram=gr, max_bond=2)
        torch.testing.assert_close(
            torch.tensordot(fast.left, fast.right, dims=1),
            torch.tensordot(slow.left, slow.right, dims=1),
            rtol=1e-6,  # the ridge moves every eigenvalue by 1e-8 of the largest
            atol=1e-7,
        )
        torch.testing.assert_close(fast.singular_values, slow.singular_values, rtol=1e-6, atol=0)
    with pytest.raises(InvalidInputError, match="method must be one of"):
        gram_root(gram, method="qr")
