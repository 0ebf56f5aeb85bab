"""The benchmark's whole path (data, variants, training, scoring, tables, plots) at toy scale."""
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from dmt_wrap_benchmarks import run
from tests.child_env import same_code_env


def test_run_writes_tables_json_and_plots_and_resumes(tiny_preset, tmp_path, caplog):
    out = tmp_path / "out"
    argv = ["--method", "ezvsl", "--quick", "--variants", "naive", "dmt", "--out", str(out), "--no-progress",
            "--threads", "1"]
    assert run.main(argv) == 0
    # without progress bars every epoch is logged, with its losses and test scores
    epochs = [r.getMessage() for r in caplog.records if r.name == "dmt_wrap" and r.getMessage().startswith("epoch")]
    assert len(epochs) >= 4 and all("test_ciou50=" in line for line in epochs)
    markdown = (out / "results.md").read_text()
    assert "NOT meaningful" in markdown and "naive semi-supervised" in markdown and "reference: oracle" in markdown
    payload = json.loads((out / "results.json").read_text())
    # DMT is also scored by teacher A alone (dmt@A)
    assert {row["variant"] for row in payload["rows"]} == {"naive", "dmt", "dmt@A"}
    gains = json.loads((out / "gains.json").read_text())["ratios"][0]
    assert set(gains["methods"]["ezvsl"]) == {"naive", "dmt", "dmt@A"}
    seed0 = gains["methods"]["ezvsl"]["dmt"]["0"]
    assert set(seed0) == {"ciou50", "auc", "pointing", "keep_rate", "pseudo_precision"}
    assert gains["paired"]["ezvsl"]["dmt-naive"]["ciou50"]["mean"] == pytest.approx(
        seed0["ciou50"] - gains["methods"]["ezvsl"]["naive"]["0"]["ciou50"])
    dmt = next(r for r in payload["runs"] if r["variant"] == "dmt")
    assert 0 <= dmt["keep_rate"] <= 1 and dmt["updates_per_network"] == 4
    assert (out / "plots" / "curves.png").stat().st_size > 0 and (out / "plots" / "overlays.png").exists()
    # a second run reuses the finished jobs instead of training again
    done = (out / "jobs" / "ezvsl" / "ratio0.03" / "seed0" / "dmt" / "result.json").stat().st_mtime
    assert run.main(argv) == 0
    assert (out / "jobs" / "ezvsl" / "ratio0.03" / "seed0" / "dmt" / "result.json").stat().st_mtime == done


def test_reports_name_a_command_that_pastes_back_into_a_shell():
    import shlex

    from dmt_wrap_benchmarks.report import command_line

    argv = ["--method", "sspl", "--network-args", '{"freeze_visual": true, "visual_weights": "my dir/v.pth"}']
    assert shlex.split(command_line("run.py", argv)) == ["python", "benchmarks/run.py", *argv]


def test_unknown_method_is_refused_with_the_choices(capsys):
    with pytest.raises(SystemExit):
        run.parse_args(["--method", "nope"])
    assert "ezvsl" in capsys.readouterr().err


def test_the_scripts_run_as_files_from_any_folder(tmp_path):
    """``python benchmarks/run.py`` imports ``benchmarks.*`` as a package, with no path edits."""
    script = Path(run.__file__)
    done = subprocess.run([sys.executable, str(script), "--help"], cwd=tmp_path, env=same_code_env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "--method" in done.stdout


def _vggss_root(root: Path) -> Path:
    from tests.test_real_datasets import write_clip, write_frame

    box = [[0.1, 0.1, 0.6, 0.7]]
    train = [f"train{n}_000010" for n in range(10)]
    for name in train + ["test0_000010", "test1_000010"]:
        write_frame(root / "frames" / f"{name}.jpg")
        write_clip(root / "audio" / f"{name}.flac", seconds=0.5, rate=8000, channels=1)
    (root / "train.txt").write_text("".join(f"{name}\n" for name in train))
    (root / "train_labeled.json").write_text(json.dumps(
        [{"file": name, "class": "dog barking", "bbox": box} for name in train[:3]]))
    (root / "vggss.json").write_text(json.dumps(
        [{"file": f"test{n}_000010", "class": "cello", "bbox": box} for n in range(2)]))
    return root


def test_real_vggss_builds_labeled_unlabeled_and_test_sets(tiny_preset, tmp_path):
    from dmt_wrap_benchmarks import data

    root = _vggss_root(tmp_path)
    built = data.real("vggss", str(root), tiny_preset, ratio=0.2, seed=0)
    assert (len(built.labeled), len(built.unlabeled), len(built.all_labeled), len(built.test)) == (2, 10, 3, 2)
    assert "mask" in built.labeled[0] and "mask" not in built.unlabeled[0]
    assert built.test[0]["mask"].shape == (tiny_preset.image_size,) * 2
    assert "vggss at" in built.description and "2 labeled, 10 unlabeled, 2 test" in built.description
    with pytest.raises(SystemExit, match="asks for 5 labeled pairs"):
        data.real("vggss", str(root), tiny_preset, ratio=0.5, seed=0)
    (root / "train_labeled.json").unlink()
    (root / "train.txt").unlink()
    with pytest.raises(SystemExit, match=r"train_labeled.json: annotated training pairs in vggss.json's format") as info:
        data.real("vggss", str(root), tiny_preset, ratio=0.2, seed=0)
    assert "train.txt: ids of the unlabeled VGG-Sound training clips" in str(info.value)
    assert len(str(info.value).splitlines()) == 3  # the header and the two missing files


def test_real_flickr_names_missing_list_files(tiny_preset, tmp_path):
    from dmt_wrap_benchmarks import data

    with pytest.raises(SystemExit, match="test.txt: the test ids, one per line"):
        data.real("flickr", str(tmp_path), tiny_preset, ratio=0.2, seed=0)


def test_sweep_over_ratios_seeds_and_methods_reports_mean_std_gains_and_the_ratio_plot(tiny_preset, tmp_path):
    out = tmp_path / "sweep"
    argv = ["--method", "ezvsl", "lvs", "--quick", "--variants", "naive", "dmt", "--label-ratio", "0.05", "0.1",
            "--seeds", "0", "1", "--out", str(out), "--no-progress", "--threads", "1"]
    assert run.main(argv) == 0
    payload = json.loads((out / "results.json").read_text())
    assert len(payload["runs"]) == 16
    rows = {(r["method"], r["ratio"], r["variant"]): r for r in payload["rows"]}
    assert set(rows) == {(m, r, v) for m in ("ezvsl", "lvs") for r in (0.05, 0.1) for v in ("naive", "dmt", "dmt@A")}
    for (method, ratio, variant), row in rows.items():
        assert row["seeds"] == [0, 1]
        name, _, network = variant.partition("@")
        values = [r["network_scores"]["a"]["ciou50"] if network else r["scores"]["ciou50"] for r in payload["runs"]
                  if (r["method"], r["ratio"], r["variant"]) == (method, ratio, name)]
        assert row["ciou50"][0] == pytest.approx(sum(values) / 2)
        assert row["ciou50"][1] == pytest.approx(abs(values[0] - values[1]) / 2)
    markdown = (out / "results.md").read_text()
    for ratio in ("0.05", "0.1"):
        assert f"## ezvsl, label ratio {ratio}" in markdown and f"## Gains per method (CIoU@0.5, label ratio {ratio})" in markdown
    assert " ± " in markdown
    assert (out / "plots" / "label_ratio.png").stat().st_size > 0


def test_naive_row_comes_from_the_ensembles_network_a_and_equals_a_naive_job(tiny_preset, tmp_path):
    out = tmp_path / "ensemble"
    common = ["--method", "ezvsl", "--quick", "--out", str(out), "--no-progress", "--threads", "1"]
    assert run.main(common + ["--variants", "naive", "naive_ensemble"]) == 0  # naive asked for: no job of its own
    job_folder = out / "jobs" / "ezvsl" / "ratio0.03" / "seed0"
    assert not (job_folder / "naive").exists()
    rows = {r["variant"]: r for r in json.loads((out / "results.json").read_text())["rows"]}
    assert set(rows) == {"naive_ensemble", "naive_ensemble@A", "naive"}
    assert "naive semi-supervised (the ensemble's network A)" in (out / "results.md").read_text()
    assert run.main(common + ["--variants", "naive"]) == 0
    naive_job = json.loads((job_folder / "naive" / "result.json").read_text())
    assert naive_job["scores"]["ciou50"] == rows["naive"]["ciou50"][0]
    assert naive_job["scores"]["pointing"] == rows["naive"]["pointing"][0]


def test_train_args_json_builds_views_and_reaches_the_config():
    from dmt_wrap.augment import AugmentConfig

    args = run.parse_args(["--train-args", '{"augment": {"colour_strength": 0.2}, "pseudo_loss_norm": "unlabeled", '
                                           '"delta": 0.7}'])
    train = run.configured_preset(args).train
    preset = run.configured_preset(run.parse_args([])).train
    assert train.augment == replace(preset.augment, colour_strength=0.2) and train.pseudo_loss_norm == "unlabeled"
    assert train.pseudo_labels == replace(preset.pseudo_labels, delta=0.7)  # an older flat name still applies
    assert isinstance(train.augment, AugmentConfig)
    with pytest.raises(SystemExit):
        run.parse_args(["--train-args", '{"swap_pairs": true}'])  # a control of the comparison: --swap-pairs
    with pytest.raises(SystemExit):
        run.parse_args(["--train-args", '{"pseudo_loss_norm": "per_pixel"}'])


def ezvsl_result(out: Path, variant: str = "dmt") -> dict:
    """The ``result.json`` of a finished seed-0 EZ-VSL job at label ratio 0.03 under ``out``."""
    return json.loads((out / "jobs" / "ezvsl" / "ratio0.03" / "seed0" / variant / "result.json").read_text())


def test_a_warmup_cache_lets_a_stage2_sweep_skip_the_warmup_with_the_same_result(tiny_preset, tmp_path):
    common = ["--method", "ezvsl", "--quick", "--variants", "dmt", "--no-progress", "--threads", "1"]
    cache = tmp_path / "warmups"
    assert run.main(common + ["--out", str(tmp_path / "first"), "--warmup-cache", str(cache)]) == 0
    assert len(list(cache.glob("ezvsl/*.pt"))) == 1
    sweep = ["--train-args", '{"lambda_u": 2.0, "delta": 0.5}']
    assert run.main(common + sweep + ["--out", str(tmp_path / "cached"), "--warmup-cache", str(cache)]) == 0
    assert run.main(common + sweep + ["--out", str(tmp_path / "through")]) == 0

    cached, through = ezvsl_result(tmp_path / "cached"), ezvsl_result(tmp_path / "through")
    assert cached["warmup_from"] == str(next(cache.glob("ezvsl/*.pt"))) and through["warmup_from"] is None
    assert cached["scores"] == through["scores"] and cached["network_scores"] == through["network_scores"]
    assert cached["keep_rate"] == through["keep_rate"] and cached["config"]["lambda_u"] == 2.0
    # another stage 1 (here another learning rate) gets its own warm-up, never the cached one
    assert run.main(common + ["--train-args", '{"lr": 0.002}', "--out", str(tmp_path / "other-lr"),
                              "--warmup-cache", str(cache)]) == 0
    assert ezvsl_result(tmp_path / "other-lr")["warmup_from"] is None and len(list(cache.glob("ezvsl/*.pt"))) == 2


def test_dmt_starts_from_the_naive_ensembles_cached_warmup_with_the_same_result(tiny_preset, tmp_path):
    common = ["--method", "ezvsl", "--quick", "--no-progress", "--threads", "1"]
    cache = tmp_path / "warmups"
    assert run.main(common + ["--variants", "naive_ensemble", "dmt", "--out", str(tmp_path / "shared"),
                              "--warmup-cache", str(cache)]) == 0
    assert run.main(common + ["--variants", "dmt", "--out", str(tmp_path / "through")]) == 0

    (warmup,) = cache.glob("ezvsl/*.pt")  # one warm-up for the two variants
    shared, through = ezvsl_result(tmp_path / "shared"), ezvsl_result(tmp_path / "through")
    assert ezvsl_result(tmp_path / "shared", "naive_ensemble")["warmup_from"] is None
    assert shared["warmup_from"] == str(warmup)
    assert shared["scores"] == through["scores"] and shared["network_scores"] == through["network_scores"]
    assert shared["keep_rate"] == through["keep_rate"]


def test_the_warmup_cache_key_changes_with_the_training_code(monkeypatch, tmp_path):
    from dmt_wrap_benchmarks import comparison

    comparison.training_code_fingerprint.cache_clear()
    before = comparison.training_code_fingerprint()
    assert before == comparison.training_code_fingerprint()
    fake_package = tmp_path / "dmt_wrap"
    fake_package.mkdir()
    (fake_package / "__init__.py").write_text("# another version of the code\n")
    import dmt_wrap
    monkeypatch.setattr(dmt_wrap, "__file__", str(fake_package / "__init__.py"))
    comparison.training_code_fingerprint.cache_clear()
    try:
        assert comparison.training_code_fingerprint() != before
    finally:
        monkeypatch.undo()
        comparison.training_code_fingerprint.cache_clear()
