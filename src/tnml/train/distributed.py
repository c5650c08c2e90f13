"""Helpers for data-parallel training on ``torch.distributed`` (launched with ``torchrun``)."""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

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
