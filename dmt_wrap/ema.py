"""EMA teachers, through timm's ModelEmaV3 (parameters and buffers, foreach lerp)."""
from __future__ import annotations

from timm.utils import ModelEmaV3
from torch import nn


def make_teacher(student: nn.Module, decay: float) -> ModelEmaV3:
    """A teacher that starts as an exact copy of ``student`` and follows it by EMA.

    ``teacher.update(student)`` applies ``t <- decay * t + (1 - decay) * s`` to every
    floating-point parameter and buffer (BatchNorm statistics included) and copies integer
    buffers. The teacher stays in eval mode and in the student's dtype (fp32 here: autocast
    never changes parameter dtypes).
    """
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"ema_decay must be in [0, 1), got {decay}.")
    teacher = ModelEmaV3(student, decay=decay)
    teacher.requires_grad_(False)
    return teacher
