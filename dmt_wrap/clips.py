"""The audio window a network hears for one moment of a clip, by the dataset loaders' rules.

The window is ``duration`` seconds centred on the moment, shifted to lie inside the clip
near its ends; a clip shorter than the window is tiled (repeated from its start), as
``dmt_wrap.datasets.media.read_audio_clip`` pads.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torchaudio.functional as AF
from torch import Tensor


def to_rate(mono: np.ndarray, rate: int, sample_rate: int) -> Tensor:
    """A mono waveform as a float tensor resampled from ``rate`` to ``sample_rate``."""
    wave = torch.from_numpy(np.ascontiguousarray(mono, dtype=np.float32))
    return wave if rate == sample_rate else AF.resample(wave, orig_freq=rate, new_freq=sample_rate)


def window_start(total: int, centre: float, length: int) -> int:
    """First sample of a ``length``-sample window centred on sample ``centre``, kept inside ``[0, total)``."""
    start = round(centre - length / 2)
    return min(max(start, 0), max(total - length, 0))


def audio_window(wave: Tensor, centre_seconds: float, sample_rate: int, duration: float) -> Tensor:
    """``round(duration * sample_rate)`` samples of ``wave`` centred on ``centre_seconds``.

    Shifted inside the clip at its ends; tiled from its start when the clip is shorter.
    """
    length = round(duration * sample_rate)
    if wave.numel() == 0:
        raise ValueError("the waveform holds no samples.")
    if wave.numel() < length:
        return wave.repeat(math.ceil(length / wave.numel()))[:length].contiguous()
    start = window_start(wave.numel(), centre_seconds * sample_rate, length)
    return wave[start:start + length].contiguous()
