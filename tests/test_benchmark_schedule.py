"""Schedule overrides of benchmarks/run.py, and the refusal to reuse jobs trained otherwise."""
import json

import pytest
import torch

from dmt_wrap import DMTConfig, DualMeanTeacher, ablation
from dmt_wrap.augment import MILD_AUGMENT, AugmentConfig, augment_audio
from dmt_wrap_benchmarks import run


def test_steps_override_reaches_the_jobs_and_a_changed_schedule_is_refused(tiny_preset, tmp_path):
    out = tmp_path / "out"
    argv = ["--method", "ezvsl", "--quick", "--variants", "self_supervised", "naive", "--out", str(out),
            "--no-progress", "--threads", "1", "--warmup-steps", "1", "--steps", "3"]
    assert run.main(argv) == 0
    runs = {r["variant"]: r for r in json.loads((out / "results.json").read_text())["runs"]}
    assert runs["naive"]["updates_per_network"] == 4 and runs["self_supervised"]["updates_per_network"] == 4
    assert runs["naive"]["config"]["steps"] == 3 and runs["self_supervised"]["config"]["steps"] == 4
    # the trained encoders warm-start another method
    from dmt_wrap_baselines.registry import build
    from dmt_wrap_benchmarks import export_encoders

    naive = out / "jobs" / "ezvsl" / "ratio0.03" / "seed0" / "naive"
    files = export_encoders.export(naive / "model.pt", "ezvsl", "quick", {}, tmp_path / "warm")
    warm = build("attention10k", **tiny_preset.network_kwargs("attention10k"),
                 visual_weights=str(files["visual"]), audio_weights=str(files["audio"]))
    trained = export_encoders.single_encoder(
        DualMeanTeacher.load(naive / "model.pt", export_encoders.backbone_factory("ezvsl", tiny_preset)).students[0],
        export_encoders.VisualEncoder, "model")
    for key, value in trained.backbone.state_dict().items():
        assert torch.equal(warm.visual_encoder.backbone.state_dict()[key], value)
    with pytest.raises(SystemExit, match="other settings.*train.steps"):
        run.main(argv[:-1] + ["5"])
    with pytest.raises(SystemExit, match="other settings.*network.temperature"):
        run.main(argv + ["--network-args", '{"temperature": 0.1}'])
    with pytest.raises(SystemExit, match="other settings.*data.tier"):
        run.main(argv + ["--tier", "clutter"])
    # a job stored before a DMTConfig field existed is reused while that field is at its default ...
    settings_file = naive / "settings.json"
    stored = json.loads(settings_file.read_text())
    del stored["train"]["mismatch_weight"]
    settings_file.write_text(json.dumps(stored))
    done = (naive / "result.json").stat().st_mtime
    assert run.main(argv) == 0 and (naive / "result.json").stat().st_mtime == done
    # ... as is one stored with the old spelling of "no audio noise" (an infinite SNR)
    stored["train"]["augment"]["audio_noise_snr_db"] = float("inf")
    settings_file.write_text(json.dumps(stored))
    assert run.main(argv) == 0 and (naive / "result.json").stat().st_mtime == done
    # ... and refused once the new field is set otherwise
    with pytest.raises(SystemExit, match="other settings.*train.mismatch_weight"):
        run.main(argv + ["--train-args", '{"mismatch_weight": 0.1}'])
    # a network without teachers never reads the teachers' fields: its job is reused at other values
    assert run.main(argv + ["--train-args", '{"lambda_u": 0.25, "delta_mode": "relative"}']) == 0
    assert (naive / "result.json").stat().st_mtime == done


def test_train_args_reach_every_variant_and_bad_fields_are_refused(tiny_preset, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["--method", "ezvsl", "--quick", "--variants", "single_teacher", "dmt", "--out", str(out), "--no-progress",
            "--threads", "1", "--train-args", '{"pseudo_labels": {"delta_mode": "relative", "delta": 0.7}}']
    assert run.main(argv) == 0
    runs = {r["variant"]: r for r in json.loads((out / "results.json").read_text())["runs"]}
    for variant in ("single_teacher", "dmt"):
        labels = runs[variant]["config"]["pseudo_labels"]
        assert labels["delta_mode"] == "relative" and labels["delta"] == 0.7
        assert labels["shape"] == "box"  # a nested change keeps the preset's other pseudo-label settings
    assert runs["single_teacher"]["config"]["teachers"] == 1  # the variant's ablation still applies
    for bad, says in (('{"delta_mode": "top-k"}', "delta_mode"), ('{"deltta": 0.5}', "deltta")):
        with pytest.raises(SystemExit):
            run.parse_args(["--train-args", bad])
        assert "--train-args" in (err := capsys.readouterr().err) and says in err


def test_negative_steps_are_refused(capsys):
    with pytest.raises(SystemExit):
        run.parse_args(["--steps", "-1"])
    assert "--steps must be >= 0" in capsys.readouterr().err


def test_self_supervised_trains_with_the_originals_mild_augmentation():
    config = ablation("self_supervised", DMTConfig())
    assert config.augment == MILD_AUGMENT != AugmentConfig()
    assert ablation("naive", DMTConfig()).augment == AugmentConfig()
    audio = torch.randn(3, 400, generator=torch.Generator().manual_seed(1))
    same = augment_audio(audio, torch.Generator().manual_seed(0), MILD_AUGMENT.audio_gain_db,
                         MILD_AUGMENT.audio_noise_snr_db, MILD_AUGMENT.audio_mask_fraction)
    assert torch.equal(same, audio)
    # the strong default does perturb it
    assert not torch.equal(augment_audio(audio, torch.Generator().manual_seed(0)), audio)


def test_paper_preset_runs_its_resnet18_at_224_for_one_update_per_stage(monkeypatch, tmp_path):
    """The paper preset's models, resolution, audio length and DMT path, shrunk in data and
    batch only (the full preset is for a GPU)."""
    from dataclasses import replace

    from dmt_wrap_benchmarks import presets

    monkeypatch.setenv("DMT_WRAP_CACHE", str(tmp_path / "cache"))
    small_data = replace(presets.PAPER, train_size=100, unlabeled_size=16, test_size=4, curve_size=2)
    monkeypatch.setitem(presets.PRESETS, "paper", small_data)
    out = tmp_path / "out"
    argv = ["--method", "ezvsl", "--preset", "paper", "--variants", "dmt", "--out", str(out), "--no-progress",
            "--threads", "2", "--warmup-steps", "1", "--steps", "1", "--train-args",
            '{"batch_size": 2, "labeled_batch_size": 2, "steps_per_epoch": 1, "num_workers": 0}']
    assert run.main(argv) == 0
    (job,) = json.loads((out / "results.json").read_text())["runs"]
    settings = json.loads((out / "jobs" / "ezvsl" / "ratio0.03" / "seed0" / "dmt" / "settings.json").read_text())
    assert settings["network"]["encoder_size"] == "resnet18" and settings["data"]["image_size"] == 224
    assert settings["data"]["duration"] == 3.0 and job["updates_per_network"] == 2
    assert job["config"]["lr"] == 1e-4 and job["config"]["ema_decay"] == 0.999
