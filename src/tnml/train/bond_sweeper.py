"""The two-site sweeper of an MPS classifier: cached per-sample environments and bond updates.

:class:`BondSweeper` holds a :class:`~tnml.train.labelled_mps.LabelledMPS`, the left and
right environments of every training sample (unit rows with their log-norms, within a memory
budget), and takes the gradient steps and the truncated split of one bond; its losses and the
broadcasting of the model (the sharding of samples: :mod:`tnml.train.distributed`).
Conventions: :mod:`tnml.train.sweep`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor
from torch.nn import functional as F

from tnml._validation import check_int
from tnml.exceptions import InvalidInputError, TrainingError
from tnml.nn.mps import (
    READOUTS,
    born_logits,
    normalized_logits,
)
from tnml.tensor.decomp import check_truncation_options
from tnml.tensor.environments import EnvironmentCache, bond_projections
from tnml.train.distributed import (
    all_reduce_,
    all_reduce_sum,
    broadcast_tensors,
    distributed_context,
)
from tnml.train.labelled_mps import LabelledMPS, _check_phi, _split

__all__ = [
    "SWEEP_LOSSES",
    "SWEEP_LR_SCHEDULES",
    "SWEEP_SOLVERS",
    "SWEEP_TRUNCATIONS",
    "BondSweeper",
]

_GIB = 2**30
# Largest number of samples projected at once: beyond this, bigger matrix products no longer
# run faster on a CPU and only cost memory.
_MAX_CHUNK = 4096
_DIRECTIONS = ("right", "left")

# --------------------------------------------------------------------------------------------
# losses
# --------------------------------------------------------------------------------------------


def _readout_logits(c: Tensor, log_scale: Tensor, readout: str, log_temperature: float) -> Tensor:
    """Logits of the module's readout from amplitudes ``c * exp(log_scale)``: (B, L)."""
    if readout == "normalized":
        return normalized_logits(c, c.new_tensor(log_temperature))
    if readout == "born":
        return born_logits(c)
    return c * torch.exp(log_scale)[:, None]


def _mse_loss(
    c: Tensor, log_scale: Tensor, y: Tensor, readout: str, log_temperature: float
) -> Tensor:
    """``sum_i 1/2 sum_l (f_il - delta_{l, y_i})^2`` with ``f = c * exp(log_scale)``."""
    f = c * torch.exp(log_scale)[:, None]
    target = F.one_hot(y, c.shape[1]).to(c.dtype)
    return 0.5 * (f - target).square().sum()


def _quadratic_loss(
    c: Tensor, log_scale: Tensor, y: Tensor, readout: str, log_temperature: float
) -> Tensor:
    """``sum_i 1/2 sum_l (c_il - delta_{l, y_i})^2`` on the amplitudes of the inputs projected
    into unit-norm environments (Stoudenmire & Schwab's cost as their code evaluates it: every
    sample's environment tensors are rescaled to norm 1, ITensor ``fixedL``)."""
    target = F.one_hot(y, c.shape[1]).to(c.dtype)
    return 0.5 * (c - target).square().sum()


def _cross_entropy_loss(
    c: Tensor, log_scale: Tensor, y: Tensor, readout: str, log_temperature: float
) -> Tensor:
    """Summed softmax cross-entropy on the readout logits."""
    return F.cross_entropy(
        _readout_logits(c, log_scale, readout, log_temperature), y, reduction="sum"
    )


#: Losses of :func:`train_sweep`, name -> ``fn(c (B, L), log_scale (B,), y (B,), readout,
#: log_temperature) -> summed loss``, where the amplitudes are ``c * exp(log_scale)``.
SWEEP_LOSSES: dict[str, Callable[..., Tensor]] = {
    "mse": _mse_loss,
    "quadratic": _quadratic_loss,
    "cross_entropy": _cross_entropy_loss,
}

# Default step size per loss: for "mse" the step is on the gradient divided by a bound on the
# largest eigenvalue of the Hessian in the bond tensor (BondSweeper._gradient_scale), so
# lr < 2 is stable.
# cross-entropy (the step is on the loss divided by the temperature): on digits, 3 sweeps from
# bond 2 to 16, eight validation splits of the training data, 2.0 reached 96.2% mean accuracy
# and 3.0 96.4%; 5.0 fell to 87.5% on the first four
_DEFAULT_LR = {"mse": 1.0, "quadratic": 1.0, "cross_entropy": 2.0}
SWEEP_SOLVERS = ("gradient", "cg")
"""How a bond tensor is optimised: ``"gradient"`` steps, or ``"cg"``, conjugate-gradient
passes with exact line search on a quadratic loss (``"mse"`` or ``"quadratic"``) plus
``l2 / 2 ||B||^2``, as in Stoudenmire & Schwab's code (ITensor ``fixedL``, two passes a bond;
that code also rescales the bond tensor after each pass, here ``normalize=True``)."""
MAX_NORMALIZED_STEP = 0.2
"""Longest step a normalised (unit-norm) bond tensor takes. On 8-site toy problems an uncapped
step of 2.0 times the gradient undid the model (training accuracy 85%, then 52-62%); capped at
0.2 the sweeps reach 95-100% there. The cap costs real data a little (digits, eight splits:
96.2% to 95.3%; 10,000 MNIST images, two full-batch sweeps: 93.4% to 91.2%), 0.1 more (84.9%
on MNIST)."""
SWEEP_LR_SCHEDULES = ("constant", "cosine")
SWEEP_TRUNCATIONS = ("data", "norm")
"""Where a bond split truncates: ``"data"``, in the metric of the training samples'
environments (:func:`tnml.tensor.decomp.split_tensor_in_metric`), or ``"norm"``, by the plain
SVD of the bond tensor. A classifier's amplitudes on real inputs are an exponentially small
part of its norm, so truncating in norm discards what the data see: an MPS trained to 96.3%
on 9,000 MNIST images (D = 10) falls to 54% training accuracy after 40 label moves at bond
10 truncated in norm, and stays at 93.6% truncated in the data's metric."""


def _cross_entropy_scale(u: Tensor, y: Tensor, t: float, n_steps: int = 10) -> float:
    """The factor ``t > 0`` that minimises the cross-entropy of the logits ``t * u``
    (``u`` (n, L), ``y`` (n,) class indices), summed over all processes: the loss is convex
    in ``t``; safeguarded Newton steps (each at most a factor 4) from ``t``."""
    u_target = u.gather(1, y.to(u.device).view(-1, 1)).squeeze(1)
    for _ in range(n_steps):
        p = torch.softmax(t * u, dim=1)
        mean_u = (p * u).sum(1)
        grad_sum = float((mean_u - u_target).sum())
        curv_sum = float(((p * u.square()).sum(1) - mean_u.square()).sum())
        grad, curv = all_reduce_sum([grad_sum, curv_sum], u.device)
        if curv <= 0:
            break
        t = min(max(t - grad / curv, t / 4), 4 * t)
    return t


def _predictions(c: Tensor, readout: str) -> Tensor:
    """Predicted classes from amplitudes (any positive per-sample factor): (B, L) -> (B,)."""
    return (c.abs() if readout == "born" else c).argmax(dim=1)


# --------------------------------------------------------------------------------------------
# distributed helpers
# --------------------------------------------------------------------------------------------


def _safe_norm(t: Tensor) -> float:
    """Frobenius norm as a float, clamped away from zero."""
    return max(float(torch.linalg.vector_norm(t)), torch.finfo(t.dtype).tiny)


def _broadcast_model(model: LabelledMPS) -> LabelledMPS:
    """Rank 0's model on every process."""
    if distributed_context()[1] == 1:
        return model
    meta = [model.state_dict() if distributed_context()[0] == 0 else None]
    dist.broadcast_object_list(meta, src=0)
    return LabelledMPS.from_state_dict(meta[0], device=model.device)


# --------------------------------------------------------------------------------------------
# the sweeper: environments and bond updates
# --------------------------------------------------------------------------------------------


def _memory_plan(
    n: int,
    n_sites: int,
    phys_dim: int,
    n_classes: int,
    bond: int,
    itemsize: int,
    memory_budget: int,
    chunk_size: int | None,
) -> int:
    """Check the environments fit ``memory_budget`` and return the sample chunk size."""
    env_bytes = n * (n_sites + 1) * bond * itemsize + n * n_sites * phys_dim * itemsize
    # Per sample and bond: X (Dl d), the label-bond product and the outer product with the
    # gradient weights (2 L d Dr), Y (d Dr) and the environment being extended.
    per_sample = itemsize * (bond * phys_dim * (2 + 2 * n_classes) + 4 * n_classes + 4)
    if env_bytes + per_sample > memory_budget:
        raise InvalidInputError(
            f"sweep training needs about {env_bytes / _GIB:.2f} GiB for its environments "
            f"({n} samples x {n_sites + 1} sites x bond {bond} x {itemsize} bytes), more than "
            f"memory_budget={memory_budget} bytes ({memory_budget / _GIB:.2f} GiB): raise "
            "memory_budget (fit(..., memory_budget=...), tnml train --memory), lower "
            "max_bond, train on fewer samples (or shard them over processes with "
            "torch.distributed), or keep env_dtype=torch.float32"
        )
    if chunk_size is not None:
        return chunk_size
    fit = (memory_budget - env_bytes) // per_sample
    return int(max(1, min(n, fit, _MAX_CHUNK)))


class BondSweeper:
    """Cached environments of the training samples, and the bond updates that move the label.

    Owns a canonical copy of the model (``self.model``), updated in place by
    :meth:`update_bond`. :func:`train_sweep` drives it; it is public for tests, benchmarks and
    custom schedules.

    Parameters
    ----------
    model : LabelledMPS
        The starting model (not modified). Brought to canonical form if it is not (the label
        core normalised, its norm in ``log_scale``, which stays in log space: the gradient
        steps of the losses that depend on the scale of ``W`` are scaled by it,
        ``BondSweeper._gradient_scale``).
    phi : Tensor, shape (n, N, d)
        Embedded training inputs of this process.
    y : Tensor, shape (n,), int64
        Class indices in ``[0, L)``.
    loss : {"mse", "cross_entropy"}, default="mse"
    readout : {"normalized", "born", "linear"}, optional
        Logits of ``"cross_entropy"``; default ``model.readout``. Also decides the predicted
        class (``argmax |f|`` for ``"born"``, ``argmax f`` otherwise).
    temperature : float, optional
        Fixed temperature ``t`` of the ``"normalized"`` readout; default
        ``exp(model.log_temperature)``.
    max_bond : int, default=32
        Largest bond the sweep will create; sizes the memory estimate.
    env_dtype : torch.dtype, default=torch.float32
        Dtype of the stored environments and of the projected products.
    memory_budget : int, default=4 GiB
        Bytes the environments and per-chunk intermediates may use.
    chunk_size : int, optional
        Samples projected at once; default: as many as the budget allows, at most 4096.
    fit_start_scale : bool, default=False
        When the loss depends on the scale of ``W``: start from the scale that minimises the
        loss (:meth:`fit_scale`), as :func:`train_sweep` does.

    Raises
    ------
    InvalidInputError
        Bad shapes or values, or the environments need more than ``memory_budget``.
    """

    def __init__(
        self,
        model: LabelledMPS,
        phi: Tensor,
        y: Tensor,
        *,
        loss: str = "mse",
        readout: str | None = None,
        temperature: float | None = None,
        max_bond: int = 32,
        env_dtype: torch.dtype = torch.float32,
        memory_budget: int = 4 * _GIB,
        chunk_size: int | None = None,
        fit_start_scale: bool = False,
    ) -> None:
        if not isinstance(model, LabelledMPS):
            raise InvalidInputError(f"model must be a LabelledMPS, got {type(model).__name__}")
        if model.n_sites < 2:
            raise InvalidInputError("sweep training needs at least 2 sites (one bond)")
        _check_phi("phi", phi, model.n_sites, model.phys_dim)
        _check_labels("y", y, phi.shape[0], model.n_classes)
        if loss not in SWEEP_LOSSES:
            raise InvalidInputError(f"loss must be one of {sorted(SWEEP_LOSSES)}, got {loss!r}")
        readout = model.readout if readout is None else readout
        if readout not in READOUTS:
            raise InvalidInputError(f"readout must be one of {READOUTS}, got {readout!r}")
        if temperature is not None and not (temperature > 0 and math.isfinite(temperature)):
            raise InvalidInputError(f"temperature must be a finite number > 0, got {temperature}")
        check_int("max_bond", max_bond, 1)
        if env_dtype not in (torch.float32, torch.float64):
            raise InvalidInputError(f"env_dtype must be float32 or float64, got {env_dtype}")
        check_int("memory_budget", memory_budget, 1)
        if chunk_size is not None:
            check_int("chunk_size", chunk_size, 1)
        if phi.device != model.device:
            raise InvalidInputError(f"phi is on {phi.device} but the model is on {model.device}")
        if not bool(torch.isfinite(phi).all()):
            raise InvalidInputError("phi must be finite: it holds NaN or inf")

        # fail before any work when the environments cannot fit
        itemsize = torch.empty((), dtype=env_dtype).element_size()
        self.chunk_size = _memory_plan(
            phi.shape[0],
            model.n_sites,
            model.phys_dim,
            model.n_classes,
            max(max_bond, model.max_bond_dim),
            itemsize,
            memory_budget,
            chunk_size,
        )
        self.rank, self.world_size = distributed_context()
        self.loss = loss
        self.readout = readout
        model = model.copy()
        model.readout = readout
        if temperature is not None:
            model.log_temperature = math.log(temperature)
        # the quadratic loss reads amplitudes in unit-norm environments: only the argmax of
        # its predictions depends on the readout, never on the scale of W
        self.scale_matters = loss == "mse" or (loss == "cross_entropy" and readout == "linear")
        if not model.canonical:
            model.canonicalize_()  # the label core normalised, its norm in log_scale
        self.model = _broadcast_model(model)

        n = phi.shape[0]
        self.n_local = n
        counts = [0.0] * self.world_size
        counts[self.rank] = float(n)
        counts = all_reduce_sum(counts, phi.device)
        self.n_total = int(sum(counts))
        # the samples of all processes in rank order (shard_for_rank's blocks: the data's
        # order), so that mini-batches drawn from one permutation of all of them are the same
        # whatever the number of processes
        self.first_sample = int(sum(counts[: self.rank]))
        if self.n_total == 0:
            raise InvalidInputError("phi holds no samples")
        self.env_dtype = env_dtype
        self._phi = phi.transpose(0, 1).to(env_dtype).contiguous()  # (N, n, d)
        self._y = y
        self.envs = EnvironmentCache(  # rank 0's model, as every update uses
            self._phi, self.model.cores, self.model.label_site, chunk=self.chunk_size
        )
        if fit_start_scale:
            self.fit_scale()

    def fit_scale(self) -> None:
        """Scale the model by the factor that minimises the loss of the amplitudes ``f`` (all
        processes' samples): ``sum_i f_i,y_i / sum_i ||f_i||^2`` for ``"mse"``, the
        cross-entropy's minimiser over positive factors (at most ``4^30`` either way) for the
        ``"linear"`` readout.

        A freshly initialised MPS's amplitudes can be orders of magnitude off the targets (on
        digits' 64 sites they saturate the softmax); gradient steps, whose size the smallest
        amplitudes set, cannot rescale the network from there. The factor goes into
        ``log_scale`` (on long chains its square overflows float32; its sign into the label
        core). Run at the start with ``fit_start_scale=True`` (as :func:`train_sweep` does,
        not on a warm start: on training data the model separates, the cross-entropy's
        minimum lies at an infinite scale). Does nothing for the losses that ignore the scale
        of ``W``.
        """
        if not self.scale_matters:
            return
        amps, log_scales, y = self._gathered(self._label_chunks())
        f = amps * torch.exp(log_scales)[:, None]
        if self.loss == "mse":
            aligned = float(f.gather(1, y.view(-1, 1)).sum())
            aligned, squared = all_reduce_sum([aligned, float(f.square().sum())], f.device)
            factor = aligned / squared if squared > 0 else 0.0
        else:
            factor = _cross_entropy_scale(f, y, 1.0, n_steps=30)
        if factor != 0.0 and math.isfinite(factor):
            if factor < 0:  # the sign goes into the cores, the size into the log-scale
                c = self.model.label_site
                self.model.cores[c] = -self.model.cores[c]
            self.model.log_scale = self.model.log_scale + math.log(abs(factor))

    def environment(self, side: str, site: int) -> Tensor:
        """The true (unnormalised) environment of ``site``: ``exp(log) * env``.

        Parameters
        ----------
        side : {"left", "right"}
            Left: contraction of sites ``< site``; right: of sites ``> site``.
        site : int
            Left environments are valid for sites ``<= label_site``, right ones for sites
            ``>= label_site``.

        Returns
        -------
        Tensor, shape (n, D)
            ``D`` the bond on that side of ``site``.
        """
        env, log = self.envs.left(site) if side == "left" else self.envs.right(site)
        return env * torch.exp(log)[:, None]

    # ---- one bond ----------------------------------------------------------------------------

    def _projections(self, k: int, rows: slice | Tensor) -> tuple[Tensor, Tensor]:
        """The samples at ``rows`` projected onto bond ``(k, k + 1)`` through their unit-norm
        environments: ``X = L_k (x) phi_k`` (B, Dl d) and ``Y = phi_{k+1} (x) R_{k+1}``
        (B, d Dr)."""
        (left, _), (right, _) = self.envs.left(k), self.envs.right(k + 1)
        return bond_projections(left[rows], self._phi[k][rows], self._phi[k + 1][rows], right[rows])

    def _bond_chunks(
        self, mat: Tensor, k: int, index: Tensor | None
    ) -> Iterator[tuple[slice | Tensor, Tensor, Tensor, Tensor]]:
        """This shard's samples (or those at ``index``) a chunk at a time, projected onto bond
        ``(k, k + 1)``: ``(rows, x (B, Dl d), y_vec (B, d Dr), c (B, L))`` with ``c_il =
        x_i mat_l y_i`` for the bond tensor ``mat`` as a ``(Dl d, L d Dr)`` matrix."""
        count = self.n_local if index is None else index.numel()
        for s in range(0, count, self.chunk_size):
            rows: slice | Tensor = (
                slice(s, s + self.chunk_size) if index is None else index[s : s + self.chunk_size]
            )
            x, y_vec = self._projections(k, rows)
            t = (x @ mat).reshape(-1, mat.shape[1] // y_vec.shape[1], y_vec.shape[1])
            yield rows, x, y_vec, torch.bmm(t, y_vec.unsqueeze(2)).squeeze(2)

    def _log_scale_at(self, k: int) -> Tensor:
        """Per-sample log-scale of the amplitudes at bond ``(k, k + 1)``: (n,)."""
        (_, left_log), (_, right_log) = self.envs.left(k), self.envs.right(k + 1)
        return left_log + right_log + self.model.log_scale

    def _loss_and_gradient(
        self,
        bond: Tensor,
        k: int,
        need_grad: bool,
        index: Tensor | None = None,
        log_scale: Tensor | None = None,
    ) -> tuple[float, float, Tensor | None]:
        """Summed loss, number correct and summed gradient (in ``bond``'s shape) of this shard,
        or of its samples at ``index`` (a mini-batch). ``log_scale``: :meth:`_log_scale_at`
        of bond ``k`` when the caller has it (a pass of mini-batches reads it once).

        For sample ``i`` the projected input is ``X_i = L_k[i] (x) phi_k[i]`` (``Dl d``) and
        ``Y_i = phi_{k+1}[i] (x) R_{k+1}[i]`` (``d Dr``); with ``B`` as the matrix
        ``(Dl d, L d Dr)`` the amplitudes are ``c_il = X_i B_l Y_i`` and the gradient is
        ``sum_i X_i^T (g_i (x) Y_i)`` with ``g = dloss/dc``. No ``(Dl, d, L, d, Dr)`` tensor per
        sample is formed.
        """
        dl, d, n_labels, _, dr = bond.shape
        mat = bond.to(self.env_dtype).reshape(dl * d, n_labels * d * dr)
        if log_scale is None:
            log_scale = self._log_scale_at(k)
        loss_fn = SWEEP_LOSSES[self.loss]
        grad = torch.zeros_like(mat) if need_grad else None
        loss_sum, correct = 0.0, 0.0
        for rows, x, y_vec, c in self._bond_chunks(mat, k, index):
            target = self._y[rows]
            with torch.enable_grad():
                # the loss in float64: exp(log_scale) of an mse amplitude may overflow float32
                c_leaf = c.detach().double().requires_grad_(need_grad)
                value = loss_fn(
                    c_leaf,
                    log_scale[rows].double(),
                    target,
                    self.readout,
                    self.model.log_temperature,
                )
                if need_grad:
                    (g,) = torch.autograd.grad(value, c_leaf)
                    g = g.to(c.dtype)
            loss_sum += float(value.detach())
            correct += float((_predictions(c, self.readout) == target).sum())
            if grad is not None:
                weighted = (g[:, :, None] * y_vec[:, None, :]).reshape(-1, n_labels * d * dr)
                grad += x.T @ weighted
        if grad is not None:
            grad = grad.reshape(bond.shape).to(bond.dtype)
        return loss_sum, correct, grad

    def _curvature(self, direction: Tensor, k: int) -> float:
        """``sum_i sum_l (s_i x_i P_l y_i)^2`` over all processes' samples for the bond-shaped
        ``direction`` ``P``: ``P . H P`` for the Hessian ``H`` of a quadratic loss, with
        ``s_i = exp(log_scale_i)`` for ``"mse"`` (true amplitudes) and 1 for ``"quadratic"``."""
        dl, d, n_labels, _, dr = direction.shape
        mat = direction.to(self.env_dtype).reshape(dl * d, n_labels * d * dr)
        log_scale = self._log_scale_at(k) if self.loss == "mse" else None
        total = 0.0
        for rows, _, _, c in self._bond_chunks(mat, k, None):
            c = c.double()
            if log_scale is not None:
                c = c * torch.exp(log_scale[rows].double())[:, None]
            total += float(c.square().sum())
        return all_reduce_sum([total], direction.device)[0]

    def _conjugate_gradient(
        self, bond: Tensor, k: int, passes: int, l2: float, normalize: bool
    ) -> tuple[Tensor, float, float]:
        """``passes`` conjugate-gradient steps on the mean quadratic loss plus
        ``l2 / 2 ||B||^2``, each with exact line search, the bond tensor divided by its norm
        after each step when ``normalize`` (which breaks exact conjugacy; the Polak-Ribiere
        ``beta``, floored at 0, restarts along the gradient when it is lost).

        Returns the new bond tensor and the summed loss and number correct of the last
        evaluation (before the last step), over all processes.
        """

        def gradient(bond: Tensor) -> tuple[Tensor, float, float]:
            loss_sum, correct, grad = self._loss_and_gradient(bond, k, need_grad=True)
            assert grad is not None
            all_reduce_(grad)
            loss_sum, correct = all_reduce_sum([loss_sum, correct], bond.device)
            if not math.isfinite(loss_sum):
                raise TrainingError(f"the loss became {loss_sum / self.n_total} at bond {k}")
            return grad / self.n_total + l2 * bond, loss_sum, correct

        grad, loss_sum, correct = gradient(bond)
        residual = -grad
        direction = residual
        for done in range(1, passes + 1):
            curvature = self._curvature(direction, k) / self.n_total
            curvature += l2 * float(direction.square().sum())
            if not curvature > 0:
                break
            step = float((residual * direction).sum()) / curvature
            bond = bond + step * direction
            if normalize:
                bond = bond / _safe_norm(bond)
            if done == passes:
                break
            grad, loss_sum, correct = gradient(bond)
            new_residual = -grad
            beta = float((new_residual * (new_residual - residual)).sum())
            beta = max(beta / max(float(residual.square().sum()), 1e-300), 0.0)
            residual = new_residual
            direction = residual + beta * direction
        return bond, loss_sum, correct

    def _gradient_steps(
        self,
        bond: Tensor,
        k: int,
        lr: float,
        steps_per_bond: int,
        batch_size: int | None,
        batch_seed: int,
        normalize: bool,
        max_grad_norm: float | None,
    ) -> tuple[Tensor, float, float]:
        """The ``"gradient"`` solver of :meth:`update_bond`: returns the new bond tensor and
        the summed loss and number correct of its last pass (each mini-batch before its step),
        over all processes."""
        n_batches = 1 if batch_size is None or lr == 0 else -(-self.n_total // batch_size)
        log_scale = self._log_scale_at(k)
        generator = torch.Generator().manual_seed(int(batch_seed))
        loss_sum = correct = 0.0
        for _ in range(steps_per_bond if lr > 0 else 1):
            if n_batches == 1:
                batches: list[Tensor | None] = [None]
            else:  # the same batches of all processes' samples, each process its own part
                order = torch.randperm(self.n_total, generator=generator).to(bond.device)
                batches = []
                for batch in order.tensor_split(n_batches):
                    local = batch - self.first_sample
                    batches.append(local[(local >= 0) & (local < self.n_local)])
            loss_sum = correct = 0.0
            for index in batches:
                batch_loss, batch_correct, grad = self._loss_and_gradient(
                    bond, k, need_grad=lr > 0, index=index, log_scale=log_scale
                )
                n_local = self.n_local if index is None else index.numel()
                if grad is not None:
                    all_reduce_(grad)
                batch_loss, batch_correct, seen = all_reduce_sum(
                    [batch_loss, batch_correct, float(n_local)], bond.device
                )
                if not math.isfinite(batch_loss):
                    raise TrainingError(
                        f"the loss became {batch_loss / max(seen, 1)} at bond {k}; lower the "
                        "learning rate (lr)"
                    )
                loss_sum += batch_loss
                correct += batch_correct
                if grad is not None and seen > 0:
                    scales = log_scale if index is None else log_scale[index]
                    grad = grad / (seen * self._gradient_scale(scales))
                    if max_grad_norm is not None:
                        grad = grad * min(1.0, max_grad_norm / _safe_norm(grad))
                    step = lr * grad
                    if normalize:  # a trust region on the unit sphere
                        step = step * min(1.0, MAX_NORMALIZED_STEP / _safe_norm(step))
                        bond = bond - step
                        bond = bond / _safe_norm(bond)
                    else:
                        bond = bond - step
        return bond, loss_sum, correct

    def update_bond(
        self,
        direction: str,
        *,
        lr: float = 0.0,
        steps_per_bond: int = 1,
        max_bond: int | None = 32,
        cutoff: float = 1e-10,
        cutoff_mode: str = "rel",
        normalize: bool = False,
        max_grad_norm: float | None = None,
        batch_size: int | None = None,
        batch_seed: int = 0,
        solver: str = "gradient",
        l2: float = 0.0,
        truncation: str = "norm",
    ) -> dict[str, Any]:
        """Train the bond next to the label and move the label across it.

        Parameters
        ----------
        direction : {"right", "left"}
            ``"right"``: bond ``(c, c + 1)`` with ``c = label_site``, the label ends on
            ``c + 1``; ``"left"``: bond ``(c - 1, c)``, the label ends on ``c - 1``.
        lr : float, default=0.0
            Gradient-descent step on the bond tensor (of the mean loss); 0 only moves the label.
        steps_per_bond : int, default=1
            Gradient steps before the split (one loss evaluation when ``lr = 0``).
        max_bond, cutoff, cutoff_mode
            Truncation of the split (see :func:`tnml.tensor.decomp.truncation_rank`).
        normalize : bool, default=False
            Divide the bond tensor by its norm after every step, and shorten any step longer
            than :data:`MAX_NORMALIZED_STEP` to that length.
        max_grad_norm : float, optional
            Scale the gradient of the mean loss down to at most this norm before each step.
        batch_size : int, optional
            None: each step uses every sample (full-batch gradient descent). Otherwise each of
            the ``steps_per_bond`` passes shuffles the samples and takes one step per
            mini-batch of about ``batch_size`` samples (over all processes), so a pass costs
            what one full-batch step costs but moves the bond ``n / batch_size`` times.
        batch_seed : int, default=0
            Seeds the mini-batch shuffle of this update.
        solver : {"gradient", "cg"}, default="gradient"
            ``"cg"``: ``steps_per_bond`` conjugate-gradient passes with exact line search on
            a quadratic loss (``"mse"`` or ``"quadratic"``, full batch; ``lr`` is not used),
            as in Stoudenmire & Schwab's code (see :data:`SWEEP_SOLVERS`).
        l2 : float, default=0.0
            ``"cg"``: weight of ``1/2 ||B||^2`` added to the mean loss.
        truncation : {"norm", "data"}, default="norm"
            Truncate the split by the plain SVD, or in the metric of this bond's training
            samples (:meth:`bond_grams`; see :data:`SWEEP_TRUNCATIONS`). The cutoff then
            applies to singular values in that metric, on the scale of the amplitudes, and the
            discarded weights below are measured in it.

        Returns
        -------
        dict
            ``bond`` (index of the left site), ``direction``, ``bond_dim`` (new dimension),
            ``max_bond_dim`` (largest bond of the model now), ``loss`` and ``accuracy`` (mean
            over all samples, evaluated before the last gradient step; with ``batch_size``,
            over the last pass, each mini-batch before its step), ``discarded_weight``
            (sum of squared discarded singular values; with ``truncation="data"`` in the
            data's metric, ``tr(E^T G_L E G_R)``) and ``truncation_error`` (the same relative
            to ``||B||^2``, or to ``tr(B^T G_L B G_R)``).
        """
        if direction not in _DIRECTIONS:
            raise InvalidInputError(f"direction must be one of {_DIRECTIONS}, got {direction!r}")
        check_truncation_options(max_bond, cutoff, cutoff_mode)
        if not (lr >= 0 and math.isfinite(lr)):
            raise InvalidInputError(f"lr must be a finite number >= 0, got {lr!r}")
        check_int("steps_per_bond", steps_per_bond, 1)
        if batch_size is not None:
            check_int("batch_size", batch_size, 1)
        if max_grad_norm is not None and not (max_grad_norm > 0 and math.isfinite(max_grad_norm)):
            raise InvalidInputError(
                f"max_grad_norm must be a finite number > 0, got {max_grad_norm}"
            )
        check_solver(solver, l2, self.loss, batch_size)
        check_truncation(truncation)
        model, c = self.model, self.model.label_site
        if direction == "right" and c == model.n_sites - 1:
            raise InvalidInputError("the label is on the last site: it cannot move right")
        if direction == "left" and c == 0:
            raise InvalidInputError("the label is on site 0: it cannot move left")
        k = c if direction == "right" else c - 1
        bond = model.merged_bond(k)
        if solver == "cg":
            bond, loss_sum, correct = self._conjugate_gradient(
                bond, k, steps_per_bond, l2, normalize
            )
        else:
            bond, loss_sum, correct = self._gradient_steps(
                bond, k, lr, steps_per_bond, batch_size, batch_seed, normalize, max_grad_norm
            )
        grams = self.bond_grams(k) if truncation == "data" else None
        if self.rank == 0:
            parts = list(_split(bond, direction, max_bond, cutoff, cutoff_mode, grams))
        else:  # placeholders: rank 0's factors arrive by broadcast, so all ranks stay identical
            parts = [bond.new_empty(0), bond.new_empty(0), bond.new_zeros(()), bond.new_zeros(())]
        left, right, discarded, relative = broadcast_tensors(parts)
        model.set_bond(k, left, right, k + 1 if direction == "right" else k)
        if direction == "right":
            self.envs.push_left(k, model.cores[k])
        else:
            self.envs.push_right(k + 1, model.cores[k + 1])
        return {
            "bond": k,
            "direction": direction,
            "bond_dim": int(left.shape[-1]),
            "max_bond_dim": model.max_bond_dim,
            "loss": loss_sum / self.n_total,
            "accuracy": correct / self.n_total,
            "discarded_weight": float(discarded),
            "truncation_error": float(relative),
        }

    def bond_grams(self, k: int) -> tuple[Tensor, Tensor]:
        """The data metric of bond ``(k, k + 1)``, over all processes' samples.

        With ``X_i`` and ``Y_i`` the samples projected onto the bond through their unit-norm
        environments (``L_k (x) phi_k`` and ``phi_{k+1} (x) R_{k+1}``), returns
        ``G_L = sum_i w_i X_i X_i^T / sum_i w_i`` (Dl d, Dl d) and ``G_R`` likewise
        (d Dr, d Dr), float64 (each chunk's products in the environments' dtype, summed in
        float64). ``w_i = 1`` when the loss ignores each sample's scale; otherwise ``w_i`` is
        the squared scale of its amplitudes (relative to the largest), as the loss weighs them.
        """
        weights = None
        if self.scale_matters:
            log = self._log_scale_at(k).double()
            top = log.max() if log.numel() else log.new_tensor(-math.inf)
            if self.world_size > 1:
                dist.all_reduce(top, op=dist.ReduceOp.MAX)
            weights = torch.exp(2 * (log - top))
        (left, _), (right, _) = self.envs.left(k), self.envs.right(k + 1)
        d = self._phi.shape[2]
        gram_left = left.new_zeros((left.shape[1] * d,) * 2, dtype=torch.float64)
        gram_right = left.new_zeros((d * right.shape[1],) * 2, dtype=torch.float64)
        for s in range(0, self.n_local, self.chunk_size):
            rows = slice(s, s + self.chunk_size)
            x, y_vec = self._projections(k, rows)
            weighted_x, weighted_y = x, y_vec
            if weights is not None:
                w = weights[rows].to(x.dtype)[:, None]
                weighted_x, weighted_y = x * w, y_vec * w
            gram_left += (weighted_x.T @ x).double()
            gram_right += (weighted_y.T @ y_vec).double()
        total = float(self.n_local) if weights is None else float(weights.sum())
        gram_left, gram_right = all_reduce_(gram_left), all_reduce_(gram_right)
        (total,) = all_reduce_sum([total], gram_left.device)
        return gram_left / max(total, 1e-300), gram_right / max(total, 1e-300)

    def _gradient_scale(self, log_scale: Tensor) -> float:
        """What the bond gradient of samples with amplitude log-scales ``log_scale`` (m,)
        (``_log_scale_at``) grows with. Cross-entropy with the ``"normalized"`` readout:
        its temperature (the logits are ``t f / ||f||``; steps on the gradient divided by it
        do not grow when the temperature does, which, fitted on training data that the model
        separates, grows without bound).
        ``"mse"``, or cross-entropy on the ``"linear"`` readout (the raw amplitudes):
        ``mean_i exp(2 log_scale_i)`` over these samples of all processes, which bounds the
        largest eigenvalue of their mean loss's Hessian in the bond tensor (unit-norm projected
        inputs; the cross-entropy's Hessian in the logits is at most 1/2), so a step below 2 is
        stable. The scales of the amplitudes shrink exponentially with the chain and spread
        over orders of magnitude between samples: unscaled steps would barely move the bond,
        and one scale for all mini-batches would overshoot on those that hold the largest
        amplitudes. Otherwise 1."""
        if self.readout == "normalized" and self.loss == "cross_entropy":
            return math.exp(self.model.log_temperature)
        if self.scale_matters:
            squared = float(torch.exp(2 * log_scale.double()).sum())
            squared, count = all_reduce_sum([squared, float(log_scale.numel())], self._y.device)
            return squared / count if squared > 0 else 1.0
        return 1.0

    def _label_chunks(self) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        """This process's training samples, a chunk at a time, from the environments at the
        label: amplitudes ``L_c . A_c(phi_c) . R_c`` (B, L), their log-scale (B,), labels (B,).
        Exact for the current model, with no pass over the chain."""
        c = self.model.label_site
        (left, left_log), (right, right_log) = self.envs.left(c), self.envs.right(c)
        core = self.model.label_core.to(self.env_dtype)
        for s in range(0, self.n_local, self.chunk_size):
            sl = slice(s, s + self.chunk_size)
            amp = torch.einsum("ba,aslr,bs,br->bl", left[sl], core, self._phi[c][sl], right[sl])
            yield amp, left_log[sl] + right_log[sl] + self.model.log_scale, self._y[sl]

    def _gathered(
        self, chunks: Iterator[tuple[Tensor, Tensor, Tensor]]
    ) -> tuple[Tensor, Tensor, Tensor]:
        """The chunks of :meth:`_label_chunks` or :meth:`_held_out_chunks` in one piece, on the
        labels' device: amplitudes (n, L) and log-scales (n,) in float64, labels (n,) (empty
        where a process holds no samples: its sums are then zero)."""
        amps = [torch.zeros(0, self.model.n_classes, dtype=torch.float64, device=self._y.device)]
        log_scales = [torch.zeros(0, dtype=torch.float64, device=self._y.device)]
        labels = [self._y[:0]]
        for amp, log_scale, target in chunks:
            amps.append(amp.double().to(self._y.device))
            log_scales.append(log_scale.double().to(self._y.device))
            labels.append(target.to(self._y.device))
        return torch.cat(amps), torch.cat(log_scales), torch.cat(labels)

    def _held_out_chunks(
        self, phi: Tensor, y: Tensor, names: tuple[str, str]
    ) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        """Samples ``(phi (n, N, d), y (n,))`` a chunk at a time, contracted through the whole
        chain: amplitudes (B, L), their log-scale (B,), labels (B,). ``names`` are the
        arguments' names for the input checks."""
        _check_phi(names[0], phi, self.model.n_sites, self.model.phys_dim)
        _check_labels(names[1], y, phi.shape[0], self.model.n_classes)

        def chunks() -> Iterator[tuple[Tensor, Tensor, Tensor]]:
            for s in range(0, phi.shape[0], self.chunk_size):
                # projected like the training samples at the label, so that losses which
                # read the amplitude itself ("quadratic") mean the same on both
                amp, log_scale = self.model.projected_amplitudes(phi[s : s + self.chunk_size])
                yield amp, log_scale, y[s : s + self.chunk_size]

        return chunks()

    def _mean_metrics(
        self, chunks: Iterator[tuple[Tensor, Tensor, Tensor]], n_local: int
    ) -> tuple[float, float]:
        """Mean loss and accuracy over ``chunks`` of ``n_local`` samples, all processes."""
        loss_fn = SWEEP_LOSSES[self.loss]
        loss_sum, correct = 0.0, 0.0
        for amp, log_scale, target in chunks:
            loss_sum += float(
                loss_fn(
                    amp.double(),
                    log_scale.double(),
                    target,
                    self.readout,
                    self.model.log_temperature,
                )
            )
            correct += float((_predictions(amp, self.readout) == target).sum())
        loss_sum, correct, count = all_reduce_sum(
            [loss_sum, correct, float(n_local)], self._y.device
        )
        return loss_sum / max(count, 1.0), correct / max(count, 1.0)

    def training_metrics(self) -> tuple[float, float]:
        """Mean loss and accuracy on all training samples, from the environments at the label
        (exact for the current model, with no pass over the chain)."""
        return self._mean_metrics(self._label_chunks(), self.n_local)

    def fit_temperature(
        self, phi: Tensor | None = None, y: Tensor | None = None, n_steps: int = 10
    ) -> float:
        """Set the ``"normalized"`` readout's temperature to minimise the cross-entropy on the
        training samples, or on ``(phi (n, N, d), y (n,))`` when given (held-out data: on a
        training set the model separates, the minimum lies at an infinite temperature).

        The logits are ``t * u`` with ``u = f / ||f||`` fixed by the cores, so the mean
        cross-entropy is convex in ``t``; a few safeguarded Newton steps on ``t`` (sums over
        chunks and processes all-reduced) find its minimum. The training samples come from
        the environments at the label, like :meth:`training_metrics`. Returns the new
        temperature.
        """
        if phi is None or y is None:
            chunks = self._label_chunks()
        else:
            chunks = self._held_out_chunks(phi, y, ("phi", "y"))
        amps, _, labels = self._gathered(chunks)
        u = amps / torch.linalg.vector_norm(amps, dim=1, keepdim=True).clamp_min(1e-300)
        t = _cross_entropy_scale(u, labels, math.exp(self.model.log_temperature), n_steps)
        self.model.log_temperature = math.log(t)
        return t

    def evaluate(self, phi: Tensor, y: Tensor) -> tuple[float, float]:
        """Mean loss and accuracy of the current model on ``(phi (n, N, d), y (n,))``.

        Under ``torch.distributed`` each process passes its own shard; the sums are
        all-reduced, so every process returns the metrics of the whole set.
        """
        return self._mean_metrics(self._held_out_chunks(phi, y, ("phi_val", "y_val")), phi.shape[0])


def check_truncation(truncation: str) -> None:
    """Raise :class:`InvalidInputError` unless ``truncation`` is one of
    :data:`SWEEP_TRUNCATIONS`."""
    if truncation not in SWEEP_TRUNCATIONS:
        raise InvalidInputError(
            f"truncation must be one of {SWEEP_TRUNCATIONS}, got {truncation!r}"
        )


def check_solver(solver: str, l2: float, loss: str, batch_size: int | None) -> None:
    """Raise :class:`InvalidInputError` unless ``solver`` and ``l2`` suit ``loss`` and the
    batching."""
    if solver not in SWEEP_SOLVERS:
        raise InvalidInputError(f"solver must be one of {SWEEP_SOLVERS}, got {solver!r}")
    if not (l2 >= 0 and math.isfinite(l2)):
        raise InvalidInputError(f"l2 must be a finite number >= 0, got {l2!r}")
    if solver == "cg" and loss not in ("mse", "quadratic"):
        raise InvalidInputError(
            f"solver='cg' needs a quadratic loss ('mse' or 'quadratic'), got loss={loss!r}"
        )
    if solver == "cg" and batch_size is not None:
        raise InvalidInputError("solver='cg' takes full-batch passes: leave batch_size at None")


def _check_labels(name: str, y: object, n: int, n_classes: int) -> None:
    if not isinstance(y, Tensor) or y.ndim != 1 or y.shape[0] != n:
        got = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
        raise InvalidInputError(f"{name} must be a tensor of shape ({n},), got {got}")
    if y.dtype != torch.int64:
        raise InvalidInputError(f"{name} must hold int64 class indices, got {y.dtype}")
    if n and (int(y.min()) < 0 or int(y.max()) >= n_classes):
        raise InvalidInputError(
            f"{name} must hold class indices in [0, {n_classes}) for a model with "
            f"{n_classes} labels, got values in [{int(y.min())}, {int(y.max())}]"
        )
