"""The AVSL evaluation protocols (cIoU, AUC, extended AP / max-F1) and small-object metrics.

Everything is batched on tensors and gives the same per-image numbers at any batch size.
A map is scored in three steps, each of which the published evaluators do differently, so
each is a field of a named :class:`EvalProtocol` (``PROTOCOLS``):

* upsampling to the ground truth's size: bilinear with half-pixel centres (``cv2.resize``'s
  ``INTER_LINEAR``, i.e. ``align_corners=False``: LVS, SSL-TIE, SSPL), bilinear with
  ``align_corners=True`` (EZ-VSL, FNAC) or bicubic with ``align_corners=True`` (SLAVC);
* per-image min-max normalisation (every evaluator but SLAVC's, which scores fixed-range
  absolute scores);
* binarisation, with ``v`` the element at position ``n // 2`` of the ascending sorted ``n``
  pixels: ``map >= v`` (EZ-VSL, FNAC: without ties the top half; pixels tied with ``v`` are
  all kept, so a constant map keeps every pixel), ``map > v`` plus the maximum (LVS, SSL-TIE:
  one pixel fewer than the top half without ties), or a fixed threshold (SSPL: 0.5 on the
  min-max map; SLAVC: 0.5 on its absolute scores).

Then ``cIoU = sum(B * G) / (sum(G) + sum(B * [G == 0]))``, 0 for an empty ``G``; CIoU@0.5
is the fraction of images with ``cIoU >= 0.5``; AUC is the trapezoid area of the success
rate at thresholds ``0.05 * i``, ``i = 0..20`` (all evaluators alike).

The benchmark's tables use ``DEFAULT_PROTOCOL`` (``"benchmark"``): LVS's upsampling with
EZ-VSL's ``>=`` binarisation, the project's evaluator since its first table, so that every
stored number stays comparable; it differs from ``"lvs"`` only in the pixels equal to ``v``.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor

AUC_THRESHOLDS = np.array([0.05 * i for i in range(21)])  # as the originals: 0.05 * i

Binarisation = Literal["median_ge", "median_gt", "fixed"]


@dataclass(frozen=True)
class EvalProtocol:
    """How one evaluator turns a map into a binary prediction and a sounding confidence.

    ``upsample``/``align_corners``: ``F.interpolate``'s mode and flag to the ground truth's
    size. ``normalise``: min-max per image before binarising (``False``: the map must
    already be a score in [0, 1], e.g. ``SLAVC.absolute_scores`` or a calibrated
    probability). ``binarise``/``threshold``: see the module docstring (``threshold`` only
    for ``"fixed"``). ``confidence_upsampled``: the sounding confidence (extended protocol)
    is the mean of the top quarter of the *upsampled* map's pixels, as SLAVC's ``test.py``
    computes it, rather than of the native map's.
    """

    name: str
    upsample: Literal["bilinear", "bicubic"]
    align_corners: bool
    binarise: Binarisation
    threshold: float = 0.5
    normalise: bool = True
    confidence_upsampled: bool = False
    source: str = ""


PROTOCOLS: dict[str, EvalProtocol] = {p.name: p for p in (
    EvalProtocol("benchmark", "bilinear", False, "median_ge",
                 source="this project's tables: LVS's upsampling, EZ-VSL's binarisation"),
    EvalProtocol("lvs", "bilinear", False, "median_gt",
                 source="hche11/Localizing-Visual-Sounds-the-Hard-Way test.py"),
    EvalProtocol("ssltie", "bilinear", False, "median_gt",
                 source="jinxiang-liu/SSL-TIE main.py (LVS's evaluator)"),
    EvalProtocol("ezvsl", "bilinear", True, "median_ge", source="stoneMo/EZ-VSL test.py"),
    EvalProtocol("fnac", "bilinear", True, "median_ge",
                 source="OpenNLPLab/FNAC_AVL test.py validate() (its validate2 also tries bicubic)"),
    EvalProtocol("slavc", "bicubic", True, "fixed", threshold=0.5, normalise=False,
                 confidence_upsampled=True,
                 source="stoneMo/SLAVC test.py without --relative_prediction"),
    EvalProtocol("sspl", "bilinear", False, "fixed", threshold=0.5,
                 source="zjsong/SSPL test.py eval_cal_ciou(thres=0.5)"),
)}

DEFAULT_PROTOCOL = "benchmark"


def get_protocol(protocol: str | EvalProtocol | None = None) -> EvalProtocol:
    """The protocol named ``protocol`` (``None``: ``DEFAULT_PROTOCOL``), or ``protocol`` itself."""
    if isinstance(protocol, EvalProtocol):
        return protocol
    name = DEFAULT_PROTOCOL if protocol is None else protocol
    if name not in PROTOCOLS:
        raise ValueError(f"unknown evaluation protocol {name!r}; choose one of {sorted(PROTOCOLS)}")
    return PROTOCOLS[name]


def _check_pair(maps: Tensor, gt: Tensor) -> None:
    if maps.dim() != 3 or gt.dim() != 3 or maps.shape[0] != gt.shape[0]:
        raise ValueError(f"maps must be [B, h, w] and gt [B, H, W] with the same B; got "
                         f"maps {tuple(maps.shape)} and gt {tuple(gt.shape)}.")


def upsample_maps(maps: Tensor, size: Sequence[int], mode: str = "bilinear",
                  align_corners: bool = False) -> Tensor:
    """Resize ``[B, h, w]`` maps; the default is bilinear with half-pixel centres (``cv2.resize``)."""
    maps = maps.float()
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    return F.interpolate(maps[:, None], size=tuple(size), mode=mode,
                         align_corners=align_corners)[:, 0]


def protocol_upsample(maps: Tensor, size: Sequence[int], protocol: str | EvalProtocol | None = None) -> Tensor:
    """``maps`` upsampled to ``size`` as ``protocol``'s evaluator does."""
    protocol = get_protocol(protocol)
    return upsample_maps(maps, size, protocol.upsample, protocol.align_corners)


def minmax_normalise(maps: Tensor) -> Tensor:
    """Per-image min-max normalisation to [0, 1]; a constant map becomes all zeros."""
    flat = rearrange(maps, "b h w -> b (h w)")
    low = flat.amin(dim=1)[:, None, None]
    span = flat.amax(dim=1)[:, None, None] - low
    return torch.where(span > 0, (maps - low) / span.clamp_min(torch.finfo(maps.dtype).tiny),
                       torch.zeros_like(maps))


def _sorted_median(maps: Tensor) -> Tensor:
    """The pixel at index ``n // 2`` of each map's ascending sorted pixels, ``[B, 1, 1]``."""
    flat = rearrange(maps, "b h w -> b (h w)")
    return flat.kthvalue(flat.shape[1] // 2 + 1, dim=1).values[:, None, None]


def binarise_at_median(maps: Tensor) -> Tensor:
    """``maps >= v`` with ``v`` the sorted pixel at index ``n // 2`` (see module docstring)."""
    return maps >= _sorted_median(maps)


def binarise(maps: Tensor, protocol: str | EvalProtocol | None = None) -> Tensor:
    """The binary prediction of upsampled ``maps`` under ``protocol`` (normalising first if it does).

    ``median_gt`` is LVS's ``pred[pred > v] = 1; pred[pred < 1] = 0``: pixels above ``v``,
    plus those already at the normalised maximum 1. A constant map normalises to zeros and
    keeps no pixel there (LVS's own code keeps all or none of it by the constant's sign).
    """
    protocol = get_protocol(protocol)
    scores = minmax_normalise(maps) if protocol.normalise else maps
    if protocol.binarise == "median_ge":
        return binarise_at_median(scores)
    if protocol.binarise == "median_gt":
        return (scores > _sorted_median(scores)) | (scores >= 1.0)
    return scores >= protocol.threshold


def _ratio(numerator: Tensor, denominator: Tensor) -> Tensor:
    """``numerator / denominator`` in float64 (the originals' numpy precision), 0 where 0/0."""
    if numerator.device.type == "mps":  # no float64 there
        numerator, denominator = numerator.cpu(), denominator.cpu()
    numerator, denominator = numerator.double(), denominator.double()
    return torch.where(denominator > 0, numerator / denominator.clamp_min(1e-300),
                       torch.zeros_like(numerator))


def ciou_per_image(maps: Tensor, gt: Tensor, protocol: str | EvalProtocol | None = None) -> Tensor:
    """Consensus IoU of each map with its ground truth ``G`` (values 0 / 0.5 / 1). ``[B]``, float64."""
    _check_pair(maps, gt)
    binary = binarise(protocol_upsample(maps, gt.shape[-2:], protocol), protocol).float()
    gt = gt.float()
    hit = (binary * gt).sum(dim=(1, 2))
    denominator = gt.sum(dim=(1, 2)) + (binary * (gt == 0)).sum(dim=(1, 2))
    return _ratio(hit, denominator)  # an empty G has hit 0, so scores 0


def _as_numpy(values: Tensor | Sequence[float]) -> np.ndarray:
    array = values.detach().cpu().double().numpy() if isinstance(values, Tensor) \
        else np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"expected a non-empty 1-D list of per-image cIoU values; got shape "
                         f"{array.shape}.")
    return array


def ciou_at(ciou: Tensor | Sequence[float], threshold: float = 0.5) -> float:
    """Fraction of images whose cIoU is at least ``threshold`` (CIoU@0.5 when 0.5)."""
    return float((_as_numpy(ciou) >= threshold).mean())


def ciou_auc(ciou: Tensor | Sequence[float]) -> float:
    """Trapezoid area under the success rate at thresholds 0, 0.05, ..., 1 (x in [0, 1])."""
    values = _as_numpy(ciou)
    success = (values[None, :] >= AUC_THRESHOLDS[:, None]).mean(axis=1)
    return float((np.diff(AUC_THRESHOLDS) * (success[1:] + success[:-1]) / 2).sum())


def pointing_game(maps: Tensor, gt: Tensor, protocol: str | EvalProtocol | None = None) -> Tensor:
    """Whether the upsampled map's maximum lies inside ``G > 0`` (first maximum on ties). ``[B]`` bool."""
    _check_pair(maps, gt)
    flat = rearrange(protocol_upsample(maps, gt.shape[-2:], protocol), "b h w -> b (h w)")
    peak = flat.argmax(dim=1, keepdim=True)
    return rearrange(gt, "b h w -> b (h w)").gather(1, peak)[:, 0] > 0


def _descending_order(scores: Tensor) -> Tensor:
    """Indices sorting each row by decreasing score; ties keep the lower index first."""
    return torch.sort(scores, dim=1, descending=True, stable=True).indices


def area_iou(maps: Tensor, gt: Tensor, protocol: str | EvalProtocol | None = None) -> Tensor:
    """IoU of ``G > 0`` with the map's top-k pixels, ``k = |G > 0|``. ``[B]``, float64.

    Ties at the k-th score are broken by raster order (top-left first), so exactly ``k``
    pixels are predicted. An empty ``G`` scores 0.
    """
    _check_pair(maps, gt)
    scores = rearrange(protocol_upsample(maps, gt.shape[-2:], protocol), "b h w -> b (h w)")
    target = rearrange(gt, "b h w -> b (h w)") > 0
    area = target.sum(dim=1, keepdim=True)
    order = _descending_order(scores)
    rank = torch.empty_like(order).scatter_(
        1, order, torch.arange(order.shape[1], device=order.device).expand_as(order))
    predicted = rank < area
    return _ratio((predicted & target).sum(dim=1), (predicted | target).sum(dim=1))


def _precision_at_tie_group_ends(sorted_scores: Tensor, sorted_hits: Tensor) -> Tensor:
    """Precision at each position's tie group end, for rows sorted by decreasing score.

    A threshold can only separate distinct scores, so every member of a group of equal
    scores gets the precision reached once the whole group is included.
    """
    count = sorted_scores.shape[1]
    positions = torch.arange(count, device=sorted_scores.device).expand_as(sorted_scores)
    is_end = torch.ones_like(sorted_hits, dtype=torch.bool)
    is_end[:, :-1] = sorted_scores[:, :-1] != sorted_scores[:, 1:]
    end_index = torch.where(is_end, positions, torch.full_like(positions, count))
    end_index = end_index.flip(1).cummin(dim=1).values.flip(1)
    precision = sorted_hits.double().cumsum(dim=1) / (positions + 1).double()
    return precision.gather(1, end_index)


def pixel_ap(maps: Tensor, gt: Tensor, protocol: str | EvalProtocol | None = None) -> Tensor:
    """Per-image average precision of the map's pixel scores against ``G > 0``. ``[B]``, float64.

    AP = sum over positives of the precision at their score (non-interpolated, the
    definition of ``sklearn.metrics.average_precision_score``); tied scores form one
    threshold, so the result does not depend on pixel order. An empty ``G`` scores 0.
    """
    _check_pair(maps, gt)
    scores = rearrange(protocol_upsample(maps, gt.shape[-2:], protocol), "b h w -> b (h w)")
    target = rearrange(gt, "b h w -> b (h w)") > 0
    order = _descending_order(scores)
    sorted_hits = target.gather(1, order)
    precision = _precision_at_tie_group_ends(scores.gather(1, order), sorted_hits)
    return _ratio((precision * sorted_hits).sum(dim=1), target.sum(dim=1))


def map_confidence(maps: Tensor, size: Sequence[int] | None = None,
                   protocol: str | EvalProtocol | None = None) -> Tensor:
    """Sounding confidence: the mean of the top 25% of a map's values. ``[B]``.

    Over the native map, unless ``protocol`` has ``confidence_upsampled`` (SLAVC's
    ``test.py``: over the map upsampled to the ground truth's ``size``, 224x224 there, with
    the protocol's interpolation).
    """
    protocol = get_protocol(protocol)
    if protocol.confidence_upsampled:
        if size is None:
            raise ValueError(f"protocol {protocol.name!r} takes the confidence over the upsampled map: "
                             "give the ground truth's size.")
        maps = protocol_upsample(maps, size, protocol)
    flat = rearrange(maps.float(), "b h w -> b (h w)")
    top = max(1, flat.shape[1] // 4)
    return flat.topk(top, dim=1).values.mean(dim=1)


def extended_ap_f1(confidence: Tensor, ciou: Tensor, sounding: Tensor,
                   iou_threshold: float = 0.5) -> tuple[float, float]:
    """AP and max-F1 of the SLAVC extended protocol over sounding and non-sounding pairs.

    A pair detected at confidence threshold ``t`` (``confidence >= t``) is a true positive
    when it is sounding and its cIoU is at least ``iou_threshold``, a false positive
    otherwise. Thresholds are the distinct confidences; recall is over all sounding pairs.
    AP is the area under the interpolated precision envelope (``max`` precision at any
    higher recall), as SLAVC's evaluator defines it; max-F1 is the best F1 over thresholds.
    SLAVC's ``utils.EvaluatorFull`` differs in three details: it visits at most ~200
    thresholds (every ``n // 200``-th sorted confidence), its max-F1 is read off ten
    (decile) thresholds, and its recall counts a sounding pair detected in the wrong place
    as neither hit nor miss (``TP / (TP + FN)``, FN the undetected sounding pairs).
    """
    confidence, ciou = confidence.detach().double().flatten(), ciou.detach().double().flatten()
    sounding = sounding.detach().bool().flatten()
    if not confidence.numel() == ciou.numel() == sounding.numel():
        raise ValueError(f"confidence ({confidence.numel()}), ciou ({ciou.numel()}) and "
                         f"sounding ({sounding.numel()}) must have one value per pair.")
    positives = int(sounding.sum())
    if positives == 0:
        raise ValueError("extended_ap_f1 needs at least one sounding pair: recall is "
                         "undefined without them.")
    true_positive = sounding & (ciou.to(confidence.device) >= iou_threshold)
    order = _descending_order(confidence[None])
    sorted_confidence = confidence[None].gather(1, order)
    sorted_hits = true_positive[None].gather(1, order)
    is_end = torch.ones_like(sorted_hits)
    is_end[:, :-1] = sorted_confidence[:, :-1] != sorted_confidence[:, 1:]
    tp = sorted_hits.double().cumsum(dim=1)[is_end]
    detected = torch.arange(1, confidence.numel() + 1, dtype=torch.float64,
                            device=confidence.device)[is_end[0]]
    precision, recall = tp / detected, tp / positives
    envelope = precision.flip(0).cummax(dim=0).values.flip(0)
    recall_step = torch.diff(recall, prepend=recall.new_zeros(1))
    ap = float((recall_step * envelope).sum())
    f1 = torch.where(precision + recall > 0,
                     2 * precision * recall / (precision + recall).clamp_min(1e-300),
                     torch.zeros_like(precision))
    return ap, float(f1.max())


class MetricAccumulator:
    """Collects per-image metrics batch by batch and summarises them, under one ``protocol``.

    ``compute()`` gives ``ciou50``, ``auc``, ``pointing``, ``area_iou`` and ``pixel_ap``
    over the sounding pairs (all pairs unless ``sounding`` is given), plus ``ext_ap`` and
    ``ext_f1`` over all pairs when confidences were given. All values are fractions in
    [0, 1] (multiply by 100 for the tables of the field).
    """

    PER_IMAGE_KEYS = ("ciou", "pointing", "area_iou", "pixel_ap", "confidence", "sounding")

    def __init__(self, protocol: str | EvalProtocol | None = None) -> None:
        self.protocol = get_protocol(protocol)
        self._parts: dict[str, list[np.ndarray]] = {key: [] for key in self.PER_IMAGE_KEYS}

    def __len__(self) -> int:
        return sum(part.size for part in self._parts["ciou"])

    def update(self, maps: Tensor, gt: Tensor, confidence: Tensor | None = None,
               sounding: Tensor | None = None) -> None:
        with torch.no_grad():
            _check_pair(maps, gt)
            has_confidence = bool(self._parts["confidence"])
            if len(self) > 0 and has_confidence != (confidence is not None):
                raise ValueError("give confidence on every update() or on none: the extended "
                                 "AP/F1 need one per pair.")
            batch = maps.shape[0]
            if sounding is None:
                sounding = torch.ones(batch, dtype=torch.bool)
            protocol = self.protocol
            values = {"ciou": ciou_per_image(maps, gt, protocol), "pointing": pointing_game(maps, gt, protocol),
                      "area_iou": area_iou(maps, gt, protocol), "pixel_ap": pixel_ap(maps, gt, protocol),
                      "sounding": sounding.bool()}
            if confidence is not None:
                values["confidence"] = confidence
            for key, value in values.items():
                array = value.detach().cpu().numpy().reshape(-1)
                if array.size != batch:
                    raise ValueError(f"{key} has {array.size} values for a batch of {batch}.")
                self._parts[key].append(array)

    def per_image(self) -> dict[str, np.ndarray]:
        """Per-pair arrays in update order (``confidence`` only when it was given)."""
        return {key: np.concatenate(parts) for key, parts in self._parts.items() if parts}

    def compute(self) -> dict[str, float]:
        if len(self) == 0:
            raise ValueError("MetricAccumulator.compute() called before any update().")
        arrays = self.per_image()
        sounding = arrays["sounding"]
        if not sounding.any():
            raise ValueError("no sounding pair was given: the localisation metrics are "
                             "computed over sounding pairs only.")
        summary = {"ciou50": ciou_at(arrays["ciou"][sounding]),
                   "auc": ciou_auc(arrays["ciou"][sounding]),
                   "pointing": float(arrays["pointing"][sounding].mean()),
                   "area_iou": float(arrays["area_iou"][sounding].mean()),
                   "pixel_ap": float(arrays["pixel_ap"][sounding].mean())}
        if "confidence" in arrays:
            summary["ext_ap"], summary["ext_f1"] = extended_ap_f1(
                torch.from_numpy(arrays["confidence"]), torch.from_numpy(arrays["ciou"]),
                torch.from_numpy(sounding))
        return summary
