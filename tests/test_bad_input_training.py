"""Bad input to training: non-finite losses stop the step before any weight changes; data and
configs the wrapper is given are refused by name (the trainer, the config).
"""
from __future__ import annotations

import math
import re

import pytest
import torch
from torch import nn
from torch.utils.data import Subset

from dmt_wrap import DMTConfig, DualMeanTeacher, NonFiniteLossError, ablation
from dmt_wrap.checkpoint import PAIR_NAMES, load_checkpoint
from dmt_wrap.callbacks import default_callbacks
from dmt_wrap.datasets.splits import label_split
from dmt_wrap.filtering import PseudoLabelConfig
from dmt_wrap.streams import BatchStream
from dmt_wrap.trainer import DataFormatError, Trainer
from tests.toy import TINY, SquaresDataset, ToyNet, toy_data

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
