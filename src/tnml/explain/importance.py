"""Feature importance of an MPS or tree classifier: the change in class probability when a
feature is marginalised out, for every feature of every sample at once."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted
from torch import Tensor

from tnml._validation import check_int
from tnml.estimators.base import checked_data
from tnml.exceptions import InvalidInputError
from tnml.features import embed
from tnml.nn.mps import MPSClassifierModule, born_logits, normalized_logits
from tnml.nn.ttn import TTNClassifierModule
from tnml.tensor.ttn import TTN

ClassifierModule = MPSClassifierModule | TTNClassifierModule

__all__ = ["MARGINALIZATIONS", "branch_amplitudes", "feature_importance", "tree_branch_amplitudes"]

#: The accepted values of ``method`` in :func:`feature_importance`.
MARGINALIZATIONS: tuple[str, ...] = ("trace", "uniform")
_REDUCTIONS = (None, "mean_abs")


def feature_importance(
    model: Any,
    X: Any,
    *,
    target: Any = None,
    method: str = "trace",
    reduce: str | None = None,
    batch_size: int = 256,
) -> np.ndarray:
    """How much each feature of each sample supports a class of an MPS or tree classifier.

    ``importance[n, j] = p(c | x_n) - p_j(c | x_n)``: the probability of class ``c`` minus
    its probability when feature ``j`` is marginalised out. Positive values mark features
    that raise the class's probability, negative values features that lower it.

    Marginalising site ``j`` uses the amplitudes ``g_s = f(x; phi(x_j) -> e_s)`` of the input
    with the embedded vector at site ``j`` replaced by each basis vector ``e_s`` of the local
    space (for ``d = 2`` and the trig or linear feature map, ``e_0 = phi(0)`` and
    ``e_1 = phi(1)``); each gives the class probabilities ``p(. | g_s)`` of the model's
    readout, and

    - ``method="trace"`` (default): site ``j`` is fed the maximally mixed state ``I / d``.
      With ``readout="born"`` the model then measures ``p_j(l) = sum_s g_{s,l}^2 /
      sum_{s,k} g_{s,k}^2``, which does not depend on the local basis and is what the
      model's circuit gives with qubit ``j`` in the maximally mixed state. This equals the
      mixture ``sum_s w_s p(l | g_s)`` with Born weights ``w_s = |g_s|^2 / sum_t |g_t|^2``,
      and that mixture is the definition for the ``"normalized"`` and ``"linear"``
      readouts (the weights are how much of the label amplitude each local basis state
      carries). Their sign-sensitive logits rule out the alternative of one combined
      amplitude ``sqrt(sum_s g_{s,l}^2)``: it drops signs, so a feature the model ignores
      could get a nonzero importance.
    - ``method="uniform"``: the plain average ``(1/d) sum_s p(l | g_s)`` (for ``d = 2``: the
      mean of the predictions with ``x_j = 0`` and ``x_j = 1``).

    With the scale-free readouts (``"normalized"``, ``"born"``) a feature the model ignores
    (``g_s`` the same up to a positive factor for every ``s``, so that ``x_j`` only rescales
    ``f`` by a positive number) gets importance 0 under both methods. The ``"linear"``
    readout depends on the scale of ``f``, so there even a rescaling counts.

    Parameters
    ----------
    model : MPSClassifier, TTNClassifier, or their modules
        A fitted :class:`tnml.MPSClassifier` or :class:`tnml.TTNClassifier` (its input
        scaling is applied to ``X``) or its module (``X`` must then lie in [0, 1]).
    X : array-like of shape (n_samples, n_features)
        Samples to explain.
    target : label, array-like of shape (n_samples,), or None, default=None
        Class whose probability is tracked: None for each sample's predicted class, one
        label of ``model.classes_`` for all samples, or one label per sample (for a module,
        class indices).
    method : {"trace", "uniform"}, default="trace"
        How the feature is marginalised out (above).
    reduce : {None, "mean_abs"}, default=None
        None returns every sample's importances; ``"mean_abs"`` their mean absolute value
        per feature.
    batch_size : int, default=256
        Samples contracted at once (memory ``~ batch_size * N * (D + d L)`` floats).

    Returns
    -------
    ndarray of float64, shape (n_samples, n_features), or (n_features,) with
    ``reduce="mean_abs"``
        Computed in float64. The unmarginalised probabilities ``p(c | x)`` are the model's
        own (:meth:`~tnml.MPSClassifier.predict_proba`, up to float rounding). Cost
        ``O(n_samples N d D^2 L)`` for an MPS (``O(n_samples N D^3 L)`` for a tree): one pass
        of environments each way per batch gives the branch amplitudes of every site at
        once (never ``N`` separate contractions).

    Raises
    ------
    InvalidInputError
        An unfitted or unsupported model, ``X`` of the wrong shape or outside [0, 1] (module),
        an unknown target label, or an invalid ``method`` / ``reduce`` / ``batch_size``.
    """
    if method not in MARGINALIZATIONS:
        raise InvalidInputError(f"method must be one of {MARGINALIZATIONS}, got {method!r}")
    if reduce not in _REDUCTIONS:
        raise InvalidInputError(f"reduce must be one of {_REDUCTIONS}, got {reduce!r}")
    check_int("batch_size", batch_size, 1)
    module, x_unit, classes = _resolve(model, X)
    target_index = _target_indices(target, classes, x_unit.shape[0])

    if isinstance(module, MPSClassifierModule):
        cores = module.cores.detach().double()
        output_core = module.output_core.detach().double()
        device, k = cores.device, module.output_site
    else:
        tree = module.to_ttn()
        tree = TTN(tree.layout, [[t.double() for t in row] for row in tree.tensors])
        device, k = tree.device, 0
    out = np.empty(x_unit.shape, dtype=np.float64)
    for start in range(0, x_unit.shape[0], batch_size):
        x = torch.as_tensor(
            np.ascontiguousarray(x_unit[start : start + batch_size]),
            dtype=torch.float64,
            device=device,
        )
        phi = embed(x, module.feature_map, module.feature_dim)
        if isinstance(module, MPSClassifierModule):
            mantissa, log_scale = branch_amplitudes(cores, output_core, phi, k)
        else:
            if phi.shape[1] == 1:  # the tree's constant second leaf, fed e_0
                phi = torch.cat((phi, torch.zeros_like(phi)), dim=1)
                phi[:, 1, 0] = 1.0
            mantissa, log_scale = tree_branch_amplitudes(tree, phi)
            phi, mantissa, log_scale = (
                phi[:, : x.shape[1]],
                mantissa[:, : x.shape[1]],
                log_scale[:, : x.shape[1]],
            )
        base_m = torch.einsum("bsl,bs->bl", mantissa[:, k], phi[:, k])
        base = _proba(module, base_m, log_scale[:, k])  # (B, L)
        branch = _proba(module, mantissa, log_scale.unsqueeze(-1))  # (B, N, d, L)
        if method == "trace":
            weight = mantissa.square().sum(dim=-1)  # (B, N, d)
            total = weight.sum(dim=-1, keepdim=True)
            uniform = torch.full_like(weight, 1.0 / weight.shape[-1])
            weight = torch.where(total > 0, weight / total.clamp_min(1e-300), uniform)
        else:
            weight = torch.full(mantissa.shape[:3], 1.0 / mantissa.shape[2], dtype=torch.float64)
        marginal = torch.einsum("bnsl,bns->bnl", branch, weight.to(branch.device))
        if target_index is None:
            c = base.argmax(dim=-1)
        else:
            c = torch.as_tensor(target_index[start : start + batch_size], device=base.device)
        rows = torch.arange(c.shape[0], device=base.device)
        drop = base[rows, c].unsqueeze(-1) - marginal[rows, :, c]
        out[start : start + batch_size] = drop.cpu().numpy()
    if reduce == "mean_abs":
        return np.abs(out).mean(axis=0)
    return out


def _unit(t: Tensor) -> tuple[Tensor, Tensor]:
    """``t`` (B, ...) divided by each sample's norm, and the log of that norm (B,)."""
    norm = torch.linalg.vector_norm(t.reshape(t.shape[0], -1), dim=1).clamp_min(1e-300)
    return t / norm.reshape(-1, *([1] * (t.ndim - 1))), norm.log()


def branch_amplitudes(
    cores: Tensor, output_core: Tensor, phi: Tensor, output_site: int
) -> tuple[Tensor, Tensor]:
    """Amplitudes of every input with one site's vector replaced by each basis vector.

    ``g[b, j, s, l] = f_l(x_b)`` with ``phi[b, j]`` replaced by ``e_s``, for all ``j`` at once:
    the left environments (sites ``< j``) and right environments (sites ``> j``) are swept
    once each, the one that passes the output site carrying the label index.

    Parameters
    ----------
    cores : Tensor, shape (N - 1, D, d, D)
        The sites without the label (as in :class:`~tnml.nn.MPSClassifierModule`).
    output_core : Tensor, shape (D, d, L, D)
    phi : Tensor, shape (B, N, d)
        Embedded inputs.
    output_site : int

    Returns
    -------
    mantissa : Tensor, shape (B, N, d, L)
        Unit norm over ``(d, L)`` for each ``(b, j)`` (or zero).
    log_scale : Tensor, shape (B, N)
        ``g[b, j] = mantissa[b, j] * exp(log_scale[b, j])``.
    """
    batch, n, _ = phi.shape
    k = output_site

    def site(i: int) -> Tensor:
        return cores[i] if i < k else cores[i - 1]

    e0 = phi.new_zeros(batch, cores.shape[1])
    e0[:, 0] = 1.0
    zero = phi.new_zeros(batch)
    # left[i]: sites < i (i <= k); right[i]: sites >= i (i > k); each with its log-norm
    left, left_log = [e0], [zero]
    for i in range(k):
        v, ln = _unit(torch.einsum("bl,lsr,bs->br", left[-1], site(i), phi[:, i]))
        left.append(v)
        left_log.append(left_log[-1] + ln)
    right, right_log = {n: e0}, {n: zero}
    for i in range(n - 1, k, -1):
        v, ln = _unit(torch.einsum("lsr,bs,br->bl", site(i), phi[:, i], right[i + 1]))
        right[i], right_log[i] = v, right_log[i + 1] + ln

    mantissa = [torch.empty(0)] * n
    logs = [zero] * n
    g, ln = _unit(torch.einsum("bl,lsLr,br->bsL", left[k], output_core, right[k + 1]))
    mantissa[k], logs[k] = g, ln + left_log[k] + right_log[k + 1]
    # sites left of the output: a right environment carrying the label, swept leftwards
    if k > 0:
        env, env_log = _unit(torch.einsum("lsLr,bs,br->blL", output_core, phi[:, k], right[k + 1]))
        env_log = env_log + right_log[k + 1]
        for j in range(k - 1, -1, -1):
            g, ln = _unit(torch.einsum("bl,lsr,brL->bsL", left[j], site(j), env))
            mantissa[j], logs[j] = g, ln + left_log[j] + env_log
            if j > 0:
                env, ln = _unit(torch.einsum("lsr,bs,brL->blL", site(j), phi[:, j], env))
                env_log = env_log + ln
    # sites right of the output: a left environment carrying the label, swept rightwards
    if k < n - 1:
        env, env_log = _unit(torch.einsum("bl,lsLr,bs->bLr", left[k], output_core, phi[:, k]))
        env_log = env_log + left_log[k]
        for j in range(k + 1, n):
            g, ln = _unit(torch.einsum("bLl,lsr,br->bsL", env, site(j), right[j + 1]))
            mantissa[j], logs[j] = g, ln + env_log + right_log[j + 1]
            if j < n - 1:
                env, ln = _unit(torch.einsum("bLl,lsr,bs->bLr", env, site(j), phi[:, j]))
                env_log = env_log + ln
    return torch.stack(mantissa, dim=1), torch.stack(logs, dim=1)


def tree_branch_amplitudes(ttn: TTN, phi: Tensor) -> tuple[Tensor, Tensor]:
    """Amplitudes of every input with one leaf's vector replaced by each basis vector, for a
    tree whose root carries the label index.

    ``g[b, j, s, l] = f_l(x_b)`` with ``phi[b, j]`` replaced by ``e_s``, for all ``j`` at once:
    one bottom-up pass contracts every subtree with the inputs, one top-down pass carries the
    label index down as an environment ``(b, D, L)`` of each node's parent leg.

    Parameters
    ----------
    ttn : TTN
        Root output dimension ``L`` (the labels).
    phi : Tensor, shape (B, N, d)
        Embedded inputs, in leaf order.

    Returns
    -------
    mantissa : Tensor, shape (B, N, d, L)
        Unit norm over ``(d, L)`` for each ``(b, j)`` (or zero).
    log_scale : Tensor, shape (B, N)
        ``g[b, j] = mantissa[b, j] * exp(log_scale[b, j])``.
    """
    layout = ttn.layout
    batch, n = phi.shape[:2]

    up: dict[object, Tensor] = {}
    up_log: dict[object, Tensor] = {}
    for j in range(n):
        up[j], up_log[j] = _unit(phi[:, j])
    for node in layout.nodes[:-1]:  # bottom-up, the root last (and not needed)
        a, b = layout.children(node)
        t = ttn.tensors[node[0]][node[1]]
        v, ln = _unit(torch.einsum("nyp,ny->np", torch.einsum("nx,xyp->nyp", up[a], t), up[b]))
        up[node], up_log[node] = v, up_log[a] + up_log[b] + ln
    n_labels = ttn.tensors[-1][0].shape[2]
    eye = torch.eye(n_labels, dtype=phi.dtype, device=phi.device)
    down: dict[object, Tensor] = {layout.root: eye.expand(batch, n_labels, n_labels)}
    down_log: dict[object, Tensor] = {layout.root: phi.new_zeros(batch)}
    mantissa = [torch.empty(0)] * n
    logs = [phi.new_zeros(batch)] * n
    for node in reversed(layout.nodes):  # top-down
        t = ttn.tensors[node[0]][node[1]]
        opened = torch.einsum("xyp,npl->nxyl", t, down[node])  # (B, Da, Db, L)
        children = layout.children(node)
        for side, child in enumerate(children):
            other = children[1 - side]
            if side == 0:
                env = torch.einsum("nxyl,ny->nxl", opened, up[other])
            else:
                env = torch.einsum("nxyl,nx->nyl", opened, up[other])
            env, ln = _unit(env)
            env_log = down_log[node] + up_log[other] + ln
            if isinstance(child, int):
                mantissa[child], logs[child] = env, env_log
            else:
                down[child], down_log[child] = env, env_log
    return torch.stack(mantissa, dim=1), torch.stack(logs, dim=1)


def _proba(module: ClassifierModule, mantissa: Tensor, log_scale: Tensor) -> Tensor:
    """The module's class probabilities for amplitudes ``mantissa * exp(log_scale)``.

    Shapes: ``mantissa (..., L)``, ``log_scale`` broadcastable to ``(...)`` -> ``(..., L)``.
    The same formulas as :meth:`MPSClassifierModule.forward`, in float64.
    """
    if module.readout == "normalized":
        temperature = module.log_temperature.detach().double().to(mantissa.device)
        logits = normalized_logits(mantissa, temperature)
    elif module.readout == "born":
        logits = born_logits(mantissa)
    else:
        logits = mantissa * torch.exp(log_scale).unsqueeze(-1)
    return torch.softmax(logits, dim=-1)


def _resolve(model: Any, X: Any) -> tuple[ClassifierModule, np.ndarray, np.ndarray]:
    """The module, ``X`` mapped into [0, 1] (float64) and the class labels."""
    if isinstance(model, BaseEstimator):
        check_is_fitted(model)
        module = getattr(model, "module_", None)
        if not isinstance(module, ClassifierModule):
            raise InvalidInputError(
                "model must be a fitted MPS or tree classifier (module_ an "
                "MPSClassifierModule or TTNClassifierModule), got "
                f"{type(model).__name__} with module_ {type(module).__name__}"
            )
        x = checked_data(model, X, dtype=[np.float64, np.float32], reset=False)
        return module, np.asarray(model._to_unit(x), dtype=np.float64), model.classes_
    if isinstance(model, ClassifierModule):
        x = X.detach().cpu().numpy() if isinstance(X, Tensor) else np.asarray(X)
        if x.ndim != 2 or x.shape[1] != model.n_features:
            raise InvalidInputError(
                f"X must have shape (n_samples, {model.n_features}), got {x.shape}"
            )
        if not np.issubdtype(x.dtype, np.floating):
            raise InvalidInputError(f"X must hold floating-point values, got dtype {x.dtype}")
        return model, x.astype(np.float64), np.arange(model.n_classes)
    raise InvalidInputError(
        "model must be a fitted tnml.MPSClassifier or tnml.TTNClassifier, or its module, got "
        f"{type(model).__name__}"
    )


def _target_indices(target: Any, classes: np.ndarray, n_samples: int) -> np.ndarray | None:
    """Class indices of ``target`` (None: each sample's predicted class)."""
    if target is None:
        return None
    labels = np.asarray(target)
    if labels.ndim == 0:
        labels = np.full(n_samples, labels.item(), dtype=labels.dtype)
    if labels.shape != (n_samples,):
        raise InvalidInputError(
            f"target must be None, one label or one label per sample ({n_samples}), "
            f"got shape {labels.shape}"
        )
    index = {c.item() if hasattr(c, "item") else c: i for i, c in enumerate(classes)}
    try:
        return np.asarray([index[t.item() if hasattr(t, "item") else t] for t in labels])
    except KeyError as err:
        raise InvalidInputError(
            f"target holds {err.args[0]!r}, not one of the model's classes {classes.tolist()}"
        ) from None
