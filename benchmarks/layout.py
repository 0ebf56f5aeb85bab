"""Where a comparison's files live: the one module that spells the job-folder layout.

A ``run.py --out`` folder holds the comparison's tables (``results.json``, ``results.md``,
``gains.json``) and one folder per job, ``<out>/jobs/<method>/ratio<r>/seed<s>/<variant>``.
A finished job's folder holds ``settings.json`` (how its network and data were built),
``result.json`` (its scores) and ``model.pt`` (the trained model); while it trains, also
``ckpt/`` (its resume checkpoints) and ``job.lock``. Everything that writes, finds or reads
job folders (the runner, ``paired.py``, the diagnostics, the export) goes through here.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

JOBS = "jobs"
RESULTS = "results.json"
SETTINGS = "settings.json"
RESULT = "result.json"
MODEL = "model.pt"
CHECKPOINTS = "ckpt"
#: What a job folder holds once its job has finished.
FINISHED_FILES = (SETTINGS, RESULT, MODEL)
PATTERN = f"{JOBS}/<method>/ratio<r>/seed<s>/<variant>"


@dataclass(frozen=True)
class JobPlace:
    """A job folder's parts: the comparison's ``out`` folder and the job's method, label ratio,
    seed and variant."""

    out: Path
    method: str
    ratio: float
    seed: int
    variant: str

    @property
    def folder(self) -> Path:
        return job_folder(self.out, self.method, self.ratio, self.seed, self.variant)

    def row_keys(self) -> dict[str, str]:
        """The job's parts as the diagnostics' rows name them: the folder names (``ratio0.03``,
        ``seed0``), as every stored diagnostics JSON in ``docs/results/`` has them."""
        return {"method": self.method, "ratio": ratio_name(self.ratio), "seed": seed_name(self.seed),
                "variant": self.variant}


def ratio_name(ratio: float) -> str:
    return f"ratio{ratio:g}"


def seed_name(seed: int) -> str:
    return f"seed{seed}"


def job_folder(out: Path, method: str, ratio: float, seed: int, variant: str) -> Path:
    """``<out>/jobs/<method>/ratio<r>/seed<s>/<variant>``."""
    return Path(out) / JOBS / method / ratio_name(ratio) / seed_name(seed) / variant


def parse_job_folder(folder: Path) -> JobPlace:
    """A job folder's parts; a path that is not ``<out>/jobs/<method>/ratio<r>/seed<s>/<variant>``
    is refused with the expected layout."""
    folder = Path(folder)
    parts = folder.parts
    if len(parts) < 5 or parts[-5] != JOBS or not parts[-3].startswith("ratio") or not parts[-2].startswith("seed"):
        raise ValueError(f"{folder} is not a run.py job folder (<out>/{PATTERN}); "
                         "pass one such folder, e.g. runs/cpu-ezvsl/jobs/ezvsl/ratio0.03/seed0/dmt")
    method, ratio, seed, variant = parts[-4:]
    try:
        return JobPlace(folder.parents[4], method, float(ratio[len("ratio"):]), int(seed[len("seed"):]), variant)
    except ValueError:
        raise ValueError(f"{folder}: {ratio!r} / {seed!r} are not ratio<number> / seed<integer> "
                         f"(expected <out>/{PATTERN})") from None


def results_file(out: Path) -> Path:
    """The comparison's ``results.json`` (preset, command, aggregated rows)."""
    return Path(out) / RESULTS


def missing_files(folder: Path, needs: Iterable[str] = FINISHED_FILES) -> list[str]:
    """Which of ``needs`` a job folder lacks (all of them: the job has not finished)."""
    return [name for name in needs if not (Path(folder) / name).is_file()]


def job_folders(out: Path, needs: Iterable[str] = FINISHED_FILES, methods: Iterable[str] | None = None) -> list[Path]:
    """The job folders under ``out`` (sorted) that hold every file of ``needs``; of ``methods``
    only, when some are named."""
    needs, wanted = tuple(needs), set(methods) if methods else None
    folders = sorted(path for path in (Path(out) / JOBS).glob("*/ratio*/seed*/*") if path.is_dir())
    return [f for f in folders if (wanted is None or f.parts[-4] in wanted) and not missing_files(f, needs)]
