"""Two-site sweeping training of an MPS Born machine (Han, Wang, Fan, Wang, Zhang, 2018).

The MPS is kept in mixed canonical form with its orthogonality centre on the bond tensor
``B = A_k A_{k+1}`` (shape (D_l, d, d, D_r)), so the partition function is ``Z = ||B||^2``
and the negative log-likelihood of the training set ``T`` is

    NLL(B) = log Z - (2 / |T|) sum_x log |psi(x)|,    psi(x) = L_x . B[:, x_k, x_{k+1}, :] . R_x

with ``L_x`` (``R_x``) the contraction of the cores left (right) of the bond with the sample.
Its gradient is ``2 B / Z - (2 / |T|) sum_x (L_x (x) e_{x_k} (x) e_{x_{k+1}} (x) R_x) / psi(x)``.
After ``n_steps`` gradient steps the bond tensor is split by SVD keeping at most ``max_bond``
singular values above ``cutoff`` (relative to the largest), so bonds grow where the data need
it, and the centre moves on; the SVD is either of ``B`` itself (the norm) or of ``B`` in the
metric of the training samples' environments (``truncation="data"``). Sweeps go left to
right and back.

The per-sample environments ``L_x`` and ``R_x`` are cached for every bond and updated
incrementally as the centre moves (one (T, D) product per bond). They enter the gradient only
through ``(L (x) R) / psi``, which is invariant to rescaling either one, so each is stored as
a unit vector; no log bookkeeping is needed and nothing underflows. All per-sample work is
batched matrix products.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor

from tnml._validation import check_int
from tnml.exceptions import InvalidInputError, TrainingError
from tnml.tensor.born import check_indices, mps_log_density, one_hot_inputs
from tnml.tensor.decomp import check_truncation_options, split_tensor, split_tensor_in_metric
from tnml.tensor.environments import EnvironmentCache, bond_projections, normalized_rows
from tnml.tensor.mps import MPS, mps_canonicalize
from tnml.train.bond_sweeper import check_truncation
from tnml.train.loop import (
    FitResult,
    LoopOptions,
    UpdateRule,
    check_loop_options,
    fit_loop,
)

if TYPE_CHECKING:  # typing.Unpack is Python 3.11+; annotations are strings here
    from typing_extensions import Unpack

__all__ = [
    "BornSweepRule",
    "NLLSweepRule",
    "check_step_options",
    "clone_nested",
    "decayed_lr",
    "floored_gradient",
    "mean_nll",
    "train_born_sweep",
    "unit_rows",
]


def as_site_vectors(mps: MPS, X: Tensor | Sequence[Tensor], name: str = "X") -> list[Tensor]:
    """Training inputs as per-site vectors: one-hot for integer ``X`` (T, N), else as given.

    Float ``X`` of shape (T, N, d) (or a sequence of N (T, d_i) tensors) holds the product
    states of a continuous Born machine (see ``tnml.tensor.born.mps_log_density``).
    """
    if isinstance(X, Tensor) and not (X.is_floating_point() or X.is_complex()):
        return one_hot_inputs(mps, check_indices(mps, X, name=name))
    phis = list(X.unbind(1)) if isinstance(X, Tensor) and X.ndim == 3 else list(X)
    if len(phis) != mps.n_sites or any(
        p.ndim != 2 or p.shape[1] != d for p, d in zip(phis, mps.phys_dims, strict=False)
    ):
        raise InvalidInputError(
            f"{name} must be integers of shape (T, N={mps.n_sites}) or site vectors of shape "
            f"(T, N, d) matching the site dimensions {mps.phys_dims[:4]}..."
        )
    return [p.to(device=mps.device, dtype=mps.dtype) for p in phis]


def mean_nll(mps: MPS, X: Tensor | Sequence[Tensor], batch_size: int = 4096) -> float:
    """Mean negative log-likelihood (nats) of ``X``: integer rows (n, N) or site vectors."""
    phis = as_site_vectors(mps, X)
    total = 0.0
    with torch.no_grad():
        for start in range(0, phis[0].shape[0], batch_size):
            chunk = [p[start : start + batch_size] for p in phis]
            total -= float(mps_log_density(mps, chunk).sum())
    return total / max(phis[0].shape[0], 1)


def unit_rows(v: Tensor) -> Tensor:
    """Each row of ``v`` (T, D) divided by its 2-norm (zero rows stay zero)."""
    return normalized_rows(v)[0]


def _bond_gradient(
    bond: Tensor, left: Tensor, right: Tensor, pair: Tensor
) -> tuple[Tensor, Tensor]:
    """NLL gradient with respect to the bond tensor, and ``psi(x)`` up to per-sample scale.

    ``bond`` (Dl, d1, d2, Dr), ``left`` (T, Dl), ``right`` (T, Dr), ``pair`` (T, d1 * d2) the
    product state of the two sites (``phi_k (x) phi_{k+1}``). Returns the gradient, shaped
    like ``bond``, and psi (T,).
    """
    dl, d1, d2, dr = bond.shape
    n = left.shape[0]
    opened = (left @ bond.reshape(dl, d1 * d2 * dr)).reshape(n, d1 * d2, dr)
    psi = (torch.einsum("tqr,tq->tr", opened, pair) * right).sum(1)
    tiny = torch.finfo(psi.dtype).tiny
    safe = torch.where(psi.abs() > tiny, psi, torch.full_like(psi, tiny))
    weighted = pair.unsqueeze(2) * (right / safe.unsqueeze(1)).unsqueeze(1)
    data_term = (left.T @ weighted.reshape(n, d1 * d2 * dr)).reshape(bond.shape)
    z = bond.square().sum()
    return 2.0 * bond / z - (2.0 / n) * data_term, psi


def check_step_options(lr: float, lr_decay: float | None) -> None:
    """Raise a clear error unless ``lr > 0`` is finite and ``lr_decay`` is None or in (0, 1)."""
    if not (isinstance(lr, (int, float)) and lr > 0 and math.isfinite(lr)):
        raise InvalidInputError(f"lr must be a finite number > 0, got {lr!r}")
    if lr_decay is not None and not (isinstance(lr_decay, (int, float)) and 0 < lr_decay < 1):
        raise InvalidInputError(f"lr_decay must be a number in (0, 1) or None, got {lr_decay!r}")


def decayed_lr(lr: float, lr_decay: float | None, previous: float, current: float) -> float:
    """The next sweep's step: ``lr * lr_decay`` when the sweep raised the training NLL from
    ``previous`` to ``current``, else ``lr``."""
    return lr * lr_decay if lr_decay is not None and current > previous else lr


class NLLSweepRule(UpdateRule):
    """What the Born-machine sweep rules share: the NLL as the loss, and a step size that
    shrinks by ``lr_decay`` after a sweep that raised the training NLL. Subclasses set
    ``lr``, ``lr_decay`` and ``previous_nll`` and save the latter two with their state."""

    unit = "sweep"
    loss_name = "NLL"
    lr: float
    lr_decay: float | None
    previous_nll: float

    def nll_entry(self, train_nll: float, val_nll: float) -> dict[str, Any]:
        """The sweep's history entry (with the step it used); then the next sweep's step."""
        entry = {
            "train_loss": train_nll,
            "train_accuracy": math.nan,
            "val_loss": val_nll,
            "val_accuracy": math.nan,
            "lr": self.lr,
        }
        self.lr = decayed_lr(self.lr, self.lr_decay, self.previous_nll, train_nll)
        self.previous_nll = train_nll
        return entry


def clone_nested(tensors: Any) -> Any:
    """Detached copies of a tensor or of nested lists of tensors."""
    if isinstance(tensors, Tensor):
        return tensors.detach().clone()
    return [clone_nested(t) for t in tensors]


def floored_gradient(grad: Tensor) -> Tensor:
    """``grad`` scaled up, if needed, to norm ``grad.numel() ** 0.25``."""
    floor = grad.numel() ** 0.25
    norm = torch.linalg.vector_norm(grad)
    return grad * (floor / norm) if 0 < float(norm) < floor else grad


def _bond_gradient_indexed(
    bond: Tensor, left: Tensor, right: Tensor, pair_index: Tensor
) -> tuple[Tensor, Tensor]:
    """:func:`_bond_gradient` for basis inputs: ``pair_index`` (T,) holds
    ``x_k * d2 + x_{k+1}``, so each sample meets one slice ``bond[:, x_k, x_{k+1}, :]``.

    The samples are grouped by their slice (``d1 * d2`` groups, not a loop over samples),
    which spends ``1 / (d1 * d2)`` of the dense version's products.
    """
    dl, d1, d2, dr = bond.shape
    flat = bond.reshape(dl, d1 * d2, dr)
    psi = left.new_empty(left.shape[0])
    data_term = torch.zeros_like(flat)
    tiny = torch.finfo(bond.dtype).tiny
    for q in range(d1 * d2):
        rows = (pair_index == q).nonzero().squeeze(1)
        if rows.numel() == 0:
            continue
        lq, rq = left[rows], right[rows]
        p = ((lq @ flat[:, q, :]) * rq).sum(1)
        psi[rows] = p
        safe = torch.where(p.abs() > tiny, p, torch.full_like(p, tiny))
        data_term[:, q, :] = lq.T @ (rq / safe.unsqueeze(1))
    z = bond.square().sum()
    n = left.shape[0]
    return 2.0 * bond / z - (2.0 / n) * data_term.reshape(bond.shape), psi


def _bond_nll(bond: Tensor, left: Tensor, right: Tensor, pair: Tensor) -> Tensor:
    """Local NLL ``-mean log psi^2 + log ||bond||^2`` up to a per-sample constant (the
    environments' scales), for comparing trial bond tensors at one bond."""
    dl, d1, d2, dr = bond.shape
    n = left.shape[0]
    opened = (left @ bond.reshape(dl, d1 * d2 * dr)).reshape(n, d1 * d2, dr)
    psi = (torch.einsum("tqr,tq->tr", opened, pair) * right).sum(1)
    tiny = torch.finfo(psi.dtype).tiny
    return -torch.log(psi.square().clamp_min(tiny)).mean() + torch.log(bond.square().sum())


def _data_grams(
    left: Tensor, phi_left: Tensor, phi_right: Tensor, right: Tensor, chunk: int = 8192
) -> tuple[Tensor, Tensor]:
    """The data metric of a bond: ``G_L = sum_i X_i X_i^T / T`` (Dl d, Dl d) and ``G_R``
    (d Dr, d Dr) likewise, with ``X_i`` the unit vector along ``left_i (x) phi_left_i`` and
    ``Y_i`` along ``phi_right_i (x) right_i`` (``left`` (T, Dl), ``phi_*`` (T, d), ``right``
    (T, Dr)), float64 (each chunk's products in the environments' dtype, summed in float64,
    as the Grams' small eigenvalues need). Unit rows because each sample's NLL term ignores
    its scale."""
    n = left.shape[0]
    gram_left = left.new_zeros((left.shape[1] * phi_left.shape[1],) * 2, dtype=torch.float64)
    gram_right = left.new_zeros((phi_right.shape[1] * right.shape[1],) * 2, dtype=torch.float64)
    for s in range(0, n, chunk):
        rows = slice(s, s + chunk)
        x, y = bond_projections(left[rows], phi_left[rows], phi_right[rows], right[rows])
        x, y = unit_rows(x), unit_rows(y)
        gram_left += (x.T @ x).double()
        gram_right += (y.T @ y).double()
    return gram_left / max(n, 1), gram_right / max(n, 1)


class _Sweeper:
    """Cores, the centre and the cached environments of one Born-machine sweep run."""

    def __init__(
        self, mps: MPS, X: Tensor | Sequence[Tensor], center: int, *, canonical: bool = False
    ) -> None:
        """``canonical=True``: ``mps`` is already in mixed canonical form about ``center``
        (a resumed run) and is used bit for bit; else it is canonicalised first."""
        canon = mps if canonical else mps_canonicalize(mps, center)
        self.phis = as_site_vectors(canon, X)
        # basis inputs: each sample meets one slice of a bond tensor (see update)
        discrete = isinstance(X, Tensor) and not (X.is_floating_point() or X.is_complex())
        self.indices = X.to(canon.device) if discrete else None
        self.cores = [c.detach().clone() for c in canon.cores]
        self.n = len(self.cores)
        self.step: float | None = None  # the line search's last accepted step
        self.envs = EnvironmentCache(self.phis, self.cores, center)

    def update(
        self,
        k: int,
        direction: str,
        *,
        lr: float,
        n_steps: int,
        max_bond: int,
        cutoff: float,
        line_search: bool = False,
        grad_floor: bool = False,
        truncation: str = "norm",
    ) -> None:
        """Optimise the bond tensor of sites (k, k+1) and split it (truncating in norm or in
        the data's metric, see :func:`train_born_sweep`), moving the centre along."""
        a, b = self.cores[k], self.cores[k + 1]
        bond = torch.tensordot(a, b, dims=([2], [0]))  # (Dl, d, d', Dr)
        if line_search:  # the search works on the unit sphere
            bond = bond / torch.linalg.vector_norm(bond)
        pair = (self.phis[k].unsqueeze(2) * self.phis[k + 1].unsqueeze(1)).flatten(1)
        left, right = self.envs.left(k)[0], self.envs.right(k + 1)[0]
        pair_index = None
        if self.indices is not None:
            pair_index = self.indices[:, k] * bond.shape[2] + self.indices[:, k + 1]
        for _ in range(n_steps):
            if pair_index is not None:
                grad, _ = _bond_gradient_indexed(bond, left, right, pair_index)
            else:
                grad, _ = _bond_gradient(bond, left, right, pair)
            if line_search:
                bond, moved = self._line_search(bond, grad, left, right, pair, lr)
                if not moved:
                    break
                continue
            if grad_floor:
                grad = floored_gradient(grad)
            bond = bond - lr * grad
            bond = bond / torch.linalg.vector_norm(bond)
        if not bool(torch.isfinite(bond).all()):
            raise TrainingError(
                f"the bond tensor of sites {k}, {k + 1} became non-finite; lower the "
                f"learning rate (lr={lr})"
            )
        absorb = "right" if direction == "right" else "left"
        if truncation == "data":
            gram_left, gram_right = _data_grams(left, self.phis[k], self.phis[k + 1], right)
            res = split_tensor_in_metric(
                bond,
                2,
                left_gram=gram_left,
                right_gram=gram_right,
                max_bond=max_bond,
                cutoff=cutoff,
                absorb=absorb,
                root="cholesky",
            )
        else:
            res = split_tensor(
                bond, 2, method="svd", max_bond=max_bond, cutoff=cutoff, absorb=absorb
            )
        if direction == "right":
            self.cores[k] = res.left
            self.cores[k + 1] = res.right / torch.linalg.vector_norm(res.right)
            self.envs.push_left(k, self.cores[k])
        else:
            self.cores[k] = res.left / torch.linalg.vector_norm(res.left)
            self.cores[k + 1] = res.right
            self.envs.push_right(k + 1, self.cores[k + 1])

    def _line_search(
        self, bond: Tensor, grad: Tensor, left: Tensor, right: Tensor, pair: Tensor, lr: float
    ) -> tuple[Tensor, bool]:
        """One backtracking (Armijo) step on the unit sphere: start from the last accepted
        step times 1.5 and halve until the local NLL falls enough (at most 10 halvings)."""
        current = _bond_nll(bond, left, right, pair)
        slope = grad.square().sum()
        step = lr if self.step is None else 1.5 * self.step
        for _ in range(11):
            trial = bond - step * grad
            trial = trial / torch.linalg.vector_norm(trial)
            if _bond_nll(trial, left, right, pair) <= current - 1e-4 * step * slope:
                self.step = step
                return trial, True
            step /= 2
        self.step = step
        return bond, False

    def mps(self, center: int) -> MPS:
        state = MPS(self.cores)
        state.center = center
        return state


def train_born_sweep(
    mps: MPS,
    X: Tensor,
    *,
    X_val: Tensor | None = None,
    n_sweeps: int = 4,
    max_bond: int = 100,
    cutoff: float = 1e-7,
    lr: float = 5e-3,
    n_steps: int = 1,
    line_search: bool = False,
    grad_floor: bool = False,
    lr_decay: float | None = None,
    truncation: str = "norm",
    **loop: Unpack[LoopOptions],
) -> FitResult:
    """Train an MPS Born machine on discrete data by two-site sweeps with SVD bond adaptation.

    Parameters
    ----------
    mps : MPS
        Starting state over N sites (e.g. a random MPS of small bond dimension); not modified.
        Its dtype is the working precision (float64 recommended).
    X : Tensor
        Training data: integers of shape (T, N) with ``0 <= X[:, i] < d_i`` (a discrete Born
        machine), or the product states of a continuous one, floats of shape (T, N, d) (or a
        sequence of N tensors (T, d_i); see ``tnml.tensor.born.mps_log_density``).
    X_val : Tensor, optional
        Validation data of the same kind; its NLL is reported after every sweep, and the
        state of the sweep where it was lowest is the one returned.
    n_sweeps : int
        Number of sweeps (each: left to right, then right to left).
    max_bond : int
        Largest bond dimension the SVD keeps.
    cutoff : float
        Singular values below ``cutoff`` times the largest are dropped.
    lr : float
        Gradient step size on the (unit-norm) bond tensor.
    n_steps : int
        Gradient steps per bond before each split.
    line_search : bool, default=False
        Choose each step's size by backtracking on the bond's exact local NLL (Armijo
        condition; the first try is 1.5 times the last accepted step, ``lr`` at the start),
        so every step lowers the local NLL; stop a bond's steps early when none does.
    grad_floor : bool, default=False
        Scale a bond gradient whose norm is below ``numel ** 0.25`` up to that norm (the
        "norm0.25" rule of Han et al.'s public code), so steps keep a minimum size where the
        NLL surface is flat instead of creeping; pair it with a small ``lr`` and ``lr_decay``
        so the sweeps settle once they stop improving. Not with ``line_search``.
    lr_decay : float, optional
        After a sweep whose training NLL is higher than the previous sweep's, multiply the
        step size by ``lr_decay`` (in (0, 1)); the history records each sweep's ``lr``.
    truncation : {"norm", "data"}, default="norm"
        How each split truncates: ``"norm"`` keeps the largest singular values of the bond
        tensor (Han et al.); ``"data"`` those in the metric of the training samples'
        unit-norm environments (:func:`tnml.tensor.decomp.split_tensor_in_metric`, Cholesky
        roots), which keeps what the data's amplitudes see rather than norm no sample sees
        (1,000 binarised MNIST images hold a vanishing part of ``Z``). The metric leaves out
        the ``log Z`` term of the NLL: it keeps the amplitudes, not their share of ``Z``, so a
        split can also keep norm in directions no sample visits (an input value that never
        occurs at a site); the next gradient steps shrink it, and on binarised MNIST the
        sweeps fit better in this metric than in norm (benchmarks/RESULTS.md), but on small
        problems single splits can come out worse than the plain SVD's.
    **loop
        The loop's options (:class:`~tnml.train.LoopOptions`): ``callback(state, metrics)``
        after every sweep (``state``: ``sweep``, ``mps``; True stops); ``progress`` (bond,
        largest bond dimension, NLL); ``checkpoint_path``, written after every sweep and on
        Ctrl-C (mid-sweep: the bond reached); ``resume`` at that bond.

    Returns
    -------
    FitResult
        ``model``: the trained :class:`~tnml.tensor.MPS`, right-canonical (``center = 0``)
        and normalised (with validation data, that of the sweep with the lowest validation
        NLL); ``history``: one entry a sweep, the NLL as ``train_loss`` / ``val_loss``, the
        step size the sweep used as ``lr``, and ``max_bond_dim``.
    """
    n_sweeps = check_int("n_sweeps", n_sweeps, 1)
    n_steps = check_int("n_steps", n_steps, 1)
    check_int("max_bond", max_bond, 1)
    check_truncation_options(max_bond, cutoff, "rel")
    check_step_options(lr, lr_decay)
    check_truncation(truncation)
    if grad_floor and line_search:
        raise InvalidInputError("grad_floor and line_search cannot be combined")
    if mps.n_sites < 2:
        raise InvalidInputError("two-site sweeps need an MPS of at least 2 sites")
    check_loop_options("train_born_sweep", loop)
    as_site_vectors(mps, X, name="X")  # checks X; the sweeper keeps basis inputs as indices
    if X_val is not None:
        X_val = as_site_vectors(mps, X_val, name="X_val")
    rule = BornSweepRule(
        mps,
        X,
        X_val=X_val,
        max_bond=max_bond,
        cutoff=cutoff,
        lr=lr,
        n_steps=n_steps,
        line_search=line_search,
        grad_floor=grad_floor,
        lr_decay=lr_decay,
        truncation=truncation,
    )
    return fit_loop(
        rule,
        epochs=n_sweeps,
        **loop,
    )


class BornSweepRule(NLLSweepRule):
    """Two-site Born-machine sweeps (see :func:`train_born_sweep`): a step is one bond update,
    an epoch one sweep, left to right (steps ``0 .. n-2``) and back (``n-1 .. 2n-3``)."""

    name = "born-sweep"
    log_extras: ClassVar[dict[str, str]] = {"max_bond_dim": "max D"}

    def __init__(
        self,
        mps: MPS,
        X: Tensor | Sequence[Tensor],
        *,
        X_val: Sequence[Tensor] | None,
        max_bond: int,
        cutoff: float,
        lr: float,
        n_steps: int,
        line_search: bool,
        grad_floor: bool,
        lr_decay: float | None,
        truncation: str = "norm",
    ) -> None:
        self.start, self.X, self.X_val = mps, X, X_val
        self.step_options = {
            "n_steps": n_steps,
            "max_bond": max_bond,
            "cutoff": cutoff,
            "line_search": line_search,
            "grad_floor": grad_floor,
            "truncation": truncation,
        }
        self.lr, self.lr_decay = float(lr), lr_decay
        self.previous_nll = math.inf
        self.line_step: float | None = None
        self.device = mps.device
        self.n = mps.n_sites
        self.sweeper: _Sweeper | None = None
        self.final: MPS | None = None
        self.resumed = False

    def _bond(self, index: int) -> tuple[int, str]:
        """Step ``index`` of a sweep -> (bond k of sites k, k+1; direction)."""
        if index < self.n - 1:
            return index, "right"
        return 2 * self.n - 3 - index, "left"

    def steps_in_epoch(self, epoch: int) -> int:
        return 2 * (self.n - 1)

    def begin_epoch(self, epoch: int, first_step: int) -> int:
        if self.sweeper is None:  # a new run, or a resumed one: the centre where it stopped
            k, direction = self._bond(first_step)
            center = k if direction == "right" else k + 1
            # a resumed run's cores are saved in mixed canonical form; canonicalising them
            # again changes their last bits and gauge, and with degenerate singular values
            # which vectors SVD keeps: the resumed run would leave the uninterrupted one
            self.sweeper = _Sweeper(self.start, self.X, center, canonical=self.resumed)
            self.sweeper.step = self.line_step
        return self.steps_in_epoch(epoch)

    def step(self, epoch: int, index: int) -> tuple[str, None]:
        assert self.sweeper is not None
        k, direction = self._bond(index)
        self.sweeper.update(k, direction, lr=self.lr, **self.step_options)
        largest = max(c.shape[2] for c in self.sweeper.cores)
        return f"{'->' if direction == 'right' else '<-'} bond {k}  max D {largest}", None

    def end_epoch(self, epoch: int) -> dict[str, Any]:
        assert self.sweeper is not None
        model = self.sweeper.mps(center=0)
        val_nll = mean_nll(model, self.X_val) if self.X_val is not None else math.nan
        entry = self.nll_entry(mean_nll(model, self.X), val_nll)
        entry["max_bond_dim"] = max(c.shape[2] for c in self.sweeper.cores)
        return entry

    def state_dict(self) -> dict[str, Any]:
        cores = self.sweeper.cores if self.sweeper is not None else self.start.cores
        return {
            "cores": list(cores),
            "lr": self.lr,
            "previous_nll": self.previous_nll,
            "line_step": self.sweeper.step if self.sweeper is not None else self.line_step,
        }

    def settings(self) -> dict[str, Any]:
        return dict(self.step_options)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        device, dtype = self.start.device, self.start.dtype
        self.start = MPS([c.to(device=device, dtype=dtype) for c in state["cores"]])
        self.sweeper = None
        self.resumed = True
        self.lr, self.previous_nll = state["lr"], state["previous_nll"]
        self.line_step = state["line_step"]

    def weights(self) -> list[Tensor]:
        assert self.sweeper is not None
        return clone_nested(self.sweeper.cores)

    def load_weights(self, weights: list[Tensor]) -> None:
        device, dtype = self.start.device, self.start.dtype
        self.final = MPS([c.to(device=device, dtype=dtype) for c in weights])
        self.final.center = 0  # kept at the end of a sweep, the centre on site 0

    def callback_info(self) -> dict[str, Any]:
        assert self.sweeper is not None
        return {"mps": self.sweeper.mps(center=0)}

    def result(self) -> MPS:
        if self.final is not None:
            return self.final
        assert self.sweeper is not None
        return self.sweeper.mps(center=0)
