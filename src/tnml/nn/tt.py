"""Tensor-train (MPO) linear layers: ``TTLinear`` (Novikov et al. 2015, "Tensorizing neural
networks").

The weight ``W`` (out x in) is stored as ``k`` cores: with ``out = m_1 ... m_k`` and
``in = n_1 ... n_k`` (row-major multi-indices),

    W[(o_1 .. o_k), (i_1 .. i_k)] = G_1[:, o_1, i_1, :] G_2[:, o_2, i_2, :] ... G_k[:, o_k, i_k, :]

with cores ``G_j`` of shape ``(r_{j-1}, m_j, n_j, r_j)`` and ``r_0 = r_k = 1``. A factorised
forward contracts the input with one core after the other and never builds ``W``; where that
costs more multiply-adds than building ``W`` and one dense product (small batches, large
ranks), the layer takes the dense path. Both give the same result.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from tnml._validation import check_int
from tnml.exceptions import InvalidInputError
from tnml.nn.factorized import FactorizedLinear
from tnml.tensor.mps import mps_from_dense

__all__ = [
    "TTLinear",
    "contraction_plan",
    "factorize",
    "fast_modes",
    "plan_flops",
    "prime_factors",
    "tt_svd_matrix",
]


def prime_factors(n: int) -> list[int]:
    """The prime factors of ``n >= 1`` in increasing order, with multiplicity."""
    factors, p = [], 2
    while p * p <= n:
        while n % p == 0:
            factors.append(p)
            n //= p
        p += 1
    if n > 1:
        factors.append(n)
    return factors


def factorize(n: int, k: int) -> list[int]:
    """``n`` as ``k`` factors as equal as its prime factors allow, largest first (1s pad).

    >>> factorize(1024, 5), factorize(784, 3), factorize(10, 3)
    ([4, 4, 4, 4, 4], [14, 8, 7], [5, 2, 1])
    """
    check_int("n", n, 1)
    check_int("k", k, 1)
    modes = [1] * k
    for p in sorted(prime_factors(n), reverse=True):  # largest primes first, into the
        modes[modes.index(min(modes))] *= p  # currently smallest mode
    return sorted(modes, reverse=True)


@functools.lru_cache(maxsize=4096)
def _factorizations(n: int, k: int, smallest: int) -> tuple[tuple[int, ...], ...]:
    """Every ordered way to write ``n`` as ``k`` factors, each at least ``smallest``."""
    if k == 1:
        return ((n,),) if n >= smallest else ()
    return tuple(
        (d, *tail)
        for d in range(max(smallest, 1), n + 1)
        if n % d == 0
        for tail in _factorizations(n // d, k - 1, smallest)
    )


def _tt_ranks(sizes: Sequence[int], max_bond: int) -> list[int]:
    """``r_0 .. r_k`` of cores with ``m_j n_j = sizes[j]``: ``max_bond``, capped by what either
    side of each cut can carry."""
    k = len(sizes)
    return [
        min(max_bond, math.prod(sizes[:j]), math.prod(sizes[j:])) if 0 < j < k else 1
        for j in range(k + 1)
    ]


def fast_modes(
    in_features: int, out_features: int, n_cores: int, max_bond: int, batch: int = 64
) -> tuple[list[int], list[int]]:
    """The factorisation ``(in_modes, out_modes)`` into ``n_cores`` modes each (all >= 2 where
    the sizes allow) whose forward takes the fewest multiply-adds for ``batch`` inputs at TT
    rank ``max_bond``, among those with no more parameters than the balanced
    :func:`factorize` pair (ties: fewer parameters).

    The factorised forward contracts the input modes one core after the other; its cost
    falls when the first output modes and the last input modes are small, so the choice is
    skewed: for a square layer and two cores ``in = (n/2, 2)``, ``out = (2, n/2)``, whose
    ``2 r n`` parameters are the balanced pair's and whose ``4 r n`` multiply-adds are a
    fraction of its ``2 r n sqrt(n)``; for unequal sizes the skewed pair holds more
    parameters than the balanced one, so a less skewed pair wins (384 -> 1536: 192x2 / 3x512).
    Every factorisation pair is tried: milliseconds for two or three cores, seconds for six
    cores of sizes near 8,192 (the result is cached per arguments).

    >>> fast_modes(1024, 1024, 2, 64)
    ([512, 2], [2, 512])
    """
    check_int("in_features", in_features, 1)
    check_int("out_features", out_features, 1)
    check_int("n_cores", n_cores, 1)
    check_int("max_bond", max_bond, 1)
    check_int("batch", batch, 1)
    in_modes, out_modes = _fast_modes(in_features, out_features, n_cores, max_bond, batch)
    return list(in_modes), list(out_modes)


@functools.lru_cache(maxsize=1024)  # the search enumerates every factorisation
def _fast_modes(
    in_features: int, out_features: int, n_cores: int, max_bond: int, batch: int
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    def cost(in_modes: Sequence[int], out_modes: Sequence[int]) -> tuple[int, int]:
        ranks = _tt_ranks([m * n for m, n in zip(out_modes, in_modes, strict=True)], max_bond)
        shapes = tuple(
            (ranks[j], m, n, ranks[j + 1])
            for j, (m, n) in enumerate(zip(out_modes, in_modes, strict=True))
        )
        params = sum(r * m * n * q for r, m, n, q in shapes)
        flops = plan_flops(shapes, batch, tuple((j, j + 1) for j in range(n_cores)))
        return flops, params

    balanced = tuple(factorize(in_features, n_cores)), tuple(factorize(out_features, n_cores))
    best_flops, budget = cost(*balanced)
    best, best_key = balanced, (best_flops, budget)
    ins = _factorizations(in_features, n_cores, 2 if _enough(in_features, n_cores) else 1)
    outs = _factorizations(out_features, n_cores, 2 if _enough(out_features, n_cores) else 1)
    for in_modes in ins:
        for out_modes in outs:
            flops, params = cost(in_modes, out_modes)
            if params <= budget and (flops, params) < best_key:
                best, best_key = (in_modes, out_modes), (flops, params)
    return best


def _enough(n: int, k: int) -> bool:
    """Whether ``n`` has at least ``k`` prime factors (so ``k`` modes can all be >= 2)."""
    return len(prime_factors(n)) >= k


#: the cost model of a contraction step, in multiply-add equivalents per element that the
#: step permutes (memory-bound). Every plan launches one product per core (merges included),
#: so launches do not enter the comparison.
PERMUTE_COST = 4


def _group_cost(
    shapes: tuple[tuple[int, int, int, int], ...], batch: int, start: int, stop: int
) -> tuple[int, int]:
    """``(multiply-adds, modelled cost)`` of merging cores ``start .. stop-1`` and contracting
    the running tensor with the merged core."""
    # plain loops, no generators: torch.compile traces this (the shapes are constants)
    done_out, left_in, m_group, n_group = 1, 1, 1, 1
    for j in range(len(shapes)):
        if j < start:
            done_out *= shapes[j][1]
        elif j >= stop:
            left_in *= shapes[j][2]
        else:
            m_group *= shapes[j][1]
            n_group *= shapes[j][2]
    r, q = shapes[start][0], shapes[stop - 1][3]
    merge, size = 0, shapes[start][1] * shapes[start][2]
    for j in range(start + 1, stop):
        s = shapes[j]
        merge += r * size * s[0] * s[1] * s[2] * s[3]
        size *= s[1] * s[2]
    rows = batch * done_out * left_in
    flops = merge + rows * r * n_group * m_group * q
    return flops, flops + PERMUTE_COST * rows * r * n_group


_PLANS: dict[tuple, tuple[tuple[int, int], ...]] = {}


def cached_plan(
    shapes: tuple[tuple[int, int, int, int], ...], batch: int
) -> tuple[tuple[int, int], ...]:
    """``contraction_plan``, remembered per ``(shapes, batch)`` (a forward pays a dict
    lookup, not the search). Under ``torch.compile`` the plan is a constant of the graph."""
    if torch.compiler.is_compiling():
        return contraction_plan(shapes, batch)
    plan = _PLANS.get((shapes, batch))
    if plan is None:
        if len(_PLANS) > 4096:  # many batch sizes: start over rather than grow
            _PLANS.clear()
        plan = _PLANS[(shapes, batch)] = contraction_plan(shapes, batch)
    return plan


def plan_flops(
    shapes: tuple[tuple[int, int, int, int], ...],
    batch: int,
    plan: tuple[tuple[int, int], ...] | None = None,
) -> int:
    """Multiply-adds of contracting ``batch`` inputs with cores of ``shapes`` grouped by
    ``plan`` (merging included); default the cheapest, ``contraction_plan``'s."""
    plan = contraction_plan(shapes, batch) if plan is None else plan
    return sum(_group_cost(shapes, batch, i, j)[0] for i, j in plan)


def contraction_plan(
    shapes: tuple[tuple[int, int, int, int], ...], batch: int
) -> tuple[tuple[int, int], ...]:
    """How the forward groups the cores: contiguous ranges ``(start, stop)`` merged into one
    core each, chosen by dynamic programming to minimise the modelled cost (multiply-adds,
    permuted elements). One range of all cores is the dense path (``W`` built, one
    product); one range per core is the plain factorised forward.

    >>> contraction_plan(((1, 4, 4, 2), (2, 4, 4, 1)), 1)  # one input: no W to build
    ((0, 1), (1, 2))
    >>> contraction_plan(((1, 4, 4, 2), (2, 4, 4, 1)), 1_000_000)  # as many flops, less moved
    ((0, 2),)
    """
    k = len(shapes)
    best_cost, best_plan = [0], [()]
    for stop in range(1, k + 1):
        cost, plan = None, ()
        for start in range(stop):
            c = best_cost[start] + _group_cost(shapes, batch, start, stop)[1]
            if cost is None or c < cost:
                cost, plan = c, (*best_plan[start], (start, stop))
        best_cost.append(cost)
        best_plan.append(plan)
    return best_plan[k]


def tt_svd_matrix(
    matrix: Tensor,
    row_modes: Sequence[int],
    col_modes: Sequence[int],
    max_bond: int | None = None,
    cutoff: float = 0.0,
) -> list[Tensor]:
    """The TT-matrix cores of ``matrix`` (rows ``prod(row_modes)``, columns
    ``prod(col_modes)``, row-major multi-indices) by sequential SVDs: at most ``max_bond``
    singular values above ``cutoff`` times the largest (None keeps every one).

    Returns
    -------
    list of Tensor, shapes ``(r_{j-1}, row_modes[j], col_modes[j], r_j)``, the norm spread
    evenly over them.
    """
    k = len(row_modes)
    # (m_1..m_k, n_1..n_k) -> (m_1 n_1, m_2 n_2, ...): one site per core
    order = [i for j in range(k) for i in (j, k + j)]
    dtype = matrix.dtype
    sites = (  # SVDs in float64 (half precision has none on CPU), cores cast back
        matrix.double()
        .reshape(*row_modes, *col_modes)
        .permute(*order)
        .reshape([m * n for m, n in zip(row_modes, col_modes, strict=True)])
    )
    mps = mps_from_dense(sites, max_bond=max_bond, cutoff=cutoff)
    scale = torch.exp(mps.log_scale / k)
    return [
        (core.reshape(core.shape[0], m, n, core.shape[-1]) * scale).to(dtype)
        for core, m, n in zip(mps.cores, row_modes, col_modes, strict=True)
    ]


class TTLinear(FactorizedLinear):
    """A linear layer ``y = x W^T + b`` whose weight is a tensor train of ``n_cores`` cores.

    Parameters
    ----------
    in_features, out_features : int
    max_bond : int
        Largest TT-rank ``r_j`` (ranks near the ends are capped by what the modes can carry).
    in_modes, out_modes : sequence of int, optional
        Factorisations of ``in_features`` and ``out_features`` (same length); default by
        ``modes``.
    n_cores : int, default=3
        Number of cores when the modes are not given.
    modes : {"balanced", "fast"}, default="balanced"
        How the sizes are factorised when the modes are not given: ``"balanced"``, near-equal
        factors (``tnml.nn.tt.factorize``, the tensorizing tradition, which suits weights on
        a grid such as images' pixels, but at 4x or more compression usually costs more
        multiply-adds than the dense layer); ``"fast"``, the factorisation with the fewest
        multiply-adds at ``max_bond`` among those with no more parameters
        (``tnml.nn.tt.fast_modes``). On the shapes measured (a grid of common layer sizes,
        two or three cores) it takes fewer multiply-adds than the dense layer wherever it
        holds 4x fewer weights; not always: sizes with a large prime factor, very unequal
        sizes, more cores at high ranks can still cost more (``flops`` says).
    ranks : sequence of int, optional
        The inner TT-ranks ``r_1 .. r_{k-1}`` exactly (``max_bond`` is then their largest);
        what a saved layer is rebuilt from.
    bias : bool, default=True
    device, dtype : optional

    Attributes
    ----------
    cores : nn.ParameterList of Tensor, shapes (r_{j-1}, m_j, n_j, r_j)
    bias : nn.Parameter of shape (out_features,) or None

    Notes
    -----
    Initialised to train from scratch: every core Gaussian with the variance that makes the
    entries of ``W`` have variance ``1 / (3 in_features)``, as ``nn.Linear``'s default.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        max_bond: int = 8,
        *,
        in_modes: Sequence[int] | None = None,
        out_modes: Sequence[int] | None = None,
        n_cores: int = 3,
        modes: str = "balanced",
        ranks: Sequence[int] | None = None,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        factory = {"device": device, "dtype": dtype or torch.get_default_dtype()}
        super().__init__(in_features, out_features)
        self.max_bond = check_int("max_bond", max_bond, 1)
        k = check_int("n_cores", n_cores, 1) if in_modes is None else len(in_modes)
        if modes not in ("balanced", "fast"):
            raise InvalidInputError(f"modes must be 'balanced' or 'fast', got {modes!r}")
        if modes == "fast" and in_modes is None and out_modes is None:
            in_modes, out_modes = fast_modes(in_features, out_features, k, self.max_bond)
        self.in_modes = self._modes("in_modes", in_modes, in_features, k)
        self.out_modes = self._modes("out_modes", out_modes, out_features, k)
        if ranks is None:
            ranks = self._ranks(max_bond)
        else:
            ranks = [1, *(check_int("ranks[i]", r, 1) for r in ranks), 1]
            if len(ranks) != len(self.in_modes) + 1:
                raise InvalidInputError(
                    f"ranks must hold {len(self.in_modes) - 1} ints (one per inner bond), "
                    f"got {len(ranks) - 2}"
                )
            self.max_bond = max(ranks)
        # Var(W) = prod(r_1 .. r_{k-1}) * std^(2k) = 1 / (3 in_features)
        log_var = -math.log(3 * in_features) - sum(math.log(r) for r in ranks[1:-1])
        std = math.exp(log_var / (2 * len(self.in_modes)))
        self.cores = nn.ParameterList(
            nn.Parameter(torch.randn(ranks[j], m, n, ranks[j + 1], **factory) * std)
            for j, (m, n) in enumerate(zip(self.out_modes, self.in_modes, strict=True))
        )
        self._init_bias(bias, factory)

    @staticmethod
    def _modes(name: str, modes: Sequence[int] | None, size: int, k: int) -> list[int]:
        if modes is None:
            return factorize(size, k)
        modes = [check_int(f"{name}[i]", m, 1) for m in modes]
        if len(modes) != k or math.prod(modes) != size:
            raise InvalidInputError(
                f"{name} must be {k} positive ints whose product is {size}, got {list(modes)}"
            )
        return modes

    def _ranks(self, max_bond: int) -> list[int]:
        """``r_0 .. r_k``: ``max_bond``, capped by what either side of each cut can carry."""
        return _tt_ranks(
            [m * n for m, n in zip(self.out_modes, self.in_modes, strict=True)], max_bond
        )

    # ---- construction from and to dense layers ---------------------------------------------

    @classmethod
    def from_linear(
        cls,
        linear: nn.Linear,
        max_bond: int | None = None,
        cutoff: float = 0.0,
        *,
        in_modes: Sequence[int] | None = None,
        out_modes: Sequence[int] | None = None,
        n_cores: int = 3,
        modes: str = "balanced",
    ) -> TTLinear:
        """The TT-SVD of ``linear.weight``: sequential SVDs keeping at most ``max_bond``
        singular values above ``cutoff`` (relative to the largest); None keeps every one, so
        the layer equals ``linear`` to float precision. The bias is copied. ``in_modes``,
        ``out_modes``, ``n_cores``, ``modes``: as the constructor's (``"fast"`` chooses for
        ``max_bond``, or for full rank when it is None)."""
        if not isinstance(linear, nn.Linear):
            raise InvalidInputError(
                f"linear must be a torch.nn.Linear, got {type(linear).__name__}"
            )
        weight = linear.weight.detach()
        out_f, in_f = weight.shape
        if modes == "fast" and in_modes is None and out_modes is None:
            in_modes, out_modes = fast_modes(in_f, out_f, n_cores, max_bond or in_f * out_f)
        layer = cls(
            in_f,
            out_f,
            max_bond=max_bond or 1,
            in_modes=in_modes,
            out_modes=out_modes,
            n_cores=n_cores,
            modes=modes,
            bias=linear.bias is not None,
            device=weight.device,
            dtype=weight.dtype,
        )
        cores = tt_svd_matrix(weight, layer.out_modes, layer.in_modes, max_bond, cutoff)
        layer.cores = nn.ParameterList(nn.Parameter(core) for core in cores)
        layer.max_bond = max(core.shape[-1] for core in cores)
        if linear.bias is not None:
            layer.bias = nn.Parameter(linear.bias.detach().clone())
        return layer

    def weight(self) -> Tensor:
        """The dense weight ``W``, shape ``(out_features, in_features)`` (differentiable)."""
        # the cores as an MPS over sites (m_j n_j): chained matrix products, then one permute
        # of the dense result from (m_1, n_1, ..., m_k, n_k) to (m_1 .. m_k, n_1 .. n_k)
        w = self.cores[0].reshape(-1, self.cores[0].shape[-1])
        for core in self.cores[1:]:
            w = (w @ core.reshape(core.shape[0], -1)).reshape(-1, core.shape[-1])
        k = len(self.cores)
        paired = [d for m, n in zip(self.out_modes, self.in_modes, strict=True) for d in (m, n)]
        order = [*range(0, 2 * k, 2), *range(1, 2 * k, 2)]
        return w.reshape(paired).permute(order).reshape(self.out_features, self.in_features)

    # ---- cost and forward ------------------------------------------------------------------

    def factorized_flops(self, batch: int) -> int:
        """Multiply-adds of the factorised forward for ``batch`` inputs."""
        flops, done_out, left_in = 0, 1, self.in_features
        for core in self.cores:
            r, m, n, q = core.shape
            left_in //= n
            flops += batch * done_out * left_in * r * n * m * q
            done_out *= m
        return flops

    def dense_flops(self, batch: int) -> int:
        """Multiply-adds of building ``W`` from the cores and one dense product."""
        shapes = tuple([tuple(core.shape) for core in self.cores])
        return _group_cost(shapes, batch, 0, len(shapes))[0]

    def flops(self, batch: int) -> int:
        """Multiply-adds of the forward for ``batch`` inputs, as ``contraction_plan``
        groups the cores (merging included)."""
        return plan_flops(tuple([tuple(core.shape) for core in self.cores]), batch)

    @property
    def ranks(self) -> list[int]:
        """The inner TT-ranks ``r_1 .. r_{k-1}``."""
        return [core.shape[0] for core in self.cores[1:]]

    def forward(self, x: Tensor) -> Tensor:
        """``(..., in_features)`` -> ``(..., out_features)``."""
        self._check_input(x)
        lead = x.shape[:-1]
        x2 = x.reshape(-1, self.in_features)
        shapes = tuple([tuple(core.shape) for core in self.cores])
        y = self._contract(x2, cached_plan(shapes, x2.shape[0]))
        if self.bias is not None:
            y = y + self.bias.to(y.dtype)  # under autocast y is in the low precision
        return y.reshape(*lead, self.out_features)

    def _merged(self, start: int, stop: int) -> Tensor:
        """Cores ``start .. stop-1`` contracted into one, ``(r, prod m, prod n, q)``."""
        core = self.cores[start]
        for nxt in self.cores[start + 1 : stop]:
            r, m1, n1, _ = core.shape
            _, m2, n2, q = nxt.shape
            pair = (core.reshape(-1, core.shape[-1]) @ nxt.reshape(nxt.shape[0], -1)).reshape(
                r, m1, n1, m2, n2, q
            )
            core = pair.permute(0, 1, 3, 2, 4, 5).reshape(r, m1 * m2, n1 * n2, q)
        return core

    def _contract(self, x: Tensor, plan: tuple[tuple[int, int], ...]) -> Tensor:
        """The input contracted with one group of merged cores after the other:
        ``(B, in)`` -> ``(B, out)``.

        The running tensor is ``(B, N_rest, O, r)``: the input modes not yet contracted, the
        output modes done (row-major) and the rank. Each group costs one permute of it (to put
        ``(r, n)`` last) and one matrix product; the product's output needs no permute. One
        group of all cores is the dense path: ``W`` built, one product.
        """
        batch = x.shape[0]
        t = x.reshape(batch, self.in_features, 1, 1)
        for start, stop in plan:
            core = self._merged(start, stop)
            r, m, n, q = core.shape
            rest = t.shape[1] // n
            rows = t.reshape(batch, n, rest, t.shape[2], r).permute(0, 2, 3, 4, 1)
            matrix = core.permute(0, 2, 1, 3).reshape(r * n, m * q)
            t = (rows.reshape(-1, r * n) @ matrix).reshape(batch, rest, -1, q)
        return t.reshape(batch, self.out_features)

    def _factorized(self, x: Tensor) -> Tensor:
        """One core at a time (no merging): ``(B, in)`` -> ``(B, out)``."""
        return self._contract(x, tuple((j, j + 1) for j in range(len(self.cores))))

    def extra_repr(self) -> str:
        ranks = self.ranks
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"in_modes={self.in_modes}, out_modes={self.out_modes}, ranks={ranks}, "
            f"bias={self.bias is not None}"
        )
