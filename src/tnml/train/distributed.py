"""Helpers for data-parallel training on ``torch.distributed`` (launched with ``torchrun``)."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import Tensor

from tnml.exceptions import InvalidInputError

_TORCHRUN_VARS = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def distributed_context() -> tuple[int, int]:
    """``(rank, world_size)`` of this process; ``(0, 1)`` when not running distributed."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def all_reduce_sum(values: list[float], device: torch.device) -> list[float]:
    """Sum a few numbers over all processes (returns ``values`` when not distributed)."""
    if distributed_context()[1] == 1:
        return values
    buffer = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(buffer, op=dist.ReduceOp.SUM)
    return buffer.tolist()


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


def all_reduce_(t: Tensor) -> Tensor:
    """Sum ``t`` over all processes in place (no-op when not distributed)."""
    if distributed_context()[1] > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def broadcast_tensors(tensors: list[Tensor]) -> list[Tensor]:
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


def init_distributed(device: str = "cpu") -> tuple[int, int, str]:
    """Join the process group that ``torchrun`` set up in the environment.

    Uses NCCL when ``device`` is a CUDA device (each process takes GPU ``LOCAL_RANK``) and gloo
    otherwise.

    Returns
    -------
    rank, world_size, device
        ``device`` is the one this process should train on (``"cuda:<local rank>"`` on GPU).
    """
    missing = [name for name in _TORCHRUN_VARS if name not in os.environ]
    if missing:
        raise InvalidInputError(
            "distributed training must be started by torchrun (e.g. 'torchrun "
            "--nproc-per-node 2 $(which tnml) train ... --distributed'); missing environment "
            f"variables: {', '.join(missing)}"
        )
    use_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    if use_cuda:
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local_rank)
        device = f"cuda:{local_rank}"
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return dist.get_rank(), dist.get_world_size(), device
