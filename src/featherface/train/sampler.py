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
                 *, rank: int = 0, world_size: int = 1, sizes: tuple[int, ...] | None = None,
                 base_size: int | None = None) -> None:
        if sizes and world_size > 1:
            raise ValueError("EpochBatchSampler: several network sizes (image_sizes) need a single process")
        if sizes and not base_size:
            raise ValueError("EpochBatchSampler: sizes need base_size")
        self.sizes, self.base_size = tuple(sizes or ()), base_size
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

    def batch_sizes(self) -> list[int]:
        """The network size of each global batch of the epoch (``sizes`` given): drawn uniformly with a
        generator seeded by ``(seed, epoch)``."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch + 7_919)
        picks = torch.randint(len(self.sizes), (self.n // self.batch_size,), generator=g).tolist()
        return [self.sizes[i] for i in picks]

    def __iter__(self) -> Iterator[list[int]] | Iterator[list[tuple[int, int]]]:  # type: ignore[override]
        if not self.sizes:
            yield from self.batches()[self.start_batch :]
            return
        # several sizes: a batch of size S keeps about batch_size * (base_size / S)^2 items (the same
        # number of pixels per step) and yields (index, S) pairs that FaceDataset transforms at size S
        assert self.base_size is not None
        for batch, size in list(zip(self.batches(), self.batch_sizes()))[self.start_batch :]:
            keep = max(1, round(len(batch) * (self.base_size / size) ** 2))
            yield [(i, size) for i in batch[:keep]]

    def __len__(self) -> int:
        return max(0, self.n // self.batch_size - self.start_batch)


__all__ = ["EpochBatchSampler"]
