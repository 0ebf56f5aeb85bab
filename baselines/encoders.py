"""Image and audio encoders shared by the baseline AVSL networks.

Every baseline pairs a visual encoder that keeps a spatial feature map with an audio
encoder that pools a log-mel spectrogram to one vector. Both are timm ResNets whose
width and depth follow one ``size`` knob:

* ``"resnet18"``: the real ResNet18 (the originals' backbone, paper preset at 224 px);
* ``"small"`` and ``"tiny"``: one block per stage, narrower channels and a narrow
  three-conv stem, for CPU runs at 64 px (use ``output_stride=8`` for an 8x8 map).

Weights never come from the network: pass a local file (a timm/torchvision ResNet
state dict, ``.pth``/``.bin``/``.safetensors``, classifier keys ignored, a 3-channel
first conv summed to 1 channel for audio) or get random init.

``AudioVisualEmbedder`` joins the two into a shared L2-normalised space, and the
similarity helpers below turn its outputs into maps.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import timm
import torch
import torch.nn.functional as F
from einops import rearrange
from timm.models import adapt_input_conv, load_state_dict
from torch import Tensor, nn
from torchaudio.transforms import AmplitudeToDB, MelSpectrogram

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ResNetSize:
    """Depth and width of one encoder size (arguments to timm's ``ResNet``)."""

    layers: tuple[int, int, int, int]
    channels: tuple[int, int, int, int]
    stem_width: int | None  # None: ResNet's own 7x7 stem (64 channels); else a deep stem

    def timm_kwargs(self) -> dict:
        kwargs = dict(layers=self.layers, channels=self.channels)
        if self.stem_width is not None:
            kwargs.update(stem_type="deep", stem_width=self.stem_width)
        return kwargs


ENCODER_SIZES: dict[str, ResNetSize] = {
    "resnet18": ResNetSize(layers=(2, 2, 2, 2), channels=(64, 128, 256, 512), stem_width=None),
    "small": ResNetSize(layers=(1, 1, 1, 1), channels=(32, 64, 128, 256), stem_width=16),
    "tiny": ResNetSize(layers=(1, 1, 1, 1), channels=(16, 32, 64, 128), stem_width=8),
}


def encoder_size(size: str) -> ResNetSize:
    if size not in ENCODER_SIZES:
        raise ValueError(f"unknown encoder size {size!r}; choose one of {sorted(ENCODER_SIZES)}")
    return ENCODER_SIZES[size]


STAGE_STRIDE_LAYERS = ("layer2", "layer3", "layer4")  # the stages that halve the resolution


def create_resnet(size: str, in_chans: int, global_pool: str = "",
                  output_stride: int = 32, weights: str | None = None,
                  dilated: bool = True) -> nn.Module:
    """A headless timm ResNet of the given size, from a local weights file or random.

    ``global_pool=""`` keeps the spatial map (use ``forward_features``); ``"avg"`` or
    ``"max"`` pools it to a vector (use the module's ``forward``). Below ``output_stride=32``
    the last stages keep their resolution by dilation (timm's way) or, with
    ``dilated=False``, run at stride 1 with undilated convolutions (LVS's released ResNet18
    runs its layer4 so: the same weights, a smaller receptive field). Both draw the same
    initial weights.
    """
    if output_stride not in (8, 16, 32):
        raise ValueError(f"output_stride={output_stride}: choose 8, 16 or 32")
    net = timm.create_model("resnet18", pretrained=False, num_classes=0, in_chans=in_chans,
                            global_pool=global_pool, output_stride=output_stride if dilated else 32,
                            **encoder_size(size).timm_kwargs())
    if not dilated:
        undilated_stages = {32: 0, 16: 1, 8: 2}[output_stride]
        for name in STAGE_STRIDE_LAYERS[len(STAGE_STRIDE_LAYERS) - undilated_stages:]:
            first_block = getattr(net, name)[0]
            first_block.conv1.stride = (1, 1)
            first_block.downsample[0].stride = (1, 1)
    if weights is not None:
        load_resnet_weights(net, weights)
    return net


def load_resnet_weights(net: nn.Module, path: str) -> None:
    """Load a ResNet state dict from a local file, strictly, adapting what must be adapted.

    Classifier weights (``fc.*``) are dropped (the encoders are headless), and an
    ImageNet first conv is summed over its colour channels for a 1-channel input.
    """
    state = load_state_dict(path, weights_only=True)
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    first_conv = getattr(net, "conv1", None)
    if isinstance(first_conv, nn.Conv2d) and "conv1.weight" in state:
        in_chans = first_conv.in_channels
        if state["conv1.weight"].shape[1] != in_chans:
            state["conv1.weight"] = adapt_input_conv(in_chans, state["conv1.weight"])
    net.load_state_dict(state, strict=True)


class VisualEncoder(nn.Module):
    """RGB images in [0, 1] -> a spatial feature map ``[B, out_channels, h, w]``.

    ImageNet normalisation happens inside. ``output_stride`` (8, 16 or 32) sets the map
    resolution through dilation in the last stages, as timm does: at 224 px, 32 gives
    7x7 (EZ-VSL), 16 gives 14x14 (LVS); at 64 px, 8 gives 8x8. ``dilated=False`` keeps
    the resolution with stride-1 undilated stages instead (``create_resnet``).
    """

    def __init__(self, size: str = "resnet18", weights: str | None = None,
                 output_stride: int = 32, dilated: bool = True) -> None:
        super().__init__()
        self.backbone = create_resnet(size, in_chans=3, output_stride=output_stride,
                                      weights=weights, dilated=dilated)
        self.out_channels: int = self.backbone.num_features
        self.output_stride = output_stride
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: Tensor) -> Tensor:
        return self.backbone.forward_features((images - self.mean) / self.std)


def spectrogram_frame_sizes(sample_rate: int) -> tuple[int, int]:
    """(n_fft, hop_length): a ~32 ms FFT window (a power of two) and a 10 ms hop.

    At 16 kHz that is the originals' 512-point window; 64 mel bands then keep every
    filter non-empty down to 8 kHz.
    """
    n_fft = 2 ** round(math.log2(0.032 * sample_rate))
    return n_fft, max(1, sample_rate // 100)


class LogMelSpectrogram(nn.Module):
    """Waveform ``[B, T]`` -> log-mel spectrogram ``[B, 1, n_mels, frames]`` in dB.

    Runs wherever the module lives (its window and filterbank are buffers), always in
    float32 even under autocast: an STFT in bf16 loses the low-energy bins.
    """

    def __init__(self, sample_rate: int = 16000, n_mels: int = 64) -> None:
        super().__init__()
        n_fft, hop_length = spectrogram_frame_sizes(sample_rate)
        self.mel = MelSpectrogram(sample_rate=sample_rate, n_fft=n_fft, hop_length=hop_length,
                                  n_mels=n_mels, power=2.0)
        self.to_db = AmplitudeToDB(stype="power", top_db=80.0)

    def forward(self, waveform: Tensor) -> Tensor:
        with torch.autocast(device_type=waveform.device.type, enabled=False):
            # [B, 1, n_mels, frames]: a 4-D input makes top_db clip per example
            return self.to_db(self.mel(waveform.float().unsqueeze(1)))


class AudioEncoder(nn.Module):
    """Mono waveform ``[B, T]`` -> one pooled embedding ``[B, out_channels]``.

    Log-mel spectrogram, batch-normalised (dB values are far from unit scale), then a
    1-channel ResNet of the given size and a global pool. The originals (LVS, EZ-VSL,
    FNAC, SLAVC, SSL-TIE) max-pool the audio map, hence the default. ``output_stride`` and
    ``dilated`` as ``create_resnet``'s: LVS's released audio ResNet runs its layer4 at
    stride 1, undilated (16, False), so the pool sees a finer map.
    """

    def __init__(self, size: str = "resnet18", sample_rate: int = 16000,
                 weights: str | None = None, n_mels: int = 64, global_pool: str = "max",
                 output_stride: int = 32, dilated: bool = True) -> None:
        super().__init__()
        self.spectrogram = LogMelSpectrogram(sample_rate, n_mels)
        self.spectrogram_norm = nn.BatchNorm2d(1)
        self.backbone = create_resnet(size, in_chans=1, global_pool=global_pool, weights=weights,
                                      output_stride=output_stride, dilated=dilated)
        self.out_channels: int = self.backbone.num_features

    def forward(self, waveform: Tensor) -> Tensor:
        return self.backbone(self.spectrogram_norm(self.spectrogram(waveform)))


def encoder_pair(encoder_size: str, sample_rate: int, visual_weights: str | None, audio_weights: str | None,
                 output_stride: int, dilated: bool = True,
                 audio_output_stride: int = 32) -> tuple[VisualEncoder, AudioEncoder]:
    """The visual and audio encoders of one size, as every baseline builds them."""
    return (VisualEncoder(encoder_size, visual_weights, output_stride, dilated),
            AudioEncoder(encoder_size, sample_rate, audio_weights, output_stride=audio_output_stride,
                         dilated=dilated))


class AudioVisualEmbedder(nn.Module):
    """Both encoders plus linear projections to a shared, L2-normalised space.

    ``embed_images``: ``[B, dim, h, w]``; ``embed_audio``: ``[B, dim]``; cosine
    similarities are then plain dot products. ``dim=None`` keeps the encoders' width
    (512 for resnet18, as the originals). ``projection=False`` compares the encoders'
    own features, as LVS does (both encoders of one size have the same width).
    ``visual_dropout`` (FNAC and SLAVC use 0.9) drops visual features before the
    projection in training mode. ``dilated``: see ``VisualEncoder`` (and ``AudioEncoder`` below
    its ``audio_output_stride`` 32).
    """

    def __init__(self, encoder_size: str = "resnet18", sample_rate: int = 16000,
                 visual_weights: str | None = None, audio_weights: str | None = None,
                 dim: int | None = None, output_stride: int = 32, projection: bool = True,
                 visual_dropout: float = 0.0, audio_dropout: float = 0.0, dilated: bool = True,
                 audio_output_stride: int = 32) -> None:
        super().__init__()
        self.visual, self.audio = encoder_pair(encoder_size, sample_rate, visual_weights, audio_weights,
                                               output_stride, dilated, audio_output_stride)
        self.dim: int = dim or self.visual.out_channels
        if not projection and self.dim != self.visual.out_channels:
            raise ValueError(f"without a projection the embedding has the encoders' width "
                             f"{self.visual.out_channels}, not dim={self.dim}")
        self.visual_dropout = nn.Dropout(visual_dropout)
        self.audio_dropout = nn.Dropout(audio_dropout)
        self.visual_proj = (nn.Conv2d(self.visual.out_channels, self.dim, kernel_size=1)
                            if projection else nn.Identity())
        self.audio_proj = (nn.Linear(self.audio.out_channels, self.dim)
                           if projection else nn.Identity())

    def embed_images(self, images: Tensor) -> Tensor:
        features = self.visual_proj(self.visual_dropout(self.visual(images)))
        return F.normalize(features, dim=1)

    def embed_audio(self, waveform: Tensor) -> Tensor:
        return F.normalize(self.audio_proj(self.audio_dropout(self.audio(waveform))), dim=1)


def cross_modal_similarities(visual: Tensor, audio: Tensor) -> Tensor:
    """``[B, D, h, w]`` and ``[B, D]`` -> ``s[i, j, h, w] = <v_i(p), a_j>`` (all pairs)."""
    return torch.einsum("idhw,jd->ijhw", visual, audio)


def matched_similarity_map(visual: Tensor, audio: Tensor) -> Tensor:
    """``[B, D, h, w]`` and ``[B, D]`` -> ``<v_i(p), a_i>`` ``[B, h, w]`` (matched pairs only)."""
    return torch.einsum("bdhw,bd->bhw", visual, audio)


def matched_pairs(similarities: Tensor) -> Tensor:
    """The matched-pair maps ``s[i, i]`` ``[B, h, w]`` of all-pairs ``[B, B, h, w]``."""
    return rearrange(torch.diagonal(similarities), "h w b -> b h w")


def soft_min_max_normalise(maps: Tensor, eps: float = 1e-8) -> Tensor:
    """Rescale each ``[h, w]`` map of a ``[B, h, w]`` batch to [0, 1): ``(m - min) / (max - min + eps)``.

    The originals' form, for use inside networks and losses: ``eps`` keeps it finite and
    differentiable on a constant map. The evaluation's exact normalisation (a constant map
    becomes zeros) is ``dmt_wrap.metrics.minmax_normalise``.
    """
    low = maps.amin(dim=(1, 2), keepdim=True)
    high = maps.amax(dim=(1, 2), keepdim=True)
    return (maps - low) / (high - low + eps)
