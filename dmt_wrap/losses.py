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
