"""DistributedDataParallel plumbing: process group from torchrun's environment, and helpers.

One training process per GPU, started by ``torchrun`` (see :mod:`cloudfree.train.launch`):
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` come from the
environment.  Without them (``WORLD_SIZE`` unset or 1) everything is a no-op and training
runs in a single process.  NCCL on CUDA, gloo on the CPU: the same code path runs in tests
on a CPU with two processes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta

from cloudfree.extras import missing_extra

try:
    import torch
    import torch.distributed as dist
except ImportError as exc:
    raise missing_extra("torch", "train") from exc


@dataclass
class DistContext:
    """Where this process sits in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    owns_group: bool = False  # this module started the process group

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


COLLECTIVE_TIMEOUT = timedelta(hours=2)


def setup(device: torch.device) -> DistContext:
    """Join the process group described by the environment (if any) on ``device``'s type.

    On CUDA each process takes GPU ``LOCAL_RANK``.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext(device=device)
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    if device.type == "cuda":
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    owns = False
    if not dist.is_initialized():
        # Rank 0 validates and writes checkpoints while the others wait at a collective:
        # a generous timeout, so a long validation is not taken for a hung rank.
        dist.init_process_group(
            backend=backend, rank=rank, world_size=world, timeout=COLLECTIVE_TIMEOUT
        )
        owns = True
    return DistContext(rank, world, local, device, owns)


def cleanup(ctx: DistContext) -> None:
    """Leave the process group if :func:`setup` joined it."""
    if ctx.owns_group and dist.is_initialized():
        dist.destroy_process_group()


def all_sum(ctx: DistContext, values: list[float]) -> list[float]:
    """Element-wise sum of ``values`` over the processes (identity in a single process)."""
    if not ctx.distributed:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def broadcast_flag(ctx: DistContext, flag: bool) -> bool:
    """Rank 0's ``flag`` on every process."""
    if not ctx.distributed:
        return flag
    t = torch.tensor([1 if flag else 0], dtype=torch.int64, device=ctx.device)
    dist.broadcast(t, src=0)
    return bool(t.item())


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        dist.barrier()


def weights_checksum(model: torch.nn.Module) -> float:
    """Sum of every parameter and buffer (float64): equal on every replica after a step."""
    total = 0.0
    for value in model.state_dict().values():
        if value.is_floating_point():
            total += float(value.detach().double().sum())
    return total


def check_replicas(ctx: DistContext, model: torch.nn.Module) -> list[float]:
    """Checksums of every replica's weights; raises RuntimeError when they differ."""
    mine = weights_checksum(model)
    if not ctx.distributed:
        return [mine]
    sums = [0.0] * ctx.world_size
    sums[ctx.rank] = mine
    sums = all_sum(ctx, sums)
    if any(abs(s - sums[0]) > 1e-6 * max(1.0, abs(sums[0])) for s in sums):
        raise RuntimeError(f"DDP replicas disagree after training: weight checksums {sums}")
    return sums
