"""What one training step is given and gives back: the neutral types between the model that owns
the method (``DualMeanTeacher.training_step``) and the loop that drives it (``dmt_wrap.trainer``)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn

from .distributed import World
from .filtering import PseudoLabels
from .streams import derive_seed

#: The loss terms of each network, in the order of ``StepOutput.losses``' columns; the last is
#: what the loop backpropagates.
LOSS_TERMS = ("supervised", "pseudo", "self_supervised", "mismatched_audio", "total")
#: The stages of the schedule, as the loop names them.
STAGES = ("warmup", "unbiased")


@dataclass(frozen=True)
class StepContext:
    """Where a step stands: its index (counted from 0) and stage, this process's place in a
    data-parallel run, and the callables that train each network (the students themselves, or the
    loop's DistributedDataParallel wrappers around them; ``None``: the students)."""

    step: int
    stage: str
    world: World = field(default_factory=World)
    networks: Sequence[nn.Module] | None = None

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"stage must be 'warmup' or 'unbiased', got {self.stage!r}.")

    def seed(self, base_seed: int, kind: str, *parts: Any) -> int:
        """The seed of this step's ``kind`` of randomness; each rank of a parallel run draws its own."""
        rank = ("rank", self.world.rank) if self.world.parallel else ()
        return derive_seed(base_seed, kind, self.step, *parts, *rank)


@dataclass
class StepOutput:
    """One step's result. ``losses`` ``[networks, len(LOSS_TERMS)]`` (the graph kept: the loop
    backpropagates ``losses[:, -1].sum()``, the networks being independent); ``diagnostics``
    0-d tensors (keep rate, consensus IoU, pseudo-label quality) still on the device; ``pseudo``
    the teachers' pseudo-labels and ``unlabeled`` the weak view they labeled (``None`` in stage 1)."""

    losses: Tensor
    diagnostics: dict[str, Tensor] = field(default_factory=dict)
    pseudo: PseudoLabels | None = None
    unlabeled: dict[str, Tensor] | None = None
