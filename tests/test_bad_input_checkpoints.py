"""Bad checkpoints: another network, width or config, foreign files and pickled payloads are
refused by name (dmt_wrap.checkpoint, the wrapper's load and the loop's resume).
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
import torch
from torch import nn

from dmt_wrap import DualMeanTeacher
from dmt_wrap.checkpoint import FORMAT, CheckpointError, load_checkpoint
from tests.toy import TINY, ToyNet, fit

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


def test_resume_after_the_network_regrouped_its_parameters_says_so(trained_run, tmp_path):
    run_dir = copy_run(trained_run[0], tmp_path)
    # the same network, now giving its optimiser a group of its own (as SSPL's rates without weight decay)
    regrouped = type("ToyNet", (ToyNet,), {"param_groups": lambda self, lr: [{"params": [next(self.parameters())]}]})
    with pytest.raises(CheckpointError, match=r"optimizer state does not fit this network's parameter groups.*"
                                              r"new checkpoint_dir"):
        fit(DualMeanTeacher(regrouped, TINY, device="cpu"), run_dir, resume=True)


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
    from dmt_wrap_baselines.encoders import load_resnet_weights  # local weights files for the baselines

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
