"""Train the toy model with a checkpoint_dir: the run the fault tests SIGKILL mid-way.

Run as ``python train_toy.py CHECKPOINT_DIR``. It resumes from ``CHECKPOINT_DIR/last.pt``
when one exists, so the same command continues an interrupted run. The run is long
enough to be killed only through its step count (``CONFIG``); nothing sleeps.
The tests import ``CONFIG`` and ``datasets`` from here so both sides train the same run.
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

from dmt_wrap import DMTConfig, DualMeanTeacher
from tests.toy import SquaresDataset, TOY_LABELS, ToyNet

CONFIG = DMTConfig(warmup_steps=6, steps=34, steps_per_epoch=4, batch_size=6, labeled_batch_size=3, lr=3e-3,
                   ema_decay=0.5, pseudo_labels=TOY_LABELS, seed=7)


def datasets() -> tuple[SquaresDataset, SquaresDataset]:
    return SquaresDataset(8, seed=1), SquaresDataset(24, seed=2, with_mask=False)


def train(checkpoint_dir: str | Path | None, resume: bool = True) -> DualMeanTeacher:
    """The whole run (or its remainder, from ``checkpoint_dir/last.pt``), on CPU."""
    torch.set_num_threads(1)  # same reduction order as the test process (tests/conftest.py)
    model = DualMeanTeacher(ToyNet, CONFIG, device="cpu")
    model.fit(*datasets(), checkpoint_dir=checkpoint_dir, resume=resume, progress=False)
    return model


if __name__ == "__main__":
    train(sys.argv[1])
