"""Multi-process training with torch.distributed: `torchrun --nproc_per_node=N -m dance train ...`.

torchrun sets RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT; `setup()` turns them into a
process group (gloo on CPU, nccl on CUDA). Without them every helper here is a no-op, so single-process
training runs the very same code.
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistContext:
    """This process's place in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        """Whether more than one process trains."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that logs and writes files."""
        return self.rank == 0


def env_context() -> DistContext:
    """The context torchrun describes in the environment (single process when it describes none)."""
    return DistContext(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                       int(os.environ.get("LOCAL_RANK", 0)))


def setup(device: torch.device) -> tuple[DistContext, torch.device]:
    """Join the process group torchrun describes (once per process); returns (context, this rank's device)."""
    ctx = env_context()
    if not ctx.enabled:
        return ctx, device
    if device.type == "cuda":
        device = torch.device("cuda", ctx.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        atexit.register(_leave)
    return ctx, device


def _leave() -> None:
    """Leave the process group at exit (a train() call may be followed by others in the same process)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def active() -> bool:
    """Whether a multi-process group is running."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def is_main() -> bool:
    """True in single-process runs and on rank 0."""
    return not active() or dist.get_rank() == 0


def sum_across(values: list[float], device: torch.device | None = None) -> list[float]:
    """Element-wise sum of `values` over every rank (identity in a single process)."""
    if not active():
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor.tolist()


def agree(flag: bool) -> bool:
    """Rank 0's decision, on every rank (callbacks run on rank 0 only, yet all ranks must stop together)."""
    if not active():
        return flag
    holder = [flag]
    dist.broadcast_object_list(holder, src=0)
    return bool(holder[0])


def barrier() -> None:
    """Wait for every rank (no-op in a single process)."""
    if active():
        dist.barrier()


def per_rank_batch(batch_size: int, world_size: int) -> int:
    """Each rank's share of the global batch, so N processes take the same optimiser steps as one."""
    return max(1, batch_size // world_size)


def wrap(model: torch.nn.Module, device: torch.device, find_unused: bool) -> torch.nn.Module:
    """`model` inside DistributedDataParallel when a group is running, else unchanged.

    `find_unused` must be true when some parameters get no gradient in some epochs (a frozen backbone).
    """
    if not active():
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=find_unused)
