"""The training loop's hooks (``dmt_wrap.callbacks``): order, what each hook sees, TensorBoard."""
import sys
from pathlib import Path

import pytest
import torch

from dmt_wrap import DMTConfig, DualMeanTeacher
from dmt_wrap.callbacks import Callback, TensorBoardLogger, default_callbacks
from dmt_wrap.checkpoint import load_checkpoint
from dmt_wrap.trainer import Trainer
from tests.toy import SquaresDataset, TOY_LABELS, ToyNet

# 2 warm-up steps and 3 stage-2 steps, epochs of 2: rows at steps 2, 4 and 5
CFG = DMTConfig(warmup_steps=2, steps=3, steps_per_epoch=2, batch_size=4, labeled_batch_size=2, lr=3e-3,
                ema_decay=0.5, pseudo_labels=TOY_LABELS)


def toy_data() -> tuple[SquaresDataset, SquaresDataset]:
    return SquaresDataset(8, seed=1), SquaresDataset(16, seed=2, with_mask=False)


def first_teacher_weight(model: DualMeanTeacher) -> torch.Tensor:
    return model.teachers[0].module.net.audio.weight.detach().clone()


class Recorder(Callback):
    """Writes down every hook with what it saw; reads the checkpoint at each epoch's end."""

    def __init__(self, checkpoint: str | None = None) -> None:
        self.calls: list[tuple] = []
        self.checkpoint = checkpoint
        self.teacher_at_stage2: torch.Tensor | None = None
        self.teacher_moved_by_first_stage2_step: bool | None = None

    def on_fit_start(self, trainer):
        self.calls.append(("fit_start", trainer.step))

    def on_stage_start(self, trainer, stage):
        self.calls.append(("stage_start", stage, trainer.step, trainer.model.has_teachers))
        if stage == "unbiased":
            self.teacher_at_stage2 = first_teacher_weight(trainer.model)

    def on_step_end(self, trainer, values):
        self.calls.append(("step_end", trainer.step))
        assert {"supervised", "pseudo", "self_supervised", "total"} <= set(values)
        if self.teacher_at_stage2 is not None and self.teacher_moved_by_first_stage2_step is None:
            moved = not torch.equal(first_teacher_weight(trainer.model), self.teacher_at_stage2)
            self.teacher_moved_by_first_stage2_step = moved

    def on_epoch_end(self, trainer, row):
        saved = None
        if self.checkpoint is not None and Path(self.checkpoint).exists():
            saved = len(load_checkpoint(self.checkpoint)["model"]["history"])
        self.calls.append(("epoch_end", row["epoch"], row["step"], row["stage"], len(trainer.model.history), saved,
                           "probe" in row))

    def on_fit_end(self, trainer):
        self.calls.append(("fit_end", trainer.step, trainer.model.has_teachers))


def test_a_user_callback_sees_every_hook_in_order_after_the_builtins(tmp_path):
    recorder = Recorder(checkpoint=str(tmp_path / "ckpt" / "last.pt"))
    history = DualMeanTeacher(ToyNet, CFG).fit(*toy_data(), checkpoint_dir=tmp_path / "ckpt", progress=False,
                                               eval_fn=lambda model: {"probe": 1.0}, callbacks=[recorder])
    # epoch rows: already evaluated and appended to the history when the user's hook runs, and
    # checkpointed after it (the checkpoint then holds the epochs before)
    assert recorder.calls == [
        ("fit_start", 0),
        ("stage_start", "warmup", 0, False),
        ("step_end", 1), ("step_end", 2), ("epoch_end", 1, 2, "warmup", 1, None, True),
        ("stage_start", "unbiased", 2, True),
        ("step_end", 3), ("step_end", 4), ("epoch_end", 2, 4, "unbiased", 2, 1, True),
        ("step_end", 5), ("epoch_end", 3, 5, "unbiased", 3, 2, True),
        ("fit_end", 5, True),
    ]
    assert recorder.teacher_moved_by_first_stage2_step  # the EMA update ran before the user's on_step_end
    assert [row["probe"] for row in history] == [1.0, 1.0, 1.0]


class Column(Callback):
    """Adds a column of its own to every epoch's row."""

    def on_epoch_end(self, trainer, row):
        row["mine"] = float(row["epoch"]) * 10


def test_a_column_a_user_callback_adds_reaches_the_checkpointed_history(tmp_path):
    DualMeanTeacher(ToyNet, CFG).fit(*toy_data(), checkpoint_dir=tmp_path, progress=False, callbacks=[Column()])
    saved = load_checkpoint(tmp_path / "last.pt")["model"]["history"]
    assert [row["mine"] for row in saved] == [10.0, 20.0, 30.0]


def test_a_resumed_finished_run_calls_only_fit_start_and_end(tmp_path):
    DualMeanTeacher(ToyNet, CFG).fit(*toy_data(), checkpoint_dir=tmp_path, progress=False)
    recorder = Recorder()
    DualMeanTeacher(ToyNet, CFG).fit(*toy_data(), checkpoint_dir=tmp_path, resume=True, progress=False,
                                     callbacks=[recorder])
    assert recorder.calls == [("fit_start", 5), ("fit_end", 5, True)]


def test_teachers_start_at_fit_end_when_stage_two_is_never_reached():
    recorder = Recorder()
    model = DualMeanTeacher(ToyNet, CFG.replace(steps=0))
    model.fit(*toy_data(), progress=False, callbacks=[recorder])
    assert ("stage_start", "unbiased", 2, True) not in recorder.calls
    assert recorder.calls[-1] == ("fit_end", 2, True) and model.has_teachers


def test_train_step_on_given_batches_leaves_the_streams_alone():
    labeled, unlabeled = toy_data()
    model = DualMeanTeacher(ToyNet, CFG)
    trainer = Trainer(model, labeled, unlabeled, callbacks=default_callbacks(None, progress=False, eval_fn=None))
    trainer.setup()
    model.start_teachers()
    batch = {key: torch.stack([labeled[i][key] for i in range(2)]) for key in ("image", "audio", "mask")}
    before = first_teacher_weight(model)
    values = trainer.train_step("unbiased", {"labeled_A": batch, "labeled_B": batch, "unlabeled": batch})
    assert trainer.step == 1 and trainer.streams == {} and "keep_rate" in values
    assert not torch.equal(first_teacher_weight(model), before)  # the built-in EMA callback ran
    with pytest.raises(ValueError, match="stage must be 'warmup' or 'unbiased'"):
        trainer.train_step("stage2")


def test_tensorboard_logger_writes_the_history_scalars(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    history = DualMeanTeacher(ToyNet, CFG).fit(*toy_data(), progress=False,
                                               callbacks=[TensorBoardLogger(tmp_path / "tb")])
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    assert set(events.Tags()["scalars"]) == {k for row in history for k, v in row.items() if isinstance(v, float)}
    for name in ("total", "keep_rate"):
        rows = [row for row in history if name in row]
        scalars = events.Scalars(name)
        assert [s.step for s in scalars] == [row["step"] for row in rows]
        assert [s.value for s in scalars] == pytest.approx([row[name] for row in rows])


def test_tensorboard_logger_without_tensorboard_names_the_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # makes the import fail
    with pytest.raises(ImportError, match=r"pip install 'dmt_wrap\[tensorboard\]'"):
        TensorBoardLogger(tmp_path)
