"""Flickr-SoundNet and VGG-SS loaders on tiny fixtures written in the published formats."""
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from dmt_wrap.datasets.boxes import flickr_gt, vggss_gt
from dmt_wrap.datasets.flickr import FlickrSoundNet
from dmt_wrap.datasets.media import DataError, read_audio_clip, read_image
from dmt_wrap.datasets.splits import label_split
from dmt_wrap.datasets.vggss import VGGSoundSource

SIZE = 32  # small images keep the tests fast; the default is 224
FLICKR_BOXES = {"1001": [[0, 0, 128, 128], [0, 0, 256, 128]], "1002": [[64, 64, 192, 192]]}


def write_frame(path: Path, color=(200, 30, 30), size=(40, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path, format="JPEG")


def write_clip(path: Path, seconds=2.0, rate=22050, channels=2, frequency=440.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.5 * np.sin(2 * np.pi * frequency * t)
    subtype = "FLOAT" if path.suffix == ".wav" else None  # FLAC / OGG pick their own
    sf.write(path, np.stack([wave] * channels, axis=1), rate, subtype=subtype)


def write_flickr_xml(path: Path, boxes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    objects = "".join(
        f"<object><name>annotator{i}</name><bndbox><xmin>{x0}</xmin><ymin>{y0}</ymin>"
        f"<xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>"
        for i, (x0, y0, x1, y1) in enumerate(boxes))
    path.write_text(f"<annotation><filename>{path.stem}.jpg</filename>"
                    f"<size><width>256</width><height>256</height></size>{objects}</annotation>")


@pytest.fixture
def flickr_root(tmp_path: Path) -> Path:
    for name, boxes in FLICKR_BOXES.items():
        write_frame(tmp_path / "frames" / f"{name}.jpg")
        write_clip(tmp_path / "audio" / f"{name}.wav")
        write_flickr_xml(tmp_path / "Annotations" / f"{name}.xml", boxes)
    (tmp_path / "test.txt").write_text("1001\n1002\n")
    return tmp_path


@pytest.fixture
def vggss_root(tmp_path: Path) -> Path:
    entries = [{"file": "clipA_000010", "class": "dog barking", "bbox": [[0.1, 0.1, 0.5, 0.6]]},
               {"file": "clipB_000020", "class": "cello", "bbox": []}]
    for entry in entries:
        write_frame(tmp_path / "frames" / f"{entry['file']}.jpg")
        write_clip(tmp_path / "audio" / f"{entry['file']}.flac", rate=16000, channels=1)
    (tmp_path / "vggss.json").write_text(json.dumps(entries))
    return tmp_path


# ---------------------------------------------------------------- media helpers

def test_read_image_resizes_to_square_float(tmp_path):
    write_frame(tmp_path / "a.jpg", color=(255, 0, 0), size=(50, 20))
    image = read_image(tmp_path / "a.jpg", 24)
    assert image.shape == (3, 24, 24) and image.dtype == torch.float32
    assert image[0].mean() > 0.9 and image[1].mean() < 0.1


def test_audio_is_resampled_downmixed_and_centre_cropped(tmp_path):
    write_clip(tmp_path / "tone.wav", seconds=2.0, rate=22050, frequency=1000.0)
    clip = read_audio_clip(tmp_path / "tone.wav", sample_rate=8000, duration=1.0)
    assert clip.shape == (8000,)
    spectrum = np.abs(np.fft.rfft(clip.numpy()))
    assert np.argmax(spectrum) == pytest.approx(1000, abs=2)  # 1 Hz bins over 1 s

    ramp = np.linspace(-0.9, 0.9, 5 * 800, dtype=np.float32)
    sf.write(tmp_path / "ramp.wav", np.stack([ramp, ramp - 0.2], axis=1), 800, subtype="FLOAT")
    centre = read_audio_clip(tmp_path / "ramp.wav", sample_rate=800, duration=1.0)
    start = (4000 - 800) // 2
    np.testing.assert_allclose(centre.numpy(), ramp[start:start + 800] - 0.1, atol=1e-6)


def test_short_audio_is_tiled(tmp_path):
    write_clip(tmp_path / "short.wav", seconds=0.25, rate=8000, channels=1)
    clip = read_audio_clip(tmp_path / "short.wav", sample_rate=8000, duration=1.0)
    assert clip.shape == (8000,)
    torch.testing.assert_close(clip[:2000], clip[2000:4000])
    torch.testing.assert_close(clip[:2000], clip[6000:])


@pytest.mark.parametrize("damage", ["empty", "garbage", "truncated", "header_only", "missing"])
def test_bad_audio_names_the_file(tmp_path, damage):
    path = tmp_path / "clip.wav"
    write_clip(path, seconds=0.5, rate=8000, channels=1)
    data = path.read_bytes()
    if damage == "missing":
        path.unlink()
    else:
        path.write_bytes({"empty": b"", "garbage": b"RIFF....not audio at all",
                          "truncated": data[: len(data) // 2],
                          "header_only": data[:80]}[damage])
    with pytest.raises(DataError, match="clip.wav") as info:
        read_audio_clip(path, 8000, 1.0)
    assert info.value.path == str(path)


def test_silent_audio_is_refused_unless_allowed(tmp_path):
    sf.write(tmp_path / "silent.wav", np.zeros(800, dtype=np.float32), 800)
    with pytest.raises(DataError, match="silent.*allow_silent"):
        read_audio_clip(tmp_path / "silent.wav", 800, 1.0)
    assert read_audio_clip(tmp_path / "silent.wav", 800, 1.0, allow_silent=True).abs().sum() == 0


@pytest.mark.parametrize("damage", ["empty", "truncated", "garbage"])
def test_bad_image_names_the_file(tmp_path, damage):
    path = tmp_path / "frame.jpg"
    write_frame(path, size=(64, 64))
    data = path.read_bytes()
    path.write_bytes({"empty": b"", "truncated": data[: len(data) // 2],
                      "garbage": b"\xff\xd8 not a jpeg"}[damage])
    with pytest.raises(DataError, match="frame.jpg.*(empty|corrupt|truncated)"):
        read_image(path, 16)


# ---------------------------------------------------------------- Flickr-SoundNet

def test_flickr_items(flickr_root):
    dataset = FlickrSoundNet(flickr_root, "test.txt", image_size=SIZE, duration=1.0)
    assert len(dataset) == 2 and dataset.names == ["1001", "1002"]
    assert dataset.sample_rate == 16000 and dataset.image_size == SIZE
    item = dataset[0]
    assert item["image"].shape == (3, SIZE, SIZE)
    assert 0.0 <= item["image"].min() and item["image"].max() <= 1.0
    assert item["audio"].shape == (16000,) and item["audio"].dtype == torch.float32
    assert item["index"] == 0
    assert torch.equal(item["mask"], flickr_gt(FLICKR_BOXES["1001"], size=SIZE))
    assert set(item["mask"].unique().tolist()) == {0.0, 0.5, 1.0}
    batch = next(iter(torch.utils.data.DataLoader(dataset, batch_size=2)))
    assert batch["mask"].shape == (2, SIZE, SIZE) and batch["index"].tolist() == [0, 1]


def test_flickr_default_duration_and_list_from_annotations(flickr_root):
    dataset = FlickrSoundNet(flickr_root)  # no list: every id with an XML
    assert dataset.names == ["1001", "1002"]
    assert dataset[1]["audio"].shape == (48000,)  # 3 s at 16 kHz, tiled from a 2 s clip


def test_flickr_training_list_without_annotations(flickr_root):
    write_frame(flickr_root / "frames" / "2001.jpg")
    write_clip(flickr_root / "audio" / "2001.ogg", rate=16000, channels=1)
    (flickr_root / "train.txt").write_text("2001\n")
    dataset = FlickrSoundNet(flickr_root, "train.txt", image_size=SIZE, duration=0.5)
    assert "mask" not in dataset[0]
    (flickr_root / "mixed.txt").write_text("1001\n2001\n")
    with pytest.raises(DataError, match="masks=True.*masks=False"):
        FlickrSoundNet(flickr_root, "mixed.txt")
    assert len(FlickrSoundNet(flickr_root, "mixed.txt", masks=False)) == 2
    with pytest.raises(DataError, match="mixed.txt line 2.*2001.xml"):
        FlickrSoundNet(flickr_root, "mixed.txt", masks=True)


@pytest.mark.parametrize("line, message", [("../escape", "contains '..'"),
                                           ("/etc/passwd", "absolute")])
def test_flickr_refuses_paths_leaving_the_root(flickr_root, line, message):
    (flickr_root / "bad.txt").write_text(f"1001\n{line}\n")
    with pytest.raises(DataError, match=f"bad.txt line 2.*{message}"):
        FlickrSoundNet(flickr_root, "bad.txt", masks=False)


def test_flickr_missing_frame_raises_or_is_skipped(flickr_root):
    (flickr_root / "frames" / "1002.jpg").unlink()
    with pytest.raises(DataError, match="test.txt line 2.*1002.jpg is missing"):
        FlickrSoundNet(flickr_root, "test.txt")
    dataset = FlickrSoundNet(flickr_root, "test.txt", on_error="skip")
    assert dataset.names == ["1001"]
    assert len(dataset.skipped) == 1 and dataset.skipped[0][0].endswith("1002.jpg")


def test_flickr_missing_audio_names_the_stem(flickr_root):
    (flickr_root / "audio" / "1001.wav").unlink()
    with pytest.raises(DataError, match="test.txt line 1.*audio.1001"):
        FlickrSoundNet(flickr_root, "test.txt")


@pytest.mark.parametrize("xml, message", [
    ("<annotation><object><bndbox><xmin>1", "malformed"),
    ("<annotation><object><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>9</xmax></bndbox>"
     "</object></annotation>", "box 0: <ymax> is missing"),
    ("<annotation><object><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>300</xmax><ymax>9</ymax>"
     "</bndbox></object></annotation>", "box 0: box .* outside the image"),
    ("<annotation><object><bndbox><xmin>9</xmin><ymin>1</ymin><xmax>2</xmax><ymax>9</ymax>"
     "</bndbox></object></annotation>", "x0 > x1"),
    ("<annotation><object/></annotation>", "no <bndbox>"),
])
def test_flickr_bad_xml_raises_or_is_skipped(flickr_root, xml, message):
    (flickr_root / "Annotations" / "1002.xml").write_text(xml)
    with pytest.raises(DataError, match=f"1002.xml.*{message}"):
        FlickrSoundNet(flickr_root, "test.txt")
    dataset = FlickrSoundNet(flickr_root, "test.txt", on_error="skip")
    assert dataset.names == ["1001"] and dataset.skipped[0][0].endswith("1002.xml")


def test_flickr_corrupt_media_at_getitem_raise_or_next_good_item(flickr_root):
    (flickr_root / "audio" / "1001.wav").write_bytes(b"")
    frame = flickr_root / "frames" / "1002.jpg"
    frame.write_bytes(frame.read_bytes()[:100])
    strict = FlickrSoundNet(flickr_root, "test.txt", image_size=SIZE, duration=0.5)
    with pytest.raises(DataError, match="1001.wav"):
        strict[0]
    with pytest.raises(DataError, match="1002.jpg"):
        strict[1]

    write_frame(flickr_root / "frames" / "1003.jpg")
    write_clip(flickr_root / "audio" / "1003.wav")
    write_flickr_xml(flickr_root / "Annotations" / "1003.xml", [[0, 0, 10, 10]])
    (flickr_root / "test.txt").write_text("1001\n1002\n1003\n")
    lenient = FlickrSoundNet(flickr_root, "test.txt", image_size=SIZE, duration=0.5,
                             on_error="skip")
    assert lenient[0]["index"] == 2 and lenient[1]["index"] == 2 and lenient[2]["index"] == 2
    assert [Path(path).name for path, _ in lenient.skipped] == ["1001.wav", "1002.jpg"]
    lenient[0]  # a failure is recorded once
    assert len(lenient.skipped) == 2


def test_on_error_must_be_known(flickr_root):
    with pytest.raises(ValueError, match="on_error"):
        FlickrSoundNet(flickr_root, on_error="ignore")


# ---------------------------------------------------------------- VGG-SS

def test_vggss_items_and_empty_bbox(vggss_root):
    dataset = VGGSoundSource(vggss_root, image_size=SIZE, sample_rate=8000, duration=1.0)
    assert dataset.names == ["clipA_000010", "clipB_000020"]
    first, second = dataset[0], dataset[1]
    assert first["image"].shape == (3, SIZE, SIZE) and first["audio"].shape == (8000,)
    assert torch.equal(first["mask"], vggss_gt([[0.1, 0.1, 0.5, 0.6]], size=SIZE))
    assert first["mask"].sum() > 0
    assert second["mask"].shape == (SIZE, SIZE) and second["mask"].sum() == 0


def _write_entries(root: Path, entries) -> None:
    (root / "vggss.json").write_text(json.dumps(entries))


GOOD = {"file": "clipA_000010", "class": "dog barking", "bbox": [[0.1, 0.1, 0.5, 0.6]]}


@pytest.mark.parametrize("bad, message", [
    ({"class": "x", "bbox": []}, r"entry 1: missing key\(s\) \['file'\]"),
    ({"file": "clipB_000020", "class": "x"}, r"entry 1: missing key\(s\) \['bbox'\]"),
    ({"file": "clipB_000020", "bbox": [[0.1, 0.2, 1.5, 0.9]]}, "entry 1 .*box 0.*outside"),
    ({"file": "clipB_000020", "bbox": [[0.1, 0.2, 0.3]]}, "entry 1 .*four finite numbers"),
    ({"file": "clipB_000020", "bbox": "0.1 0.2"}, "entry 1 .*bbox"),
    ({"file": "../clipB_000020", "bbox": []}, "entry 1 .*contains '..'"),
    ({"file": "clipC_000030", "bbox": []}, "entry 1 .*clipC_000030.jpg is missing"),
    (["clipB_000020"], "entry 1: is a list"),
])
def test_vggss_bad_entry_names_the_entry_or_is_skipped(vggss_root, bad, message):
    _write_entries(vggss_root, [GOOD, bad])
    with pytest.raises(DataError, match=f"vggss.json {message}"):
        VGGSoundSource(vggss_root)
    dataset = VGGSoundSource(vggss_root, on_error="skip")
    assert dataset.names == ["clipA_000010"] and len(dataset.skipped) == 1


def test_vggss_tiny_rounding_outside_the_image_is_clipped(vggss_root):
    _write_entries(vggss_root, [{"file": "clipA_000010", "bbox": [[-0.0004, 0.0, 1.0004, 1.0]]}])
    dataset = VGGSoundSource(vggss_root, image_size=SIZE, sample_rate=8000, duration=0.5)
    assert dataset[0]["mask"].sum() == SIZE * SIZE


def test_vggss_unreadable_json_names_the_file(vggss_root):
    (vggss_root / "vggss.json").write_text('[{"file": "clipA_000010", ')
    with pytest.raises(DataError, match="vggss.json: cannot read"):
        VGGSoundSource(vggss_root, on_error="skip")  # no entry to skip: always an error
    (vggss_root / "vggss.json").write_text('{"file": "clipA_000010"}')
    with pytest.raises(DataError, match="top level is a dict"):
        VGGSoundSource(vggss_root)


# ---------------------------------------------------------------- splits

def test_label_split_is_deterministic_and_partitions():
    labeled, unlabeled = label_split(100, 0.29, seed=3)
    assert len(labeled) == 29 and len(unlabeled) == 71
    assert sorted(labeled + unlabeled) == list(range(100))
    assert label_split(100, 0.29, seed=3) == (labeled, unlabeled)
    assert label_split(100, 0.29, seed=4)[0] != labeled
    assert label_split(7, 1.0, seed=0) == (list(range(7)), [])


@pytest.mark.parametrize("n, ratio, message", [(10, 0.0, r"\(0, 1\]"), (10, 1.5, r"\(0, 1\]"),
                                               (10, 0.05, "picks none of them"), (0, 0.5, "n=0")])
def test_label_split_refuses_bad_arguments(n, ratio, message):
    with pytest.raises(ValueError, match=message):
        label_split(n, ratio, seed=0)


def test_vggss_plain_id_list_without_boxes(vggss_root):
    (vggss_root / "train.txt").write_text("clipA_000010\n\nclipB_000020\nclipZ_000099\n")
    with pytest.raises(DataError, match="train.txt line 4.*clipZ_000099.jpg is missing"):
        VGGSoundSource(vggss_root, "train.txt", masks=False)
    dataset = VGGSoundSource(vggss_root, "train.txt", masks=False, on_error="skip",
                             image_size=SIZE, sample_rate=8000, duration=0.5)
    assert dataset.names == ["clipA_000010", "clipB_000020"] and len(dataset.skipped) == 1
    assert "mask" not in dataset[0] and dataset[0]["image"].shape == (3, SIZE, SIZE)
    with pytest.raises(DataError, match="vggss.json: masks=False reads a plain id list"):
        VGGSoundSource(vggss_root, "vggss.json", masks=False)
