"""Backgrounds: random crops of the photos and textures bundled with scikit-image and
scikit-learn (no download). Images showing people or animals are left out so that no
background holds an object that could be mistaken for a class.

Every photo is kept at several scales, a factor sqrt(2) apart; a background is a plain
``S x S`` crop of one scale, so that drawing one costs no resampling at any ``S``.
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
    """One photo at several scales, largest first: RGB images, or "L" ones if ``grey``.

    Kept as Pillow images because Pillow crops, mirrors and tints them several times
    faster than numpy copies a mirrored or tinted slice.
    """

    scales: tuple[Image.Image, ...]
    grey: bool


def _scales(image: Image.Image) -> tuple[Image.Image, ...]:
    image.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    scales = []
    factor = 1.0
    while min(image.size) * factor >= MIN_SCALE_SIDE:
        size = (round(image.size[0] * factor), round(image.size[1] * factor))
        scales.append(image.resize(size, Image.Resampling.LANCZOS))
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
        if not grey:
            array = array[..., :3]
        image = Image.fromarray(np.ascontiguousarray(array).astype(np.uint8))
        backgrounds.append(Background(_scales(image), grey))
    return tuple(backgrounds)


def _tint(grey: Image.Image, tint: np.ndarray) -> Image.Image:
    """The "L" image ``grey`` as RGB with each channel scaled by ``tint / 256`` (uint16 [3]).

    A palette lookup: the grey level indexes a 256-colour palette of its tinted colours.
    ``grey`` is consumed (it becomes that palette image).
    """
    palette = (np.arange(256, dtype=np.uint16)[:, None] * tint >> 8).astype(np.uint8)
    grey.putpalette(palette.tobytes())  # makes it a "P" image
    return grey.convert("RGB")


def random_background(rng: np.random.Generator, size: int) -> Image.Image:
    """A ``size`` x ``size`` RGB crop of a random photo at a random scale, maybe mirrored.

    Scales are those on which the crop spans ``MIN_CROP`` to 100% of the shorter side
    (the largest scale if the output is bigger than every photo's reach). Greyscale
    photos get a random colour tint so they are not all grey.
    """
    backgrounds = load_backgrounds()
    background = backgrounds[int(rng.integers(0, len(backgrounds)))]
    usable = [s for s in background.scales if size <= min(s.size) <= size / MIN_CROP]
    scale = usable[int(rng.integers(0, len(usable)))] if usable else background.scales[0]
    if min(scale.size) < size:  # larger than the photo: upsample the largest scale
        scale = scale.resize((size, size))
    y0 = int(rng.integers(0, scale.height - size + 1))
    x0 = int(rng.integers(0, scale.width - size + 1))
    crop = scale.crop((x0, y0, x0 + size, y0 + size))
    if rng.random() < 0.5:
        crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if background.grey:
        crop = _tint(crop, rng.integers(150, 256, size=3, dtype=np.uint16))
    return crop
