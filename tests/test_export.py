import json
from importlib.metadata import EntryPoint

import pytest
import torch

from dmt_wrap import DMTConfig, DualMeanTeacher, registry
from dmt_wrap.checkpoint import CheckpointError
from dmt_wrap.checksums import sha256
from dmt_wrap.export import export_saved
from dmt_wrap.pretrained import FORMAT_VERSION, write_pretrained
from tests.registered_nets import ClipToyNet
from tests.toy import SquaresDataset, TOY_LABELS, ToyNet

FAST = DMTConfig(warmup_steps=4, steps=4, steps_per_epoch=4, batch_size=8, labeled_batch_size=4, lr=3e-3,
                 ema_decay=0.5, pseudo_labels=TOY_LABELS)
DATA = {"image_size": 16, "sample_rate": 32, "duration": 1.0}


@pytest.fixture(scope="module")
def trained():
    model = DualMeanTeacher(ClipToyNet, FAST)
    model.fit(SquaresDataset(8, seed=1), SquaresDataset(16, seed=2, with_mask=False), progress=False)
    assert model.has_teachers
    return model


def batch():
    items = [SquaresDataset(4, seed=9)[i] for i in range(4)]
    return torch.stack([i["image"] for i in items]), torch.stack([i["audio"] for i in items])


def test_from_pretrained_gives_the_original_maps(trained, tmp_path):
    folder = write_pretrained(trained, tmp_path / "toy", network="toy_clip", network_kwargs={}, data=DATA,
                              metrics={"scores": {"ciou50": 0.5}, "test_set": "squares"})
    assert sorted(p.name for p in folder.iterdir()) == ["SHA256SUMS", "config.json", "model.safetensors"]
    config = json.loads((folder / "config.json").read_text())
    assert config["network"] == {"name": "toy_clip", "class": "ClipToyNet", "kwargs": {}}
    assert config["weights"]["source"] == "teachers" and config["format_version"] == FORMAT_VERSION
    assert {"dmt_wrap", "torch"} <= set(config["versions"]) and config["metrics"]["test_set"] == "squares"
    images, audio = batch()
    by_name = DualMeanTeacher.from_pretrained(folder)
    by_factory = DualMeanTeacher.from_pretrained(folder, ClipToyNet)
    expected = trained.localize(images, audio)
    assert torch.equal(by_name.localize(images, audio), expected)
    assert torch.equal(by_factory.localize(images, audio), expected)


def test_a_student_only_model_exports_its_student(tmp_path):
    model = DualMeanTeacher(ClipToyNet, FAST.replace(teachers=0))
    model.fit(SquaresDataset(8, seed=1), None, progress=False)
    folder = write_pretrained(model, tmp_path / "naive", network="toy_clip", network_kwargs={}, data=DATA)
    images, audio = batch()
    assert torch.equal(DualMeanTeacher.from_pretrained(folder).localize(images, audio), model.localize(images, audio))


def test_loading_refuses_edited_foreign_or_newer_folders(trained, tmp_path):
    folder = write_pretrained(trained, tmp_path / "m", network="toy_clip", network_kwargs={}, data=DATA)
    with pytest.raises(CheckpointError, match="network 'ClipToyNet'.*builds 'ToyNet'"):
        DualMeanTeacher.from_pretrained(folder, ToyNet)
    config_file, sums = folder / "config.json", folder / "SHA256SUMS"
    config = json.loads(config_file.read_text())

    def rewrite(changed):
        config_file.write_text(json.dumps(changed))
        sums.write_text(f"{sha256(folder / 'model.safetensors')}  model.safetensors\n"
                        f"{sha256(config_file)}  config.json\n")

    rewrite({**config, "format_version": FORMAT_VERSION + 1})
    with pytest.raises(CheckpointError, match="format_version 2, newer.*upgrade dmt_wrap"):
        DualMeanTeacher.from_pretrained(folder)
    rewrite({**config, "train": {**config["train"], "teachers": 0}})  # one network where two were stored
    with pytest.raises(CheckpointError, match="does not fit.*unexpected: \\['networks.1"):
        DualMeanTeacher.from_pretrained(folder)
    rewrite(config)
    with open(folder / "model.safetensors", "r+b") as handle:
        handle.seek(-4, 2)
        handle.write(b"\x00\x01\x02\x03")
    with pytest.raises(CheckpointError, match="does not match its checksum"):
        DualMeanTeacher.from_pretrained(folder)
    with pytest.raises(FileExistsError, match="already exists"):
        write_pretrained(trained, folder, network="toy_clip", network_kwargs={}, data=DATA)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left behind


def test_unknown_networks_are_looked_up_in_entry_points(trained, tmp_path, monkeypatch):
    folder = write_pretrained(trained, tmp_path / "m", network="plugin_net", network_kwargs={}, data=DATA)
    with pytest.raises(ValueError, match="'plugin_net' is not registered.*backbone_factory="):
        DualMeanTeacher.from_pretrained(folder)
    loaded = []

    def fake_entry_points(group):
        assert group == registry.ENTRY_POINT_GROUP
        point = EntryPoint(name="plugin", value="toy", group=group)
        monkeypatch.setattr(EntryPoint, "load", lambda self: loaded.append(self.value) or
                            registry.register("plugin_net")(ClipToyNet))
        return [point]

    monkeypatch.setattr(registry, "entry_points", fake_entry_points)
    monkeypatch.setattr(registry, "_NETWORKS", dict(registry._NETWORKS))
    images, audio = batch()
    assert torch.equal(DualMeanTeacher.from_pretrained(folder).localize(images, audio), trained.localize(images, audio))
    assert loaded == ["toy"]


def test_export_of_a_saved_model_finds_the_registered_name(trained, tmp_path):
    trained.save(tmp_path / "model.pt")
    folder = export_saved(tmp_path / "model.pt", tmp_path / "out", data=DATA)
    assert json.loads((folder / "config.json").read_text())["network"]["name"] == "toy_clip"
    images, audio = batch()
    assert torch.equal(DualMeanTeacher.from_pretrained(folder).localize(images, audio), trained.localize(images, audio))
