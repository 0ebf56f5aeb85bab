"""Endless, seeded, resumable streams of batches over a dataset."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import islice
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler


def derive_seed(*parts: int | str) -> int:
    """A stable 63-bit seed from a tuple of ints and strings (no Python ``hash``)."""
    value = 1469598103934665603
    for part in parts:
        for byte in str(part).encode():
            value = ((value ^ byte) * 1099511628211) % (1 << 64)
        value = ((value ^ 0xFF) * 1099511628211) % (1 << 64)
    return value >> 1


class EndlessSampler(Sampler[int]):
    """Indices of successive seeded permutations of ``range(length)``, from ``start`` on.

    Position ``k`` of the global stream is element ``k % length`` of permutation
    ``k // length``, so a stream resumes exactly from the number of samples already consumed.

    Sharded for data parallelism: the global stream is cut into global batches of
    ``batch_size * world_size`` positions and rank ``r`` yields the ``r``-th slice of
    ``batch_size`` of each. The ranks together therefore see exactly the batches a single
    process would see with ``batch_size * world_size``; ``start`` counts global positions.
    """

    def __init__(self, length: int, seed: int, start: int = 0, rank: int = 0, world_size: int = 1,
                 batch_size: int = 1) -> None:
        if length <= 0:
            raise ValueError("cannot sample from an empty dataset.")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is outside a world of {world_size} process(es).")
        self.length, self.seed, self.start = length, seed, start
        self.rank, self.world_size, self.batch_size = rank, world_size, batch_size

    def _global(self) -> Iterator[int]:
        cycle, offset = divmod(self.start, self.length)
        while True:
            generator = torch.Generator().manual_seed(derive_seed(self.seed, cycle))
            yield from torch.randperm(self.length, generator=generator)[offset:].tolist()
            cycle, offset = cycle + 1, 0

    def __iter__(self) -> Iterator[int]:
        stream, size = self._global(), self.batch_size * self.world_size
        first = self.rank * self.batch_size
        while True:
            yield from list(islice(stream, size))[first:first + self.batch_size]


class BatchStream:
    """Endless batches from a dataset, tracking how many samples were consumed.

    ``consumed`` counts global samples (all ranks together), so a checkpoint written by a
    run of any world size resumes the same global stream.
    """

    def __init__(self, dataset: Dataset, batch_size: int, seed: int, consumed: int = 0, num_workers: int = 0,
                 pin_memory: bool = False, collate_fn: Callable[[list[Any]], Any] | None = None, rank: int = 0,
                 world_size: int = 1) -> None:
        length = len(dataset)  # type: ignore[arg-type]
        self.batch_size, self.consumed, self.world_size = batch_size, consumed, world_size
        sampler = EndlessSampler(length, seed, consumed, rank, world_size, batch_size)
        self.loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers,
                                 collate_fn=collate_fn, pin_memory=pin_memory, drop_last=True,
                                 persistent_workers=num_workers > 0)
        self._iterator: Iterator[Any] | None = None

    def next(self) -> dict[str, Any]:
        if self._iterator is None:
            self._iterator = iter(self.loader)
        batch = next(self._iterator)
        self.consumed += self.batch_size * self.world_size
        return batch
