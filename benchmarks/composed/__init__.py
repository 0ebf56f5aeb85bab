"""The composed benchmark: real object photos and their real recordings, composed into
scenes on the fly (Debian's ``tuxpaint-stamps-default``; a procedural fallback without it).

    from dmt_wrap_benchmarks.composed import ComposedScenes, load_eval_set, reference_maps
    train = ComposedScenes("flickr", "train", length=100_000)   # generated on the fly
    test = load_eval_set("flickr", n=1000)                      # fixed, stored once
"""
from .dataset import ComposedScenes
from .evalset import ComposedEvalSet, load_eval_set
from .references import reference_maps
from .sources import DEFAULT_CLASSES
from .tiers import TIERS, TierConfig, get_tier

__all__ = ["ComposedScenes", "ComposedEvalSet", "DEFAULT_CLASSES", "TIERS", "TierConfig",
           "get_tier", "load_eval_set", "reference_maps"]
