"""One comparison job: train one variant of one method at one label ratio and seed, score it.

Each finished job writes ``result.json`` in its own folder; an interrupted job resumes
from its training checkpoint (``ckpt/last.pt``). Re-running a comparison with the same
``--out`` therefore skips what is done and continues what was cut. Several processes may
share one ``--out``: a job is trained under an exclusive lock on its folder (a second
process asking for the same job waits, then reuses the result), and every file is written
atomically.
"""
from __future__ import annotations

import functools
import hashlib
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Subset

from dmt_wrap_baselines.registry import build
from dmt_wrap import DMTConfig, DualMeanTeacher
from dmt_wrap.atomic import atomic_path, write_text_atomic
from dmt_wrap.callbacks import Callback
from dmt_wrap.checkpoint import WARMUP_CHECKPOINT_NAME
from dmt_wrap.evaluation import evaluate_model
from dmt_wrap.machine import machine_record

from dmt_wrap_benchmarks.benchmark_model import SILENT_RATES, BenchmarkDMT
from dmt_wrap_benchmarks.data import ComparisonData
from dmt_wrap_benchmarks.files import job_lock
from dmt_wrap_benchmarks.layout import CHECKPOINTS, MODEL, RESULT, SETTINGS, job_folder
from dmt_wrap_benchmarks.presets import Preset
from dmt_wrap_benchmarks.variants import Variant

#: Two-network variants are also scored with one network alone (``inference="a"``): for DMT
#: teacher A, which starts from the same weights and data order as the naive network; for
#: the naive ensemble its network A, which trains exactly as the naive variant does.
SINGLE_NETWORK = "a"


@dataclass(frozen=True)
class Job:
    method: str
    variant: Variant
    ratio: float
    seed: int

    def folder(self, out: Path) -> Path:
        return job_folder(out, self.method, self.ratio, self.seed, self.variant.name)


def backbone_factory(method: str, preset: Preset):
    def factory() -> torch.nn.Module:
        return build(method, **preset.network_kwargs(method))
    return factory


def training_sets(data: ComparisonData, variant: Variant):
    """(labeled, unlabeled) for a variant: the ratio's labels, none, or all of them."""
    if variant.labels == "none":
        return None, data.unlabeled
    if variant.labels == "all":
        return data.all_labeled, None
    return data.labeled, data.unlabeled


def run_job(job: Job, preset: Preset, data: ComparisonData, out: Path, device: str | None,
            progress: bool = True, warmup_cache: Path | None = None, swap_pairs: bool = False) -> dict[str, Any]:
    """Train and score one job, or reuse its stored result; safe to call from several processes.

    ``warmup_cache``: a folder of end-of-warm-up checkpoints shared by jobs (and ``--out``
    folders) whose warm-ups are identical; see ``WarmupCache``. ``swap_pairs``: the
    seed-vs-position control (``benchmarks.benchmark_model.BenchmarkDMT``).
    """
    folder = job.folder(out)
    with job_lock(folder):
        return _run_locked(job, preset, data, folder, device, progress, warmup_cache, swap_pairs)


@functools.cache
def training_code_fingerprint() -> str:
    """A hash of the source that decides what training computes (``dmt_wrap``, ``baselines``,
    the composed benchmark): any edit there, however small, may change the numbers."""
    import dmt_wrap_baselines as baselines
    import dmt_wrap
    from dmt_wrap_benchmarks import composed

    digest = hashlib.sha256()
    for package in (dmt_wrap, baselines, composed):
        root = Path(package.__file__).parent
        for source in sorted(root.rglob("*.py")):
            digest.update(source.relative_to(root).as_posix().encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()


class WarmupCache(Callback):
    """End-of-warm-up checkpoints shared between jobs that differ only in stage-2 settings.

    A job's warm-up is keyed by everything it depends on: the method and its constructor
    arguments, the data (settings, description, label ratio, which labels), the seed, the
    config's stage-1 settings and the training code itself (``training_code_fingerprint``: a
    warm-up cached by other code is never reused). A job whose key is cached starts stage 2 from it
    (``fit(warmup_from=)``, bit-identical to training through); a job that trains its own
    warm-up publishes it as soon as stage 1 ends, so a stage-2 sweep pays for one warm-up
    per method and seed. Files are written atomically: processes may share the cache.
    """

    def __init__(self, folder: Path, job: Job, config: DMTConfig, settings: dict[str, Any], data_description: str,
                 checkpoint_dir: Path) -> None:
        key = {"method": job.method, "ratio": job.ratio, "labels": job.variant.labels, "seed": job.seed,
               "network": settings["network"], "data": settings["data"], "description": data_description,
               "train": config.stage1_settings(), "code": training_code_fingerprint(),
               **({"swap_pairs": True} if settings.get("swap_pairs") else {})}
        digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:20]
        self.path = folder / job.method / f"{digest}.pt"
        self.source = checkpoint_dir / WARMUP_CHECKPOINT_NAME

    def available(self) -> Path | None:
        return self.path if self.path.exists() else None

    def on_epoch_end(self, trainer, row: dict[str, Any]) -> None:
        if trainer.world.is_main and self.source.exists() and not self.path.exists():
            with atomic_path(self.path) as temp:
                shutil.copyfile(self.source, temp)


def _run_locked(job: Job, preset: Preset, data: ComparisonData, folder: Path, device: str | None,
                progress: bool, warmup_cache: Path | None = None, swap_pairs: bool = False) -> dict[str, Any]:
    result_file = folder / RESULT
    config = job.variant.config(preset.train_config(job.method, job.variant).replace(seed=job.seed))
    settings = {"train": config.to_dict(), "network": preset.network_kwargs(job.method),
                "data": {k: getattr(preset, k) for k in ("tier", "image_size", "sample_rate", "duration",
                                                          "train_size", "unlabeled_size", "test_size")}}
    if swap_pairs:
        settings["swap_pairs"] = True
    check_same_settings(folder, settings)
    if result_file.exists():
        return json.loads(result_file.read_text())
    write_text_atomic(folder / SETTINGS, json.dumps(settings, indent=1))
    model = BenchmarkDMT(backbone_factory(job.method, preset), config, device=device, swap_pairs=swap_pairs)
    curve_set = Subset(data.test, range(min(preset.curve_size, len(data.test))))
    batch = config.batch_size

    def curve_point(m: DualMeanTeacher) -> dict[str, float]:
        scores = evaluate_model(m.localize, curve_set, batch_size=batch, device=m.device, progress=False)
        return {"test_ciou50": scores["ciou50"], "test_pointing": scores["pointing"]}

    labeled, unlabeled = training_sets(data, job.variant)
    callbacks, warmup_from = [], None
    if warmup_cache is not None and config.warmup_steps > 0 and job.variant.labels != "none":
        cache = WarmupCache(warmup_cache, job, config, settings, data.description, folder / CHECKPOINTS)
        callbacks.append(cache)
        warmup_from = cache.available()
    start = time.perf_counter()
    history = model.fit(labeled, unlabeled, checkpoint_dir=folder / CHECKPOINTS, resume=True, progress=progress,
                        eval_fn=curve_point, callbacks=callbacks, warmup_from=warmup_from)
    train_seconds = sum(row["seconds"] for row in history)
    scores = evaluate_model(model.localize, data.test, batch_size=batch, device=model.device, progress=False)
    network_scores = {}
    if len(model.inference_networks()) > 1:
        def one_network(images, audio):
            return model.localize(images, audio, inference=SINGLE_NETWORK)
        network_scores[SINGLE_NETWORK] = evaluate_model(one_network, data.test, batch_size=batch,
                                                        device=model.device, progress=False)
    stage2 = [row for row in history if row["stage"] == "unbiased" and "keep_rate" in row]
    result = {
        "method": job.method, "variant": job.variant.name, "ratio": job.ratio, "seed": job.seed,
        "scores": scores, "network_scores": network_scores, "train_seconds": round(train_seconds, 1),
        "wall_seconds_this_run": round(time.perf_counter() - start, 1),
        "warmup_from": str(warmup_from) if warmup_from is not None else None,
        "updates_per_network": config.total_steps(uses_labels=job.variant.labels != "none"),
        "keep_rate": _mean(stage2, "keep_rate"), "pseudo_precision": _mean(stage2, "pseudo_precision"),
        "pseudo_iou": _mean(stage2, "pseudo_iou"),
        **{name: _mean(stage2, name) for name in SILENT_RATES},
        "machine": machine_record(torch.get_num_threads(), model.device),
        "history": history, "config": config.to_dict(),
    }
    model.save(folder / MODEL)
    write_text_atomic(result_file, json.dumps(result, indent=1))
    return result


def check_same_settings(folder: Path, settings: dict[str, Any]) -> None:
    """Refuse to resume or reuse a job folder trained with other settings (e.g. other --steps);
    settings its training never reads (``DMTConfig.training_settings``) may differ."""
    stored = folder / SETTINGS
    if not stored.exists():
        return
    before, now = _comparable(json.loads(stored.read_text())), _comparable(settings)
    changed = [f"{part}.{key}" for part in now for key in sorted(set(now[part]) | set(before.get(part, {})))
               if now[part].get(key) != before.get(part, {}).get(key)]
    if changed:
        raise SystemExit(f"{folder} holds a job trained with other settings (differs in {changed}); "
                         "use another --out for the new settings, or delete that folder to retrain it.")


def _comparable(settings: dict[str, Any]) -> dict[str, Any]:
    """Settings as stored, with ``train`` as ``training_settings``: a DMTConfig field added since
    a job ran counts at its legacy value, and one its training never reads is left out."""
    if "train" in settings:
        settings = {**settings, "train": DMTConfig.from_dict(settings["train"]).training_settings()}
    return json.loads(json.dumps(settings))  # tuples as lists on both sides


def _mean(rows: list[dict[str, Any]], key: str) -> float | None:
    values = [row[key] for row in rows if key in row]
    return sum(values) / len(values) if values else None


def reference_scores(data: ComparisonData, batch_size: int = 100) -> dict[str, dict[str, float]]:
    """Audio-free maps for scale: centre prior, objectness, ground-truth oracle."""
    from dmt_wrap_benchmarks.composed import reference_maps
    from dmt_wrap.metrics import MetricAccumulator

    loader = torch.utils.data.DataLoader(data.test, batch_size=batch_size)
    accumulators: dict[str, MetricAccumulator] = {}
    for batch in loader:
        for name, maps in reference_maps(batch).items():
            accumulators.setdefault(name, MetricAccumulator()).update(maps, batch["mask"])
    return {name: acc.compute() for name, acc in accumulators.items()}
