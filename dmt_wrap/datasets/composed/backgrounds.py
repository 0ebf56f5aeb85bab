"""Backgrounds: random crops of the photos and textures bundled with scikit-image and
scikit-learn (no download). Images showing people or animals are left out so that no
background holds an object that could be mistaken for a class.

Every photo is kept at several scales, a factor sqrt(2) apart; a background is a plain
``S x S`` slice of one scale, so that drawing one costs no resampling at any ``S``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image

# skimage.data functions whose images ship inside the wheel.
SKIMAGE_BACKGROUNDS = ("brick", "grass", "gravel", "coffee", "rocket", "hubble_deep_field",
                       "moon", "retina", "immunohistochemistry")
MAX_SIDE = 640  # the largest scale's longer side
MIN_CROP = 0.35  # a crop spans at least this share of its scale's shorter side
MIN_SCALE_SIDE = 32  # scales stop below this shorter side


@dataclass(frozen=True)
class Background:
    """One photo at several scales (uint8 ``[h, w, 3]`` arrays, largest first)."""

    scales: tuple[np.ndarray, ...]
    grey: bool


def _scales(image: Image.Image) -> tuple[np.ndarray, ...]:
    image.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    scales = []
    factor = 1.0
    while min(image.size) * factor >= MIN_SCALE_SIDE:
        size = (round(image.size[0] * factor), round(image.size[1] * factor))
        scales.append(np.asarray(image.resize(size, Image.Resampling.LANCZOS)))
        factor /= math.sqrt(2)
    return tuple(scales)


@lru_cache(maxsize=1)
def load_backgrounds() -> tuple[Background, ...]:
    """The background photos at all scales, made once per process."""
    import skimage.data
    from sklearn.datasets import load_sample_images

    arrays = [getattr(skimage.data, name)() for name in SKIMAGE_BACKGROUNDS]
    arrays += list(load_sample_images().images)
    backgrounds = []
    for array in arrays:
        array = np.asarray(array)
        grey = array.ndim == 2
        if grey:
            array = np.repeat(array[..., None], 3, axis=2)
        image = Image.fromarray(np.ascontiguousarray(array[..., :3]).astype(np.uint8))
        backgrounds.append(Background(_scales(image), grey))
    return tuple(backgrounds)


def random_background(rng: np.random.Generator, size: int) -> Image.Image:
    """A ``size`` x ``size`` RGB crop of a random photo at a random scale, maybe mirrored.

    Scales are those on which the crop spans ``MIN_CROP`` to 100% of the shorter side
    (the largest scale if the output is bigger than every photo's reach). Greyscale
    photos get a random colour tint so they are not all grey.
    """
    backgrounds = load_backgrounds()
    background = backgrounds[int(rng.integers(0, len(backgrounds)))]
    usable = [s for s in background.scales if size <= min(s.shape[:2]) <= size / MIN_CROP]
    scale = usable[int(rng.integers(0, len(usable)))] if usable else background.scales[0]
    if min(scale.shape[:2]) < size:  # larger than the photo: upsample the largest scale
        scale = np.asarray(Image.fromarray(scale).resize((size, size)))
    y0 = int(rng.integers(0, scale.shape[0] - size + 1))
    x0 = int(rng.integers(0, scale.shape[1] - size + 1))
    crop = scale[y0:y0 + size, x0:x0 + size]
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    if background.grey:
        tint = rng.integers(150, 256, size=3, dtype=np.uint16)
        crop = (crop * tint >> 8).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(crop))
