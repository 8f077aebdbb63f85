"""Process-group plumbing for training under `torchrun`: one process per device, rank 0 writes files.

Without torchrun's environment variables everything here degrades to a single process and makes no
collective calls, so plain `tiny-copilot train` never touches torch.distributed.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProcessGroup:
    rank: int
    world_size: int
    local_rank: int
    local_world_size: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1


def init_process_group(device_type: str) -> ProcessGroup:
    """Join the torchrun process group (gloo on CPU, nccl on CUDA), or describe a lone process."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    group = ProcessGroup(
        rank=int(os.environ.get("RANK", "0")),
        world_size=world_size,
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        local_world_size=int(os.environ.get("LOCAL_WORLD_SIZE", str(world_size))),
    )
    if group.is_distributed and not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
        log.info("joined process group: rank %d of %d (%s)", group.rank, group.world_size, backend)
    return group


def destroy_process_group(group: ProcessGroup) -> None:
    if group.is_distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(group: ProcessGroup) -> None:
    if group.is_distributed:
        dist.barrier()


def broadcast_from_main(group: ProcessGroup, value: Any) -> Any:
    """Return rank 0's `value` on every rank (a small JSON-like object, sent by torch.distributed)."""
    if not group.is_distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def max_over_ranks(group: ProcessGroup, values: list[float], device: torch.device) -> list[float]:
    """Return the element-wise maximum of `values` over all ranks (the values themselves in one process)."""
    if not group.is_distributed:
        return values
    tensor = torch.tensor(values, dtype=torch.float32, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return tensor.tolist()
