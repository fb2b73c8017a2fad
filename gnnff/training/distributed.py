"""Distributed data-parallel training: ``torchrun --nproc_per_node N gnnff train ...``.

Each optimisation step takes the next ``N x batch_size`` structures of the shuffled training
set (the same permutation on every rank: the shuffle generator is seeded identically) and hands
rank ``r`` its contiguous share. Every loss term is written as *local sum of squared errors /
global count* (the counts are summed over ranks first), and the gradients are summed over ranks
before clipping and the optimizer step, so N processes with batch ``b`` take exactly the step
that one process with batch ``N x b`` takes (up to floating-point summation order). The
decorrelation loss is the exception: each rank decorrelates its own edges and the ranks'
gradients are averaged.

Backends: gloo on CPU, nccl on CUDA. Rank 0 alone writes metrics, checkpoints, plots and the
exported model; validation runs on every rank (identical results). ``torchrun`` sets
``RANK``/``WORLD_SIZE``/``MASTER_ADDR``/``MASTER_PORT``; nothing changes without them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass
class DistributedContext:
    """This process's place in a data-parallel run (``world_size`` 1: not distributed)."""

    rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def share(self, chunk: list[int]) -> list[int]:
        """This rank's contiguous share of one global step's structure indices (may be empty
        in the epoch's last, short step)."""
        if not self.enabled:
            return chunk
        per = -(-len(chunk) // self.world_size)
        return chunk[self.rank * per : (self.rank + 1) * per]

    def sum_(self, t: torch.Tensor) -> torch.Tensor:
        """All-reduce (sum) ``t`` in place across ranks; returns it."""
        if self.enabled:
            import torch.distributed as dist

            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t

    def sum_gradients(self, model: torch.nn.Module) -> None:
        """Sum every parameter's gradient across ranks (a missing gradient counts as zero)."""
        if not self.enabled:
            return
        for p in model.parameters():
            if p.requires_grad:
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
                self.sum_(p.grad)

    def barrier(self) -> None:
        if self.enabled:
            import torch.distributed as dist

            dist.barrier()


def from_environment(device: torch.device) -> DistributedContext:
    """The context ``torchrun`` describes in the environment; initialises the process group
    (gloo on CPU, nccl on CUDA) when ``WORLD_SIZE`` > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistributedContext()
    import torch.distributed as dist

    rank = int(os.environ["RANK"])
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistributedContext(rank=rank, world_size=world)
