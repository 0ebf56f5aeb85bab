"""``dmt-wrap localize``: what a trained model localizes in one's own video, or in an image with a sound.

For a video, frames are sampled ``fps`` times a second (the frame on screen at each moment,
so variable frame rates are fine); each gets the map for the model's audio window centred
on that moment. Frames are resized to the model's square input as the dataset loaders do,
and each map is resized back onto the real frame, so non-square and portrait frames get
their maps in the right place; frames and sound go through ``dmt_wrap.inputs.InputSpec``, the
same calls as ``DualMeanTeacher.preprocess`` in Python. Outputs are written atomically.
"""
from __future__ import annotations

import io
import os
import warnings
from dataclasses import replace
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from .atomic import atomic_path
from .clips import audio_window
from .datasets.media import DataError
from .heatmap import contact_sheet, overlay, save_png
from .inputs import InputSpec, ShortAudioWarning, frame_map  # noqa: F401  (ShortAudioWarning: callers catch it here)
from .pretrained import read_config
from .outputs import ArgumentError, check_outputs
from .video import (OUTPUT_SUFFIXES, VIDEO_SUFFIXES, AudioTrack, MediaLimits, audio_seconds, read_audio,
                    sample_frames, video_info, write_video)
from .wrapper import DualMeanTeacher

SHEET_FRAMES = 16
#: Frame pixels one batch may hold (16 frames of 1 megapixel): larger frames go in smaller batches.
BATCH_PIXELS = 16 * 1024 * 1024
PICTURE_SUFFIXES = (".png",)
AUDIO_FIX = "--audio takes a sound file (wav, flac, mp3, ogg) or a video with sound"


class AudioCoverageWarning(UserWarning):
    """The ``--audio`` file ends well before the video: the overlay's sound stops early."""


@dataclass
class Localizer:
    """A model, the input it expects (``spec``: square frames, a window of mono audio) and its name for captions."""

    model: DualMeanTeacher
    spec: InputSpec
    name: str = "model"

    @property
    def image_size(self) -> int:
        return self.spec.image_size

    @property
    def sample_rate(self) -> int:
        return self.spec.sample_rate

    @property
    def duration(self) -> float:
        return self.spec.duration

    @classmethod
    def from_folder(cls, folder: str | os.PathLike, device: str | None = None) -> "Localizer":
        """The model exported to ``folder`` (``dmt-wrap export``), with its recorded input settings."""
        config = read_config(folder)
        model = DualMeanTeacher.from_pretrained(folder, device=device)
        network = config["network"].get("name") or config["network"].get("class")
        return cls(model, InputSpec.from_data(config["data"]), f"{Path(folder).name} ({network})")

    def model_wave(self, audio: AudioTrack, source: Path) -> torch.Tensor:
        """The whole track, mono at the model's rate; warns when it is shorter than one window."""
        return self.spec.mono(audio.samples, audio.rate, what=f"{source}: the audio")

    def maps(self, frames: list[np.ndarray], windows: list[torch.Tensor]) -> list[np.ndarray]:
        """One confidence map per frame, ``[H, W]`` float32 on that frame's own pixels."""
        square = self.model.localize(self.spec.images(frames), torch.stack(windows))
        return [frame_map(square[i], frame.shape[:2]).numpy() for i, frame in enumerate(frames)]


def compact_map(confidence: np.ndarray, image_size: int) -> np.ndarray:
    """A map resized so its long side is ``image_size``, keeping the frame's aspect ratio (for ``.npz``)."""
    height, width = confidence.shape
    scale = image_size / max(height, width)
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    return F.interpolate(torch.from_numpy(confidence)[None, None], size=size, mode="bilinear",
                         align_corners=False)[0, 0].numpy()


def save_npz(path: str | os.PathLike, **arrays: Any) -> Path:
    """``np.savez_compressed`` atomically."""
    path = Path(path)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    with atomic_path(path) as temp:
        Path(temp).write_bytes(buffer.getvalue())
    return path


def localize_video(localizer: Localizer, video: str | os.PathLike, out: str | os.PathLike, *, fps: float = 4.0,
                   audio_file: str | os.PathLike | None = None, npz: str | os.PathLike | None = None,
                   sheet: str | os.PathLike | None = None, batch_size: int = 16, progress: bool = True,
                   allow_truncated: bool = False, overwrite: bool = False,
                   limits: MediaLimits = MediaLimits()) -> dict[str, Any]:
    """Write an overlay video (heat map over each sampled frame, colour bar, the original audio track).

    Optionally the maps (``npz``: ``maps`` ``[N, h, w]`` with the frame's aspect ratio and
    long side ``image_size``, ``times``, ``frame_size``) and a contact sheet PNG (``sheet``).
    Every output is checked before any work (``dmt_wrap.outputs.check_outputs``: never an
    input, an existing file only with ``overwrite``) and the video against ``limits`` and
    ``fps`` against its own frame rate. Returns a summary: frames, times, output paths.
    """
    video = Path(video)
    check_outputs({"--out": Path(out), "--npz": npz, "--sheet": sheet},
                  {"VIDEO": video, "--audio": audio_file}, overwrite,
                  suffixes={"--out": OUTPUT_SUFFIXES, "--npz": (".npz",), "--sheet": PICTURE_SUFFIXES})
    info = video_info(video)
    limits.check_pixels(info.width, info.height, video)
    if info.rate and fps > info.rate * 1.001:
        raise ArgumentError(f"--fps {fps:g} exceeds the {info.rate:g} frames per second of {video}; every extra "
                            f"sample would repeat a frame: pass --fps {info.rate:g} or less.")
    if info.seconds is not None and info.seconds > limits.max_seconds:
        raise DataError(f"{video}: declares {info.seconds:.0f} s, more than the limit of {limits.max_seconds:g} s; "
                        "cut it or raise --max-seconds.", video)
    estimate = info.seconds * fps if info.seconds else None
    if estimate is not None and estimate > limits.max_frames + 1:
        raise DataError(f"{video}: {info.seconds:.1f} s at --fps {fps:g} gives about {estimate:.0f} frames, more than "
                        f"the limit of {limits.max_frames}; lower --fps or raise --max-frames.", video)
    audio_source = Path(audio_file) if audio_file is not None else video
    span = info.seconds if info.seconds is not None else limits.max_seconds
    audio = read_audio(audio_source, stop=span + localizer.duration,
                       limits=replace(limits, max_seconds=limits.max_seconds + localizer.duration + 1),
                       fix=AUDIO_FIX if audio_file is not None else
                       "pass one with --audio FILE (any audio or video file)")
    if audio_file is not None and info.seconds and audio.start + audio.seconds < info.seconds - 0.5:
        warnings.warn(f"--audio {audio_file} lasts {audio.seconds:.2f} s, the video {info.seconds:.2f} s: the "
                      f"overlay's sound stops at {audio.start + audio.seconds:.2f} s and later frames get the audio's "
                      "last window.", AudioCoverageWarning, stacklevel=2)
    wave = localizer.model_wave(audio, audio_source)
    batch_size = max(1, min(batch_size, BATCH_PIXELS // max(1, info.width * info.height)))
    times: list[float] = []
    compact: list[np.ndarray] = []
    thumbs: list[bytes] = []  # PNG-encoded: thousands of frames stay small, the sheet is unchanged
    frame_size: tuple[int, ...] = ()

    def overlays() -> Iterator[np.ndarray]:
        bar = tqdm(total=round(estimate) if estimate else None, desc=f"localize {video.name}", unit="frame",
                   disable=not progress)
        batch: list[tuple[float, np.ndarray]] = []
        for item in sample_frames(video, fps=fps, allow_truncated=allow_truncated, limits=limits):
            batch.append(item)
            if len(batch) == batch_size:
                yield from run(batch)
                bar.update(len(batch))
                batch = []
        if batch:
            yield from run(batch)
            bar.update(len(batch))
        bar.close()

    def run(batch: list[tuple[float, np.ndarray]]) -> Iterator[np.ndarray]:
        nonlocal frame_size
        windows = [audio_window(wave, time - audio.start, localizer.sample_rate, localizer.duration)
                   for time, _ in batch]
        for (time, frame), confidence in zip(batch, localizer.maps([f for _, f in batch], windows)):
            frame_size = frame.shape[:2]
            drawn = overlay(frame, confidence)
            times.append(time)
            if npz is not None:
                compact.append(compact_map(confidence, localizer.image_size))
            if sheet is not None:
                thumb = Image.fromarray(drawn[:frame.shape[0], :frame.shape[1]])  # the sheet has one bar of its own
                thumb.thumbnail((240, 240))
                encoded = io.BytesIO()
                thumb.save(encoded, format="PNG", compress_level=1)
                thumbs.append(encoded.getvalue())
            yield drawn

    written = write_video(out, overlays(), fps=fps, audio=audio)
    summary: dict[str, Any] = {"video": str(written), "frames": len(times), "times": times,
                               "frame_size": list(frame_size)}
    if npz is not None:
        summary["npz"] = str(save_npz(npz, maps=np.stack(compact), times=np.asarray(times),
                                      frame_size=np.asarray(frame_size), image_size=localizer.image_size,
                                      sample_rate=localizer.sample_rate, duration=localizer.duration))
    if sheet is not None:
        picks = np.unique(np.linspace(0, len(thumbs) - 1, min(SHEET_FRAMES, len(thumbs))).round().astype(int))
        caption = (f"{video.name} · model {localizer.name} · {len(picks)} of {len(times)} frames at {fps:g} fps, "
                   f"t = {times[0]:.2f}-{times[-1]:.2f} s")
        summary["sheet"] = str(contact_sheet([np.asarray(Image.open(io.BytesIO(thumbs[i]))) for i in picks],
                                             [f"t = {times[i]:.2f} s" for i in picks], sheet, caption=caption))
    return summary


def read_picture(path: str | os.PathLike, limits: MediaLimits = MediaLimits()) -> np.ndarray:
    """An image file as RGB uint8 ``[H, W, 3]``; a ``DataError`` naming it when unreadable or too large.

    The size is checked from the header, before a pixel is decoded (Pillow's own bomb check
    becomes the same refusal).
    """
    path = Path(path)
    if path.suffix.lower() in VIDEO_SUFFIXES:
        raise DataError(f"{path}: is a video; pass it as VIDEO (dmt-wrap localize {path} ...), without --image.", path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                limits.check_pixels(image.width, image.height, path, what="an image")
                return np.asarray(image.convert("RGB"))
    except FileNotFoundError as exc:
        raise DataError(f"{path}: image file does not exist; check the path.", path) from exc
    except Image.DecompressionBombError:
        raise DataError(f"{path}: the image declares more pixels than the limit of {limits.max_pixels}; downscale "
                        "it or raise --max-pixels.", path) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"{path}: image is empty, corrupt or truncated ({exc}); pass a JPEG or PNG.", path) from exc


def localize_image(localizer: Localizer, image: str | os.PathLike, audio_file: str | os.PathLike,
                   out: str | os.PathLike, npz: str | os.PathLike | None = None, overwrite: bool = False,
                   limits: MediaLimits = MediaLimits()) -> dict[str, Any]:
    """Overlay PNG (and optionally ``npz`` with ``map`` ``[H, W]``) for an image and the centre of an audio file.

    Outputs are checked before any work, as for a video; only the audio window around the
    declared middle of the sound is decoded.
    """
    check_outputs({"--out": Path(out), "--npz": npz}, {"--image": Path(image), "--audio": Path(audio_file)}, overwrite,
                  suffixes={"--out": PICTURE_SUFFIXES, "--npz": (".npz",)})
    frame = read_picture(image, limits)
    declared = audio_seconds(audio_file)
    if declared is None:
        audio = read_audio(audio_file, limits=limits, fix=AUDIO_FIX)
        centre = None
    else:
        middle = declared[0] + declared[1] / 2
        margin = localizer.duration / 2 + 0.5
        audio = read_audio(audio_file, start=middle - margin, stop=middle + margin, limits=limits, fix=AUDIO_FIX)
        centre = middle - audio.start if declared[1] >= localizer.duration else None
    images, window = localizer.spec.prepare(frame, audio.samples, audio.rate, centre=centre,
                                            what=f"{audio_file}: the audio")
    confidence = frame_map(localizer.model.localize(images, window)[0], frame.shape[:2]).numpy()
    summary: dict[str, Any] = {"png": str(save_png(overlay(frame, confidence), out)),
                               "frame_size": list(frame.shape[:2])}
    if npz is not None:
        summary["npz"] = str(save_npz(npz, map=confidence, image_size=localizer.image_size,
                                      sample_rate=localizer.sample_rate, duration=localizer.duration))
    return summary
