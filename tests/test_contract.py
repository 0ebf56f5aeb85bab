"""The first-batch contract check on networks written elsewhere: a map that cannot train the network,
a swapped (loss, map) tuple, an exception inside the network; and docs/wrapping.md's adapter, run."""
from __future__ import annotations

import copy
import importlib
import logging
import re
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from dmt_wrap import ContractError, DMTConfig, DualMeanTeacher, ablation
from dmt_wrap.calibration import CalibratedNetwork
from tests.toy import SquaresDataset, ToyNet

FAST = DMTConfig(warmup_steps=2, steps=2, steps_per_epoch=2, batch_size=4, labeled_batch_size=4, lr=3e-3)
GUIDE = Path(__file__).resolve().parents[1] / "docs" / "wrapping.md"


class NoGradMap(ToyNet):
    """The map computed under torch.no_grad(), the loss with gradients (as some released code does)."""

    def forward(self, images, audio):
        _, loss = super().forward(images, audio)
        with torch.no_grad():
            sim, _ = super().forward(images, audio)
        return sim, loss


class DetachedMap(ToyNet):
    def forward(self, images, audio):
        sim, loss = super().forward(images, audio)
        return sim.detach(), loss


class ThresholdedMap(ToyNet):
    def forward(self, images, audio):
        sim, loss = super().forward(images, audio)
        return (sim > 0).float(), loss


class FrozenNoGrad(ToyNet):
    """A fixed network, said to be: only the calibration is to learn."""

    frozen = True

    def forward(self, images, audio):
        with torch.no_grad():
            return super().forward(images, audio)[0], None


class SwappedTuple(ToyNet):
    def forward(self, images, audio):
        sim, loss = super().forward(images, audio)
        return loss, sim


class WantsSpectrogram(ToyNet):
    """Feeds the waveform to a 2-D convolution, as a network written for spectrograms does."""

    sample_rate = 16000

    def __init__(self) -> None:
        super().__init__()
        self.spec_conv = nn.Conv2d(1, 8, 3)

    def forward(self, images, audio):
        self.spec_conv(audio)
        return super().forward(images, audio)


class AllFrozen(ToyNet):
    def __init__(self) -> None:
        super().__init__()
        self.requires_grad_(False)


class UnregisteredWeight(ToyNet):
    """The map's only trainable input is a plain tensor attribute, which no optimiser sees."""

    def __init__(self) -> None:
        super().__init__()
        self.gain = torch.ones(1, requires_grad=True)

    def forward(self, images, audio):
        with torch.no_grad():
            sim, _ = super().forward(images, audio)
        return sim * self.gain, None


def fit(net_class, cfg: DMTConfig = FAST) -> tuple[DualMeanTeacher, list[dict]]:
    model = DualMeanTeacher(net_class, cfg)
    return model, model.fit(SquaresDataset(8), SquaresDataset(8), progress=False)


@pytest.mark.parametrize("net_class", [NoGradMap, DetachedMap, ThresholdedMap])
def test_a_map_without_gradient_is_refused_before_the_first_step(net_class):
    with pytest.raises(ContractError, match="map does not require grad") as caught:
        fit(net_class)
    for cause in ("torch.no_grad()", ".detach()", "argmax or thresholds", "frozen = True"):
        assert cause in str(caught.value)


def test_a_network_without_trainable_parameters_must_say_it_is_frozen():
    with pytest.raises(ContractError, match="none of AllFrozen's 8 parameter tensors requires grad"):
        fit(AllFrozen)


def test_a_map_reaching_no_registered_parameter_is_refused():
    with pytest.raises(ContractError, match="reaches none of its 8 trainable parameter tensors"):
        fit(UnregisteredWeight)


def test_a_network_declared_frozen_trains_only_the_calibration(caplog):
    model = DualMeanTeacher(FrozenNoGrad, FAST.replace(teachers=0))
    before = {k: v.clone() for k, v in model.students[0].net.state_dict().items()}
    start = CalibratedNetwork(copy.deepcopy(model.students[0].net))  # the calibration fit starts from
    first = [SquaresDataset(8)[i] for i in range(4)]
    start.initialise_from(torch.stack([d["image"] for d in first]), torch.stack([d["audio"] for d in first]))
    with caplog.at_level(logging.WARNING, logger="dmt_wrap"):
        model.fit(SquaresDataset(8), None, progress=False)
    assert "FrozenNoGrad declares frozen = True: the supervised and pseudo-label losses train only the " \
           "calibration (scale and bias)" in caplog.text
    after = model.students[0].net.state_dict()
    # BatchNorm statistics move in training mode; no weight does
    moved = [k for k in before if not torch.equal(before[k], after[k]) and "running" not in k
             and "num_batches" not in k]
    assert moved == []
    assert float(model.students[0].scale.detach()) != float(start.scale.detach()) != 1.0


def test_a_self_supervised_run_does_not_need_the_map_to_carry_a_gradient():
    """Without labels or teachers no loss goes through the map: its own loss trains the network."""
    model = DualMeanTeacher(NoGradMap, ablation("self_supervised", FAST))
    weight = model.students[0].net.audio.weight.detach().clone()
    model.fit(None, SquaresDataset(8), progress=False)
    assert not torch.equal(weight, model.students[0].net.audio.weight)


def test_a_swapped_tuple_is_named_as_such():
    with pytest.raises(ContractError, match=r"looks like \(loss, map\): return \(map, loss\)"):
        fit(SwappedTuple)


def test_an_exception_inside_the_network_says_what_the_wrapper_passed():
    with pytest.raises(ContractError) as caught:
        fit(WantsSpectrogram)
    message = str(caught.value)
    assert "WantsSpectrogram raised RuntimeError on the wrapper's first batch" in message
    assert re.search(r"images \(4, 3, 16, 16\) torch.float32 in \[0.\d+, 0.\d+\]", message)
    assert re.search(r"audio \(4, 32\) torch.float32 in \[-?[\d.]+, [\d.]+\] \(mono waveforms at 16000 Hz\)", message)
    assert "the contract: net(images [B, 3, H, W] float RGB in [0, 1], audio [B, T] float mono waveform)" in message
    assert "docs/wrapping.md" in message
    assert isinstance(caught.value.__cause__, RuntimeError)


def test_running_out_of_memory_is_not_reported_as_a_contract_matter():
    class OutOfMemory(ToyNet):
        def forward(self, images, audio):
            raise torch.OutOfMemoryError("CUDA out of memory")

    with pytest.raises(torch.OutOfMemoryError):
        CalibratedNetwork(OutOfMemory()).initialise_from(torch.rand(2, 3, 16, 16), torch.randn(2, 32))


def test_the_check_leaves_the_real_network_and_the_calibration_as_without_it():
    """The backward runs on the probe copy; the forward consumes the same random draws."""
    torch.manual_seed(0)
    student, reference = CalibratedNetwork(ToyNet(dropout=0.5)), ToyNet(dropout=0.5)
    reference.load_state_dict(student.net.state_dict())
    state = {k: v.clone() for k, v in student.state_dict().items()}
    images, audio = torch.rand(4, 3, 16, 16), torch.randn(4, 32)
    torch.manual_seed(1)
    student.initialise_from(images, audio)
    draw = torch.rand(1)
    assert all(p.grad is None for p in student.parameters())
    assert all(torch.equal(state[k], v) for k, v in student.state_dict().items() if k not in ("scale", "bias",
                                                                                             "initialised"))
    torch.manual_seed(1)
    with torch.no_grad():
        raw = reference.train()(images, audio)[0]
    assert torch.equal(draw, torch.rand(1))
    assert torch.equal(student.scale.detach(), torch.tensor(1.0 / float(raw.std())))
    assert torch.equal(student.bias.detach(), torch.tensor(-float(raw.mean()) / float(raw.std())))


# --------------------------------------------------------------- docs/wrapping.md

def guide_blocks() -> dict[str, str]:
    """The guide's python blocks, by the file name on their first line (``# theirs.py: ...``)."""
    named = {}
    for block in re.findall(r"```python\n(.*?)```", GUIDE.read_text(), flags=re.S):
        match = re.match(r"# (\w+\.py)", block)
        if match:
            named[match.group(1)] = block
    return named


@pytest.fixture(scope="module")
def guide(tmp_path_factory) -> dict:
    """``TheirNet`` and ``Adapted``, imported from the guide's blocks saved as files (as a reader would)."""
    folder = tmp_path_factory.mktemp("guide")
    blocks = guide_blocks()
    for name in ("theirs.py", "adapter.py"):
        (folder / name).write_text(blocks[name])
    sys.path.insert(0, str(folder))
    try:
        adapter = importlib.import_module("adapter")
    finally:
        sys.path.remove(str(folder))
    yield {"TheirNet": adapter.TheirNet, "Adapted": adapter.Adapted}
    for name in ("adapter", "theirs"):
        sys.modules.pop(name, None)


def waveform_batch(n: int, size: int = 64) -> list[dict]:
    data = SquaresDataset(n, size=size)
    g = torch.Generator().manual_seed(0)
    return [{**data[i], "audio": 0.1 * torch.randn(16000, generator=g)} for i in range(n)]


def test_the_guides_adapter_trains_their_network(guide):
    model = DualMeanTeacher(guide["Adapted"], FAST.replace(batch_size=2, labeled_batch_size=2))
    net = model.students[0].net.net
    before = net.visual[0].weight.detach().clone()
    data = waveform_batch(4)
    history = model.fit(data, data, progress=False)
    assert not torch.equal(before, net.visual[0].weight)
    assert [row["stage"] for row in history] == ["warmup", "unbiased"]
    maps = model.localize(torch.stack([d["image"] for d in data]), torch.stack([d["audio"] for d in data]))
    assert maps.shape == (4, 64, 64) and 0 <= float(maps.min()) and float(maps.max()) <= 1


def test_the_adapters_map_is_their_forwards_map(guide):
    adapted = guide["Adapted"]().eval()
    data = waveform_batch(2)
    images, audio = torch.stack([d["image"] for d in data]), torch.stack([d["audio"] for d in data])
    with torch.no_grad():
        ours, _ = adapted(images, audio)
        _, theirs = adapted.net(*adapted.inputs(images, audio))
    assert torch.equal(ours, theirs)


def test_the_guides_messages_are_the_wrappers(guide):
    """The mistakes the guide walks through get the messages it quotes (value ranges aside)."""
    their_net, adapted = guide["TheirNet"], guide["Adapted"]

    def first_try(self, images, audio):
        return self.net(*self.inputs(images, audio))

    def second_try(self, images, audio):
        loss, sim = self.net(*self.inputs(images, audio))
        return sim, loss

    nets = [lambda: type("TheirNet", (their_net,), {})(pretrained=False),
            type("Adapted", (adapted,), {"forward": first_try}), type("Adapted", (adapted,), {"forward": second_try})]

    def normalised(text: str) -> str:  # the guide wraps long messages; value ranges depend on the data
        return re.sub(r"in \[[-\d.e]+, [-\d.e]+\]", "in [...]", " ".join(text.split()))

    quoted = normalised(GUIDE.read_text())
    data = waveform_batch(16)  # train.py's first batch: 16 labeled scenes at 64 px, 1 s at 16 kHz
    images, audio = torch.stack([d["image"] for d in data]), torch.stack([d["audio"] for d in data])
    for build in nets:
        with pytest.raises(ContractError) as caught:
            CalibratedNetwork(build()).initialise_from(images, audio)
        for line in str(caught.value).splitlines():
            assert normalised(line) in quoted, line
