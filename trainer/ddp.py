"""Process-group setup for ``torchrun`` (DDP) and the few collectives the loop needs."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Distributed:
    """This process's place in the job.

    Attributes:
        rank: global rank (0 writes files).
        local_rank: rank on this node (picks the GPU).
        world_size: number of processes.
    """

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device_type: str) -> Distributed:
    """Join the process group when launched by torchrun (``WORLD_SIZE`` > 1), else single process.

    Uses NCCL on CUDA and gloo on the CPU.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Distributed()
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        if device_type == "cuda":
            torch.cuda.set_device(local_rank)
        dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return Distributed(rank, local_rank, world_size)


def teardown(context: Distributed) -> None:
    """Leave the process group."""
    if context.enabled and dist.is_initialized():
        dist.destroy_process_group()


def broadcast(value: Any, context: Distributed) -> Any:
    """Rank 0's ``value`` on every rank (any picklable object)."""
    if not context.enabled:
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def gather(value: Any, context: Distributed) -> list[Any]:
    """Every rank's ``value``, in rank order, on every rank."""
    if not context.enabled:
        return [value]
    values: list[Any] = [None] * context.world_size
    dist.all_gather_object(values, value)
    return values


def sync_buffers(module: torch.nn.Module, context: Distributed) -> None:
    """Copy rank 0's buffers (BatchNorm statistics) to every rank."""
    if not context.enabled:
        return
    for buffer in module.buffers():
        dist.broadcast(buffer.data, src=0)


def barrier(context: Distributed) -> None:
    """Wait for every rank."""
    if context.enabled:
        dist.barrier()
