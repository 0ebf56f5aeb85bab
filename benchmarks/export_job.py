"""A finished ``run.py`` job -> a portable model folder (``model.safetensors``, ``config.json``,
``SHA256SUMS``) that ``DualMeanTeacher.from_pretrained`` and ``dmt-wrap localize`` load.

    python -m benchmarks.export_job runs/cpu-ezvsl/jobs/ezvsl/ratio0.03/seed0/dmt exported/ezvsl

The job folder says everything the export records: how its network was built and on what
input (``settings.json``), its method, variant and test scores (``result.json``), the trained
model (``model.pt``) and, through the comparison's ``results.json``, the preset it ran with.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import dmt_wrap_baselines as baselines  # noqa: F401  (fills the registry)
from dmt_wrap_baselines.registry import build
from dmt_wrap_benchmarks.layout import (FINISHED_FILES, MODEL, PATTERN, RESULT, SETTINGS, missing_files, parse_job_folder,
                               results_file)
from dmt_wrap import DualMeanTeacher
from dmt_wrap.checkpoint import CheckpointError
from dmt_wrap.pretrained import write_pretrained


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path} cannot be read ({exc}); the job did not finish: re-run it.") from exc


def job_preset(job_folder: Path) -> str | None:
    """The preset named in the comparison's ``results.json``; None for a job folder moved out of
    its ``--out`` folder, or one whose comparison wrote no table yet."""
    try:
        results = results_file(parse_job_folder(job_folder.resolve()).out)
    except ValueError:
        return None
    if not results.is_file():
        return None
    try:
        return json.loads(results.read_text()).get("preset")
    except (OSError, json.JSONDecodeError):
        return None


def export_job(job_folder: str | os.PathLike, out: str | os.PathLike, device: str | None = "cpu",
               overwrite: bool = False) -> Path:
    """Export a finished job's model with its network, input settings, preset and scores;
    ``overwrite`` replaces an earlier export at ``out`` (see ``write_pretrained``)."""
    folder = Path(job_folder)
    missing = missing_files(folder, FINISHED_FILES)
    if missing:
        raise CheckpointError(f"{folder} lacks {missing}: pass a finished run.py job folder "
                              f"(runs/<name>/{PATTERN}) or a saved model file with --network.")
    settings, result = _read_json(folder / SETTINGS), _read_json(folder / RESULT)
    method, kwargs = result["method"], settings["network"]
    model = DualMeanTeacher.load(folder / MODEL, lambda: build(method, **kwargs), device=device)
    data = dict(settings["data"])
    test_set = (f"composed benchmark tier {data['tier']}, {data['test_size']} stored test scenes"
                if "tier" in data else "the run's test set")
    metrics = {"scores": result["scores"], "test_set": test_set, "variant": result["variant"],
               "label_ratio": result["ratio"], "seed": result["seed"]}
    return write_pretrained(model, out, network=method, network_kwargs=kwargs, data=data,
                            preset=job_preset(folder), metrics=metrics, overwrite=overwrite)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("job", type=Path, help=f"a finished job folder, <out>/{PATTERN}")
    p.add_argument("out", type=Path, help="the folder to write (refused if it exists, unless --overwrite)")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier export at OUT")
    p.add_argument("--device", default="cpu", help="where the model is loaded to be exported (default cpu)")
    args = p.parse_args(argv)
    try:
        folder = export_job(args.job, args.out, device=args.device, overwrite=args.overwrite)
    except (CheckpointError, FileExistsError) as error:
        p.exit(1, f"{p.prog}: error: {error}\n")
    print(f"wrote {folder} (model.safetensors, config.json, SHA256SUMS)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
