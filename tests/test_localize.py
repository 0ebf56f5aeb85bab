import av
import numpy as np
import pytest
import torch
from PIL import Image

from dmt_wrap import DMTConfig, DualMeanTeacher
from dmt_wrap.datasets.media import DataError
from dmt_wrap.localize import Localizer, ShortAudioWarning, localize_image, localize_video
from dmt_wrap.pretrained import write_pretrained
from dmt_wrap.video import sample_frames
from tests.registered_nets import BrightnessNet
from tests.synthetic_media import SQUARE, frame_at, make_video, make_wav, square_left


@pytest.fixture(scope="module")
def oracle(tmp_path_factory):
    """An exported model whose map is the frame's brightness: it points at the moving square."""
    model = DualMeanTeacher(BrightnessNet, DMTConfig(teachers=0))
    folder = tmp_path_factory.mktemp("oracle") / "model"
    write_pretrained(model, folder, network="brightness", network_kwargs={},
                     data={"image_size": 32, "sample_rate": 16000, "duration": 1.0})
    return Localizer.from_folder(folder)


def decoded(path):
    with av.open(str(path)) as container:
        kinds = sorted(stream.type for stream in container.streams)
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    return kinds, frames


@pytest.mark.parametrize("suffix", [".mp4", ".mkv", ".webm", ".avi"])
def test_a_video_gets_an_overlay_video_with_its_audio_maps_and_a_sheet(oracle, tmp_path, suffix):
    video = make_video(tmp_path / f"clip{suffix}")
    summary = localize_video(oracle, video, tmp_path / "out.mp4", fps=4, npz=tmp_path / "maps.npz",
                             sheet=tmp_path / "sheet.png", progress=False)
    kinds, frames = decoded(tmp_path / "out.mp4")
    assert kinds == ["audio", "video"] and len(frames) == summary["frames"] == 8
    assert frames[0].shape[0] == 48 and frames[0].shape[1] > 64  # the frame, then the colour bar
    maps = np.load(tmp_path / "maps.npz")
    assert maps["maps"].shape == (8, 24, 32) and list(maps["frame_size"]) == [48, 64]
    assert np.allclose(maps["times"], np.arange(8) / 4)
    assert Image.open(tmp_path / "sheet.png").size[0] > 0


@pytest.mark.parametrize("width,height", [(64, 48), (48, 64)])
def test_maps_sit_on_the_real_frame_for_non_square_and_portrait_frames(oracle, tmp_path, width, height):
    video = make_video(tmp_path / "clip.mp4", width=width, height=height, audio=True)
    (time, frame), = list(sample_frames(video, times=[1.0]))
    confidence = oracle.maps([frame], [torch.zeros(16000)])[0]
    assert confidence.shape == (height, width)
    row, column = np.unravel_index(confidence.argmax(), confidence.shape)
    left, top = square_left(time, 2.0, width), (height - SQUARE) // 2
    assert left - 2 <= column < left + SQUARE + 2 and top - 2 <= row < top + SQUARE + 2


def test_variable_frame_rate_samples_the_frame_on_screen(tmp_path):
    times = [0.0, 0.05, 0.3, 0.35, 0.9, 1.0, 1.5, 1.9]
    video = make_video(tmp_path / "vfr.mp4", times=times)
    sampled = list(sample_frames(video, fps=4))
    assert [t for t, _ in sampled] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
    for target, frame in sampled:
        shown = max(t for t in times if t <= target + 1e-9)
        expected = square_left(shown, 2.0, 64)
        assert abs(int(np.argmax(frame[24, :, 0] > 128)) - expected) <= 1, (target, shown)


def test_no_video_stream_is_refused(oracle, tmp_path):
    with pytest.raises(DataError, match="has no video stream.*--image IMAGE --audio AUDIO"):
        localize_video(oracle, make_wav(tmp_path / "sound.wav"), tmp_path / "out.mp4", progress=False)


def test_no_audio_track_is_refused_unless_one_is_supplied(oracle, tmp_path):
    video = make_video(tmp_path / "mute.mp4", audio=False)
    with pytest.raises(DataError, match="has no audio track \\(it holds a picture or a video\\); pass one with --audio FILE"):
        localize_video(oracle, video, tmp_path / "out.mp4", progress=False)
    assert not list(tmp_path.glob("*out*"))
    summary = localize_video(oracle, video, tmp_path / "out.mp4", audio_file=make_wav(tmp_path / "s.wav"),
                             progress=False)
    assert decoded(summary["video"])[0] == ["audio", "video"]


@pytest.mark.filterwarnings("ignore::dmt_wrap.localize.ShortAudioWarning")  # half.mkv keeps 0.9 s of sound
def test_corrupt_truncated_and_empty_files_are_refused_and_leave_nothing(oracle, tmp_path):
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00not a video" * 100)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    data = make_video(tmp_path / "full.mp4").read_bytes()
    half_mp4 = tmp_path / "half.mp4"
    half_mp4.write_bytes(data[:len(data) // 2])
    data = make_video(tmp_path / "full.mkv").read_bytes()
    half_mkv = tmp_path / "half.mkv"
    half_mkv.write_bytes(data[:len(data) // 2])
    for path, message in ((garbage, "not a readable media file"), (empty, "file is empty"),
                          (half_mp4, "not a readable media file, corrupt or truncated"),
                          (half_mkv, "truncated: the file declares .* --allow-truncated")):
        with pytest.raises(DataError, match=message):
            localize_video(oracle, path, tmp_path / "out" / "o.mp4", progress=False)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())
    summary = localize_video(oracle, half_mkv, tmp_path / "o.mp4", audio_file=make_wav(tmp_path / "s.wav"),
                             allow_truncated=True, progress=False)
    assert 0 < summary["frames"] < 8


def test_a_zero_length_clip_is_refused(oracle, tmp_path):
    sound = make_wav(tmp_path / "s.wav")
    headers_only = make_video(tmp_path / "zero.mkv", times=[], audio=False)
    with pytest.raises(DataError, match="holds headers but no media data \\(a zero-length clip"):
        localize_video(oracle, headers_only, tmp_path / "out.mp4", audio_file=sound, progress=False)
    no_frames = make_video(tmp_path / "silent_film.mkv", times=[], audio=True)
    with pytest.raises(DataError, match="video stream holds no frames \\(a zero-length clip"):
        localize_video(oracle, no_frames, tmp_path / "out.mp4", progress=False)
    assert not list(tmp_path.glob("*out*"))


def test_audio_shorter_than_the_window_is_tiled_with_a_warning(oracle, tmp_path):
    video = make_video(tmp_path / "short.mp4", seconds=0.5, fps=10)
    with pytest.warns(ShortAudioWarning, match="shorter than the model's 1 s window; it is tiled"):
        summary = localize_video(oracle, video, tmp_path / "out.mp4", fps=4, progress=False)
    assert summary["frames"] == 2


def test_an_image_and_a_sound_give_an_overlay_png_and_the_map(oracle, tmp_path):
    image = tmp_path / "portrait.png"
    Image.fromarray(frame_at(1.0, 2.0, 48, 64)).save(image)
    summary = localize_image(oracle, image, make_wav(tmp_path / "s.wav"), tmp_path / "o.png", npz=tmp_path / "m.npz")
    png = np.asarray(Image.open(summary["png"]))
    assert png.shape[0] == 64 and png.shape[1] > 48
    assert np.load(tmp_path / "m.npz")["map"].shape == (64, 48)
