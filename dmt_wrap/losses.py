"""Supervised map losses on calibrated logits."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .metrics import upsample_maps

MAP_LOSSES = ("bce", "bce_dice")


def per_sample_map_loss(logits: Tensor, target: Tensor, kind: str = "bce") -> Tensor:
    """Loss of each sample ``[B]``: BCE on logits upsampled to the target, optionally + Dice."""
    if kind not in MAP_LOSSES:
        raise ValueError(f"map_loss must be one of {MAP_LOSSES}, got {kind!r}.")
    logits = upsample_maps(logits, target.shape[-2:])  # as float32
    target = target.float()
    loss = F.binary_cross_entropy_with_logits(logits, target, reduction="none").mean(dim=(1, 2))
    if kind == "bce_dice":
        prob = torch.sigmoid(logits)
        intersection = (prob * target).sum(dim=(1, 2))
        dice = 1 - (2 * intersection + 1) / (prob.sum(dim=(1, 2)) + target.sum(dim=(1, 2)) + 1)
        loss = loss + dice
    return loss


def map_loss(logits: Tensor, target: Tensor, kind: str = "bce") -> Tensor:
    """Mean loss over samples."""
    return per_sample_map_loss(logits, target, kind).mean()


def mismatched_audio_loss(logits: Tensor, target: Tensor) -> Tensor:
    """Mean BCE towards 0 of maps computed with another clip's audio, over the pixels each
    sample's own target lights: what sounds with its own audio must not light up with another's.

    ``logits``: the maps of the images under mismatched audio; ``target``: the images' own
    (ground-truth or pseudo-) labels. Samples with an empty target do not count.
    """
    logits = upsample_maps(logits, target.shape[-2:])
    region = target.float()
    bce = F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits), reduction="none")
    area = region.sum(dim=(1, 2))
    per_sample = (bce * region).sum(dim=(1, 2)) / area.clamp_min(1)
    counted = (area > 0).float()
    return (per_sample * counted).sum() / counted.sum().clamp_min(1)
