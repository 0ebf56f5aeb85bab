"""Symmetric, self-describing persistence: ``save_pretrained`` then ``from_pretrained`` gives the same
maps, for a network built by name (rebuilt alone) and for a user's own network (rebuilt by its
factory); the input the model was trained on travels with it."""
import json

import pytest
import torch
from torch import nn

from dmt_wrap import DMTConfig, DualMeanTeacher, registry
from tests.registered_nets import ClipToyNet  # noqa: F401  (registers "toy_clip")
from tests.toy import TOY_LABELS, SquaresDataset, ToyNet

FAST = DMTConfig(warmup_steps=3, steps=3, steps_per_epoch=3, batch_size=8, labeled_batch_size=4, lr=3e-3,
                 ema_decay=0.5, pseudo_labels=TOY_LABELS)


class MyNet(ToyNet):
    """A user's own network: not registered, with the sample rate its audio front end assumes."""

    sample_rate = 16000


def trained(factory) -> DualMeanTeacher:
    model = DualMeanTeacher(factory, FAST)
    model.fit(SquaresDataset(8, seed=1), SquaresDataset(16, seed=2, with_mask=False), progress=False)
    return model


def test_a_users_own_network_round_trips_with_its_factory(tmp_path):
    model = trained(MyNet)
    assert model.input_spec == {"image_size": 16, "samples": 32, "sample_rate": 16000, "duration": 32 / 16000}
    model.save_pretrained(tmp_path / "mine")
    config = json.loads((tmp_path / "mine" / "config.json").read_text())
    assert config["network"]["name"] is None and config["network"]["class"] == "MyNet"
    assert config["data"] == {"image_size": 16, "sample_rate": 16000, "duration": 32 / 16000}
    loaded = DualMeanTeacher.from_pretrained(tmp_path / "mine", MyNet)
    images, audio = torch.rand(4, 3, 16, 16), torch.randn(4, 32)
    assert torch.equal(loaded.localize(images, audio), model.localize(images, audio))
    with pytest.raises(ValueError, match="pass backbone_factory"):
        DualMeanTeacher.from_pretrained(tmp_path / "mine")  # nothing registered to rebuild it by name


def test_a_network_built_by_name_records_itself_and_loads_alone(tmp_path):
    model = trained(lambda: registry.build("toy_clip"))
    model.save_pretrained(tmp_path / "named", data={"sample_rate": 16000, "duration": 1.0})
    config = json.loads((tmp_path / "named" / "config.json").read_text())
    assert config["network"] == {"name": "toy_clip", "class": "ClipToyNet", "kwargs": {}}
    loaded = DualMeanTeacher.from_pretrained(tmp_path / "named")
    images, audio = torch.rand(4, 3, 16, 16), torch.randn(4, 32)
    assert torch.equal(loaded.localize(images, audio), model.localize(images, audio))


def test_the_input_a_network_cannot_tell_must_be_given(tmp_path):
    model = trained(ToyNet)  # no sample_rate attribute: fit sees the samples, not their rate
    with pytest.raises(ValueError, match=r"\['sample_rate', 'duration'\] are unknown.*data="):
        model.save_pretrained(tmp_path / "toy")
    model.save_pretrained(tmp_path / "toy", data={"sample_rate": 32, "duration": 1.0})
    assert DualMeanTeacher.from_pretrained(tmp_path / "toy", ToyNet).config == model.config


def test_the_teachers_exist_from_construction_and_the_state_keeps_its_shape():
    model = DualMeanTeacher(ToyNet, FAST)
    keys = list(model.state_dict())
    assert len(model.teachers) == 2 and not model.has_teachers
    model.fit(SquaresDataset(8, seed=1), SquaresDataset(16, seed=2, with_mask=False), progress=False)
    assert model.has_teachers and list(model.state_dict()) == keys  # training never changes the state's shape
    assert isinstance(model.teachers, nn.ModuleList)
