"""benchmarks/layout.py (the job-folder layout) and benchmarks/export_job.py (a job folder -> a portable model)."""
import json
from pathlib import Path

import pytest
import torch

from dmt_wrap_benchmarks import export_job, layout
from dmt_wrap_benchmarks.comparison import Job
from dmt_wrap_benchmarks.variants import VARIANTS
from dmt_wrap import DMTConfig, DualMeanTeacher
from dmt_wrap.checkpoint import CheckpointError
from tests.registered_nets import ClipToyNet
from tests.toy import SquaresDataset, TOY_LABELS

FAST = DMTConfig(warmup_steps=4, steps=4, steps_per_epoch=4, batch_size=4, labeled_batch_size=2, lr=3e-3,
                 ema_decay=0.5, pseudo_labels=TOY_LABELS)
SIZE = 16


def test_a_job_folder_parses_back_into_its_parts(tmp_path):
    folder = layout.job_folder(tmp_path / "runs" / "x", "ezvsl", 0.03, 2, "dmt")
    assert folder == tmp_path / "runs" / "x" / "jobs" / "ezvsl" / "ratio0.03" / "seed2" / "dmt"
    assert Job("ezvsl", VARIANTS["dmt"], 0.03, 2).folder(tmp_path / "runs" / "x") == folder  # the runner's
    place = layout.parse_job_folder(folder)
    assert (place.out, place.method, place.ratio, place.seed, place.variant) == (tmp_path / "runs" / "x", "ezvsl",
                                                                                 0.03, 2, "dmt")
    assert place.folder == folder and layout.results_file(place.out) == tmp_path / "runs" / "x" / "results.json"
    assert place.row_keys() == {"method": "ezvsl", "ratio": "ratio0.03", "seed": "seed2", "variant": "dmt"}
    for bad in (tmp_path / "model.pt", tmp_path / "jobs" / "ezvsl" / "0.03" / "seed0" / "dmt",
                tmp_path / "jobs" / "ezvsl" / "ratio0.03" / "seedA" / "dmt"):
        with pytest.raises(ValueError, match="jobs/<method>/ratio<r>/seed<s>/<variant>"):
            layout.parse_job_folder(bad)


def test_job_folders_lists_the_jobs_that_hold_what_is_asked(tmp_path):
    done = layout.job_folder(tmp_path, "lvs", 0.1, 0, "dmt")
    running = layout.job_folder(tmp_path, "lvs", 0.1, 1, "dmt")
    other = layout.job_folder(tmp_path, "ezvsl", 0.1, 0, "naive")
    for folder in (done, running, other):
        folder.mkdir(parents=True)
        (folder / layout.SETTINGS).write_text("{}")
    for folder in (done, other):
        (folder / layout.RESULT).write_text("{}")
        (folder / layout.MODEL).write_bytes(b"")
    assert layout.missing_files(running) == [layout.RESULT, layout.MODEL]
    assert layout.job_folders(tmp_path) == [other, done]
    assert layout.job_folders(tmp_path, needs=(layout.SETTINGS,)) == [other, done, running]
    assert layout.job_folders(tmp_path, methods=["lvs"]) == [done]
    assert layout.job_folders(tmp_path / "nothing") == []


def finished_job(root: Path) -> tuple[Path, DualMeanTeacher]:
    """A job folder as run.py leaves it, for a registered toy network, trained for a few steps."""
    job = layout.job_folder(root / "runs" / "quick", "toy_clip", 0.1, 0, "dmt")
    job.mkdir(parents=True)
    model = DualMeanTeacher(ClipToyNet, FAST)
    model.fit(SquaresDataset(8, seed=1, size=SIZE), SquaresDataset(8, seed=2, size=SIZE, with_mask=False),
              progress=False)
    model.save(job / layout.MODEL)
    data = {"tier": "flickr", "image_size": SIZE, "sample_rate": 16000, "duration": 1.0, "test_size": 8}
    (job / layout.SETTINGS).write_text(json.dumps({"train": FAST.to_dict(), "network": {}, "data": data}))
    (job / layout.RESULT).write_text(json.dumps({"method": "toy_clip", "variant": "dmt", "ratio": 0.1, "seed": 0,
                                                 "scores": {"ciou50": 0.25, "pointing": 0.5}}))
    layout.results_file(root / "runs" / "quick").write_text(json.dumps({"preset": "quick"}))
    return job, model


def test_a_finished_job_exports_with_its_settings_scores_and_preset(tmp_path, capsys):
    job, model = finished_job(tmp_path)
    folder = export_job.export_job(job, tmp_path / "out")
    config = json.loads((folder / "config.json").read_text())
    assert config["preset"] == "quick" and config["network"]["name"] == "toy_clip"
    assert config["metrics"]["scores"]["ciou50"] == 0.25 and config["metrics"]["variant"] == "dmt"
    assert config["metrics"]["test_set"] == "composed benchmark tier flickr, 8 stored test scenes"
    assert config["data"]["image_size"] == SIZE and config["train"]["warmup_steps"] == 4
    images = torch.stack([SquaresDataset(4, seed=9, size=SIZE)[i]["image"] for i in range(4)])
    audio = torch.stack([SquaresDataset(4, seed=9, size=SIZE)[i]["audio"] for i in range(4)])
    assert torch.equal(DualMeanTeacher.from_pretrained(folder).localize(images, audio), model.localize(images, audio))
    with pytest.raises(FileExistsError):
        export_job.export_job(job, tmp_path / "out")
    assert export_job.main([str(job), str(tmp_path / "out"), "--overwrite"]) == 0
    assert "wrote" in capsys.readouterr().out


def test_a_moved_job_exports_without_a_preset_and_an_unfinished_one_is_refused(tmp_path, capsys):
    job, _ = finished_job(tmp_path)
    moved = job.rename(tmp_path / "my-job")
    config = json.loads((export_job.export_job(moved, tmp_path / "out") / "config.json").read_text())
    assert config["preset"] is None and config["metrics"]["seed"] == 0
    (moved / layout.RESULT).unlink()
    with pytest.raises(CheckpointError, match=r"lacks \['result.json'\]: pass a finished run.py job folder"):
        export_job.export_job(moved, tmp_path / "again")
    with pytest.raises(SystemExit):
        export_job.main([str(moved), str(tmp_path / "again")])
    assert "lacks ['result.json']" in capsys.readouterr().err
