"""What the loop, the model and the callbacks know of each other: structural types only, so that
``trainer``, ``wrapper`` and ``callbacks`` import none of each other's modules for annotations."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from .config import DMTConfig
from .distributed import World
from .step import StepContext, StepOutput


class SemiSupervisedModel(Protocol):
    """A model that owns its method (``DualMeanTeacher``): what the loop calls."""

    config: DMTConfig
    device: torch.device
    students: nn.ModuleList
    history: list[dict[str, Any]]

    @property
    def network_name(self) -> str: ...

    @property
    def has_teachers(self) -> bool: ...

    def labeled_stream(self, position: int) -> str: ...

    def calibrate(self, images: Tensor, audio: Tensor) -> None: ...

    def training_step(self, batches: Mapping[str, dict[str, Tensor]], context: StepContext) -> StepOutput: ...

    def summarise_diagnostics(self, diagnostics: dict[str, float]) -> dict[str, float]: ...

    def start_teachers(self) -> None: ...

    def update_teachers(self) -> None: ...

    def model_state(self) -> dict[str, Any]: ...

    def load_model_state(self, state: dict[str, Any], source: str = ...) -> None: ...


class TrainingLoop(Protocol):
    """What a callback may read of the loop running it (``dmt_wrap.trainer.Trainer``)."""

    model: SemiSupervisedModel
    world: World
    device: torch.device
    step: int

    @property
    def total_steps(self) -> int: ...

    @property
    def warmup_length(self) -> int: ...

    def checkpoint_state(self) -> dict[str, Any]: ...


class LoopCallback(Protocol):
    """The hooks the loop calls (``dmt_wrap.callbacks.Callback`` implements them all)."""

    def on_fit_start(self, trainer: TrainingLoop) -> None: ...

    def on_stage_start(self, trainer: TrainingLoop, stage: str) -> None: ...

    def on_step_end(self, trainer: TrainingLoop, values: dict[str, float]) -> None: ...

    def on_epoch_end(self, trainer: TrainingLoop, row: dict[str, Any]) -> None: ...

    def on_fit_end(self, trainer: TrainingLoop) -> None: ...
