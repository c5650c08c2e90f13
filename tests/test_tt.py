"""TTLinear: tensor-train linear layers checked against their dense weight."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from tnml.exceptions import InvalidInputError
from tnml.nn import TTEmbedding, TTLinear
from tnml.nn.tt import _group_cost, contraction_plan, factorize, fast_modes

F64 = torch.float64


@given(st.integers(1, 5000), st.integers(1, 6))
def test_factorize_multiplies_back(n: int, k: int) -> None:
    modes = factorize(n, k)
    assert len(modes) == k and math.prod(modes) == n and modes == sorted(modes, reverse=True)


@pytest.mark.parametrize(
    ("in_f", "out_f", "kwargs"),
    [
        (64, 48, {}),
        (30, 10, {"n_cores": 4}),  # modes of 1 pad the shorter factorisation
        (24, 35, {"in_modes": [2, 3, 4], "out_modes": [5, 7, 1]}),
        (17, 13, {"n_cores": 2}),  # primes
        (96, 40, {"n_cores": 3, "modes": "fast"}),
    ],
)
def test_full_rank_tt_svd_reproduces_the_layer(in_f: int, out_f: int, kwargs: dict) -> None:
    torch.manual_seed(0)
    linear = nn.Linear(in_f, out_f, dtype=F64)
    layer = TTLinear.from_linear(linear, **kwargs)
    x = torch.randn(9, in_f, dtype=F64)
    torch.testing.assert_close(layer.weight(), linear.weight, rtol=0, atol=1e-12)
    torch.testing.assert_close(layer(x), linear(x), rtol=0, atol=1e-12)
    torch.testing.assert_close(layer.to_linear()(x), linear(x), rtol=0, atol=1e-12)


def test_factorized_forward_equals_the_dense_weight_and_so_do_gradients() -> None:
    torch.manual_seed(1)
    layer = TTLinear(96, 60, max_bond=5, n_cores=3, dtype=F64)
    x = torch.randn(11, 96, dtype=F64)
    target = torch.randn(11, 60, dtype=F64)
    y_fact = layer._factorized(x) + layer.bias
    grads_fact = torch.autograd.grad(((y_fact - target) ** 2).sum(), list(layer.parameters()))
    y_dense = x @ layer.weight().T + layer.bias
    grads_dense = torch.autograd.grad(((y_dense - target) ** 2).sum(), list(layer.parameters()))
    torch.testing.assert_close(y_fact, y_dense, rtol=1e-12, atol=1e-12)
    for a, b in zip(grads_fact, grads_dense, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    y = layer(x.reshape(11, 1, 96))  # leading dimensions kept
    assert y.shape == (11, 1, 60)


def test_truncation_error_falls_with_the_bond_and_parameters_shrink() -> None:
    torch.manual_seed(2)
    linear = nn.Linear(256, 256, dtype=F64)
    errors, sizes = [], []
    for bond in (2, 8, 32, 256):
        layer = TTLinear.from_linear(linear, max_bond=bond, n_cores=4)
        errors.append(float(torch.linalg.norm(layer.weight().detach() - linear.weight.detach())))
        sizes.append(sum(c.numel() for c in layer.cores))
    assert errors == sorted(errors, reverse=True) and errors[-1] < 1e-10
    assert sizes == sorted(sizes) and sizes[0] < 256 * 256 / 20


def _partitions(k: int) -> list[tuple[tuple[int, int], ...]]:
    """Every split of cores 0..k-1 into contiguous groups."""
    if k == 0:
        return [()]
    return [(*p, (start, k)) for start in range(k) for p in _partitions(start)]


def test_every_grouping_of_the_cores_gives_the_same_layer() -> None:
    torch.manual_seed(4)
    layer = TTLinear(96, 60, max_bond=5, n_cores=4, dtype=F64)
    x = torch.randn(7, 96, dtype=F64)
    reference = x @ layer.weight().T
    plans = _partitions(4)
    assert len(plans) == 8
    for plan in plans:
        torch.testing.assert_close(layer._contract(x, plan), reference, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("batch", [1, 8, 64, 4096])
def test_the_plan_is_the_cheapest_grouping_and_flops_are_counted(batch: int) -> None:
    layer = TTLinear(1024, 1024, max_bond=8, n_cores=5)  # 4^5 x 4^5, Novikov et al.'s layer
    shapes = tuple(tuple(c.shape) for c in layer.cores)
    cost = {p: sum(_group_cost(shapes, batch, i, j)[1] for i, j in p) for p in _partitions(5)}
    plan = contraction_plan(shapes, batch)
    assert cost[plan] == min(cost.values())
    # one core per group: the textbook count sum_j B (prod m_<j) (prod n_>j) r m n q
    assert sum(_group_cost(shapes, batch, j, j + 1)[0] for j in range(5)) == (
        layer.factorized_flops(batch)
    )
    assert layer.flops(batch) == sum(_group_cost(shapes, batch, i, j)[0] for i, j in plan)
    if batch >= 8:
        assert layer.flops(batch) < batch * 1024 * 1024  # fewer than nn.Linear's
    big = TTLinear(64, 64, max_bond=64, n_cores=2)  # full rank, large batch: dense is cheaper
    big_shapes = tuple(tuple(c.shape) for c in big.cores)
    assert contraction_plan(big_shapes, 1000) == ((0, 2),)
    assert big.flops(1000) == big.dense_flops(1000)


def test_trains_from_scratch() -> None:
    torch.manual_seed(3)
    teacher = nn.Linear(64, 16)
    x = torch.randn(512, 64)
    y = teacher(x).detach()
    layer = TTLinear(64, 16, max_bond=16)
    opt = torch.optim.Adam(layer.parameters(), lr=1e-2)
    first = None
    for _ in range(300):
        loss = ((layer(x) - y) ** 2).mean()
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.05 * first


def test_bad_arguments_are_named() -> None:
    with pytest.raises(
        InvalidInputError, match="in_modes must be 2 positive ints whose product is 12"
    ):
        TTLinear(12, 4, in_modes=[2, 5])
    with pytest.raises(InvalidInputError, match=r"linear must be a torch\.nn\.Linear"):
        TTLinear.from_linear(nn.Conv1d(2, 2, 1))  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="expects inputs with 12 features"):
        TTLinear(12, 4)(torch.randn(3, 10))
    with pytest.raises(InvalidInputError, match="modes must be 'balanced' or 'fast'"):
        TTLinear(12, 4, modes="skewed")


def _ordered_factorizations(n: int, k: int) -> list[tuple[int, ...]]:
    """Brute force: every k-tuple of divisors >= 2 of n whose product is n."""
    divisors = [d for d in range(2, n + 1) if n % d == 0]
    return [t for t in itertools.product(divisors, repeat=k) if math.prod(t) == n]


@pytest.mark.parametrize(("in_f", "out_f", "k", "bond"), [(24, 36, 2, 3), (48, 16, 3, 4)])
def test_fast_modes_are_the_cheapest_within_the_balanced_parameters(
    in_f: int, out_f: int, k: int, bond: int
) -> None:
    """Against every factorisation, each counted by a layer built on it."""

    def cost(in_modes: tuple[int, ...], out_modes: tuple[int, ...]) -> tuple[int, int]:
        layer = TTLinear(in_f, out_f, bond, in_modes=in_modes, out_modes=out_modes, bias=False)
        return layer.factorized_flops(64), sum(c.numel() for c in layer.cores)

    budget = cost(tuple(factorize(in_f, k)), tuple(factorize(out_f, k)))[1]
    best = min(
        cost(i, o)
        for i in _ordered_factorizations(in_f, k)
        for o in _ordered_factorizations(out_f, k)
        if cost(i, o)[1] <= budget
    )
    in_modes, out_modes = fast_modes(in_f, out_f, k, bond)
    assert cost(tuple(in_modes), tuple(out_modes)) == best
    layer = TTLinear(in_f, out_f, bond, n_cores=k, modes="fast")
    assert (layer.in_modes, layer.out_modes) == (in_modes, out_modes)


@pytest.mark.parametrize("k", [2, 3])
def test_fast_modes_take_fewer_flops_than_dense_at_four_times_compression(k: int) -> None:
    """The issue's bar for the factorised forward, on a grid of shapes and ranks: wherever the
    layer holds 4x fewer weights, it takes fewer multiply-adds than the dense product, at
    every batch (the balanced modes do not: two cores at 8x take twice the dense count)."""
    shapes = [(1024, 1024), (384, 1536), (1536, 384), (784, 256), (512, 100), (300, 300)]
    checked = 0
    for in_f, out_f in shapes:
        for bond in (1, 2, 4, 8, 16, 32, 64, 128, 256):
            layer = TTLinear(in_f, out_f, bond, n_cores=k, modes="fast", bias=False)
            if in_f * out_f < 4 * sum(c.numel() for c in layer.cores):
                continue
            checked += 1
            for batch in (1, 64, 1024):
                assert layer.flops(batch) < in_f * out_f * batch, (in_f, out_f, bond, batch)
    assert checked >= 30
    balanced = TTLinear(1024, 1024, 64, n_cores=2, bias=False)  # 8x fewer weights
    assert balanced.flops(64) == 2 * 1024 * 1024 * 64


# ---- TTEmbedding ---------------------------------------------------------------------------


@pytest.mark.parametrize(("rows", "dim", "kwargs"), [(101, 12, {}), (64, 8, {"n_cores": 2})])
def test_tt_embedding_full_rank_reproduces_the_table(rows: int, dim: int, kwargs: dict) -> None:
    torch.manual_seed(5)
    embedding = nn.Embedding(rows, dim, dtype=F64)
    layer = TTEmbedding.from_embedding(embedding, **kwargs)
    assert math.prod(layer.vocab_modes) >= rows
    idx = torch.randint(rows, (3, 7))
    torch.testing.assert_close(layer(idx), embedding(idx), rtol=0, atol=1e-12)
    torch.testing.assert_close(layer.to_embedding().weight, embedding.weight, rtol=0, atol=1e-12)


def test_tt_embedding_lookup_and_gradients_agree_with_the_dense_table() -> None:
    torch.manual_seed(6)
    layer = TTEmbedding(50, 12, max_bond=3, dtype=F64)
    idx = torch.tensor([[0, 49, 7], [7, 7, 13]])
    target = torch.randn(2, 3, 12, dtype=F64)
    grads = torch.autograd.grad(((layer(idx) - target) ** 2).sum(), list(layer.parameters()))
    table = layer.weight()
    dense = torch.autograd.grad(((table[idx] - target) ** 2).sum(), list(layer.parameters()))
    for a, b in zip(grads, dense, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    assert float(table.detach().var()) == pytest.approx(1.0, rel=0.5)  # nn.Embedding's scale


def test_tt_embedding_truncation_and_bad_input() -> None:
    torch.manual_seed(7)
    embedding = nn.Embedding(200, 16, dtype=F64)
    errors = [
        float(
            (TTEmbedding.from_embedding(embedding, max_bond=b).weight() - embedding.weight)
            .detach()
            .norm()
        )
        for b in (1, 4, 16, 1000)
    ]
    assert errors == sorted(errors, reverse=True) and errors[-1] < 1e-10
    layer = TTEmbedding(200, 16, vocab_modes=[8, 5, 5], dim_modes=[4, 2, 2], ranks=[3, 5])
    assert layer.ranks == [3, 5]
    with pytest.raises(InvalidInputError, match=r"indices must lie in \[0, 200\)"):
        layer(torch.tensor([200]))
    with pytest.raises(InvalidInputError, match="indices must be integers"):
        layer(torch.tensor([1.0]))
    with pytest.raises(InvalidInputError, match="vocab_modes must multiply to at least"):
        TTEmbedding(200, 16, vocab_modes=[5, 5, 5])
