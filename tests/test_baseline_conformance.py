"""What every registered baseline must do, parametrized over the registry (as timm's test_models):
a newly registered baseline gets all of these. Each method's own defining properties are tested in
test_baselines_a.py and test_baselines_b.py."""
from __future__ import annotations

import pytest
import torch
from torch import nn

import dmt_wrap_baselines as baselines
from dmt_wrap import DualMeanTeacher
from dmt_wrap.contract import check_finite_map, parse_output
from dmt_wrap_baselines.encoders import AudioEncoder, VisualEncoder
from tests.baseline_inputs import AUDIO_SECONDS, BATCH, IMAGE_SIZE, SAMPLE_RATE, toy_batch

NAMES = baselines.available()
#: what a method needs to show a training signal within a few steps: FNAC's regularisers from the start
SIGNAL_NOW = {"fnac": {"reg_warmup_steps": 0}}


def tiny_network(name: str, **kwargs) -> nn.Module:
    torch.manual_seed(0)
    return baselines.build(name, encoder_size="tiny", sample_rate=SAMPLE_RATE, output_stride=8, **kwargs)


def test_the_registry_holds_the_seven_baselines():
    assert NAMES == ["attention10k", "ezvsl", "fnac", "lvs", "slavc", "ssltie", "sspl"]


@pytest.mark.parametrize("name", NAMES)
def test_contract_shapes_in_train_and_eval(name):
    net = tiny_network(name).train()
    images, audio = toy_batch()
    output = parse_output(net(images, audio), BATCH, name)
    check_finite_map(output, name)
    assert output.map.dim() == 3 and output.map.shape[0] == BATCH
    assert output.self_loss is not None and output.self_loss.shape == () and torch.isfinite(output.self_loss)
    net.eval()
    with torch.no_grad():
        evaluated = parse_output(net(images, audio), BATCH, name)
    assert evaluated.self_loss is None and evaluated.map.shape == output.map.shape


@pytest.mark.parametrize("name", NAMES)
def test_loss_decreases_on_a_fixed_batch(name):
    net = tiny_network(name, **SIGNAL_NOW.get(name, {})).train()
    images, audio = toy_batch()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    losses = []
    for _ in range(8):
        torch.manual_seed(1)  # the same dropout masks and second views at every step
        _, loss = net(images, audio)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0], losses


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_both_encoders(name):
    net = tiny_network(name).train()
    _, loss = net(*toy_batch())
    loss.backward()
    trainable = [m for m in net.modules() if isinstance(m, (VisualEncoder, AudioEncoder))
                 and any(p.requires_grad for p in m.parameters())]
    assert {type(m) for m in trainable} == {VisualEncoder, AudioEncoder}
    for encoder in trainable:
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in encoder.parameters()), \
            f"no gradient reached {type(encoder).__name__}"


@pytest.mark.parametrize("name", NAMES)
def test_the_wrappers_first_batch_check_passes_and_records_how_to_rebuild(name):
    """The contract check the wrapper runs before the first step (the map reaches the network's
    parameters), and the registration ``save_pretrained`` records."""
    model = DualMeanTeacher(lambda: tiny_network(name), device="cpu")
    images, audio = toy_batch()
    model.calibrate(images, audio)
    assert model.input_spec == {"image_size": IMAGE_SIZE, "samples": audio.shape[1], "sample_rate": SAMPLE_RATE,
                                "duration": AUDIO_SECONDS}
    assert model.model_state()["registration"] == {
        "name": name, "kwargs": {"encoder_size": "tiny", "sample_rate": SAMPLE_RATE, "output_stride": 8}}
