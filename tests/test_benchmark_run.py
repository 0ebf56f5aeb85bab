"""The benchmark's whole path (data, variants, training, scoring, tables, plots) at toy scale."""
import json
import sys
from dataclasses import replace
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCH))

import presets  # noqa: E402
import run  # noqa: E402


@pytest.fixture
def tiny_preset(monkeypatch, tmp_path):
    monkeypatch.setenv("DMT_WRAP_CACHE", str(tmp_path / "cache"))
    tiny = replace(presets.QUICK, image_size=32, duration=0.25, train_size=200, unlabeled_size=64, test_size=8,
                   curve_size=4, train=presets.QUICK.train.replace(warmup_steps=2, steps=2, steps_per_epoch=2,
                                                                   batch_size=4, labeled_batch_size=2,
                                                                   num_workers=0))
    monkeypatch.setitem(presets.PRESETS, "quick", tiny)
    return tiny


def test_run_writes_tables_json_and_plots_and_resumes(tiny_preset, tmp_path):
    out = tmp_path / "out"
    argv = ["--method", "ezvsl", "--quick", "--variants", "naive", "dmt", "--out", str(out), "--no-progress",
            "--threads", "1"]
    assert run.main(argv) == 0
    markdown = (out / "results.md").read_text()
    assert "NOT meaningful" in markdown and "naive semi-supervised" in markdown and "reference: oracle" in markdown
    payload = json.loads((out / "results.json").read_text())
    assert {row["variant"] for row in payload["rows"]} == {"naive", "dmt"}
    dmt = next(r for r in payload["runs"] if r["variant"] == "dmt")
    assert 0 <= dmt["keep_rate"] <= 1 and dmt["updates_per_network"] == 4
    assert (out / "plots" / "curves.png").stat().st_size > 0 and (out / "plots" / "overlays.png").exists()
    # a second run reuses the finished jobs instead of training again
    done = (out / "jobs" / "ezvsl" / "ratio0.03" / "seed0" / "dmt" / "result.json").stat().st_mtime
    assert run.main(argv) == 0
    assert (out / "jobs" / "ezvsl" / "ratio0.03" / "seed0" / "dmt" / "result.json").stat().st_mtime == done


def test_unknown_method_is_refused_with_the_choices(capsys):
    with pytest.raises(SystemExit):
        run.parse_args(["--method", "nope"])
    assert "ezvsl" in capsys.readouterr().err
