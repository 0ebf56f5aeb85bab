"""Deterministic labeled / unlabeled splits for semi-supervised training.

Use the returned index lists with ``torch.utils.data.Subset``.
"""
from __future__ import annotations

import math

import numpy as np


def label_split(n: int, label_ratio: float, seed: int, name: str = "label_ratio") -> tuple[list[int], list[int]]:
    """Split ``range(n)`` into sorted labeled and unlabeled indices.

    ``floor(n * label_ratio)`` indices are labeled, drawn by a NumPy PCG64 generator seeded
    with ``seed`` (the same split on every machine and run). ``label_ratio`` must lie in
    (0, 1]; 1 labels everything. A ratio that would label no sample is refused rather than
    silently training without labels. ``name`` is the ratio's name in errors (``--test-ratio``
    when the same draw picks a test set).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n={n!r}; the dataset size must be a positive integer.")
    if not 0.0 < label_ratio <= 1.0:
        raise ValueError(f"{name}={label_ratio!r}; it must lie in (0, 1] (e.g. 0.03 "
                         "for 3% labeled pairs, 1.0 for fully supervised).")
    count = math.floor(n * label_ratio + 1e-9)  # 1e-9: 0.29 * 100 is 28.999999999999996
    if count == 0:
        raise ValueError(f"{name}={label_ratio} of {n} samples picks none of them; "
                         f"use {name} >= {1 / n:.6g} to get at least one sample.")
    order = np.random.default_rng(seed).permutation(n)
    return sorted(order[:count].tolist()), sorted(order[count:].tolist())
