"""One rank of the data-parallel test: ``torchrun --nproc_per_node=2 distributed_worker.py OUT``.

Runs three short fits on the toy data and saves, per rank, what ``test_distributed.py``
compares: teachers, students and history.

* ``flat``: DMT on ``FlatToyNet`` with identity augmentation; ``fit`` starts the process
  group itself from torchrun's environment;
* ``batchnorm``: DMT on ``ToyNet`` (BatchNorm buffers must still give identical teachers);
  ``fit`` joins the group that is already up;
* ``self_supervised``: no labels, so the calibration parameters never get a gradient
  (DDP must cope with parameters the loss does not reach).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from dmt_wrap import DualMeanTeacher, ablation
from tests.distributed_setup import PER_RANK, FlatToyNet, toy_data
from tests.toy import ToyNet


def fit_and_save(name: str, factory, out: Path, **overrides) -> None:
    cfg = PER_RANK.replace(**overrides)
    model = DualMeanTeacher(factory, cfg, device="cpu")
    labeled, unlabeled = toy_data()
    history = model.fit(None if not cfg.use_labels else labeled, unlabeled, checkpoint_dir=out / name,
                        progress=False)
    state = {"teachers": [t.state_dict() for t in model.teachers],
             "students": [s.state_dict() for s in model.students], "history": history}
    torch.save(state, out / f"{name}_rank{os.environ['RANK']}.pt")


def main(out: Path) -> None:
    torch.set_num_threads(1)
    assert not dist.is_initialized()
    fit_and_save("flat", FlatToyNet, out)
    assert dist.is_initialized() and dist.get_world_size() == 2
    fit_and_save("batchnorm", ToyNet, out)
    self_supervised = ablation("self_supervised", PER_RANK)
    fit_and_save("self_supervised", ToyNet, out, **{k: getattr(self_supervised, k)
                                                     for k in ("teachers", "use_labels", "warmup_steps")})


if __name__ == "__main__":
    main(Path(sys.argv[1]))
