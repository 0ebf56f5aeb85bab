"""Compose one scene: objects pasted with their alpha on a background, and its sound.

Masks are exact: a pixel belongs to the topmost object whose alpha there is at least
one half, so masks and boxes are those left visible after occlusion. Blending is
Pillow's (8-bit), so the image is exactly what a stored uint8 frame would hold.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .audio import AudioWindow, mix_scene_audio
from .backgrounds import random_background
from .layout import Box, place_objects, reachable_area
from .sources import ALPHA_THRESHOLD, Source
from .tiers import TierConfig

LAYOUT_ATTEMPTS = 8


@dataclass(frozen=True)
class SceneObject:
    """A visible object: its class, its box after occlusion, whether it is heard."""

    class_name: str
    box: Box
    sounding: bool


@dataclass(frozen=True)
class Scene:
    """One composed sample before conversion to tensors.

    ``owner[y, x]`` is the index in ``objects`` of the object visible at that pixel, or -1
    for background. ``sounding`` is False for a negative (nothing visible is heard).
    """

    image: np.ndarray  # uint8 [S, S, 3]
    audio: np.ndarray  # int16 [T]
    owner: np.ndarray  # int8 [S, S]
    objects: tuple[SceneObject, ...]
    windows: tuple[AudioWindow, ...]

    @property
    def sounding(self) -> bool:
        return any(obj.sounding for obj in self.objects)

    def box_mask(self, sounding: bool) -> np.ndarray:
        """Union of the filled boxes of the sounding (or of the silent) objects, bool."""
        mask = np.zeros(self.owner.shape, dtype=bool)
        for obj in self.objects:
            if obj.sounding == sounding:
                x0, y0, x1, y1 = obj.box
                mask[y0:y1, x0:x1] = True
        return mask

    def instance_mask(self) -> np.ndarray:
        """Union of the exact visible masks of the sounding objects, bool."""
        mask = np.zeros(self.owner.shape, dtype=bool)
        for label, obj in enumerate(self.objects):
            if obj.sounding:
                mask |= self.owner == label
        return mask

    def objectness(self) -> np.ndarray:
        """Union of the exact visible masks of all objects, bool."""
        return self.owner >= 0


def _cutout(source: Source, box: Box, flip: bool) -> tuple[Image.Image, np.ndarray]:
    """``source`` resized to ``box`` (and mirrored), with its object mask (alpha >= 1/2)."""
    image = source.resized(box[2] - box[0], box[3] - box[1])
    if flip:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return image, np.asarray(image.getchannel("A")) >= ALPHA_THRESHOLD


def _mask_box(mask: np.ndarray, x0: int = 0, y0: int = 0) -> Box | None:
    """The bounding box of ``mask``'s True pixels, shifted by ``(x0, y0)``; None if empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask[rows[0]:rows[-1] + 1].any(axis=0))
    return x0 + int(cols[0]), y0 + int(rows[0]), x0 + int(cols[-1]) + 1, y0 + int(rows[-1]) + 1


def _area_in_range(box: Box | None, area: tuple[float, float], aspect: float,
                   size: int) -> bool:
    if box is None:
        return False
    fraction = (box[2] - box[0]) * (box[3] - box[1]) / size ** 2
    return min(area[0], reachable_area(aspect)) <= fraction <= area[1]


def _render_objects(rng: np.random.Generator, tier: TierConfig, objects: Sequence[Source],
                    background: Image.Image) -> tuple[Image.Image, np.ndarray, list[Box | None]]:
    """Lay out and paste ``objects``; the visible box of each (None if fully hidden).

    Downscaling can erase a thin part (a leg, an antenna) and occlusion can trim an edge,
    so a visible box can come out smaller than its placement box. The layout is redrawn
    (up to ``LAYOUT_ATTEMPTS`` times; a cheap check on the resized cut-outs comes before
    pasting) until every sounding slot's visible box lies in the tier's
    ``sounding_area`` range, so the tier's coverage promise holds for the scored boxes.
    """
    size = background.size[0]
    slots = range(tier.n_sounding)

    def in_range(boxes: Sequence[Box | None]) -> bool:
        return all(_area_in_range(boxes[k], tier.sounding_area, objects[k].aspect, size)
                   for k in slots)

    for attempt in range(LAYOUT_ATTEMPTS):  # the last attempt is kept whatever it gives
        last = attempt == LAYOUT_ATTEMPTS - 1
        layout = place_objects(rng, tier, [s.aspect for s in objects], size, tier.n_sounding)
        flips = rng.random(len(layout)) < 0.5
        cutouts = [_cutout(objects[k], layout[k], bool(flips[k])) for k in range(len(layout))]
        if not last and not in_range([_mask_box(mask, *layout[k][:2])
                                      for k, (_, mask) in enumerate(cutouts)]):
            continue
        canvas = background.copy()
        owner = np.full((size, size), -1, dtype=np.int8)
        for label in rng.permutation(len(layout)):
            (image, mask), (x0, y0, x1, y1) = cutouts[label], layout[label]
            canvas.paste(image, (x0, y0), image)
            owner[y0:y1, x0:x1][mask] = label
        visible = [_mask_box(owner[y0:y1, x0:x1] == label, x0, y0)  # a label stays in its box
                   for label, (x0, y0, x1, y1) in enumerate(layout)]
        if last or in_range(visible):
            break
    return canvas, owner, visible


def compose_scene(rng: np.random.Generator, tier: TierConfig, sources: Sequence[Source],
                  image_size: int, n_samples: int, split: str,
                  test_fraction: float) -> Scene:
    """Draw one scene of ``tier`` from ``sources`` (the class set) with ``rng``.

    Classes in a scene are distinct; a negative scene hears classes absent from it; the
    distractor (off-screen sound) is a class absent from the scene and not heard.
    """
    negative = rng.random() < tier.negative_rate
    n_silent = 0
    if rng.random() < tier.silent_rate:
        n_silent = int(rng.integers(tier.n_silent[0], tier.n_silent[1] + 1))
    has_distractor = rng.random() < tier.distractor_prob
    n_objects = tier.n_sounding + n_silent
    n_drawn = n_objects + (tier.n_sounding if negative else 0) + int(has_distractor)
    drawn = [sources[int(i)] for i in rng.choice(len(sources), size=n_drawn, replace=False)]
    objects = drawn[:n_objects]
    heard = drawn[n_objects:n_objects + tier.n_sounding] if negative else objects[:tier.n_sounding]
    distractor = drawn[-1] if has_distractor else None

    canvas, owner, boxes = _render_objects(rng, tier, objects, random_background(rng, image_size))
    placed: list[SceneObject] = []
    for label, box in enumerate(boxes):
        if box is None:  # fully occluded: not part of the scene, renumber those after it
            owner[owner > len(placed)] -= 1
            continue
        placed.append(SceneObject(objects[label].name, box,
                                  sounding=not negative and label < tier.n_sounding))
    audio, windows = mix_scene_audio(heard, distractor, split, test_fraction, n_samples, rng,
                                     tier.speed_range, tier.snr_db, tier.distractor_db)
    return Scene(np.array(canvas), audio, owner, tuple(placed), tuple(windows))
