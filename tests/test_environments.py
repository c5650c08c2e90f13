"""tnml.tensor.environments: the one implementation of per-sample environment extension."""

from __future__ import annotations

import torch

from tnml.tensor import MPS
from tnml.tensor.environments import extend_left, extend_right, normalized_rows


def test_left_and_right_environments_give_the_amplitudes_at_every_cut() -> None:
    gen = torch.Generator().manual_seed(0)
    mps = MPS.random(7, 3, 4, generator=gen)
    phi = torch.randn(10, 7, 3, generator=gen, dtype=torch.float64)
    mantissa, log_scale = mps.contract_product_states(phi)
    amplitudes = mantissa * log_scale.exp()
    left = [torch.ones(10, 1, dtype=torch.float64)]
    for k in range(7):
        left.append(extend_left(left[-1], mps.cores[k], phi[:, k], chunk=3))
    right = [torch.ones(10, 1, dtype=torch.float64)]
    for k in range(6, -1, -1):
        right.insert(0, extend_right(right[0], mps.cores[k], phi[:, k], chunk=4))
    scale = float(mps.log_scale.exp())
    for cut in range(8):  # sites < cut on the left, >= cut on the right
        joined = (left[cut] * right[cut]).sum(dim=1) * scale
        torch.testing.assert_close(joined, amplitudes, rtol=1e-10, atol=1e-12)


def test_normalized_rows_keep_the_norm_in_log_space_and_zero_rows_zero() -> None:
    v = torch.tensor([[3.0, 4.0], [0.0, 0.0], [1e-30, 0.0]], dtype=torch.float64)
    rows, log_norm = normalized_rows(v)
    torch.testing.assert_close(rows[0], torch.tensor([0.6, 0.8], dtype=torch.float64))
    assert rows[1].tolist() == [0.0, 0.0] and torch.isfinite(log_norm).all()
    torch.testing.assert_close(log_norm[[0, 2]], torch.log(torch.tensor([5.0, 1e-30]).double()))


def test_the_cache_gives_the_amplitudes_at_its_centre_and_drops_stale_entries() -> None:
    """At every centre the cached left and right rows, scaled back by their logs, close the
    chain to the amplitudes; moving the centre keeps the side in front and drops the side
    behind (reading it raises)."""
    import pytest

    from tnml.exceptions import InvalidInputError
    from tnml.tensor.environments import EnvironmentCache

    gen = torch.Generator().manual_seed(1)
    mps = MPS.random(6, 2, 3, generator=gen)
    phi = torch.randn(9, 6, 2, generator=gen, dtype=torch.float64)
    mantissa, log_scale = mps.contract_product_states(phi)
    amplitudes = mantissa * (log_scale - mps.log_scale).exp()
    cache = EnvironmentCache(phi.unbind(1), mps.cores, 2, chunk=4)

    def closed(site: int) -> torch.Tensor:
        (left, left_log), (right, right_log) = cache.left(site), cache.right(site)
        open_site = torch.einsum("na,asb,ns->nb", left, mps.cores[site], phi[:, site])
        return (open_site * right).sum(1) * (left_log + right_log).exp()

    torch.testing.assert_close(closed(2), amplitudes, rtol=1e-10, atol=1e-12)
    for site in range(2, 5):  # the centre moves right to 5
        cache.push_left(site, mps.cores[site])
        torch.testing.assert_close(closed(site + 1), amplitudes, rtol=1e-10, atol=1e-12)
        with pytest.raises(InvalidInputError, match="right environment of site"):
            cache.right(site)
    for site in range(5, 0, -1):  # and back to 0
        cache.push_right(site, mps.cores[site])
        torch.testing.assert_close(closed(site - 1), amplitudes, rtol=1e-10, atol=1e-12)
    for row, log in [cache.left(0), cache.right(5)]:
        assert torch.all(torch.linalg.vector_norm(row, dim=1).sub(1).abs() < 1e-12)
        assert log.abs().max() == 0
