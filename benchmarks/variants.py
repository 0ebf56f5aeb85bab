"""The variants a comparison trains, as ablations of one trainer plus a choice of labels."""
from __future__ import annotations

from dataclasses import dataclass

from dmt_wrap import DMTConfig, ablation


@dataclass(frozen=True)
class Variant:
    """``labels``: "ratio" (the label ratio), "none" (self-supervised) or "all" (ceiling)."""

    name: str
    title: str
    ablation: str
    labels: str

    def config(self, base: DMTConfig) -> DMTConfig:
        cfg = ablation(self.ablation, base)
        if self.labels == "none":  # the same number of updates, all self-supervised
            cfg = cfg.replace(steps=base.total_steps(uses_labels=True))
        if self.labels == "all":  # the ceiling sees as many samples per update as DMT's students
            cfg = cfg.replace(labeled_batch_size=base.labeled_batch_size + base.batch_size)
        return cfg


NAIVE = Variant("naive", "naive semi-supervised", "naive", "ratio")

#: ``naive`` is not among the defaults: the naive ensemble's network A is the naive network,
#: bit for bit, and gives its row (``report.with_single_network_rows``).
DEFAULT_VARIANTS = (
    Variant("self_supervised", "self-supervised (0 labels)", "self_supervised", "none"),
    Variant("naive_ensemble", "naive ensemble (DMT's two networks, no teachers)", "naive_ensemble", "ratio"),
    Variant("single_teacher", "single mean teacher", "single_teacher", "ratio"),
    Variant("dmt", "DMT (dual teachers, filter, IPL)", "dmt", "ratio"),
    Variant("fully_supervised", "fully supervised (100% labels)", "fully_supervised", "all"),
)

ABLATION_VARIANTS = (
    Variant("no_filter", "DMT without noise filter", "no_filter", "ratio"),
    Variant("no_ipl_union", "DMT, union instead of IPL", "no_ipl_union", "ratio"),
    Variant("no_ipl_first", "DMT, one teacher's mask instead of IPL", "no_ipl_first", "ratio"),
)

VARIANTS = {v.name: v for v in (NAIVE, *DEFAULT_VARIANTS, *ABLATION_VARIANTS)}
