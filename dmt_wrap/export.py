"""``dmt-wrap export``: a trained model (a ``benchmarks/run.py`` job folder or a saved model) to a portable folder.

A job folder holds ``settings.json`` (network arguments, DMTConfig, data), ``result.json``
(method, scores) and ``model.pt``; a saved model is the file ``DualMeanTeacher.save`` wrote,
for which the network's registered name, arguments and input settings are given.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from . import registry
from .checkpoint import CheckpointError, load_checkpoint
from .pretrained import write_pretrained
from .wrapper import DualMeanTeacher

JOB_FILES = ("settings.json", "result.json", "model.pt")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} cannot be read ({exc}); the job did not finish: re-run it.") from exc


def _job_preset(job_folder: Path) -> str | None:
    """The preset named in the comparison's ``results.json`` (``<out>/jobs/m/ratio/seed/variant``), if any."""
    parents = job_folder.resolve().parents
    results = parents[4] / "results.json" if len(parents) > 4 else None
    if results is None or not results.is_file():
        return None
    try:
        return json.loads(results.read_text()).get("preset")
    except (OSError, json.JSONDecodeError):
        return None


def export_job(job_folder: str | os.PathLike, out: str | os.PathLike, device: str | None = "cpu",
               overwrite: bool = False) -> Path:
    """Export a finished ``benchmarks/run.py`` job (its ``model.pt``, settings and scores)."""
    job_folder = Path(job_folder)
    missing = [name for name in JOB_FILES if not (job_folder / name).is_file()]
    if missing:
        raise CheckpointError(f"{job_folder} lacks {missing}: pass a finished run.py job folder "
                              "(runs/<name>/jobs/<method>/ratio<r>/seed<s>/<variant>) or a saved model file "
                              "with --network.")
    settings = _read_json(job_folder / "settings.json")
    result = _read_json(job_folder / "result.json")
    method, kwargs = result["method"], settings["network"]
    model = DualMeanTeacher.load(job_folder / "model.pt", lambda: registry.build(method, **kwargs), device=device)
    data = dict(settings["data"])
    test_set = (f"composed benchmark tier {data['tier']}, {data['test_size']} stored test scenes"
                if "tier" in data else "the run's test set")
    metrics = {"scores": result["scores"], "test_set": test_set, "variant": result["variant"],
               "label_ratio": result["ratio"], "seed": result["seed"]}
    return write_pretrained(model, out, network=method, network_kwargs=kwargs, data=data,
                            preset=_job_preset(job_folder), metrics=metrics, overwrite=overwrite)


def export_saved(model_file: str | os.PathLike, out: str | os.PathLike, *, data: dict[str, Any],
                 network: str | None = None, network_kwargs: dict[str, Any] | None = None,
                 metrics: dict[str, Any] | None = None, device: str | None = "cpu",
                 overwrite: bool = False) -> Path:
    """Export a model written by ``DualMeanTeacher.save`` (or a training checkpoint).

    ``network`` defaults to the registered name whose class the file records.
    """
    state = load_checkpoint(model_file)
    recorded = state.get("model", state).get("network")
    if network is None:
        registry.load_plugins()
        matches = [name for name in registry.available() if registry.resolve(name).__name__ == recorded]
        if len(matches) != 1:
            raise CheckpointError(f"{model_file} holds network {recorded!r}, which matches registered names "
                                  f"{matches or 'none'}; pass --network NAME (registered: {registry.available()}).")
        network = matches[0]
    kwargs = network_kwargs or {}
    model = DualMeanTeacher.load(model_file, lambda: registry.build(network, **kwargs), device=device)
    return write_pretrained(model, out, network=network, network_kwargs=kwargs, data=data, metrics=metrics,
                            overwrite=overwrite)
