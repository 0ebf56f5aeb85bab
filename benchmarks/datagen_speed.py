"""Composed-benchmark generation speed: samples per second per worker, per tier and size.

One process, torch threads 1 (what a DataLoader worker gets). Each cell times
``--samples`` items after a warm-up (source decoding and caches excluded) and reports the
best of ``--repeats`` runs in CPU time of this process, so that other programs on a
shared machine slow the numbers less; wall time of that run is shown beside it.

    python benchmarks/datagen_speed.py [--sizes 64 224] [--tiers flickr clutter ...]
"""
from __future__ import annotations

import argparse
import time

import torch

from dmt_wrap_benchmarks.composed import TIERS, ComposedScenes


def time_tier(tier: str, size: int, samples: int, repeats: int) -> tuple[float, float]:
    """Best (CPU, wall) seconds per sample over ``repeats`` runs of ``samples`` items."""
    dataset = ComposedScenes(tier, "train", length=samples * repeats + 1, image_size=size)
    dataset[samples * repeats]  # warm-up: decode sources, load backgrounds
    best = (float("inf"), float("inf"))
    for run in range(repeats):
        cpu, wall = time.process_time(), time.perf_counter()
        for index in range(run * samples, (run + 1) * samples):
            dataset[index]
        elapsed = ((time.process_time() - cpu) / samples, (time.perf_counter() - wall) / samples)
        best = min(best, elapsed)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 224])
    parser.add_argument("--tiers", nargs="+", default=list(TIERS), choices=list(TIERS))
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"{'tier':<10} {'size':>5} {'ms/sample (cpu)':>16} {'samples/s':>10} "
          f"{'ms/sample (wall)':>17}")
    for tier in args.tiers:
        for size in args.sizes:
            cpu, wall = time_tier(tier, size, args.samples, args.repeats)
            print(f"{tier:<10} {size:>5} {cpu * 1e3:>16.2f} {1 / cpu:>10.0f} {wall * 1e3:>17.2f}")


if __name__ == "__main__":
    main()
