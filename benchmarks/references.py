"""Audio-free reference scores of every tier of the composed benchmark, for scale.

    python benchmarks/references.py --n 500 --image-size 64

Scores the centre prior, objectness (all visible objects) and the ground-truth oracle on
each tier's stored test set and prints a Markdown table (fractions: CIoU@0.5 / AUC /
pointing / area IoU).
"""
from __future__ import annotations

import argparse

import torch

from dmt_wrap_benchmarks.composed import TIERS, load_eval_set, reference_maps
from dmt_wrap.metrics import MetricAccumulator


def tier_references(tier: str, n: int, image_size: int, duration: float) -> dict[str, dict[str, float]]:
    test = load_eval_set(tier, n=n, image_size=image_size, duration=duration)
    accumulators: dict[str, MetricAccumulator] = {}
    for batch in torch.utils.data.DataLoader(test, batch_size=100):
        sounding = batch["sounding"].bool()
        for name, maps in reference_maps(batch).items():
            accumulators.setdefault(name, MetricAccumulator()).update(maps, batch["mask"], sounding=sounding)
    return {name: acc.compute() for name, acc in accumulators.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--duration", type=float, default=1.0)
    parser.add_argument("--tiers", nargs="+", default=list(TIERS), choices=list(TIERS))
    args = parser.parse_args()
    print("| tier | random | centre prior | objectness | oracle |\n|---|---|---|---|---|")
    for tier in args.tiers:
        scores = tier_references(tier, args.n, args.image_size, args.duration)
        cells = [" / ".join(f"{scores[name][m]:.3f}" for m in ("ciou50", "auc", "pointing", "area_iou"))
                 for name in ("random", "centre_prior", "objectness", "oracle")]
        print(f"| {tier} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
