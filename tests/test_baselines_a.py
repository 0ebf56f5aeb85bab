"""Encoders, registry and four baselines (EZ-VSL, FNAC, LVS, SSL-TIE): each loss's defining
property (what every baseline must do is in test_baseline_conformance.py). Tiny encoders, 64 px,
0.5 s at 8 kHz."""
from __future__ import annotations

import math

import pytest
import timm
import torch

import dmt_wrap_baselines as baselines
from dmt_wrap_baselines.encoders import (AudioEncoder, AudioVisualEmbedder, VisualEncoder,
                                cross_modal_similarities, matched_pairs)
from dmt_wrap_baselines.ezvsl import EZVSL, mil_contrastive_loss, mil_pair_logits
from dmt_wrap_baselines.fnac import FNAC, fnac_regularisers
from dmt_wrap_baselines.lvs import lvs_logits, lvs_trimap
from dmt_wrap_baselines.registry import register
from dmt_wrap_baselines.ssltie import equivariance_loss, random_view_transforms
from dmt_wrap.augment import warp
from dmt_wrap.contract import parse_output

torch.set_num_threads(1)

SAMPLE_RATE = 8000
TINY = dict(encoder_size="tiny", sample_rate=SAMPLE_RATE, output_stride=8)


@pytest.fixture
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(4, 3, 64, 64, generator=generator)
    audio = 0.1 * torch.randn(4, SAMPLE_RATE // 2, generator=generator)
    return images, audio


def build_tiny(name: str, **kwargs) -> torch.nn.Module:
    torch.manual_seed(0)
    return baselines.build(name, **TINY, **kwargs)


# ---------------------------------------------------------------- the shared embedder
# (the contract, training signal and gradients of every baseline: test_baseline_conformance.py)

def test_dim_projects_embeddings():
    net = build_tiny("ezvsl", dim=32)
    assert net.embedder.embed_audio(torch.randn(2, SAMPLE_RATE // 2)).shape == (2, 32)
    assert build_tiny("lvs").embedder.dim == 128  # no projection: the encoders' width
    assert build_tiny("lvs", dim=32).embedder.dim == 32
    with pytest.raises(ValueError, match="width"):
        AudioVisualEmbedder("tiny", SAMPLE_RATE, dim=32, projection=False)


# ---------------------------------------------------------------- EZ-VSL

def test_ezvsl_pair_logit_gradient_only_at_best_location():
    torch.manual_seed(0)
    visual = torch.nn.functional.normalize(torch.randn(3, 16, 5, 5), dim=1).requires_grad_()
    audio = torch.nn.functional.normalize(torch.randn(3, 16), dim=1)
    similarities = cross_modal_similarities(visual, audio) / 0.03
    for i, j in [(0, 0), (0, 2), (2, 1)]:
        visual.grad = None
        mil_pair_logits(similarities)[i, j].backward(retain_graph=True)
        touched = visual.grad.abs().sum(dim=1) > 0  # [B, h, w]
        expected = torch.zeros_like(touched)
        expected[i].view(-1)[similarities[i, j].argmax()] = True
        assert torch.equal(touched, expected)


def test_ezvsl_loss_is_symmetric_cross_entropy_at_chance():
    uniform = torch.zeros(6, 6)
    assert mil_contrastive_loss(uniform).item() == pytest.approx(2 * math.log(6))
    confident = 50 * torch.eye(6)
    assert mil_contrastive_loss(confident).item() < 1e-6


def test_ezvsl_object_prior_mixes_only_at_inference(tmp_path, batch):
    prior_file = tmp_path / "prior.pth"
    torch.save(VisualEncoder("tiny", output_stride=8).backbone.state_dict(), prior_file)
    plain = build_tiny("ezvsl")
    guided = build_tiny("ezvsl", object_prior_weights=str(prior_file))
    assert torch.equal(plain(*batch)[0], guided(*batch)[0])
    guided.train()
    assert not guided.object_prior.encoder.training
    assert not any(p.requires_grad for p in guided.object_prior.parameters())
    guided.eval()
    with torch.no_grad():
        mixed = guided(*batch)[0]
    assert mixed.shape == (4, 8, 8)
    assert mixed.amin() >= 0 and mixed.amax() <= 1


# ---------------------------------------------------------------- FNAC

def test_fnac_regularisers_off_before_warmup_and_on_after(batch):
    net = build_tiny("fnac", reg_warmup_steps=2, visual_dropout=0.0)
    reference = build_tiny("ezvsl")
    reference.load_state_dict(net.state_dict(), strict=False)
    losses, active = [], []
    for _ in range(3):
        active.append(bool(net.regularisers_active()))
        losses.append(net(*batch)[1].item())
    assert active == [False, False, True]
    assert losses[0] == pytest.approx(reference(*batch)[1].item(), rel=1e-5)
    assert losses[1] == pytest.approx(losses[0], rel=1e-5)
    assert losses[2] > losses[1] + 1e-3
    net.eval()
    net(*batch)
    assert int(net.training_forwards) == 3  # eval-mode forwards do not count


def test_fnac_warmup_counter_survives_a_checkpoint(batch):
    net = build_tiny("fnac", reg_warmup_steps=1)
    net(*batch)
    restored = build_tiny("fnac", reg_warmup_steps=1)
    assert not restored.regularisers_active()
    restored.load_state_dict(net.state_dict())
    assert restored.regularisers_active()


def test_fnac_regularisers_vanish_when_similarities_agree():
    audio = torch.nn.functional.normalize(torch.randn(4, 8), dim=1)
    visual = audio[:, :, None, None].expand(4, 8, 3, 3).contiguous()  # v_i(p) = a_i everywhere
    similarities = cross_modal_similarities(visual, audio) / 0.03
    audio_term, visual_term, foreground_term = fnac_regularisers(visual, audio, similarities, 0.03)
    assert audio_term.item() == pytest.approx(0, abs=1e-6)
    assert visual_term.item() == pytest.approx(0, abs=1e-6)
    assert foreground_term.item() >= 0


# ---------------------------------------------------------------- LVS

def test_lvs_trimap_thresholds():
    cosine = torch.tensor([0.65, 0.4, 1.0, 0.0])
    positive, negative = lvs_trimap(cosine)
    assert positive[0].item() == pytest.approx(0.5)
    assert negative[1].item() == pytest.approx(0.5)
    assert positive[2].item() > 0.999 and negative[2].item() < 1e-6
    assert positive[3].item() < 1e-6 and negative[3].item() > 0.999
    assert torch.all(positive[1] < 0.001) and torch.all(negative[0] < 0.001)  # the band between


def test_lvs_logits_positive_easy_and_hard_negatives():
    batch = 3
    similarities = torch.full((batch, batch, 4, 4), 0.1)
    similarities[range(batch), range(batch)] = 0.9
    similarities[0, 0, :2] = 0.0  # sample 0: half object (0.9), half background (0.0)
    logits = lvs_logits(similarities) * 0.07
    assert logits.shape == (batch, batch + 1)
    assert logits[:, 0] == pytest.approx(torch.full((batch,), 0.9), abs=1e-4)
    assert logits[:, 1:batch] == pytest.approx(torch.full((batch, batch - 1), 0.1), abs=1e-4)
    assert logits[0, -1].item() == pytest.approx(0.0, abs=1e-4)  # background is the hard negative


# ---------------------------------------------------------------- SSL-TIE

def test_ssltie_equivariance_zero_for_maps_that_commute():
    transforms = random_view_transforms(5, torch.device("cpu"), max_rotation_degrees=30.0)
    constant = torch.full((5, 8, 8), 0.7)
    assert equivariance_loss(constant, constant, transforms).item() == pytest.approx(0, abs=1e-10)
    flip = random_view_transforms(5, torch.device("cpu"), flip_probability=1.0, crop_side=(1, 1))
    maps = torch.rand(5, 8, 8)
    assert equivariance_loss(maps, maps.flip(-1), flip).item() == pytest.approx(0, abs=1e-10)
    assert equivariance_loss(maps, maps, flip).item() > 1e-3


def test_ssltie_view_transforms():
    images = torch.rand(2, 3, 16, 16)
    identity = random_view_transforms(2, images.device, flip_probability=0.0, crop_side=(1, 1))
    assert torch.allclose(warp(images, identity), images, atol=1e-5)
    flip = random_view_transforms(2, images.device, flip_probability=1.0, crop_side=(1, 1))
    assert torch.allclose(warp(images, flip), images.flip(-1), atol=1e-5)
    crops = random_view_transforms(1000, images.device, crop_side=(0.5, 1.0))
    side = crops[:, 1, 1]
    assert side.min() >= 0.5 and side.max() <= 1.0
    assert torch.all(crops[:, :, 2].abs() <= (1 - side).unsqueeze(1) + 1e-6)  # crops stay inside
    assert 0.4 < (crops[:, 0, 0] < 0).float().mean() < 0.6  # half flipped


# ---------------------------------------------------------------- encoders

@pytest.mark.parametrize("size,channels", [("tiny", 128), ("small", 256), ("resnet18", 512)])
def test_encoder_shapes_at_64_px(size, channels):
    images = torch.rand(2, 3, 64, 64)
    for stride, side in [(8, 8), (32, 2)]:
        encoder = VisualEncoder(size, output_stride=stride)
        assert encoder.out_channels == channels
        assert encoder(images).shape == (2, channels, side, side)
    audio = AudioEncoder(size, SAMPLE_RATE)
    assert audio.out_channels == channels
    assert audio(torch.randn(2, SAMPLE_RATE // 2)).shape == (2, channels)


@pytest.mark.parametrize("size", ["tiny", "small", "resnet18"])
def test_encoder_shapes_at_224_px(size):
    images = torch.rand(1, 3, 224, 224)
    with torch.no_grad():
        assert VisualEncoder(size).eval()(images).shape[-2:] == (7, 7)
        assert VisualEncoder(size, output_stride=16).eval()(images).shape[-2:] == (14, 14)


def test_encoder_weights_round_trip(tmp_path):
    visual = VisualEncoder("tiny", output_stride=8).eval()
    audio = AudioEncoder("tiny", SAMPLE_RATE).eval()
    torch.save(visual.backbone.state_dict(), tmp_path / "visual.pth")
    torch.save(audio.backbone.state_dict(), tmp_path / "audio.pth")
    visual_loaded = VisualEncoder("tiny", str(tmp_path / "visual.pth"), output_stride=8).eval()
    audio_loaded = AudioEncoder("tiny", SAMPLE_RATE, str(tmp_path / "audio.pth")).eval()
    images, waveform = torch.rand(2, 3, 64, 64), torch.randn(2, SAMPLE_RATE // 2)
    with torch.no_grad():
        assert torch.equal(visual(images), visual_loaded(images))
        assert torch.equal(audio(waveform), audio_loaded(waveform))


def test_imagenet_style_file_loads_into_both_encoders(tmp_path):
    """A classifier checkpoint (fc keys, 3-channel conv1) fits the headless encoders."""
    imagenet = timm.create_model("resnet18", num_classes=1000)
    torch.save(imagenet.state_dict(), tmp_path / "resnet18.pth")
    visual = VisualEncoder("resnet18", str(tmp_path / "resnet18.pth"))
    audio = AudioEncoder("resnet18", weights=str(tmp_path / "resnet18.pth"))
    assert torch.equal(visual.backbone.layer4[1].conv2.weight, imagenet.layer4[1].conv2.weight)
    assert torch.allclose(audio.backbone.conv1.weight,
                          imagenet.conv1.weight.sum(dim=1, keepdim=True))
    with pytest.raises(RuntimeError):  # a file of another size is refused, not half-loaded
        VisualEncoder("tiny", str(tmp_path / "resnet18.pth"))


def test_spectrogram_lives_on_the_module_device_and_stays_float32():
    audio = AudioEncoder("tiny", SAMPLE_RATE)
    buffers = dict(audio.named_buffers())
    assert any(name.startswith("spectrogram.") for name in buffers)  # moved by .to(device)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        spec = audio.spectrogram(torch.randn(2, SAMPLE_RATE // 2))
    assert spec.dtype == torch.float32 and spec.shape[:2] == (2, 1)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_spectrogram_runs_on_the_input_device():
    audio = AudioEncoder("tiny", SAMPLE_RATE).cuda()
    out = audio(torch.randn(2, SAMPLE_RATE // 2, device="cuda"))
    assert out.device.type == "cuda"


def test_unknown_encoder_size():
    with pytest.raises(ValueError, match="tiny"):
        VisualEncoder("huge")


# ---------------------------------------------------------------- registry

def test_registry_lists_and_refuses():
    assert {"ezvsl", "fnac", "lvs", "ssltie"} <= set(baselines.available())
    with pytest.raises(ValueError, match="ezvsl"):
        baselines.build("no-such-network")
    with pytest.raises(ValueError, match="already registered"):
        register("ezvsl")(FNAC)
    assert register("ezvsl")(EZVSL) is EZVSL  # re-registering the same class is harmless


def test_matched_pairs_is_the_diagonal():
    similarities = torch.randn(3, 3, 2, 2)
    assert torch.equal(matched_pairs(similarities)[1], similarities[1, 1])


# ---------------------------------------------------------------- fidelity options

def test_undilated_stride_keeps_the_resolution_with_stride_one_convolutions():
    """LVS's released ResNet18 runs layer4 at stride 1 without dilation; same initial weights."""
    torch.manual_seed(0)
    dilated = VisualEncoder("tiny", output_stride=8)
    torch.manual_seed(0)
    plain = VisualEncoder("tiny", output_stride=8, dilated=False)
    for a, b in zip(plain.state_dict().values(), dilated.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    convs = [m for m in plain.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(m.dilation == (1, 1) for m in convs)
    assert any(m.dilation != (1, 1) for m in dilated.modules() if isinstance(m, torch.nn.Conv2d))
    for net in (plain, dilated):  # timm zero-initialises each block's last BN: make the 3x3 convs count
        for name, module in net.named_modules():
            if name.endswith("bn2"):
                torch.nn.init.ones_(module.weight)
    images = torch.rand(2, 3, 64, 64)
    plain_map, dilated_map = plain(images), dilated(images)
    assert plain_map.shape == dilated_map.shape == (2, 128, 8, 8)
    assert not torch.allclose(plain_map, dilated_map)
    lvs = build_tiny("lvs", dilated=False)
    assert lvs.embedder.visual.backbone.layer4[0].conv1.stride == (1, 1)


def test_lvs_audio_resnet_runs_layer4_at_stride_one_as_released():
    """The paper recipe's audio ResNet: layer4 undilated at stride 1, so the max pool sees a map
    twice as fine; the same initial weights as the default's; the default keeps stride 2."""
    torch.manual_seed(0)
    default = AudioEncoder("tiny", sample_rate=8000)
    torch.manual_seed(0)
    released = AudioEncoder("tiny", sample_rate=8000, output_stride=16, dilated=False)
    for a, b in zip(released.state_dict().values(), default.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert default.backbone.layer4[0].conv1.stride == (2, 2)
    assert released.backbone.layer4[0].conv1.stride == (1, 1)
    spectrogram = torch.rand(2, 1, 64, 64)
    coarse = default.backbone.forward_features(spectrogram).shape[-2:]
    fine = released.backbone.forward_features(spectrogram).shape[-2:]
    assert (fine[0], fine[1]) == (2 * coarse[0], 2 * coarse[1])
    assert released(torch.randn(2, 8000)).shape == (2, released.out_channels)
    paper = baselines.build("lvs", recipe="paper", encoder_size="tiny")
    assert paper.embedder.audio.backbone.layer4[0].conv1.stride == (1, 1)


def test_ssltie_original_family_is_one_scale_and_flip_per_batch_with_integer_angles():
    from dmt_wrap_baselines.ssltie import original_view_transforms, warp_zero_padded

    torch.manual_seed(0)
    sides, flips = set(), set()
    for _ in range(40):
        matrices = original_view_transforms(6, torch.device("cpu"), max_rotation_degrees=30)
        assert torch.all(matrices[:, :, 2] == 0)  # about the centre
        scale = matrices[:, :, :2].det().abs().sqrt()  # 1 / s, one for the whole batch
        assert torch.allclose(scale, scale[0].expand(6))
        sides.add(round(float(scale[0]), 4))
        flip = torch.sign(matrices[:, :, :2].det())  # a flip reverses orientation
        assert torch.all(flip == flip[0])
        flips.add(float(flip[0]))
        degrees = torch.rad2deg(torch.atan2(matrices[:, 0, 1], matrices[:, 1, 1]))  # R(-a) F / s
        assert torch.allclose(degrees, degrees.round(), atol=1e-3) and degrees.abs().max() <= 30 + 1e-3
    assert sides == {1.0, 2.0} and flips == {-1.0, 1.0}  # zoom-out by 0.5 (input side x2), flips
    # zoom-out about the centre: the image shrinks into the middle, zeros (the fill) around it
    zoom_out = torch.tensor([[[2.0, 0.0, 0.0], [0.0, 2.0, 0.0]]])
    warped = warp_zero_padded(torch.ones(1, 1, 8, 8), zoom_out, fill=0.0)
    assert torch.all(warped[0, 0, 2:6, 2:6] == 1) and warped[0, 0, 0].abs().sum() == 0
    net = build_tiny("ssltie", transforms="original", max_rotation_degrees=30)
    images, audio = torch.rand(4, 3, 64, 64), 0.1 * torch.randn(4, SAMPLE_RATE // 2)
    out = parse_output(net(images, audio), batch_size=4, net_name="ssltie")
    out.self_loss.backward()
    assert torch.isfinite(out.self_loss)
    with pytest.raises(ValueError, match="original"):
        build_tiny("ssltie", transforms="rotated")
