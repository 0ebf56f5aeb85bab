"""The GPU path's numerics on the CPU: bf16 autocast (``precision="bf16"``) and channels_last run here
too, so that these lines are exercised before any GPU runs them. Calibration, filtering, losses and
the EMA stay fp32; maps agree with fp32 within a stated tolerance."""
import pytest
import torch
from torch.utils.data import default_collate

from dmt_wrap import DMTConfig, DualMeanTeacher
from dmt_wrap.step import StepContext
from tests.toy import TOY_LABELS, SquaresDataset, ToyNet

FAST = DMTConfig(warmup_steps=3, steps=3, steps_per_epoch=3, batch_size=8, labeled_batch_size=4, lr=3e-3,
                 ema_decay=0.5, pseudo_labels=TOY_LABELS)
#: bf16 keeps 8 bits of mantissa: a confidence in [0, 1] moves by a few hundredths at most on the toy network
MAP_TOLERANCE = 0.05


def data() -> tuple[SquaresDataset, SquaresDataset]:
    return SquaresDataset(8, seed=1), SquaresDataset(16, seed=2, with_mask=False)


@pytest.mark.parametrize("channels_last", [False, True], ids=["contiguous", "channels_last"])
def test_a_few_dmt_steps_in_bf16_stay_finite_and_keep_the_fp32_state(channels_last):
    model = DualMeanTeacher(ToyNet, FAST.replace(precision="bf16", channels_last=channels_last))
    history = model.fit(*data(), progress=False)
    assert model.has_teachers and all(torch.isfinite(torch.tensor(row["total"])) for row in history)
    for network in [*model.students, *(t.module for t in model.teachers)]:
        assert {p.dtype for p in network.parameters()} == {torch.float32}  # autocast never casts weights
        assert network.scale.dtype == network.bias.dtype == torch.float32  # the calibration
    if channels_last:
        conv = next(m for m in model.students[0].modules() if isinstance(m, torch.nn.Conv2d))
        assert conv.weight.is_contiguous(memory_format=torch.channels_last)


def test_bf16_forwards_give_fp32_losses_and_pseudo_labels():
    model = DualMeanTeacher(ToyNet, FAST.replace(precision="bf16"))
    labeled, unlabeled = (default_collate([d[i] for i in range(n)]) for d, n in zip(data(), (4, 8)))
    model.calibrate(labeled["image"], labeled["audio"])
    model.start_teachers()
    with model.autocast():
        raw = model.students[0].raw(labeled["image"], labeled["audio"]).map
    assert raw.dtype == torch.bfloat16  # the network's own forward does run in bf16
    output = model.training_step({"labeled_A": labeled, "labeled_B": labeled, "unlabeled": unlabeled},
                                 StepContext(step=FAST.warmup_steps, stage="unbiased"))
    assert output.losses.dtype == torch.float32 and torch.isfinite(output.losses).all()
    assert output.pseudo is not None and output.pseudo.labels.dtype == torch.float32
    assert all(value.dtype == torch.float32 for value in output.diagnostics.values())


def test_localize_in_bf16_matches_fp32_within_tolerance():
    trained = DualMeanTeacher(ToyNet, FAST)
    trained.fit(*data(), progress=False)
    in_bf16 = DualMeanTeacher(ToyNet, FAST.replace(precision="bf16", channels_last=True))
    in_bf16.load_model_state(trained.model_state())
    test = default_collate([SquaresDataset(8, seed=3)[i] for i in range(8)])
    fp32, bf16 = trained.localize(test["image"], test["audio"]), in_bf16.localize(test["image"], test["audio"])
    assert fp32.dtype == bf16.dtype == torch.float32 and fp32.shape == bf16.shape == (8, 16, 16)
    assert (fp32 - bf16).abs().max() < MAP_TOLERANCE
    assert not torch.equal(fp32, bf16)  # bf16 did run: the maps are close, not the same


@pytest.mark.slow
@pytest.mark.subprocess
def test_the_gpu_check_runs_end_to_end_as_a_cpu_dry_run(tmp_path):
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {"PATH": "/usr/bin:/bin", "PYTHON": sys.executable, "GPU_CHECK_OUT": str(tmp_path / "check"),
           "HOME": str(tmp_path), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--cpu-dry-run"], cwd=root, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    table = done.stdout.split("gpu_check: a short job (ezvsl, dmt)\n")[-1]
    for method in ("ezvsl", "lvs", "slavc", "fnac", "ssltie", "attention10k", "sspl"):
        assert f"| {method} | cpu | bf16 |" in table
    assert "Short job ezvsl / dmt: CIoU@0.5" in table
