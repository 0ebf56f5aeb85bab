"""Reading and writing video and audio with PyAV (its wheels carry FFmpeg: no system ffmpeg needed).

Every failure is a ``DataError`` naming the file, what is wrong and the fix: no video
stream, no audio track, a corrupt or truncated file, a clip with no frames or samples.
Frames are sampled by their timestamps, so variable-frame-rate files are read right.
"""
from __future__ import annotations

import fractions
import itertools
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from .atomic import atomic_path
from .datasets.media import DataError

# The part of a container's declared duration the video frames must reach, else "truncated".
TRUNCATION_TOLERANCE = 0.9
VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".avi", ".mov", ".m4v", ".flv", ".mpg", ".mpeg", ".ts", ".3gp")
OUTPUT_SUFFIXES = (".mp4", ".mkv", ".mov")


@dataclass
class AudioTrack:
    """Decoded audio: ``samples`` float32 ``[channels, n]`` at ``rate`` Hz, starting at ``start`` s."""

    samples: np.ndarray
    rate: int
    start: float

    @property
    def seconds(self) -> float:
        return self.samples.shape[1] / self.rate

    def mono(self) -> np.ndarray:
        return self.samples.mean(axis=0)


def open_container(path: str | os.PathLike) -> av.container.InputContainer:
    """Open a media file for reading; a ``DataError`` naming it when it cannot be read."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file does not exist; check the path.", path)
    if path.stat().st_size == 0:
        raise DataError(f"{path}: file is empty (0 bytes); copy or download it again.", path)
    try:
        return av.open(str(path))
    except av.error.EOFError as exc:
        raise DataError(f"{path}: holds headers but no media data (zero-length clip); pass another file.",
                        path) from exc
    except av.error.FFmpegError as exc:
        raise DataError(f"{path}: not a readable media file, corrupt or truncated ({exc}); copy or download it "
                        "again, or convert it with any video tool.", path) from exc


def read_audio(path: str | os.PathLike, what: str = "audio track", rate: int | None = None,
               mono: bool = False) -> AudioTrack:
    """The first audio stream of ``path`` (a video or an audio file), all of it.

    At its own rate with up to two channels (for re-encoding; ``AudioTrack.mono`` averages
    them), or resampled by FFmpeg to ``rate`` and downmixed when ``mono``.
    """
    path = Path(path)
    with open_container(path) as container:
        if not container.streams.audio:
            raise DataError(f"{path}: has no audio track; pass one with --audio FILE (any audio or video file).",
                            path)
        stream = container.streams.audio[0]
        layout = "stereo" if stream.codec_context.channels >= 2 and not mono else "mono"
        rate = rate or stream.codec_context.sample_rate
        resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
        chunks, start = [], None
        try:
            for frame in container.decode(stream):
                if start is None:
                    start = float(frame.time or 0.0)
                chunks += [out.to_ndarray() for out in resampler.resample(frame)]
            chunks += [out.to_ndarray() for out in resampler.resample(None)]
        except av.error.FFmpegError as exc:
            raise DataError(f"{path}: the {what} is corrupt or truncated ({exc}); copy or download the file "
                            "again.", path) from exc
    if not chunks or sum(chunk.shape[1] for chunk in chunks) == 0:
        raise DataError(f"{path}: the {what} holds no samples (zero-length clip); pass another file or "
                        "--audio FILE.", path)
    samples = np.concatenate(chunks, axis=1).astype(np.float32)
    if not np.isfinite(samples).all():
        raise DataError(f"{path}: the {what} holds NaN or inf samples; re-encode it.", path)
    return AudioTrack(samples, int(rate), start or 0.0)


@dataclass
class Probe:
    """What a file declares: its video stream's ``start`` and ``duration`` (s), and whether it has audio."""

    start: float
    duration: float
    has_audio: bool


def probe(path: str | os.PathLike) -> Probe:
    """The declared start and length of the first video stream, and whether an audio track exists."""
    path = Path(path)
    with open_container(path) as container:
        if not container.streams.video:
            raise DataError(f"{path}: has no video stream (audio only?); pass a video file.", path)
        stream, audio = container.streams.video[0], bool(container.streams.audio)
        if stream.duration and stream.time_base:
            return Probe(float((stream.start_time or 0) * stream.time_base),
                         float(stream.duration * stream.time_base), audio)
        if container.duration:
            return Probe((container.start_time or 0) / av.time_base, container.duration / av.time_base, audio)
    raise DataError(f"{path}: declares no duration; remux it (e.g. to .mp4) so that its length is recorded.", path)


def sample_frames(path: str | os.PathLike, fps: float | None = None, times: Iterable[float] | None = None,
                  allow_truncated: bool = False) -> Iterator[tuple[float, np.ndarray]]:
    """``(time, frame)`` pairs, ``frame`` RGB uint8 ``[H, W, 3]``: the frame on screen at each time.

    Either every ``1 / fps`` seconds from the first frame to the last, or at the given
    ``times`` (ascending; times before the first frame get the first frame). A frame is on
    screen from its timestamp to the next one's, whatever the frame rate, so variable-rate
    files are sampled right. A file whose frames stop well before its declared duration is
    refused as truncated unless ``allow_truncated``.
    """
    path = Path(path)
    if (fps is None) == (times is None):
        raise ValueError("pass exactly one of fps and times.")
    if fps is not None and not fps > 0:
        raise ValueError(f"fps={fps!r}; it must be positive (frames sampled per second).")
    targets = iter(sorted(times)) if times is not None else None
    with open_container(path) as container:
        if not container.streams.video:
            raise DataError(f"{path}: has no video stream (audio only?); for a still picture use --image IMAGE "
                            "--audio AUDIO.", path)
        stream = container.streams.video[0]
        declared = container.duration / av.time_base if container.duration else None
        previous, target, last_time, step = None, None, None, None
        try:
            for frame in container.decode(stream):
                time = float(frame.time) if frame.time is not None else 0.0
                if previous is None:
                    if targets is None:  # every 1 / fps seconds from the first frame (no drift)
                        targets = _every(time, fps)
                    target = next(targets, None)
                else:
                    step = time - last_time
                    while target is not None and target < time:
                        yield target, previous.to_ndarray(format="rgb24")
                        target = next(targets, None)
                previous, last_time = frame, time
        except av.error.FFmpegError as exc:
            raise DataError(f"{path}: video stream is corrupt or truncated after {last_time or 0:.2f} s ({exc}); "
                            "copy or download the file again.", path) from exc
        if previous is None:
            raise DataError(f"{path}: video stream holds no frames (zero-length clip); pass another file.", path)
        end = last_time + (step or 0.0)
        if declared and end < TRUNCATION_TOLERANCE * declared and not allow_truncated:
            raise DataError(f"{path}: truncated: the file declares {declared:.2f} s but its frames stop at "
                            f"{end:.2f} s; copy or download it again, or pass --allow-truncated to use what "
                            "decodes.", path)
        while target is not None and target <= last_time + 1e-9:
            yield target, previous.to_ndarray(format="rgb24")
            target = next(targets, None)


def _every(start: float, fps: float) -> Iterator[float]:
    """``start + k / fps`` for k = 0, 1, ... (computed from k, so no drift accumulates)."""
    return (start + k / fps for k in itertools.count())


def video_codec() -> str:
    """H.264 when the PyAV wheel has it, MPEG-4 part 2 otherwise (both decode everywhere)."""
    return "libx264" if "libx264" in av.codecs_available else "mpeg4"


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray], fps: float,
                audio: AudioTrack | None = None) -> Path:
    """Encode RGB uint8 frames (all one even size) at ``fps``, with ``audio`` as AAC; atomically.

    The file is written under a temporary name in the same folder and renamed when complete.
    """
    path = Path(path)
    if path.suffix.lower() not in OUTPUT_SUFFIXES:
        raise ValueError(f"--out {path}: write the overlay video as one of {OUTPUT_SUFFIXES}.")
    rate = fractions.Fraction(fps).limit_denominator(1001)
    with atomic_path(path) as tmp, av.open(tmp, "w") as container:
        video, sound = None, None
        for index, image in enumerate(frames):
            if video is None:
                video = container.add_stream(video_codec(), rate=rate)
                video.height, video.width = image.shape[:2]
                video.pix_fmt = "yuv420p"
                sound = _add_audio(container, audio)
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame = frame.reformat(format="yuv420p")
            frame.pts = index
            container.mux(video.encode(frame))
        if video is None:
            raise DataError(f"{path}: no frames to write; the input held none.", path)
        container.mux(video.encode())
        if sound is not None:
            _encode_audio(container, sound, audio)
    return path


def _add_audio(container: av.container.OutputContainer, audio: AudioTrack | None):
    if audio is None:
        return None
    stream = container.add_stream("aac", rate=audio.rate)
    stream.layout = "stereo" if audio.samples.shape[0] == 2 else "mono"
    return stream


def _encode_audio(container: av.container.OutputContainer, stream, audio: AudioTrack) -> None:
    block = 1024
    planar = np.ascontiguousarray(audio.samples, dtype=np.float32)
    for start in range(0, planar.shape[1], block):
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(planar[:, start:start + block]), format="fltp",
                                           layout=stream.layout.name)
        frame.sample_rate, frame.pts = audio.rate, start
        container.mux(stream.encode(frame))
    container.mux(stream.encode())
