import json

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from dmt_wrap.datasets.flickr import FlickrSoundNet
from dmt_wrap.datasets.media import DataError
from dmt_wrap.datasets.vggss import VGGSoundSource
from dmt_wrap.prepare import PrepareSettings, prepare
from tests.synthetic_media import make_video, square_left

SETTINGS = PrepareSettings(duration=1.0)


@pytest.fixture
def downloads(tmp_path):
    folder = tmp_path / "videos"
    folder.mkdir()
    make_video(folder / "clipA_000001.mp4")
    make_video(folder / "clipB_000030_000040.mkv", width=48, height=64)
    make_video(folder / "mute_000000.mp4", audio=False)
    make_video(folder / "short_000000.mp4", seconds=0.5)
    (folder / "broken_000000.mp4").write_bytes(b"\x00garbage" * 50)
    ids = tmp_path / "vggsound.csv"
    ids.write_text("clipA,1,dog barking,train\nclipB,30,car,train\nmute,0,x,train\nshort,0,x,test\n"
                   "broken,0,x,train\ngone,5,x,train\nclipA,1,dog barking,train\n")
    return folder, ids


def square_column(frame: np.ndarray) -> int:
    row = frame.shape[0] // 2
    return int(np.argmax(frame[row, :, 0] > 128))


def test_videos_become_the_loaders_layout_with_a_manifest(downloads, tmp_path, monkeypatch):
    folder, ids = downloads
    out = tmp_path / "prepared"
    manifest = prepare(folder, out, ids, SETTINGS, progress=False)
    assert manifest["counts"] == {"prepared": 2, "missing": 1, "unreadable": 1, "no_audio": 1, "too_short": 1,
                                  "listed": 6}
    assert manifest["summary"].startswith("prepared 2 of 6 listed: 1 missing, 1 unreadable, 1 without audio, "
                                          "1 too short")
    assert (out / "train.txt").read_text() == "clipA_000001\nclipB_000030\n"
    records = {r["id"]: r for r in manifest["records"]}
    assert "corrupt" in records["broken_000000"]["reason"] and records["gone_000005"]["status"] == "missing"
    assert records["clipA_000001"]["frame_time"] == 1.0 and records["clipA_000001"]["audio_window"] == [0.5, 1.5]
    assert json.loads((out / "manifest.json").read_text())["settings"]["frame"] == "middle"
    frame = np.asarray(Image.open(out / "frames" / "clipA_000001.jpg"))
    assert frame.shape == (48, 64, 3) and abs(square_column(frame) - square_left(1.0, 2.0, 64)) <= 1
    assert np.asarray(Image.open(out / "frames" / "clipB_000030.jpg")).shape == (64, 48, 3)
    wave, rate = sf.read(out / "audio" / "clipA_000001.wav")
    assert rate == 16000 and wave.shape == (16000,)
    for loader in (FlickrSoundNet(out, "train.txt", masks=False, duration=1.0),
                   VGGSoundSource(out, "train.txt", masks=False, duration=1.0)):
        assert len(loader) == 2 and loader[0]["audio"].shape == (16000,)
    monkeypatch.chdir(tmp_path)  # a root relative to the working folder
    assert len(VGGSoundSource("prepared", "train.txt", masks=False, duration=1.0)) == 2


def test_rerunning_skips_finished_ids_and_refuses_other_settings(downloads, tmp_path):
    folder, ids = downloads
    out = tmp_path / "prepared"
    first = prepare(folder, out, ids, SETTINGS, progress=False)
    stamp = (out / "frames" / "clipA_000001.jpg").stat().st_mtime_ns
    (out / "audio" / "clipB_000030.wav").unlink()  # an interrupted id is redone
    second = prepare(folder, out, ids, SETTINGS, workers=2, progress=False)
    assert second["records"] == first["records"]
    assert (out / "frames" / "clipA_000001.jpg").stat().st_mtime_ns == stamp
    assert (out / "audio" / "clipB_000030.wav").is_file()
    with pytest.raises(DataError, match="was prepared with .*use another output folder"):
        prepare(folder, out, ids, PrepareSettings(duration=1.0, frame="time:0.5"), progress=False)
    assert not [p for p in out.rglob(".*")]  # no temporary file left behind


def test_the_frame_rule_and_padding_are_explicit(downloads, tmp_path):
    folder, _ = downloads
    out = tmp_path / "prepared"
    manifest = prepare(folder, out, None, PrepareSettings(duration=1.0, frame="time:0.25", pad_short=True),
                       progress=False)
    records = {r["id"]: r for r in manifest["records"]}
    assert records["short_000000"]["status"] == "prepared"  # padded by the loaders
    assert records["clipB_000030_000040"]["frame_time"] == 0.25
    frame = np.asarray(Image.open(out / "frames" / "clipA_000001.jpg"))
    assert abs(square_column(frame) - square_left(0.2, 2.0, 64)) <= 1  # the frame on screen at 0.25 s
    with pytest.raises(ValueError, match="--frame 'first'"):
        PrepareSettings(frame="first")
