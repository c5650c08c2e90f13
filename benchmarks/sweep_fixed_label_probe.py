"""Probe (issue 17): two-site sweeps with the label fixed on one core, against tnml's sweeps
that carry the label along with the updated bond.

Why: tnml's sweeps (after Stoudenmire & Schwab) merge the label core into every bond they
update and move the label across it, so each bond's local problem holds ``D^2 d^2 L``
weights (16,000 at D = 20) and every split must also carry the label across the cut, which a
bond of ``D`` cannot do exactly (a near-zero step sweep loses ~2 points of training accuracy
at D = 20). Here the label stays on the middle core; a bond away from it is a label-free
``(Dl d, d Dr)`` tensor (1,600 weights at D = 20) and the environment on the label's side
carries the label index, ``(n, D, L)`` per site. Everything else follows tnml's defaults: a
pass of mini-batch gradient steps per bond on the normalised readout's cross-entropy, step
``2 sqrt(batch / n)`` divided by the temperature, capped at 0.2 on the unit-norm bond tensor,
the temperature refitted on the validation images after each sweep, every sweep scored.
Splits are plain truncated SVDs in both (``--truncation norm``, the default here, for tnml's
run), so the label's path is the one difference. ``--truncation data``, ``--bond-schedule``
and ``--cutoff`` vary tnml's own sweeps on the same protocol.

Data: the first ``--n-train`` MNIST training images (14x14) train, the next ``--n-val``
validate; training images 50,000-59,999 score both models (``held-out``); the test set is not
read. Prints one line per sweep for each trainer.

    python benchmarks/sweep_fixed_label_probe.py --trainer fixed --max-bond 20 --sweeps 4
    python benchmarks/sweep_fixed_label_probe.py --trainer tnml --max-bond 20 --sweeps 4
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
import torch
from torch.nn import functional as F

from tnml.data import downsample, flatten_images, load_mnist
from tnml.features import embed
from tnml.nn import MPSClassifierModule
from tnml.train.bond_sweeper import _cross_entropy_scale
from tnml.train.labelled_mps import LabelledMPS
from tnml.train.sweep import train_sweep

MAX_STEP = 0.2


def _unit_rows(env: torch.Tensor) -> torch.Tensor:
    norm = env.flatten(1).norm(dim=1).clamp_min(1e-30)
    return env / norm.view(-1, *([1] * (env.dim() - 1)))


class FixedLabelSweeper:
    """Two-site sweeps of an MPS whose label stays on core ``c`` (cores ``(Dl, d, Dr)``, the
    label core ``(Dl, d, L, Dr)``). Left environments of sites ``k > c`` and right ones of sites
    ``k < c`` carry the label: ``(n, D, L)``; the others are ``(n, D)``; all unit rows."""

    def __init__(self, model: LabelledMPS, phi: torch.Tensor, y: torch.Tensor) -> None:
        self.c = model.label_site
        self.n_classes = model.n_classes
        self.cores = [core.clone() for core in model.cores]
        self.cores[self.c] = model.label_core.clone()
        self.t = math.exp(model.log_temperature)
        self.phi = phi.transpose(0, 1).contiguous()  # (N, n, d)
        self.y = y
        self.n_sites = len(self.cores)
        self._right_canonical()
        self.left: list[torch.Tensor | None] = [None] * self.n_sites
        self.right: list[torch.Tensor | None] = [None] * self.n_sites
        n = phi.shape[0]
        self.left[0] = phi.new_ones(n, 1)
        self.right[self.n_sites - 1] = phi.new_ones(n, 1)
        for k in range(self.n_sites - 2, -1, -1):
            self.right[k] = self._extend_right(k + 1, self.right[k + 1], self.phi[k + 1])

    # ---- structure ---------------------------------------------------------------------------

    def _matrix(self, k: int) -> torch.Tensor:
        core = self.cores[k]
        return core.reshape(core.shape[0], -1)

    def _right_canonical(self) -> None:
        for k in range(self.n_sites - 1, 0, -1):
            core = self.cores[k]
            shape = core.shape
            q, r = torch.linalg.qr(core.reshape(shape[0], -1).T)
            self.cores[k] = q.T.reshape(-1, *shape[1:])
            prev = self.cores[k - 1]
            # the overall scale is irrelevant (normalised readout): keep it at 1, not 2^98
            r = r / r.norm()
            self.cores[k - 1] = torch.tensordot(prev, r.T, dims=([prev.dim() - 1], [0]))
        self.cores[0] = self.cores[0] / self.cores[0].norm()

    def _extend_left(self, k: int, env: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
        core = self.cores[k]
        if k == self.c:
            out = torch.einsum("na,ns,aslb->nbl", env, phi, core)
        elif k > self.c:
            out = torch.einsum("nal,ns,asb->nbl", env, phi, core)
        else:
            out = torch.einsum("na,ns,asb->nb", env, phi, core)
        return _unit_rows(out)

    def _extend_right(self, k: int, env: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
        core = self.cores[k]
        if k == self.c:
            out = torch.einsum("nb,ns,aslb->nal", env, phi, core)
        elif k < self.c:
            out = torch.einsum("nbl,ns,asb->nal", env, phi, core)
        else:
            out = torch.einsum("nb,ns,asb->na", env, phi, core)
        return _unit_rows(out)

    # ---- one bond ----------------------------------------------------------------------------

    def _merged(self, k: int) -> torch.Tensor:
        """Bond tensor as ``(Dl d, L, d Dr)`` when it holds the label, else ``(Dl d, d Dr)``."""
        a, b = self.cores[k], self.cores[k + 1]
        if k == self.c:
            m = torch.einsum("aslm,mtr->asltr", a, b)
            return m.reshape(a.shape[0] * a.shape[1], self.n_classes, -1)
        if k + 1 == self.c:
            m = torch.einsum("asm,mtlr->asltr", a, b)
            return m.reshape(a.shape[0] * a.shape[1], self.n_classes, -1)
        return torch.einsum("asm,mtr->astr", a, b).reshape(a.shape[0] * a.shape[1], -1)

    def _amplitudes(self, k: int, bond: torch.Tensor, rows: torch.Tensor):
        """Amplitudes (B, L) of the samples at ``rows``, and a function of ``dloss/dc`` that
        gives the bond's gradient."""
        left, right = self.left[k][rows], self.right[k + 1][rows]
        phi_l, phi_r = self.phi[k][rows], self.phi[k + 1][rows]
        if bond.dim() == 3:  # the label in the bond: plain environments on both sides
            x = (left[:, :, None] * phi_l[:, None, :]).flatten(1)
            yv = (phi_r[:, :, None] * right[:, None, :]).flatten(1)
            t = (x @ bond.flatten(1)).view(x.shape[0], self.n_classes, -1)
            c = torch.bmm(t, yv.unsqueeze(2)).squeeze(2)
            return c, lambda g: (x.T @ (g[:, :, None] * yv[:, None, :]).flatten(1)).view_as(bond)
        if k + 1 < self.c:  # the right environment carries the label
            x = (left[:, :, None] * phi_l[:, None, :]).flatten(1)
            yv = (phi_r[:, :, None, None] * right[:, None, :, :]).flatten(1, 2)  # (B, dDr, L)
            c = torch.einsum("nj,njl->nl", x @ bond, yv)
            return c, lambda g: x.T @ torch.einsum("nl,njl->nj", g, yv)
        # the left environment carries the label
        x = (left[:, :, None, :] * phi_l[:, None, :, None]).flatten(1, 2)  # (B, Dl d, L)
        yv = (phi_r[:, :, None] * right[:, None, :]).flatten(1)
        c = torch.einsum("njl,nj->nl", x, yv @ bond.T)
        return c, lambda g: torch.einsum("nl,njl->nj", g, x).T @ yv

    def update_bond(self, k: int, direction: str, lr: float, batch: int, gen, max_bond: int):
        bond = self._merged(k)
        bond = bond / bond.norm()
        n = self.y.shape[0]
        loss_sum = correct = 0.0
        for rows in torch.randperm(n, generator=gen).split(batch):
            c, grad_of = self._amplitudes(k, bond, rows)
            with torch.enable_grad():
                c = c.detach().requires_grad_(True)
                logits = self.t * c / c.norm(dim=1, keepdim=True).clamp_min(1e-30)
                loss = F.cross_entropy(logits, self.y[rows], reduction="sum")
                (g,) = torch.autograd.grad(loss, c)
            c = c.detach()
            loss_sum += float(loss)
            correct += float((c.argmax(1) == self.y[rows]).sum())
            step = lr * grad_of(g) / (rows.numel() * self.t)
            step = step * min(1.0, MAX_STEP / max(float(step.norm()), 1e-30))
            bond = bond - step
            bond = bond / bond.norm()
        self._split(k, bond, direction, max_bond)
        if direction == "right":
            self.left[k + 1] = self._extend_left(k, self.left[k], self.phi[k])
        else:
            self.right[k] = self._extend_right(k + 1, self.right[k + 1], self.phi[k + 1])
        return loss_sum / n, correct / n

    def _split(self, k: int, bond: torch.Tensor, direction: str, max_bond: int) -> None:
        a, b = self.cores[k], self.cores[k + 1]
        dl, d = a.shape[0], a.shape[1]
        dr = b.shape[-1]
        if k == self.c:  # label stays left: (Dl d L) x (d Dr)
            mat = bond.reshape(dl * d * self.n_classes, -1)
        elif k + 1 == self.c:  # label stays right: (Dl d) x (d L Dr)
            mat = bond.view(dl * d, self.n_classes, d, dr).transpose(1, 2).reshape(dl * d, -1)
        else:
            mat = bond
        u, s, vh = torch.linalg.svd(mat, full_matrices=False)
        keep = int(min(max_bond, int((s > 1e-10 * s[0]).sum())))
        u, s, vh = u[:, :keep], s[:keep], vh[:keep]
        s = s / s.norm()
        if direction == "right":
            vh = s[:, None] * vh
        else:
            u = u * s[None, :]
        if k == self.c:
            self.cores[k] = u.reshape(dl, d, self.n_classes, keep)
            self.cores[k + 1] = vh.reshape(keep, d, dr)
        elif k + 1 == self.c:
            self.cores[k] = u.reshape(dl, d, keep)
            self.cores[k + 1] = vh.reshape(keep, d, self.n_classes, dr)
        else:
            self.cores[k] = u.reshape(dl, d, keep)
            self.cores[k + 1] = vh.reshape(keep, d, dr)

    # ---- whole chain -------------------------------------------------------------------------

    def amplitudes(self, phi: torch.Tensor) -> torch.Tensor:
        """(n, N, d) -> (n, L), each row divided by its norm."""
        env = phi.new_ones(phi.shape[0], 1)
        for k in range(self.n_sites):
            env = self._extend_left(k, env, phi[:, k])
        return env[:, 0, :]

    def fit_temperature(self, phi_val: torch.Tensor, y_val: torch.Tensor) -> None:
        c = self.amplitudes(phi_val)
        u = (c / c.norm(dim=1, keepdim=True)).double()
        self.t = _cross_entropy_scale(u, y_val, self.t, n_steps=30)

    def metrics(self, phi: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        c = self.amplitudes(phi)
        logits = self.t * c / c.norm(dim=1, keepdim=True)
        return float(F.cross_entropy(logits, y)), float((c.argmax(1) == y).float().mean())


def _load(args: argparse.Namespace):
    images, labels = load_mnist(args.data_dir, "train")
    x = flatten_images(downsample(images, 14)).astype(np.float32)
    phi = embed(torch.from_numpy(np.ascontiguousarray(x)), "trig", 2)
    y = torch.from_numpy(labels.astype(np.int64))
    tr = slice(0, args.n_train)
    va = slice(args.n_train, args.n_train + args.n_val)
    ho = slice(50_000, 60_000)
    return (phi[tr], y[tr]), (phi[va], y[va]), (phi[ho], y[ho])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trainer", choices=["fixed", "tnml"], required=True)
    parser.add_argument("--max-bond", type=int, default=20)
    parser.add_argument("--sweeps", type=int, default=4)
    parser.add_argument("--n-train", type=int, default=9000)
    parser.add_argument("--n-val", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--lr", type=float, default=None, help="default 2 sqrt(batch / n)")
    parser.add_argument("--data-dir", default="../shared/data/mnist")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--bond-schedule", default=None, help="tnml: the max bond of each sweep, e.g. 5,10,20,20"
    )
    parser.add_argument(
        "--cutoff",
        type=float,
        default=1e-10,
        help="tnml: relative singular-value cutoff of the splits",
    )
    parser.add_argument(
        "--truncation",
        choices=["norm", "data"],
        default="norm",
        help="tnml's splits (the fixed-label trainer's are plain SVDs)",
    )
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    (phi, y), (phi_val, y_val), (phi_ho, y_ho) = _load(args)
    n_sites = phi.shape[1]
    module = MPSClassifierModule(n_sites, 10, 2)
    start = LabelledMPS.from_module(module)
    lr = args.lr if args.lr is not None else 2.0 * math.sqrt(args.batch / args.n_train)
    print(f"trainer {args.trainer}  D {args.max_bond}  n {args.n_train}  lr {lr:.4g}", flush=True)
    rows = []
    began = time.perf_counter()
    if args.trainer == "tnml":

        def record(sweep: int, model: LabelledMPS, t0: float) -> None:
            with torch.no_grad():
                for name, p, q in (("val", phi_val, y_val), ("held-out", phi_ho, y_ho)):
                    acc = float((model.amplitudes(p).argmax(1) == q).float().mean())
                    rows.append({"sweep": sweep, "set": name, "accuracy": acc})
            print(
                f"sweep {sweep}: {rows[-2]['accuracy']:.4f} val, {rows[-1]['accuracy']:.4f} "
                f"held-out  ({time.perf_counter() - t0:.0f} s)",
                flush=True,
            )

        bonds = [args.max_bond] * args.sweeps
        if args.bond_schedule:
            bonds = [int(b) for b in args.bond_schedule.split(",")]
            if len(bonds) != args.sweeps:
                parser.error("--bond-schedule needs one bond per sweep")
        for sweep in range(1, args.sweeps + 1):  # one sweep at a time, warm, to score each
            result = train_sweep(
                start,
                phi,
                y,
                n_sweeps=1,
                max_bond=bonds[sweep - 1],
                loss="cross_entropy",
                cutoff=args.cutoff,
                lr=lr,
                batch_size=args.batch,
                seed=args.seed + sweep,
                truncation=args.truncation,
                phi_val=phi_val,
                y_val=y_val,
                fit_scale=sweep == 1,
                progress=False,
            )
            start = result.model
            record(sweep, start, began)
    else:
        sweeper = FixedLabelSweeper(start, phi, y)
        gen = torch.Generator().manual_seed(args.seed)
        with torch.no_grad():
            sweeper.fit_temperature(phi, y)
        for sweep in range(1, args.sweeps + 1):
            with torch.no_grad():
                for k in range(n_sites - 1):
                    _, train_acc = sweeper.update_bond(
                        k, "right", lr, args.batch, gen, args.max_bond
                    )
                for k in range(n_sites - 2, -1, -1):
                    _, train_acc = sweeper.update_bond(
                        k, "left", lr, args.batch, gen, args.max_bond
                    )
                sweeper.fit_temperature(phi_val, y_val)
                val_loss, val_acc = sweeper.metrics(phi_val, y_val)
                _, ho_acc = sweeper.metrics(phi_ho, y_ho)
            rows.append(
                {
                    "sweep": sweep,
                    "train_acc_last_pass": train_acc,
                    "val_loss": val_loss,
                    "val": val_acc,
                    "held_out": ho_acc,
                    "temperature": sweeper.t,
                }
            )
            print(
                f"sweep {sweep}: train (last pass) {train_acc:.4f}  val {val_acc:.4f} "
                f"(loss {val_loss:.4f})  held-out {ho_acc:.4f}  t {sweeper.t:.2f}  "
                f"({time.perf_counter() - began:.0f} s)",
                flush=True,
            )
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"args": vars(args), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
