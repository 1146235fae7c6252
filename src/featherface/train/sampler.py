"""The batch sampler of training: seeded per-epoch permutations, sharded across data-parallel ranks."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler


class EpochBatchSampler(Sampler[list[int]]):
    """Batches of a seeded per-epoch permutation, optionally starting at a given batch (for resume).

    ``batch_size`` is the global batch. With ``world_size`` > 1, rank ``r`` yields the contiguous
    slice ``[r * b, (r + 1) * b)`` (``b = batch_size / world_size``) of every global batch, so the
    ranks together see exactly the batches of a single process with the same arguments.
    """

    def __init__(self, n: int, batch_size: int, seed: int, epoch: int, start_batch: int = 0,
                 *, rank: int = 0, world_size: int = 1) -> None:
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"EpochBatchSampler: invalid rank {rank} for world size {world_size}")
        if batch_size % world_size:
            raise ValueError(f"EpochBatchSampler: batch size {batch_size} is not divisible by world size {world_size}")
        self.n, self.batch_size, self.seed, self.epoch, self.start_batch = n, batch_size, seed, epoch, start_batch
        self.rank, self.world_size = rank, world_size

    def global_batches(self) -> list[list[int]]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        perm = torch.randperm(self.n, generator=g).tolist()
        nb = self.n // self.batch_size
        return [perm[i * self.batch_size : (i + 1) * self.batch_size] for i in range(nb)]

    def batches(self) -> list[list[int]]:
        """This rank's batches (the global batches when ``world_size`` is 1)."""
        if self.world_size == 1:
            return self.global_batches()
        b = self.batch_size // self.world_size
        return [batch[self.rank * b : (self.rank + 1) * b] for batch in self.global_batches()]

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.batches()[self.start_batch :]

    def __len__(self) -> int:
        return max(0, self.n // self.batch_size - self.start_batch)


__all__ = ["EpochBatchSampler"]
