"""``MPSClassifierModule``: the PyTorch module of the MPS classifier.

``f_l(x) = <W_l | Phi(x)>`` with ``W`` a matrix product state over the ``N`` input sites whose
core at ``output_site`` carries one extra index ``l`` (the class label), after Stoudenmire &
Schwab (2016). The module holds the parameters; the contraction is
:func:`tnml.tensor.contract.contract_with_output`.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from tnml._validation import check_int
from tnml.exceptions import InvalidInputError
from tnml.features import embed
from tnml.tensor.contract import CONTRACTION_PATHS, contract_with_output
from tnml.tensor.mps import MPS

READOUTS = ("normalized", "born", "linear")

# Floor under the Born probabilities, so that log p(l|x) and its gradient stay finite when an
# amplitude is exactly zero; below float32 resolution of a probability near one.
_BORN_FLOOR = 1e-12


def born_logits(mantissa: Tensor) -> Tensor:
    """Logits whose softmax is the Born rule ``p(l|x) = f_l^2 / sum_k f_k^2``.

    Parameters
    ----------
    mantissa : Tensor, shape (B, L)
        Amplitudes ``f_l(x)`` up to any positive per-sample factor (the rule ignores it).

    Returns
    -------
    Tensor, shape (B, L)
        ``log(f_l^2 / sum_k f_k^2 + floor)``.
    """
    squared = mantissa.square()
    total = squared.sum(dim=-1, keepdim=True).clamp_min(torch.finfo(mantissa.dtype).tiny)
    return torch.log(squared / total + _BORN_FLOOR)


def normalized_logits(mantissa: Tensor, log_temperature: Tensor) -> Tensor:
    """Logits ``exp(log_temperature) * f / ||f||``: unit-norm amplitudes times a temperature.

    Shape: ``(B, L)`` -> ``(B, L)``; ``log_temperature`` is a scalar.
    """
    norm = torch.linalg.vector_norm(mantissa, dim=-1, keepdim=True)
    return torch.exp(log_temperature) * mantissa / norm.clamp_min(torch.finfo(norm.dtype).tiny)


def readout_logits(
    readout: str, mantissa: Tensor, log_scale: Tensor, log_temperature: Tensor | None
) -> Tensor:
    """Class logits from amplitudes ``f = mantissa * exp(log_scale)`` for a readout name.

    Shapes: ``mantissa`` (B, L), ``log_scale`` (B,) -> (B, L). ``"normalized"`` needs
    ``log_temperature`` (see :func:`normalized_logits`), ``"born"`` see :func:`born_logits`,
    ``"linear"``: the raw amplitudes.
    """
    if readout == "normalized":
        return normalized_logits(mantissa, log_temperature)
    if readout == "born":
        return born_logits(mantissa)
    return mantissa * torch.exp(log_scale).unsqueeze(-1)


class MPSClassifierModule(nn.Module):
    r"""Matrix-product-state classifier over ``n_features`` inputs in [0, 1].

    Each feature ``x_j`` is embedded as ``phi(x_j)`` in R^d (``feature_map``); the MPS with one
    label index is contracted with the product state of the embeddings.

    .. rubric:: Shape

    - Input: ``(B, N)`` floats in [0, 1].
    - Output: ``(B, L)`` logits.

    Parameters
    ----------
    n_features
        Number of input features ``N`` (one site each).
    n_classes
        Size ``L`` of the label index.
    bond_dim
        Bond dimension ``D`` of every internal bond.
    feature_map
        ``"trig"`` ([cos(pi x/2), sin(pi x/2)] and its d-level form) or
        ``"linear"`` ([1 - x, x]).
    feature_dim
        Local dimension ``d`` of the feature map.
    output_site
        Site carrying the label index; default ``N // 2`` (the middle).
    readout
        ``"normalized"`` (default): logits ``t * f_l / ||f||`` with a learned
        temperature ``t`` (cosine-classifier style); invariant to the scale of the cores,
        so finite for any chain length, and the best trainer we measured.
        ``"born"``: logits ``log(f_l^2 / sum_k f_k^2)``, so softmax gives the Born-rule
        probabilities a circuit measures; also scale-free. ``"linear"``: the raw
        amplitudes ``f_l`` are the logits (TorchMPS style); of order one only while the
        cores stay near the identity, and they overflow float32 once ``|f_l| > 3e38``.
    contraction
        ``"auto"``, ``"sequential"`` or ``"pairwise"`` (see
        :mod:`tnml.tensor.contract`).
    init_std
        Standard deviation of the noise added to the identity in every core.

    Attributes
    ----------
    cores
        Parameter of shape ``(N - 1, D, d, D)``, the sites without the label, in order;
        initialised to ``I`` on every physical slice plus ``N(0, init_std^2)`` noise.
    output_core
        Parameter of shape ``(D, d, L, D)`` with ``N(0, 1/D)`` entries, so that the labels
        start with different amplitudes (from equal ones every readout trains slowly).
    log_temperature
        Scalar parameter ``log t`` of the ``"normalized"`` readout, None for the other
        readouts; starts at ``t = sqrt(L)``, which spreads the first logits (unit-norm
        amplitudes of about ``1 / sqrt(L)`` each) over about one unit.

    Examples
    --------
    >>> module = MPSClassifierModule(n_features=64, n_classes=10, bond_dim=8)
    >>> module(torch.rand(5, 64)).shape
    torch.Size([5, 10])
    """

    def __init__(
        self,
        n_features: int,
        n_classes: int,
        bond_dim: int = 10,
        *,
        feature_map: str = "trig",
        feature_dim: int = 2,
        output_site: int | None = None,
        readout: str = "normalized",
        contraction: str = "auto",
        init_std: float = 1e-2,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        check_int("n_features", n_features, minimum=1)
        check_int("n_classes", n_classes, minimum=1)
        check_int("bond_dim", bond_dim, minimum=1)
        check_int("feature_dim", feature_dim, minimum=2)
        if output_site is None:
            output_site = n_features // 2
        if not 0 <= output_site < n_features:
            raise InvalidInputError(
                f"output_site must lie in [0, {n_features}) for n_features={n_features}, "
                f"got {output_site}"
            )
        if readout not in READOUTS:
            raise InvalidInputError(f"readout must be one of {READOUTS}, got {readout!r}")
        if contraction not in CONTRACTION_PATHS:
            raise InvalidInputError(
                f"contraction must be one of {CONTRACTION_PATHS}, got {contraction!r}"
            )
        if not (init_std >= 0 and math.isfinite(init_std)):
            raise InvalidInputError(f"init_std must be a finite number >= 0, got {init_std}")
        self.n_features = n_features
        self.n_classes = n_classes
        self.bond_dim = bond_dim
        self.feature_map = feature_map
        self.feature_dim = feature_dim
        self.output_site = output_site
        self.readout = readout
        self.contraction = contraction
        self.init_std = init_std
        factory = {"device": device, "dtype": dtype}
        self.cores = nn.Parameter(
            torch.empty(n_features - 1, bond_dim, feature_dim, bond_dim, **factory)
        )
        self.output_core = nn.Parameter(
            torch.empty(bond_dim, feature_dim, n_classes, bond_dim, **factory)
        )
        if readout == "normalized":
            self.log_temperature = nn.Parameter(torch.zeros((), **factory))
        else:
            self.register_parameter("log_temperature", None)
        self.reset_parameters()

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Identity on every physical slice plus Gaussian noise of std ``init_std``."""
        with torch.no_grad():
            eye = torch.eye(self.bond_dim, dtype=self.cores.dtype, device=self.cores.device)
            self.cores.copy_(eye[None, :, None, :].expand_as(self.cores))
            noise = torch.randn(
                self.cores.shape, generator=generator, dtype=self.cores.dtype, device="cpu"
            )
            self.cores.add_(self.init_std * noise.to(self.cores.device))
            # A random label core: from the identity every class has the same amplitude and
            # the first hundreds of steps only break that symmetry (on 10,000 MNIST images,
            # two epochs: 92% with the identity, 95% with a random label core).
            noise = torch.randn(
                self.output_core.shape, generator=generator, dtype=self.cores.dtype, device="cpu"
            )
            self.output_core.copy_(noise.to(self.output_core.device) / math.sqrt(self.bond_dim))
            if self.log_temperature is not None:
                self.log_temperature.fill_(0.5 * math.log(self.n_classes))

    def amplitudes(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Return ``f(x)`` as a unit-scale mantissa and a log-scale.

        Shape: ``x`` ``(B, N)`` -> mantissa ``(B, L)``, log_scale ``(B,)``, with
        ``f(x) = mantissa * exp(log_scale)[:, None]``.
        """
        self._check_input(x)
        phi = embed(x, self.feature_map, self.feature_dim)
        return contract_with_output(
            self.cores, self.output_core, phi, self.output_site, self.contraction
        )

    def forward(self, x: Tensor) -> Tensor:
        """Class logits, shape ``(B, N)`` -> ``(B, L)``."""
        mantissa, log_scale = self.amplitudes(x)
        return readout_logits(self.readout, mantissa, log_scale, self.log_temperature)

    def config(self) -> dict[str, object]:
        """The constructor arguments that rebuild this module's architecture (for saving)."""
        return {
            "n_features": self.n_features,
            "n_classes": self.n_classes,
            "bond_dim": self.bond_dim,
            "feature_map": self.feature_map,
            "feature_dim": self.feature_dim,
            "output_site": self.output_site,
            "readout": self.readout,
            "contraction": self.contraction,
            "init_std": self.init_std,
        }

    def to_mps(self) -> MPS:
        """The weights as an open-boundary :class:`~tnml.tensor.MPS` (a detached copy).

        The label index is merged into the physical index of ``output_site``, which gets
        dimension ``d * L`` with combined index ``s * L + l``; the boundary vectors ``e_0`` are
        absorbed into the first and last cores, so the first and last bonds have dimension 1.
        Canonical forms, truncation and entanglement entropies then come from
        :mod:`tnml.tensor`.
        """
        d, n_labels, bond = self.feature_dim, self.n_classes, self.bond_dim
        k = self.output_site
        output = self.output_core.detach().reshape(bond, d * n_labels, bond)
        cores = [*self.cores.detach()[:k], output, *self.cores.detach()[k:]]
        cores[0] = cores[0][:1]
        cores[-1] = cores[-1][..., :1]
        return MPS([core.clone() for core in cores])

    @classmethod
    def from_mps(
        cls, mps: MPS, n_classes: int, output_site: int, **kwargs: Any
    ) -> MPSClassifierModule:
        """The module whose weights are ``mps`` (the inverse of :meth:`to_mps`).

        Parameters
        ----------
        mps : MPS
            Open-boundary MPS whose site ``output_site`` has physical dimension ``d * L``
            (combined index ``s * L + l``) and every other site dimension ``d``.
        n_classes : int
            ``L``.
        output_site : int
        **kwargs
            Other constructor arguments (``readout``, ``feature_map``, ``contraction``, ``dtype``,
            ``device``, or a ``bond_dim`` at least the largest bond of ``mps``).

        Every bond is zero-padded to ``bond_dim`` (default: the largest bond): a core
        ``(Dl, d, Dr)`` fills the block ``[:Dl, :, :Dr]``, so the first core lands in row 0 and
        the last in column 0, which the boundary vectors ``e_0`` select; zero rows and columns
        contribute nothing, so the amplitudes are exactly those of ``mps`` (its ``log_scale``
        spread evenly over the cores).
        """
        largest = max((*mps.bond_dims, 1))
        bond = kwargs.pop("bond_dim", largest)
        if bond < largest:
            raise InvalidInputError(
                f"bond_dim must be at least the largest bond {largest} of mps, got {bond}"
            )
        phys = mps.phys_dims[output_site]
        if phys % n_classes:
            raise InvalidInputError(
                f"site {output_site} of mps has dimension {phys}, not a multiple of "
                f"n_classes={n_classes}"
            )
        kwargs.setdefault("dtype", mps.dtype)
        kwargs.setdefault("device", mps.device)
        module = cls(
            mps.n_sites,
            n_classes,
            bond,
            feature_dim=phys // n_classes,
            output_site=output_site,
            **kwargs,
        )
        factor = torch.exp(mps.log_scale / mps.n_sites)
        cores = torch.zeros_like(module.cores)
        output = torch.zeros_like(module.output_core)
        others = [i for i in range(mps.n_sites) if i != output_site]
        for j, i in enumerate(others):
            core = mps.cores[i]
            cores[j, : core.shape[0], :, : core.shape[2]] = core * factor
        core = mps.cores[output_site]
        output[: core.shape[0], :, :, : core.shape[2]] = (core * factor).reshape(
            core.shape[0], phys // n_classes, n_classes, core.shape[2]
        )
        with torch.no_grad():
            module.cores.copy_(cores)
            module.output_core.copy_(output)
        return module

    def _check_input(self, x: Tensor) -> None:
        if not isinstance(x, Tensor):
            raise InvalidInputError(f"X must be a torch.Tensor, got {type(x).__name__}")
        if x.dim() != 2 or x.shape[1] != self.n_features:
            raise InvalidInputError(
                f"X must have shape (batch, {self.n_features}) for this model, got {tuple(x.shape)}"
            )
        if not x.is_floating_point():
            raise InvalidInputError(f"X must hold floating-point values, got dtype {x.dtype}")

    def extra_repr(self) -> str:
        return (
            f"n_features={self.n_features}, n_classes={self.n_classes}, "
            f"bond_dim={self.bond_dim}, feature_map={self.feature_map!r}, "
            f"feature_dim={self.feature_dim}, output_site={self.output_site}, "
            f"readout={self.readout!r}"
        )
