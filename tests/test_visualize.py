"""The pictures: a perceptually uniform colour map whose opacity follows the confidence, one labelled colour bar,
contact sheets with a caption and a single bar, and the report grid."""
import numpy as np
import pytest
import torch
from PIL import Image

from dmt_wrap import DMTConfig, DualMeanTeacher
from dmt_wrap.heatmap import BACKGROUND, BAR_GREY, blend, colorize, colour_bar, contact_sheet, overlay
from dmt_wrap.localize import Localizer, localize_video
from dmt_wrap.pretrained import write_pretrained
from dmt_wrap.visualize import save_overlay_grid
from tests.registered_nets import BrightnessNet
from tests.synthetic_media import make_video


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(float) @ np.array([0.2126, 0.7152, 0.0722])


def test_a_zero_confidence_leaves_the_frame_exactly_as_it_was():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (30, 50, 3), dtype=np.uint8)
    assert np.array_equal(blend(frame, np.zeros((30, 50))), frame)
    drawn = overlay(frame, np.zeros((30, 50)))
    assert np.array_equal(drawn[:30, :50], frame) and drawn.shape[1] > 50  # the frame, then the bar
    assert drawn.shape[0] % 2 == 0 and drawn.shape[1] % 2 == 0


def test_opacity_follows_the_confidence():
    frame = np.full((1, 11, 3), 128, np.uint8)
    confidence = np.linspace(0, 1, 11)[None]
    drawn = blend(frame, confidence).astype(int)
    colour = colorize(confidence).astype(int)
    change = np.abs(drawn - 128).sum(axis=-1)[0]
    assert change[0] == 0 and change[-1] > 150
    # each pixel lies between the frame and its colour, at a fraction that grows with the confidence
    fraction = (drawn - 128)[0, :, 0] / np.where(colour[0, :, 0] == 128, 1, colour[0, :, 0] - 128)
    assert np.all(np.diff(fraction[1:]) >= -0.02) and fraction[-1] > 0.6


def test_the_colour_map_is_perceptually_ordered():
    """Lightness rises steadily with the confidence (jet's rises and falls, so its colours cannot be read)."""
    lightness = _luma(colorize(np.linspace(0, 1, 64)[None])[0])
    assert np.all(np.diff(lightness) > 0)


def test_the_colour_bar_is_labelled_confidence_with_ticks():
    bar = colour_bar(240)
    assert bar.shape[0] == 240
    ink = (bar.astype(int) - np.array(BACKGROUND)).__abs__().sum(axis=-1) > 150
    top_colour = blend(np.full((1, 1, 3), BAR_GREY, np.uint8), np.ones((1, 1)))[0, 0]
    # the ramp: what each confidence does to a grey pixel, 1 at the top, 0 (the grey itself) at the bottom
    ramp_columns = np.flatnonzero((bar[0] == top_colour).all(axis=-1) & (bar[-1] == BAR_GREY).all(axis=-1))
    assert len(ramp_columns) >= 6 and np.all(np.diff(ramp_columns) == 1)
    text = ink[:, ramp_columns.max() + 2:]  # right of the ramp: tick numbers, then the rotated label
    columns = np.flatnonzero(text.any(axis=0))
    ticks_end = columns[0] + np.flatnonzero(np.diff(columns) > 1)[0] + 1  # first gap ends the tick numbers
    ticks, label = text[:, :ticks_end], text[:, ticks_end:]
    tick_rows = np.flatnonzero(ticks.any(axis=1))
    assert tick_rows.min() < 20 and tick_rows.max() > 220 and ticks[100:140].any()  # 1 at the top, 0.5, 0
    label_rows = np.flatnonzero(label.any(axis=1))
    assert label_rows.max() - label_rows.min() > 50  # a word written along the bar
    assert abs((label_rows.max() + label_rows.min()) / 2 - 120) < 10  # centred on it


def test_a_contact_sheet_has_one_bar_and_its_caption(tmp_path):
    frame = np.full((60, 80, 3), 90, np.uint8)
    tiles = [blend(frame, np.zeros((60, 80)))] * 6
    caption = "clip.mp4 · model ezvsl (ezvsl) · 6 of 8 frames at 4 fps, t = 0.00-1.75 s"
    path = contact_sheet(tiles, [f"t = {i / 4:.2f} s" for i in range(6)], tmp_path / "sheet.png", caption=caption)
    with Image.open(path) as png:
        assert png.text["Title"] == caption
        pixels = np.asarray(png.convert("RGB"))
    top_colour = blend(np.full((1, 1, 3), BAR_GREY, np.uint8), np.ones((1, 1)))[0, 0]
    bar_columns = np.flatnonzero((pixels == top_colour).all(axis=-1).any(axis=0))
    assert len(bar_columns) > 0 and np.all(np.diff(bar_columns) == 1)  # one bar: one run of columns
    assert bar_columns.min() > 4 * 80  # right of the tiles
    uncaptioned = contact_sheet(tiles, ["t"] * 6, tmp_path / "plain.png")
    with Image.open(uncaptioned) as png:
        assert png.height < pixels.shape[0] and "Title" not in png.text


def test_the_cli_sheet_names_the_clip_the_model_and_the_times(tmp_path):
    folder = tmp_path / "oracle"
    write_pretrained(DualMeanTeacher(BrightnessNet, DMTConfig(teachers=0)), folder, network="brightness",
                     network_kwargs={}, data={"image_size": 32, "sample_rate": 16000, "duration": 1.0})
    video = make_video(tmp_path / "dog.mp4")
    localize_video(Localizer.from_folder(folder), video, tmp_path / "o.mp4", fps=4, sheet=tmp_path / "s.png",
                   progress=False)
    with Image.open(tmp_path / "s.png") as png:
        title = png.text["Title"]
    assert "dog.mp4" in title and "oracle (brightness)" in title and "t = 0.00-1.75 s" in title


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
    hot, cold = cell[25, 20], cell[85, 85]
    assert hot[0] - hot[2] > 60  # inferno's orange to yellow where the map is high (the frame is grey)
    assert np.abs(cold - 128).max() <= 2  # the frame as it was where the map is low
    lime = ((cell[..., 1] > 200) & (cell[..., 0] < 80) & (cell[..., 2] < 80)).sum()
    assert lime > 20  # the G = 1 contour
    assert np.ptp(pixels[100:, 100:]) < 10  # the unused fourth cell stays blank

    save_overlay_grid(images, maps, None, tmp_path / "no_gt.png", ncols=3, cell_pixels=100)
    with Image.open(tmp_path / "no_gt.png") as png:
        assert png.size == (300, 100)
        rgb = np.asarray(png.convert("RGB")).astype(int)
        assert ((rgb[..., 1] > 200) & (rgb[..., 0] < 80) & (rgb[..., 2] < 80)).sum() == 0


def test_overlay_grid_refuses_mismatched_inputs(tmp_path):
    with pytest.raises(ValueError, match="same B"):
        save_overlay_grid(torch.zeros(2, 3, 8, 8), torch.zeros(3, 4, 4), None, tmp_path / "x.png")
    with pytest.raises(ValueError, match="titles"):
        save_overlay_grid(torch.zeros(2, 3, 8, 8), torch.zeros(2, 4, 4), None,
                          tmp_path / "x.png", titles=["only one"])
