"""Contract networks registered by name (``dmt_wrap.registry``), for the export, localize and CLI tests."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from dmt_wrap.registry import register
from tests.toy import ToyNet


@register("toy_clip")
class ClipToyNet(ToyNet):
    """ToyNet for clips of any length: the waveform's envelope is pooled to 32 values first."""

    def forward(self, images: Tensor, audio: Tensor) -> tuple[Tensor, Tensor | None]:
        return super().forward(images, F.adaptive_avg_pool1d(audio.abs().unsqueeze(1), 32).squeeze(1))


@register("brightness")
class BrightnessNet(nn.Module):
    """An oracle without weights: the map is the image's brightness (a probability), whatever the audio."""

    outputs_probabilities = True

    def forward(self, images: Tensor, audio: Tensor) -> Tensor:
        return F.avg_pool2d(images.mean(dim=1, keepdim=True), 2)[:, 0].clamp(0, 1)
