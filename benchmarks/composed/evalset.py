"""The fixed evaluation set of a tier: generated once, stored, and reloaded, so that every
method is scored on the same samples.

The set is items ``0 .. n-1`` of the test split (the same items ``ComposedScenes(...,
split="test")`` gives). It is stored as one ``.pt`` file of tensors (uint8 images, int16
audio, bool masks) under ``cache_dir`` (default ``$DMT_WRAP_CACHE/composed`` or
``~/.cache/dmt_wrap/composed``), named by a hash of the generation config, the class set,
a fingerprint of the stamp files and ``GENERATOR_VERSION``: changing any of them makes a
new file, so a stale set is never reused.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset

from dmt_wrap.checkpoint import torch_save_atomic

from .dataset import ComposedScenes, unpack_item
from .tiers import TierConfig

logger = logging.getLogger(__name__)

CACHE_ENV = "DMT_WRAP_CACHE"
GENERATOR_VERSION = 1  # bump whenever a code change alters the generated samples


def default_cache_dir() -> Path:
    """``$DMT_WRAP_CACHE/composed`` when the variable is set, else ``~/.cache/dmt_wrap/composed``."""
    root = os.environ.get(CACHE_ENV)
    return Path(root) / "composed" if root else Path.home() / ".cache" / "dmt_wrap" / "composed"


class ComposedEvalSet(Dataset):
    """A stored evaluation set; items are the same dicts as ``ComposedScenes`` gives."""

    def __init__(self, tensors: dict[str, Tensor], tier: TierConfig, config: dict,
                 path: Path) -> None:
        self.tensors, self.tier, self.config, self.path = tensors, tier, config, path
        self.image_size: int = config["image_size"]
        self.sample_rate: int = config["sample_rate"]
        self.duration: float = config["duration"]
        self.is_fallback: bool = config["is_fallback"]
        self.classes: list[str] = list(config["classes"])

    def __len__(self) -> int:
        return self.tensors["index"].shape[0]

    def __getitem__(self, index: int) -> dict[str, Tensor | int]:
        return unpack_item({key: value[index] for key, value in self.tensors.items()})


def _generate(scenes: ComposedScenes) -> dict[str, Tensor]:
    first = scenes.packed(0)
    tensors = {key: torch.empty((len(scenes), *value.shape), dtype=value.dtype)
               for key, value in first.items()}
    for index in range(len(scenes)):
        for key, value in (first if index == 0 else scenes.packed(index)).items():
            tensors[key][index] = value
    return tensors


def _read(path: Path, key: str) -> dict | None:
    """The stored payload if ``path`` holds a readable set with this ``key``, else None."""
    if not path.is_file():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a truncated or foreign file is regenerated, not fatal
        logger.warning("composed eval set %s is unreadable (%s); regenerating it.", path, error)
        return None
    if not isinstance(payload, dict) or payload.get("key") != key:
        logger.warning("composed eval set %s does not match its config; regenerating it.", path)
        return None
    return payload


def load_eval_set(tier: str | TierConfig = "flickr", n: int = 1000, image_size: int = 64,
                  sample_rate: int = 16_000, duration: float = 3.0, seed: int = 0,
                  cache_dir: str | os.PathLike | None = None,
                  classes: int | Sequence[str] | None = None,
                  stamps_dir: str | os.PathLike | None = None,
                  test_fraction: float = 0.3) -> ComposedEvalSet:
    """The stored evaluation set of ``tier`` (test items ``0 .. n-1``), made on first use.

    Arguments are those of ``ComposedScenes``; ``cache_dir`` overrides the folder.
    """
    scenes = ComposedScenes(tier, "test", n, image_size, sample_rate, duration, seed,
                            classes, stamps_dir, test_fraction)
    config = {"generator_version": GENERATOR_VERSION, "tier": dataclasses.asdict(scenes.tier),
              "n": n, "image_size": image_size, "sample_rate": sample_rate,
              "duration": duration, "seed": seed, "test_fraction": test_fraction,
              "classes": scenes.classes, "is_fallback": scenes.is_fallback,
              "sources": scenes.source_fingerprint}
    key = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()
    directory = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = directory / f"{scenes.tier.name}-n{n}-{image_size}px-{key[:16]}.pt"
    payload = _read(path, key)
    if payload is None:
        logger.info("generating the composed %s eval set (%d scenes) into %s",
                    scenes.tier.name, n, path)
        payload = {"key": key, "tensors": _generate(scenes)}
        torch_save_atomic(payload, path)
    return ComposedEvalSet(payload["tensors"], scenes.tier, config, path)
