"""Bad input across the public surface: a clear error naming the file or argument, a
counted skip under an explicit policy, or documented behaviour; never a silently wrong number.

Sections: non-finite losses, data given to the wrapper, checkpoints, the real-dataset
loaders, the composed scenes' stamp files. Cases covered elsewhere are not repeated:
contract violations and labeled items without masks (test_wrapper.py), the media readers'
damaged WAV / JPEG files, missing files, the loaders' annotation errors and label_split's
own argument checks (test_real_datasets.py). Known loader bugs are strict xfails that
name the module, so they turn red the day they are fixed.
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import nn
from torch.utils.data import Subset

from dmt_wrap import DMTConfig, DualMeanTeacher, NonFiniteLossError, ablation
from dmt_wrap.checkpoint import FORMAT, PAIR_NAMES, CheckpointError, load_checkpoint
from dmt_wrap.datasets.flickr import FlickrSoundNet
from dmt_wrap.datasets.media import DataError
from dmt_wrap.datasets.splits import label_split
from dmt_wrap.datasets.vggss import VGGSoundSource
from dmt_wrap.streams import BatchStream
from dmt_wrap.callbacks import default_callbacks
from dmt_wrap.filtering import PseudoLabelConfig
from dmt_wrap.trainer import DataFormatError, Trainer
from tests.toy import SquaresDataset, TOY_LABELS, ToyNet

TINY = DMTConfig(warmup_steps=3, steps=2, steps_per_epoch=3, batch_size=6, labeled_batch_size=3, lr=3e-3,
                 ema_decay=0.5, pseudo_labels=TOY_LABELS)


def toy_data() -> tuple[SquaresDataset, SquaresDataset]:
    return SquaresDataset(6, seed=1), SquaresDataset(12, seed=2, with_mask=False)


def fit(model: DualMeanTeacher, checkpoint_dir: Path | None = None, resume: bool = False) -> list[dict]:
    return model.fit(*toy_data(), checkpoint_dir=checkpoint_dir, resume=resume, progress=False)


# ================================================================ non-finite losses
class PoisonedToyNet(ToyNet):
    """ToyNet whose self-supervised loss (or map) gets ``value`` added at training step ``at``.

    Students run exactly one training-mode forward per step, so the call count is the step.
    Teachers (eval mode) and the calibration probe (a deep copy) do not count.
    """

    def __init__(self, at: int | None, value: float, where: str) -> None:
        super().__init__()
        self.at, self.value, self.where = at, value, where
        self.training_calls = 0

    def forward(self, images, audio):
        sim, loss = super().forward(images, audio)
        if self.training:
            if self.training_calls == self.at:
                if self.where == "self_loss":
                    loss = loss + self.value
                else:
                    sim = sim + self.value
            self.training_calls += 1
        return sim, loss


def poisoned_factory(at: int | None, value: float, where: str, pair: str = "B"):
    """Builds pair A healthy and ``pair``'s network poisoned at step ``at``."""
    built: list[nn.Module] = []

    def factory() -> nn.Module:
        net = PoisonedToyNet(at if PAIR_NAMES[len(built)] == pair else None, value, where)
        built.append(net)
        return net

    return factory


def assert_parameters_equal(mine: nn.Module, theirs: nn.Module) -> None:
    for (name, a), (_, b) in zip(mine.named_parameters(), theirs.named_parameters()):
        assert torch.equal(a, b), f"parameter {name} changed"


def assert_tensor_trees_equal(mine, theirs, where: str = "") -> None:
    if isinstance(mine, torch.Tensor):
        assert torch.equal(mine, theirs), where
    elif isinstance(mine, dict):
        assert mine.keys() == theirs.keys(), where
        for key in mine:
            assert_tensor_trees_equal(mine[key], theirs[key], f"{where}/{key}")
    elif isinstance(mine, (list, tuple)):
        assert len(mine) == len(theirs), where
        for i, (a, b) in enumerate(zip(mine, theirs)):
            assert_tensor_trees_equal(a, b, f"{where}/{i}")
    else:
        assert mine == theirs, where


@pytest.mark.parametrize("where, value, at, term", [
    ("self_loss", math.nan, 4, "self_supervised"),   # stage 2: the teachers exist since step 3
    ("self_loss", math.inf, 4, "self_supervised"),
    ("map", math.nan, 4, "supervised"),               # a map that goes NaN after calibration
    ("self_loss", -math.inf, 1, "self_supervised"),  # stage 1 (warm-up)
])
def test_non_finite_loss_stops_the_step_before_any_weight_or_teacher_changes(tmp_path, where, value, at, term):
    """Only network B is poisoned: the error names its term and step; nothing was updated.

    The reference is the same run stopped cleanly right before step ``at``: students'
    parameters, teachers (all their state) and the optimizers' state must equal it. (A
    student's BatchNorm running statistics did see the failing forward: they are no weights
    and only reach a teacher through an EMA update, which never ran.)
    """
    broken = DualMeanTeacher(poisoned_factory(at, value, where), TINY, device="cpu")
    broken_trainer = Trainer(broken, *toy_data(), checkpoint_dir=tmp_path,
                             callbacks=default_callbacks(tmp_path, progress=False, eval_fn=None))
    with pytest.raises(NonFiniteLossError) as info:
        broken_trainer.run()
    message = str(info.value)
    assert f"step {at}:" in message
    assert re.search(rf"(?<!self_){term} of network B", message), message
    assert "network A" not in message  # pair A's losses were finite: it is not blamed
    assert "EMA teachers" in message and "last checkpoint is intact" in message

    warmup = min(at, TINY.warmup_steps)
    reference = DualMeanTeacher(poisoned_factory(None, value, where),
                                TINY.replace(warmup_steps=warmup, steps=at - warmup), device="cpu")
    reference_trainer = Trainer(reference, *toy_data(), callbacks=default_callbacks(None, progress=False, eval_fn=None))
    reference_trainer.run()
    for k in range(2):
        assert_parameters_equal(broken.students[k], reference.students[k])
        assert_tensor_trees_equal(broken_trainer.optimizers[k].state_dict(),
                                  reference_trainer.optimizers[k].state_dict(), f"optimizer {k}")
    if at >= TINY.warmup_steps:
        assert broken.has_teachers
        for mine, theirs in zip(broken.teachers, reference.teachers):
            assert_tensor_trees_equal(mine.state_dict(), theirs.state_dict(), "teacher")
        assert load_checkpoint(tmp_path / "last.pt")["step"] == 3  # the last epoch's checkpoint is there
    else:
        assert not broken.has_teachers and not (tmp_path / "last.pt").exists()


# ================================================================ data the wrapper is given
def test_dataset_smaller_than_a_batch_is_cycled():
    """Documented: the endless sampler chains seeded permutations, so a batch larger than
    the dataset holds repeats, every item equally often; training runs and stays finite."""
    stream = BatchStream(SquaresDataset(3), batch_size=8, seed=0)
    seen = torch.cat([stream.next()["index"] for _ in range(3)])
    assert torch.bincount(seen, minlength=3).tolist() == [8, 8, 8]  # 24 draws = 8 full permutations

    model = DualMeanTeacher(ToyNet, TINY.replace(labeled_batch_size=4, batch_size=8), device="cpu")
    history = model.fit(SquaresDataset(1, seed=1), SquaresDataset(3, seed=2, with_mask=False), progress=False)
    assert [row["step"] for row in history] == [3, 5]
    assert all(math.isfinite(v) for row in history for v in row.values() if isinstance(v, float))


def test_label_ratio_one_leaves_nothing_to_pseudo_label():
    """label_split(n, 1.0) labels everything: DMT refuses the empty unlabeled set by name;
    the fully supervised ablation (no unlabeled data) trains on it."""
    data = SquaresDataset(6, seed=1)
    labeled, unlabeled = label_split(len(data), 1.0, seed=0)
    assert unlabeled == []
    with pytest.raises(ValueError, match="the unlabeled dataset is empty"):
        DualMeanTeacher(ToyNet, TINY, device="cpu").fit(Subset(data, labeled), Subset(data, unlabeled),
                                                        progress=False)
    history = DualMeanTeacher(ToyNet, ablation("fully_supervised", TINY), device="cpu").fit(
        Subset(data, labeled), None, progress=False)
    assert history and math.isfinite(history[-1]["total"])


@pytest.mark.parametrize("ratio", [0.0, -0.1, math.nan])
def test_label_ratio_without_labels_is_refused_by_name(ratio):
    with pytest.raises(ValueError, match="label_ratio="):
        label_split(100, ratio, seed=0)


class BadItems(SquaresDataset):
    def __init__(self, change: str) -> None:
        super().__init__(4, seed=1)
        self.change = change

    def __getitem__(self, index):
        item = super().__getitem__(index)
        if self.change == "image_without_channels":
            item["image"] = item["image"][0]
        elif self.change == "stereo_audio":
            item["audio"] = torch.stack([item["audio"], item["audio"]])
        elif self.change == "mask_of_other_size":
            item["mask"] = item["mask"][:8, :8]
        return item


@pytest.mark.parametrize("change, message", [
    ("image_without_channels", r"'image' batch has shape \(3, 16, 16\); expected \[B, 3, H, W\]"),
    ("stereo_audio", r"'audio' batch has shape \(3, 2, 32\); expected \[B, T\]"),
    ("mask_of_other_size", r"'mask' batch has shape \(3, 8, 8\); expected \(3, 16, 16\)"),
])
def test_items_of_the_wrong_shape_are_refused_with_their_shape(change, message):
    with pytest.raises(DataFormatError, match=message):
        DualMeanTeacher(ToyNet, TINY, device="cpu").fit(BadItems(change), SquaresDataset(8), progress=False)


@pytest.mark.parametrize("config, field, value", [
    (PseudoLabelConfig, "delta", 1.0), (PseudoLabelConfig, "tau", 1.5), (PseudoLabelConfig, "max_area", 0.0),
    (DMTConfig, "ema_decay", 1.0), (DMTConfig, "batch_size", 0), (DMTConfig, "teachers", 3),
    (DMTConfig, "map_loss", "mse"), (DMTConfig, "lr", 0.0), (DMTConfig, "optimizer", "rmsprop"),
    (DMTConfig, "precision", "fp16")])
def test_invalid_config_names_the_field(config, field, value):
    with pytest.raises(ValueError, match=rf"\['{field}'\].*{field}={value!r}"):
        config(**{field: value})


# ================================================================ checkpoints
class WidthNet(nn.Module):
    """A contract network with a width knob: the same class at two presets."""

    def __init__(self, width: int = 8) -> None:
        super().__init__()
        self.visual = nn.Conv2d(3, width, 3, stride=2, padding=1)
        self.audio = nn.Linear(32, width)

    def forward(self, images, audio):
        return torch.einsum("bchw,bc->bhw", self.visual(images), self.audio(audio))


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory) -> tuple[Path, DualMeanTeacher]:
    """A finished training run of ToyNet under TINY: its checkpoint folder and model."""
    run_dir = tmp_path_factory.mktemp("run")
    model = DualMeanTeacher(ToyNet, TINY, device="cpu")
    fit(model, checkpoint_dir=run_dir)
    return run_dir, model


def copy_run(run_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(run_dir, tmp_path / "run"))


def test_resume_with_another_network_names_both(trained_run, tmp_path):
    run_dir = copy_run(trained_run[0], tmp_path)
    with pytest.raises(CheckpointError, match="written for network 'ToyNet'; this model wraps 'WidthNet'"):
        fit(DualMeanTeacher(WidthNet, TINY, device="cpu"), run_dir, resume=True)


def test_load_of_another_width_is_refused(tmp_path):
    DualMeanTeacher(lambda: WidthNet(8), TINY, device="cpu").save(tmp_path / "narrow.pt")
    with pytest.raises(CheckpointError, match=r"does not fit this WidthNet \(another preset or size\?\).*size mismatch"):
        DualMeanTeacher.load(tmp_path / "narrow.pt", lambda: WidthNet(16), device="cpu")


@pytest.mark.parametrize("changes, fields", [
    ({"lr": 1e-2, "pseudo_labels": {"tau": 0.4}}, ["lr", "pseudo_labels.tau"]),
    ({"teachers": 1}, ["teachers"]),             # another method: single mean teacher
    ({"seed": 1}, ["seed"]),
])
def test_resume_with_another_config_names_the_differing_fields(trained_run, tmp_path, changes, fields):
    run_dir = copy_run(trained_run[0], tmp_path)
    with pytest.raises(CheckpointError, match=re.escape(f"differs in {fields}")):
        fit(DualMeanTeacher(ToyNet, TINY.replace(**changes), device="cpu"), run_dir, resume=True)


def write_foreign(kind: str, path: Path, real_checkpoint: Path) -> None:
    if kind == "plain_state_dict":
        torch.save(ToyNet().state_dict(), path)
    elif kind == "other_format":
        torch.save({"format": "other/2", "model": {}}, path)
    elif kind == "list":
        torch.save([1, 2, 3], path)
    elif kind == "text":
        path.write_text("epoch,loss\n1,0.5\n")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        data = real_checkpoint.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "format_only":
        torch.save({"format": FORMAT}, path)


@pytest.mark.parametrize("entry", ["load", "resume"])
@pytest.mark.parametrize("kind, message", [
    ("plain_state_dict", "has format None, expected 'dmt_wrap/1'"),
    ("other_format", "has format 'other/2'"),
    ("list", "has format 'list'"),
    ("text", "cannot be read safely"),
    ("empty", "cannot be read safely"),
    ("truncated", "cannot be read safely"),
    ("format_only", "lacks"),
])
def test_file_that_is_no_dmt_wrap_checkpoint_is_refused_naming_it(trained_run, tmp_path, entry, kind, message):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    path = run_dir / "last.pt"
    write_foreign(kind, path, trained_run[0] / "last.pt")
    with pytest.raises(CheckpointError, match=re.escape(str(path)) + ".*" + message):
        if entry == "load":
            DualMeanTeacher.load(path, ToyNet, device="cpu")
        else:
            fit(DualMeanTeacher(ToyNet, TINY, device="cpu"), run_dir, resume=True)


def test_saved_model_is_refused_as_a_training_checkpoint(trained_run, tmp_path):
    run_dir = tmp_path / "run"
    trained_run[1].save(run_dir / "last.pt")
    with pytest.raises(CheckpointError, match=r"lacks \['model', 'optimizers', 'step', 'streams'\].*not a saved model"):
        fit(DualMeanTeacher(ToyNet, TINY, device="cpu"), run_dir, resume=True)


def test_training_checkpoint_loads_as_a_model(trained_run):
    """``DualMeanTeacher.load`` accepts a training checkpoint (last.pt) as documented."""
    run_dir, model = trained_run
    back = DualMeanTeacher.load(run_dir / "last.pt", ToyNet, device="cpu")
    images, audio = torch.rand(2, 3, 16, 16), torch.randn(2, 32)
    assert torch.equal(back.localize(images, audio), model.localize(images, audio))
    assert len(back.history) == len(model.history)


class Payload:
    """Pickles as a call to ``os.mkdir(marker)``: code that runs if the file is unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def test_checkpoint_with_a_pickled_object_never_runs_it(trained_run, tmp_path):
    """weights_only=True at every entry point: the payload's code never runs (control: an
    unsafe load of the same file does run it)."""
    from baselines.encoders import load_resnet_weights  # local weights files for the baselines

    marker = tmp_path / "payload_ran"
    state = load_checkpoint(trained_run[0] / "last.pt")
    state["model"]["history"].append({"note": Payload(marker)})
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    path = run_dir / "last.pt"
    torch.save(state, path)

    with pytest.raises(CheckpointError, match="(?s)cannot be read safely.*GLOBAL posix.mkdir"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="cannot be read safely"):
        DualMeanTeacher.load(path, ToyNet, device="cpu")
    with pytest.raises(CheckpointError, match="cannot be read safely"):
        fit(DualMeanTeacher(ToyNet, TINY, device="cpu"), run_dir, resume=True)
    torch.save({"conv1.weight": torch.zeros(1), "evil": Payload(marker)}, tmp_path / "resnet.pth")
    with pytest.raises(RuntimeError, match="weights_only"):
        load_resnet_weights(nn.Module(), str(tmp_path / "resnet.pth"))
    assert not marker.exists()

    torch.load(path, weights_only=False)  # the control: this file really carries live code
    assert marker.is_dir()


# ================================================================ datasets
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
    return pytest.importorskip("benchmarks.composed.dataset")


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
