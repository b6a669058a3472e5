"""Training batches whose order is a pure function of (seed, epoch), so a run can resume mid-epoch.

A resumed run must see exactly the batches an uninterrupted one would have seen next.
`ResumableBatchSampler` shuffles each epoch with its own seeded generator (never the global
RNG), shards the batches across DDP ranks, and starts at any batch: the trainer tells it how
many batches were consumed before the checkpoint. Its items are `(index, epoch)` keys, so a
dataset's random crop can depend on the epoch without a global RNG either (`split_key`).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

Key = tuple[int, int]  # (clip index, epoch)


def split_key(key: int | Key) -> Key:
    """(index, epoch) of a dataset key: an int (evaluation) or a training key."""
    return key if isinstance(key, tuple) else (key, 0)


class ResumableBatchSampler(Sampler[list[Key]]):
    """Shuffled, drop-last batches for one rank; `consumed` counts this rank's batches so far.

    Args:
        num_samples: size of the dataset.
        batch_size: clips per batch on one rank.
        seed: the training seed; epoch e uses the permutation of seed + e.
        rank, world_size: this process's DDP rank and the number of ranks.
    """

    def __init__(self, num_samples: int, batch_size: int, seed: int,
                 rank: int = 0, world_size: int = 1):
        if num_samples < batch_size * world_size:
            raise ValueError(f"{num_samples} training clips are fewer than one batch of "
                             f"{batch_size} on each of {world_size} processes: lower "
                             "data.batch_size")
        self.num_samples, self.batch_size, self.seed = num_samples, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.consumed = 0

    def __len__(self) -> int:
        return self.num_samples // (self.batch_size * self.world_size)

    def __iter__(self) -> Iterator[list[Key]]:
        epoch, start = divmod(self.consumed, len(self))
        order = torch.randperm(self.num_samples,
                               generator=torch.Generator().manual_seed(self.seed + epoch))
        mine = order[: len(self) * self.batch_size * self.world_size][self.rank :: self.world_size]
        for b in range(start, len(self)):
            self.consumed += 1
            yield [(int(i), epoch) for i in mine[b * self.batch_size : (b + 1) * self.batch_size]]
