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
from functools import lru_cache

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


@lru_cache(maxsize=16)
def _fade_ramp(fade: int) -> np.ndarray:
    """The raised-cosine ramp of ``fade`` samples (float32, read-only, made once per length)."""
    ramp = 0.5 - 0.5 * np.cos(np.linspace(0.0, math.pi, fade, dtype=np.float32))
    ramp.flags.writeable = False
    return ramp


def _fade_in_place(window: np.ndarray, fade: int) -> None:
    """Apply the raised-cosine fade to both ends of ``window``."""
    fade = min(fade, len(window) // 4)
    if fade < 1:
        return
    ramp = _fade_ramp(fade)
    window[:fade] *= ramp
    window[-fade:] *= ramp[::-1]


def _loop(signal: np.ndarray, phase: int, n_samples: int) -> np.ndarray:
    """``signal`` rotated to start at ``phase`` and repeated to ``n_samples`` samples.

    The same as ``np.resize(np.roll(signal, -phase), n_samples)``, with one copy.
    """
    looped = np.empty(n_samples, dtype=signal.dtype)
    filled = min(n_samples, len(signal) - phase)
    looped[:filled] = signal[phase:phase + filled]
    while filled < n_samples:
        step = min(len(signal), n_samples - filled)
        looped[filled:filled + step] = signal[:step]
        filled += step
    return looped


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
    sped = _change_speed(window, source.slopes[start:start + length - 1], speed)
    _fade_in_place(sped, int(FADE_SECONDS * source.sample_rate))
    clip = _loop(sped, int(rng.integers(0, len(sped))), n_samples)
    clip /= np.float32(max(_rms(clip), 1e-8))
    return clip, AudioWindow(source.name, start, start + length, role)


@lru_cache(maxsize=8)
def _float_range(length: int) -> np.ndarray:
    """``np.arange(length)`` as float32 (read-only), kept per length to skip refilling it."""
    indices = np.arange(length, dtype=np.float32)
    indices.flags.writeable = False
    return indices


def _change_speed(window: np.ndarray, slopes: np.ndarray, speed: float) -> np.ndarray:
    """``window`` played ``speed`` times faster (linear interpolation), a new array.

    ``slopes`` is ``np.diff(window)`` (a slice of the source's, computed once). Positions
    are float32 ``i * speed``; the result is float64, ``window[j] + slope[j] * fraction``
    with ``j`` the position's integer part, clamped to the last slope (fraction 1 there).
    """
    if len(window) < 2:
        return np.repeat(window, 2)
    count = max(2, int(len(window) / speed))
    # A power-of-two length, so that few ranges are kept whatever the window lengths.
    positions = _float_range(1 << (count - 1).bit_length())[:count] * np.float32(speed)
    floors = np.floor(positions)
    sped = np.subtract(positions, floors).astype(np.float64)  # the fractions, exact
    left = floors.astype(np.int32).astype(np.intp)  # faster than float32 -> intp directly
    tail = int(np.searchsorted(positions, np.float32(len(window) - 1)))  # past the last slope
    left[tail:] = len(window) - 2
    sped[tail:] = 1.0
    sped *= slopes.take(left)
    sped += window.take(left)
    return sped


def _rms(signal: np.ndarray) -> float:
    # Not np.dot: a BLAS call here can spin threads that fight the DataLoader workers.
    return math.sqrt(float(np.mean(signal * signal)))


def quantise_pcm16(audio: np.ndarray) -> np.ndarray:
    """Clip to [-1, 1] and round to the 16-bit grid, as int16."""
    scaled = np.clip(audio, -1.0, 1.0)
    scaled *= PCM_SCALE
    return np.round(scaled, out=scaled).astype(np.int16)


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
        if len(heard) > 1:
            clip *= np.float32(10 ** (rng.uniform(-3.0, 3.0) / 20))
        signal += clip
        windows.append(window)
    if distractor is not None:
        clip, window = source_clip(distractor, split, test_fraction, n_samples, rng,
                                   speed_range, role="distractor")
        clip *= np.float32(10 ** (rng.uniform(*distractor_db) / 20))
        signal += clip
        windows.append(window)
    noise_rms = _rms(signal) / 10 ** (rng.uniform(*snr_db) / 20)
    # White noise with a uniform amplitude distribution (unit variance: width sqrt(12)),
    # three times cheaper to draw than Gaussian and as white.
    mix = rng.random(n_samples, dtype=np.float32)
    mix -= np.float32(0.5)
    mix *= np.float32(noise_rms * math.sqrt(12.0))
    mix += signal
    mix *= np.float32(TARGET_RMS / max(_rms(mix), 1e-8))
    return quantise_pcm16(mix), windows
