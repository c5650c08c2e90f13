"""One-site sweeping training of a tree-tensor-network Born machine.

The tree counterpart of :mod:`tnml.train.born_sweep`. The tree is kept in canonical form
with its orthogonality centre on one node tensor ``T`` (shape (Da, Db, Dp)): every other
tensor is an isometry towards it, so ``Z = ||T||^2`` and the NLL of the ``n`` training
samples is

    NLL(T) = log Z - (2 / n) sum_x log |psi(x)|,   psi(x) = sum T[a, b, p] L_x[a] R_x[b] P_x[p]

with ``L_x``, ``R_x`` the contractions of the two child subtrees with the sample and ``P_x``
that of everything outside the node's subtree. The gradient in ``T`` is
``2 T / Z - (2 / n) sum_x (L_x (x) R_x (x) P_x) / psi(x)``. The centre walks the tree depth
first (an Euler tour: down the left subtree, back, down the right one, back), updating the
tensor at every arrival; a move is a QR decomposition that leaves an isometry behind and
hands the triangular factor to the next node. Bond dimensions stay as the tree was built
(one-site updates: no truncation).

The per-sample environments (``up``: a subtree contracted, ``down``: everything outside a
subtree) are stored as unit rows, like the MPS sweeps' ones: the gradient depends on them only
through ``(L (x) R (x) P) / psi``, which does not change when any of them is rescaled.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from tnml._validation import check_int
from tnml.exceptions import InvalidInputError, TrainingError
from tnml.tensor.born import check_basis_inputs
from tnml.tensor.ttn import (
    TTN,
    NodeRef,
    TreeLayout,
    move_centre_down,
    move_centre_up,
    ttn_canonicalize,
)
from tnml.tensor.ttn_born import ttn_log_prob
from tnml.train.born_sweep import (
    NLLSweepRule,
    check_step_options,
    clone_nested,
    floored_gradient,
    unit_rows,
)
from tnml.train.loop import FitResult, LoopOptions, check_loop_options, fit_loop

if TYPE_CHECKING:  # typing.Unpack is Python 3.11+; annotations are strings here
    from typing_extensions import Unpack

__all__ = ["TreeBornSweepRule", "euler_tour", "train_ttn_born_sweep"]

Node = tuple[int, int]


def euler_tour(layout: TreeLayout) -> list[Node]:
    """The tensor nodes in the order a depth-first walk from the root passes them.

    Starts and ends at the root; consecutive entries are parent and child. Leaves are not
    entered (their legs belong to the node above them).
    """
    tour: list[Node] = []

    def walk(node: Node) -> None:
        tour.append(node)
        for child in layout.children(node):
            if not isinstance(child, int):
                walk(child)
                tour.append(node)

    walk(layout.root)
    return tour


def _contract_up(left: Tensor, right: Tensor, tensor: Tensor) -> Tensor:
    """``sum_ab L[t, a] R[t, b] T[a, b, p]`` as unit rows: (T, Da), (T, Db) -> (T, Dp)."""
    da, db, dp = tensor.shape
    opened = (left @ tensor.reshape(da, db * dp)).reshape(-1, db, dp)
    return unit_rows(torch.einsum("tbp,tb->tp", opened, right))


def _contract_down(other: Tensor, down: Tensor, tensor: Tensor, side: int) -> Tensor:
    """The environment of the child on ``side``: the node's other child ``other`` (T, D_o)
    and its own outside ``down`` (T, Dp) contracted with ``tensor``, as unit rows (T, D_side)."""
    da, db, dp = tensor.shape
    if side == 0:  # sum_bp T[k, b, p] other[t, b] down[t, p]
        opened = (down @ tensor.permute(2, 1, 0).reshape(dp, db * da)).reshape(-1, db, da)
    else:  # sum_ap T[a, k, p] other[t, a] down[t, p]
        opened = (down @ tensor.permute(2, 0, 1).reshape(dp, da * db)).reshape(-1, da, db)
    return unit_rows(torch.einsum("tok,to->tk", opened, other))


def _node_gradient(
    tensor: Tensor, left: Tensor, right: Tensor, down: Tensor
) -> tuple[Tensor, Tensor]:
    """NLL gradient in the centre tensor (Da, Db, Dp), and ``psi(x)`` up to per-sample scale."""
    da, db, dp = tensor.shape
    n = left.shape[0]
    opened = (left @ tensor.reshape(da, db * dp)).reshape(n, db, dp)
    psi = (torch.einsum("tbp,tb->tp", opened, right) * down).sum(1)
    tiny = torch.finfo(psi.dtype).tiny
    safe = torch.where(psi.abs() > tiny, psi, torch.full_like(psi, tiny))
    pair = ((left / safe.unsqueeze(1)).unsqueeze(2) * right.unsqueeze(1)).reshape(n, da * db)
    data_term = (pair.T @ down).reshape(da, db, dp)
    z = tensor.square().sum()
    return 2.0 * tensor / z - (2.0 / n) * data_term, psi


class _TreeSweeper:
    """Tensors, the centre and the cached environments of one tree sweep run."""

    def __init__(self, tensors: list[list[Tensor]], layout: TreeLayout, X: Tensor, centre: Node):
        self.layout = layout
        self.tensors = tensors
        self.centre = centre
        n_samples = X.shape[0]
        ones = torch.ones((n_samples, 1), dtype=tensors[0][0].dtype, device=X.device)
        self.up: dict[NodeRef, Tensor] = {}
        for leaf in range(layout.n_leaves):  # one-hot rows
            dim = self._leg(leaf)
            self.up[leaf] = torch.eye(dim, dtype=ones.dtype, device=X.device)[X[:, leaf]]
        path = {node for node, _ in layout.path_from_root(centre)} | {centre}
        for node in layout.nodes:  # bottom-up: every subtree without the centre
            if node not in path:
                a, b = layout.children(node)
                self.up[node] = _contract_up(self.up[a], self.up[b], self._t(node))
        self.down: dict[Node, Tensor] = {layout.root: ones}
        for node, side in layout.path_from_root(centre):
            child = layout.children(node)[side]
            other = layout.children(node)[1 - side]
            self.down[child] = _contract_down(  # type: ignore[index]
                self.up[other], self.down[node], self._t(node), side
            )

    def _t(self, node: Node) -> Tensor:
        return self.tensors[node[0]][node[1]]

    def _set(self, node: Node, tensor: Tensor) -> None:
        self.tensors[node[0]][node[1]] = tensor

    def _leg(self, leaf: int) -> int:
        (node, side) = self.layout.parent(leaf)  # type: ignore[misc]
        return self._t(node).shape[side]

    def update(self, *, lr: float, n_steps: int, grad_floor: bool) -> None:
        """Gradient steps on the centre tensor, renormalised to unit norm after each."""
        node = self.centre
        a, b = self.layout.children(node)
        left, right, down = self.up[a], self.up[b], self.down[node]
        tensor = self._t(node)
        for _ in range(n_steps):
            grad, _ = _node_gradient(tensor, left, right, down)
            if grad_floor:
                grad = floored_gradient(grad)
            tensor = tensor - lr * grad
            tensor = tensor / torch.linalg.vector_norm(tensor)
        if not bool(torch.isfinite(tensor).all()):
            raise TrainingError(
                f"the tensor of node {node} became non-finite; lower the learning rate (lr={lr})"
            )
        self._set(node, tensor)

    def move(self, target: Node) -> None:
        """Move the centre to ``target``, a child or the parent of the current centre."""
        node, layout = self.centre, self.layout
        bond_shapes = (self._t(node).shape, self._t(target).shape)
        up = layout.parent(node)
        if up is not None and up[0] == target:
            move_centre_up(self.tensors, node, target, up[1])
            a, b = layout.children(node)
            self.up[node] = _contract_up(self.up[a], self.up[b], self._t(node))
        else:
            children = layout.children(node)
            side = children.index(target)
            move_centre_down(self.tensors, node, side, target)  # type: ignore[arg-type]
            self.down[target] = _contract_down(
                self.up[children[1 - side]], self.down[node], self._t(node), side
            )
        if (self._t(node).shape, self._t(target).shape) != bond_shapes:
            raise InvalidInputError(
                f"the bond between nodes {node} and {target} is larger than the other legs of "
                "one of them can carry; build the tree with bonds capped by the dimension on "
                "both sides (as TTNBornModule does)"
            )
        self.centre = target


def _mean_nll(ttn: TTN, X: Tensor, batch_size: int = 4096) -> float:
    total = 0.0
    with torch.no_grad():
        for start in range(0, X.shape[0], batch_size):
            total -= float(ttn_log_prob(ttn, X[start : start + batch_size]).sum())
    return total / max(X.shape[0], 1)


def train_ttn_born_sweep(
    ttn: TTN,
    X: Tensor,
    *,
    X_val: Tensor | None = None,
    n_sweeps: int = 4,
    lr: float = 5e-3,
    n_steps: int = 1,
    grad_floor: bool = True,
    lr_decay: float | None = None,
    **loop: Unpack[LoopOptions],
) -> FitResult:
    """Train a tree Born machine on discrete data by one-site sweeps over the tree.

    Parameters
    ----------
    ttn : TTN
        Starting state (root output dimension 1), real; not modified. Its dtype is the
        working precision (float64 recommended). Every bond must be at most the product of
        the other two legs of the node on either side of it (true for the trees
        :class:`~tnml.nn.born.TTNBornModule` builds).
    X : Tensor, shape (T, N)
        Training data, integers with ``0 <= X[:, i] < d_i``.
    X_val : Tensor, optional
        Validation data of the same kind; its NLL is reported after every sweep, and the
        state of the sweep where it was lowest is the one returned.
    n_sweeps : int
        Number of sweeps (each a depth-first walk from the root and back to it).
    lr : float
        Gradient step size on the (unit-norm) centre tensor.
    n_steps : int
        Gradient steps each time the centre arrives at a node.
    grad_floor : bool, default=True
        Scale a gradient whose norm is below ``numel ** 0.25`` up to that norm (as
        :func:`~tnml.train.born_sweep.train_born_sweep`).
    lr_decay : float, optional
        After a sweep whose training NLL is higher than the previous sweep's, multiply the
        step size by ``lr_decay`` (in (0, 1)).
    **loop
        The loop's options (:class:`~tnml.train.LoopOptions`): ``callback(state, metrics)``
        after every sweep (``state``: ``sweep``, ``ttn``; True stops); ``progress``;
        ``checkpoint_path``, written after every sweep and on Ctrl-C (mid-sweep: the node
        reached); ``resume`` where it stopped.

    Returns
    -------
    FitResult
        ``model``: the trained :class:`~tnml.tensor.TTN`, canonical with the centre on the
        root (with validation data, that of the sweep with the lowest validation NLL);
        ``history``: one entry a sweep, the NLL as ``train_loss`` / ``val_loss``.
    """
    if not isinstance(ttn, TTN):
        raise InvalidInputError(f"ttn must be a tnml.tensor.TTN, got {type(ttn).__name__}")
    if ttn.tensors[-1][0].shape[2] != 1 or ttn.tensors[0][0].is_complex():
        raise InvalidInputError("a tree Born machine is a real TTN with root output dimension 1")
    n_sweeps = check_int("n_sweeps", n_sweeps, 1)
    n_steps = check_int("n_steps", n_steps, 1)
    check_step_options(lr, lr_decay)
    check_loop_options("train_ttn_born_sweep", loop)
    layout = ttn.layout
    leaf_dims = [0] * layout.n_leaves
    for node in layout.nodes:
        for side, child in enumerate(layout.children(node)):
            if isinstance(child, int):
                leaf_dims[child] = ttn.tensors[node[0]][node[1]].shape[side]
    X = check_basis_inputs(X, leaf_dims).to(ttn.device)
    if X_val is not None:
        X_val = check_basis_inputs(X_val, leaf_dims).to(ttn.device)

    rule = TreeBornSweepRule(
        ttn, X, X_val=X_val, lr=lr, n_steps=n_steps, grad_floor=grad_floor, lr_decay=lr_decay
    )
    return fit_loop(
        rule,
        epochs=n_sweeps,
        **loop,
    )


class TreeBornSweepRule(NLLSweepRule):
    """One-site sweeps of a tree Born machine (see :func:`train_ttn_born_sweep`): a step is
    one arrival of the centre on a node of the Euler tour, an epoch the whole tour."""

    name = "ttn-born-sweep"

    def __init__(
        self,
        ttn: TTN,
        X: Tensor,
        *,
        X_val: Tensor | None,
        lr: float,
        n_steps: int,
        grad_floor: bool,
        lr_decay: float | None,
    ) -> None:
        self.layout, self.X, self.X_val = ttn.layout, X, X_val
        self.dtype, self.device = ttn.dtype, ttn.device
        self.tensors = [list(row) for row in ttn_canonicalize(ttn).tensors]
        self.tour = euler_tour(self.layout)
        self.n_steps, self.grad_floor = n_steps, grad_floor
        self.lr, self.lr_decay = float(lr), lr_decay
        self.previous_nll = math.inf
        self.sweeper: _TreeSweeper | None = None
        self.final: TTN | None = None

    def steps_in_epoch(self, epoch: int) -> int:
        return len(self.tour)

    def begin_epoch(self, epoch: int, first_step: int) -> int:
        if self.sweeper is None:  # a new run, or a resumed one: the centre where it stopped
            centre = self.tour[first_step - 1] if first_step > 0 else self.layout.root
            self.sweeper = _TreeSweeper(self.tensors, self.layout, self.X, centre)
        return len(self.tour)

    def step(self, epoch: int, index: int) -> tuple[str, None]:
        assert self.sweeper is not None
        if index > 0:
            self.sweeper.move(self.tour[index])
        self.sweeper.update(lr=self.lr, n_steps=self.n_steps, grad_floor=self.grad_floor)
        return f"node {self.tour[index]}", None

    def _current(self) -> TTN:
        assert self.sweeper is not None
        out = TTN(self.layout, [list(row) for row in self.sweeper.tensors])
        out.is_canonical = self.sweeper.centre == self.layout.root
        return out

    def end_epoch(self, epoch: int) -> dict[str, Any]:
        model = self._current()
        val_nll = _mean_nll(model, self.X_val) if self.X_val is not None else math.nan
        return self.nll_entry(_mean_nll(model, self.X), val_nll)

    def state_dict(self) -> dict[str, Any]:
        tensors = self.sweeper.tensors if self.sweeper is not None else self.tensors
        return {
            "tensors": [list(row) for row in tensors],
            "lr": self.lr,
            "previous_nll": self.previous_nll,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.tensors = [
            [t.to(device=self.device, dtype=self.dtype) for t in row] for row in state["tensors"]
        ]
        self.sweeper = None
        self.lr, self.previous_nll = state["lr"], state["previous_nll"]

    def weights(self) -> list[list[Tensor]]:
        assert self.sweeper is not None
        return clone_nested(self.sweeper.tensors)

    def load_weights(self, weights: list[list[Tensor]]) -> None:
        rows = [[t.to(self.device, self.dtype) for t in row] for row in weights]
        self.final = TTN(self.layout, rows)
        self.final.is_canonical = True  # kept at the end of a sweep, the centre on the root

    def callback_info(self) -> dict[str, Any]:
        return {"ttn": self._current()}

    def result(self) -> TTN:
        return self.final if self.final is not None else self._current()
