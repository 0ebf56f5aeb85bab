"""The overlay grid writes a PNG of the documented size showing maps and ground truth."""
import numpy as np
import pytest
import torch
from PIL import Image

from dmt_wrap.visualize import save_overlay_grid


def _lime_pixels(cell: np.ndarray) -> int:
    return int(((cell[..., 1] > 200) & (cell[..., 0] < 80) & (cell[..., 2] < 80)).sum())


def test_overlay_grid_size_heat_and_contours(tmp_path):
    images = torch.full((3, 3, 64, 64), 0.5)
    maps = torch.zeros(3, 7, 7)
    maps[:, :2, :2] = 1.0  # hot top-left corner
    gt = torch.zeros(3, 64, 64)
    gt[:, 30:50, 30:50] = 1.0
    path = save_overlay_grid(images, maps, gt, tmp_path / "grid" / "overlay.png",
                             titles=["a", "b", "c"], ncols=2, cell_pixels=100)
    with Image.open(path) as png:
        assert png.format == "PNG" and png.size == (200, 200)
        pixels = np.asarray(png.convert("RGB")).astype(int)
    cell = pixels[:100, :100]
    hot, cold = cell[25, 20], cell[85, 85]  # jet: red where the map is high, blue where low
    assert hot[0] > hot[2] and cold[2] > cold[0]
    assert _lime_pixels(cell) > 20  # the G = 1 contour
    assert np.ptp(pixels[100:, 100:]) < 10  # the unused fourth cell stays blank

    save_overlay_grid(images, maps, None, tmp_path / "no_gt.png", ncols=3, cell_pixels=100)
    with Image.open(tmp_path / "no_gt.png") as png:
        assert png.size == (300, 100)
        assert _lime_pixels(np.asarray(png.convert("RGB"))) == 0


def test_overlay_grid_refuses_mismatched_inputs(tmp_path):
    with pytest.raises(ValueError, match="same B"):
        save_overlay_grid(torch.zeros(2, 3, 8, 8), torch.zeros(3, 4, 4), None, tmp_path / "x.png")
    with pytest.raises(ValueError, match="titles"):
        save_overlay_grid(torch.zeros(2, 3, 8, 8), torch.zeros(2, 4, 4), None,
                          tmp_path / "x.png", titles=["only one"])
