"""The inputs the baseline tests share: a tiny batch of random images and, per clip, a different tone."""
from __future__ import annotations

import math

import torch
from torch import Tensor

BATCH, IMAGE_SIZE, SAMPLE_RATE, AUDIO_SECONDS = 4, 64, 8000, 0.5


def toy_batch(seed: int = 0) -> tuple[Tensor, Tensor]:
    """Random images and, per clip, a different tone in noise (so the clips differ)."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(BATCH, 3, IMAGE_SIZE, IMAGE_SIZE, generator=generator)
    time = torch.arange(int(SAMPLE_RATE * AUDIO_SECONDS)) / SAMPLE_RATE
    frequencies = 200.0 * (1 + torch.arange(BATCH))[:, None]
    audio = (0.5 * torch.sin(2 * math.pi * frequencies * time)
             + 0.05 * torch.randn(BATCH, time.numel(), generator=generator))
    return images, audio
