"""Consensus noise filtering and intersection of pseudo-labels (IPL), as pure functions.

All functions work on batched confidence maps ``[B, H, W]`` in [0, 1], on any device,
without host syncs or loops over samples.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .metrics import minmax_normalise

COMBINE_RULES = ("intersection", "union", "first")
LABEL_SHAPES = ("mask", "box")
DELTA_MODES = ("absolute", "relative")


@dataclass
class PseudoLabels:
    """Pseudo-labels for one unlabeled batch, with the diagnostics behind them."""

    keep: Tensor            # [B] bool: sample passed the filter and has a non-empty label
    labels: Tensor          # [B, H, W] float in {0, 1}; all zero where keep is False
    consensus_iou: Tensor   # [B] float: |M_A & M_B| / |M_A | M_B| (1 for one teacher)


def consensus_iou(mask_a: Tensor, mask_b: Tensor) -> Tensor:
    """IoU of two boolean masks per sample; 0 where the union is empty."""
    inter = (mask_a & mask_b).flatten(1).sum(1)
    union = (mask_a | mask_b).flatten(1).sum(1)
    return torch.where(union > 0, inter / union.clamp_min(1), torch.zeros_like(inter, dtype=torch.float))


def consensus_filter(prob_a: Tensor, prob_b: Tensor, delta: float, tau: float) -> tuple[Tensor, Tensor]:
    """Keep sample i iff IoU(P_A >= delta, P_B >= delta) >= tau and the union is not empty.

    Returns ``(keep [B] bool, iou [B])``.
    """
    mask_a, mask_b = prob_a >= delta, prob_b >= delta
    iou = consensus_iou(mask_a, mask_b)
    union_nonempty = (mask_a | mask_b).flatten(1).any(1)
    return (iou >= tau) & union_nonempty, iou


def fill_boxes(masks: Tensor) -> Tensor:
    """The filled bounding box of each boolean mask ``[B, H, W]`` (empty stays empty)."""
    rows, cols = masks.any(2), masks.any(1)
    row_idx = torch.arange(masks.shape[1], device=masks.device)
    col_idx = torch.arange(masks.shape[2], device=masks.device)
    big = max(masks.shape[1], masks.shape[2])
    top = torch.where(rows, row_idx, big).amin(1)
    bottom = torch.where(rows, row_idx, -1).amax(1)
    left = torch.where(cols, col_idx, big).amin(1)
    right = torch.where(cols, col_idx, -1).amax(1)
    in_rows = (row_idx[None] >= top[:, None]) & (row_idx[None] <= bottom[:, None])
    in_cols = (col_idx[None] >= left[:, None]) & (col_idx[None] <= right[:, None])
    return in_rows[:, :, None] & in_cols[:, None, :]


def make_pseudo_labels(
    prob_a: Tensor,
    prob_b: Tensor | None,
    delta: float = 0.5,
    tau: float = 0.5,
    noise_filter: bool = True,
    combine: str = "intersection",
    shape: str = "mask",
    delta_mode: str = "absolute",
) -> PseudoLabels:
    """Filter and combine two teachers' confidence maps into pseudo-labels.

    * two teachers, ``noise_filter``: keep consensus IoU >= tau (DESIGN.md section 2);
    * ``combine``: ``intersection`` (IPL), ``union``, or ``first`` (teacher A's mask);
    * one teacher (``prob_b is None``): its own mask, kept when not empty;
    * ``shape="box"`` replaces each label by the filled box of its mask, for data whose
      ground truth is boxes;
    * ``delta_mode="relative"`` thresholds each map after rescaling it to span [0, 1]
      (``delta`` is then a fraction of the way from the map's minimum to its maximum), for
      networks whose calibrated confidence rarely reaches an absolute ``delta``;
    * a sample whose final label is empty is never kept.
    """
    if combine not in COMBINE_RULES:
        raise ValueError(f"combine must be one of {COMBINE_RULES}, got {combine!r}.")
    if shape not in LABEL_SHAPES:
        raise ValueError(f"pseudo-label shape must be one of {LABEL_SHAPES}, got {shape!r}.")
    if delta_mode not in DELTA_MODES:
        raise ValueError(f"delta_mode must be one of {DELTA_MODES}, got {delta_mode!r}.")
    if delta_mode == "relative":
        prob_a = minmax_normalise(prob_a)
        prob_b = None if prob_b is None else minmax_normalise(prob_b)
    mask_a = prob_a >= delta
    if prob_b is None:
        labels = mask_a
        keep = mask_a.flatten(1).any(1)
        iou = torch.ones(prob_a.shape[0], device=prob_a.device)
    else:
        mask_b = prob_b >= delta
        if noise_filter:
            keep, iou = consensus_filter(prob_a, prob_b, delta, tau)
        else:
            iou = consensus_iou(mask_a, mask_b)
            keep = torch.ones_like(iou, dtype=torch.bool)
        labels = {"intersection": mask_a & mask_b, "union": mask_a | mask_b, "first": mask_a}[combine]
    if shape == "box":
        labels = fill_boxes(labels)
    keep = keep & labels.flatten(1).any(1)
    labels = labels & keep[:, None, None]
    return PseudoLabels(keep=keep, labels=labels.float(), consensus_iou=iou)


def label_quality(labels: Tensor, keep: Tensor, truth: Tensor) -> tuple[Tensor, Tensor]:
    """Mean IoU and pixel precision of kept pseudo-labels against ground truth (G > 0).

    Returned as 0-d tensors (no sync); NaN-free: 0 when nothing is kept.
    """
    pred, gt = labels > 0, truth > 0
    inter = (pred & gt).flatten(1).sum(1).float()
    union = (pred | gt).flatten(1).sum(1).float()
    iou = inter / union.clamp_min(1)
    precision = inter / pred.flatten(1).sum(1).float().clamp_min(1)
    weight = keep.float()
    count = weight.sum().clamp_min(1)
    return (iou * weight).sum() / count, (precision * weight).sum() / count
