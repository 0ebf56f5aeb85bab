"""The input contract of a trained model: ``InputSpec`` records what the network was trained on and converts a
user's frames and sound to it, by the same calls in Python and in ``dmt-wrap localize``."""
import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from dmt_wrap import DMTConfig, DualMeanTeacher
from dmt_wrap.cli import main
from dmt_wrap.datasets.media import read_image
from dmt_wrap.inputs import InputError, InputSpec, ShortAudioWarning, frame_map
from dmt_wrap.pretrained import write_pretrained
from tests.registered_nets import ClipToyNet

SPEC = InputSpec(image_size=16, sample_rate=16000, duration=1.0)


def picture(height: int = 48, width: int = 64) -> np.ndarray:
    """A frame with structure everywhere (a resize that moved or blurred it would show)."""
    y, x = np.mgrid[:height, :width]
    return np.stack([x * 255 // width, y * 255 // height, (x * y) % 256], axis=-1).astype(np.uint8)


def stereo(seconds: float, rate: int = 44100) -> np.ndarray:
    """int16 ``[T, 2]`` as soundfile reads a WAV: a rising tone on the left, a louder falling one on the right."""
    t = np.arange(round(seconds * rate)) / rate
    left = 0.3 * np.sin(2 * np.pi * (200 + 300 * t) * t)
    right = 0.6 * np.sin(2 * np.pi * (900 - 200 * t) * t)
    return (np.stack([left, right], axis=1) * 32767).astype(np.int16)


def test_the_spec_round_trips_through_the_export_data():
    data = {"image_size": 224, "sample_rate": 16000, "duration": 3.0, "tier": "flickr", "test_size": 8}
    spec = InputSpec.from_data(data)
    assert spec == InputSpec(224, 16000, 3.0) and spec.samples == 48000 and spec.value_range == (0.0, 1.0)
    assert InputSpec.from_data(spec.to_data()) == spec
    assert InputSpec.from_data({"image_size": [32, 32], "samples": 16000, "sample_rate": 16000,
                                "duration": 1.0}) == InputSpec(32, 16000, 1.0)  # as fit records it
    with pytest.raises(InputError, match=r"lack \['sample_rate', 'duration'\]"):
        InputSpec.from_data({"image_size": 32, "samples": 16000})
    with pytest.raises(InputError, match="square frames"):
        InputSpec.from_data({"image_size": [32, 48], "sample_rate": 16000, "duration": 1.0})
    with pytest.raises(InputError, match="positive"):
        InputSpec(0, 16000, 1.0)


def test_frames_of_any_layout_and_dtype_become_the_networks_squares(tmp_path):
    frame = picture()
    images = SPEC.images(frame)
    assert images.shape == (1, 3, 16, 16) and images.dtype == torch.float32
    Image.fromarray(frame).save(tmp_path / "frame.png")
    assert torch.equal(images[0], read_image(tmp_path / "frame.png", 16))  # exactly as the loaders read files
    assert torch.equal(SPEC.images(torch.from_numpy(frame).permute(2, 0, 1)), images)  # [3, H, W] tensor
    assert torch.equal(SPEC.images(Image.fromarray(frame)), images)
    assert torch.equal(SPEC.images(np.stack([frame, frame])), images.repeat(2, 1, 1, 1))  # [B, H, W, 3]
    assert SPEC.images([frame, picture(30, 20)]).shape == (2, 3, 16, 16)  # a list of any sizes
    rgba = np.concatenate([frame, np.full((48, 64, 1), 7, np.uint8)], axis=-1)
    assert torch.equal(SPEC.images(rgba), images)  # alpha dropped
    grey = SPEC.images(frame[..., 0])
    assert torch.equal(grey[0, 0], grey[0, 2])  # [H, W] grey to three equal channels
    floats = SPEC.images(frame.astype(np.float32) / 255)
    assert floats.shape == images.shape and (floats - images).abs().max() < 0.05  # float [0, 1]: a torch resize
    wide = InputSpec(16, 16000, 1.0, value_range=(-1.0, 1.0)).images(frame)
    assert torch.allclose(wide, 2 * images - 1)


@pytest.mark.parametrize("frames,message", [
    (np.zeros((48, 64, 3), np.float32) + 200.0, r"float pixels in \[200, 200\]; float frames must lie in \[0, 1\]"),
    (np.zeros((48, 64, 3), np.int64), "dtype int64; pass uint8"),
    (np.zeros((48, 64, 5), np.uint8), "neither end has 1, 3 or 4 channels"),
    (np.zeros((2, 2, 48, 64, 3), np.uint8), "a frame is \\[H, W, 3\\]"),
    (np.full((48, 64, 3), np.nan, np.float32), "NaN or inf pixels"),
    ([], "no frames given"),
    ("frame.jpg", "not str"),
])
def test_frames_that_cannot_be_converted_are_refused_saying_why(frames, message):
    with pytest.raises(InputError, match=message):
        SPEC.images(frames)


def test_a_waveform_of_any_rate_channels_and_dtype_becomes_one_mono_window():
    wave = stereo(2.0)
    audio = SPEC.audio(wave, 44100)
    assert audio.shape == (1, 16000) and audio.dtype == torch.float32
    as_float = wave.astype(np.float32) / 32768
    assert torch.equal(SPEC.audio(as_float.T, 44100), audio)  # [C, T] floats: the same
    assert torch.equal(SPEC.audio(torch.from_numpy(as_float.T.copy())[None], 44100), audio)  # [1, C, T]
    mono = SPEC.mono(as_float.mean(axis=1), 44100)
    assert torch.equal(audio[0], mono[8000:24000])  # channels averaged, then resampled; the middle second
    assert torch.equal(SPEC.audio(wave, 44100, centre=0.0)[0], mono[:16000])  # shifted inside the clip


def test_a_batch_of_frames_takes_a_clip_each_or_one_for_all():
    frames = np.stack([picture()] * 3)
    clips = np.stack([stereo(1.2).T] * 3)  # [B, C, T]
    images, audio = SPEC.prepare(frames, clips, 44100)
    assert images.shape == (3, 3, 16, 16) and audio.shape == (3, 16000)
    shared = SPEC.prepare(frames, stereo(1.2)[:, 0], 44100)[1]  # one mono clip [T] for every frame
    assert shared.shape == (3, 16000) and torch.equal(shared[0], shared[2])
    with pytest.raises(InputError, match=r"shape \[2, 52920\]; pass \[3, T\] or \[3, C, T\]"):
        SPEC.prepare(frames, stereo(1.2).T, 44100)


def test_audio_that_cannot_be_converted_is_refused_and_short_audio_is_tiled_with_a_warning():
    with pytest.raises(InputError, match="cannot tell channels from samples"):
        SPEC.audio(np.zeros((20, 30), np.float32), 16000)
    with pytest.raises(InputError, match="NaN or inf samples"):
        SPEC.audio(np.full(16000, np.inf, np.float32), 16000)
    with pytest.raises(InputError, match="dtype complex64"):
        SPEC.audio(np.zeros(16000, np.complex64), 16000)
    with pytest.raises(InputError, match="sample_rate=0"):
        SPEC.audio(np.zeros(16000, np.float32), 0)
    with pytest.raises(InputError, match="holds no samples"):
        SPEC.audio(np.zeros(0, np.float32), 16000)
    with pytest.warns(ShortAudioWarning, match="lasts 0.25 s, shorter than the model's 1 s window; it is tiled"):
        audio = SPEC.audio(np.arange(4000, dtype=np.float32) / 4000, 16000)
    assert torch.equal(audio[0, 4000:8000], audio[0, :4000])


@pytest.fixture()
def exported(tmp_path):
    folder = tmp_path / "model"
    write_pretrained(DualMeanTeacher(ClipToyNet, DMTConfig(teachers=0)), folder, network="toy_clip",
                     network_kwargs={}, data=SPEC.to_data())
    return folder


def test_from_pretrained_preprocess_gives_the_cli_map_for_a_raw_frame_and_44k_stereo(exported, tmp_path):
    frame, wave = picture(), stereo(1.5)
    Image.fromarray(frame).save(tmp_path / "photo.png")
    sf.write(tmp_path / "sound.wav", wave, 44100, subtype="PCM_16")
    assert main(["localize", "--image", str(tmp_path / "photo.png"), "--audio", str(tmp_path / "sound.wav"),
                 "--model", str(exported), "--out", str(tmp_path / "photo_dmt.png"), "--npz", str(tmp_path / "m.npz"),
                 "--device", "cpu"]) == 0
    cli_map = np.load(tmp_path / "m.npz")["map"]

    model = DualMeanTeacher.from_pretrained(exported, device="cpu")
    assert InputSpec.from_data(model.input_spec) == SPEC
    images, audio = model.preprocess(frame, wave, 44100)
    assert images.shape == (1, 3, 16, 16) and audio.shape == (1, 16000)
    python_map = frame_map(model.localize(images, audio)[0], frame.shape[:2]).numpy()
    assert python_map.shape == cli_map.shape == (48, 64)
    assert np.array_equal(python_map, cli_map)
    other = frame_map(model.localize(images, model.preprocess(frame, wave[::-1].copy(), 44100)[1])[0], (48, 64))
    assert not np.array_equal(other.numpy(), cli_map)  # the sound matters to this network: the test can fail
