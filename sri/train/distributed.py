"""Multi-process (DDP) pieces of the trainer; each is a no-op or plain call in a single process.

Every rank keeps the same GECO state (errors averaged over ranks), stops at the same step
(flags reduced with MAX), and a checkpoint holds every rank's RNG state.
"""
from __future__ import annotations

import functools
import os
from typing import Any

import torch
import torch.distributed as dist


def world_info() -> tuple[int, int, int]:
    """(world size, rank, local rank) from the torchrun environment; (1, 0, 0) without it."""
    return (int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0")),
            int(os.environ.get("LOCAL_RANK", "0")))


def init_process_group(device: torch.device) -> bool:
    """Join the process group (nccl on CUDA, gloo on CPU) unless already joined; True if it joined."""
    if dist.is_initialized():
        return False
    dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return True


def leave_process_group() -> None:
    """Leave the process group `init_process_group` joined (if it is still up)."""
    if dist.is_initialized():
        dist.destroy_process_group()


class _DDP(torch.nn.parallel.DistributedDataParallel):
    """DDP that forwards unknown attributes (`name`, `options`, `sample`, …) to the model."""

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.module, name)


def _allreduce_update(original, device: torch.device, err: Any) -> None:
    """GECO.update with the error averaged over ranks, so every rank keeps the same GECO state."""
    e = float(err.detach()) if isinstance(err, torch.Tensor) else float(err)
    t = torch.tensor([e], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    original(float(t.item()) / dist.get_world_size())


def wrap_ddp(model: torch.nn.Module, gecos: dict[str, Any], device: torch.device) -> torch.nn.Module:
    """`model` in DDP (unknown attributes forwarded), and each GECO's update averaged over ranks."""
    wrapped = _DDP(model, device_ids=[device.index] if device.type == "cuda" else None,
                   find_unused_parameters=True)
    for g in gecos.values():
        g.update = functools.partial(_allreduce_update, g.update, device)
    return wrapped


def any_rank(flag: bool, world: int, device: torch.device) -> bool:
    """True on every rank when it is true on any rank (so all ranks stop at the same step)."""
    if world > 1:
        t = torch.tensor([1.0 if flag else 0.0], device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        flag = bool(t.item() > 0)
    return flag


def gather_rng(rng: dict[str, Any], world: int) -> dict[str, Any]:
    """This rank's RNG state plus, under DDP, every rank's under "ranks" (collective)."""
    if world > 1:
        ranks: list[Any] = [None] * world
        dist.all_gather_object(ranks, rng)
        rng = dict(rng, ranks=ranks)
    return rng


def rank_rng(rng: dict[str, Any], world: int, rank: int) -> dict[str, Any]:
    """The RNG state of `rank` from a checkpoint written by `world` ranks (`gather_rng`)."""
    if world > 1 and "ranks" in rng and len(rng["ranks"]) == world:
        return rng["ranks"][rank]
    return rng


def barrier(world: int) -> None:
    """Wait for every rank (no-op in a single process)."""
    if world > 1:
        dist.barrier()
