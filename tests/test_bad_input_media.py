"""Careless and hostile media for ``dmt-wrap localize`` (issues 31 and 32): outputs never replace inputs, limits refuse
crafted files before they are decoded, and every refusal is one line naming the argument and the fix."""
import os
import struct
import subprocess
import sys
import textwrap
import zlib

import av
import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from dmt_wrap import DMTConfig, DualMeanTeacher
from dmt_wrap.cli import guarded, main
from dmt_wrap.pretrained import write_pretrained
from tests.registered_nets import BrightnessNet
from tests.synthetic_media import make_video, make_wav


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("oracle") / "model"
    write_pretrained(DualMeanTeacher(BrightnessNet, DMTConfig(teachers=0)), folder, network="brightness",
                     network_kwargs={}, data={"image_size": 32, "sample_rate": 16000, "duration": 1.0})
    return str(folder)


@pytest.fixture
def clip(tmp_path):
    return make_video(tmp_path / "clip.mp4", seconds=1.0)


def run(capsys, *args):
    """``dmt-wrap`` with ``args``: (exit status, stderr); a refusal's stderr is exactly one line."""
    capsys.readouterr()
    try:
        code = main([str(a) for a in args])
    except SystemExit as exit_:  # argparse usage errors
        code = exit_.code
    err = capsys.readouterr().err
    if code != 0:
        assert err.strip().splitlines()[-1].startswith(("dmt-wrap", "usage")) and "Traceback" not in err, err
    return code, err


def localize(capsys, model, *args):
    return run(capsys, "localize", *args, "--model", model, "--no-progress", "--device", "cpu")


def test_an_output_never_replaces_an_input(model, clip, tmp_path, capsys):
    original = clip.read_bytes()
    wav = make_wav(tmp_path / "s.wav")
    picture = tmp_path / "p.png"
    Image.new("RGB", (16, 16), "red").save(picture)
    os.link(clip, tmp_path / "hard.mp4")
    for args, fragment in (([clip, "--out", clip], "--out"), ([clip, "--out", tmp_path / "hard.mp4"], "--out"),
                           ([clip, "--npz", clip, "--out", tmp_path / "o.mp4"], "--npz"),
                           ([clip, "--sheet", clip, "--out", tmp_path / "o.mp4"], "--sheet"),
                           ([clip, "--audio", wav, "--npz", wav, "--out", tmp_path / "o.mp4"], "--npz"),
                           (["--image", picture, "--audio", wav, "--out", picture], "--out")):
        code, err = localize(capsys, model, *args, "--overwrite")
        assert code == 2 and f"{fragment} " in err and "would destroy the input" in err, err
    assert clip.read_bytes() == original and not (tmp_path / "o.mp4").exists()
    code, err = localize(capsys, model, clip, "--out", tmp_path / "o.mp4", "--npz", tmp_path / "o.mp4")
    assert code == 2 and "both name" in err


def test_existing_outputs_are_refused_unless_overwrite(model, clip, tmp_path, capsys):
    out = tmp_path / "new" / "folders" / "o.mp4"  # missing folders are created
    assert localize(capsys, model, clip, "--out", out)[0] == 0
    stamp = out.stat().st_mtime_ns
    code, err = localize(capsys, model, clip, "--out", out)
    assert code == 2 and "already exists; pass --overwrite" in err and out.stat().st_mtime_ns == stamp
    assert localize(capsys, model, clip, "--out", out, "--overwrite")[0] == 0
    code, err = localize(capsys, model, clip, "--out", tmp_path)
    assert code == 2 and "is a folder" in err


@pytest.mark.parametrize("flag, name", [("--out", "o.png"), ("--sheet", "s.jpg"), ("--npz", "maps.txt")])
def test_output_extensions_say_what_is_written_or_are_refused(model, clip, tmp_path, capsys, flag, name):
    args = [clip, "--out", tmp_path / "o.mp4"] if flag != "--out" else [clip]
    code, err = localize(capsys, model, *args, flag, tmp_path / name)
    assert code == 2 and f"{flag} {tmp_path / name}: name it with one of" in err
    picture = tmp_path / "p.png"
    Image.new("RGB", (16, 16)).save(picture)
    code, err = localize(capsys, model, "--image", picture, "--audio", make_wav(tmp_path / "s.wav"),
                         "--out", tmp_path / "o.mp4")
    assert code == 2 and "name it with one of .png" in err


def crafted_png(path, width, height):
    """A valid PNG header declaring ``width`` x ``height`` with almost no data: a bomb in a few bytes."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("side", [12000, 20000])  # 20000^2 is past Pillow's own bomb limit (an exception there)
def test_a_huge_image_is_refused_before_decoding(model, tmp_path, capsys, side):
    code, err = localize(capsys, model, "--image", crafted_png(tmp_path / "bomb.png", side, side), "--audio",
                         make_wav(tmp_path / "s.wav"), "--out", tmp_path / "o.png")
    assert code == 1 and "bomb.png" in err and "--max-pixels" in err
    assert not (tmp_path / "o.png").exists()


def test_video_limits_and_fps_against_the_clip(model, clip, tmp_path, capsys):
    code, err = localize(capsys, model, clip, "--out", tmp_path / "o.mp4", "--max-pixels", "1000")
    assert code == 1 and "64x48 pixels exceed the limit of 1000" in err
    code, err = localize(capsys, model, clip, "--out", tmp_path / "o.mp4", "--max-frames", "2")
    assert code == 1 and "lower --fps or raise --max-frames" in err
    code, err = localize(capsys, model, clip, "--out", tmp_path / "o.mp4", "--max-seconds", "0.5")
    assert code == 1 and "raise --max-seconds" in err
    code, err = localize(capsys, model, clip, "--out", tmp_path / "o.mp4", "--fps", "1e9")
    assert code == 2 and "--fps 1e+09 exceeds the 10 frames per second" in err
    code, err = localize(capsys, model, clip, "--out", tmp_path / "o.mp4", "--fps", "inf")
    assert code == 2 and "--fps inf" in err
    assert not (tmp_path / "o.mp4").exists()


def test_a_long_silent_audio_file_decodes_only_the_window(model, tmp_path, capsys):
    """A 30-minute silent FLAC (a few hundred KB) with an image: only the centre window is decoded."""
    flac = tmp_path / "long.flac"
    with sf.SoundFile(flac, "w", 48000, 2, format="FLAC") as handle:  # decoded whole: 3.8 GB before the fix
        block = np.zeros((48000 * 60, 2), np.int16)
        for _ in range(30):
            handle.write(block)
    assert flac.stat().st_size < 2_000_000
    picture = tmp_path / "p.png"
    Image.new("RGB", (16, 16)).save(picture)
    script = textwrap.dedent(f"""
        import resource, sys
        import tests.registered_nets  # noqa: F401  (registers the model's network)
        from dmt_wrap.cli import main
        code = main(["localize", "--image", {str(picture)!r}, "--audio", {str(flac)!r}, "--model", {model!r},
                     "--out", {str(tmp_path / "o.png")!r}, "--device", "cpu"])
        print("EXIT", code, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    code, peak_mb = result.stdout.split()[-2:]
    assert code == "0" and int(peak_mb) < 1500, (result.stdout, result.stderr)


def test_audio_at_192_khz_gets_an_overlay_with_its_sound(model, clip, tmp_path, capsys):
    wav = tmp_path / "hi.wav"
    sf.write(wav, np.sin(np.arange(192000) / 20).astype(np.float32) * 0.3, 192000)
    assert localize(capsys, model, clip, "--audio", wav, "--out", tmp_path / "o.mp4")[0] == 0
    with av.open(str(tmp_path / "o.mp4")) as container:
        assert container.streams.audio[0].codec_context.sample_rate == 48000


def test_wrong_kinds_of_file_say_which_flag_takes_them(model, clip, tmp_path, capsys):
    picture = tmp_path / "photo.jpg"
    Image.new("RGB", (16, 16)).save(picture)
    code, err = localize(capsys, model, clip, "--audio", picture, "--out", tmp_path / "o.mp4")
    assert code == 1 and "photo.jpg: has no audio track (it holds a picture or a video); --audio takes a sound" in err
    code, err = localize(capsys, model, "--image", clip, "--audio", make_wav(tmp_path / "s.wav"),
                         "--out", tmp_path / "o.png")
    assert code == 1 and "clip.mp4: is a video; pass it as VIDEO" in err


def test_a_short_audio_on_a_longer_video_warns(model, tmp_path, capsys):
    video = make_video(tmp_path / "long.mp4", seconds=3.0)
    code, err = localize(capsys, model, video, "--audio", make_wav(tmp_path / "s.wav", seconds=1.0),
                         "--out", tmp_path / "o.mp4")
    assert code == 0 and "warning: --audio" in err and "the overlay's sound stops at 1.00 s" in err


def test_cut_mp4s_say_what_allow_truncated_can_do(model, tmp_path, capsys):
    data = make_video(tmp_path / "full.mp4", seconds=2.0).read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[:len(data) * 3 // 10])
    code, err = localize(capsys, model, cut, "--out", tmp_path / "o.mp4", "--allow-truncated")
    assert code == 1 and "--allow-truncated" in err and "cannot" in err


def test_a_gpu_that_is_not_there_is_one_line(model, clip, tmp_path, capsys):
    import torch
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    code, err = run(capsys, "localize", clip, "--model", model, "--device", "cuda", "--out", tmp_path / "o.mp4")
    assert code == 2 and "--device cuda: no CUDA GPU is visible here; pass --device cpu" in err


def test_interrupts_and_unexpected_errors_are_one_line_and_debug_shows_the_traceback(capsys):
    def interrupted():
        raise KeyboardInterrupt

    def bug():
        raise KeyError("x")

    def bare():
        raise FileNotFoundError()

    assert guarded("dmt-wrap t", interrupted, debug=False) == 130
    assert capsys.readouterr().err == "dmt-wrap t: interrupted; no partial output was left behind\n"
    assert guarded("dmt-wrap t", bug, debug=False) == 1
    assert "unexpected KeyError: 'x'; rerun with --debug" in capsys.readouterr().err
    assert guarded("dmt-wrap t", bare, debug=False) == 1
    assert capsys.readouterr().err == "dmt-wrap t: error: FileNotFoundError\n"
    with pytest.raises(KeyError):
        guarded("dmt-wrap t", bug, debug=True)


def test_ctrl_c_mid_video_leaves_no_partial_output(model, tmp_path, monkeypatch, capsys):
    video = make_video(tmp_path / "v.mp4", seconds=2.0)
    import dmt_wrap.localize as module
    calls = []

    def interrupting(frame, confidence):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(frame, confidence)

    original = module.overlay
    monkeypatch.setattr(module, "overlay", interrupting)
    code, err = localize(capsys, model, video, "--out", tmp_path / "o.mp4", "--sheet", tmp_path / "s.png")
    assert code == 130 and "interrupted" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.mp4"]


def test_help_does_not_import_torch():
    script = ("import sys\nfrom dmt_wrap.cli import main\ntry:\n    main(['localize', '--help'])\n"
              "except SystemExit:\n    pass\nprint('torch' in sys.modules, 'av' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.stdout.split()[-2:] == ["False", "False"], result.stderr


def test_unwritable_output_folder_is_refused_before_processing(model, clip, tmp_path, capsys):
    if os.geteuid() == 0:
        pytest.skip("root writes anywhere")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    code, err = localize(capsys, model, clip, "--out", locked / "o.mp4")
    assert code == 2 and "cannot write in" in err
