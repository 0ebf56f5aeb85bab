"""Confidence maps drawn over real frames: a heat map whose opacity is the confidence, one labelled
colour bar, and contact sheets.

Maps are confidences in [0, 1] (``DualMeanTeacher.localize``), drawn on that fixed scale so that
colours mean the same in every frame. The colour map is perceptually uniform (equal steps of
confidence look like equal steps of colour, and it reads in grey too), and each pixel's colour is
laid over the frame with an opacity proportional to its confidence: where the model sees nothing
the frame shows as it was, so a frame is never tinted as a whole.
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
from PIL.PngImagePlugin import PngInfo

from .atomic import atomic_path

COLORMAP = "inferno"
MAX_ALPHA = 0.75  # opacity of the colour where the confidence is 1
BAR_LABEL = "confidence"
BAR_TICKS = (1.0, 0.5, 0.0)
BAR_GREY = 128  # the colour bar shows what each confidence does to a mid-grey pixel
BACKGROUND = (24, 24, 24)
INK = (235, 235, 235)
SMALLEST_FONT = 6


def colorize(confidence: np.ndarray) -> np.ndarray:
    """RGB uint8 ``[H, W, 3]`` of a ``[H, W]`` confidence map on the fixed [0, 1] scale."""
    rgba = colormaps[COLORMAP](np.clip(confidence, 0.0, 1.0))
    return (rgba[..., :3] * 255).round().astype(np.uint8)


def blend(frame: np.ndarray, confidence: np.ndarray) -> np.ndarray:
    """``frame`` (RGB uint8 ``[H, W, 3]``) with each pixel's colour laid over it at opacity
    ``MAX_ALPHA * confidence``: a confidence of 0 leaves the pixel exactly as it was."""
    if frame.ndim != 3 or frame.shape[2] != 3 or confidence.shape != frame.shape[:2]:
        raise ValueError(f"frame must be [H, W, 3] and the map [H, W] of the same size; got {frame.shape} and "
                         f"{confidence.shape}.")
    alpha = (MAX_ALPHA * np.clip(confidence, 0.0, 1.0)).astype(np.float32)[..., None]
    base = frame.astype(np.float32)
    return (base + alpha * (colorize(confidence).astype(np.float32) - base)).round().clip(0, 255).astype(np.uint8)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def _fitting_font(text: str, size: int, room: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """The default font at ``size``, or smaller until ``text`` is at most ``room`` pixels long."""
    while size > SMALLEST_FONT and _font(size).getlength(text) > room:
        size -= 1
    return _font(size)


@lru_cache(maxsize=8)
def colour_bar(height: int) -> np.ndarray:
    """A vertical colour bar ``height`` pixels high: the ramp from 1 (top) to 0 (bottom) as it looks over a
    mid-grey pixel, ticks 1 / 0.5 / 0, and the label "confidence" along it (cached: every frame of a video
    gets the same one)."""
    bar_width = max(6, height // 24)
    font_size = max(SMALLEST_FONT, min(16, height // 20))
    tick_font = _font(font_size)
    tick_width = math.ceil(max(tick_font.getlength(f"{tick:g}") for tick in BAR_TICKS)) + 3
    title_font = _fitting_font(BAR_LABEL, font_size, height - 4)
    title_box = title_font.getbbox(BAR_LABEL)
    title_length, title_thickness = title_box[2] - title_box[0], title_box[3] - title_box[1]
    width = 2 + bar_width + 3 + tick_width + title_thickness + 4
    panel = Image.new("RGB", (width, height), BACKGROUND)
    ramp = np.linspace(1.0, 0.0, height)[:, None].repeat(bar_width, axis=1)
    grey = np.full((height, bar_width, 3), BAR_GREY, np.uint8)
    panel.paste(Image.fromarray(blend(grey, ramp)), (2, 0))
    draw = ImageDraw.Draw(panel)
    left = 2 + bar_width + 3
    for tick in BAR_TICKS:
        y = round((1.0 - tick) * (height - 1))
        anchor = "lt" if tick == 1.0 else "lb" if tick == 0.0 else "lm"
        draw.text((left, y), f"{tick:g}", fill=INK, font=tick_font, anchor=anchor)
    title = Image.new("RGB", (min(title_length, height), title_thickness), BACKGROUND)
    ImageDraw.Draw(title).text((-title_box[0], -title_box[1]), BAR_LABEL, fill=INK, font=title_font)
    rotated = title.rotate(90, expand=True)  # reads bottom to top, along the bar
    panel.paste(rotated, (left + tick_width, (height - rotated.height) // 2))
    return np.asarray(panel)


def overlay(frame: np.ndarray, confidence: np.ndarray, bar: bool = True) -> np.ndarray:
    """``frame`` (RGB uint8 ``[H, W, 3]``) with ``confidence`` ``[H, W]`` drawn over it (``blend``).

    The colour bar is appended on the right; the result is padded to even sides (video
    encoders need them), so the frame's own pixels are ``result[:H, :W]``.
    """
    result = blend(frame, confidence)
    if bar:
        result = np.concatenate([result, colour_bar(frame.shape[0])], axis=1)
    pad_h, pad_w = result.shape[0] % 2, result.shape[1] % 2
    return np.pad(result, ((0, pad_h), (0, pad_w), (0, 0))) if pad_h or pad_w else result


def save_png(image: np.ndarray | Image.Image, path: str | os.PathLike, title: str = "") -> Path:
    """Write a PNG atomically (temporary file in the same folder, then rename), with ``title`` as its
    ``Title`` text chunk when given (image viewers and ``Image.open(path).text`` show it)."""
    path = Path(path)
    info = PngInfo()
    if title:
        info.add_text("Title", title)
    with atomic_path(path) as tmp:
        (image if isinstance(image, Image.Image) else Image.fromarray(image)).save(tmp, format="PNG", pnginfo=info)
    return path


def _wrapped(text: str, font: ImageFont.ImageFont | ImageFont.FreeTypeFont, room: int) -> list[str]:
    """``text`` split at its " · " separators into lines at most ``room`` pixels long where possible."""
    lines: list[str] = []
    for part in text.split(" · "):
        if lines and font.getlength(f"{lines[-1]} · {part}") <= room:
            lines[-1] = f"{lines[-1]} · {part}"
        else:
            lines.append(part)
    return lines


def contact_sheet(images: Sequence[np.ndarray], labels: Sequence[str], path: str | os.PathLike,
                  caption: str = "", ncols: int = 4, cell: int = 240) -> Path:
    """A PNG grid of ``images`` (overlays without their bars, each scaled to fit ``cell`` pixels) under
    ``caption`` (e.g. the file, the model and the frame times; parts separated by " · " wrap), each tile
    labelled above it, with one colour bar for the whole sheet on the right. The caption is also the PNG's
    ``Title`` text."""
    if not images or len(images) != len(labels):
        raise ValueError(f"need one label per image and at least one image; got {len(images)} and {len(labels)}.")
    tiles = []
    for image in images:
        tile = Image.fromarray(image)
        tile.thumbnail((cell, cell))
        tiles.append(tile)
    ncols, label_height = min(ncols, len(tiles)), 16
    width = max(tile.width for tile in tiles) + 4
    height = max(tile.height for tile in tiles) + label_height + 4
    rows = math.ceil(len(tiles) / ncols)
    bar = Image.fromarray(colour_bar(rows * height - 4))
    font = _font(12)
    caption_lines = _wrapped(caption, _font(13), ncols * width + bar.width - 8) if caption else []
    top = 6 + 17 * len(caption_lines) if caption_lines else 0
    sheet = Image.new("RGB", (ncols * width + bar.width + 4, top + rows * height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    for line_number, line in enumerate(caption_lines):
        draw.text((4, 4 + 17 * line_number), line, fill=INK, font=_font(13))
    for number, (tile, label) in enumerate(zip(tiles, labels)):
        left, tile_top = (number % ncols) * width + 2, top + (number // ncols) * height + 2
        draw.text((left, tile_top), label, fill=INK, font=font)
        sheet.paste(tile, (left, tile_top + label_height))
    sheet.paste(bar, (ncols * width + 2, top + 2))
    return save_png(sheet, path, title=caption)
