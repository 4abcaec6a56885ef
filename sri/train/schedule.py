"""Data order and learning-rate schedule, both pure functions of the step (which makes resume exact)."""
from __future__ import annotations

from typing import Iterator

import torch

from sri.configs import ConfigError


class StepBatchSampler(torch.utils.data.Sampler):
    """Yields this rank's share of the global batch for steps `start, start+1, …`.

    Epoch e is a permutation seeded by (seed, e); global batch j of an epoch is its slice
    [j*B, (j+1)*B); rank r of W takes positions [r*B/W, (r+1)*B/W) of it. The order is a pure
    function of (seed, step), which makes resume exact.
    """

    def __init__(self, num_items: int, global_batch: int, seed: int, start_step: int = 0,
                 rank: int = 0, world_size: int = 1, stop_step: int | None = None) -> None:
        if num_items < global_batch:
            raise ConfigError(f"the dataset has {num_items} items, fewer than batch_size={global_batch}")
        if global_batch % world_size:
            raise ConfigError(f"batch_size={global_batch} is not divisible by the {world_size} processes")
        self.n, self.b, self.seed = num_items, global_batch, seed
        self.start, self.stop = start_step, stop_step
        self.rank, self.world = rank, world_size
        self.per_epoch = num_items // global_batch
        self._perm_epoch, self._perm = -1, None

    def indices(self, step: int) -> list[int]:
        """This rank's item indices for a global step."""
        epoch, j = divmod(step, self.per_epoch)
        if epoch != self._perm_epoch:
            g = torch.Generator().manual_seed(int(self.seed) * 1_000_003 + epoch)
            self._perm, self._perm_epoch = torch.randperm(self.n, generator=g), epoch
        local = self.b // self.world
        lo = j * self.b + self.rank * local
        return self._perm[lo:lo + local].tolist()

    def __iter__(self) -> Iterator[list[int]]:
        step = self.start
        while self.stop is None or step < self.stop:
            yield self.indices(step)
            step += 1

    def __len__(self) -> int:
        if self.stop is None:
            raise TypeError("infinite sampler")
        return max(0, self.stop - self.start)


def lr_factor(step: int, warmup: int, decay_every: int, decay_rate: float) -> float:
    """Linear warm-up over `warmup` steps, then x`decay_rate` every `decay_every` steps."""
    f = min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0
    if decay_every > 0:
        f *= decay_rate ** (step // decay_every)
    return f
