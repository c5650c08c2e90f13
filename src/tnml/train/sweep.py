"""Two-site sweep ("DMRG-style") training of an MPS classifier, after Stoudenmire & Schwab (2016).

The classifier is ``f_l(x) = <W_l | Phi(x)>`` with ``W`` an open-boundary MPS whose core at
``label_site`` carries the label index ``l``. Training moves the label along the chain one bond
at a time:

1. merge the label core with its neighbour into a bond tensor ``B`` of shape
   ``(Dl, d, L, d, Dr)`` (left bond, left physical index, **label**, right physical index,
   right bond: the label always sits between the two physical indices, whichever of the two
   cores carried it);
2. take ``steps_per_bond`` plain gradient steps on ``B`` with every training sample projected
   through its cached left and right environments;
3. split ``B`` by a truncated SVD (:func:`tnml.tensor.decomp.split_tensor`, at most ``max_bond``
   singular values above ``cutoff``), so the bond dimension grows where the data need it; the
   factor behind the move becomes an isometry and the other one, holding the singular values,
   takes the label;
4. extend the environment on the side just passed by one site.

Conventions
-----------
- Cores are ``(Dl, d, Dr)``; the label core is ``(Dl, d, L, Dr)``; the end bonds have
  dimension 1 and internal bonds may all differ. :class:`LabelledMPS` represents
  ``W = exp(log_scale) * contraction(cores)``.
- Canonical form: during sweeping cores left of the label are left isometries
  (``sum_{a,s} A[a,s,b] A[a,s,b'] = delta``) and cores right of it right isometries, so the
  label core is the orthogonality centre.
- Environments: for sample ``i`` the left environment of site ``j`` is the contraction of sites
  ``0 .. j-1`` with ``phi(x_i)``, a vector over the left bond of ``j``; the right environment of
  ``j`` contracts sites ``j+1 .. N-1``. Each is stored renormalised to unit norm with its
  log-norm accumulated per sample, so nothing under- or overflows over hundreds of sites:
  ``env_true[i] = exp(log[i]) * env[i]``. With the label on site ``c`` the left environments of
  sites ``0 .. c`` and the right environments of ``c .. N-1`` are valid; a move to the right
  adds the left environment of ``c + 1`` from that of ``c`` (one site, never from scratch) and
  drops the right one of ``c``; a move to the left mirrors this.
- Losses: ``"mse"`` is the paper's ``1/2 sum_l (f_l - delta_{l,y})^2`` averaged over samples, on
  the true amplitudes ``f = exp(log_scale + log_left + log_right) * contraction``;
  ``"cross_entropy"`` is the softmax cross-entropy on the readout logits of
  :class:`~tnml.nn.MPSClassifierModule` (``"normalized"`` with a fixed temperature,
  ``"born"``, or ``"linear"``); the per-sample scale cancels for the first two.
- Data parallel: under ``torch.distributed`` with several processes each process passes its own
  shard of the samples (see :func:`shard_for_rank`) and holds environments for those only;
  gradients and loss sums are all-reduced, rank 0 does the SVD and broadcasts the factors, so
  every process holds a bit-identical model. Only rank 0 writes checkpoints and shows progress.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.distributed as dist
from torch import Tensor
from torch.nn import functional as F

from tnml._validation import check_int
from tnml.exceptions import InvalidInputError, TrainingError
from tnml.nn.mps import (
    READOUTS,
    MPSClassifierModule,
    born_logits,
    normalized_logits,
)
from tnml.tensor.decomp import check_truncation_options, split_tensor
from tnml.tensor.mps import MPS
from tnml.train.distributed import all_reduce_sum, distributed_context
from tnml.train.loop import SELECTIONS, FitResult, UpdateRule, fit_loop

__all__ = [
    "SWEEP_LOSSES",
    "BondSweeper",
    "ClassifierSweepRule",
    "LabelledMPS",
    "move_label",
    "shard_for_rank",
    "train_sweep",
]

_GIB = 2**30
# Largest number of samples projected at once: beyond this, bigger matrix products no longer
# run faster on a CPU and only cost memory.
_MAX_CHUNK = 4096
_DIRECTIONS = ("right", "left")

Callback = Callable[[dict[str, Any], dict[str, float]], bool | None]


# --------------------------------------------------------------------------------------------
# the model: an MPS with a label index on one core
# --------------------------------------------------------------------------------------------


@dataclass
class LabelledMPS:
    """An open-boundary MPS with the label index on one core: the state of sweep training.

    Represents ``W = exp(log_scale) * contraction(cores)`` and the classifier
    ``f_l(x) = <W_l | Phi(x)>``.

    Attributes
    ----------
    cores : list of Tensor
        ``N`` cores in site order: ``(Dl, d, Dr)``, except ``cores[label_site]`` of shape
        ``(Dl, d, L, Dr)``. ``cores[0]`` has ``Dl = 1`` and ``cores[-1]`` has ``Dr = 1``;
        internal bond dimensions may differ from bond to bond.
    label_site : int
        The site carrying the label index.
    log_scale : float, default=0.0
        Log of an overall positive factor of ``W``.
    readout : {"normalized", "born", "linear"}, default="normalized"
        The readout of the module this model becomes (see
        :class:`~tnml.nn.MPSClassifierModule`); also the logits of the cross-entropy loss.
    log_temperature : float, default=0.0
        ``log t`` of the ``"normalized"`` readout.
    feature_map : str, default="trig"
        The feature map the inputs were embedded with (kept for :meth:`to_module`).
    canonical : bool, default=False
        True when cores left of ``label_site`` are left isometries and cores right of it right
        isometries. Set by :meth:`canonicalize`; replace cores by hand and set it to False.
    """

    cores: list[Tensor]
    label_site: int
    log_scale: float = 0.0
    readout: str = "normalized"
    log_temperature: float = 0.0
    feature_map: str = "trig"
    canonical: bool = False

    def __post_init__(self) -> None:
        _check_labelled_cores(self.cores, self.label_site)
        self.cores = list(self.cores)
        if self.readout not in READOUTS:
            raise InvalidInputError(f"readout must be one of {READOUTS}, got {self.readout!r}")
        self.log_scale = float(self.log_scale)
        self.log_temperature = float(self.log_temperature)
        if not math.isfinite(self.log_scale):
            raise InvalidInputError(f"log_scale must be finite, got {self.log_scale}")

    # ---- shape information ------------------------------------------------------------------

    @property
    def n_sites(self) -> int:
        """Number of sites ``N``."""
        return len(self.cores)

    @property
    def n_classes(self) -> int:
        """Size ``L`` of the label index."""
        return int(self.cores[self.label_site].shape[2])

    @property
    def phys_dim(self) -> int:
        """Local dimension ``d`` of every site."""
        return int(self.cores[0].shape[1])

    @property
    def bond_dims(self) -> tuple[int, ...]:
        """The ``N - 1`` internal bond dimensions; bond ``b`` joins sites ``b`` and ``b + 1``."""
        return tuple(int(core.shape[-1]) for core in self.cores[:-1])

    @property
    def max_bond_dim(self) -> int:
        """The largest internal bond dimension (1 for a single site)."""
        return max(self.bond_dims, default=1)

    @property
    def dtype(self) -> torch.dtype:
        return self.cores[0].dtype

    @property
    def device(self) -> torch.device:
        return self.cores[0].device

    def copy(self) -> LabelledMPS:
        """A new model sharing the (never modified in place) core tensors."""
        return dataclasses.replace(self, cores=list(self.cores))

    # ---- conversion to and from the module --------------------------------------------------

    @classmethod
    def from_module(cls, module: MPSClassifierModule) -> LabelledMPS:
        """Take the weights of an :class:`~tnml.nn.MPSClassifierModule` (detached copies).

        The module closes its chain with the basis vector ``e_0`` on both ends; here it is
        applied, so the first core is ``module.cores[0][:1]`` and the last one
        ``module.cores[-1][..., :1]`` (the output core's slices if it sits at an end) and the
        end bonds have dimension 1. Readout, temperature and feature map are carried over.

        Parameters
        ----------
        module : MPSClassifierModule
            Cores ``(N - 1, D, d, D)`` and output core ``(D, d, L, D)`` at ``output_site``.

        Returns
        -------
        LabelledMPS
            With ``label_site = module.output_site``, not canonical, ``log_scale = 0``.
        """
        if not isinstance(module, MPSClassifierModule):
            raise InvalidInputError(
                f"module must be an MPSClassifierModule, got {type(module).__name__}"
            )
        k = module.output_site
        plain = [core.clone() for core in module.cores.detach()]
        cores = [*plain[:k], module.output_core.detach().clone(), *plain[k:]]
        cores[0] = cores[0][:1].clone()
        cores[-1] = cores[-1][..., :1].clone()
        log_t = module.log_temperature
        return cls(
            cores=cores,
            label_site=k,
            readout=module.readout,
            log_temperature=0.0 if log_t is None else float(log_t.detach()),
            feature_map=module.feature_map if isinstance(module.feature_map, str) else "trig",
        )

    def to_module(self, **module_kwargs: Any) -> MPSClassifierModule:
        """An :class:`~tnml.nn.MPSClassifierModule` computing the same amplitudes.

        Every bond is zero-padded to the largest one, ``D_max``: a core ``(Dl, d, Dr)`` goes
        into the block ``[:Dl, :, :Dr]`` of a zero ``(D_max, d, D_max)`` core, so the first core
        fills row 0 and the last one column 0, which the module's ``e_0`` boundary vectors
        select. The padding is exact (zero rows and columns contribute nothing).
        ``exp(log_scale)`` is spread evenly over the cores.

        Parameters
        ----------
        **module_kwargs
            Passed to :class:`~tnml.nn.MPSClassifierModule` (e.g. ``contraction``,
            ``device``, ``dtype``, ``readout``, ``feature_map``, or a ``bond_dim >= D_max``).
            ``n_features``, ``n_classes``, ``feature_dim`` and ``output_site`` follow from the
            MPS and cannot be given.

        Returns
        -------
        MPSClassifierModule
            ``output_site = label_site``, ``bond_dim = D_max`` unless given.
        """
        fixed = {"n_features", "n_classes", "feature_dim", "output_site"} & set(module_kwargs)
        if fixed:
            raise InvalidInputError(
                f"{sorted(fixed)} follow from the MPS and cannot be passed to to_module"
            )
        kwargs: dict[str, Any] = {
            "feature_map": self.feature_map,
            "readout": self.readout,
            "dtype": self.dtype,
            "device": self.device,
            **module_kwargs,
        }
        cores = list(self.cores)
        label = cores[self.label_site]
        cores[self.label_site] = label.reshape(label.shape[0], -1, label.shape[-1])
        mps = MPS(cores, log_scale=self.log_scale)
        module = MPSClassifierModule.from_mps(mps, self.n_classes, self.label_site, **kwargs)
        if module.log_temperature is not None:
            with torch.no_grad():
                module.log_temperature.fill_(self.log_temperature)
        return module

    # ---- evaluation --------------------------------------------------------------------------

    def amplitudes(self, phi: Tensor) -> Tensor:
        """``f_l(x)`` by a plain left-to-right contraction (no rescaling: for short chains).

        Parameters
        ----------
        phi : Tensor, shape (B, N, d)
            Embedded inputs.

        Returns
        -------
        Tensor, shape (B, L)
            ``exp(log_scale) * <W_l | Phi(x)>``, in the promoted dtype of cores and ``phi``.
        """
        self._check_phi(phi)
        dtype = torch.promote_types(self.dtype, phi.dtype)
        v = torch.ones(phi.shape[0], 1, 1, dtype=dtype, device=phi.device)  # (B, L or 1, D)
        for i, core in enumerate(self.cores):
            core = core.to(dtype)
            p = phi[:, i].to(dtype)
            if i == self.label_site:
                v = torch.einsum("bka,aslr,bs->blr", v, core, p)
            else:
                v = torch.einsum("bla,asr,bs->blr", v, core, p)
        return v[..., 0] * math.exp(self.log_scale)

    def log_amplitudes(self, phi: Tensor) -> tuple[Tensor, Tensor]:
        """``f_l(x)`` as a unit-norm mantissa and a log-scale, safe for hundreds of sites.

        Parameters
        ----------
        phi : Tensor, shape (B, N, d)
            Embedded inputs.

        Returns
        -------
        mantissa : Tensor, shape (B, L)
            Unit norm per sample (zero where ``f`` vanishes).
        log_scale : Tensor, shape (B,)
            ``f(x) = mantissa * exp(log_scale)[:, None]``.
        """
        self._check_phi(phi)
        dtype = torch.promote_types(self.dtype, phi.dtype)
        sites = phi.transpose(0, 1).to(dtype)
        n = phi.shape[0]
        chunk = max(n, 1)
        left = torch.ones(n, 1, dtype=dtype, device=phi.device)
        left_log = torch.zeros(n, dtype=dtype, device=phi.device)
        right, right_log = left.clone(), left_log.clone()
        for i in range(self.label_site):
            left, left_log = _extend_left(left, left_log, self.cores[i], sites[i], chunk)
        for i in range(self.n_sites - 1, self.label_site, -1):
            right, right_log = _extend_right(right, right_log, self.cores[i], sites[i], chunk)
        core = self.cores[self.label_site].to(dtype)
        c = torch.einsum("ba,aslr,bs,br->bl", left, core, sites[self.label_site], right)
        norm = torch.linalg.vector_norm(c, dim=1).clamp_min(torch.finfo(dtype).tiny)
        return c / norm[:, None], left_log + right_log + norm.log() + self.log_scale

    # ---- canonical form ----------------------------------------------------------------------

    def canonicalize(self) -> LabelledMPS:
        """Mixed canonical form with the centre at ``label_site`` (a new model).

        QR from the left up to the label site and LQ from the right down to it
        (:func:`~tnml.tensor.decomp.split_tensor`); every pushed factor is divided by its norm,
        whose log goes to ``log_scale``, so the represented ``W`` is unchanged and long chains
        stay finite. Bonds larger than the physical limit ``min(prod d left, prod d right)``
        shrink to it.
        """
        return self.copy().canonicalize_()

    def canonicalize_(self) -> LabelledMPS:
        """In-place :meth:`canonicalize`; returns ``self``."""
        cores, c = self.cores, self.label_site
        log_scale = self.log_scale
        for i in range(c):
            res = split_tensor(cores[i], 2, method="qr")  # (Dl, d, k), (k, Dr)
            norm = _safe_norm(res.right)
            cores[i] = res.left
            cores[i + 1] = torch.tensordot(res.right / norm, cores[i + 1], dims=([1], [0]))
            log_scale += math.log(norm)
        for i in range(self.n_sites - 1, c, -1):
            res = split_tensor(cores[i], 1, method="lq")  # (Dl, k), (k, d, Dr)
            norm = _safe_norm(res.left)
            cores[i] = res.right
            last = cores[i - 1].ndim - 1
            cores[i - 1] = torch.tensordot(cores[i - 1], res.left / norm, dims=([last], [0]))
            log_scale += math.log(norm)
        self.log_scale = log_scale
        self.canonical = True
        return self

    # ---- checkpoints -------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Plain values and CPU tensors that :meth:`from_state_dict` turns back into the model."""
        state = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        state["cores"] = [core.detach().cpu() for core in self.cores]
        return state

    @classmethod
    def from_state_dict(
        cls, state: dict[str, Any], device: torch.device | str | None = None
    ) -> LabelledMPS:
        """Rebuild a model written by :meth:`state_dict` (cores moved to ``device``)."""
        state = dict(state)
        state["cores"] = [core.to(device) for core in state["cores"]]
        return cls(**state)

    def _check_phi(self, phi: Tensor) -> None:
        _check_phi("phi", phi, self.n_sites, self.phys_dim)


def _check_labelled_cores(cores: object, label_site: object) -> None:
    if isinstance(cores, Tensor) or not isinstance(cores, (list, tuple)) or not cores:
        raise InvalidInputError("cores must be a non-empty list of tensors")
    n = len(cores)
    if isinstance(label_site, bool) or not isinstance(label_site, int):
        raise InvalidInputError(f"label_site must be an int, got {label_site!r}")
    if not 0 <= label_site < n:
        raise InvalidInputError(f"label_site must lie in [0, {n}) for {n} cores, got {label_site}")
    for i, core in enumerate(cores):
        want = 4 if i == label_site else 3
        if not isinstance(core, Tensor) or core.ndim != want:
            shape = "(Dl, d, L, Dr)" if want == 4 else "(Dl, d, Dr)"
            got = tuple(core.shape) if isinstance(core, Tensor) else type(core).__name__
            raise InvalidInputError(f"cores[{i}] must be a tensor of shape {shape}, got {got}")
        if not core.is_floating_point():
            raise InvalidInputError(f"cores[{i}] must be real floating point, got {core.dtype}")
        if core.dtype != cores[0].dtype or core.device != cores[0].device:
            raise InvalidInputError("all cores must share one dtype and device")
        if core.shape[1] != cores[0].shape[1]:
            raise InvalidInputError(
                f"every core must have the same physical dimension {cores[0].shape[1]}, "
                f"cores[{i}] has {core.shape[1]}"
            )
        if i + 1 < n and core.shape[-1] != cores[i + 1].shape[0]:
            raise InvalidInputError(
                f"bond {i} does not match: cores[{i}] ends with {core.shape[-1]}, "
                f"cores[{i + 1}] starts with {cores[i + 1].shape[0]}"
            )
    if cores[0].shape[0] != 1 or cores[-1].shape[-1] != 1:
        raise InvalidInputError(
            "the end bonds must have dimension 1 (cores[0] of shape (1, d, ...), cores[-1] of "
            f"shape (..., 1)), got {tuple(cores[0].shape)} and {tuple(cores[-1].shape)}"
        )


def _check_phi(name: str, phi: object, n_sites: int, phys_dim: int) -> None:
    if not isinstance(phi, Tensor):
        raise InvalidInputError(f"{name} must be a torch.Tensor, got {type(phi).__name__}")
    if phi.ndim != 3 or phi.shape[1] != n_sites or phi.shape[2] != phys_dim:
        raise InvalidInputError(
            f"{name} must have shape (n, N={n_sites}, d={phys_dim}) (embedded inputs, see "
            f"tnml.features.embed), got {tuple(phi.shape)}"
        )
    if not phi.is_floating_point():
        raise InvalidInputError(f"{name} must hold floating-point values, got {phi.dtype}")


def _safe_norm(t: Tensor) -> float:
    """Frobenius norm as a float, clamped away from zero."""
    return max(float(torch.linalg.vector_norm(t)), torch.finfo(t.dtype).tiny)


# --------------------------------------------------------------------------------------------
# bond algebra: merge, split, environments
# --------------------------------------------------------------------------------------------


def _merge(left: Tensor, right: Tensor) -> Tensor:
    """Merge two neighbouring cores, one with the label, into ``(Dl, d, L, d, Dr)``."""
    if left.ndim == 4:  # label on the left core (Dl, d, L, D), right (D, d, Dr)
        return torch.einsum("aslb,btr->asltr", left, right)
    return torch.einsum("asb,btlr->asltr", left, right)  # label on the right core


def _split(
    bond: Tensor, direction: str, max_bond: int | None, cutoff: float, cutoff_mode: str
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Split ``(Dl, d, L, d, Dr)`` by truncated SVD so that the label moves ``direction``.

    ``"right"``: ``(Dl, d, k)`` left isometry and ``(k, d, L, Dr)`` holding the singular
    values; ``"left"``: ``(Dl, d, L, k)`` holding them and ``(k, d, Dr)`` right isometry.
    Returns the two cores, the discarded weight and the relative discarded weight.
    """
    options = {"method": "svd", "max_bond": max_bond, "cutoff": cutoff, "cutoff_mode": cutoff_mode}
    if direction == "right":
        res = split_tensor(bond, 2, absorb="right", **options)
        left, right = res.left, res.right.permute(0, 2, 1, 3).contiguous()
    else:
        res = split_tensor(bond, 3, absorb="left", **options)
        left, right = res.left, res.right
    return left, right, res.discarded_weight, res.relative_discarded_weight


def _renormalise(v: Tensor, log: Tensor) -> tuple[Tensor, Tensor]:
    norm = torch.linalg.vector_norm(v, dim=1).clamp_min(torch.finfo(v.dtype).tiny)
    return v / norm[:, None], log + norm.log()


def _extend_left(
    env: Tensor, log: Tensor, core: Tensor, p: Tensor, chunk: int
) -> tuple[Tensor, Tensor]:
    """Left environment of the next site: ``(n, Dl)`` -> ``(n, Dr)`` through ``core (Dl, d, Dr)``.

    ``p`` is ``(n, d)``; the result is renormalised per sample, its log-norm added to ``log``.
    """
    dl, d, dr = core.shape
    mat = core.to(env.dtype).reshape(dl * d, dr)
    out = env.new_empty(env.shape[0], dr)
    for s in range(0, env.shape[0], chunk):
        x = (env[s : s + chunk, :, None] * p[s : s + chunk, None, :]).reshape(-1, dl * d)
        out[s : s + chunk] = x @ mat
    return _renormalise(out, log)


def _extend_right(
    env: Tensor, log: Tensor, core: Tensor, p: Tensor, chunk: int
) -> tuple[Tensor, Tensor]:
    """Right environment of the previous site: ``(n, Dr)`` -> ``(n, Dl)`` through ``core``."""
    dl, d, dr = core.shape
    mat = core.to(env.dtype).reshape(dl, d * dr)
    out = env.new_empty(env.shape[0], dl)
    for s in range(0, env.shape[0], chunk):
        x = (p[s : s + chunk, :, None] * env[s : s + chunk, None, :]).reshape(-1, d * dr)
        out[s : s + chunk] = x @ mat.T
    return _renormalise(out, log)


def move_label(
    model: LabelledMPS,
    site: int,
    *,
    max_bond: int | None = None,
    cutoff: float | None = None,
    cutoff_mode: str = "rel",
) -> LabelledMPS:
    """Move the label index to ``site`` by SVD splits, without training (a new model).

    The model is first brought to canonical form if it is not; each move merges the label core
    with its neighbour and splits as a sweep does, so the canonical form is kept. Without
    truncation the amplitudes are unchanged (moving the label can multiply a bond by up to
    ``L``).

    Parameters
    ----------
    model : LabelledMPS
        The model.
    site : int
        The new label site, ``0 <= site < N``.
    max_bond : int, optional
        Truncate each new bond to at most this many singular values (None: no limit).
    cutoff : float, optional
        Singular-value cutoff (see :func:`tnml.tensor.decomp.truncation_rank`); the default
        drops only values at rounding level, ``max(m, n) * eps`` relative to the largest.
    cutoff_mode : {"rel", "abs", "sum2"}, default="rel"

    Returns
    -------
    LabelledMPS
        Canonical, with ``label_site == site``.
    """
    if isinstance(site, bool) or not isinstance(site, int) or not 0 <= site < model.n_sites:
        raise InvalidInputError(f"site must be an int in [0, {model.n_sites}), got {site!r}")
    check_truncation_options(max_bond, 0.0 if cutoff is None else cutoff, cutoff_mode)
    out = model.copy()
    if not out.canonical:
        out.canonicalize_()
    cores = out.cores
    while out.label_site != site:
        direction = "right" if site > out.label_site else "left"
        k = out.label_site if direction == "right" else out.label_site - 1
        bond = _merge(cores[k], cores[k + 1])
        cut = cutoff
        if cut is None:
            m = bond.shape[0] * bond.shape[1]
            cut = max(m, bond.numel() // m) * torch.finfo(bond.dtype).eps
        cores[k], cores[k + 1], _, _ = _split(bond, direction, max_bond, cut, cutoff_mode)
        out.label_site = k + 1 if direction == "right" else k
    return out


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
    "cross_entropy": _cross_entropy_loss,
}

# Default step size per loss: for "mse" in canonical form the Hessian in the bond tensor has
# largest eigenvalue <= 1 (unit-norm inputs, isometric environments), so lr < 2 is stable.
_DEFAULT_LR = {"mse": 1.0, "cross_entropy": 0.1}
SWEEP_LR_SCHEDULES = ("constant", "cosine")


def _predictions(c: Tensor, readout: str) -> Tensor:
    """Predicted classes from amplitudes (any positive per-sample factor): (B, L) -> (B,)."""
    return (c.abs() if readout == "born" else c).argmax(dim=1)


# --------------------------------------------------------------------------------------------
# distributed helpers
# --------------------------------------------------------------------------------------------


def shard_for_rank(n_samples: int, rank: int | None = None, world_size: int | None = None) -> slice:
    """The contiguous block of ``n_samples`` that process ``rank`` trains on.

    Blocks differ in size by at most one (as :meth:`torch.Tensor.tensor_split`). Defaults to
    this process's rank and world size (``0`` and ``1`` when not distributed).

    Examples
    --------
    >>> shard_for_rank(10, rank=1, world_size=3)
    slice(4, 7, None)
    """
    cur_rank, cur_world = distributed_context()
    rank = cur_rank if rank is None else rank
    world = cur_world if world_size is None else world_size
    if not 0 <= rank < world:
        raise InvalidInputError(f"rank must lie in [0, {world}), got {rank}")
    base, extra = divmod(int(n_samples), world)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (1 if rank < extra else 0))


def _all_reduce_(t: Tensor) -> Tensor:
    """Sum ``t`` over all processes in place (no-op when not distributed)."""
    if distributed_context()[1] > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def _broadcast_tensors(tensors: list[Tensor]) -> list[Tensor]:
    """Rank 0's tensors on every process (shapes and dtypes may be unknown elsewhere)."""
    rank, world = distributed_context()
    if world == 1:
        return tensors
    ref = tensors[0]
    meta = torch.zeros(1 + 8 * len(tensors), dtype=torch.int64, device=ref.device)
    if rank == 0:
        for j, t in enumerate(tensors):
            meta[1 + 8 * j] = t.ndim
            for axis, size in enumerate(t.shape):
                meta[2 + 8 * j + axis] = size
    dist.broadcast(meta, src=0)
    out = []
    for j, t in enumerate(tensors):
        ndim = int(meta[1 + 8 * j])
        shape = tuple(int(v) for v in meta[2 + 8 * j : 2 + 8 * j + ndim])
        buffer = t.contiguous() if rank == 0 else t.new_empty(shape)
        dist.broadcast(buffer, src=0)
        out.append(buffer)
    return out


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
        The starting model (not modified). Brought to canonical form if it is not. When the
        loss depends on the scale of ``W`` (``"mse"``, or the ``"linear"`` readout), its
        ``log_scale`` is absorbed into the label core so that the gradient step acts on ``W``
        itself; otherwise the label core is normalised (the readout ignores the scale).
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
        self.scale_matters = loss == "mse" or readout == "linear"
        if not model.canonical:
            model.canonicalize_()
            if not self.scale_matters:
                c = model.label_site
                norm = _safe_norm(model.cores[c])
                model.cores[c] = model.cores[c] / norm
                model.log_scale += math.log(norm)
        if self.scale_matters and model.log_scale != 0.0:
            factor = math.exp(model.log_scale)
            if not math.isfinite(factor):
                raise TrainingError(
                    f"the model's norm exp({model.log_scale:.1f}) is too large for the "
                    f"{loss!r} loss with readout {readout!r}; start from a normalised model "
                    "or use loss='cross_entropy' with the 'normalized' or 'born' readout"
                )
            c = model.label_site
            model.cores[c] = model.cores[c] * factor
            model.log_scale = 0.0
        self.model = _broadcast_model(model)

        n, n_sites = phi.shape[0], model.n_sites
        self.n_local = n
        self.n_total = int(all_reduce_sum([float(n)], phi.device)[0])
        if self.n_total == 0:
            raise InvalidInputError("phi holds no samples")
        self.env_dtype = env_dtype
        self._phi = phi.transpose(0, 1).to(env_dtype).contiguous()  # (N, n, d)
        self._y = y
        self.left_envs: list[Tensor | None] = [None] * n_sites
        self.left_logs: list[Tensor | None] = [None] * n_sites
        self.right_envs: list[Tensor | None] = [None] * n_sites
        self.right_logs: list[Tensor | None] = [None] * n_sites
        self._build_environments()

    # ---- environments ------------------------------------------------------------------------

    def _build_environments(self) -> None:
        """Compute the valid environments once, from the ends towards the label site."""
        n, c, last = self.n_local, self.model.label_site, self.model.n_sites - 1
        ones = torch.ones(n, 1, dtype=self.env_dtype, device=self._phi.device)
        zeros = torch.zeros(n, dtype=self.env_dtype, device=self._phi.device)
        self.left_envs[0], self.left_logs[0] = ones, zeros
        self.right_envs[last], self.right_logs[last] = ones.clone(), zeros.clone()
        for i in range(c):
            self._push_left(i)
        for i in range(last, c, -1):
            self._push_right(i)

    def _push_left(self, site: int) -> None:
        """Left environment of ``site + 1`` from that of ``site`` and core ``site``."""
        env, log = self.left_envs[site], self.left_logs[site]
        assert env is not None and log is not None
        self.left_envs[site + 1], self.left_logs[site + 1] = _extend_left(
            env, log, self.model.cores[site], self._phi[site], self.chunk_size
        )

    def _push_right(self, site: int) -> None:
        """Right environment of ``site - 1`` from that of ``site`` and core ``site``."""
        env, log = self.right_envs[site], self.right_logs[site]
        assert env is not None and log is not None
        self.right_envs[site - 1], self.right_logs[site - 1] = _extend_right(
            env, log, self.model.cores[site], self._phi[site], self.chunk_size
        )

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
        envs, logs = (
            (self.left_envs, self.left_logs)
            if side == "left"
            else (self.right_envs, self.right_logs)
        )
        env, log = envs[site], logs[site]
        if env is None or log is None:
            raise InvalidInputError(
                f"the {side} environment of site {site} is not valid with the label on site "
                f"{self.model.label_site}"
            )
        return env * torch.exp(log)[:, None]

    # ---- one bond ----------------------------------------------------------------------------

    def _loss_and_gradient(
        self, bond: Tensor, k: int, need_grad: bool, index: Tensor | None = None
    ) -> tuple[float, float, Tensor | None]:
        """Summed loss, number correct and summed gradient (in ``bond``'s shape) of this shard,
        or of its samples at ``index`` (a mini-batch).

        For sample ``i`` the projected input is ``X_i = L_k[i] (x) phi_k[i]`` (``Dl d``) and
        ``Y_i = phi_{k+1}[i] (x) R_{k+1}[i]`` (``d Dr``); with ``B`` as the matrix
        ``(Dl d, L d Dr)`` the amplitudes are ``c_il = X_i B_l Y_i`` and the gradient is
        ``sum_i X_i^T (g_i (x) Y_i)`` with ``g = dloss/dc``. No ``(Dl, d, L, d, Dr)`` tensor per
        sample is formed.
        """
        dl, d, n_labels, _, dr = bond.shape
        mat = bond.to(self.env_dtype).reshape(dl * d, n_labels * d * dr)
        left, right = self.left_envs[k], self.right_envs[k + 1]
        left_log, right_log = self.left_logs[k], self.right_logs[k + 1]
        assert left is not None and right is not None
        assert left_log is not None and right_log is not None
        log_scale = left_log + right_log + self.model.log_scale
        p1, p2 = self._phi[k], self._phi[k + 1]
        loss_fn = SWEEP_LOSSES[self.loss]
        grad = torch.zeros_like(mat) if need_grad else None
        loss_sum, correct = 0.0, 0.0
        count = self.n_local if index is None else index.numel()
        for s in range(0, count, self.chunk_size):
            sl: slice | Tensor = (
                slice(s, s + self.chunk_size) if index is None else index[s : s + self.chunk_size]
            )
            x = (left[sl, :, None] * p1[sl, None, :]).reshape(-1, dl * d)
            y_vec = (p2[sl, :, None] * right[sl, None, :]).reshape(-1, d * dr)
            t = (x @ mat).reshape(-1, n_labels, d * dr)
            c = torch.bmm(t, y_vec.unsqueeze(2)).squeeze(2)  # (chunk, L)
            target = self._y[sl]
            with torch.enable_grad():
                # the loss in float64: exp(log_scale) of an mse amplitude may overflow float32
                c_leaf = c.detach().double().requires_grad_(need_grad)
                value = loss_fn(
                    c_leaf, log_scale[sl].double(), target, self.readout, self.model.log_temperature
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
            Divide the bond tensor by its norm after every step.
        max_grad_norm : float, optional
            Scale the gradient of the mean loss down to at most this norm before each step.
        batch_size : int, optional
            None: each step uses every sample (full-batch gradient descent). Otherwise each of
            the ``steps_per_bond`` passes shuffles the samples and takes one step per
            mini-batch of about ``batch_size`` samples (over all processes), so a pass costs
            what one full-batch step costs but moves the bond ``n / batch_size`` times.
        batch_seed : int, default=0
            Seeds the mini-batch shuffle of this update.

        Returns
        -------
        dict
            ``bond`` (index of the left site), ``direction``, ``bond_dim`` (new dimension),
            ``max_bond_dim`` (largest bond of the model now), ``loss`` and ``accuracy`` (mean
            over all samples, evaluated before the last gradient step; with ``batch_size``,
            over the last pass, each mini-batch before its step), ``discarded_weight``
            (sum of squared discarded singular values) and ``truncation_error`` (the same
            relative to ``||B||^2``).
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
        model, c = self.model, self.model.label_site
        if direction == "right" and c == model.n_sites - 1:
            raise InvalidInputError("the label is on the last site: it cannot move right")
        if direction == "left" and c == 0:
            raise InvalidInputError("the label is on site 0: it cannot move left")
        k = c if direction == "right" else c - 1
        bond = _merge(model.cores[k], model.cores[k + 1])
        n_batches = 1 if batch_size is None or lr == 0 else -(-self.n_total // batch_size)
        generator = torch.Generator().manual_seed(int(batch_seed))
        loss_sum = correct = 0.0
        for _ in range(steps_per_bond if lr > 0 else 1):
            if n_batches == 1:
                batches: list[Tensor | None] = [None]
            else:  # the same number of batches on every process keeps the all-reduces paired
                order = torch.randperm(self.n_local, generator=generator).to(bond.device)
                batches = list(order.tensor_split(n_batches))
            loss_sum = correct = 0.0
            for index in batches:
                batch_loss, batch_correct, grad = self._loss_and_gradient(
                    bond, k, need_grad=lr > 0, index=index
                )
                n_local = self.n_local if index is None else index.numel()
                if grad is not None:
                    _all_reduce_(grad)
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
                    grad = grad / seen
                    if max_grad_norm is not None:
                        grad = grad * min(1.0, max_grad_norm / _safe_norm(grad))
                    bond = bond - lr * grad
                    if normalize:
                        bond = bond / _safe_norm(bond)
        if self.rank == 0:
            parts = list(_split(bond, direction, max_bond, cutoff, cutoff_mode))
        else:  # placeholders: rank 0's factors arrive by broadcast, so all ranks stay identical
            parts = [bond.new_empty(0), bond.new_empty(0), bond.new_zeros(()), bond.new_zeros(())]
        left, right, discarded, relative = _broadcast_tensors(parts)
        model.cores[k], model.cores[k + 1] = left, right
        if direction == "right":
            model.label_site = k + 1
            self._push_left(k)
            self.right_envs[k] = self.right_logs[k] = None
        else:
            model.label_site = k
            self._push_right(k + 1)
            self.left_envs[k + 1] = self.left_logs[k + 1] = None
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

    def training_metrics(self) -> tuple[float, float]:
        """Mean loss and accuracy on all training samples, from the environments at the label.

        Exact for the current model (``L_c . A_c(phi_c) . R_c``), with no pass over the chain.
        """
        c = self.model.label_site
        left, right = self.left_envs[c], self.right_envs[c]
        left_log, right_log = self.left_logs[c], self.right_logs[c]
        assert left is not None and right is not None
        assert left_log is not None and right_log is not None
        core = self.model.cores[c].to(self.env_dtype)
        loss_sum, correct = 0.0, 0.0
        loss_fn = SWEEP_LOSSES[self.loss]
        for s in range(0, self.n_local, self.chunk_size):
            sl = slice(s, s + self.chunk_size)
            amp = torch.einsum("ba,aslr,bs,br->bl", left[sl], core, self._phi[c][sl], right[sl])
            log_scale = left_log[sl] + right_log[sl] + self.model.log_scale
            target = self._y[sl]
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
        loss_sum, correct = all_reduce_sum([loss_sum, correct], core.device)
        return loss_sum / self.n_total, correct / self.n_total

    def fit_temperature(self, n_steps: int = 10) -> float:
        """Set the ``"normalized"`` readout's temperature to minimise the training cross-entropy.

        The logits are ``t * u`` with ``u = f / ||f||`` fixed by the cores, so the mean
        cross-entropy is convex in ``t``; a few safeguarded Newton steps on ``t`` (sums over
        chunks and processes all-reduced) find its minimum. Uses the environments at the
        label, like :meth:`training_metrics`. Returns the new temperature.
        """
        c = self.model.label_site
        left, right = self.left_envs[c], self.right_envs[c]
        assert left is not None and right is not None
        core = self.model.cores[c].to(self.env_dtype)
        units = []
        for s in range(0, self.n_local, self.chunk_size):
            sl = slice(s, s + self.chunk_size)
            amp = torch.einsum("ba,aslr,bs,br->bl", left[sl], core, self._phi[c][sl], right[sl])
            amp = amp.double()
            units.append(amp / torch.linalg.vector_norm(amp, dim=1, keepdim=True).clamp_min(1e-300))
        u = torch.cat(units)
        u_target = u.gather(1, self._y.view(-1, 1)).squeeze(1)
        t = math.exp(self.model.log_temperature)
        for _ in range(n_steps):
            p = torch.softmax(t * u, dim=1)
            mean_u = (p * u).sum(1)
            grad_sum = float((mean_u - u_target).sum())
            curv_sum = float(((p * u.square()).sum(1) - mean_u.square()).sum())
            grad, curv = all_reduce_sum([grad_sum, curv_sum], core.device)
            if curv <= 0:
                break
            t = min(max(t - grad / curv, t / 4), 4 * t)
        self.model.log_temperature = math.log(t)
        return t

    def evaluate(self, phi: Tensor, y: Tensor) -> tuple[float, float]:
        """Mean loss and accuracy of the current model on ``(phi (n, N, d), y (n,))``.

        Under ``torch.distributed`` each process passes its own shard; the sums are
        all-reduced, so every process returns the metrics of the whole set.
        """
        _check_phi("phi_val", phi, self.model.n_sites, self.model.phys_dim)
        _check_labels("y_val", y, phi.shape[0], self.model.n_classes)
        loss_fn = SWEEP_LOSSES[self.loss]
        loss_sum, correct = 0.0, 0.0
        for s in range(0, phi.shape[0], self.chunk_size):
            mantissa, log_scale = self.model.log_amplitudes(phi[s : s + self.chunk_size])
            target = y[s : s + self.chunk_size]
            loss_sum += float(
                loss_fn(
                    mantissa.double(),
                    log_scale.double(),
                    target,
                    self.readout,
                    self.model.log_temperature,
                )
            )
            correct += float((_predictions(mantissa, self.readout) == target).sum())
        loss_sum, correct, count = all_reduce_sum(
            [loss_sum, correct, float(phi.shape[0])], phi.device
        )
        return loss_sum / max(count, 1.0), correct / max(count, 1.0)


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


# --------------------------------------------------------------------------------------------
# the training loop
# --------------------------------------------------------------------------------------------


def _sweep_moves(n_sites: int, start: int) -> list[str]:
    """The moves of one sweep: from ``start`` to the right end, then to the left end."""
    return ["right"] * (n_sites - 1 - start) + ["left"] * (n_sites - 1)


def train_sweep(
    model: LabelledMPS,
    phi: Tensor,
    y: Tensor,
    *,
    n_sweeps: int = 2,
    max_bond: int = 32,
    cutoff: float = 1e-10,
    cutoff_mode: str = "rel",
    loss: str = "mse",
    readout: str | None = None,
    temperature: float | None = None,
    learn_temperature: bool | None = None,
    lr: float | None = None,
    steps_per_bond: int = 1,
    batch_size: int | None = None,
    seed: int = 0,
    lr_schedule: str = "constant",
    normalize: bool | None = None,
    max_grad_norm: float | None = None,
    phi_val: Tensor | None = None,
    y_val: Tensor | None = None,
    select_by: str = "loss",
    env_dtype: torch.dtype = torch.float32,
    memory_budget: int = 4 * _GIB,
    chunk_size: int | None = None,
    callback: Callback | None = None,
    progress: bool = False,
    checkpoint_path: str | os.PathLike[str] | None = None,
    resume: bool = False,
) -> FitResult:
    """Train an MPS classifier by two-site sweeps with adaptive bond dimension.

    Each sweep moves the label from where it is to the right end and back to site 0, one bond
    update per step (:meth:`BondSweeper.update_bond`): ``steps_per_bond`` gradient steps on
    the merged bond tensor ``(Dl, d, L, d, Dr)``, then a truncated SVD that keeps at most
    ``max_bond`` singular values above ``cutoff``. Starting from a small bond (e.g. a module
    with ``bond_dim=2``) the bonds grow where the data need it.

    Parameters
    ----------
    model : LabelledMPS
        Starting model (not modified), e.g. ``LabelledMPS.from_module(module)``.
    phi : Tensor, shape (n, N, d)
        Embedded training inputs (``tnml.features.embed``); under ``torch.distributed`` this
        process's own shard (:func:`shard_for_rank`).
    y : Tensor, shape (n,), int64
        Class indices in ``[0, L)`` (the same shard).
    n_sweeps : int, default=2
        Number of sweeps.
    max_bond : int, default=32
        Largest bond dimension the splits keep.
    cutoff : float, default=1e-10
        Singular values below ``cutoff`` (relative to the largest, see ``cutoff_mode``) are
        dropped.
    cutoff_mode : {"rel", "abs", "sum2"}, default="rel"
    loss : {"mse", "cross_entropy"}, default="mse"
        ``"mse"``: ``1/2 sum_l (f_l - delta_{l,y})^2`` averaged over samples (the paper's);
        ``"cross_entropy"``: softmax cross-entropy on the readout logits.
    readout : {"normalized", "born", "linear"}, optional
        Default ``model.readout``.
    temperature : float, optional
        Temperature of the ``"normalized"`` readout; default ``exp(model.log_temperature)``.
        Stored in the returned model.
    learn_temperature : bool, optional
        After every sweep, set the temperature to the value that minimises the training
        cross-entropy (:meth:`BondSweeper.fit_temperature`). Default: True for the
        cross-entropy loss with the ``"normalized"`` readout when ``temperature`` is not
        given (with a fixed temperature of 1 the logits cannot leave [-1, 1]).
    lr : float, optional
        Gradient step on the mean loss; default 1.0 for ``"mse"`` (stable below 2 in
        canonical form) and 0.1 for ``"cross_entropy"`` (with the bond tensor normalised).
    steps_per_bond : int, default=1
        Gradient steps (full batch) or passes over the samples (``batch_size``) per bond.
    batch_size : int, optional
        Mini-batch size of the bond updates (:meth:`BondSweeper.update_bond`); None: full
        batch. On MNIST, one full-batch step per bond leaves the bond tensors far from their
        optimum; a pass of mini-batch steps costs the same and moves them much further.
    lr_schedule : {"constant", "cosine"}, default="constant"
        ``"cosine"`` anneals the step from ``lr`` to 0 over the run's bond updates,
        ``lr (1 + cos(pi m / M)) / 2`` at update ``m`` of ``M``.
    seed : int, default=0
        Seeds the mini-batch shuffles (each bond update gets its own seed from it and its
        position in the run, so a resumed run shuffles as an uninterrupted one).
    normalize : bool, optional
        Normalise the bond tensor after every step; default True when the loss ignores the
        scale of ``W`` (cross-entropy with the ``"normalized"`` or ``"born"`` readout).
    max_grad_norm : float, optional
        Clip the norm of the bond gradient (of the mean loss) to this value before each step;
        helps the ``"born"`` readout, whose gradient grows like ``1 / f_l`` for small ``f_l``.
    phi_val, y_val : Tensor, optional
        Validation data (this process's shard), evaluated after every sweep; the model of
        the sweep with the lowest validation loss is the one returned (as the autodiff
        trainer keeps its best epoch): each label move across a bond truncated to
        ``max_bond`` loses a little, so a later sweep can be worse.
    select_by : {"loss", "accuracy"}, default="loss"
        What "best" means with validation data (see
        :func:`tnml.train.autodiff.train_classifier`).
    env_dtype : torch.dtype, default=torch.float32
        Dtype of the stored environments (``torch.float64`` for more precision).
    memory_budget : int, default=4 GiB
        Bytes the environments (``n * (N + 1) * max(max_bond, D) * itemsize``) and the
        per-chunk intermediates may use; more raises :class:`InvalidInputError`.
    chunk_size : int, optional
        Samples projected at once (default: from the budget, at most 4096).
    callback : callable, optional
        ``callback(state, metrics)`` after every bond update, with ``state`` holding
        ``sweep``, ``move``, ``model`` and ``sweeper`` and ``metrics`` the history entry;
        returning True stops (a checkpoint is written first).
    progress : bool, default=False
        Show a progress bar: sweep, bond, largest bond dimension, loss, accuracy and the last
        validation accuracy.
    checkpoint_path : path, optional
        Written atomically after every sweep, when a callback stops, and between two bond
        updates on Ctrl-C (then ``KeyboardInterrupt`` is re-raised).
    resume : bool, default=False
        Continue from ``checkpoint_path`` (the model there replaces ``model``); an interrupted
        and resumed run equals an uninterrupted one.

    Returns
    -------
    FitResult
        ``model``: the trained :class:`LabelledMPS` (canonical, label where the last sweep
        left it: site 0; with validation data, the model at the end of the best sweep);
        ``history``: one entry a sweep (:data:`tnml.train.loop.HISTORY_KEYS` and
        ``max_bond_dim``; the training metrics are exact for the model at the end of the
        sweep); ``steps``: one entry a bond update (``epoch``, ``bond``, ``direction``,
        ``bond_dim``, ``max_bond_dim``, ``loss``, ``accuracy``, ``discarded_weight``,
        ``truncation_error``, ``lr``, ``seconds``; see :meth:`BondSweeper.update_bond`).

    Raises
    ------
    InvalidInputError
        Bad arguments, shapes or labels, or the environments need more than ``memory_budget``.
    TrainingError
        The loss became NaN or infinite.

    Examples
    --------
    >>> import torch
    >>> from tnml.features import embed
    >>> from tnml.nn import MPSClassifierModule
    >>> x = torch.rand(100, 8)
    >>> y = (x[:, 0] > 0.5).long()
    >>> start = LabelledMPS.from_module(MPSClassifierModule(8, 2, bond_dim=2))
    >>> result = train_sweep(start, embed(x), y, n_sweeps=1, max_bond=4)
    >>> result.model.label_site, result.model.max_bond_dim <= 4
    (0, True)
    """
    check_int("n_sweeps", n_sweeps, 1)
    check_truncation_options(max_bond, cutoff, cutoff_mode)
    if max_bond is None:
        raise InvalidInputError("max_bond must be a positive int")
    if loss not in SWEEP_LOSSES:
        raise InvalidInputError(f"loss must be one of {sorted(SWEEP_LOSSES)}, got {loss!r}")
    lr = _DEFAULT_LR[loss] if lr is None else lr
    if not (lr >= 0 and math.isfinite(lr)):
        raise InvalidInputError(f"lr must be a finite number >= 0, got {lr!r}")
    check_int("steps_per_bond", steps_per_bond, 1)
    if batch_size is not None:
        check_int("batch_size", batch_size, 1)
    if lr_schedule not in SWEEP_LR_SCHEDULES:
        raise InvalidInputError(
            f"lr_schedule must be one of {SWEEP_LR_SCHEDULES} for sweeps, got {lr_schedule!r}"
        )
    if (phi_val is None) != (y_val is None):
        raise InvalidInputError("give both phi_val and y_val, or neither")
    if select_by not in SELECTIONS:
        raise InvalidInputError(f"select_by must be one of {SELECTIONS}, got {select_by!r}")
    if resume and checkpoint_path is None:
        raise InvalidInputError("resume=True needs checkpoint_path")
    if not isinstance(model, LabelledMPS):
        raise InvalidInputError(f"model must be a LabelledMPS, got {type(model).__name__}")

    rule = ClassifierSweepRule(
        model,
        phi,
        y,
        n_sweeps=n_sweeps,
        loss=loss,
        readout=readout,
        temperature=temperature,
        learn_temperature=learn_temperature,
        lr=lr,
        lr_schedule=lr_schedule,
        seed=seed,
        phi_val=phi_val,
        y_val=y_val,
        env_dtype=env_dtype,
        memory_budget=memory_budget,
        chunk_size=chunk_size,
        update_options={
            "steps_per_bond": steps_per_bond,
            "max_bond": max_bond,
            "cutoff": cutoff,
            "cutoff_mode": cutoff_mode,
            "normalize": normalize,
            "max_grad_norm": max_grad_norm,
            "batch_size": batch_size,
        },
    )
    return fit_loop(
        rule,
        epochs=n_sweeps,
        select_by=select_by,
        step_callback=callback,
        progress=progress,
        checkpoint_path=checkpoint_path,
        resume=resume,
    )


class ClassifierSweepRule(UpdateRule):
    """Two-site sweeps of a :class:`LabelledMPS` (see :func:`train_sweep`): a step is one bond
    update, an epoch one sweep (from where the label is to the right end and back to 0)."""

    name = "sweep"
    unit = "sweep"
    log_extras: ClassVar[dict[str, str]] = {"max_bond_dim": "D"}

    def __init__(
        self,
        model: LabelledMPS,
        phi: Tensor,
        y: Tensor,
        *,
        n_sweeps: int,
        loss: str,
        readout: str | None,
        temperature: float | None,
        learn_temperature: bool | None,
        lr: float,
        lr_schedule: str,
        seed: int,
        phi_val: Tensor | None,
        y_val: Tensor | None,
        env_dtype: torch.dtype,
        memory_budget: int,
        chunk_size: int | None,
        update_options: dict[str, Any],
    ) -> None:
        self.model, self.phi, self.y, self.phi_val, self.y_val = model, phi, y, phi_val, y_val
        self.sweeper_options = {
            "loss": loss,
            "readout": readout,
            "temperature": temperature,
            "max_bond": update_options["max_bond"],
            "env_dtype": env_dtype,
            "memory_budget": memory_budget,
            "chunk_size": chunk_size,
        }
        self.loss, self.temperature, self.learn_temperature = loss, temperature, learn_temperature
        self.lr, self.lr_schedule, self.seed = lr, lr_schedule, int(seed)
        self.update_options = dict(update_options)
        self.device = phi.device
        self.sweeper: BondSweeper | None = None
        self.final: LabelledMPS | None = None
        n_sites = model.n_sites
        self.sweep_start_site = model.label_site
        self.moves_done = 0
        # the first sweep starts wherever the label is; later sweeps cover every bond twice
        self.total_moves = len(_sweep_moves(n_sites, self.sweep_start_site)) + (
            n_sweeps - 1
        ) * 2 * (n_sites - 1)
        self.last_val_accuracy = math.nan

    def _ready_sweeper(self) -> BondSweeper:
        if self.sweeper is None:
            self.sweeper = BondSweeper(self.model, self.phi, self.y, **self.sweeper_options)
            if self.update_options["normalize"] is None:
                self.update_options["normalize"] = not self.sweeper.scale_matters
            if self.learn_temperature is None:
                self.learn_temperature = (
                    self.temperature is None
                    and self.sweeper.readout == "normalized"
                    and self.loss == "cross_entropy"
                )
        return self.sweeper

    def steps_in_epoch(self, epoch: int) -> int:
        return len(_sweep_moves(self.model.n_sites, self.sweep_start_site))

    def begin_epoch(self, epoch: int, first_step: int) -> int:
        sweeper = self._ready_sweeper()
        if first_step == 0:
            self.sweep_start_site = sweeper.model.label_site
        self.moves = _sweep_moves(sweeper.model.n_sites, self.sweep_start_site)
        return len(self.moves)

    def step(self, epoch: int, index: int) -> tuple[str, dict[str, Any]]:
        sweeper = self._ready_sweeper()
        tick = time.perf_counter()
        options = {**self.update_options, "lr": self._lr_now()}
        batch_seed = self.seed * 1_000_003 + self.moves_done
        record = sweeper.update_bond(self.moves[index], batch_seed=batch_seed, **options)
        record["lr"] = options["lr"]
        record["seconds"] = time.perf_counter() - tick
        self.moves_done += 1
        arrow = "->" if record["direction"] == "right" else "<-"
        val = (
            "" if math.isnan(self.last_val_accuracy) else f"  val_acc {self.last_val_accuracy:.4f}"
        )
        text = (
            f"bond {record['bond']}{arrow}{record['bond'] + 1}  D {record['max_bond_dim']}  "
            f"loss {record['loss']:.4f}  acc {record['accuracy']:.4f}{val}"
        )
        return text, record

    def end_epoch(self, epoch: int) -> dict[str, Any]:
        sweeper = self._ready_sweeper()
        if self.learn_temperature:
            sweeper.fit_temperature()
        train_loss, train_accuracy = sweeper.training_metrics()
        val_loss = val_accuracy = math.nan
        if self.phi_val is not None and self.y_val is not None:
            val_loss, val_accuracy = sweeper.evaluate(self.phi_val, self.y_val)
            self.last_val_accuracy = val_accuracy
        return {
            "train_loss": train_loss,
            "train_accuracy": train_accuracy,
            "val_loss": val_loss,
            "val_accuracy": val_accuracy,
            "lr": self._lr_now(),
            "max_bond_dim": sweeper.model.max_bond_dim,
        }

    def _lr_now(self) -> float:
        """The step of the next bond update (``"cosine"``: annealed over the run's updates)."""
        if self.lr_schedule != "cosine":
            return self.lr
        fraction = min(self.moves_done / self.total_moves, 1.0)
        return self.lr * 0.5 * (1 + math.cos(math.pi * fraction))

    def state_dict(self) -> dict[str, Any]:
        model = self.sweeper.model if self.sweeper is not None else self.model
        return {
            "model": model.state_dict(),
            "sweep_start_site": self.sweep_start_site,
            "moves_done": self.moves_done,
            "total_moves": self.total_moves,
            "last_val_accuracy": self.last_val_accuracy,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model = LabelledMPS.from_state_dict(state["model"], device=self.model.device)
        self.sweeper = None
        self.sweep_start_site = state["sweep_start_site"]
        self.moves_done = state["moves_done"]
        self.total_moves = state["total_moves"]
        self.last_val_accuracy = state["last_val_accuracy"]

    def weights(self) -> dict[str, Any]:
        return self._ready_sweeper().model.state_dict()

    def load_weights(self, weights: dict[str, Any]) -> None:
        self.final = LabelledMPS.from_state_dict(weights, device=self._ready_sweeper().model.device)

    def callback_info(self) -> dict[str, Any]:
        sweeper = self._ready_sweeper()
        return {"model": sweeper.model, "sweeper": sweeper}

    def result(self) -> LabelledMPS:
        if self.final is not None:
            return self.final
        return self._ready_sweeper().model.copy()
