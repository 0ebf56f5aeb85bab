"""Overlay grids of predicted localization maps on their frames, for reports and debugging.

The maps are drawn as ``dmt_wrap.heatmap`` draws them (a perceptually uniform colour map whose
opacity follows the map, so low values leave the frame as it was), after a min-max rescale per image.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from einops import rearrange
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from torch import Tensor

from dmt_wrap.heatmap import blend
from dmt_wrap.metrics import minmax_normalise, upsample_maps

# Ground-truth contour levels: G = 0.5 (one Flickr annotator) and G = 1 (consensus / box).
GT_LEVELS = (0.25, 0.75)
GT_COLORS = ("white", "lime")


def save_overlay_grid(images: Tensor, maps: Tensor, gt: Tensor | None, path: str | Path,
                      titles: Sequence[str] | None = None, ncols: int = 4,
                      cell_pixels: int = 224, dpi: int = 100) -> Path:
    """Write a PNG grid: each frame with its map drawn over it (``heatmap.blend``) and ``G`` as contours.

    ``images`` ``[B, 3, H, W]`` in [0, 1]; ``maps`` ``[B, h, w]`` (any scale: upsampled
    and min-max normalised per image); ``gt`` ``[B, H, W]`` or None. Each cell is
    ``cell_pixels`` square, so the PNG is ``ncols * cell_pixels`` wide and
    ``ceil(B / ncols) * cell_pixels`` high. Uses the Agg canvas directly, leaving the
    pyplot backend of the caller alone. Returns the path written.
    """
    count = images.shape[0]
    if images.dim() != 4 or images.shape[1] != 3 or maps.dim() != 3 or maps.shape[0] != count:
        raise ValueError(f"images must be [B, 3, H, W] and maps [B, h, w] with the same B; "
                         f"got {tuple(images.shape)} and {tuple(maps.shape)}.")
    if gt is not None and tuple(gt.shape) != (count, *images.shape[-2:]):
        raise ValueError(f"gt must be [B, H, W] = {(count, *images.shape[-2:])}; got "
                         f"{tuple(gt.shape)}.")
    if titles is not None and len(titles) != count:
        raise ValueError(f"{len(titles)} titles for {count} images; give one per image.")
    if ncols < 1 or count == 0:
        raise ValueError(f"need ncols >= 1 and at least one image (ncols={ncols}, B={count}).")

    ncols = min(ncols, count)
    nrows = math.ceil(count / ncols)
    frames = (rearrange(images.detach().float().clamp(0, 1).cpu(), "b c h w -> b h w c") * 255).round().byte().numpy()
    heat = minmax_normalise(upsample_maps(maps.detach().cpu(), images.shape[-2:]))

    figure = Figure(figsize=(ncols * cell_pixels / dpi, nrows * cell_pixels / dpi), dpi=dpi)
    FigureCanvasAgg(figure)
    axes = figure.subplots(nrows, ncols, squeeze=False)
    figure.subplots_adjust(left=0, right=1, bottom=0, top=1, wspace=0.02, hspace=0.02)
    for number, axis in enumerate(axes.flat):
        axis.set_axis_off()
        if number >= count:
            continue
        axis.imshow(blend(frames[number], heat[number].numpy()))
        if gt is not None and float(gt[number].max()) > 0:
            axis.contour(gt[number].detach().float().cpu().numpy(), levels=GT_LEVELS,
                         colors=GT_COLORS, linewidths=1.5)
        if titles is not None:
            axis.text(0.02, 0.98, titles[number], transform=axis.transAxes, fontsize=8,
                      va="top", color="white", backgroundcolor=(0, 0, 0, 0.5))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi, format="png")
    return path
