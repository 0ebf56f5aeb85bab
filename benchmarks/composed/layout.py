"""Where a scene's objects go: integer pixel boxes ``(x0, y0, x1, y1)``, ends exclusive.

Sizes are drawn as box areas (fractions of the image) and turned into width and height
by each object's aspect ratio, so a box's share of the image is controlled whatever the
object's shape. Layouts are drawn by rejection: a candidate whose boxes overlap more than
``max_overlap`` of the smaller box is redrawn, sizes included, so the accepted sizes stay
symmetric between the sounding and the silent objects (size says nothing about which
one sounds).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .tiers import TierConfig

Box = tuple[int, int, int, int]
CORNER_ATTEMPTS = 50
SCATTER_ATTEMPTS = 30


def reachable_area(aspect: float) -> float:
    """The largest image fraction a box of this aspect ratio can cover."""
    return min(aspect, 1.0 / aspect)


def box_sizes(areas: np.ndarray, aspect: float, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Widths and heights (int arrays) of boxes of at least ``areas`` and ``aspect`` (w / h).

    Rounded up, so that pixel rounding never takes a box below the requested area.
    """
    height = size * np.sqrt(areas / aspect)
    width = height * aspect
    scale = np.minimum(1.0, np.minimum(size / height, size / width))
    return _ceil_pixels(width * scale, size), _ceil_pixels(height * scale, size)


def _ceil_pixels(lengths: np.ndarray, size: int) -> np.ndarray:
    """``lengths`` rounded up to whole pixels in ``[1, size]``, int64.

    ``np.maximum`` and ``np.minimum`` rather than ``np.clip``: the same values with less
    call overhead, which dominates on these few-element arrays.
    """
    return np.minimum(np.maximum(np.ceil(lengths - 1e-9), 1), size).astype(np.int64)


def _sample_sizes(rng: np.random.Generator, area: tuple[float, float], aspect: float,
                  size: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` box sizes with area uniform in ``area``, capped by what the aspect allows."""
    high = min(area[1], reachable_area(aspect))
    return box_sizes(rng.uniform(min(area[0], high), high, count), aspect, size)


def overlap_fractions(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection of boxes ``a`` and ``b`` (``[..., 4]``, broadcast) over the smaller's area."""
    width = np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0])
    height = np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1])
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return np.maximum(width, 0) * np.maximum(height, 0) / np.minimum(area_a, area_b)


def _boxes(x0: np.ndarray, y0: np.ndarray, width: np.ndarray, height: np.ndarray) -> np.ndarray:
    """Boxes ``[n, 4]`` from top-left corners and sizes (cheaper than ``np.stack`` here)."""
    boxes = np.empty((len(x0), 4), dtype=np.int64)
    boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3] = x0, y0, x0 + width, y0 + height
    return boxes


def _as_boxes(boxes: np.ndarray) -> list[Box]:
    return [tuple(box) for box in boxes.tolist()]  # type: ignore[misc]


def _corner_layout(rng: np.random.Generator, areas: Sequence[tuple[float, float]],
                   aspects: Sequence[float], size: int, tier: TierConfig) -> list[Box] | None:
    """Objects in distinct corners (the first two opposite), nudged inwards by a jitter.

    ``CORNER_ATTEMPTS`` candidate layouts are drawn at once; the first that respects
    ``max_overlap`` is kept.
    """
    first = int(rng.integers(0, 4))
    others = [c for c in range(4) if c not in (first, 3 - first)]
    corners = [first, 3 - first] + [int(c) for c in rng.permutation(others)]
    boxes = np.empty((CORNER_ATTEMPTS, len(areas), 4), dtype=np.int64)
    for k, (area, aspect, corner) in enumerate(zip(areas, aspects, corners)):
        width, height = _sample_sizes(rng, area, aspect, size, CORNER_ATTEMPTS)
        jitter = int(tier.corner_jitter * size)
        dx = rng.integers(0, np.minimum(jitter, size - width) + 1)
        dy = rng.integers(0, np.minimum(jitter, size - height) + 1)
        x0 = dx if corner in (0, 2) else size - width - dx  # 0 top-left, 1 top-right,
        y0 = dy if corner in (0, 1) else size - height - dy  # 2 bottom-left, 3 bottom-right
        boxes[:, k] = _boxes(x0, y0, width, height)
    valid = np.ones(CORNER_ATTEMPTS, dtype=bool)
    for i in range(len(areas)):
        for j in range(i):
            valid &= overlap_fractions(boxes[:, i], boxes[:, j]) <= tier.max_overlap
    return _as_boxes(boxes[int(np.argmax(valid))]) if valid.any() else None


def _scatter_layout(rng: np.random.Generator, areas: Sequence[tuple[float, float]],
                    aspects: Sequence[float], size: int, tier: TierConfig,
                    n_required: int) -> list[Box] | None:
    """Objects anywhere, one at a time: the first of ``SCATTER_ATTEMPTS`` candidate
    positions that respects ``max_overlap`` with those already placed."""
    placed = np.empty((0, 4), dtype=np.int64)
    for index, (area, aspect) in enumerate(zip(areas, aspects)):
        width, height = _sample_sizes(rng, area, aspect, size, SCATTER_ATTEMPTS)
        x0 = rng.integers(0, size - width + 1)
        y0 = rng.integers(0, size - height + 1)
        candidates = _boxes(x0, y0, width, height)
        fits = (overlap_fractions(candidates[:, None], placed[None]) <= tier.max_overlap).all(1)
        if not fits.any():
            if index < n_required:
                return None
            break  # no room for more silent objects
        placed = np.concatenate([placed, candidates[int(np.argmax(fits))][None]])
    return _as_boxes(placed)


def place_objects(rng: np.random.Generator, tier: TierConfig, aspects: Sequence[float],
                  size: int, n_sounding_slots: int) -> list[Box]:
    """Boxes for the objects (the first ``n_sounding_slots`` use the sounding area range).

    May return fewer boxes than objects: trailing silent objects that find no room are
    dropped (rare with the built-in tiers); the sounding slots always get a box.
    """
    areas = [tier.sounding_area] * n_sounding_slots
    areas += [tier.silent_area] * (len(aspects) - n_sounding_slots)
    for count in range(len(aspects), n_sounding_slots - 1, -1):
        if tier.layout == "corners":
            boxes = _corner_layout(rng, areas[:count], aspects[:count], size, tier)
        else:
            boxes = _scatter_layout(rng, areas[:count], aspects[:count], size, tier,
                                    n_sounding_slots)
        if boxes is not None and len(boxes) >= n_sounding_slots:
            return boxes
    raise ValueError(f"tier {tier.name!r}: could not place {n_sounding_slots} sounding "
                     f"objects with areas {tier.sounding_area} and max_overlap "
                     f"{tier.max_overlap}; lower the areas or raise max_overlap.")
