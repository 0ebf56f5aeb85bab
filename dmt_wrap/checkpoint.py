"""Atomic checkpoint files, loaded with ``weights_only=True``."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from .atomic import atomic_path

FORMAT = "dmt_wrap/1"
#: What a saved model (``DualMeanTeacher.model_state``) holds; a training checkpoint nests it under "model".
MODEL_KEYS = ("network", "config", "students", "teachers")
#: A run's training checkpoint in its ``checkpoint_dir`` (what ``resume=True`` reads), and the state
#: at the end of its warm-up (what ``fit(warmup_from=)`` reads).
CHECKPOINT_NAME = "last.pt"
WARMUP_CHECKPOINT_NAME = "warmup.pt"
#: The teacher-student pairs' names: in a training checkpoint's stream names ("labeled_A") and in messages.
PAIR_NAMES = ("A", "B")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used here (wrong format, method or preset)."""


def require_keys(state: dict[str, Any], keys: tuple[str, ...], source: str, hint: str = "") -> None:
    """Refuse a checkpoint dict lacking ``keys`` with a ``CheckpointError`` (not a bare KeyError)."""
    missing = [key for key in keys if key not in state]
    if missing:
        raise CheckpointError(f"{source} lacks {missing} (it holds {sorted(state)}){hint}.")


def save_atomic(state: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write a dmt_wrap checkpoint (``state`` plus its format tag) with ``torch_save_atomic``."""
    return torch_save_atomic({"format": FORMAT, **state}, path)


def torch_save_atomic(payload: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to ``path`` so that a crash mid-write never leaves a corrupt file.

    The bytes go to a temporary file in the same folder, are fsync'ed, then renamed over
    ``path`` (atomic on POSIX); the folder is fsync'ed so the rename itself is durable.
    """
    with atomic_path(path, durable=True, suffix=".tmp") as temp, open(temp, "wb") as handle:
        torch.save(payload, handle)
    return Path(path)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint safely (``weights_only=True``) and check its format."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist.")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # pickle errors, truncated files, foreign objects
        raise CheckpointError(f"checkpoint {path} cannot be read safely ({type(exc).__name__}: {exc}); "
                              "it is corrupt or was not written by dmt_wrap.") from exc
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        found = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise CheckpointError(f"checkpoint {path} has format {found!r}, expected {FORMAT!r}.")
    return state
