"""TTLinear: tensor-train linear layers checked against their dense weight."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

from tnml.exceptions import InvalidInputError
from tnml.nn import TTLinear
from tnml.nn.tt import factorize

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


def test_the_cheaper_path_is_taken_and_flops_are_counted() -> None:
    layer = TTLinear(1024, 1024, max_bond=8, n_cores=5)  # 4^5 x 4^5, Novikov et al.'s layer
    assert sum(c.numel() for c in layer.cores) * 200 < 1024 * 1024
    assert layer.factorized_flops(64) < 64 * 1024 * 1024  # fewer than nn.Linear's
    called = {}
    original = layer._factorized
    layer._factorized = lambda x: called.setdefault("factorized", original(x))  # type: ignore
    layer(torch.randn(64, 1024))
    assert "factorized" in called
    big = TTLinear(64, 64, max_bond=64, n_cores=2)  # full rank, large batch: dense is cheaper
    assert big.factorized_flops(1000) > big.dense_flops(1000)
    assert big.factorized_flops(1) < big.dense_flops(1)  # one input: no W to build


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
