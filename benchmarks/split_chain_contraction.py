"""A probe of the sequential contraction without step-matrix copies, against the library's.

``tnml.tensor.contract.reduce_sequential`` copies the cores once a step into step matrices
(both chains stacked, the right chain's bond legs swapped: a transposing copy), so that a
site costs one batched GEMM for both chains, and copies the gradients back the same way. A
profile of the D = 128 training step (196 sites, batch 100, 2 threads) puts those copies at
about a quarter of the step. This script's ``SplitChains`` does without them: each chain gets
its own GEMM per site on views of the cores (the right chain as a transposed operand), and
the backward pass writes each core's gradient in place; the price is twice the kernel calls
per site. Both are timed, forward and backward of ``sum(env_left * env_right) + 0.1 *
sum(log_scale)`` on 196 sites (output site 98), batch 100, d = 2, near-identity cores,
float32, alternating twice per bond dimension, after checking that they agree.

    python benchmarks/split_chain_contraction.py --bond-dims 10 64 128 --threads 2
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import Tensor

from tnml.tensor.contract import RENORM_INTERVAL, reduce_sequential

_TINY = 1e-30


class SplitChains(torch.autograd.Function):
    """Both chains of ``reduce_sequential``, each with its own GEMM per site on views of the
    cores (no step matrices); same inputs and outputs."""

    @staticmethod
    def forward(ctx, cores: Tensor, phi: Tensor, output_site: int):  # type: ignore[override]
        n_cores, bond, phys, _ = cores.shape
        batch = phi.shape[0]
        c = cores.detach()
        out = phi.new_empty(2, batch, bond)
        logs = phi.new_zeros(2, batch)
        saved = []
        chains = (list(range(output_site)), list(range(n_cores - 1, output_site - 1, -1)))
        for chain, index in enumerate(chains):
            sites = index if chain == 0 else [k + 1 for k in index]  # no core at the output
            n = len(index)
            envs = phi.new_empty(n + 1, batch, bond)
            envs[0].zero_()
            envs[0, :, 0] = 1
            norms: list[tuple[int, Tensor]] = []
            feats = phi[:, sites].permute(1, 2, 0).contiguous()  # (n, d, B)
            if chain == 0:  # moved[b, s, r] = sum_l env[b, l] core[l, s, r]
                moved = phi.new_empty(batch, phys, bond)
                parts = moved.unbind(1)
                mats = [c[k].view(bond, phys * bond) for k in index]
            else:  # moved[b, l, s] = sum_r env[b, r] core[l, s, r]
                moved = phi.new_empty(batch, bond, phys)
                parts = moved.unbind(2)
                mats = [c[k].view(bond * phys, bond).t() for k in index]
            flat = moved.view(batch, -1)
            for t in range(n):
                torch.mm(envs[t], mats[t], out=flat)
                env = envs[t + 1]
                torch.mul(parts[0], feats[t, 0].unsqueeze(-1), out=env)
                for s in range(1, phys):
                    env.addcmul_(parts[s], feats[t, s].unsqueeze(-1))
                if (t + 1) % RENORM_INTERVAL == 0 or t == n - 1:
                    norm = torch.linalg.vector_norm(env, dim=-1, keepdim=True).clamp_(min=_TINY)
                    env.div_(norm)
                    norms.append((t, norm))
            out[chain] = envs[n]
            if norms:
                logs[chain] = sum(norm.log().squeeze(-1) for _, norm in norms)
            saved.append((index, feats, envs, dict(norms)))
        ctx.saved = saved
        ctx.save_for_backward(cores)
        return out, logs

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: Tensor, grad_log: Tensor):  # type: ignore[override]
        (cores,) = ctx.saved_tensors
        _, bond, phys, _ = cores.shape
        c = cores.detach()
        grad = torch.empty_like(cores)
        for chain, (index, feats, envs, norms) in enumerate(ctx.saved):
            batch = envs.shape[1]
            g = grad_out[chain].clone()
            shape = (batch, phys, bond) if chain == 0 else (batch, bond, phys)
            grad_moved = envs.new_empty(shape)
            flat = grad_moved.view(batch, -1)
            for t in range(len(index) - 1, -1, -1):
                if t in norms:
                    unit = envs[t + 1]
                    radial = (g * unit).sum(-1, keepdim=True) - grad_log[chain].unsqueeze(-1)
                    g.sub_(radial * unit).div_(norms[t])
                k = index[t]
                if chain == 0:
                    torch.mul(g.unsqueeze(1), feats[t].t().unsqueeze(-1), out=grad_moved)
                    torch.mm(envs[t].t(), flat, out=grad[k].view(bond, phys * bond))
                    torch.mm(flat, c[k].view(bond, phys * bond).t(), out=g)
                else:
                    torch.mul(g.unsqueeze(-1), feats[t].t().unsqueeze(1), out=grad_moved)
                    torch.mm(flat.t(), envs[t], out=grad[k].view(bond * phys, bond))
                    torch.mm(flat, c[k].view(bond * phys, bond), out=g)
        return grad, None, None


def problem(bond: int, n_sites: int = 196, batch: int = 100) -> tuple[Tensor, Tensor]:
    torch.manual_seed(0)
    eye = torch.eye(bond).unsqueeze(1).expand(bond, 2, bond)
    cores = eye + 0.01 * torch.randn(n_sites - 1, bond, 2, bond)
    x = torch.rand(batch, n_sites)
    phi = torch.stack([torch.cos(x * torch.pi / 2), torch.sin(x * torch.pi / 2)], -1)
    return cores.contiguous().requires_grad_(), phi


def forward_backward(reduce, cores: Tensor, phi: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    env, log_scale = reduce(cores, phi, 98)
    ((env[0] * env[1]).sum() + 0.1 * log_scale.sum()).backward()
    grad = cores.grad
    cores.grad = None
    return env.detach(), log_scale.detach(), grad


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bond-dims", type=int, nargs="+", default=[10, 64, 128])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--min-time", type=float, default=2.0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    contestants = {"library (step matrices)": reduce_sequential, "split chains": SplitChains.apply}
    for bond in args.bond_dims:
        cores, phi = problem(bond)
        (e1, l1, g1), (e2, l2, g2) = (forward_backward(f, cores, phi) for f in contestants.values())
        print(
            f"D = {bond}: max |env diff| {float((e1 - e2).abs().max()):.1e}, max |log diff| "
            f"{float((l1 - l2).abs().max()):.1e}, gradient diff / max "
            f"{float((g1 - g2).abs().max() / g1.abs().max()):.1e}"
        )
        for _ in range(2):
            for name, reduce in contestants.items():
                for _ in range(3):
                    forward_backward(reduce, cores, phi)
                start, count = time.perf_counter(), 0
                while time.perf_counter() - start < args.min_time:
                    forward_backward(reduce, cores, phi)
                    count += 1
                ms = (time.perf_counter() - start) / count * 1e3
                print(f"  {name:24s} {ms:7.2f} ms forward + backward", flush=True)


if __name__ == "__main__":
    main()
