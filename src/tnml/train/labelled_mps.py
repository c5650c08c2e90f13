"""The state of sweep training: an MPS classifier with its label index on one core.

:class:`LabelledMPS` is a :class:`~tnml.tensor.MPS` whose site ``label_site`` carries the label
index fused with its physical index (dimension ``d * L``, the label fastest: the
representation :meth:`tnml.nn.MPSClassifierModule.from_mps` takes), so every MPS operation
applies to it. Here: conversion to and from :class:`~tnml.nn.MPSClassifierModule`, the
amplitudes, and the bond algebra the sweeps use: merging two cores into a bond tensor
``(Dl, d, L, d, Dr)``, splitting it by truncated SVD, and :func:`move_label`. Conventions:
:mod:`tnml.train.sweep`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from tnml.exceptions import InvalidInputError
from tnml.nn.mps import READOUTS, MPSClassifierModule
from tnml.tensor.decomp import check_truncation_options, split_tensor, split_tensor_in_metric
from tnml.tensor.environments import EnvironmentCache
from tnml.tensor.mps import MPS, mps_canonicalize

__all__ = ["LabelledMPS", "move_label"]

# --------------------------------------------------------------------------------------------
# the model: an MPS with a label index on one core
# --------------------------------------------------------------------------------------------


class LabelledMPS(MPS):
    """An open-boundary MPS classifier with the label index on one core.

    Represents ``W = exp(log_scale) * contraction(cores)`` and the classifier
    ``f_l(x) = <W_l | Phi(x)>``: an :class:`~tnml.tensor.MPS` whose site ``label_site`` has
    physical dimension ``d * L`` (index ``s * L + l``) and every other site ``d``.

    Parameters
    ----------
    cores : sequence of Tensor
        ``N`` real cores in site order, ``(Dl, d, Dr)``, with ``cores[label_site]`` either
        ``(Dl, d, L, Dr)`` or already fused to ``(Dl, d * L, Dr)`` (then ``n_classes`` is
        needed). ``cores[0]`` has ``Dl = 1`` and ``cores[-1]`` has ``Dr = 1``; internal bond
        dimensions may differ from bond to bond.
    label_site : int
        The site carrying the label index.
    n_classes : int, optional
        ``L``; read from a 4-dim label core.
    log_scale : float or Tensor, default=0.0
        Log of an overall positive factor of ``W``.
    readout : {"normalized", "born", "linear"}, default="normalized"
        The readout of the module this model becomes (see
        :class:`~tnml.nn.MPSClassifierModule`); also the logits of the cross-entropy loss.
    log_temperature : float, default=0.0
        ``log t`` of the ``"normalized"`` readout.
    feature_map : str, default="trig"
        The feature map the inputs were embedded with (kept for :meth:`to_module`).

    Attributes
    ----------
    cores, log_scale, center
        As for :class:`~tnml.tensor.MPS`; ``center == label_site`` (:attr:`canonical`) while
        the sweeps run, the label core carrying the norm the training gives it.
    label_site, n_classes, readout, log_temperature, feature_map
        As given.
    """

    label_site: int
    n_classes: int
    readout: str
    log_temperature: float
    feature_map: str

    def __init__(
        self,
        cores: Sequence[Tensor],
        label_site: int,
        *,
        n_classes: int | None = None,
        log_scale: float | Tensor = 0.0,
        readout: str = "normalized",
        log_temperature: float = 0.0,
        feature_map: str = "trig",
    ) -> None:
        cores, n_classes = _fused_cores(cores, label_site, n_classes)
        super().__init__(cores, log_scale)
        if not self.dtype.is_floating_point:
            raise InvalidInputError(f"cores must be real floating point, got {self.dtype}")
        if not bool(torch.isfinite(self.log_scale)):
            raise InvalidInputError(f"log_scale must be finite, got {float(self.log_scale)}")
        if readout not in READOUTS:
            raise InvalidInputError(f"readout must be one of {READOUTS}, got {readout!r}")
        self.label_site = label_site
        self.n_classes = n_classes
        self.readout = readout
        self.log_temperature = float(log_temperature)
        self.feature_map = feature_map
        if self.phys_dims[label_site] % n_classes:
            raise InvalidInputError(
                f"the label core's physical dimension {self.phys_dims[label_site]} is not "
                f"d * n_classes for n_classes={n_classes}"
            )
        dims = set(self.phys_dims[:label_site] + self.phys_dims[label_site + 1 :])
        if len(dims | {self.phys_dims[label_site] // n_classes}) != 1:
            raise InvalidInputError(
                f"every site must have one physical dimension d (the label site d * L), got "
                f"{self.phys_dims} with L = {n_classes} on site {label_site}"
            )

    # ---- shape information ------------------------------------------------------------------

    @property
    def phys_dim(self) -> int:
        """Local dimension ``d`` of every site (the label site's is ``d * L``)."""
        return self.phys_dims[self.label_site] // self.n_classes

    @property
    def label_core(self) -> Tensor:
        """The label site's core as ``(Dl, d, L, Dr)`` (a view)."""
        core = self.cores[self.label_site]
        return core.view(core.shape[0], -1, self.n_classes, core.shape[2])

    @property
    def canonical(self) -> bool:
        """True when cores left of ``label_site`` are left isometries and cores right of it
        right isometries (``center == label_site``)."""
        return self.center == self.label_site

    # ---- conversion to and from the module --------------------------------------------------

    @classmethod
    def from_module(cls, module: MPSClassifierModule) -> LabelledMPS:
        """Take the weights of an :class:`~tnml.nn.MPSClassifierModule` (detached copies).

        The module closes its chain with the basis vector ``e_0`` on both ends; here it is
        applied (:meth:`~tnml.nn.MPSClassifierModule.to_mps`), so the end bonds have
        dimension 1. Readout, temperature and feature map are carried over.

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
        log_t = module.log_temperature
        return cls(
            module.to_mps().cores,
            module.output_site,
            n_classes=module.n_classes,
            readout=module.readout,
            log_temperature=0.0 if log_t is None else float(log_t.detach()),
            feature_map=module.feature_map if isinstance(module.feature_map, str) else "trig",
        )

    def to_module(self, **module_kwargs: Any) -> MPSClassifierModule:
        """An :class:`~tnml.nn.MPSClassifierModule` computing the same amplitudes
        (:meth:`~tnml.nn.MPSClassifierModule.from_mps`: every bond zero-padded to the largest
        one, which is exact; ``exp(log_scale)`` spread evenly over the cores).

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
        module = MPSClassifierModule.from_mps(self, self.n_classes, self.label_site, **kwargs)
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
            p = phi[:, i].to(dtype)
            if i == self.label_site:
                v = torch.einsum("bka,aslr,bs->blr", v, self.label_core.to(dtype), p)
            else:
                v = torch.einsum("bla,asr,bs->blr", v, core.to(dtype), p)
        return v[..., 0] * self.log_scale.exp().to(dtype)

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
        c = self.label_site
        cache = EnvironmentCache(sites, self.cores, c, chunk=max(phi.shape[0], 1))
        (left, left_log), (right, right_log) = cache.left(c), cache.right(c)
        core = self.label_core.to(dtype)
        amplitude = torch.einsum("ba,aslr,bs,br->bl", left, core, sites[c], right)
        return amplitude, left_log + right_log + self.log_scale

    def log_amplitudes(self, phi: Tensor) -> tuple[Tensor, Tensor]:
        """``f_l(x)`` as a unit-norm mantissa ``(B, L)`` (zero where ``f`` vanishes) and a
        log-scale ``(B,)``, safe for hundreds of sites: :meth:`projected_amplitudes` with the
        amplitude's norm moved into the scale."""
        c, log_scale = self.projected_amplitudes(phi)
        norm = torch.linalg.vector_norm(c, dim=1).clamp_min(torch.finfo(c.dtype).tiny)
        return c / norm[:, None], log_scale + norm.log()

    # ---- canonical form ----------------------------------------------------------------------

    def canonicalize(self, center: int | None = None) -> LabelledMPS:
        """Mixed canonical form about ``center``, default ``label_site`` (a new model; see
        :func:`~tnml.tensor.mps_canonicalize`)."""
        out = mps_canonicalize(self, self.label_site if center is None else center)
        assert isinstance(out, LabelledMPS)
        return out

    def canonicalize_(self, center: int | None = None) -> LabelledMPS:
        """In-place :meth:`canonicalize`; returns ``self``."""
        mps_canonicalize(self, self.label_site if center is None else center, inplace=True)
        return self

    # ---- bonds next to the label -------------------------------------------------------------

    def merged_bond(self, k: int) -> Tensor:
        """Cores ``k`` and ``k + 1``, one of which carries the label, merged into
        ``(Dl, d, L, d, Dr)``."""
        if self.label_site == k:  # label core (Dl, d, L, D), right (D, d, Dr)
            return torch.einsum("aslb,btr->asltr", self.label_core, self.cores[k + 1])
        if self.label_site != k + 1:
            raise InvalidInputError(f"bond {k} is not next to the label on site {self.label_site}")
        return torch.einsum("asb,btlr->asltr", self.cores[k], self.label_core)

    def set_bond(self, k: int, left: Tensor, right: Tensor, label_site: int) -> None:
        """Store the split of bond ``k``: ``left`` ``(Dl, d, D)`` or ``(Dl, d, L, D)`` and
        ``right`` ``(D, d, L, Dr)`` or ``(D, d, Dr)``, the label on ``label_site`` (``k`` or
        ``k + 1``), isometric towards it, which becomes the centre."""
        self.cores[k] = left.reshape(left.shape[0], -1, left.shape[-1])
        self.cores[k + 1] = right.reshape(right.shape[0], -1, right.shape[-1])
        self.label_site = label_site
        self.center = label_site

    # ---- checkpoints -------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Plain values and CPU tensors that :meth:`from_state_dict` turns back into the model."""
        return {
            "cores": [core.detach().cpu() for core in self.cores],
            "label_site": self.label_site,
            "n_classes": self.n_classes,
            "log_scale": self.log_scale.detach().cpu(),
            "readout": self.readout,
            "log_temperature": self.log_temperature,
            "feature_map": self.feature_map,
            "center": self.center,
        }

    @classmethod
    def from_state_dict(
        cls, state: dict[str, Any], device: torch.device | str | None = None
    ) -> LabelledMPS:
        """Rebuild a model written by :meth:`state_dict` (cores moved to ``device``)."""
        state = dict(state)
        cores = [core.to(device) for core in state.pop("cores")]
        center = state.pop("center", None)
        if state.pop("canonical", False):  # written before the label core was fused
            center = state["label_site"]
        model = cls(cores, state.pop("label_site"), **state)
        model.center = center
        return model

    def _check_phi(self, phi: Tensor) -> None:
        _check_phi("phi", phi, self.n_sites, self.phys_dim)


def _fused_cores(
    cores: object, label_site: object, n_classes: int | None
) -> tuple[list[Tensor], int]:
    """``cores`` with the label core fused to ``(Dl, d * L, Dr)``, and ``L``."""
    if isinstance(cores, Tensor) or not isinstance(cores, Sequence) or not cores:
        raise InvalidInputError("cores must be a non-empty list of tensors")
    n = len(cores)
    if isinstance(label_site, bool) or not isinstance(label_site, int):
        raise InvalidInputError(f"label_site must be an int, got {label_site!r}")
    if not 0 <= label_site < n:
        raise InvalidInputError(f"label_site must lie in [0, {n}) for {n} cores, got {label_site}")
    cores = list(cores)
    label = cores[label_site]
    if isinstance(label, Tensor) and label.ndim == 4:
        if n_classes is not None and n_classes != label.shape[2]:
            raise InvalidInputError(
                f"n_classes={n_classes} does not match the label core {tuple(label.shape)}"
            )
        n_classes = int(label.shape[2])
        cores[label_site] = label.reshape(label.shape[0], -1, label.shape[3])
    elif n_classes is None:
        raise InvalidInputError(
            f"cores[{label_site}] must have shape (Dl, d, L, Dr), or pass n_classes with a "
            "fused (Dl, d * L, Dr) label core"
        )
    if isinstance(n_classes, bool) or not isinstance(n_classes, int) or n_classes < 1:
        raise InvalidInputError(f"n_classes must be an int >= 1, got {n_classes!r}")
    return cores, n_classes


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


# --------------------------------------------------------------------------------------------
# bond algebra: the truncated split and moving the label
# --------------------------------------------------------------------------------------------


def _split(
    bond: Tensor,
    direction: str,
    max_bond: int | None,
    cutoff: float,
    cutoff_mode: str,
    grams: tuple[Tensor, Tensor] | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Split ``(Dl, d, L, d, Dr)`` by truncated SVD so that the label moves ``direction``.

    ``"right"``: ``(Dl, d, k)`` left isometry and ``(k, d, L, Dr)`` holding the singular
    values; ``"left"``: ``(Dl, d, L, k)`` holding them and ``(k, d, Dr)`` right isometry.
    ``grams``: the metrics ``(G_L (Dl d, Dl d), G_R (d Dr, d Dr))`` of the two sides to
    truncate in (:func:`tnml.tensor.decomp.split_tensor_in_metric`); None: in norm.
    Returns the two cores, the discarded weight and the relative discarded weight.
    """
    options = {"max_bond": max_bond, "cutoff": cutoff, "cutoff_mode": cutoff_mode}
    n_left_dims = 2 if direction == "right" else 3
    absorb = "right" if direction == "right" else "left"
    if grams is None:
        res = split_tensor(bond, n_left_dims, method="svd", absorb=absorb, **options)
    else:
        res = split_tensor_in_metric(
            bond, n_left_dims, left_gram=grams[0], right_gram=grams[1], absorb=absorb, **options
        )
    left, right = res.left, res.right
    if direction == "right":
        right = right.permute(0, 2, 1, 3).contiguous()
    return left, right, res.discarded_weight, res.relative_discarded_weight


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
    while out.label_site != site:
        direction = "right" if site > out.label_site else "left"
        k = out.label_site if direction == "right" else out.label_site - 1
        bond = out.merged_bond(k)
        cut = cutoff
        if cut is None:
            m = bond.shape[0] * bond.shape[1]
            cut = max(m, bond.numel() // m) * torch.finfo(bond.dtype).eps
        left, right, _, _ = _split(bond, direction, max_bond, cut, cutoff_mode)
        out.set_bond(k, left, right, k + 1 if direction == "right" else k)
    return out
