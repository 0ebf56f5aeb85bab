"""Procedural classes (drawn shapes + synthetic tones), used only without the stamps package.

They keep every pipeline and test runnable where ``tuxpaint-stamps-default`` is not
installed, but they are a much easier and different task: a dataset built on them has
``is_fallback = True`` and says so loudly, and results on it must be labelled as such.
"""
from __future__ import annotations

import logging
import math
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .sources import FRAME_SECONDS, Source, frame_activity

logger = logging.getLogger(__name__)

SHAPES = ("disc", "square", "triangle", "diamond", "star", "cross", "ring", "hexagon")
COLOURS = {"red": (220, 50, 47), "blue": (38, 139, 210), "green": (133, 153, 0),
           "yellow": (230, 190, 30), "violet": (108, 113, 196), "magenta": (211, 54, 130)}
FALLBACK_FINGERPRINT = "procedural-fallback-v1"
IMAGE_SIDE = 128
TONE_SECONDS = 2.0


def warn_fallback(stamps_dir: Path) -> None:
    """Warn (``warnings`` and logging) that the procedural fallback is in use."""
    message = (f"COMPOSED BENCHMARK FALLBACK: no tuxpaint stamps with recordings were found "
               f"in {stamps_dir}, so scenes use PROCEDURAL shapes and synthetic tones. "
               "Results are NOT the composed benchmark's and must be labelled as fallback. "
               "Install the Debian package tuxpaint-stamps-default (apt-get install "
               "tuxpaint-stamps-default) or point DMT_WRAP_STAMPS / stamps_dir at its "
               "stamps folder.")
    warnings.warn(message, RuntimeWarning, stacklevel=3)
    logger.warning(message)


def _polygon(shape: str, centre: float, radius: float) -> list[tuple[float, float]]:
    corners = {"triangle": 3, "diamond": 4, "hexagon": 6, "star": 10}[shape]
    points = []
    for k in range(corners):
        angle = -math.pi / 2 + 2 * math.pi * k / corners
        r = radius * (0.45 if shape == "star" and k % 2 else 1.0)
        points.append((centre + r * math.cos(angle), centre + r * math.sin(angle)))
    return points


def draw_shape(shape: str, colour: tuple[int, int, int], side: int = IMAGE_SIDE) -> np.ndarray:
    """An RGBA uint8 cut-out of ``shape``, shaded top to bottom so it is not flat."""
    image = Image.new("RGBA", (side, side), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    centre, radius, fill = side / 2, side / 2 - 1, colour + (255,)
    if shape == "disc":
        draw.ellipse((1, 1, side - 2, side - 2), fill=fill)
    elif shape == "ring":
        draw.ellipse((1, 1, side - 2, side - 2), fill=fill)
        draw.ellipse((side * 0.3, side * 0.3, side * 0.7, side * 0.7), fill=(0, 0, 0, 0))
    elif shape == "square":
        draw.rectangle((side * 0.1, side * 0.1, side * 0.9, side * 0.9), fill=fill)
    elif shape == "cross":
        draw.rectangle((side * 0.35, 1, side * 0.65, side - 2), fill=fill)
        draw.rectangle((1, side * 0.35, side - 2, side * 0.65), fill=fill)
    else:
        draw.polygon(_polygon(shape, centre, radius), fill=fill)
    rgba = np.asarray(image).copy()
    shade = np.linspace(1.15, 0.75, side, dtype=np.float32)[:, None, None]
    rgba[..., :3] = np.clip(rgba[..., :3] * shade, 0, 255).astype(np.uint8)
    ys, xs = np.nonzero(rgba[..., 3])
    return np.ascontiguousarray(rgba[ys.min():ys.max() + 1, xs.min():xs.max() + 1])


def synth_tone(index: int, sample_rate: int, seconds: float = TONE_SECONDS) -> np.ndarray:
    """A class's tone: its own pitch (2 semitones apart), timbre and tremolo rate."""
    t = np.arange(int(seconds * sample_rate), dtype=np.float64) / sample_rate
    f0 = 110.0 * 2 ** (2 * index / 12)
    tone = np.zeros_like(t)
    for harmonic in range(1, 2 + index % 4):
        if harmonic * f0 < sample_rate / 2:
            tone += np.sin(2 * np.pi * harmonic * f0 * t) / harmonic
    tremolo = 0.6 + 0.4 * np.sin(2 * np.pi * (2 + index % 5) * t)
    wave = tone * tremolo
    return (wave / np.abs(wave).max()).astype(np.float32)


def fallback_sources(n_classes: int, sample_rate: int) -> list[Source]:
    """``n_classes`` procedural classes, each a distinct (shape, colour) and tone."""
    combos = [(shape, colour) for colour in COLOURS for shape in SHAPES]
    if n_classes > len(combos):
        raise ValueError(f"the procedural fallback has {len(combos)} classes; "
                         f"{n_classes} were asked for.")
    # A step coprime with the 48 combinations visits each once, and consecutive classes
    # differ in both shape and colour.
    order = [combos[(k * 11) % len(combos)] for k in range(len(combos))]
    sources = []
    frame = max(1, int(round(FRAME_SECONDS * sample_rate)))
    for index, (shape, colour) in enumerate(order[:n_classes]):
        wave = synth_tone(index, sample_rate)
        sources.append(Source(f"{colour}_{shape}", draw_shape(shape, COLOURS[colour]), wave,
                              sample_rate, frame_activity(wave, frame)))
    return sources
