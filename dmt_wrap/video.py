"""Reading and writing video and audio with PyAV (its wheels carry FFmpeg: no system ffmpeg needed).

Every failure is a ``DataError`` naming the file, what is wrong and the fix: no video
stream, no audio track, a corrupt or truncated file, a clip with no frames or samples, or a
file beyond ``MediaLimits`` (a small crafted file can declare a huge frame or hours of
silence). Frames are sampled by their timestamps, so variable-frame-rate files are read right.
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
#: Sample rates the AAC encoder takes; other tracks (192 kHz) are resampled to 48 kHz for the overlay.
AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)


@dataclass(frozen=True)
class MediaLimits:
    """How much one input may make the library decode (``dmt-wrap localize --max-pixels ...``).

    ``max_pixels``: of an image or a video frame (a 12000x12000 picture compresses to 420 KB
    and decodes to 432 MB). ``max_frames``: frames sampled from one video (each keeps its map).
    ``max_seconds``: of a video, or of audio decoded (a 1.4 MB silent FLAC holds 30 minutes).
    The defaults keep ``localize`` under about 2 GB of memory.
    """

    max_pixels: int = 4096 * 4096
    max_frames: int = 3600
    max_seconds: float = 900.0

    def check_pixels(self, width: int, height: int, path: Path, what: str = "frames") -> None:
        if width * height > self.max_pixels:
            raise DataError(f"{path}: {what} of {width}x{height} pixels exceed the limit of {self.max_pixels} "
                            "pixels; downscale the file or raise --max-pixels.", path)


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
        raise DataError(f"{path}: holds headers but no media data (a zero-length clip, or cut before its first "
                        "frame: --allow-truncated cannot help); pass another file.", path) from exc
    except av.error.FFmpegError as exc:
        cut = (" An MP4 cut before its index (moov) cannot be read at all, even with --allow-truncated."
               if path.suffix.lower() in (".mp4", ".m4v", ".mov", ".3gp") else "")
        raise DataError(f"{path}: not a readable media file, corrupt or truncated ({exc.strerror or exc});{cut} "
                        "copy or download it again, or convert it with any video tool.", path) from exc


def read_audio(path: str | os.PathLike, what: str = "audio track", rate: int | None = None,
               mono: bool = False, start: float | None = None, stop: float | None = None,
               limits: MediaLimits = MediaLimits(),
               fix: str = "pass one with --audio FILE (any audio or video file)") -> AudioTrack:
    """The first audio stream of ``path`` (a video or an audio file), from ``start`` to ``stop`` seconds.

    At its own rate with up to two channels (for re-encoding; ``AudioTrack.mono`` averages
    them), or resampled by FFmpeg to ``rate`` and downmixed when ``mono``. Only the frames
    that overlap ``[start, stop]`` (stream times; default: all of it) are kept, after a seek
    to ``start``; more than ``limits.max_seconds`` of it is refused. ``fix`` ends the error
    of a file without sound.
    """
    path = Path(path)
    with open_container(path) as container:
        if not container.streams.audio:
            kind = "a picture or a video" if container.streams.video else "no sound"
            raise DataError(f"{path}: has no audio track (it holds {kind}); {fix}.", path)
        stream = container.streams.audio[0]
        layout = "stereo" if stream.codec_context.channels >= 2 and not mono else "mono"
        rate = rate or stream.codec_context.sample_rate
        resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
        chunks, first, kept = [], None, 0
        limit = round(limits.max_seconds * rate)
        try:
            if start is not None and start > 1.0 and stream.time_base:
                container.seek(int((start - 1.0) / stream.time_base), stream=stream, backward=True)
            for frame in container.decode(stream):
                time = float(frame.time or 0.0)
                if start is not None and time + frame.samples / max(frame.sample_rate, 1) < start:
                    continue
                if stop is not None and time > stop:
                    break
                if first is None:
                    first = time
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray())
                    kept += out.samples
                if kept > limit:
                    raise DataError(f"{path}: the {what} lasts more than {limits.max_seconds:g} s, the limit of "
                                    "audio decoded; cut it or raise --max-seconds.", path)
            chunks += [out.to_ndarray() for out in resampler.resample(None)]
        except av.error.FFmpegError as exc:
            raise DataError(f"{path}: the {what} is corrupt or truncated ({exc.strerror or exc}); copy or download "
                            "the file again.", path) from exc
    start = first
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
                  allow_truncated: bool = False,
                  limits: MediaLimits = MediaLimits()) -> Iterator[tuple[float, np.ndarray]]:
    """``(time, frame)`` pairs, ``frame`` RGB uint8 ``[H, W, 3]``: the frame on screen at each time.

    Either every ``1 / fps`` seconds from the first frame to the last, or at the given
    ``times`` (ascending; times before the first frame get the first frame). A frame is on
    screen from its timestamp to the next one's, whatever the frame rate, so variable-rate
    files are sampled right. A file whose frames stop well before its declared duration is
    refused as truncated unless ``allow_truncated`` (what decodes is used; a cut fragmented MP4
    declares no duration, so its arriving fragments are used either way). Frames larger than
    ``limits.max_pixels`` and more than ``limits.max_frames`` samples are refused.
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
        limits.check_pixels(stream.codec_context.width, stream.codec_context.height, path)
        declared = container.duration / av.time_base if container.duration else None
        previous, target, last_time, step, count = None, None, None, None, 0
        try:
            for frame in container.decode(stream):
                limits.check_pixels(frame.width, frame.height, path)
                time = float(frame.time) if frame.time is not None else 0.0
                if previous is None:
                    if targets is None:  # every 1 / fps seconds from the first frame (no drift)
                        targets = _every(time, fps)
                    target = next(targets, None)
                else:
                    step = time - last_time
                    while target is not None and target < time:
                        count += 1
                        _check_count(count, limits, path)
                        yield target, previous.to_ndarray(format="rgb24")
                        target = next(targets, None)
                previous, last_time = frame, time
        except av.error.FFmpegError as exc:
            raise DataError(f"{path}: video stream is corrupt or truncated after {last_time or 0:.2f} s "
                            f"({exc.strerror or exc}); copy or download the file again.", path) from exc
        if previous is None:
            raise DataError(f"{path}: video stream holds no frames (a zero-length clip, or cut before its first "
                            "frame: --allow-truncated cannot help); pass another file.", path)
        end = last_time + (step or 0.0)
        if declared and end < TRUNCATION_TOLERANCE * declared and not allow_truncated:
            raise DataError(f"{path}: truncated: the file declares {declared:.2f} s but its frames stop at "
                            f"{end:.2f} s; copy or download it again, or pass --allow-truncated to use what "
                            "decodes.", path)
        while target is not None and target <= last_time + 1e-9:
            count += 1
            _check_count(count, limits, path)
            yield target, previous.to_ndarray(format="rgb24")
            target = next(targets, None)


def _check_count(count: int, limits: MediaLimits, path: Path) -> None:
    if count > limits.max_frames:
        raise DataError(f"{path}: more than {limits.max_frames} frames sampled; lower --fps or raise --max-frames.",
                        path)


@dataclass
class VideoInfo:
    """What a video declares before decoding: frame size, frame rate and length (``None`` when unknown)."""

    width: int
    height: int
    rate: float | None
    seconds: float | None


def video_info(path: str | os.PathLike) -> VideoInfo:
    """The first video stream's declared size, rate and length; a ``DataError`` when there is none."""
    path = Path(path)
    with open_container(path) as container:
        if not container.streams.video:
            raise DataError(f"{path}: has no video stream (audio only?); for a still picture use --image IMAGE "
                            "--audio AUDIO.", path)
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        seconds = (float(stream.duration * stream.time_base) if stream.duration and stream.time_base
                   else container.duration / av.time_base if container.duration else None)
        return VideoInfo(stream.codec_context.width, stream.codec_context.height,
                         float(rate) if rate else None, seconds)


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
    stream = container.add_stream("aac", rate=audio.rate if audio.rate in AAC_RATES else 48000)
    stream.layout = "stereo" if audio.samples.shape[0] == 2 else "mono"
    return stream


def _encode_audio(container: av.container.OutputContainer, stream, audio: AudioTrack) -> None:
    """Encode the track as AAC, resampled when its rate is not one AAC takes (192 kHz)."""
    block, layout = 1024, stream.layout.name
    resampler = av.AudioResampler(format="fltp", layout=layout, rate=stream.codec_context.sample_rate)
    planar = np.ascontiguousarray(audio.samples, dtype=np.float32)
    written = 0

    def encode(frames) -> None:
        nonlocal written
        for frame in frames:
            frame.pts = written
            written += frame.samples
            container.mux(stream.encode(frame))

    for start in range(0, planar.shape[1], block):
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(planar[:, start:start + block]), format="fltp",
                                           layout=layout)
        frame.sample_rate, frame.pts = audio.rate, start
        encode(resampler.resample(frame))
    encode(resampler.resample(None))
    container.mux(stream.encode())


def audio_seconds(path: str | os.PathLike) -> tuple[float, float] | None:
    """``(start, length)`` in seconds that the first audio stream declares, or ``None`` (no stream, not declared)."""
    path = Path(path)
    with open_container(path) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        if stream.duration and stream.time_base:
            return float((stream.start_time or 0) * stream.time_base), float(stream.duration * stream.time_base)
        if container.duration:
            return (container.start_time or 0) / av.time_base, container.duration / av.time_base
    return None
