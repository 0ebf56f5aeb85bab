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
        if not 0.0 < self.max_area <= 1.0:
            raise ValueError(f"pseudo-label max_area must lie in (0, 1], got {self.max_area!r}.")


@dataclass
class PseudoLabels:
    """Pseudo-labels for one unlabeled batch, with the diagnostics behind them."""

    keep: Tensor            # [B] bool: sample passed the filter and has a non-empty label
    labels: Tensor          # [B, H, W] float in {0, 1}; all zero where keep is False
    consensus_iou: Tensor   # [B] float: |M_A & M_B| / |M_A | M_B| (1 for one teacher)


def contrast_with_other_audio(matched: Tensor, mismatched: Tensor) -> Tensor:
    """``matched * (1 - mismatched)``: the confidence that a pixel sounds with its own clip's
    audio and does not light up with another clip's.

    A network that is partly an objectness detector lights every visible object whatever the
    audio, the silent ones included; with ``mismatched`` the map of the same image under an
    unrelated clip's audio, what it lights regardless of the audio is removed and what the
    clip's own audio lights stays. Both maps are confidences in [0, 1]; so is the result.
    """
    return matched * (1.0 - mismatched)


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


#: The per-batch sums ``silent_object_sums`` returns; ``silent_object_rates`` turns them into rates.
SILENT_SUMS = ("with_silent", "kept_with_silent", "kept_without_silent", "precision_with_silent",
               "precision_without_silent", "label_pixels", "label_pixels_on_silent")


def silent_object_sums(labels: Tensor, keep: Tensor, truth: Tensor, silent: Tensor) -> dict[str, Tensor]:
    """Where pseudo-labels go wrong, in scenes with and without a silent object.

    ``truth``: the sounding objects' mask; ``silent``: the visible but silent objects' mask
    (both ``[B, H, W]``, > 0 inside). Returns batch means (0-d tensors, no sync) that average
    correctly over steps and ranks; ``silent_object_rates`` divides them into rates.
    """
    pred, gt = labels > 0, truth > 0
    on_silent = silent > 0
    has_silent = on_silent.flatten(1).any(1).float()
    kept = keep.float()
    precision = (pred & gt).flatten(1).sum(1).float() / pred.flatten(1).sum(1).float().clamp_min(1)
    pixels = pred.flatten(1).sum(1).float()
    values = (has_silent, kept * has_silent, kept * (1 - has_silent), precision * kept * has_silent,
              precision * kept * (1 - has_silent), pixels, (pred & on_silent & ~gt).flatten(1).sum(1).float())
    return {name: value.mean() for name, value in zip(SILENT_SUMS, values)}


SILENT_RATES = ("keep_rate_with_silent", "keep_rate_without_silent", "pseudo_precision_with_silent",
                "pseudo_precision_without_silent", "pseudo_on_silent")


def silent_object_rates(sums: dict[str, float]) -> dict[str, float]:
    """Keep rate and pixel precision of pseudo-labels in scenes with / without a silent object,
    and the share of label pixels on a silent object (0 where a rate has no sample)."""
    def ratio(numerator: float, denominator: float) -> float:
        return numerator / denominator if denominator > 0 else 0.0

    rates = (ratio(sums["kept_with_silent"], sums["with_silent"]),
             ratio(sums["kept_without_silent"], 1.0 - sums["with_silent"]),
             ratio(sums["precision_with_silent"], sums["kept_with_silent"]),
             ratio(sums["precision_without_silent"], sums["kept_without_silent"]),
             ratio(sums["label_pixels_on_silent"], sums["label_pixels"]))
    return dict(zip(SILENT_RATES, rates))
