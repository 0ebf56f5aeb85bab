"""What every diagnostic needs: the finished jobs of a ``run.py --out`` folder, each model
rebuilt from its ``settings.json`` with its test scenes, and the maps of one network of a model."""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

import dmt_wrap_baselines as baselines  # noqa: F401  (fills the registry)
from dmt_wrap_baselines.registry import build
from dmt_wrap_benchmarks.benchmark_model import BenchmarkDMT
from dmt_wrap_benchmarks.composed import load_eval_set
from dmt_wrap_benchmarks.layout import MODEL, SETTINGS, job_folders, parse_job_folder
from dmt_wrap import DualMeanTeacher

Localize = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def finished_jobs(out: Path, methods: Iterable[str] | None = None) -> Iterator[tuple[dict[str, str], DualMeanTeacher,
                                                                                      Dataset]]:
    """``(where, model, test scenes)`` for every finished job of a ``run.py`` output folder (of
    ``methods`` only, when some are named): ``where`` names the job (``JobPlace.row_keys``), the model
    is rebuilt from its ``settings.json`` on the CPU, and each distinct test set is loaded once."""
    tests: dict[tuple, Dataset] = {}
    for folder in job_folders(out, needs=(SETTINGS, MODEL), methods=methods):
        place = parse_job_folder(folder)
        settings: dict[str, Any] = json.loads((folder / SETTINGS).read_text())
        data = settings["data"]
        key = tuple(sorted(data.items()))
        if key not in tests:
            tests[key] = load_eval_set(data["tier"], n=data["test_size"], image_size=data["image_size"],
                                       sample_rate=data["sample_rate"], duration=data["duration"])
        model = BenchmarkDMT.load(folder / MODEL, lambda: build(place.method, **settings["network"]), device="cpu")
        model.swap_pairs = bool(settings.get("swap_pairs"))
        yield place.row_keys(), model, tests[key]


def batches(test: Dataset, batch_size: int = 100) -> Iterator[tuple[torch.Tensor, ...]]:
    """``(images, audio, sounding mask, objectness)`` of the test scenes, in order."""
    for batch in DataLoader(test, batch_size=batch_size):
        yield batch["image"], batch["audio"], batch["mask"], batch["objectness"]


def localize_as(model: DualMeanTeacher, inference: str) -> Localize:
    """``model.localize`` with one network or group (``"a"``, ``"b"``, ``"students"``)."""
    def localize(images: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        return model.localize(images, audio, inference=inference)
    return localize


def no_jobs_error(outs: Iterable[Path], what: str = "finished job") -> SystemExit:
    """The refusal when the folders hold no job a diagnostic can read, naming them and the fix."""
    return SystemExit(f"{[str(o) for o in outs]}: no {what} (jobs/<method>/ratio<r>/seed<s>/<variant>/{MODEL} "
                      f"with {SETTINGS}); run benchmarks/run.py --out there first")
