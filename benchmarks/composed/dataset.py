"""``ComposedScenes``: the composed benchmark as a map-style torch Dataset.

Every item is generated on the fly and deterministically from (seed, split, tier, epoch,
index), so any worker in any process produces the same sample, and a training run can see
fresh scenes every epoch (``set_epoch``) instead of memorising a fixed set.
"""
from __future__ import annotations

import os
import zlib
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from .audio import SPLITS
from .backgrounds import load_backgrounds
from .fallback import FALLBACK_FINGERPRINT, fallback_sources, warn_fallback
from .scene import Scene, compose_scene
from .sources import (DEFAULT_CLASSES, Source, discover_stamps, select_stamp_classes,
                      stamps_dir_from, stamps_fingerprint)
from .tiers import TierConfig, get_tier


def load_class_sources(stamps_dir: str | os.PathLike | None, classes: int | Sequence[str] | None,
                       sample_rate: int) -> tuple[list[Source], bool, str]:
    """The class set, whether it is the procedural fallback, and a fingerprint of its files."""
    directory = stamps_dir_from(stamps_dir)
    stamps = discover_stamps(directory)
    if not stamps:
        warn_fallback(directory)
        count = (len(DEFAULT_CLASSES) if classes is None
                 else classes if isinstance(classes, int) else len(classes))
        return fallback_sources(count, sample_rate), True, FALLBACK_FINGERPRINT
    return (select_stamp_classes(directory, classes, sample_rate), False,
            stamps_fingerprint(stamps))


def pack_scene(scene: Scene, index: int) -> dict[str, Tensor]:
    """A scene's compact tensors (uint8 image, int16 audio, bool masks), as stored."""
    return {"image": torch.from_numpy(scene.image).permute(2, 0, 1).contiguous(),
            "audio": torch.from_numpy(scene.audio),
            "mask": torch.from_numpy(scene.box_mask(sounding=True)),
            "instance_mask": torch.from_numpy(scene.instance_mask()),
            "objectness": torch.from_numpy(scene.objectness()),
            "silent_mask": torch.from_numpy(scene.box_mask(sounding=False)),
            "sounding": torch.tensor(scene.sounding),
            "index": torch.tensor(index, dtype=torch.int64)}


def unpack_item(packed: dict[str, Tensor]) -> dict[str, Tensor | int]:
    """The item a model sees, from compact tensors (the same for generated and stored sets).

    ``image`` float [3, S, S] in [0, 1]; ``audio`` float [T] in [-1, 1]; ``mask`` the
    sounding objects' filled boxes (the ground truth of the field); ``instance_mask`` their
    exact masks; ``objectness`` all visible objects' exact masks; ``silent_mask`` the
    silent objects' filled boxes; all masks float [S, S] of 0 / 1; ``sounding`` bool;
    ``index`` int.
    """
    return {"image": packed["image"].float() / 255,
            "audio": packed["audio"].float() / 32767,
            "mask": _mask_as_float(packed["mask"]),
            "instance_mask": _mask_as_float(packed["instance_mask"]),
            "objectness": _mask_as_float(packed["objectness"]),
            "silent_mask": _mask_as_float(packed["silent_mask"]),
            "sounding": packed["sounding"].clone(),
            "index": int(packed["index"])}


def _mask_as_float(mask: Tensor) -> Tensor:
    """A bool mask as float 0 / 1, through uint8 (about six times faster than bool to float)."""
    return mask.view(torch.uint8).float()


class ComposedScenes(Dataset):
    """Scenes of one tier and split, generated on the fly.

    ``tier`` is a name from ``TIERS`` or a ``TierConfig``; ``classes`` is ``None`` (the 24
    default classes), a count, or stamp names; ``test_fraction`` is the share of each
    recording's active frames held out for the test split. ``stamps_dir`` defaults to
    ``$DMT_WRAP_STAMPS`` or ``/usr/share/tuxpaint/stamps``; without stamps there, the
    procedural fallback is used with a loud warning and ``is_fallback`` is True.
    """

    def __init__(self, tier: str | TierConfig = "flickr", split: str = "train",
                 length: int = 10_000, image_size: int = 64, sample_rate: int = 16_000,
                 duration: float = 3.0, seed: int = 0,
                 classes: int | Sequence[str] | None = None,
                 stamps_dir: str | os.PathLike | None = None,
                 test_fraction: float = 0.3) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")
        if length < 1 or image_size < 8 or sample_rate < 1000 or duration <= 0:
            raise ValueError(f"need length >= 1, image_size >= 8, sample_rate >= 1000 and "
                             f"duration > 0; got length={length}, image_size={image_size}, "
                             f"sample_rate={sample_rate}, duration={duration}.")
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}.")
        self.tier = get_tier(tier)
        self.split, self.length, self.seed = split, length, seed
        self.image_size, self.sample_rate, self.duration = image_size, sample_rate, duration
        self.test_fraction = test_fraction
        self.num_samples = int(round(duration * sample_rate))
        self.sources, self.is_fallback, self.source_fingerprint = load_class_sources(
            stamps_dir, classes, sample_rate)
        self.classes = [source.name for source in self.sources]
        load_backgrounds()  # now, so that forked DataLoader workers inherit them
        if len(self.sources) < self.tier.classes_needed:
            raise ValueError(f"tier {self.tier.name!r} needs at least "
                             f"{self.tier.classes_needed} classes per scene; only "
                             f"{len(self.sources)} were given (classes={classes}).")
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Draw a fresh set of scenes for ``epoch`` (call before creating the iterator)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def _rng(self, index: int) -> np.random.Generator:
        tier_key = zlib.crc32(self.tier.name.encode())
        return np.random.default_rng([self.seed, SPLITS.index(self.split), tier_key,
                                      self.epoch, index])

    def scene(self, index: int) -> Scene:
        """The scene behind item ``index`` (with boxes and audio windows, for inspection)."""
        if not 0 <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} scenes.")
        return compose_scene(self._rng(index), self.tier, self.sources, self.image_size,
                             self.num_samples, self.split, self.test_fraction)

    def packed(self, index: int) -> dict[str, Tensor]:
        return pack_scene(self.scene(index), index)

    def __getitem__(self, index: int) -> dict[str, Tensor | int]:
        return unpack_item(self.packed(index))
