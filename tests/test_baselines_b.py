"""Attention10k, SLAVC and SSPL: each method's defining property (what every baseline must do is in
test_baseline_conformance.py) (one negative; momentum encoders moved by EMA only; no negatives at all)."""
from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from dmt_wrap.config import DMTConfig
from dmt_wrap.trainer import build_optimizer
from dmt_wrap_baselines import registry, sspl
from tests.baseline_inputs import BATCH, SAMPLE_RATE, toy_batch


def tiny_network(name: str, **kwargs) -> nn.Module:
    torch.manual_seed(0)
    return registry.build(name, encoder_size="tiny", sample_rate=SAMPLE_RATE, **kwargs)


def freeze_batch_statistics(net: nn.Module) -> nn.Module:
    """BatchNorm in eval mode: batch statistics couple the samples of a batch whatever the
    loss does, so the loss's own use of other samples is only visible without them."""
    for module in net.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()
    return net


def loss_dependencies(net: nn.Module, images: Tensor, audio: Tensor,
                      modality: str) -> list[set[int]]:
    """For each sample ``i``, the samples ``j`` whose image (or audio) changes ``i``'s loss.

    Found by replacing one sample's input at a time (same random draws every call), so a
    dependence through a stop-gradient path counts too.
    """
    others = toy_batch(seed=1)[0 if modality == "images" else 1]

    def per_sample_losses(images: Tensor, audio: Tensor) -> Tensor:
        torch.manual_seed(2)
        with torch.no_grad():
            return net.forward_per_sample(images, audio)[1]

    reference = per_sample_losses(images, audio)
    dependencies: list[set[int]] = [set() for _ in range(BATCH)]
    for j in range(BATCH):
        changed = (images if modality == "images" else audio).clone()
        changed[j] = others[j]
        inputs = (changed, audio) if modality == "images" else (images, changed)
        for i in torch.nonzero(per_sample_losses(*inputs) != reference).flatten().tolist():
            dependencies[i].add(j)
    return dependencies


# the contract, training signal and gradients of every baseline: test_baseline_conformance.py


# --------------------------------------------------------------------------- Attention10k
@pytest.mark.parametrize("training", [True, False])
def test_attention10k_map_is_a_distribution_over_locations(training):
    net = tiny_network("attention10k").train(training)
    with torch.no_grad():
        attention, _ = net(*toy_batch())
    assert (attention >= 0).all()
    torch.testing.assert_close(attention.sum(dim=(1, 2)), torch.ones(BATCH))


def test_attention10k_triplet_uses_exactly_one_negative():
    net = freeze_batch_statistics(tiny_network("attention10k").train())
    images, audio = toy_batch()
    assert loss_dependencies(net, images, audio, "images") == [{i} for i in range(BATCH)]
    # sample i: its own audio (positive) and the audio of sample i - 1 (the one negative)
    assert loss_dependencies(net, images, audio, "audio") == [{i, (i - 1) % BATCH}
                                                              for i in range(BATCH)]


def test_attention10k_temperature_sharpens_the_attention():
    images, audio = toy_batch()
    with torch.no_grad():
        flat = tiny_network("attention10k").eval()(images, audio)[0]
        sharp = tiny_network("attention10k", attention_temperature=0.05).eval()(images, audio)[0]
    # same weights (same seed), same ranking of locations; a lower temperature concentrates the mass
    assert torch.equal(flat.flatten(1).argmax(1), sharp.flatten(1).argmax(1))
    assert (sharp.flatten(1).amax(1) > flat.flatten(1).amax(1)).all()
    # at temperature 1 the scores lie in [0, 1]: no location weighs more than e times another
    ratio = flat.flatten(1).amax(1) / flat.flatten(1).amin(1)
    assert (ratio <= math.e + 1e-4).all()
    with pytest.raises(ValueError, match="attention_temperature=0"):
        tiny_network("attention10k", attention_temperature=0)


def test_attention10k_without_relu_keeps_a_gradient_when_every_cosine_is_negative():
    # Non-negative features against a negative query: every cosine < 0, the dead-ReLU state.
    generator = torch.Generator().manual_seed(0)
    visual = torch.rand(2, 8, 4, 4, generator=generator).requires_grad_()
    query = -torch.rand(2, 8, generator=generator)
    target = torch.zeros(2, 4, 4)
    target[:, :2, :2] = 1.0
    gradients = {}
    for activation in ("relu", "identity"):
        net = tiny_network("attention10k", attention_temperature=0.1, score_activation=activation)
        attention = net.attention(visual, query)
        (gradient,) = torch.autograd.grad((attention * target).sum(), visual)
        gradients[activation] = gradient
        if activation == "relu":
            torch.testing.assert_close(attention, torch.full_like(attention, 1 / 16))
    assert gradients["relu"].abs().max() == 0
    assert gradients["identity"].abs().max() > 0
    with pytest.raises(ValueError, match="score_activation='tanh'"):
        tiny_network("attention10k", score_activation="tanh")


@pytest.mark.parametrize("method", ["attention10k", "sspl"])
@pytest.mark.parametrize("frozen", ["visual_encoder", "audio_encoder"])
def test_frozen_encoder_keeps_weights_and_statistics(method, frozen):
    net = tiny_network(method, **{f"freeze_{frozen.split('_')[0]}": True}).train()
    trained = "audio_encoder" if frozen == "visual_encoder" else "visual_encoder"
    assert not getattr(net, frozen).training and getattr(net, trained).training
    before = {k: v.clone() for k, v in getattr(net, frozen).state_dict().items()}
    optimizer = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=1e-2)
    images, audio = toy_batch()
    for _ in range(2):
        _, loss = net(images, audio)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = getattr(net, frozen).state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # BatchNorm running stats too
    assert all(p.grad is not None for p in getattr(net, trained).parameters() if p.requires_grad)


# --------------------------------------------------------------------------------- SLAVC
def test_slavc_momentum_encoders_move_only_by_ema():
    net = tiny_network("slavc").train()
    momentum_params = list(net.momentum_branch.parameters())
    assert momentum_params and not any(p.requires_grad for p in momentum_params)
    for online, target in zip(net.online.parameters(), momentum_params, strict=True):
        assert torch.equal(online, target)  # the momentum branch starts as a copy

    optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)  # every parameter, as a trainer would
    images, audio = toy_batch()
    for _ in range(2):
        online_before = [p.detach().clone() for p in net.online.parameters()]
        momentum_before = [p.detach().clone() for p in momentum_params]
        _, loss = net(images, audio)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        for online, old, new in zip(online_before, momentum_before, momentum_params, strict=True):
            assert new.grad is None
            expected = old * net.momentum + online * (1 - net.momentum)
            # exact up to float rounding (the update is computed as an in-place mul + add)
            torch.testing.assert_close(new.detach(), expected, rtol=1e-6, atol=1e-7)
    online_now = torch.cat([p.detach().flatten() for p in net.online.parameters()])
    momentum_now = torch.cat([p.detach().flatten() for p in momentum_params])
    assert not torch.equal(online_now, momentum_now)  # the online branch did learn

    net.eval()
    with torch.no_grad():
        net(images, audio)
    assert torch.equal(momentum_now, torch.cat([p.flatten() for p in momentum_params]))


def test_slavc_confidence_is_mean_of_top_quarter_of_absolute_scores():
    net = tiny_network("slavc", output_stride=16).eval()
    images, audio = toy_batch()
    with torch.no_grad():
        similarity, _ = net(images, audio)
        confidence = net.confidence(images, audio)
    scores = net.absolute_scores(similarity).flatten(1)
    assert (scores >= 0).all() and (scores <= 1).all()
    quarter = scores.shape[1] // 4
    expected = scores.sort(dim=1, descending=True).values[:, :quarter].mean(dim=1)
    assert confidence.shape == (BATCH,)
    torch.testing.assert_close(confidence, expected)


# ---------------------------------------------------------------------------------- SSPL
def test_sspl_loss_of_a_sample_ignores_every_other_sample():
    net = freeze_batch_statistics(tiny_network("sspl").train())
    images, audio = toy_batch()
    for modality in ("images", "audio"):
        assert loss_dependencies(net, images, audio, modality) == [{i} for i in range(BATCH)]


def test_sspl_second_view_differs_from_the_first():
    images, audio = toy_batch()
    torch.manual_seed(0)
    second_images, second_audio = sspl.second_view(images, audio, (0.8, 1.0), 6.0, 30.0)
    assert second_images.shape == images.shape and second_audio.shape == audio.shape
    assert not torch.allclose(second_images, images) and not torch.allclose(second_audio, audio)


def test_slavc_confidence_over_the_upsampled_map_as_the_original():
    net = tiny_network("slavc", output_stride=8).eval()
    images, audio = toy_batch()
    with torch.no_grad():
        scores = net.absolute_scores(net.localize(images, audio))
        upsampled = torch.nn.functional.interpolate(scores[:, None], size=(16, 16), mode="bicubic",
                                                    align_corners=True)[:, 0].flatten(1)
        expected = upsampled.sort(dim=1, descending=True).values[:, :64].mean(dim=1)
        assert torch.allclose(net.confidence(images, audio, size=(16, 16)), expected)
        assert not torch.allclose(net.confidence(images, audio, size=(16, 16)), net.confidence(images, audio))


def test_sspl_paper_options_per_view_passes_mlp_projection_and_head_learning_rate():
    images, audio = toy_batch()
    plain = tiny_network("sspl")
    assert isinstance(plain.audio_to_visual, nn.Linear)
    net = tiny_network("sspl", audio_projection_layers=2, per_view_passes=True, head_lr_scale=2.5)
    assert [type(m) for m in net.audio_to_visual] == [nn.Linear, nn.ReLU, nn.Linear]
    # the optimiser the trainer builds: the PCM's rates without weight decay, the head at 2.5x
    optimizer = build_optimizer(net, DMTConfig(optimizer="adamw", lr=2e-5, weight_decay=1e-4), torch.device("cpu"))
    rates, head, rest = optimizer.param_groups
    assert {id(p) for p in rates["params"]} == {id(net.pcm.prediction_rates), id(net.pcm.error_rates)}
    assert (rates["weight_decay"], rates["lr"]) == (0.0, pytest.approx(2e-5))
    assert {id(p) for p in head["params"]} == {id(p) for p in net.head.parameters()}
    assert (head["weight_decay"], head["lr"]) == (1e-4, pytest.approx(5e-5))
    assert (rest["weight_decay"], rest["lr"]) == (1e-4, pytest.approx(2e-5))
    assert len(rest["params"]) + len(head["params"]) + 2 == len(list(net.parameters()))
    # one pass per view: each view's BatchNorm statistics are its own, so view 1's map does not
    # depend on the second view at all; one joint pass mixes them
    for model, separate in ((net, True), (tiny_network("sspl"), False)):
        maps = []
        for seed in (1, 2):
            torch.manual_seed(seed)  # a different second view
            maps.append(model(images, audio)[0])
        assert torch.equal(maps[0], maps[1]) == separate
    with pytest.raises(ValueError, match="audio_projection_layers"):
        tiny_network("sspl", audio_projection_layers=3)
