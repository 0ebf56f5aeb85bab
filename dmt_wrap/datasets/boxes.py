"""Ground-truth maps ``G`` from the published boxes of Flickr-SoundNet and VGG-SS, as the
original evaluation code of the field builds them."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

FLICKR_ANNOTATION_SIZE = 256


def _box_mask(boxes: Sequence[Sequence[int]], size: int) -> Tensor:
    """Sum of the masks of integer pixel boxes ``[x0, y0, x1, y1]`` (end-exclusive)."""
    counts = torch.zeros(size, size)
    for x0, y0, x1, y1 in boxes:
        counts[y0:y1, x0:x1] += 1
    return counts


def flickr_gt(boxes_per_annotator: Sequence[Sequence[float]], size: int = 224,
              annotation_size: int = FLICKR_ANNOTATION_SIZE) -> Tensor:
    """Flickr-SoundNet consensus ``G = min(sum of box masks / 2, 1)`` (0 / 0.5 / 1). ``[size, size]``.

    Boxes are ``[x0, y0, x1, y1]`` in ``annotation_size`` pixel coordinates, scaled and
    truncated to integers as the original code does (``int(size * v / 256)``).
    """
    scaled = [[int(size * float(v) / annotation_size) for v in box] for box in boxes_per_annotator]
    return (_box_mask(scaled, size) / 2).clamp(max=1)


def vggss_gt(boxes: Sequence[Sequence[float]], size: int = 224) -> Tensor:
    """VGG-SS ``G`` = union of boxes normalised to [0, 1] (clipped, ``int(v * size)``). ``[size, size]``."""
    scaled = [[int(min(max(float(v), 0.0), 1.0) * size) for v in box] for box in boxes]
    return (_box_mask(scaled, size) > 0).float()
