"""``dmt-wrap export``: a saved model (``DualMeanTeacher.save``, a training checkpoint, or a folder
holding one as ``model.pt``) to a portable folder (``DualMeanTeacher.save_pretrained``).

A model built with ``dmt_wrap.registry.build`` and trained with ``fit`` records its network's
registered name, constructor arguments and input (image size, sample rate, duration), so it exports
as it is; for older files, or to override, they are given.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from . import registry
from .checkpoint import CheckpointError, load_checkpoint
from .wrapper import DualMeanTeacher

SAVED_MODEL_NAME = "model.pt"


def saved_model_file(source: str | os.PathLike) -> Path:
    """``source`` itself, or the ``model.pt`` inside a folder."""
    source = Path(source)
    if source.is_dir():
        if not (source / SAVED_MODEL_NAME).is_file():
            raise CheckpointError(f"{source} holds no {SAVED_MODEL_NAME}: pass a file DualMeanTeacher.save wrote, or "
                                  "the folder of a finished benchmarks/run.py job.")
        return source / SAVED_MODEL_NAME
    return source


def export_saved(source: str | os.PathLike, out: str | os.PathLike, *, data: dict[str, Any] | None = None,
                 network: str | None = None, network_kwargs: dict[str, Any] | None = None,
                 metrics: dict[str, Any] | None = None, device: str | None = "cpu",
                 overwrite: bool = False) -> Path:
    """Export a saved model. ``network`` / ``network_kwargs`` default to what the file records (or,
    for an older file, the one registered name whose class it records); ``data`` entries given
    override the recorded input."""
    model_file = saved_model_file(source)
    state = load_checkpoint(model_file)
    state = state.get("model", state)
    recorded = state.get("registration") or {}
    if network is None:
        network = recorded.get("name") or _name_for_class(model_file, state.get("network"))
    kwargs = network_kwargs if network_kwargs is not None else recorded.get("kwargs", {})
    model = DualMeanTeacher.load(model_file, lambda: registry.build(network, **kwargs), device=device)
    given = {k: v for k, v in (data or {}).items() if v is not None}  # over what the model records
    return Path(model.save_pretrained(out, network=network, network_kwargs=kwargs, data=given, metrics=metrics,
                                      overwrite=overwrite))


def _name_for_class(model_file: Path, class_name: str | None) -> str:
    registry.load_plugins()
    matches = [name for name in registry.available() if registry.resolve(name).__name__ == class_name]
    if len(matches) != 1:
        raise CheckpointError(f"{model_file} holds network {class_name!r}, which matches registered names "
                              f"{matches or 'none'}; pass --network NAME (registered: {registry.available()}).")
    return matches[0]
