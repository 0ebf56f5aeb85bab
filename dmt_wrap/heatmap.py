"""Confidence maps drawn over real frames: a blended heat map with a colour bar, and contact sheets.

Maps are confidences in [0, 1] (``DualMeanTeacher.localize``) and are drawn on that fixed
scale, so that colours mean the same in every frame and the colour bar can be read.
"""
from __future__ import annotations

import math
import os
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from PIL import Image, ImageDraw, ImageFont

from .atomic import atomic_path

COLORMAP = "jet"
ALPHA = 0.45


def colorize(confidence: np.ndarray) -> np.ndarray:
    """RGB uint8 ``[H, W, 3]`` of a ``[H, W]`` confidence map on the fixed [0, 1] scale."""
    rgba = colormaps[COLORMAP](np.clip(confidence, 0.0, 1.0))
    return (rgba[..., :3] * 255).round().astype(np.uint8)


@lru_cache(maxsize=8)
def colour_bar(height: int) -> np.ndarray:
    """A vertical colour bar with '1' at the top and '0' at the bottom, ``height`` pixels high (cached: every
    frame of a video gets the same one)."""
    bar_width = max(6, height // 24)
    label_width = max(10, height // 10)
    ramp = np.linspace(1.0, 0.0, height)[:, None].repeat(bar_width, axis=1)
    panel = np.zeros((height, bar_width + label_width + 2, 3), np.uint8)
    panel[:, 1:bar_width + 1] = colorize(ramp)
    image = Image.fromarray(panel)
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=max(8, label_width - 2))
    draw.text((bar_width + 2, 0), "1", fill="white", font=font)
    draw.text((bar_width + 2, height - 1), "0", fill="white", font=font, anchor="la" if height < 12 else "ld")
    return np.asarray(image)


def overlay(frame: np.ndarray, confidence: np.ndarray, alpha: float = ALPHA, bar: bool = True) -> np.ndarray:
    """``frame`` (RGB uint8 ``[H, W, 3]``) with ``confidence`` ``[H, W]`` blended over it.

    A colour bar is appended on the right; the result is padded to even sides (video
    encoders need them).
    """
    if frame.ndim != 3 or frame.shape[2] != 3 or confidence.shape != frame.shape[:2]:
        raise ValueError(f"frame must be [H, W, 3] and the map [H, W] of the same size; got {frame.shape} and "
                         f"{confidence.shape}.")
    blended = (1 - alpha) * frame.astype(np.float32) + alpha * colorize(confidence).astype(np.float32)
    result = blended.round().clip(0, 255).astype(np.uint8)
    if bar:
        result = np.concatenate([result, colour_bar(frame.shape[0])], axis=1)
    pad_h, pad_w = result.shape[0] % 2, result.shape[1] % 2
    return np.pad(result, ((0, pad_h), (0, pad_w), (0, 0))) if pad_h or pad_w else result


def save_png(image: np.ndarray | Image.Image, path: str | os.PathLike) -> Path:
    """Write a PNG atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        (image if isinstance(image, Image.Image) else Image.fromarray(image)).save(tmp, format="PNG")
    return path


def contact_sheet(images: Sequence[np.ndarray], labels: Sequence[str], path: str | os.PathLike,
                  ncols: int = 4, cell: int = 240) -> Path:
    """A PNG grid of ``images`` (each scaled to fit ``cell`` pixels), each captioned by its label above it."""
    if not images or len(images) != len(labels):
        raise ValueError(f"need one label per image and at least one image; got {len(images)} and {len(labels)}.")
    tiles = []
    for image in images:
        tile = Image.fromarray(image)
        tile.thumbnail((cell, cell))
        tiles.append(tile)
    ncols, caption = min(ncols, len(tiles)), 16
    width = max(tile.width for tile in tiles) + 4
    height = max(tile.height for tile in tiles) + caption + 4
    sheet = Image.new("RGB", (ncols * width, math.ceil(len(tiles) / ncols) * height), "black")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=12)
    for number, (tile, label) in enumerate(zip(tiles, labels)):
        left, top = (number % ncols) * width + 2, (number // ncols) * height + 2
        draw.text((left, top), label, fill="white", font=font)
        sheet.paste(tile, (left, top + caption))
    return save_png(sheet, path)
