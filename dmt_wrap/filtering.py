"""Consensus noise filtering and intersection of pseudo-labels (IPL), as pure functions.

All functions work on batched confidence maps ``[B, H, W]`` in [0, 1], on any device,
without host syncs or loops over samples (the connected-component shapes iterate a
dilation a bounded number of times).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor

from .metrics import minmax_normalise

CombineRule = Literal["intersection", "union", "first"]
LabelShape = Literal["mask", "box", "component", "component_box"]
DeltaMode = Literal["absolute", "relative"]
COMBINE_RULES: tuple[str, ...] = get_args(CombineRule)
LABEL_SHAPES: tuple[str, ...] = get_args(LabelShape)
DELTA_MODES: tuple[str, ...] = get_args(DeltaMode)


@dataclass(frozen=True)
class PseudoLabelConfig:
    """How two teachers' confidence maps become pseudo-labels (``DMTConfig.pseudo_labels``).

    * ``delta``: the confidence a pixel needs (``delta_mode="relative"``: a fraction of the way
      from each map's minimum to its maximum, for networks whose calibrated confidence rarely
      reaches an absolute ``delta``);
    * ``tau``, ``noise_filter``: keep a sample when the consensus IoU of the two masks is >= tau;
    * ``combine``: ``intersection`` (IPL), ``union``, or ``first`` (teacher A's mask);
    * ``shape``: ``mask`` as combined; ``box`` its filled bounding box (for box ground truth);
      ``component`` the connected piece of the mask that holds the teachers' peak (stray
      patches elsewhere dropped); ``component_box`` that piece's box (a box of the whole mask
      stretches across disconnected patches);
    * ``max_area``: a sample whose final label covers more than this share of the image is
      not kept (a label as large as the image says nothing about where the sound is).
    """

    delta: float = 0.5
    tau: float = 0.5
    noise_filter: bool = True
    combine: CombineRule = "intersection"
    shape: LabelShape = "mask"
    delta_mode: DeltaMode = "absolute"
    max_area: float = 1.0

    def __post_init__(self) -> None:
        choices = {"combine": COMBINE_RULES, "shape": LABEL_SHAPES, "delta_mode": DELTA_MODES}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"pseudo-label {name} must be one of {allowed}, got {getattr(self, name)!r}.")
        ranges = {"delta": 0.0 < self.delta < 1.0, "tau": 0.0 <= self.tau <= 1.0, "max_area": 0.0 < self.max_area <= 1.0}
        bad = [name for name, ok in ranges.items() if not ok]
        if bad:
            raise ValueError(f"invalid PseudoLabelConfig value(s) for {bad}: "
                             + ", ".join(f"{name}={getattr(self, name)!r}" for name in bad)
                             + " (delta in (0, 1), tau in [0, 1], max_area in (0, 1]).")


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


def peak_component(masks: Tensor, scores: Tensor) -> Tensor:
    """The 8-connected component of each boolean mask ``[B, H, W]`` holding its highest score.

    A flood fill from the best-scoring masked pixel: repeated 3x3 dilation restricted to the
    mask, until nothing grows (checked every 16 dilations, so the host syncs stay few). Empty
    masks stay empty.
    """
    flat_scores = torch.where(masks, scores, torch.full_like(scores, -torch.inf)).flatten(1)
    seed = torch.zeros_like(masks).flatten(1)
    seed.scatter_(1, flat_scores.argmax(1, keepdim=True), True)
    region = seed.view_as(masks) & masks
    mask_f = masks[:, None].float()
    for _ in range(0, masks.shape[1] * masks.shape[2], 16):
        before = region
        grown = region[:, None].float()
        for _ in range(16):
            grown = F.max_pool2d(grown, 3, stride=1, padding=1) * mask_f
        region = grown[:, 0] > 0
        if torch.equal(region, before):
            break
    return region


def make_pseudo_labels(prob_a: Tensor, prob_b: Tensor | None,
                       config: PseudoLabelConfig | None = None) -> PseudoLabels:
    """Filter and combine two teachers' confidence maps into pseudo-labels (see ``PseudoLabelConfig``).

    One teacher (``prob_b is None``): its own mask, kept when not empty. A sample whose final
    label is empty, or larger than ``max_area``, is never kept.
    """
    cfg = config or PseudoLabelConfig()
    if cfg.delta_mode == "relative":
        prob_a = minmax_normalise(prob_a)
        prob_b = None if prob_b is None else minmax_normalise(prob_b)
    mask_a = prob_a >= cfg.delta
    if prob_b is None:
        labels = mask_a
        keep = mask_a.flatten(1).any(1)
        iou = torch.ones(prob_a.shape[0], device=prob_a.device)
    else:
        mask_b = prob_b >= cfg.delta
        if cfg.noise_filter:
            keep, iou = consensus_filter(prob_a, prob_b, cfg.delta, cfg.tau)
        else:
            iou = consensus_iou(mask_a, mask_b)
            keep = torch.ones_like(iou, dtype=torch.bool)
        labels = {"intersection": mask_a & mask_b, "union": mask_a | mask_b, "first": mask_a}[cfg.combine]
    if cfg.shape in ("component", "component_box"):
        labels = peak_component(labels, prob_a if prob_b is None else prob_a + prob_b)
    if cfg.shape in ("box", "component_box"):
        labels = fill_boxes(labels)
    area = labels.flatten(1).float().mean(1)
    keep = keep & (area > 0) & (area <= cfg.max_area)
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
