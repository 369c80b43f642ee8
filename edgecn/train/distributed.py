"""Data-parallel training under torchrun: process group setup and rank helpers.

With ``WORLD_SIZE`` unset or 1 everything here is a no-op, so the training loop has one
code path. Every rank computes the condensing masks itself from identical (all-reduced)
weights, so masks stay identical without being communicated.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.distributed as dist


@dataclasses.dataclass(frozen=True)
class Context:
    """Where this process stands: rank, world size and the device it trains on."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup() -> Context:
    """Join the process group torchrun describes (gloo on CPU, nccl on CUDA), if any."""
    from edgecn import environment

    rank, world, local, _ = environment.distributed()
    if torch.cuda.is_available():
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", rank=rank, world_size=world)
    return Context(rank, world, local, device)


def teardown(ctx: Context) -> None:
    """Leave the process group (after every rank is done)."""
    if ctx.distributed and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def wrap(model: torch.nn.Module, ctx: Context) -> torch.nn.Module:
    """``DistributedDataParallel`` around ``model`` when there is more than one rank."""
    if not ctx.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    # No buffer broadcast: masks must come from each rank's own (identical) weights, and
    # BN statistics are averaged over ranks by ``average_bn_stats`` instead of taken from rank 0.
    return DistributedDataParallel(model, device_ids=ids, broadcast_buffers=False)


@torch.no_grad()
def average_bn_stats(model: torch.nn.Module, ctx: Context) -> None:
    """Average BatchNorm running statistics over ranks, so every rank holds the same model."""
    if not ctx.distributed:
        return
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
            for t in (m.running_mean, m.running_var):
                dist.all_reduce(t)
                t.div_(ctx.world_size)


def all_sum(values: list[float], ctx: Context) -> list[float]:
    """Element-wise sum of ``values`` over all ranks (identity on one rank)."""
    if not ctx.distributed:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=ctx.device)
    dist.all_reduce(t)
    return t.tolist()
