"""The sound of a composed scene: cropped, sped-up, looped recordings, mixed with noise.

Train and test hear disjoint parts of every recording: ``Source.split_point`` divides
each (silence-trimmed) recording so that the first part holds ``1 - test_fraction`` of
its active frames; the train split crops windows from the first part only, the test
split from the last part only. Nothing else is held out (the ``_desc`` speech files are
spoken descriptions, not the objects' sounds, and are never used).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .sources import Source

SPLITS = ("train", "test")
TARGET_RMS = 0.1
FADE_SECONDS = 0.005  # raised-cosine fade at a window's ends, so loop joins do not click
PCM_SCALE = 32767  # clips are quantised to 16-bit PCM, as recorded datasets are


@dataclass(frozen=True)
class AudioWindow:
    """Which samples ``[start, end)`` of a class's recording a clip was made from."""

    class_name: str
    start: int
    end: int
    role: str  # "source" (an on-screen or heard-but-absent class) or "distractor"


def split_bounds(source: Source, split: str, test_fraction: float) -> tuple[int, int]:
    """The part ``[start, end)`` of ``source.waveform`` that ``split`` may use."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}.")
    cut = source.split_point(test_fraction)
    return (0, cut) if split == "train" else (cut, len(source.waveform))


def _raised_cosine_fade(window: np.ndarray, fade: int) -> np.ndarray:
    fade = min(fade, len(window) // 4)
    if fade < 1:
        return window
    ramp = (0.5 - 0.5 * np.cos(np.linspace(0.0, math.pi, fade, dtype=np.float32)))
    faded = window.copy()
    faded[:fade] *= ramp
    faded[-fade:] *= ramp[::-1]
    return faded


def source_clip(source: Source, split: str, test_fraction: float, n_samples: int,
                rng: np.random.Generator, speed_range: tuple[float, float],
                role: str = "source") -> tuple[np.ndarray, AudioWindow]:
    """``n_samples`` of ``source``'s sound: a window at a random offset, sped, looped.

    The window is as long as the clip needs (or the whole split part if shorter); its
    speed changes by a factor from ``speed_range`` (linear interpolation, so pitch moves
    with it); it is looped from a random phase to fill the clip. Returns the clip at unit
    RMS and the window it came from.
    """
    low, high = split_bounds(source, split, test_fraction)
    speed = rng.uniform(*speed_range)
    needed = int(math.ceil(n_samples * speed)) + 1
    length = min(high - low, needed)
    start = low + int(rng.integers(0, high - low - length + 1))
    window = source.waveform[start:start + length]
    sped = _raised_cosine_fade(_change_speed(window, speed),
                               int(FADE_SECONDS * source.sample_rate))
    phase = int(rng.integers(0, len(sped)))
    clip = np.resize(np.concatenate([sped[phase:], sped[:phase]]), n_samples)
    return clip / np.float32(max(_rms(clip), 1e-8)), AudioWindow(source.name, start,
                                                                  start + length, role)


def _change_speed(window: np.ndarray, speed: float) -> np.ndarray:
    """``window`` played ``speed`` times faster (linear interpolation), float32."""
    if len(window) < 2:
        return np.repeat(window, 2)
    positions = np.arange(max(2, int(len(window) / speed)), dtype=np.float32) * np.float32(speed)
    left = np.minimum(positions.astype(np.int32), len(window) - 2)
    fraction = np.minimum(positions - left, np.float32(1.0))
    return window[left] + (window[left + 1] - window[left]) * fraction


def _rms(signal: np.ndarray) -> float:
    # Not np.dot: a BLAS call here can spin threads that fight the DataLoader workers.
    return math.sqrt(float(np.mean(signal * signal)))


def quantise_pcm16(audio: np.ndarray) -> np.ndarray:
    """Clip to [-1, 1] and round to the 16-bit grid, as int16."""
    return np.round(np.clip(audio, -1.0, 1.0) * PCM_SCALE).astype(np.int16)


def mix_scene_audio(heard: Sequence[Source], distractor: Source | None, split: str,
                    test_fraction: float, n_samples: int, rng: np.random.Generator,
                    speed_range: tuple[float, float], snr_db: tuple[float, float],
                    distractor_db: tuple[float, float]
                    ) -> tuple[np.ndarray, list[AudioWindow]]:
    """The scene's 16-bit clip (int16 ``[n_samples]``) and the windows it used.

    Heard sources are mixed at equal RMS within +-3 dB of each other (when several); the
    off-screen distractor at ``distractor_db`` relative to them; white noise at an SNR
    drawn from ``snr_db`` relative to everything else. The mix is scaled to RMS
    ``TARGET_RMS`` so that loudness says nothing about the scene.
    """
    signal = np.zeros(n_samples, dtype=np.float32)
    windows = []
    for source in heard:
        clip, window = source_clip(source, split, test_fraction, n_samples, rng, speed_range)
        gain = 10 ** (rng.uniform(-3.0, 3.0) / 20) if len(heard) > 1 else 1.0
        signal += clip * np.float32(gain)
        windows.append(window)
    if distractor is not None:
        clip, window = source_clip(distractor, split, test_fraction, n_samples, rng,
                                   speed_range, role="distractor")
        signal += clip * np.float32(10 ** (rng.uniform(*distractor_db) / 20))
        windows.append(window)
    noise_rms = _rms(signal) / 10 ** (rng.uniform(*snr_db) / 20)
    # White noise with a uniform amplitude distribution (unit variance: width sqrt(12)),
    # three times cheaper to draw than Gaussian and as white.
    noise = rng.random(n_samples, dtype=np.float32) - np.float32(0.5)
    mix = signal + noise * np.float32(noise_rms * math.sqrt(12.0))
    return quantise_pcm16(mix * np.float32(TARGET_RMS / max(_rms(mix), 1e-8))), windows
