"""Endless, seeded, resumable streams of batches over a dataset."""
from __future__ import annotations

from collections.abc import Iterator
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

    Position ``k`` of the stream is element ``k % length`` of permutation ``k // length``,
    so a stream resumes exactly from the number of samples already consumed.
    """

    def __init__(self, length: int, seed: int, start: int = 0) -> None:
        if length <= 0:
            raise ValueError("cannot sample from an empty dataset.")
        self.length, self.seed, self.start = length, seed, start

    def __iter__(self) -> Iterator[int]:
        cycle, offset = divmod(self.start, self.length)
        while True:
            generator = torch.Generator().manual_seed(derive_seed(self.seed, cycle))
            yield from torch.randperm(self.length, generator=generator)[offset:].tolist()
            cycle, offset = cycle + 1, 0


class BatchStream:
    """Endless batches from a dataset, tracking how many samples were consumed."""

    def __init__(self, dataset: Dataset, batch_size: int, seed: int, consumed: int = 0,
                 num_workers: int = 0, pin_memory: bool = False) -> None:
        length = len(dataset)  # type: ignore[arg-type]
        self.batch_size, self.consumed = batch_size, consumed
        self.loader = DataLoader(dataset, batch_size=batch_size, sampler=EndlessSampler(length, seed, consumed),
                                 num_workers=num_workers, pin_memory=pin_memory, drop_last=True,
                                 persistent_workers=num_workers > 0)
        self._iterator: Iterator[Any] | None = None

    def next(self) -> dict[str, Any]:
        if self._iterator is None:
            self._iterator = iter(self.loader)
        batch = next(self._iterator)
        self.consumed += self.batch_size
        return batch
