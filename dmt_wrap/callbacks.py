"""Hooks into the training loop, in the manner of PyTorch Lightning's ``Callback``.

The loop (``dmt_wrap.trainer.Trainer.run``) calls, in this order::

    on_fit_start(trainer)
    on_stage_start(trainer, stage)      # "warmup" or "unbiased", when the stage changes
    on_step_end(trainer, values)        # after every step; trainer.step counts it already
    on_epoch_end(trainer, row)          # every steps_per_epoch steps and at the last one
    on_fit_end(trainer)

Every hook goes through one dispatch path (``Trainer.call``) and runs on every callback in
list order. ``default_callbacks`` puts them in the order their meaning needs: the teachers
follow the students before anyone reads the step (``EMATeachers``), the evaluation numbers
join the epoch's row (``Evaluation``), the row joins the history (``History``), then the
user's callbacks (what they add to the row is in the history), then ``Checkpoint`` (last
among those that read the row, as Lightning runs its checkpoint callbacks last, so the
checkpoint holds everything) and ``ProgressBar``. In a parallel run every rank runs every hook
(the evaluation is a collective); the built-ins that write (log, checkpoint, bar) act on rank 0.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from collections.abc import Sequence
from typing import Any

import torch
from tqdm.auto import tqdm

from . import distributed
from .checkpoint import CHECKPOINT_NAME, WARMUP_CHECKPOINT_NAME, save_atomic
from .protocols import TrainingLoop


log = logging.getLogger("dmt_wrap")

BAR_VALUES = ("total", "keep_rate")  # the step values the progress bar shows


class Callback:
    """Base class: every hook does nothing; override the ones you need."""

    def on_fit_start(self, trainer: TrainingLoop) -> None:
        """Before the first step (after the calibration or the restore from a checkpoint)."""

    def on_stage_start(self, trainer: TrainingLoop, stage: str) -> None:
        """When ``stage`` (``"warmup"`` or ``"unbiased"``) begins, or a resumed run re-enters it."""

    def on_step_end(self, trainer: TrainingLoop, values: dict[str, float]) -> None:
        """After each step; ``values`` are its loss terms and diagnostics, on the host."""

    def on_epoch_end(self, trainer: TrainingLoop, row: dict[str, Any]) -> None:
        """After each epoch; ``row`` is the epoch's history row (earlier callbacks may add to it)."""

    def on_fit_end(self, trainer: TrainingLoop) -> None:
        """After the last step (also when a resumed run had no step left)."""


class EMATeachers(Callback):
    """Starts the teachers when stage 2 begins and moves them towards the students after
    every step (the teachers of a run that never reached stage 2 start at its end)."""

    def on_stage_start(self, trainer: TrainingLoop, stage: str) -> None:
        if stage == "unbiased":
            self._start(trainer)

    def on_step_end(self, trainer: TrainingLoop, values: dict[str, float]) -> None:
        if trainer.model.has_teachers:
            trainer.model.update_teachers()

    def on_fit_end(self, trainer: TrainingLoop) -> None:
        self._start(trainer)

    @staticmethod
    def _start(trainer: TrainingLoop) -> None:
        model = trainer.model
        if model.config.teachers > 0 and not model.has_teachers:
            model.start_teachers()


class Evaluation(Callback):
    """``eval_fn(model)``'s numbers join each epoch's row.

    In a parallel run it runs on every rank (the teachers are identical there) and its
    numbers are averaged, so it may score just the rank's shard.
    """

    def __init__(self, eval_fn: Callable[[Any], dict[str, float]]) -> None:
        self.eval_fn = eval_fn

    def on_epoch_end(self, trainer: TrainingLoop, row: dict[str, Any]) -> None:
        numbers = self.eval_fn(trainer.model)
        if trainer.world.parallel:
            names = sorted(numbers)
            values = torch.tensor([float(numbers[name]) for name in names], dtype=torch.float64,
                                  device=trainer.device)
            numbers = dict(zip(names, distributed.mean(values, trainer.world).tolist()))
        row.update(numbers)


class History(Callback):
    """Appends each epoch's row to ``model.history`` (the same on every rank); rank 0 logs it."""

    def on_epoch_end(self, trainer: TrainingLoop, row: dict[str, Any]) -> None:
        trainer.model.history.append(row)
        if trainer.world.is_main:
            log.info("epoch %d (step %d, %s, %.1fs): %s", row["epoch"], row["step"], row["stage"], row["seconds"],
                     ", ".join(f"{k}={v:.4f}" for k, v in row.items() if isinstance(v, float) and k != "seconds"))


class Checkpoint(Callback):
    """Rank 0 writes ``folder/last.pt`` atomically after every epoch (what ``resume=True`` reads),
    and keeps the state at the end of the warm-up as ``folder/warmup.pt`` (what
    ``fit(warmup_from=)`` reads) when the warm-up ends on an epoch boundary."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.path = Path(folder) / CHECKPOINT_NAME
        self.warmup_path = Path(folder) / WARMUP_CHECKPOINT_NAME

    def on_epoch_end(self, trainer: TrainingLoop, row: dict[str, Any]) -> None:
        if trainer.world.is_main:
            state = trainer.checkpoint_state()
            save_atomic(state, self.path)
            if row["stage"] == "warmup" and trainer.step == trainer.warmup_length:
                save_atomic(state, self.warmup_path)


class ProgressBar(Callback):
    """A tqdm bar over the whole schedule on rank 0, showing the step's total loss and keep rate."""

    def __init__(self) -> None:
        self.bar: tqdm | None = None

    def on_fit_start(self, trainer: TrainingLoop) -> None:
        self.bar = tqdm(total=trainer.total_steps, initial=trainer.step, disable=not trainer.world.is_main,
                        desc=trainer.model.network_name, dynamic_ncols=True)

    def on_step_end(self, trainer: TrainingLoop, values: dict[str, float]) -> None:
        if self.bar is not None and not self.bar.disable:
            self.bar.set_postfix({k: f"{v:.3f}" for k, v in values.items() if k in BAR_VALUES}, refresh=False)
            self.bar.update(1)

    def on_fit_end(self, trainer: TrainingLoop) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


class TensorBoardLogger(Callback):
    """Rank 0 writes every float of each epoch's history row as a TensorBoard scalar (tag: its
    name, step: the row's ``step``) to ``log_dir``. Needs ``pip install 'dmt_wrap[tensorboard]'``."""

    def __init__(self, log_dir: str | os.PathLike) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            raise ImportError("TensorBoardLogger needs the tensorboard package: pip install "
                              "'dmt_wrap[tensorboard]' (or pip install tensorboard).") from exc
        self.log_dir = Path(log_dir)
        self._writer_class = SummaryWriter
        self.writer: Any = None

    def on_fit_start(self, trainer: TrainingLoop) -> None:
        if trainer.world.is_main:
            self.writer = self._writer_class(log_dir=str(self.log_dir))

    def on_epoch_end(self, trainer: TrainingLoop, row: dict[str, Any]) -> None:
        if self.writer is None:
            return
        for name, value in row.items():
            if isinstance(value, float):
                self.writer.add_scalar(name, value, global_step=row["step"])
        self.writer.flush()

    def on_fit_end(self, trainer: TrainingLoop) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def default_callbacks(checkpoint_dir: str | os.PathLike | None, progress: bool,
                      eval_fn: Callable[[Any], dict[str, float]] | None,
                      user_callbacks: Sequence[Callback] = ()) -> list[Callback]:
    """The callbacks of a ``fit``, in the order their hooks must run (see the module docstring)."""
    callbacks: list[Callback] = [EMATeachers()]
    if eval_fn is not None:
        callbacks.append(Evaluation(eval_fn))
    callbacks.append(History())
    callbacks.extend(user_callbacks)
    if checkpoint_dir:
        callbacks.append(Checkpoint(checkpoint_dir))
    if progress:
        callbacks.append(ProgressBar())
    return callbacks
