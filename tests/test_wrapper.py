import pytest
import torch
from torch import nn

from dmt_wrap.filtering import PseudoLabelConfig
from dmt_wrap import ContractError, DMTConfig, DualMeanTeacher, ablation
from dmt_wrap.checkpoint import CheckpointError
from dmt_wrap.config import TEACHER_FIELDS
from tests.toy import SquaresDataset, TOY_LABELS, ToyNet

FAST = DMTConfig(warmup_steps=6, steps=6, steps_per_epoch=3, batch_size=8, labeled_batch_size=4, lr=3e-3,
                 ema_decay=0.5, pseudo_labels=TOY_LABELS)


def mean_iou(model: DualMeanTeacher, data: SquaresDataset) -> float:
    batch = [data[i] for i in range(len(data))]
    images = torch.stack([b["image"] for b in batch])
    audio = torch.stack([b["audio"] for b in batch])
    masks = torch.stack([b["mask"] for b in batch]) > 0
    pred = model.localize(images, audio) >= 0.5
    return float(((pred & masks).flatten(1).sum(1) / (pred | masks).flatten(1).sum(1).clamp_min(1)).mean())


def test_three_line_use_learns_the_labeled_pattern():
    labeled, unlabeled = SquaresDataset(16, seed=1), SquaresDataset(64, seed=2, with_mask=False)
    dmt = DualMeanTeacher(ToyNet, FAST.replace(warmup_steps=30, steps=20, steps_per_epoch=10, ema_decay=0.7))
    dmt.start_teachers()
    before = mean_iou(dmt, SquaresDataset(32, seed=3))
    dmt.teachers_active = False  # back to stage 1: the students answer until fit starts the teachers
    history = dmt.fit(labeled, unlabeled, progress=False)
    after = mean_iou(dmt, SquaresDataset(32, seed=3))
    assert len(dmt.teachers) == 2
    assert after > before + 0.2, (before, after)
    maps = dmt.localize(torch.rand(2, 3, 16, 16), torch.randn(2, 32))
    assert maps.shape == (2, 16, 16) and 0 <= maps.min() and maps.max() <= 1
    assert [row["stage"] for row in history] == ["warmup"] * 3 + ["unbiased"] * 2
    assert "keep_rate" in history[-1] and 0 <= history[-1]["keep_rate"] <= 1


def test_pseudo_label_quality_is_reported_when_unlabeled_items_carry_masks():
    dmt = DualMeanTeacher(ToyNet, FAST)
    history = dmt.fit(SquaresDataset(8, seed=1), SquaresDataset(32, seed=2), progress=False)
    assert {"pseudo_iou", "pseudo_precision", "consensus_iou"} <= set(history[-1])


def test_pairs_start_from_different_weights():
    dmt = DualMeanTeacher(ToyNet, FAST)
    a, b = (s.net.audio.weight for s in dmt.students)
    assert not torch.equal(a, b)


@pytest.mark.parametrize("name", ["single_teacher", "no_filter", "no_ipl_union", "naive", "self_supervised",
                                  "fully_supervised"])
def test_every_ablation_trains(name):
    cfg = ablation(name, FAST)
    labeled = None if name == "self_supervised" else SquaresDataset(8, seed=1)
    unlabeled = None if name == "fully_supervised" else SquaresDataset(16, seed=2, with_mask=False)
    dmt = DualMeanTeacher(ToyNet, cfg)
    history = dmt.fit(labeled, unlabeled, progress=False)
    assert history and all(torch.isfinite(torch.tensor(row["total"])) for row in history)
    assert len(dmt.students) == (2 if cfg.teachers == 2 else 1)
    assert len(dmt.teachers) == cfg.teachers


def assert_same_weights(mine: nn.Module, theirs: nn.Module) -> None:
    for a, b in zip(mine.state_dict().values(), theirs.state_dict().values()):
        assert torch.equal(a, b)


def test_resume_from_checkpoint_equals_uninterrupted_run(tmp_path):
    labeled, unlabeled = SquaresDataset(8, seed=1), SquaresDataset(24, seed=2, with_mask=False)
    full = DualMeanTeacher(ToyNet, FAST)
    full.fit(labeled, unlabeled, progress=False)

    interrupted = DualMeanTeacher(ToyNet, FAST.replace(steps=3))  # stops after the first stage-2 epoch
    interrupted.fit(labeled, unlabeled, checkpoint_dir=tmp_path, progress=False)
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    state["model"]["config"]["steps"] = FAST.steps  # same run, just cut short
    torch.save(state, tmp_path / "last.pt")

    resumed = DualMeanTeacher(ToyNet, FAST)
    resumed.fit(labeled, unlabeled, checkpoint_dir=tmp_path, resume=True, progress=False)
    assert_same_weights(resumed, full)
    assert len(resumed.history) == len(full.history)


def without_seconds(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def test_a_stage2_sweep_starts_from_one_warmup_and_equals_training_through(tmp_path):
    labeled, unlabeled = SquaresDataset(8, seed=1), SquaresDataset(24, seed=2)
    first = DualMeanTeacher(ToyNet, FAST)
    first.fit(labeled, unlabeled, checkpoint_dir=tmp_path / "first", progress=False)
    warmup = tmp_path / "first" / "warmup.pt"
    assert torch.load(warmup, weights_only=True)["step"] == FAST.warmup_steps

    changed = FAST.replace(lambda_u=3.0, pseudo_labels={"delta": 0.4}, ema_decay=0.8, steps=9)  # stage-2 settings only
    through = DualMeanTeacher(ToyNet, changed)
    through.fit(labeled, unlabeled, progress=False)
    swept = DualMeanTeacher(ToyNet, changed)
    history = swept.fit(labeled, unlabeled, checkpoint_dir=tmp_path / "swept", progress=False, warmup_from=warmup)
    assert_same_weights(swept, through)
    assert without_seconds(history) == without_seconds(through.history)
    assert swept.config == changed and [r["stage"] for r in history].count("unbiased") == 3


@pytest.mark.parametrize("source, target", [({}, {"teachers": 0, "ensemble": True}),
                                             ({"teachers": 0}, {"teachers": 1})],
                         ids=["dmt->naive_ensemble", "naive->single_teacher"])
def test_variants_with_as_many_networks_share_a_warmup_bit_for_bit(tmp_path, source, target):
    """Stage 1 trains the students on labels before any teacher exists: DMT's warm-up is a naive
    ensemble's, naive's a single mean teacher's, so a sweep over variants trains each once."""
    labeled, unlabeled, test = SquaresDataset(8, seed=1), SquaresDataset(24, seed=2), SquaresDataset(8, seed=3)

    def curve(model: DualMeanTeacher) -> dict[str, float]:  # the warm-up rows score what the model answers
        return {"test_iou": mean_iou(model, test)}

    DualMeanTeacher(ToyNet, FAST.replace(**source)).fit(labeled, unlabeled, checkpoint_dir=tmp_path,
                                                       progress=False, eval_fn=curve)
    through = DualMeanTeacher(ToyNet, FAST.replace(**target))
    through.fit(labeled, unlabeled, progress=False, eval_fn=curve)
    shared = DualMeanTeacher(ToyNet, FAST.replace(**target))
    history = shared.fit(labeled, unlabeled, progress=False, eval_fn=curve, warmup_from=tmp_path / "warmup.pt")
    assert list(shared.state_dict()) == list(through.state_dict())
    assert_same_weights(shared, through)
    assert without_seconds(history) == without_seconds(through.history)


def test_without_teachers_the_teacher_fields_change_nothing_bit_for_bit():
    """``TEACHER_FIELDS`` are read only on the teachers' path, so a naive ensemble (or naive)
    stored at one ``lambda_u`` is the job at any other: ``training_settings`` leaves them out."""
    labeled, unlabeled = SquaresDataset(8, seed=1), SquaresDataset(24, seed=2)
    labels = PseudoLabelConfig(delta=0.3, tau=0.8, noise_filter=False, combine="union", shape="box",
                               delta_mode="relative", max_area=0.5)
    teacher_fields = dict(lambda_u=3.0, rampup_steps=2, ema_decay=0.9, pseudo_loss_norm="kept", pseudo_labels=labels)
    assert set(teacher_fields) == TEACHER_FIELDS  # every field the claim covers is changed here
    ensemble = ablation("naive_ensemble", FAST)
    models = [DualMeanTeacher(ToyNet, cfg) for cfg in (ensemble, ensemble.replace(**teacher_fields))]
    for model in models:
        model.fit(labeled, unlabeled, progress=False)
    assert_same_weights(models[0], models[1])
    assert without_seconds(models[0].history) == without_seconds(models[1].history)
    assert ensemble.training_settings() == ensemble.replace(**teacher_fields).training_settings()
    dmt = ablation("dmt", FAST)
    assert dmt.training_settings() != dmt.replace(lambda_u=3.0).training_settings()


@pytest.mark.parametrize("changes, field", [({"lr": 1e-3}, "lr"), ({"warmup_steps": 3}, "warmup_steps"),
                                            ({"teachers": 1}, "num_networks")])
def test_a_warmup_from_another_stage1_is_refused_with_the_differing_field(tmp_path, changes, field):
    labeled, unlabeled = SquaresDataset(8, seed=1), SquaresDataset(24, seed=2)
    DualMeanTeacher(ToyNet, FAST).fit(labeled, unlabeled, checkpoint_dir=tmp_path, progress=False)
    with pytest.raises(CheckpointError, match=f"another stage 1.*{field}"):
        DualMeanTeacher(ToyNet, FAST.replace(**changes)).fit(labeled, unlabeled, progress=False,
                                                             warmup_from=tmp_path / "warmup.pt")
    with pytest.raises(CheckpointError, match="not at the end of the warm-up"):  # last.pt is at the end of stage 2
        DualMeanTeacher(ToyNet, FAST).fit(labeled, unlabeled, progress=False, warmup_from=tmp_path / "last.pt")


def test_save_and_load_round_trip(tmp_path):
    dmt = DualMeanTeacher(ToyNet, FAST)
    dmt.fit(SquaresDataset(8, seed=1), SquaresDataset(16, seed=2), progress=False)
    dmt.save(tmp_path / "model.pt")
    back = DualMeanTeacher.load(tmp_path / "model.pt", ToyNet)
    x, a = torch.rand(2, 3, 16, 16), torch.randn(2, 32)
    assert torch.equal(dmt.localize(x, a), back.localize(x, a))


def test_inference_picks_teachers_or_students():
    from dataclasses import replace

    dmt = DualMeanTeacher(ToyNet, FAST)
    dmt.fit(SquaresDataset(8, seed=1), SquaresDataset(16, seed=2), progress=False)
    x, a = torch.rand(2, 3, 16, 16), torch.randn(2, 32)
    maps = {}
    for mode in ("mean", "a", "b", "students"):
        dmt.config = replace(dmt.config, inference=mode)
        maps[mode] = dmt.localize(x, a)
    torch.testing.assert_close(maps["mean"], (maps["a"] + maps["b"]) / 2)
    with torch.no_grad():
        students = [torch.sigmoid(s.eval()(x, a).map) for s in dmt.students]
    expected = torch.nn.functional.interpolate(((students[0] + students[1]) / 2)[:, None], size=(16, 16),
                                               mode="bilinear", align_corners=False)[:, 0]
    torch.testing.assert_close(maps["students"], expected.clamp(0, 1))
    assert not torch.allclose(maps["students"], maps["mean"])  # EMA teachers (decay 0.5) differ from students


def test_checkpoint_of_another_network_is_refused(tmp_path):
    dmt = DualMeanTeacher(ToyNet, FAST)
    dmt.save(tmp_path / "model.pt")

    class OtherNet(ToyNet):
        pass

    with pytest.raises(CheckpointError, match="ToyNet"):
        DualMeanTeacher.load(tmp_path / "model.pt", OtherNet)


class ReturnsWrongThing(nn.Module):
    def __init__(self, output):
        super().__init__()
        self.output = output
        self.p = nn.Parameter(torch.zeros(()))

    def forward(self, images, audio):
        return self.output(images) if callable(self.output) else self.output


@pytest.mark.parametrize("output, message", [
    ("a string", "type str"),
    (lambda x: x[:, 0, 0], r"shape \(4, 16\) \(rank 2\)"),
    (lambda x: x[:2, 0], "map for 2 samples but was given 4"),
    (lambda x: (x[:, 0], torch.ones(3)), "self-supervised loss of \\(3,\\)"),
    (lambda x: x[:, 0] * float("nan"), "NaN or inf"),
    (lambda x: (x[:, 0], None, None), "length 3"),
])
def test_contract_errors_say_what_came_back(output, message):
    dmt = DualMeanTeacher(lambda: ReturnsWrongThing(output), FAST.replace(teachers=0))
    with pytest.raises(ContractError, match=message):
        dmt.fit(SquaresDataset(8), None, progress=False)


def test_labeled_items_without_mask_are_refused():
    with pytest.raises(ValueError, match="lack \\['mask'\\]"):
        DualMeanTeacher(ToyNet, FAST).fit(SquaresDataset(8, with_mask=False), SquaresDataset(8), progress=False)


def test_pseudo_label_weight_ramps_up_linearly_in_stage_two():
    cfg = FAST.replace(warmup_steps=10, rampup_steps=4, lambda_u=2.0)
    model = DualMeanTeacher(ToyNet, cfg)
    weights = [model.pseudo_weight(step, warmup_length=10) for step in range(10, 16)]
    assert weights == [0.5, 1.0, 1.5, 2.0, 2.0, 2.0]
