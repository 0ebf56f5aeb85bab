"""Bad files in the real-dataset loaders and the composed scenes' stamps: a clear error naming the
file, or a counted skip under an explicit policy (dmt_wrap.datasets, benchmarks.composed). Known
loader bugs are strict xfails that name the module, so they turn red the day they are fixed.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from dmt_wrap.datasets.flickr import FlickrSoundNet
from dmt_wrap.datasets.media import DataError
from dmt_wrap.datasets.vggss import VGGSoundSource

SIZE = 16


def write_frame(path: Path, size=(24, 20)) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (200, 30, 30)).save(path, format="JPEG")


def write_clip(path: Path, seconds: float, rate: int, channels: int, frequency: float = 440.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    wave = 0.5 * np.sin(2 * np.pi * frequency * np.arange(int(seconds * rate)) / rate)
    sf.write(path, np.stack([wave] * channels, axis=1), rate, subtype="FLOAT" if path.suffix == ".wav" else None)


def write_flickr_xml(path: Path, boxes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    objects = "".join(f"<object><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax>"
                      "</bndbox></object>" for x0, y0, x1, y1 in boxes)
    path.write_text(f"<annotation><size><width>256</width><height>256</height></size>{objects}</annotation>")


def flickr_root(root: Path, names=("a", "b"), boxes=((0, 0, 128, 128),)) -> Path:
    for name in names:
        write_frame(root / "frames" / f"{name}.jpg")
        write_clip(root / "audio" / f"{name}.wav", seconds=1.0, rate=16000, channels=1)
        write_flickr_xml(root / "Annotations" / f"{name}.xml", boxes)
    (root / "list.txt").write_text("".join(f"{n}\n" for n in names))
    return root


def vggss_root(root: Path, entries) -> Path:
    for name in ("a", "b"):
        write_frame(root / "frames" / f"{name}.jpg")
        write_clip(root / "audio" / f"{name}.wav", seconds=1.0, rate=16000, channels=1)
    (root / "vggss.json").write_text(entries if isinstance(entries, str) else json.dumps(entries))
    return root


def tone_peak_hz(clip: torch.Tensor, sample_rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(clip.numpy()))
    return float(np.argmax(spectrum) * sample_rate / clip.numel())


@pytest.mark.parametrize("rate, channels", [(8000, 1), (11025, 2), (44100, 1), (48000, 6)])
def test_unexpected_sample_rates_and_channels_are_converted_not_misread(tmp_path, rate, channels):
    """Any rate / channel count becomes the dataset's: same length, the tone's pitch kept."""
    root = vggss_root(tmp_path, [{"file": "a", "bbox": []}])
    (root / "audio" / "a.wav").unlink()
    write_clip(root / "audio" / "a.flac", seconds=1.5, rate=rate, channels=channels, frequency=1000.0)
    clip = VGGSoundSource(root, image_size=SIZE, sample_rate=16000, duration=1.0)[0]["audio"]
    assert clip.shape == (16000,) and clip.dtype == torch.float32
    assert tone_peak_hz(clip, 16000) == pytest.approx(1000.0, abs=2.0)
    assert 0.4 < float(clip.abs().max()) < 0.6  # amplitude 0.5 kept: channels averaged, not summed


def test_audio_with_nan_samples_names_the_file_or_is_skipped(tmp_path):
    root = flickr_root(tmp_path)
    wave = np.sin(np.arange(16000) / 5).astype(np.float32)
    wave[500] = np.nan
    sf.write(root / "audio" / "a.wav", wave, 16000, subtype="FLOAT")
    with pytest.raises(DataError, match=r"a\.wav: audio holds NaN or inf"):
        FlickrSoundNet(root, "list.txt", image_size=SIZE, duration=0.5)[0]
    lenient = FlickrSoundNet(root, "list.txt", image_size=SIZE, duration=0.5, on_error="skip")
    assert lenient[0]["index"] == 1 and torch.isfinite(lenient[0]["audio"]).all()
    assert [Path(p).name for p, _ in lenient.skipped] == ["a.wav"]


def test_silent_clip_in_a_loader_raises_is_skipped_or_kept_by_policy(tmp_path):
    root = flickr_root(tmp_path)
    sf.write(root / "audio" / "b.wav", np.zeros((16000, 2), dtype=np.float32), 16000)
    with pytest.raises(DataError, match=r"b\.wav: audio clip is digitally silent"):
        FlickrSoundNet(root, "list.txt", image_size=SIZE, duration=0.5)[1]
    lenient = FlickrSoundNet(root, "list.txt", image_size=SIZE, duration=0.5, on_error="skip")
    assert lenient[1]["index"] == 0 and [Path(p).name for p, _ in lenient.skipped] == ["b.wav"]
    kept = FlickrSoundNet(root, "list.txt", image_size=SIZE, duration=0.5, allow_silent=True)
    assert kept[1]["index"] == 1 and kept[1]["audio"].abs().sum() == 0


@pytest.mark.parametrize("cut", [0.3, 0.9])
def test_truncated_flac_names_the_file(tmp_path, cut):
    root = flickr_root(tmp_path)
    (root / "audio" / "a.wav").unlink()
    write_clip(root / "audio" / "a.flac", seconds=4.0, rate=16000, channels=1)
    data = (root / "audio" / "a.flac").read_bytes()
    (root / "audio" / "a.flac").write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(DataError, match=r"a\.flac: audio is (empty, corrupt|truncated)"):
        FlickrSoundNet(root, "list.txt", image_size=SIZE, duration=3.0)[0]


@pytest.mark.parametrize("keep", [0.8, 0.95])
def test_truncated_ogg_names_the_file(tmp_path, keep):
    root = flickr_root(tmp_path)
    (root / "audio" / "a.wav").unlink()
    write_clip(root / "audio" / "a.ogg", seconds=10.0, rate=16000, channels=1)
    data = (root / "audio" / "a.ogg").read_bytes()
    (root / "audio" / "a.ogg").write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(DataError, match=r"a\.ogg.*truncated"):
        FlickrSoundNet(root, "list.txt", image_size=SIZE, duration=3.0)[0]


@pytest.mark.parametrize("mode, colour, grey", [
    ("L", 200, (200, 200, 200)),                # greyscale
    ("RGBA", (250, 10, 10, 0), (250, 10, 10)),  # alpha dropped, colour kept
    ("CMYK", (0, 255, 255, 0), (255, 0, 0)),    # converted, not read as 4 channels
    ("I;16", 40000, (155.6, 155.6, 155.6)),     # 16-bit, scaled rather than clipped
])
def test_frames_in_other_modes_become_the_right_rgb(tmp_path, mode, colour, grey):
    """Frames in other modes are converted to the RGB they show, or refused naming the file."""
    from PIL import Image

    root = flickr_root(tmp_path)
    Image.new(mode, (20, 20), colour).save(root / "frames" / "a.jpg", format="TIFF" if mode != "L" else "PNG")
    dataset = FlickrSoundNet(root, "list.txt", image_size=SIZE, duration=0.5)
    try:
        frame = dataset[0]["image"]
    except DataError as error:
        assert "a.jpg" in str(error)
        return
    assert frame.shape == (3, SIZE, SIZE)
    assert torch.allclose(frame.mean(dim=(1, 2)), torch.tensor(grey) / 255, atol=2 / 255)


@pytest.mark.parametrize("xml_box, message", [
    ((-5, 0, 100, 100), "outside the image"),  # below 0 (above 256 is tested in test_real_datasets)
    (("nan", 0, 100, 100), "not four finite numbers"),
    (("inf", 0, 100, 100), "not four finite numbers"),
])
def test_flickr_box_coordinates_out_of_range_name_the_file(tmp_path, xml_box, message):
    root = flickr_root(tmp_path)
    write_flickr_xml(root / "Annotations" / "b.xml", [xml_box])
    with pytest.raises(DataError, match=rf"b\.xml box 0: .*{message}"):
        FlickrSoundNet(root, "list.txt")
    lenient = FlickrSoundNet(root, "list.txt", on_error="skip")
    assert lenient.names == ["a"] and len(lenient.skipped) == 1


@pytest.mark.parametrize("raw_box, message", [
    ("[NaN, 0.1, 0.5, 0.5]", "not four finite numbers"),   # JSON's non-standard NaN literal
    ("[Infinity, 0.1, 0.5, 0.5]", "not four finite numbers"),
    ("[true, 0.1, 0.5, 0.5]", "not four finite numbers"),
    ('["0.1", 0.1, 0.5, 0.5]', "not four finite numbers"),
    ("[0.1, 0.1, 0.5, 0.5, 0.9]", "not four finite numbers"),
    ("[-0.2, 0.1, 0.5, 0.5]", "outside the image"),
])
def test_vggss_box_values_name_the_entry(tmp_path, raw_box, message):
    root = vggss_root(tmp_path, f'[{{"file": "a", "bbox": []}}, {{"file": "b", "bbox": [{raw_box}]}}]')
    with pytest.raises(DataError, match=rf"vggss\.json entry 1 \('b'\) box 0: .*{message}"):
        VGGSoundSource(root)
    assert VGGSoundSource(root, on_error="skip").names == ["a"]


def plant_outside(tmp_path: Path) -> None:
    """Readable files outside the dataset root, where an escaping entry would point."""
    write_frame(tmp_path / "outside" / "secret.jpg")
    write_clip(tmp_path / "outside" / "secret.wav", seconds=1.0, rate=16000, channels=1)


@pytest.mark.parametrize("name", ["frames/../../outside/secret", "sub/../../../outside/secret",
                                  "..\\outside\\secret", "/etc/hostname"])
def test_vggss_entries_escaping_the_root_are_refused(tmp_path, name):
    plant_outside(tmp_path)
    root = vggss_root(tmp_path / "data", [{"file": "a", "bbox": []}, {"file": name, "bbox": []}])
    with pytest.raises(DataError, match=r"vggss\.json entry 1 .*(absolute or contains '\.\.')"):
        VGGSoundSource(root)
    lenient = VGGSoundSource(root, on_error="skip")
    assert lenient.names == ["a"] and len(lenient.skipped) == 1


@pytest.mark.parametrize("line", ["frames/../../outside/secret", "a/../../outside/secret",
                                  "..\\outside\\secret", "\\\\server\\share\\secret"])
def test_flickr_list_lines_escaping_the_root_are_refused(tmp_path, line):
    plant_outside(tmp_path)
    root = flickr_root(tmp_path / "data")
    (root / "train.txt").write_text(f"a\n{line}\n")
    with pytest.raises(DataError, match=r"train\.txt line 2: .*(absolute or contains '\.\.')"):
        FlickrSoundNet(root, "train.txt", masks=False)
    lenient = FlickrSoundNet(root, "train.txt", masks=False, on_error="skip")
    assert lenient.names == ["a"] and len(lenient.skipped) == 1


@pytest.mark.parametrize("argument, value", [("duration", math.inf), ("sample_rate", math.nan),
                                             ("image_size", math.inf), ("duration", 0.0)])
def test_loader_arguments_must_be_positive_and_finite(tmp_path, argument, value):
    root = flickr_root(tmp_path)
    with pytest.raises(ValueError, match=f"{argument}="):
        FlickrSoundNet(root, "list.txt", **{argument: value})


# ---------------------------------------------------------------- composed scenes (stamp files)
@pytest.fixture
def composed():
    return pytest.importorskip("dmt_wrap_benchmarks.composed.dataset")


def write_stamp(folder: Path, name: str, frequency: float, rate: int, damage: str | None = None) -> None:
    """A usable stamp (96 px RGBA cut-out, 1 s tone at ``rate``), then optionally damaged."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    image = Image.new("RGBA", (96, 96), (0, 0, 0, 0))
    image.paste((200, 50, 50, 255), (10, 10, 86, 86))
    image.save(folder / f"{name}.png")
    t = np.arange(rate) / rate
    sf.write(folder / f"{name}.ogg", 0.5 * np.sin(2 * np.pi * frequency * t), rate)
    png, ogg = folder / f"{name}.png", folder / f"{name}.ogg"
    if damage == "png_garbage":
        png.write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    elif damage == "png_truncated":
        png.write_bytes(png.read_bytes()[: png.stat().st_size // 2])
    elif damage == "ogg_garbage":
        ogg.write_bytes(b"OggS not a recording")
    elif damage == "ogg_empty":
        ogg.write_bytes(b"")
    elif damage == "ogg_silent":
        sf.write(ogg, np.zeros(rate), rate)


def stamps_dir_with(tmp_path: Path, damage: str) -> Path:
    """Four good stamps at four sample rates, and ``bad`` damaged by ``damage``."""
    folder = tmp_path / "stamps"
    for i, (frequency, rate) in enumerate([(300, 8000), (500, 16000), (700, 44100), (900, 22050)]):
        write_stamp(folder, f"s{i}", frequency, rate)
    write_stamp(folder, "bad", 400, 16000, damage)
    return folder


SCENES = dict(length=2, image_size=32, sample_rate=16000, duration=0.5)


@pytest.mark.parametrize("damage, file", [
    ("png_garbage", "bad.png"), ("ogg_garbage", "bad.ogg"), ("ogg_empty", "bad.ogg"),
    ("png_truncated", "bad.png"),
])
def test_composed_corrupt_stamp_names_the_file(composed, tmp_path, damage, file):
    folder = stamps_dir_with(tmp_path, damage)
    with pytest.raises(Exception) as info:
        composed.ComposedScenes("flickr", classes=["bad", "s0", "s1"], stamps_dir=folder, **SCENES)
    assert str(folder / file) in str(info.value)


def test_composed_silent_stamp_is_skipped_when_counted_and_refused_when_named(composed, tmp_path, caplog):
    folder = stamps_dir_with(tmp_path, "ogg_silent")
    with caplog.at_level("INFO"):
        scenes = composed.ComposedScenes("flickr", classes=4, stamps_dir=folder, **SCENES)
    assert scenes.classes == ["s0", "s1", "s2", "s3"] and not scenes.is_fallback  # any rate resampled
    assert "skipping stamp bad" in caplog.text
    assert scenes[0]["audio"].shape == (8000,) and torch.isfinite(scenes[0]["audio"]).all()
    with pytest.raises(ValueError, match=re.escape(str(folder / "bad.ogg")) + ": the recording is silent"):
        composed.ComposedScenes("flickr", classes=["bad", "s0", "s1"], stamps_dir=folder, **SCENES)
