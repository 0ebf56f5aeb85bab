"""The model the comparison trains: ``DualMeanTeacher`` with the benchmark's own controls and
diagnostics, which the library does not carry.

* ``swap_pairs``: network A trains on pair B's seeds (initial weights, calibration probe,
  labeled-data order, augmentation draws) and B on A's, each keeping its position (A steps first
  and draws the step's global random numbers first; A is what ``inference="a"`` and the naive row
  call A). With one network it trains on pair B's seeds. It tells what a network owes to its
  seeds from what it owes to its position (docs/results.md, "network A's lead").
* Silent-object statistics: the composed scenes mark visible objects that do not sound
  (``silent_mask``); each stage-2 step reports the keep rate and pixel precision of the
  pseudo-labels in scenes with and without one, and the share of label pixels on it.
"""
from __future__ import annotations

from typing import Any

from torch import Tensor

from dmt_wrap import DualMeanTeacher
from dmt_wrap.filtering import PseudoLabels

#: The per-batch sums ``silent_object_sums`` returns; ``silent_object_rates`` turns them into rates.
SILENT_SUMS = ("with_silent", "kept_with_silent", "kept_without_silent", "precision_with_silent",
               "precision_without_silent", "label_pixels", "label_pixels_on_silent")
SILENT_RATES = ("keep_rate_with_silent", "keep_rate_without_silent", "pseudo_precision_with_silent",
                "pseudo_precision_without_silent", "pseudo_on_silent")


def silent_object_sums(labels: Tensor, keep: Tensor, truth: Tensor, silent: Tensor) -> dict[str, Tensor]:
    """Where pseudo-labels go wrong, in scenes with and without a silent object.

    ``truth``: the sounding objects' mask; ``silent``: the visible but silent objects' mask.
    Batch means (0-d tensors, no sync) that average correctly over steps and ranks;
    ``silent_object_rates`` divides them into rates.
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


class BenchmarkDMT(DualMeanTeacher):
    """``DualMeanTeacher`` with the swap-pairs control and the silent-object statistics."""

    def __init__(self, *args: Any, swap_pairs: bool = False, **kwargs: Any) -> None:
        self.swap_pairs = swap_pairs  # read by ``seed_index`` while the parent builds the networks
        super().__init__(*args, **kwargs)

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "swap_pairs":  # a plain attribute, set before nn.Module.__init__ runs
            object.__setattr__(self, name, value)
        else:
            super().__setattr__(name, value)

    def seed_index(self, position: int) -> int:
        return 1 - position if self.swap_pairs else position

    def pseudo_label_diagnostics(self, pseudo: PseudoLabels, unlabeled: dict[str, Tensor]) -> dict[str, Tensor]:
        values = super().pseudo_label_diagnostics(pseudo, unlabeled)
        if "mask" in unlabeled and "silent_mask" in unlabeled:
            values.update(silent_object_sums(pseudo.labels, pseudo.keep, unlabeled["mask"], unlabeled["silent_mask"]))
        return values

    def summarise_diagnostics(self, diagnostics: dict[str, float]) -> dict[str, float]:
        if SILENT_SUMS[0] in diagnostics:
            diagnostics = dict(diagnostics)
            diagnostics.update(silent_object_rates({name: diagnostics.pop(name) for name in SILENT_SUMS}))
        return super().summarise_diagnostics(diagnostics)



