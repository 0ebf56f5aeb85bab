"""The benchmark's tiers: how many objects, how large, how many heard, how noisy.

* ``flickr`` (default): Flickr-SoundNet-like. One sounding object whose box covers 30-60%
  of the image (so the legacy median-threshold CIoU is meaningful) and, in 85% of the
  scenes, a silent object of another class and similar size in the opposite corner, so
  only the audio says which of the two to mark.
* ``clutter``: 3-5 smaller objects (boxes 6-15% of the image), one sounding, with an
  off-screen distractor sound in a third of the scenes.
* ``small``: one small sounding object (box 3-10%) among 1-3 others. The median
  threshold cannot score such objects: report pointing game and area-thresholded IoU.
* ``multi``: two sounding objects (boxes 15-30% each, so their union stays in the
  legacy metric's range) in opposite corners, plus a silent one in 85% of the scenes.
* ``negatives``: the flickr layout where half the scenes are negatives: the heard class
  is absent from the image (``sounding`` False, empty mask), for the extended protocol's
  AP and max-F1.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

LAYOUTS = ("corners", "scatter")


@dataclass(frozen=True)
class TierConfig:
    """Every knob of a tier. Areas are box areas as fractions of the image.

    ``max_overlap`` bounds the intersection of two objects' boxes as a fraction of the
    smaller box (so every object stays mostly visible). ``corners`` puts objects in
    distinct image corners (the first two in opposite corners), ``scatter`` anywhere.
    ``n_silent`` is the inclusive range of silent objects, present in a fraction
    ``silent_rate`` of the scenes. A negative scene keeps the layout but hears
    ``n_sounding`` classes that are not in the image.
    """

    name: str
    n_sounding: int = 1
    n_silent: tuple[int, int] = (1, 1)
    silent_rate: float = 1.0
    sounding_area: tuple[float, float] = (0.30, 0.60)
    silent_area: tuple[float, float] = (0.30, 0.60)
    layout: str = "corners"
    max_overlap: float = 0.1
    corner_jitter: float = 0.04
    snr_db: tuple[float, float] = (15.0, 30.0)
    distractor_prob: float = 0.0
    distractor_db: tuple[float, float] = (-15.0, -6.0)
    negative_rate: float = 0.0
    speed_range: tuple[float, float] = (0.9, 1.1)

    def __post_init__(self) -> None:
        def bad(field: str, why: str) -> ValueError:
            return ValueError(f"tier {self.name!r}: {field}={getattr(self, field)!r} {why}.")

        if not self.name or not self.name.replace("_", "").replace("-", "").isalnum():
            raise bad("name", "must be letters, digits, '_' or '-' (it names cache files)")
        if self.layout not in LAYOUTS:
            raise bad("layout", f"must be one of {LAYOUTS}")
        if self.n_sounding < 1:
            raise bad("n_sounding", "must be at least 1 (use negative_rate for negatives)")
        if not 0 <= self.n_silent[0] <= self.n_silent[1]:
            raise bad("n_silent", "must be an inclusive range (low, high) with 0 <= low <= high")
        if self.layout == "corners" and self.max_objects > 4:
            raise bad("n_silent", "with n_sounding puts more than 4 objects in 4 corners")
        for field in ("sounding_area", "silent_area"):
            low, high = getattr(self, field)
            if not 0 < low <= high <= 1:
                raise bad(field, "must be a range 0 < low <= high <= 1 of image fractions")
        for field in ("silent_rate", "distractor_prob", "negative_rate"):
            if not 0 <= getattr(self, field) <= 1:
                raise bad(field, "must be a probability in [0, 1]")
        if not 0 <= self.max_overlap <= 0.5:
            raise bad("max_overlap", "must be in [0, 0.5] so that every object stays visible")
        if not 0 < self.speed_range[0] <= self.speed_range[1]:
            raise bad("speed_range", "must be a range 0 < low <= high")

    @property
    def max_objects(self) -> int:
        return self.n_sounding + self.n_silent[1]

    @property
    def classes_needed(self) -> int:
        """Distinct classes one scene can use: objects, absent heard ones, distractor."""
        absent_heard = self.n_sounding if self.negative_rate > 0 else 0
        return self.max_objects + absent_heard + (1 if self.distractor_prob > 0 else 0)


TIERS: dict[str, TierConfig] = {
    "flickr": TierConfig("flickr", silent_rate=0.85, max_overlap=0.15),
    "clutter": TierConfig("clutter", n_silent=(2, 4), sounding_area=(0.06, 0.15),
                          silent_area=(0.06, 0.15), layout="scatter", max_overlap=0.2,
                          snr_db=(10.0, 25.0), distractor_prob=0.3),
    "small": TierConfig("small", n_silent=(1, 3), sounding_area=(0.03, 0.10),
                        silent_area=(0.03, 0.15), layout="scatter", max_overlap=0.2,
                        snr_db=(10.0, 25.0), distractor_prob=0.2),
    "multi": TierConfig("multi", n_sounding=2, silent_rate=0.85,
                        sounding_area=(0.15, 0.30), silent_area=(0.15, 0.30)),
    "negatives": TierConfig("negatives", silent_rate=0.85, max_overlap=0.15, negative_rate=0.5),
}


def get_tier(tier: str | TierConfig, **overrides: object) -> TierConfig:
    """A tier by name (or a given config), with any knob overridden by keyword."""
    if isinstance(tier, TierConfig):
        config = tier
    elif tier in TIERS:
        config = TIERS[tier]
    else:
        raise ValueError(f"unknown tier {tier!r}; choose one of {sorted(TIERS)} or pass a "
                         "TierConfig.")
    return replace(config, **overrides) if overrides else config
