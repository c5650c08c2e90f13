"""Greedy structure learning after Hashemizadeh, Liu, Miller & Rabusseau (2020).

Start from a rank-one network with one node per mode and an edge (of rank 1) between every
pair. At each step, every edge whose growth fits the budget is tried: its rank goes up by
``increment``, the new slices start as small noise, and only the two cores it joins are
refitted for ``candidate_sweeps`` alternating passes. The edge that lowers the squared error
most (or most per added parameter) is kept, the network is refitted, and the step recorded.
The search stops at the target error, at the parameter budget or at ``max_steps``; with a
target error, edges are then shrunk one rank at a time while the error stays under it.

The candidates of one step are independent and warm-started, so a step costs about
``n_edges * 2 * candidate_sweeps`` core updates plus one full refit.
"""

from __future__ import annotations

import itertools
import math
import numbers
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from tnml._validation import check_int
from tnml.exceptions import InvalidInputError
from tnml.structure.rings import ring_structures
from tnml.tensor.decomp import split_tensor
from tnml.tensor.mps import mps_from_dense
from tnml.tensor.network import TensorNetwork
from tnml.tensor.network_fit import (
    fit_network,
    negative_curvature_step,
    observed_rse,
    prepare_target,
    update_node,
)
from tnml.train.progress import TrainingProgress

__all__ = ["LearnedNetwork", "StructureStep", "learn"]

CRITERIA = ("per_param", "loss")

# Cuts of a node's legs are enumerated (2^(legs-1) of them): nodes with more legs are not split.
_MAX_SPLIT_LEGS = 8

# Rings are enumerated over every cyclic order of the modes ((n - 1)! / 2 of them).
_MAX_RING_ORDER = 6
# Ring structures are fitted cheapest first, in rounds of one random start per ring; once one
# reaches the target error, later rounds try only cheaper rings, until the rounds, the fits
# (below) or the work run out. Each fit is allowed its slow phase: LM from a good start on
# TnALE's rings can sit at 1e-3 to 0.1 for 30 to 60 steps before it converges, so a fit ends
# only at ``_RING_FIT_STEPS`` or when three steps in a row gain less than ``_RING_FIT_TOL``.
_RING_CANDIDATES = 200
_RING_STARTS = 3
# While no ring has fitted, rounds go on past ``_RING_STARTS`` (when the candidates are few and
# work is left) up to this many fits in all, the most that ``_RING_STARTS`` rounds over a full
# list of candidates take: a short list gets more starts per ring, not a longer search.
_RING_MAX_FITS = _RING_CANDIDATES * _RING_STARTS
_RING_FIT_STEPS = 150
_RING_FIT_TOL = 1e-4
# A fit that the stall test ends near the target (below this error) is in the right basin's
# swamp, not in a wrong basin: it goes on, to a finer stall test.
_RING_POLISH_BELOW = 1e-2
_RING_POLISH_STEPS = 300
_RING_POLISH_TOL = 1e-7
# A fit that stalls above the target but below this error is often beside a saddle that LM
# cannot see (its model has no negative curvature): one step down the Hessian's most negative
# direction, and LM goes on from there.
_RING_ESCAPE_BELOW = 0.08
# What that step costs in LM steps: the Hessian (about one), its eigendecomposition and the
# line search (3.3-3.4 on 3^6 rings of 423 and 465 parameters, benchmarks/hessian_step_cost.py).
_HESSIAN_STEPS = 3
# Multiply-adds of the normal equations (entries x parameters^2 per LM step; the steps counted
# are those that form the normal equations, and a negative-curvature step as
# ``_HESSIAN_STEPS``; rejected damped steps are not) all ring fits of one
# search may spend: about 12,000 steps on a 729-entry target with 400-parameter rings. It does
# not bound small targets, where each step's fixed cost dominates (see ``rings`` in `learn`).
_RING_WORK = 1.5e12


@dataclass(frozen=True)
class StructureStep:
    """One point of the search path: the network's size, its error and its edges."""

    step: int
    n_params: int
    rse: float
    edges: dict[tuple[int, int], int]
    grown: tuple[int, int] | None
    seconds: float
    validation_rse: float | None = None


class LearnedNetwork(TensorNetwork):
    """A :class:`~tnml.tensor.TensorNetwork` found by :func:`learn`, with the search that found it.

    Attributes
    ----------
    path : list of StructureStep
        Every accepted network, from rank one to the result (pruning steps included).
    rse : float
        Relative error on the observed entries.
    n_fits : int
        Candidate fits plus refits the search ran.
    """

    path: list[StructureStep]
    rse: float
    n_fits: int

    def __init__(
        self, net: TensorNetwork, path: list[StructureStep], rse: float, n_fits: int
    ) -> None:
        super().__init__(net.shape, net.modes, net.ranks, net.cores)
        self.path = path
        self.rse = rse
        self.n_fits = n_fits


@dataclass
class _Search:
    target: Tensor
    mask: Tensor | None
    method: str
    generator: torch.Generator
    candidate_sweeps: int
    refit_sweeps: int
    tol: float
    noise: float
    callback: Callable[[StructureStep], None] | None
    rse: float | None = None
    second_order: int = 0
    start: float = field(default_factory=time.perf_counter)
    n_fits: int = 0
    path: list[StructureStep] = field(default_factory=list)

    def record(
        self,
        net: TensorNetwork,
        error: float,
        grown: tuple[int, int] | None = None,
        held_error: float | None = None,
    ) -> StructureStep:
        """Append ``net`` to the path (and tell the callback, after the first step)."""
        step = StructureStep(
            len(self.path),
            net.n_params,
            error,
            net.edges,
            grown,
            time.perf_counter() - self.start,
            held_error,
        )
        self.path.append(step)
        if self.callback is not None and step.step > 0:
            self.callback(step)
        return step

    def fitted_target(self, net: TensorNetwork) -> tuple[Tensor, float]:
        """The target with hidden entries filled by ``net`` (the EM step of masked ALS), and
        its squared norm; computed once per step, shared by its candidates."""
        filled = self.target
        if self.mask is not None:
            filled = torch.where(self.mask, self.target, net.to_dense().detach())
        return filled, float((filled * filled).sum())

    def try_edge(
        self, net: TensorNetwork, edge: tuple[int, int], rank: int, filled: tuple[Tensor, float]
    ) -> tuple[TensorNetwork, float]:
        """``net`` with ``edge`` at ``rank``, only its two cores refitted (ALS against
        ``filled``, from :meth:`fitted_target`); its observed error."""
        self.n_fits += 1
        grown = net.with_rank(edge, rank, noise=self.noise, generator=self.generator)
        if self.method == "adam":
            fit_network(
                grown, self.target, self.mask, method="adam", max_sweeps=20 * self.candidate_sweeps
            )
            return grown, observed_rse(grown, self.target, self.mask)
        filled, sq = filled
        err_sq = sq
        for _ in range(self.candidate_sweeps):
            for node in edge:
                err_sq = update_node(grown, node, filled, sq)
        if self.mask is not None:
            return grown, observed_rse(grown, self.target, self.mask)
        return grown, math.sqrt(err_sq / max(sq, 1e-300))

    def refit(self, net: TensorNetwork, *, thorough: bool = False) -> float:
        """Refit every core; ``thorough``: ten times the sweeps and a 100x finer tolerance
        (shrinking and splitting are judged against the target error, so they need the
        fit converged, not only improving slowly)."""
        self.n_fits += 1
        steps = self.refit_sweeps * (20 if self.method == "adam" else 1) * (10 if thorough else 1)
        tol = self.tol / 100 if thorough else self.tol
        fit_network(net, self.target, self.mask, method=self.method, max_sweeps=steps, tol=tol)
        error = observed_rse(net, self.target, self.mask)
        if self._polish(net, error, thorough):
            before = net.copy()
            fit_network(net, self.target, method="lm", max_sweeps=steps, tol=tol)
            polished = observed_rse(net, self.target, None)
            if polished < error:
                return polished
            net.cores = before.cores
        return error

    def _polish(self, net: TensorNetwork, error: float, thorough: bool) -> bool:
        """Whether a refit that ended at ``error`` goes on by Levenberg-Marquardt: a thorough
        refit of a full target with an error to reach, still above it, and entries x
        parameters at most ``second_order``."""
        return (
            thorough
            and self.mask is None
            and self.rse is not None
            and error > self.rse
            and self.target.numel() * net.n_params <= self.second_order
        )


def _check_options(
    target: Tensor,
    rse: float | None,
    max_params: int | None,
    random_state: int | None,
    criterion: str,
    validation: float,
    counts: dict[str, int],
) -> None:
    if rse is not None and (
        isinstance(rse, bool) or not isinstance(rse, numbers.Real) or not 0 < rse < 1
    ):
        raise InvalidInputError(f"rse must be a number in (0, 1), got {rse!r}")
    if target.ndim < 2:
        raise InvalidInputError(
            f"target must have at least 2 modes (reshape it into a higher-order tensor), got "
            f"shape {tuple(target.shape)}"
        )
    rank_one = sum(target.shape)
    if max_params is not None:
        check_int("max_params", max_params, 1)
        if max_params < rank_one:
            raise InvalidInputError(
                f"max_params must be at least {rank_one} (the rank-one network of shape "
                f"{tuple(target.shape)}), got {max_params}"
            )
    if random_state is not None:
        check_int("random_state", random_state, 0)
    if isinstance(validation, bool) or not isinstance(validation, numbers.Real):
        raise InvalidInputError(f"validation must be a number in [0, 1), got {validation!r}")
    if not 0 <= validation < 1:
        raise InvalidInputError(f"validation must be in [0, 1), got {validation}")
    if criterion not in CRITERIA:
        raise InvalidInputError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
    for name, value in counts.items():
        check_int(name, value, 0 if name in ("max_steps", "second_order") else 1)


def learn(
    target: object,
    rse: float | None = None,
    max_params: int | None = None,
    mask: object = None,
    random_state: int | None = None,
    *,
    method: str | None = None,
    max_steps: int = 500,
    increment: int = 1,
    criterion: str = "per_param",
    candidate_sweeps: int = 2,
    refit_sweeps: int = 30,
    tol: float = 1e-4,
    noise: float = 1e-2,
    prune: bool = True,
    validation: float = 0.1,
    patience: int = 5,
    internal_nodes: bool = True,
    split_tol: float = 1e-5,
    closed_form: bool = True,
    rings: bool = True,
    second_order: int = 2**20,
    regrow: bool = True,
    callback: Callable[[StructureStep], None] | None = None,
    progress: bool = False,
    dtype: torch.dtype = torch.float64,
) -> LearnedNetwork:
    """Learn a tensor network's graph and ranks from ``target`` by greedy rank growth.

    Parameters
    ----------
    target : array_like, any order >= 2
        The tensor to represent. Entries outside ``mask`` are never read (they may be NaN).
    rse : float in (0, 1) or None
        Stop once ``||P(target - net)|| / ||P target||`` (``P``: the observed entries) is at most
        this.
    max_params : int or None
        Never grow past this many parameters (at least ``sum(target.shape)``).
    mask : array_like of bool or None
        Observed entries (completion); None: all.
    random_state : int or None
        Seed of the initial cores and of the noise in new slices.
    method : {"als", "adam"} or None
        How networks are fitted; default ALS for a full target, Adam for a masked one.
    max_steps : int
        Most rank increments.
    increment : int
        Rank added to the chosen edge per step.
    criterion : {"per_param", "loss"}
        Choose the edge that lowers the squared error most per added parameter, or most
        (Hashemizadeh et al.'s rule). On synthetic targets drawn apart from the benchmark's,
        the first recovered 19 of 24 known structures, the second 9.
    candidate_sweeps, refit_sweeps : int
        Alternating passes over a candidate's two cores; sweeps of the refit after a choice
        (times 20 Adam steps for ``method="adam"``).
    tol : float
        The refit stops when a sweep improves the error by less than this (relative).
    noise : float
        Relative scale of the new slices.
    prune : bool
        With ``rse``, shrink edges afterwards while the error stays at most ``rse``.
    validation : float
        With a ``mask``: this fraction of the observed entries is held out; the search returns
        the network with the lowest error on them and stops after ``patience`` steps without
        a new lowest (so a budget larger than the data can support does not overfit). 0: fit
        every observed entry and return the last network.
    patience : int
        Steps without a new lowest validation error before the search stops.
    internal_nodes : bool
        With ``rse``, once it is reached, split cores in two (a new node, possibly without
        open modes, as a Tucker core) where an SVD across some cut of its legs has singular
        values below ``split_tol`` (relative to the largest) and the split saves parameters;
        kept while the refitted error stays at most ``rse``.
    split_tol : float
    closed_form : bool
        With ``rse`` and no ``mask``: also build the networks an SVD gives at that error (the
        Tucker network of the truncated higher-order SVD, a core node without open modes, and
        the TT-SVD chain in each cyclic order of the modes) and return the cheapest of them
        when the search finds nothing cheaper; the search's budget is capped below the
        cheapest, so it stops once it cannot beat it.
    rings : bool
        With ``closed_form`` and at most ``_MAX_RING_ORDER`` modes: also fit (by
        Levenberg-Marquardt, within ``second_order``) rings in any order of the modes whose
        generic unfolding ranks match the target's (``tnml.structure.rings.ring_structures``),
        cheapest first (up to 200), in rounds of one random start per ring (a start whose fit
        ends between ``rse`` and 0.08 takes one step down the error's most negative curvature
        and is fitted on): three rounds in all when a ring fits within them (the later ones
        over strictly cheaper rings); while none has, further rounds until one fits (that
        round is the last), within a fixed amount of work and at most 600 fits; the cheapest
        that reaches ``rse`` joins the closed-form candidates. On a small target that
        no ring holds this can take a minute or more (600 fits; a progress bar shows them with
        ``progress``).
    second_order : int
        With ``rse`` and no ``mask``: a thorough refit (shrinking, splitting) that stops above
        ``rse`` goes on by Levenberg-Marquardt when entries x parameters is at most this (its
        Jacobian's size); 0: never.
    regrow : bool
        With ``rse`` and nothing held out (no ``mask``, or ``validation=0``), after
        shrinking: drop one edge at a time to rank one (smallest ranks first) and grow the
        network back to ``rse`` within fewer parameters than it has; keep the first that
        succeeds and start over. Rank growth can take an edge early that a cheaper network
        does not need, and shrinking alone cannot give it back.
    callback : callable(StructureStep) or None
        Called after every accepted step.
    progress : bool
        Show a progress bar (on stderr).
    dtype : torch.dtype
        Working precision.

    Returns
    -------
    LearnedNetwork
        Rank-1 edges removed; ``path`` holds every accepted step.

    Raises
    ------
    InvalidInputError
        A target with NaN or inf on the observed entries, ``rse`` outside (0, 1), a budget below
        the rank-one network, an order below 2, a mask of another shape.

    Examples
    --------
    >>> import numpy as np
    >>> from tnml.tensor.network import TensorNetwork
    >>> import torch
    >>> truth = TensorNetwork.chain((4, 4, 4, 4), 2, generator=torch.Generator().manual_seed(1))
    >>> net = learn(truth.to_dense().numpy(), rse=1e-6, random_state=0)
    >>> net.rse < 1e-6, net.n_params <= truth.n_params
    (True, True)
    """
    t, m = prepare_target(target, mask, dtype=dtype)
    counts = {
        "increment": increment,
        "max_steps": max_steps,
        "candidate_sweeps": candidate_sweeps,
        "refit_sweeps": refit_sweeps,
        "patience": patience,
        "second_order": second_order,
    }
    _check_options(t, rse, max_params, random_state, criterion, validation, counts)
    rse = None if rse is None else float(rse)  # a NumPy scalar is welcome, kept a float
    # fit a target of unit RMS (errors are relative; Adam's step and the SVD cut-offs then
    # mean the same at any scale) and put the scale back into the result
    observed = t if m is None else t[m]
    scale = float(observed.abs().max())
    scale *= float((observed / scale).pow(2).mean().sqrt())
    t = t / scale
    if method is None:
        method = "als" if m is None else "adam"
    if method not in ("als", "adam"):
        raise InvalidInputError(f"method must be 'als' or 'adam', got {method!r}")
    budget = max_params if max_params is not None else t.numel()
    # without a seed, fresh entropy: torch.seed() would reseed the caller's global generator
    seed = random_state if random_state is not None else np.random.SeedSequence().entropy
    generator = torch.Generator().manual_seed(int(seed) % 2**63)
    fit_mask, held_out = _split_observed(m, validation, generator)
    closed: list[TensorNetwork] = []
    if closed_form and rse is not None and m is None:
        closed = [net for net in _closed_form_candidates(t, rse) if net.n_params <= budget]
        if rings and t.ndim <= _MAX_RING_ORDER:
            cap = min([budget + 1] + [net.n_params for net in closed])
            ring_starts = torch.Generator().manual_seed(int(seed) % 2**63)
            closed += _fitted_rings(t, rse, cap, second_order, ring_starts, progress)
        if closed:  # only a cheaper network is worth the search
            budget = min(budget, min(net.n_params for net in closed) - 1)
    search = _Search(
        t, fit_mask, method, generator, candidate_sweeps, refit_sweeps, tol, noise, callback
    )
    search.rse = rse
    search.second_order = second_order
    # gradient steps from random signs stall at the zero tensor, and ALS from them can creep:
    # start from the leading singular vector of every mode (unseen entries set to the mean of
    # the fitted ones) and its ALS fit
    start_target = t if fit_mask is None else torch.where(fit_mask, t, t[fit_mask].mean())
    net = _rank_one_start(start_target)
    fit_network(net, start_target, method="als", max_sweeps=10)
    error = search.refit(net)
    held_error = None if held_out is None else observed_rse(net, t, held_out)
    search.record(net, error, held_error=held_error)
    best = (held_error, net.copy(), 0)
    with TrainingProgress(max_params, enabled=progress, completed=net.n_params) as bar:
        for step in range(1, max_steps + 1):
            if rse is not None and error <= rse:
                break
            grown = _grow_step(search, net, error, budget, increment, criterion)
            if grown is None:
                break
            edge, net, error = grown
            if held_out is not None:
                held_error = observed_rse(net, t, held_out)
                if held_error < best[0]:
                    best = (held_error, net.copy(), step)
            record = search.record(net, error, edge, held_error)
            bar.update(
                "structure",
                f"params {net.n_params}  rse {error:.4g}"
                + ("" if held_error is None else f"  held-out rse {held_error:.4g}"),
                advance=record.n_params - search.path[-2].n_params,
            )
            if held_out is not None and step - best[2] >= patience:
                break
        if held_out is not None:
            net = best[1]
            error = observed_rse(net, t, m)
        elif rse is not None and error <= rse:
            # shrink first: a split judged on an oversized network can cost parameters later
            if prune:
                net, error = _prune(search, net, error, rse)
            if regrow:
                net, error = _regrow(search, net, error, rse, increment, criterion, max_steps)
                if prune:
                    net, error = _prune(search, net, error, rse)
            if internal_nodes:
                n_nodes = net.n_nodes
                net, error = _split_nodes(search, net, error, split_tol, rse)
                if prune and net.n_nodes > n_nodes:
                    net, error = _prune(search, net, error, rse)
        if closed:
            cheapest = min(closed, key=lambda candidate: candidate.n_params)
            if error > rse or cheapest.n_params < net.n_params:
                net, error = cheapest, observed_rse(cheapest, t, None)
                search.record(net, error)
                if prune:
                    net, error = _prune(search, net, error, rse)
    net.cores[0] = net.cores[0] * scale
    return LearnedNetwork(net.without_unit_edges(), search.path, error, search.n_fits)


def _closed_form_candidates(target: Tensor, rse: float) -> list[TensorNetwork]:
    """Networks an SVD gives directly at relative error <= ``rse``: the Tucker network of the
    truncated higher-order SVD (a core node without open modes; squared error <= the sum of
    the modes' discarded tails, each given ``rse^2 / n`` of the target's) and the tensor train
    of the TT-SVD in each cyclic order of the modes (each of the ``n - 1`` cuts given
    ``rse^2 / (n - 1)``; a ring with a rank-one edge is such a chain). Greedy rank growth
    rarely reaches a network with an internal node, and can grow an edge early that a chain
    does not need; these are compared with what it found."""
    n = target.ndim
    # "sum2": the discarded squared tail relative to the unfolding's (the target's) norm
    factors = [
        split_tensor(
            target.movedim(mode, 0), 1, method="svd", cutoff=rse**2 / n, cutoff_mode="sum2"
        ).left
        for mode in range(n)
    ]
    core = target
    for factor in factors:  # contracting the leading axis each time cycles the axes back
        core = torch.tensordot(core, factor, dims=([0], [0]))
    tucker = TensorNetwork(
        target.shape,
        [*[(k,) for k in range(n)], ()],
        {(k, n): factor.shape[1] for k, factor in enumerate(factors)},
        [*factors, core],
    )
    chains = []
    for shift in range(n):
        order = [(k + shift) % n for k in range(n)]
        # TT-SVD: each of the n - 1 cuts loses at most rse^2 / (n - 1) of the squared norm
        chain = TensorNetwork.from_mps(
            mps_from_dense(target.permute(*order), cutoff=rse**2 / (n - 1), cutoff_mode="sum2")
        )
        chains.append(
            TensorNetwork(target.shape, [(mode,) for mode in order], chain.ranks, chain.cores)
        )
    return [tucker, *chains]


def _fitted_rings(
    target: Tensor,
    rse: float,
    budget: int,
    limit: int,
    generator: torch.Generator,
    progress: bool = False,
) -> list[TensorNetwork]:
    """The cheapest ring found under ``budget`` parameters whose generic unfolding ranks are
    the target's (at most ``_RING_CANDIDATES`` of them, those with entries x parameters at
    most ``limit``) that Levenberg-Marquardt brings to ``rse``; an empty list if none does
    within ``_RING_WORK`` and ``_RING_MAX_FITS`` fits.

    LM from random cores lands in a wrong basin of the right ring more often than not (on the
    true rings of six TnALE targets 16 of 48 starts reached the target, with the
    negative-curvature step below), so each ring gets several random starts; and rings that
    cannot hold the target pass the rank test by the dozen, cheaper than the right one, so
    many rings are tried: a wrong one stalls, and its fit ends after 40 to 100 steps. The
    starts go breadth first: one start for every ring, cheapest first, then a second round,
    and so on. Once a ring fits, the rounds up to ``_RING_STARTS`` go over the cheaper rings
    only; while none has fitted, rounds go on until one fits (the search ends with that
    round) or the work or ``_RING_MAX_FITS`` fits run out. (Three starts per ring before the
    next reached a third as many rings within the work, and on TnALE's targets the right
    ring can lie past the 100th.) A fit that stalls below ``_RING_POLISH_BELOW`` goes on to a
    finer stall test, and one that ends (stalled or at its step limit) below
    ``_RING_ESCAPE_BELOW`` then takes a negative-curvature step
    (:func:`_fit_ring_from_random_cores`)."""
    work = 0.0
    entries = target.numel()
    candidates = [
        net
        for net in ring_structures(target, rse, budget, limit=_RING_CANDIDATES)
        if entries * net.n_params <= limit
    ]
    found: TensorNetwork | None = None  # the cheapest ring fitted so far
    tried = candidates  # the rings a round visits: all, then those cheaper than ``found``
    fits, round_ = 0, 0
    with TrainingProgress(_RING_MAX_FITS, enabled=progress and bool(candidates)) as bar:
        while tried and (round_ < _RING_STARTS or found is None):
            round_ += 1
            for net in tried:
                if work >= _RING_WORK or fits >= _RING_MAX_FITS:
                    return [] if found is None else [found]
                error, steps = _fit_ring_from_random_cores(net, target, rse, generator)
                work += float(entries) * net.n_params**2 * steps
                fits += 1
                bar.update("rings", f"{net.n_params} params")
                if error <= rse:
                    found = net
                    # rings of its cost cannot improve on it: cheaper ones only
                    tried = [ring for ring in candidates if ring.n_params < net.n_params]
                    break
    return [] if found is None else [found]


def _fit_ring_from_random_cores(
    net: TensorNetwork, target: Tensor, rse: float, generator: torch.Generator
) -> tuple[float, int]:
    """Fit ``net`` (in place) from standard normal cores by LM (:func:`_fit_ring_lm`); when it
    ends (stalled or at its step limit) between ``rse`` and ``_RING_ESCAPE_BELOW``, take one
    negative-curvature step and fit on. Returns the relative error and the work in LM steps
    (the steps that formed normal equations, and the Hessian's share)."""
    with torch.no_grad():
        for core in net.cores:
            core.copy_(torch.randn(core.shape, generator=generator, dtype=core.dtype))
    error, steps = _fit_ring_lm(net, target, rse)
    if rse < error <= _RING_ESCAPE_BELOW:
        steps += _HESSIAN_STEPS
        if negative_curvature_step(net, target):
            error, more = _fit_ring_lm(net, target, rse)
            steps += more
    return error, steps


def _fit_ring_lm(net: TensorNetwork, target: Tensor, rse: float) -> tuple[float, int]:
    """LM on ``net`` from its cores, going on to a finer stall test when the first stops below
    ``_RING_POLISH_BELOW``; returns its relative error and the LM steps that formed normal
    equations (at least one per fit)."""
    fit = fit_network(net, target, method="lm", max_sweeps=_RING_FIT_STEPS, tol=_RING_FIT_TOL)
    steps = max(fit.n_sweeps, 1)
    if rse < fit.rse <= _RING_POLISH_BELOW:
        fit = fit_network(
            net, target, method="lm", max_sweeps=_RING_POLISH_STEPS, tol=_RING_POLISH_TOL
        )
        steps += max(fit.n_sweeps, 1)
    return fit.rse, steps


def _rank_one_start(target: Tensor) -> TensorNetwork:
    """The fully connected rank-one network whose factors are the leading left singular
    vectors of the target's mode unfoldings (the higher-order SVD start of power iteration)."""
    n = target.ndim
    cores = []
    for mode in range(n):
        others = [k for k in range(n) if k != mode]
        gram = torch.tensordot(target, target, dims=(others, others))
        vector = torch.linalg.eigh(gram)[1][:, -1]
        vector = vector if float(vector.sum()) >= 0 else -vector
        cores.append(vector.reshape((target.shape[mode],) + (1,) * (n - 1)))
    ranks = {(i, j): 1 for i in range(n) for j in range(i + 1, n)}
    return TensorNetwork(target.shape, [(k,) for k in range(n)], ranks, cores)


def _grow_step(
    search: _Search,
    net: TensorNetwork,
    error: float,
    budget: int,
    increment: int,
    criterion: str,
) -> tuple[tuple[int, int], TensorNetwork, float] | None:
    """One step of rank growth: the best edge within ``budget`` grown by ``increment`` and the
    network refitted; ``(edge, network, error)``, or None when no edge fits the budget."""
    best: tuple[float, tuple[int, int], TensorNetwork] | None = None
    filled = search.fitted_target(net) if search.method == "als" else (search.target, 0.0)
    for edge, rank in net.ranks.items():
        added = increment * _params_per_rank(net, edge)
        if net.n_params + added > budget:
            continue
        candidate, cand_error = search.try_edge(net, edge, rank + increment, filled)
        gain = error**2 - cand_error**2
        score = gain / added if criterion == "per_param" else gain
        if best is None or score > best[0]:
            best = (score, edge, candidate)
    if best is None:
        return None
    _, edge, grown = best
    return edge, grown, search.refit(grown)


def _grow_to(
    search: _Search,
    net: TensorNetwork,
    error: float,
    rse: float,
    budget: int,
    increment: int,
    criterion: str,
    max_steps: int,
) -> tuple[TensorNetwork, float] | None:
    """Grow ``net`` as the search does until its error is at most ``rse`` (None when the
    budget or ``max_steps`` runs out first); the steps are not recorded."""
    for _ in range(max_steps):
        if error <= rse:
            return net, error
        grown = _grow_step(search, net, error, budget, increment, criterion)
        if grown is None:
            return None
        _, net, error = grown
    return (net, error) if error <= rse else None


def _regrow(
    search: _Search,
    net: TensorNetwork,
    error: float,
    rse: float,
    increment: int,
    criterion: str,
    max_steps: int,
) -> tuple[TensorNetwork, float]:
    """Drop an edge to rank one and grow back to ``rse`` within fewer parameters (see
    :func:`learn`, ``regrow``); repeat from the result until no edge gives a cheaper one."""
    tried: set[tuple[tuple[tuple[int, int], int], ...]] = set()
    improved = True
    while improved:
        improved = False
        for edge in sorted((e for e, r in net.ranks.items() if r > 1), key=net.ranks.get):
            dropped = net.with_rank(edge, 1)
            key = tuple(sorted(dropped.ranks.items()))
            if key in tried:
                continue
            tried.add(key)
            dropped_error = search.refit(dropped)
            grown = _grow_to(
                search,
                dropped,
                dropped_error,
                rse,
                net.n_params - 1,
                increment,
                criterion,
                max_steps,
            )
            if grown is not None:
                net, error = grown
                search.record(net, error)
                improved = True
                break
    return net, error


def _params_per_rank(net: TensorNetwork, edge: tuple[int, int]) -> int:
    """Parameters one unit of ``edge``'s rank costs (its two cores' slices)."""
    rank = net.ranks[edge]
    return sum(math.prod(net.core_shape(node)) // rank for node in edge)


def _split_nodes(
    search: _Search,
    net: TensorNetwork,
    error: float,
    split_tol: float,
    rse: float,
) -> tuple[TensorNetwork, float]:
    """Split cores where a cut of their legs is (numerically) low-rank, while that saves
    parameters and keeps the error (see :func:`learn`, ``internal_nodes``)."""
    while True:
        best: tuple[int, int, list[int], list[tuple[int, int]], int] | None = None
        for node in range(net.n_nodes):
            legs = [("m", m) for m in net.modes[node]] + [
                ("e", e) for e in net.node_edges(node) if net.ranks[e] > 1
            ]
            if not 3 <= len(legs) <= _MAX_SPLIT_LEGS:
                continue
            core = net.cores[node]
            for size in range(1, len(legs)):
                for moved in itertools.combinations(legs[1:], size):
                    modes = [m for kind, m in moved if kind == "m"]
                    edges = [e for kind, e in moved if kind == "e"]
                    moved_dim = math.prod(
                        [net.shape[m] for m in modes] + [net.ranks[e] for e in edges]
                    )
                    kept_dim = core.numel() // moved_dim
                    rank = _numerical_rank(net, node, modes, edges, split_tol)
                    saving = core.numel() - rank * (kept_dim + moved_dim)
                    if saving > 0 and (best is None or saving > best[0]):
                        best = (saving, node, modes, edges, rank)
        if best is None:
            return net, error
        _, node, modes, edges, rank = best
        split = net.split_node(node, modes, edges, rank)
        split_error = search.refit(split, thorough=True)
        if split_error > rse:
            return net, error
        net, error = split, split_error
        search.record(net, error)


def _numerical_rank(
    net: TensorNetwork, node: int, modes: list[int], edges: list[tuple[int, int]], tol: float
) -> int:
    """Rank of ``node``'s core across the cut (its other legs | ``modes`` + ``edges``)."""
    own = net.node_edges(node)
    n_open = len(net.modes[node])
    moved_axes = [net.modes[node].index(m) for m in modes] + [n_open + own.index(e) for e in edges]
    kept_axes = [a for a in range(net.cores[node].ndim) if a not in moved_axes]
    core = net.cores[node].permute(*kept_axes, *moved_axes)
    moved_dim = math.prod(core.shape[len(kept_axes) :])
    values = torch.linalg.svdvals(core.reshape(-1, moved_dim))
    return max(int((values > tol * values[0]).sum()), 1)


def _prune(
    search: _Search,
    net: TensorNetwork,
    error: float,
    rse: float,
) -> tuple[TensorNetwork, float]:
    """Shrink edges one rank at a time (largest saving first) while the error stays <= rse."""
    improved = True
    while improved:
        improved = False
        edges = sorted(
            (e for e, r in net.ranks.items() if r > 1),
            key=lambda e: _params_per_rank(net, e),
            reverse=True,
        )
        for edge in edges:
            smaller = net.with_rank(edge, net.ranks[edge] - 1)
            new_error = search.refit(smaller, thorough=True)
            if new_error <= rse:
                net, error = smaller, new_error
                search.record(net, error)
                improved = True
                break
    return net, error


def _split_observed(
    mask: Tensor | None, validation: float, generator: torch.Generator
) -> tuple[Tensor | None, Tensor | None]:
    """``(entries to fit, held-out entries)``: a random ``validation`` share of the observed
    entries held out; ``(mask, None)`` without a mask or with ``validation=0``."""
    if mask is None or validation == 0:
        return mask, None
    draw = torch.rand(mask.shape, generator=generator) < validation
    held_out = mask & draw
    fit = mask & ~draw
    if not bool(held_out.any()) or not bool(fit.any()):
        raise InvalidInputError(
            f"validation={validation} leaves no entry to fit or none to hold out of the "
            f"{int(mask.sum())} observed; change it or pass validation=0"
        )
    return fit, held_out
