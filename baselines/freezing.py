"""Keeping a baseline's pretrained encoders fixed, as several originals did.

Attention10k froze its ImageNet VGG16 and used fixed SoundNet features; SSPL optimises only
its VGGish's last layer, its predictive-coding module and its SimSiam head, never its
ImageNet VGG16. A frozen encoder here keeps its weights (no gradients) and its BatchNorm
statistics (always in eval mode, whatever ``train()`` is called with).
"""
from __future__ import annotations

from torch import nn


class FreezableEncoders(nn.Module):
    """Base for a network with ``visual_encoder`` and ``audio_encoder`` that may freeze them."""

    frozen_encoders: tuple[str, ...] = ()

    def freeze_encoders(self, visual: bool, audio: bool) -> None:
        """Freeze the chosen encoders; call once both exist (usually from ``__init__``)."""
        self.frozen_encoders = tuple(name for name, frozen in (("visual_encoder", visual),
                                                                ("audio_encoder", audio))
                                     if frozen)
        for name in self.frozen_encoders:
            getattr(self, name).requires_grad_(False).eval()

    def train(self, mode: bool = True) -> "FreezableEncoders":
        super().train(mode)
        for name in self.frozen_encoders:
            getattr(self, name).eval()
        return self
