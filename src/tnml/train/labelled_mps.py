"""The state of sweep training: an MPS classifier with its label index on one core.

:class:`LabelledMPS` (cores ``(Dl, d, Dr)``, the label core ``(Dl, d, L, Dr)``), conversion
to and from :class:`~tnml.nn.MPSClassifierModule`, and the bond algebra the sweeps use:
merging two cores into a bond tensor ``(Dl, d, L, d, Dr)``, splitting it by truncated SVD,
and :func:`move_label`. Conventions: :mod:`tnml.train.sweep`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from tnml.exceptions import InvalidInputError
from tnml.nn.mps import (
    READOUTS,
    MPSClassifierModule,
)
from tnml.tensor.decomp import check_truncation_options, split_tensor
from tnml.tensor.environments import extend_left, extend_right, normalized_rows
from tnml.tensor.mps import MPS

__all__ = ["LabelledMPS", "move_label"]

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

    def projected_amplitudes(self, phi: Tensor) -> tuple[Tensor, Tensor]:
        """``f_l(x)`` as the amplitude of ``x`` projected into unit-norm environments at the
        label site, and a log-scale.

        Parameters
        ----------
        phi : Tensor, shape (B, N, d)
            Embedded inputs.

        Returns
        -------
        amplitude : Tensor, shape (B, L)
            ``L_c(x) . A_c(phi_c) . R_c(x)`` with the left and right environments of each
            sample scaled to norm 1 (what the sweeps' losses see at the label).
        log_scale : Tensor, shape (B,)
            ``f(x) = amplitude * exp(log_scale)[:, None]``.
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
        return c, left_log + right_log + self.log_scale

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
        c, log_scale = self.projected_amplitudes(phi)
        norm = torch.linalg.vector_norm(c, dim=1).clamp_min(torch.finfo(c.dtype).tiny)
        return c / norm[:, None], log_scale + norm.log()

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


def _extend_left(
    env: Tensor, log: Tensor, core: Tensor, p: Tensor, chunk: int
) -> tuple[Tensor, Tensor]:
    """Left environment of the next site, ``(n, Dl)`` -> ``(n, Dr)`` through ``core``
    ``(Dl, d, Dr)``, renormalised per sample; its log-norm is added to ``log``."""
    rows, log_norm = normalized_rows(extend_left(env, core, p, chunk=chunk))
    return rows, log + log_norm


def _extend_right(
    env: Tensor, log: Tensor, core: Tensor, p: Tensor, chunk: int
) -> tuple[Tensor, Tensor]:
    """Right environment of the previous site: ``(n, Dr)`` -> ``(n, Dl)`` through ``core``."""
    rows, log_norm = normalized_rows(extend_right(env, core, p, chunk=chunk))
    return rows, log + log_norm


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
