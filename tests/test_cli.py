"""The command line end to end: synthetic videos -> prepare -> train a few updates -> export -> localize."""
import json
import runpy
import sys

import av
import pytest
import torch
from torch.utils.data import Dataset

from dmt_wrap import DMTConfig, DualMeanTeacher, registry
from dmt_wrap.cli import main
from dmt_wrap.datasets.vggss import VGGSoundSource
from tests.registered_nets import ClipToyNet
from tests.synthetic_media import SQUARE, make_video, square_left
from tests.toy import TOY_LABELS

FAST = DMTConfig(warmup_steps=4, steps=4, steps_per_epoch=4, batch_size=4, labeled_batch_size=2, lr=3e-3,
                 ema_decay=0.5, pseudo_labels=TOY_LABELS)
SIZE = 16


class WithSquareMasks(Dataset):
    """Prepared clips with the moving square's box as ground truth (the middle frame is at half the clip)."""

    def __init__(self, clips: VGGSoundSource, seconds: dict[str, float]) -> None:
        self.clips, self.seconds = clips, seconds

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> dict:
        item = dict(self.clips[index])
        seconds = self.seconds[self.clips.names[index]]
        scale = SIZE / 64
        left, top = square_left(seconds / 2, seconds, 64) * scale, (48 - SQUARE) // 2 * SIZE / 48
        mask = torch.zeros(SIZE, SIZE)
        mask[round(top):round(top + SQUARE * SIZE / 48), round(left):round(left + SQUARE * scale)] = 1
        item["mask"] = mask
        return item


def test_prepare_train_export_localize(tmp_path, capsys):
    videos = tmp_path / "downloads"
    videos.mkdir()
    seconds = {f"clip{n}": 1.0 + 0.25 * n for n in range(6)}
    for name, length in seconds.items():
        make_video(videos / f"{name}.mp4", seconds=length)
    prepared = tmp_path / "prepared"
    assert main(["prepare", str(videos), str(prepared), "--duration", "1", "--workers", "2", "--no-progress"]) == 0
    assert "prepared 6 of 6 listed: 0 missing" in capsys.readouterr().out

    clips = VGGSoundSource(prepared, "train.txt", masks=False, image_size=SIZE, duration=1.0)
    model = DualMeanTeacher(ClipToyNet, FAST)
    model.fit(WithSquareMasks(clips, seconds), clips, progress=False)
    model.save(tmp_path / "model.pt")
    exported = tmp_path / "exported"
    assert main(["export", str(tmp_path / "model.pt"), str(exported), "--image-size", str(SIZE),
                 "--sample-rate", "16000", "--duration", "1"]) == 0
    assert json.loads((exported / "config.json").read_text())["network"]["name"] == "toy_clip"
    image, audio = clips[0]["image"][None], clips[0]["audio"][None]
    assert torch.equal(DualMeanTeacher.from_pretrained(exported).localize(image, audio), model.localize(image, audio))

    out = tmp_path / "overlay.mp4"
    assert main(["localize", str(videos / "clip4.mp4"), "--model", str(exported), "--out", str(out), "--fps", "5",
                 "--npz", str(tmp_path / "maps.npz"), "--sheet", str(tmp_path / "sheet.png"), "--device", "cpu",
                 "--no-progress"]) == 0
    assert "wrote" in capsys.readouterr().out
    with av.open(str(out)) as container:
        assert {stream.type for stream in container.streams} == {"video", "audio"}
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    assert len(frames) == 10 and frames[0].shape[0] == 48
    assert (tmp_path / "sheet.png").stat().st_size > 0


def test_a_folder_holding_a_saved_model_exports_with_what_the_model_records(tmp_path):
    """A model built by name records its network and arguments, and fit records its input: a folder
    holding it as model.pt (e.g. a run.py job) exports without any flag; flags override."""
    job = tmp_path / "runs" / "quick" / "jobs" / "toy_clip" / "ratio0.1" / "seed0" / "dmt"
    job.mkdir(parents=True)
    model = DualMeanTeacher(lambda: registry.build("toy_clip"), FAST)
    model.input_spec = {"image_size": SIZE, "samples": 16000, "sample_rate": 16000, "duration": 1.0}
    model.save(job / "model.pt")
    assert main(["export", str(job), str(tmp_path / "out")]) == 0
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["network"]["name"] == "toy_clip" and config["train"]["warmup_steps"] == 4
    assert config["data"] == {"image_size": SIZE, "sample_rate": 16000, "duration": 1.0}
    assert main(["export", str(job), str(tmp_path / "out")]) == 2  # exists: refused, not overwritten
    assert main(["export", str(job), str(tmp_path / "out2"), "--duration", "2"]) == 0
    assert json.loads((tmp_path / "out2" / "config.json").read_text())["data"]["duration"] == 2.0


def test_errors_name_the_file_and_the_fix(tmp_path, capsys):
    model = DualMeanTeacher(ClipToyNet, FAST)
    model.save(tmp_path / "model.pt")
    main(["export", str(tmp_path / "model.pt"), str(tmp_path / "m"), "--image-size", "16", "--sample-rate",
          "16000", "--duration", "1"])
    mute = make_video(tmp_path / "mute.mp4", audio=False)
    capsys.readouterr()
    assert main(["localize", str(mute), "--model", str(tmp_path / "m"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("dmt-wrap localize: error: ") and f"{mute}: has no audio track" in err and "--audio" in err
    assert main(["localize", str(mute), "--model", str(tmp_path / "nothing")]) == 1
    assert "nothing does not exist; pass the folder written by `dmt-wrap export`" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["localize", "--image", str(mute), "--model", str(tmp_path / "m")])
    assert "localize --image needs --audio AUDIO" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["export", str(tmp_path / "model.pt"), str(tmp_path / "m2")])
    assert "records no input size: pass --image-size, --sample-rate and --duration" in capsys.readouterr().err
    assert main(["splits", str(tmp_path), "--label-ratio", "0.5"]) == 1
    assert "frames does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["localize", "prepare", "export", "splits"])
def test_every_command_shows_an_example(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0 and f"examples:\n  dmt-wrap {command} " in capsys.readouterr().out


def test_python_dash_m_runs_the_same_entry_point(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["python -m dmt_wrap", "splits", "--help"])
    with pytest.raises(SystemExit) as info:
        runpy.run_module("dmt_wrap", run_name="__main__")
    assert info.value.code == 0 and "dmt-wrap splits" in capsys.readouterr().out
