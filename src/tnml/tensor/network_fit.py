"""Fitting a :class:`~tnml.tensor.network.TensorNetwork` to a target tensor.

Three methods, one loss: the squared error over the observed entries; and a step that leaves
saddles.

- ALS (:func:`als_sweep`): each core in turn is set to its least-squares optimum with the
  others fixed. The normal equations need the target contracted with every other core and the
  Gram matrix of the rest of the network, both contracted through ``opt_einsum`` without
  forming the environment; the error follows from them at no extra cost. With a mask of
  observed entries the hidden ones are filled with the current reconstruction before each
  sweep (EM), so a sweep never lowers the observed fit.
- Gradient (:func:`fit_network` with ``method="adam"``): Adam on the masked squared error by
  autograd through the dense reconstruction.
- Levenberg-Marquardt (``method="lm"``): damped Gauss-Newton steps on every core at once, the
  Jacobian (entries x parameters) built from each core's environment. It moves all cores
  together, so it leaves the swamps where ALS creeps for thousands of sweeps; each step
  forms and solves a parameters x parameters system, so it is meant for small problems.
- Negative curvature (:func:`negative_curvature_step`): the full Hessian (:func:`network_hessian`,
  ``J^T J`` plus the residual's curvature between pairs of cores) shows directions in which the
  error falls that LM's model cannot, at saddles where it stalls; one step along the most
  negative one, then LM again.

A hidden entry is never read: the target is zeroed outside the mask before anything else.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import opt_einsum
import torch
from torch import Tensor

from tnml.exceptions import InvalidInputError
from tnml.tensor.network import Structure, TensorNetwork, contraction_expression

__all__ = [
    "NetworkFit",
    "als_sweep",
    "fit_network",
    "negative_curvature_step",
    "network_hessian",
    "network_jacobian",
    "prepare_target",
    "update_node",
]

FIT_METHODS = ("als", "adam", "lm")

# Below this fraction of ||target||^2, ||T||^2 - <A, rhs> has lost its digits to cancellation.
_CANCELLATION = {torch.float64: 1e-6, torch.float32: 1e-2}


@dataclass
class NetworkFit:
    """What a fit did: ``rse`` (relative error on the observed entries) after each sweep/step."""

    network: TensorNetwork
    rse: float
    history: list[float] = field(default_factory=list)
    n_sweeps: int = 0


def prepare_target(
    target: object, mask: object = None, *, dtype: torch.dtype = torch.float64
) -> tuple[Tensor, Tensor | None]:
    """``(target, mask)`` as tensors of ``dtype`` and bool; hidden entries of ``target`` set to
    0 before anything else reads them.

    Raises
    ------
    InvalidInputError
        A target that is not a real numeric array, is empty or zero on every observed entry,
        or is not finite there; a mask of another shape or without an observed entry.
    """
    if not dtype.is_floating_point:
        raise InvalidInputError(f"dtype must be a floating-point torch dtype, got {dtype}")
    t = _as_real_tensor("target", target, dtype)
    if t.ndim < 1 or t.numel() == 0:
        raise InvalidInputError(f"target must be a non-empty array, got shape {tuple(t.shape)}")
    m: Tensor | None = None
    if mask is not None:
        m = _as_real_tensor("mask", mask, torch.float64) != 0
        if tuple(m.shape) != tuple(t.shape):
            raise InvalidInputError(
                f"mask must have the target's shape {tuple(t.shape)}, got {tuple(m.shape)}"
            )
        if not bool(m.any()):
            raise InvalidInputError("mask must mark at least one observed entry")
        t = torch.where(m, t, torch.zeros((), dtype=dtype))
    if not bool(torch.isfinite(t).all()):
        where = "on the observed entries" if m is not None else "(hide such entries with a mask)"
        raise InvalidInputError(f"target must be finite {where}; it has NaN or inf")
    if not bool((t != 0).any()):
        raise InvalidInputError("target is zero on every observed entry: there is nothing to fit")
    return t, m


def _as_real_tensor(name: str, value: object, dtype: torch.dtype) -> Tensor:
    if isinstance(value, Tensor):
        if value.is_complex():
            raise InvalidInputError(f"{name} must be real, got dtype {value.dtype}")
        return value.detach().to(dtype)
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as err:
        raise InvalidInputError(f"{name} must be a numeric array: {err}") from None
    if array.dtype.kind not in "biuf":
        raise InvalidInputError(f"{name} must be a real numeric array, got dtype {array.dtype}")
    with np.errstate(over="ignore"):
        return torch.from_numpy(array.astype(np.float64)).to(dtype)


def update_node(net: TensorNetwork, node: int, target: Tensor, target_sq: float) -> float:
    """Set core ``node`` to its least-squares optimum in place; return the new squared error.

    Parameters
    ----------
    net : TensorNetwork
    node : int
    target : Tensor, shape ``net.shape``
        Fully observed (fill hidden entries before calling).
    target_sq : float
        ``||target||^2``.
    """
    s = net.structure
    others = [c for k, c in enumerate(net.cores) if k != node]
    rhs = contraction_expression(s, skip=node, with_target=True, output_node=node)(
        target, *others, backend="torch"
    )
    gram = contraction_expression(s, skip=node, double=True)(*others, *others, backend="torch")
    n_bond = math.prod(s.core_shape(node)[len(s.modes[node]) :])
    rhs = rhs.reshape(-1, n_bond)
    gram = gram.reshape(n_bond, n_bond)
    core = _solve_psd(gram, rhs)
    net.cores[node] = core.reshape(s.core_shape(node))
    # ||T - A E||^2 = ||T||^2 - 2 <A, rhs> + <A, A G>; at the optimum <A, A G> = <A, rhs>
    fitted = float((core * rhs).sum())
    err_sq = target_sq - fitted
    if err_sq < _CANCELLATION.get(core.dtype, 1e-2) * target_sq:  # cancelled: measure it instead
        err_sq = float(((net.to_dense() - target) ** 2).sum())
    return err_sq


def _solve_psd(gram: Tensor, rhs: Tensor) -> Tensor:
    """``rhs @ pinv(gram)`` for a symmetric PSD ``gram`` (cut at relative 1e-12)."""
    vals, vecs = torch.linalg.eigh(gram)
    cut = vals.max().clamp_min(0) * (1e-12 if gram.dtype == torch.float64 else 1e-6)
    inv = torch.where(vals > cut, 1.0 / vals.clamp_min(torch.finfo(vals.dtype).tiny), 0.0)
    return ((rhs @ vecs) * inv) @ vecs.T


def _balance(net: TensorNetwork) -> None:
    """Give every core the same norm (the tensor is unchanged), so ALS scales cannot drift."""
    norms = [float(c.norm()) for c in net.cores]
    if min(norms) <= 0:
        return
    mean_log = sum(math.log(n) for n in norms) / len(norms)
    for k, n in enumerate(norms):
        net.cores[k] = net.cores[k] * math.exp(mean_log - math.log(n))


def als_sweep(
    net: TensorNetwork, target: Tensor, mask: Tensor | None = None, nodes: list[int] | None = None
) -> float:
    """One ALS pass over ``nodes`` (default all), in place; return the observed relative error.

    With a ``mask``, hidden entries are filled with the reconstruction before the pass.
    """
    filled = target if mask is None else torch.where(mask, target, net.to_dense().detach())
    filled_sq = float((filled * filled).sum())
    for node in range(net.n_nodes) if nodes is None else nodes:
        update_node(net, node, filled, filled_sq)
    _balance(net)
    # from the residual: the normal-equation error cancels below sqrt(eps) of the target
    return observed_rse(net, target, mask)


def observed_rse(net: TensorNetwork, target: Tensor, mask: Tensor | None = None) -> float:
    """``||P(target - net)|| / ||P target||`` with ``P`` the projection on observed entries."""
    diff = net.to_dense() - target
    if mask is not None:
        diff = diff[mask]
        target = target[mask]
    return float(diff.norm() / target.norm().clamp_min(1e-300))


def fit_network(
    net: TensorNetwork,
    target: Tensor,
    mask: Tensor | None = None,
    *,
    method: str = "als",
    max_sweeps: int = 50,
    tol: float = 1e-5,
    lr: float = 1e-2,
    callback: Callable[[int, float], None] | None = None,
) -> NetworkFit:
    """Fit ``net`` (in place) to ``target`` on the observed entries.

    Parameters
    ----------
    net : TensorNetwork
    target : Tensor, shape ``net.shape``
        From ``prepare_target`` (hidden entries already zero).
    mask : bool Tensor or None
    method : {"als", "adam", "lm"}
        ``"lm"`` (Levenberg-Marquardt) needs a full target (no ``mask``).
    max_sweeps : int
        ALS sweeps, Adam steps for ``"adam"``, accepted or rejected damped steps for ``"lm"``.
    tol : float
        Stop when a sweep lowers the relative error by less than ``tol`` (relative; for
        ``"lm"``, three accepted steps in a row).
    lr : float
        Adam's learning rate.
    callback : callable(sweep, rse) or None

    Returns
    -------
    NetworkFit
    """
    if method not in FIT_METHODS:
        raise InvalidInputError(f"method must be one of {FIT_METHODS}, got {method!r}")
    if tuple(target.shape) != net.shape:
        raise InvalidInputError(
            f"target must have the network's shape {net.shape}, got {tuple(target.shape)}"
        )
    target = target.to(net.dtype)
    history: list[float] = []
    if method == "adam":
        return _fit_adam(net, target, mask, max_sweeps, lr, callback)
    if method == "lm":
        if mask is not None:
            raise InvalidInputError('method="lm" fits a full target; pass mask=None')
        return _fit_lm(net, target, max_sweeps, tol, callback)
    previous = math.inf
    for sweep in range(max_sweeps):
        rse = als_sweep(net, target, mask)
        history.append(rse)
        if callback is not None:
            callback(sweep, rse)
        if rse < 1e-13 or (math.isfinite(previous) and previous - rse <= tol * previous):
            break
        previous = rse
    return NetworkFit(
        net, history[-1] if history else observed_rse(net, target, mask), history, len(history)
    )


def _fit_adam(
    net: TensorNetwork,
    target: Tensor,
    mask: Tensor | None,
    steps: int,
    lr: float,
    callback: Callable[[int, float], None] | None,
) -> NetworkFit:
    params = [c.detach().clone().requires_grad_(True) for c in net.cores]
    opt = torch.optim.Adam(params, lr=lr)
    observed = target if mask is None else target[mask]
    scale = float((observed * observed).sum()).__pow__(0.5) or 1.0
    expr = contraction_expression(net.structure)
    history: list[float] = []
    best = (math.inf, [p.detach().clone() for p in params])
    for step in range(steps):
        opt.zero_grad()
        diff = expr(*params, backend="torch") - target
        if mask is not None:
            diff = diff[mask]
        loss = (diff * diff).sum() / scale**2
        rse = math.sqrt(float(loss.detach()))
        history.append(rse)
        if rse < best[0]:  # the parameters this error was measured at, before the step
            best = (rse, [p.detach().clone() for p in params])
        if callback is not None:
            callback(step, rse)
        loss.backward()
        opt.step()
    net.cores = best[1]
    return NetworkFit(net, observed_rse(net, target, mask), history, len(history))


@lru_cache(maxsize=1024)
def _jacobian_expression(structure: Structure, node: int) -> opt_einsum.contract.ContractExpression:
    """Contraction of the network without ``node``, with an identity per open mode of
    ``node``: operands ``(*other cores, *identities)``, output of shape
    ``(*shape, *core_shape(node))``, the derivative of the dense tensor by ``node``'s core."""
    symbols, mode_sym, edge_sym = structure.einsum_symbols()
    primed = {m: next(symbols) for m in structure.modes[node]}
    terms, shapes = [], []
    for i in range(structure.n_nodes):
        if i == node:
            continue
        terms.append(structure.node_legs(i, mode_sym, edge_sym))
        shapes.append(structure.core_shape(i))
    for m in structure.modes[node]:
        terms.append(mode_sym[m] + primed[m])
        shapes.append((structure.shape[m], structure.shape[m]))
    out = "".join(mode_sym) + structure.node_legs(node, primed, edge_sym)
    equation = ",".join(terms) + "->" + out
    return opt_einsum.contract_expression(equation, *shapes, optimize="auto-hq")


def network_jacobian(net: TensorNetwork) -> Tensor:
    """The derivative of ``net.to_dense()`` by every core entry.

    Returns
    -------
    Tensor, shape ``(prod(shape), n_params)``
        Columns in the order of ``torch.cat([c.reshape(-1) for c in net.cores])``.
    """
    s = net.structure
    n_entries = math.prod(s.shape)
    blocks = []
    for node in range(net.n_nodes):
        others = [c for k, c in enumerate(net.cores) if k != node]
        eyes = [
            torch.eye(s.shape[m], dtype=net.dtype, device=net.cores[node].device)
            for m in s.modes[node]
        ]
        env = _jacobian_expression(s, node)(*others, *eyes, backend="torch")
        blocks.append(env.reshape(n_entries, -1))
    return torch.cat(blocks, dim=1)


@lru_cache(maxsize=1024)
def _pair_expression(
    structure: Structure, first: int, second: int
) -> opt_einsum.contract.ContractExpression:
    """Contraction of a tensor over all modes with the network without nodes ``first`` and
    ``second``: operands ``(tensor, *other cores, *identities)`` (one identity per edge the two
    nodes share), output of shape ``(*core_shape(first), *core_shape(second))``: the
    tensor's inner product with the network, differentiated by both cores."""
    symbols, mode_sym, edge_sym = structure.einsum_symbols()
    terms, shapes = ["".join(mode_sym)], [structure.shape]
    for i in range(structure.n_nodes):
        if i in (first, second):
            continue
        terms.append(structure.node_legs(i, mode_sym, edge_sym))
        shapes.append(structure.core_shape(i))
    shared = set(structure.node_edges(first)) & set(structure.node_edges(second))
    second_sym = dict(edge_sym)
    rank = dict(structure.ranks)
    for edge in sorted(shared):
        second_sym[edge] = next(symbols)
        terms.append(edge_sym[edge] + second_sym[edge])
        shapes.append((rank[edge], rank[edge]))
    out = structure.node_legs(first, mode_sym, edge_sym)
    out += structure.node_legs(second, mode_sym, second_sym)
    equation = ",".join(terms) + "->" + out
    return opt_einsum.contract_expression(equation, *shapes, optimize="auto-hq")


def network_hessian(net: TensorNetwork, target: Tensor) -> tuple[Tensor, Tensor, float]:
    """Gradient and Hessian of ``0.5 ||net.to_dense() - target||^2`` by every core entry.

    The Hessian is the Gauss-Newton part ``J^T J`` plus the residual's curvature: the
    network is linear in each core, so that part has no diagonal blocks, and its block of
    nodes ``a, b`` is the residual contracted with the network without ``a`` and ``b``.

    Parameters
    ----------
    net : TensorNetwork
    target : Tensor, shape ``net.shape``

    Returns
    -------
    (gradient, hessian, loss) : Tensor ``(n_params,)``, Tensor ``(n_params, n_params)``, float
        Entries in the order of ``torch.cat([c.reshape(-1) for c in net.cores])``.
    """
    s = net.structure
    residual = net.to_dense() - target
    jac = network_jacobian(net)
    gradient = jac.T @ residual.reshape(-1)
    hessian = jac.T @ jac
    offsets = [0, *itertools.accumulate(c.numel() for c in net.cores)]
    eyes = {edge: torch.eye(r, dtype=net.dtype, device=residual.device) for edge, r in s.ranks}
    for a, b in itertools.combinations(range(net.n_nodes), 2):
        others = [c for k, c in enumerate(net.cores) if k not in (a, b)]
        shared = sorted(set(s.node_edges(a)) & set(s.node_edges(b)))
        block = _pair_expression(s, a, b)(
            residual, *others, *(eyes[e] for e in shared), backend="torch"
        ).reshape(net.cores[a].numel(), net.cores[b].numel())
        hessian[offsets[a] : offsets[a + 1], offsets[b] : offsets[b + 1]] += block
        hessian[offsets[b] : offsets[b + 1], offsets[a] : offsets[a + 1]] += block.T
    return gradient, hessian, 0.5 * float(residual.reshape(-1) @ residual.reshape(-1))


def negative_curvature_step(net: TensorNetwork, target: Tensor) -> bool:
    """Move ``net`` (in place) along the Hessian's most negative direction, if a step there
    lowers the squared error by more than rounding; return whether it moved.

    Levenberg-Marquardt sees only ``J^T J``, which is never negative, so it slows to a halt
    where the error curves down in a direction the Jacobian barely feels: on rings, near a
    sum of two smaller rings (the derivative by the coupling blocks vanishes there). The
    step lengths tried are ``2^-14 .. 2^2`` times the norm of all parameters, both signs.

    Parameters
    ----------
    net : TensorNetwork
        Its cores are replaced when it moves, left as they are otherwise.
    target : Tensor, shape ``net.shape``, the cores' dtype

    Returns
    -------
    bool
        Whether the cores moved: the Hessian has a negative eigenvalue and a step along its
        eigenvector lowers ``0.5 ||net - target||^2`` by more than a ``1e-8`` fraction.
    """
    with torch.no_grad():
        _, hessian, loss = network_hessian(net, target)
        if not bool(torch.isfinite(hessian).all()):
            return False
        values, vectors = torch.linalg.eigh(hessian)
        if float(values[0]) >= 0:
            return False
        direction = vectors[:, 0]
        start = list(net.cores)
        flat = torch.cat([c.reshape(-1) for c in start])
        scale = float(flat.norm()) or 1.0
        best, best_step = loss * (1 - 1e-8), 0.0
        for sign in (1.0, -1.0):
            for power in range(-14, 3):
                step = sign * scale * 2.0**power
                _set_flat(net, flat + step * direction)
                residual = (net.to_dense() - target).reshape(-1)
                value = 0.5 * float(residual @ residual)
                if value < best:
                    best, best_step = value, step
        if best_step == 0.0:
            net.cores = start
            return False
        _set_flat(net, flat + best_step * direction)
        return True


def _set_flat(net: TensorNetwork, flat: Tensor) -> None:
    """Put the flat parameter vector ``flat`` (shape ``(n_params,)``) into ``net.cores``."""
    sizes = [c.numel() for c in net.cores]
    net.cores = [
        part.reshape(c.shape) for part, c in zip(torch.split(flat, sizes), net.cores, strict=True)
    ]


def _fit_lm(
    net: TensorNetwork,
    target: Tensor,
    steps: int,
    tol: float,
    callback: Callable[[int, float], None] | None,
) -> NetworkFit:
    """Levenberg-Marquardt on ``||net - target||^2``: solve ``(J^T J + lam mu I) d = -J^T r``
    (``mu`` the mean of ``diag(J^T J)``), accept ``d`` when it lowers the error (then
    ``lam /= 3``), else ``lam *= 4``; stop below 1e-13, when ``lam`` passes 1e8, or when three
    accepted steps in a row each gain less than ``tol`` (relative)."""
    flat_target = target.reshape(-1)
    target_sq = float(flat_target @ flat_target) or 1.0
    flat = torch.cat([c.reshape(-1) for c in net.cores])
    residual = net.to_dense().reshape(-1) - flat_target
    error_sq = float(residual @ residual)
    history: list[float] = []
    lam, slow, step = 1e-3, 0, 0
    eye = torch.eye(flat.numel(), dtype=flat.dtype, device=flat.device)
    while step < steps and error_sq > 1e-26 * target_sq and lam < 1e8 and slow < 3:
        jac = network_jacobian(net)
        grad = jac.T @ residual
        hess = jac.T @ jac
        mu = float(hess.diagonal().mean()) or 1.0
        while step < steps and lam < 1e8:
            step += 1
            delta = torch.linalg.solve(hess + (lam * mu) * eye, -grad)
            _set_flat(net, flat + delta)
            new_residual = net.to_dense().reshape(-1) - flat_target
            new_sq = float(new_residual @ new_residual)
            if new_sq < error_sq:
                gain = 1 - math.sqrt(new_sq / error_sq)
                slow = slow + 1 if gain <= tol else 0
                flat, residual, error_sq = flat + delta, new_residual, new_sq
                lam = max(lam / 3, 1e-12)
                break
            lam *= 4
        _set_flat(net, flat)
        rse = math.sqrt(error_sq / target_sq)
        history.append(rse)
        if callback is not None:
            callback(len(history) - 1, rse)
    _set_flat(net, flat)
    _balance(net)
    return NetworkFit(net, observed_rse(net, target, None), history, len(history))
