"""Tiny synthetic media written with PyAV for the command-line tests: a bright square moving left to right
over a dark frame, with a tone whose pitch follows the square's position (the sounding object)."""
from __future__ import annotations

import fractions
from pathlib import Path

import av
import numpy as np
import soundfile as sf

SQUARE = 16
RATE = 16000


def square_left(time: float, seconds: float, width: int) -> int:
    """The square's left edge at ``time``: it crosses the frame once over the clip."""
    return int(round(min(max(time / seconds, 0.0), 1.0) * (width - SQUARE)))


def frame_at(time: float, seconds: float, width: int, height: int) -> np.ndarray:
    image = np.full((height, width, 3), 20, np.uint8)
    left, top = square_left(time, seconds, width), (height - SQUARE) // 2
    image[top:top + SQUARE, left:left + SQUARE] = 255
    return image


def tone(seconds: float, rate: int = RATE) -> np.ndarray:
    """A tone sweeping 300 -> 900 Hz with the square's position."""
    t = np.arange(int(round(seconds * rate))) / rate
    frequency = 300 + 600 * t / max(seconds, 1e-6)
    return (0.3 * np.sin(2 * np.pi * np.cumsum(frequency) / rate)).astype(np.float32)


def make_video(path: Path, width: int = 64, height: int = 48, seconds: float = 2.0, fps: int = 10,
               audio: bool = True, times: list[float] | None = None, audio_seconds: float | None = None) -> Path:
    """Write a video (container from the suffix); ``times`` gives irregular frame timestamps (variable rate)."""
    times = times if times is not None else [i / fps for i in range(int(round(seconds * fps)))]
    codec = "libvpx" if path.suffix == ".webm" else "mpeg4"
    with av.open(str(path), "w") as container:
        video = container.add_stream(codec, rate=fps)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.codec_context.time_base = fractions.Fraction(1, 1000)
        sound = None
        if audio:
            sound = container.add_stream("libopus" if path.suffix == ".webm" else "aac", rate=48000 if
                                         path.suffix == ".webm" else RATE)
            sound.layout = "mono"
        if not times:
            container.start_encoding()  # headers only: a clip of zero length
        for time in times:
            frame = av.VideoFrame.from_ndarray(frame_at(time, seconds, width, height), format="rgb24")
            frame = frame.reformat(format="yuv420p")
            frame.pts = int(round(time * 1000))
            container.mux(video.encode(frame))
        container.mux(video.encode())
        if sound is not None:
            rate = sound.codec_context.sample_rate
            wave = tone(seconds if audio_seconds is None else audio_seconds, rate)
            for start in range(0, len(wave), 960):
                chunk = av.AudioFrame.from_ndarray(wave[None, start:start + 960].copy(), format="flt", layout="mono")
                chunk.sample_rate, chunk.pts = rate, start
                container.mux(sound.encode(chunk))
            container.mux(sound.encode())
    return path


def make_wav(path: Path, seconds: float = 2.0) -> Path:
    sf.write(path, tone(seconds), RATE)
    return path
